"""What every capture backend shares: source specs, the FrameSource interface and the newest-frame slot.

No GStreamer or OpenCV here, so the service layer and the CLI can use these names without loading either.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

from edgepose.errors import SourceError
from edgepose.masking import mask
from edgepose.types import Frame

# The kinds of sources edgepose understands; each maps to a default pipeline template.
KINDS = ("camera", "file", "uri", "rtsp", "test")
LIVE_KINDS = frozenset({"camera", "rtsp", "test"})

_CAMERA_DEVICE = re.compile(r"^/dev/video(\d+)$")


@dataclass(frozen=True)
class SourceSpec:
    """Where frames come from.

    kind: one of ``KINDS``. location: ``/dev/videoN`` for a camera, an absolute path for a file, the URL for
    ``uri``/``rtsp``, ``""`` for the test pattern.
    """

    kind: str
    location: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"SourceSpec.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @property
    def dropped(self) -> int:
        """Frames the source produced that were dropped because the reader was busy."""
        return self._slot.dropped if self._slot is not None else 0

    @property
    def live(self) -> bool:
        """True for sources that produce frames at their own pace (frames not read in time are dropped)."""
        return self.kind in LIVE_KINDS

    @property
    def uri(self) -> str:
        """The location as a URI (files become ``file://`` URIs)."""
        if self.kind == "file":
            return Path(self.location).as_uri()
        return self.location

    @property
    def display(self) -> str:
        """A name for messages and logs: URLs lose their password, the test pattern gets a name."""
        if self.kind == "test":
            return "test pattern"
        if self.kind in ("uri", "rtsp"):
            return mask(self.location)
        return self.location


def camera_spec(index: int) -> SourceSpec:
    """The v4l2 camera ``/dev/video<index>`` (what ``--camera N`` means)."""
    if index < 0:
        raise SourceError(f"camera index must be 0 or more, got {index} — list cameras with `ls /dev/video*`")
    return SourceSpec("camera", f"/dev/video{index}")


def parse_source(text: str | int) -> SourceSpec:
    """Turn what a user typed into a ``SourceSpec``.

    Accepted: a camera index (``0`` or ``/dev/video0``), ``test`` (a generated test pattern), ``rtsp://`` /
    ``rtsps://`` URLs, ``http(s)://`` URLs, ``file://`` URIs and file paths. A file that does not exist raises
    ``SourceError`` here, before any pipeline is built. A file literally named ``test`` is ``./test``.
    """
    if isinstance(text, int):
        return camera_spec(text)
    text = str(text).strip()
    if not text:
        raise SourceError("empty source — give a file path, a URL, a camera index or `test`")
    if text == "test":
        return SourceSpec("test")
    if text.isdigit():
        return camera_spec(int(text))
    if _CAMERA_DEVICE.match(text):
        return SourceSpec("camera", text)
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("rtsp", "rtsps", "rtspt"):
        return SourceSpec("rtsp", text)
    if scheme in ("http", "https"):
        return SourceSpec("uri", text)
    if scheme == "file":
        return _file_spec(Path(unquote(urlsplit(text).path)))
    if "://" in text:
        raise SourceError(
            f"unsupported URL scheme {scheme!r} in {mask(text)} — use rtsp://, http(s):// or file://"
        )
    return _file_spec(Path(text).expanduser())


def _file_spec(path: Path) -> SourceSpec:
    if not path.exists():
        raise SourceError(f"no such video file: {path} — check the path")
    if not path.is_file():
        raise SourceError(f"{path} is not a file — give a video file (e.g. .mp4), a URL or a camera index")
    return SourceSpec("file", str(path.resolve()))


class LatestSlot:
    """A one-item mailbox that keeps only the newest item: the producer never waits, a replaced item is a drop.

    Live sources put every frame here from their own thread; the reader takes the newest one, so a slow
    consumer never works through a backlog of stale frames.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item = None
        self._closed = False
        self.put_count = 0  # items ever put (the index of the next item)
        self.dropped = 0  # items replaced before anyone took them

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = (self.put_count, item)
            self.put_count += 1
            self._cond.notify_all()

    def take(self, timeout: float):
        """``(sequence_number, item)`` of the newest item, or None after ``timeout`` s or once closed and empty."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            entry, self._item = self._item, None
            return entry

    def close(self) -> None:
        """Wake every waiting reader; the slot stays readable until empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class FrameSource(ABC):
    """An iterator of ``Frame``s from one source; also a context manager.

    Iteration ends cleanly at the end of a file/stream or after ``close()``; a broken source raises
    ``SourceError``. ``close()`` may be called from any thread, any number of times, and wakes a reader
    blocked in ``next()``.
    """

    def __init__(self, spec: SourceSpec, description: str, timeout: float) -> None:
        self.spec = spec
        self._description = description
        self._timeout = timeout
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        self._last_ns = 0
        self._last_media_ns = -1
        self._live = spec.live
        self._fps: float | None = None
        self._size: tuple[int, int] | None = None
        self._slot: LatestSlot | None = None  # set by subclasses that read in the background
        self._pending: Frame | None = None  # the first frame, read while opening

    # -- what subclasses provide -------------------------------------------------------------------------
    @abstractmethod
    def _read(self) -> Frame | None:
        """The next frame, or None at the end of the stream or once closed. Raises SourceError."""

    @abstractmethod
    def _release(self) -> None:
        """Stop the source and free it; called once, from whichever thread closes first."""

    # -- the interface -----------------------------------------------------------------------------------
    def __iter__(self) -> FrameSource:
        return self

    def __next__(self) -> Frame:
        if self._closed.is_set():
            raise StopIteration
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        frame = self._read()
        if frame is None:
            raise StopIteration
        return frame

    def close(self) -> None:
        """Stop capturing and release the device/file; idempotent and thread-safe."""
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self._release()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # A forgotten source must not keep a camera busy; errors during interpreter exit are irrelevant.
        try:
            self.close()
        except Exception:
            pass

    @property
    def dropped(self) -> int:
        """Frames the source produced that were dropped because the reader was busy."""
        return self._slot.dropped if self._slot is not None else 0

    @property
    def live(self) -> bool:
        """True when the source runs at its own pace (camera, RTSP, test pattern): late frames are dropped."""
        return self._live

    @property
    def fps(self) -> float | None:
        """Nominal frame rate, or None when the source does not declare one."""
        return self._fps

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of the frames, once known (after the first frame at the latest)."""
        return self._size

    @property
    def description(self) -> str:
        """What is running: the GStreamer pipeline string, or the OpenCV capture used (passwords masked)."""
        return mask(self._description)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.display!r} live={self.live} size={self.size} fps={self.fps}>"

    # -- helpers for subclasses --------------------------------------------------------------------------
    def _prime(self, start: Callable[[], None]) -> None:
        """Run ``start`` and read the first frame now, closing on any failure: a source that cannot give one
        frame fails when opened, not on the first next(), and ``size``/``fps`` are known from the start."""
        try:
            start()
            self._pending = self._read()
            if self._pending is None:
                raise SourceError(f"{self.spec.display} contains no video frames — check that it is a video")
        except BaseException:
            self.close()
            raise

    def _make_frame(self, image, index: int, monotonic_ns: int | None = None, wall_ns: int | None = None,
                    media_ns: int | None = None) -> Frame:
        """A Frame stamped now (or at the given capture time), with timestamps never going backwards; a file's
        frames also carry their presentation time where the backend gives one (``media_ns``, strictly increasing;
        None for live sources)."""
        mono = time.monotonic_ns() if monotonic_ns is None else monotonic_ns
        wall = time.time_ns() if wall_ns is None else wall_ns
        mono = max(mono, self._last_ns)
        self._last_ns = mono
        if self._live or media_ns is None:
            media_ns = None
        else:
            media_ns = max(int(media_ns), self._last_media_ns + 1)
            self._last_media_ns = media_ns
        if self._size is None:
            self._size = (int(image.shape[1]), int(image.shape[0]))
        return Frame(pixels=image, index=index, timestamp_ns=mono, wall_time_ns=wall, media_ns=media_ns)

    def _check_timeout(self, started: float) -> None:
        """Raise SourceError when no frame came for ``timeout`` seconds since ``started`` (monotonic s)."""
        waited = time.monotonic() - started
        if waited < self._timeout:
            return
        what = "camera" if self.spec.kind == "camera" else "stream" if self.live else "source"
        raise SourceError(
            f"no frame from {self.spec.display} for {waited:.1f} s — check that the {what} is running and "
            f"reachable (or raise the timeout)"
        )
