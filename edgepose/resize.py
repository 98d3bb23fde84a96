"""Frame downscaling for the network input and capture: anti-aliased, at the cost of bilinear.

``cv2.INTER_AREA`` is the textbook anti-aliased downscale but costs 1.0 ms for 768x432 -> 341x192 and 5 ms for
1920x1080 -> 341x192 on a 2-core EPYC (its non-integer-factor path is slow), as much as the H-4 network itself.
Plain bilinear (0.1-0.15 ms) skips pixels beyond a 2x reduction and aliases. ``INTER_LINEAR`` at exactly half the
size averages each 2x2 block, so halving while the image is at least twice the target, then one bilinear step,
filters close to an area resize (a COCO photo reduced 2.5-5.6x: 37 dB PSNR against INTER_AREA, bilinear 27-34 dB)
in 0.16 ms and 0.43 ms for those two frames.

Decoders deliver I420 (YUV 4:2:0). Converting a whole frame to BGR and then shrinking it to 341x192 costs 0.21 ms
at 768x432 and 0.75 ms at 1920x1080; shrinking the three planes first and converting only the network-sized picture
costs 0.13 and 0.21 ms (``I420Image.resized``; 42-43 dB PSNR against the former). Capture hands frames on as
``I420Image``; the full BGR frame is made only where something needs it (``Frame.image``: snapshots, recorded
video).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class I420Image:
    """One decoded I420 picture: ``data`` (uint8 buffer) with GStreamer's per-plane ``offsets`` and row
    ``strides`` (Y, U, V); the chroma planes are ceil(width / 2) x ceil(height / 2)."""

    data: np.ndarray
    width: int
    height: int
    offsets: tuple[int, int, int]
    strides: tuple[int, int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of the BGR image this stands for, (H, W, 3)."""
        return self.height, self.width, 3

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Y (H, W), U and V (ceil(H / 2), ceil(W / 2)) as strided views of ``data``."""
        cw, ch = (self.width + 1) // 2, (self.height + 1) // 2
        out = []
        for (w, h), offset, stride in zip(((self.width, self.height), (cw, ch), (cw, ch)), self.offsets, self.strides):
            plane = self.data[offset : offset + stride * (h - 1) + w]
            out.append(np.lib.stride_tricks.as_strided(plane, (h, w), (stride, 1), writeable=False))
        return out[0], out[1], out[2]

    def to_bgr(self) -> np.ndarray:
        """The whole picture as a C-contiguous BGR image."""
        w, h = self.width, self.height
        if (w % 2, h % 2) == (0, 0) and tuple(self.offsets) == (0, w * h, w * h * 5 // 4) \
                and tuple(self.strides) == (w, w // 2, w // 2):  # already packed as OpenCV wants it
            return cv2.cvtColor(self.data[: w * h * 3 // 2].reshape(h * 3 // 2, w), cv2.COLOR_YUV2BGR_I420)
        return _packed_to_bgr(self.planes(), (self.width, self.height), lambda src, dst: np.copyto(dst, src))

    def resized(self, size: tuple[int, int], dst: np.ndarray | None = None) -> np.ndarray:
        """The picture as BGR at ``size`` (width, height), like ``resize(self.to_bgr(), size)``: each plane is
        shrunk as ``resize`` does (chroma to half the size), then only the small picture is converted."""
        bgr = _packed_to_bgr(self.planes(), size, lambda src, out: resize(src, out.shape[::-1], dst=out))
        if dst is None:
            return bgr
        dst[...] = bgr
        return dst


def _packed_to_bgr(planes, size: tuple[int, int], fill) -> np.ndarray:
    """BGR (H, W, 3) from the planes, each written by ``fill(plane, dst view)`` into a packed I420 buffer of
    ``size`` (OpenCV wants one without padding, of even size: an odd last row/column is repeated, then cropped)."""
    w, h = size
    ew, eh = w + w % 2, h + h % 2
    cw, ch = ew // 2, eh // 2
    packed = np.empty(ew * eh * 3 // 2, np.uint8)
    y = packed[: ew * eh].reshape(eh, ew)
    fill(planes[0], y[:h, :w])
    y[:h, w:] = y[:h, w - 1 : w]  # edge repeat fills the even-size margin
    y[h:] = y[h - 1 : h]
    for k, plane in enumerate(planes[1:]):
        fill(plane, packed[ew * eh + k * cw * ch : ew * eh + (k + 1) * cw * ch].reshape(ch, cw))
    bgr = cv2.cvtColor(packed.reshape(eh * 3 // 2, ew), cv2.COLOR_YUV2BGR_I420)
    return bgr if (ew, eh) == (w, h) else np.ascontiguousarray(bgr[:h, :w])


def resize(image: np.ndarray | I420Image, size: tuple[int, int], dst: np.ndarray | None = None) -> np.ndarray:
    """``image`` (BGR, or I420 which comes out BGR) resized to ``size`` (width, height), into ``dst`` when given
    (a view of the right shape)."""
    if isinstance(image, I420Image):
        return image.resized(size, dst)
    w, h = size
    while image.shape[1] >= 2 * w and image.shape[0] >= 2 * h:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
    if dst is None:
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.resize(image, (w, h), dst=dst, interpolation=cv2.INTER_LINEAR)
    return dst
