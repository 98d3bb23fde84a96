"""``--save out.mp4``: an annotated copy of what was processed, skeletons drawn on each frame."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgepose.errors import EdgeposeError
from edgepose.types import Poses


class AnnotatedVideo:
    """MP4 writer opened on the first frame (its size is known then); written to a temp name, renamed on close."""

    def __init__(self, path: str | Path, fps: float = 15.0):
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mkv"):
            raise EdgeposeError(f"--save {self.path}: use a .mp4, .avi or .mkv file name")
        if not self.path.parent.exists():
            raise EdgeposeError(f"--save {self.path}: folder {self.path.parent} does not exist")
        self.fps = fps
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer = None
        self.frames = 0

    def write(self, image: np.ndarray, poses: Poses) -> None:
        import cv2

        from edgepose.draw import draw_poses

        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
            self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (image.shape[1], image.shape[0]))
            if not self._writer.isOpened():
                raise EdgeposeError(f"cannot write video {self.path} (codec not available)")
        self._writer.write(draw_poses(image, poses))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)

    def __enter__(self) -> AnnotatedVideo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
