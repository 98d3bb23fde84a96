"""COCO-format keypoint data for training: images, augmentation, loss masks and targets.

Any COCO person-keypoints json plus its image folder works (pycocotools reads it). Each sample is produced as
HigherHRNet's training pipeline does it, with EfficientHRNet's settings:

* loss mask: 0 over crowd regions and over people annotated without keypoints (``num_keypoints == 0``), so
  the network is not punished for finding people nobody labelled; also 0 outside the warped image;
* augmentation: horizontal flip (p 0.5, left/right joints swapped with ``types.FLIP_INDEX``), then one random
  affine warp: rotation within +-30 degrees, scale 0.75-1.5 of the image's short side, and a shift of the
  centre by up to 40 units of the official 200-px reference box (``MAX_TRANSLATE`` 40 times ``scale``, i.e.
  up to 20 % of the crop side), into a fixed square input;
* mosaic (``Augment.mosaic``, off by default): with that probability a sample is a 2x2 mosaic of four images,
  each augmented as above into its quadrant, so most samples hold several people from different pictures and
  the associative-embedding loss learns to tell them apart. A joint that falls outside its own quadrant is
  dropped (it would sit on another picture), and each quadrant carries its own loss mask;
* targets at 1/4 and 1/2 of the input (``edgepose.train.targets``).

Randomness is drawn from a generator seeded by (seed, epoch, index), so a sample is the same whatever worker
or run produces it: this is what makes resumed training identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgepose.errors import EdgeposeError
from edgepose.train.targets import MAX_PEOPLE, SIGMA, heatmaps, joint_indices
from edgepose.types import FLIP_INDEX, NUM_JOINTS

MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # the ImageNet statistics the official code uses
STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)
BOX_UNIT = 200.0  # HigherHRNet expresses scales in units of a 200-px box


@dataclass(frozen=True)
class Augment:
    """Random augmentation ranges (the official values by default); ``Augment.off()`` disables it."""

    max_rotation: float = 30.0
    min_scale: float = 0.75
    max_scale: float = 1.5
    max_translate: float = 40.0
    flip: float = 0.5
    mosaic: float = 0.0  # probability of a 2x2 mosaic of four images

    def __post_init__(self) -> None:
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {self.min_scale} and {self.max_scale}")
        if not 0 <= self.flip <= 1:
            raise ValueError(f"flip is a probability in [0, 1], got {self.flip}")
        if not 0 <= self.mosaic <= 1:
            raise ValueError(f"mosaic is a probability in [0, 1], got {self.mosaic}")
        if self.max_rotation < 0 or self.max_translate < 0:
            raise ValueError("max_rotation and max_translate must be >= 0")

    @classmethod
    def off(cls) -> Augment:
        return cls(0.0, 1.0, 1.0, 0.0, 0.0, 0.0)


def normalize(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB uint8 -> (3, H, W) float32 normalised as the network expects."""
    return np.ascontiguousarray(((rgb.astype(np.float32) / 255.0 - MEAN_RGB) / STD_RGB).transpose(2, 0, 1))


def crop_matrix(center: np.ndarray, box: float, res: int, rotation: float) -> np.ndarray:
    """3x3 matrix mapping image pixels to a ``res``-square crop: the ``box``-px square around ``center``,
    rotated by ``rotation`` degrees (counter-clockwise on screen), fills the crop."""
    t = np.array([[res / box, 0, res * (0.5 - center[0] / box)], [0, res / box, res * (0.5 - center[1] / box)], [0, 0, 1]])
    if rotation:
        r = math.radians(-rotation)
        rot = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
        shift = np.array([[1, 0, res / 2], [0, 1, res / 2], [0, 0, 1]])
        t = shift @ rot @ np.linalg.inv(shift) @ t
    return t


def warp_joints(joints: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 3x3 affine matrix to (P, 17, 3) joints (x, y, visibility); visibility is kept."""
    out = joints.copy()
    out[..., :2] = joints[..., :2] @ matrix[:2, :2].T + matrix[:2, 2]
    return out


class KeypointDataset:
    """Training samples from a COCO keypoint json and an image folder (a torch-style map dataset).

    ``input_size`` is the square network input (a multiple of 32; the variant's size, or smaller for quick
    CPU runs). Item ``i`` is a dict of numpy arrays: ``image`` (3, S, S) float32, ``heatmaps4``/``heatmaps2``
    (17, S/4, S/4) and (17, S/2, S/2), ``mask4``/``mask2`` (same sizes, 1 = counted in the loss) and
    ``joints`` (max_people, 17, 2) int64 for the AE loss. Call ``set_epoch`` before each epoch.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_dir: str | Path,
        input_size: int,
        *,
        augment: Augment | None = None,
        seed: int = 0,
        sigma: float = SIGMA,
        max_people: int = MAX_PEOPLE,
        image_ids: list[int] | None = None,
    ):
        if input_size <= 0 or input_size % 32:
            raise ValueError(f"input size must be a positive multiple of 32 (e.g. 256 or 384), got {input_size}")
        self.coco = load_coco(ann_file)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise EdgeposeError(
                f"image folder {self.image_dir} does not exist: pass the folder the json's file_name entries are in"
            )
        self.input_size = input_size
        self.augment = Augment() if augment is None else augment
        self.seed = seed
        self.sigma = sigma
        self.max_people = max_people
        self.epoch = 0
        self.category = person_category(self.coco)
        # As HigherHRNet: train on every image with at least one person annotation (crowds count: they mask).
        ids = image_ids if image_ids is not None else sorted(self.coco.getImgIds())
        self.ids = [i for i in ids if self.coco.getAnnIds(imgIds=i, catIds=[self.category], iscrowd=None)]
        if not self.ids:
            raise EdgeposeError(f"{ann_file} has no images with person annotations: check it is a COCO keypoints file")

    def __len__(self) -> int:
        return len(self.ids)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def read_image(self, image_id: int) -> np.ndarray:
        """The RGB uint8 image of ``image_id``; EdgeposeError if it is missing or unreadable."""
        info = self.coco.loadImgs(image_id)[0]
        path = self.image_dir / info["file_name"]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise EdgeposeError(
                f"image {path} (id {image_id}) is missing or unreadable: check --images points at the json's images"
            )
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def annotations(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(P, 17, 3) float32 joints of the people with keypoints, and the (H, W) float32 loss mask."""
        info = self.coco.loadImgs(image_id)[0]
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id, catIds=[self.category], iscrowd=None))
        ignore = np.zeros((info["height"], info["width"]), dtype=np.uint8)
        joints = []
        for ann in anns:
            if ann.get("iscrowd", 0) or ann.get("num_keypoints", 0) == 0:
                if ann.get("segmentation"):
                    ignore |= self.coco.annToMask(ann).astype(np.uint8)
            else:
                joints.append(np.asarray(ann["keypoints"], dtype=np.float32).reshape(NUM_JOINTS, 3))
        joints_arr = np.stack(joints) if joints else np.zeros((0, NUM_JOINTS, 3), np.float32)
        return joints_arr, (1 - ignore).astype(np.float32)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        s = self.input_size
        # (No draw when mosaic is off, so the augmentation of such runs stays as it always was.)
        if not self.augment.mosaic or rng.random() >= self.augment.mosaic:
            tiles = [(self.ids[index], rng, 0, 0, s)]
        else:
            # Four pictures (this one first), each into a quadrant with its own seeded augmentation.
            others = rng.integers(len(self.ids), size=3)
            picks = [self.ids[index], *(self.ids[int(i)] for i in others)]
            half = s // 2
            tiles = [(image_id, np.random.default_rng((self.seed, self.epoch, index, t)), (t % 2) * half,
                      (t // 2) * half, half) for t, image_id in enumerate(picks)]
        image = np.zeros((s, s, 3), np.uint8)
        per_res = {name: ([], np.zeros((res, res), np.float32)) for name, res in (("4", s // 4), ("2", s // 2))}
        for image_id, tile_rng, x0, y0, side in tiles:
            self._draw_tile(image_id, tile_rng, x0, y0, side, image, per_res)
        sample = {"image": normalize(image)}
        for name, (joints, mask) in per_res.items():
            res = mask.shape[0]
            all_joints = np.concatenate(joints) if joints else np.zeros((0, NUM_JOINTS, 3), np.float32)
            sample["heatmaps" + name] = heatmaps(all_joints, res, self.sigma)
            sample["mask" + name] = mask
            if name == "4":
                sample["joints"] = joint_indices(all_joints, res, self.max_people)
        return sample

    def _draw_tile(self, image_id: int, rng: np.random.Generator, x0: int, y0: int, side: int, image: np.ndarray,
                   per_res: dict) -> None:
        """Augment one picture into the ``side``-square at (x0, y0) of the input ``image``, and add its joints and
        loss mask at each target resolution (``per_res``: name -> (joint list, mask))."""
        picture = self.read_image(image_id)
        joints, mask = self.annotations(image_id)
        h, w = picture.shape[:2]
        aug = self.augment

        flip = np.eye(3)
        if rng.random() < aug.flip:
            flip = np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]])  # x -> w - 1 - x, as cv2.flip
            joints = joints[:, list(FLIP_INDEX)]
        scale = min(h, w) / BOX_UNIT * (aug.min_scale + rng.random() * (aug.max_scale - aug.min_scale))
        rotation = (rng.random() * 2 - 1) * aug.max_rotation
        center = np.array([w / 2.0, h / 2.0])
        if aug.max_translate > 0:
            limit = int(aug.max_translate * scale)
            center += rng.integers(-limit, limit, size=2, endpoint=False) if limit > 0 else 0

        s = self.input_size
        to_tile = crop_matrix(center, scale * BOX_UNIT, side, rotation) @ flip
        image[y0:y0 + side, x0:x0 + side] = cv2.warpAffine(picture, to_tile[:2], (side, side), flags=cv2.INTER_LINEAR)
        for name, (joint_list, full_mask) in per_res.items():
            res = full_mask.shape[0]
            k = res / s  # input pixels -> target pixels
            tile_res, tx, ty = round(side * k), round(x0 * k), round(y0 * k)
            m = crop_matrix(center, scale * BOX_UNIT, tile_res, rotation) @ flip
            tile_joints = warp_joints(joints, m)
            if side < s:  # a joint outside its own quadrant would land on another picture: drop it
                xy = tile_joints[..., :2]
                outside = (xy < 0).any(-1) | (xy >= tile_res).any(-1)
                tile_joints[outside] = 0.0
                tile_joints = tile_joints[(tile_joints[..., 2] > 0).any(-1)]
            tile_joints[..., 0] += tx
            tile_joints[..., 1] += ty
            joint_list.append(tile_joints)
            warped_mask = cv2.warpAffine((mask * 255).astype(np.uint8), m[:2], (tile_res, tile_res)) / 255.0
            full_mask[ty:ty + tile_res, tx:tx + tile_res] = (warped_mask > 0.5).astype(np.float32)


def image_hashes(ann_file: str | Path, image_dir: str | Path) -> dict[str, str]:
    """SHA-256 of every image file a COCO json lists -> its file name (missing files are skipped)."""
    import hashlib

    coco = load_coco(ann_file)
    out = {}
    for info in coco.loadImgs(coco.getImgIds()):
        path = Path(image_dir) / info["file_name"]
        if path.is_file():
            out[hashlib.sha256(path.read_bytes()).hexdigest()] = info["file_name"]
    return out


def check_no_overlap(train: tuple[str | Path, str | Path], val: tuple[str | Path, str | Path]) -> None:
    """Refuse a training set that holds any validation image (same file content): its AP would not be honest."""
    seen = image_hashes(*val)
    shared = sorted(seen[h] for h in image_hashes(*train).keys() & seen.keys())
    if shared:
        raise EdgeposeError(f"{len(shared)} validation images are also in the training set ({', '.join(shared[:3])}"
                            f"{', ...' if len(shared) > 3 else ''}): leave them out of --ann (e.g. pseudo-label without "
                            "that folder) or validate on other images")


def load_coco(ann_file: str | Path):
    """pycocotools' COCO for ``ann_file`` (its console output silenced); EdgeposeError when it is not usable."""
    from pycocotools.coco import COCO

    path = Path(ann_file)
    if not path.is_file():
        raise EdgeposeError(f"annotation file {path} does not exist: pass a COCO person-keypoints json with --ann")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except Exception as exc:  # json errors, missing keys: pycocotools raises several kinds
        raise EdgeposeError(f"cannot read {path} as COCO annotations ({type(exc).__name__}: {exc})") from exc


def person_category(coco) -> int:
    """The id of the category named "person" (COCO's 1); the only category if there is exactly one."""
    ids = coco.getCatIds(catNms=["person"]) or coco.getCatIds()
    if len(ids) != 1:
        raise EdgeposeError("the annotation file must have a 'person' category (or exactly one category) with keypoints")
    return ids[0]
