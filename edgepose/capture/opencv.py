"""OpenCV capture (cv2.VideoCapture): the fallback when PyGObject/GStreamer is not installed.

Same contract as the GStreamer source: files are read frame by frame without drops; live sources (and files
read with ``realtime=True``) are read by a background thread into a ``LatestSlot`` so the consumer gets the
newest frame and missed frames are counted. Files and URLs go through OpenCV's FFmpeg backend, cameras
through V4L2. Custom pipelines and the test pattern need GStreamer.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np

from edgepose.capture.source import FrameSource, LatestSlot, SourceSpec
from edgepose.errors import SourceError
from edgepose.resize import resize
from edgepose.types import Frame

_POLL_S = 0.1


class CvFrameSource(FrameSource):
    """Frames from ``cv2.VideoCapture``; see ``edgepose.capture.open_source`` for the arguments."""

    def __init__(
        self,
        spec: SourceSpec,
        *,
        realtime: bool = False,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        timeout: float = 10.0,
    ):
        if spec.kind == "test":
            raise SourceError(
                "the test pattern needs GStreamer (PyGObject) — run `make install`, or use a video file"
            )
        if (width is None) != (height is None):
            raise SourceError("give both width and height (or neither) — e.g. --width 640 --height 480")
        if fps is not None and fps <= 0:
            raise SourceError(f"fps must be positive, got {fps} — pass e.g. --fps 15")
        camera = spec.kind == "camera"
        target = int(spec.location.removeprefix("/dev/video")) if camera else spec.location
        api = cv2.CAP_V4L2 if camera else cv2.CAP_FFMPEG
        super().__init__(spec, f"OpenCV VideoCapture({target!r}, {'CAP_V4L2' if camera else 'CAP_FFMPEG'})", timeout)
        self._cap = cv2.VideoCapture(target, api)
        self._lock = threading.Lock()  # VideoCapture is not thread-safe: read and release never overlap
        self._resize = (width, height) if width is not None else None
        self._min_period = 1.0 / fps if fps is not None else 0.0
        self._next_due = 0.0
        self._count = 0
        self._error: SourceError | None = None
        self._ended = False
        self._thread: threading.Thread | None = None
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(_open_error(spec))
        if camera and width is not None:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if camera and fps is not None:
            self._cap.set(cv2.CAP_PROP_FPS, fps)
        nominal = self._cap.get(cv2.CAP_PROP_FPS)
        self._fps = float(nominal) if nominal and nominal > 0 else None
        if fps is not None and (self._fps is None or fps < self._fps):
            self._fps = float(fps)
        if spec.live or realtime:
            self._slot = LatestSlot()
            self._thread = threading.Thread(target=self._grab_loop, name="edgepose-cv-capture", daemon=True)
        self._prime(self._thread.start if self._thread is not None else lambda: None)

    def _next_image(self) -> tuple[np.ndarray, float] | None:
        """The next frame the rate limit keeps and its stream time in s; None at the end."""
        while True:
            with self._lock:
                ok, image = (False, None) if self.closed else self._cap.read()
                stream_s = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if ok and not self.spec.live else None
            if not ok:
                return None
            t = time.monotonic() if stream_s is None else stream_s
            if t + 1e-6 >= self._next_due:  # keep at most one frame per 1/fps (fps=None keeps all)
                self._next_due = max(self._next_due + self._min_period, t)
                if self._resize is not None and image.shape[1::-1] != self._resize:
                    image = resize(image, self._resize)
                return np.ascontiguousarray(image), t

    def _grab_loop(self) -> None:
        """Background reader for live sources and real-time files: newest frame into the slot."""
        started = time.monotonic()
        try:
            while not self.closed:
                got = self._next_image()
                if got is None:
                    break
                image, t = got
                if not self.spec.live:  # a file in real time: wait until this frame is due
                    time.sleep(max(0.0, started + t - time.monotonic()))
                self._slot.put((image, time.monotonic_ns(), time.time_ns()))
        except cv2.error as exc:
            self._error = SourceError(f"cannot read {self.spec.display}: {exc} — check the source")
        finally:
            self._ended = True
            self._slot.close()
            self._cap.release()  # this thread owns the capture; close() may not wait for a stalled read

    def _read(self) -> Frame | None:
        if self._slot is None:
            got = self._next_image()
            if got is None:
                return None
            self._count += 1
            return self._make_frame(got[0], self._count - 1)
        started = time.monotonic()
        while not self.closed:
            entry = self._slot.take(_POLL_S)
            if entry is not None:
                index, (image, mono, wall) = entry
                return self._make_frame(image, index, mono, wall)
            if self._error is not None:
                raise self._error
            if self._ended:
                return None
            self._check_timeout(started)
        return None

    def _release(self) -> None:
        if self._thread is None:
            with self._lock:
                self._cap.release()
            return
        self._slot.close()
        if self._thread is not threading.current_thread():
            # The thread leaves (and releases the capture) after its current read; a stalled stream may
            # keep it inside FFmpeg longer, so do not wait forever.
            self._thread.join(timeout=2.0)


def _open_error(spec: SourceSpec) -> str:
    what = spec.display
    if spec.kind == "camera":
        return f"cannot open camera {what} — list cameras with `ls /dev/video*` and check no other program uses it"
    if spec.kind == "rtsp":
        return f"cannot reach RTSP stream {what} — check the address, port and credentials and that the camera is on"
    if spec.kind == "uri":
        return f"cannot read {what} — check the URL and the network"
    return f"cannot decode {what} — it is not a video OpenCV's FFmpeg can read"
