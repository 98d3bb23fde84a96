"""JPEG snapshots for ``<prefix>/<id>/snapshot``: rate limited, size capped, raw or annotated, or none at all.

Dashboards draw skeletons themselves from the ``poses`` messages over the latest snapshot, so by default the
picture is the raw frame (``snapshot.annotate`` burns the skeletons in, for subscribers that only show images).
With ``snapshot.enabled`` off no picture ever leaves the device (privacy mode): the dashboard then draws the
skeletons on a blank canvas.

The run loop calls ``maybe_encode`` for every processed frame; it returns bytes only when a snapshot is due.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from edgepose.config import SnapshotConfig
from edgepose.draw import draw_poses
from edgepose.types import Frame, Poses

log = logging.getLogger(__name__)

# When the first encode is too big, quality drops to this before the picture is made smaller: detail matters
# more to a viewer than the last few quality points.
LOW_QUALITY = 40
MIN_WIDTH = 16  # below this the image is useless; give up instead
_MAX_TRIES = 8


def _imencode(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()


def encode_jpeg(image_bgr: np.ndarray, *, quality: int = 80, max_bytes: int | None = None) -> bytes | None:
    """JPEG of a BGR image, at most ``max_bytes`` long; None if even a tiny version would not fit.

    Too big: first re-encode at LOW_QUALITY (if quality was higher), then shrink (INTER_AREA) by the square root
    of the size ratio, since JPEG size grows with pixel count, until it fits.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    data = _imencode(image_bgr, quality)
    if max_bytes is None or len(data) <= max_bytes:
        return data
    if quality > LOW_QUALITY:
        quality = LOW_QUALITY
        data = _imencode(image_bgr, quality)
    h, w = image_bgr.shape[:2]
    scale = 1.0
    for _ in range(_MAX_TRIES):
        if len(data) <= max_bytes:
            return data
        # 0.9: the fixed header (~600 bytes) does not shrink with the picture, so aim a little lower.
        scale *= 0.9 * math.sqrt(max_bytes / len(data))
        size = (round(w * scale), round(h * scale))
        if size[0] < MIN_WIDTH or size[1] < 1:
            return None
        data = _imencode(cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA), quality)
    return data if len(data) <= max_bytes else None


class SnapshotEncoder:
    """Turns processed frames into the occasional snapshot JPEG for one source.

    ``maybe_encode(frame, poses, now_s)`` returns JPEG bytes at most once per ``config.interval_s`` (the first call
    always encodes, so a dashboard gets a picture right away) and None otherwise, or always when snapshots are
    disabled. now_s: a monotonic clock in seconds (``time.monotonic()``).
    """

    def __init__(self, config: SnapshotConfig | None = None, *, min_conf: float = 0.1):
        self.config = config or SnapshotConfig()
        self.min_conf = min_conf
        self._last_s: float | None = None
        self._warned = False

    def due(self, now_s: float) -> bool:
        """Whether the next call to ``maybe_encode`` at ``now_s`` would encode."""
        if not self.config.enabled:
            return False
        return self._last_s is None or now_s - self._last_s >= self.config.interval_s

    def maybe_encode(self, frame: Frame, poses: Poses | None, now_s: float) -> bytes | None:
        """The frame as a JPEG if a snapshot is due (skeletons drawn when ``annotate``), else None."""
        if not self.due(now_s):
            return None
        # Counted as taken even if it cannot be made small enough: retrying on every frame would only burn CPU.
        self._last_s = now_s
        image = frame.image
        if self.config.annotate and poses is not None and len(poses):
            image = draw_poses(image, poses, min_conf=self.min_conf)
        jpeg = encode_jpeg(image, quality=self.config.quality, max_bytes=self.config.max_bytes)
        if jpeg is None and not self._warned:
            self._warned = True
            log.warning(
                "snapshot of %dx%d px cannot fit snapshot.max_bytes=%d even at %d px wide; raise max_bytes",
                *frame.size, self.config.max_bytes, MIN_WIDTH,
            )
        return jpeg
