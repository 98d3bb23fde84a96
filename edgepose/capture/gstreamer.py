"""GStreamer capture through PyGObject and appsink, without a GLib main loop.

Files are pulled frame by frame (``try_pull_sample``), so none is lost and decoding runs only as fast as the
consumer reads. Live sources (and files read with ``realtime=True``) hand every new sample to a one-item
``LatestSlot`` from the streaming thread: the reader always gets the newest frame and every frame it never
took is counted in ``dropped``. Bus errors are polled between samples and become one-line ``SourceError``s.
"""

from __future__ import annotations

import ctypes
import logging
import time

import numpy as np

# OpenVINO loaded after GStreamer can SIGABRT on its first C++ exception unless libgcc_s is global first.
try:
    ctypes.CDLL("libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)
except OSError:  # not a glibc system; the workaround is not needed there
    pass

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstApp, GstVideo  # noqa: E402

from edgepose.capture.source import FrameSource, LatestSlot, SourceSpec  # noqa: E402
from edgepose.errors import SourceError  # noqa: E402
from edgepose.resize import I420Image  # noqa: E402
from edgepose.types import Frame  # noqa: E402

Gst.init(None)
log = logging.getLogger(__name__)

# What appsink accepts. Decoders output I420, which frames carry on unconverted (``I420Image``): inference shrinks
# the planes before converting, and OpenCV's SIMD code converts a whole frame about twice as fast as
# videoconvert's I420->BGR (benchmarks/capture.py) where one is needed. videoconvert still picks BGR for RGB-family
# input (e.g. Jetson's BGRx), where a repack is cheaper than a round trip through YUV.
SINK_CAPS = "video/x-raw,format=I420; video/x-raw,format=BGR"
_POLL_S = 0.1  # how often a waiting reader looks at the bus and at close()
_FILE_QUEUE = 4  # decoded frames appsink may hold ahead of a file reader (decode overlaps consumption)
_BUS_TYPES = Gst.MessageType.ERROR | Gst.MessageType.EOS | Gst.MessageType.WARNING
_DECODE_ERRORS = (
    (Gst.StreamError, ("TYPE_NOT_FOUND", "WRONG_TYPE", "CODEC_NOT_FOUND", "DECODE", "DEMUX", "FORMAT")),
    (Gst.CoreError, ("MISSING_PLUGIN",)),
)
_OPEN_ERRORS = ("OPEN_READ", "OPEN_READ_WRITE", "OPEN_WRITE", "READ", "BUSY", "SETTINGS", "FAILED")


class GstFrameSource(FrameSource):
    """Frames from a gst-launch pipeline ending in ``appsink name=sink`` (see ``templates.build_pipeline``)."""

    def __init__(self, spec: SourceSpec, description: str, *, realtime: bool = False, timeout: float = 10.0,
                 loop: bool = False):
        super().__init__(spec, description, timeout)
        self._loop = loop
        self._media_offset = 0  # added to presentation times so a looped file's timeline keeps going forward
        self._first_pts: int | None = None  # a file's first frame need not be at 0 (edit lists, B-frames)
        self._eos = False
        self._pulled = 0
        self._caps = None
        self._info: GstVideo.VideoInfo | None = None
        self._handler = None
        try:
            self._pipeline = Gst.parse_launch(description)
        except GLib.Error as exc:
            raise SourceError(_parse_error_message(spec, exc)) from None
        sink = self._pipeline.get_by_name("sink") if isinstance(self._pipeline, Gst.Bin) else None
        if not isinstance(sink, GstApp.AppSink):
            raise SourceError(
                "the pipeline has no `appsink name=sink` — end a custom pipeline with it (delivering I420 or BGR), "
                "or leave it out"
            )
        self._sink = sink
        self._bus = self._pipeline.get_bus()
        self._prime(lambda: self._start(realtime))

    def _start(self, realtime: bool) -> None:
        sink = self._sink
        sink.set_property("caps", Gst.Caps.from_string(SINK_CAPS))
        ret = self._pipeline.set_state(Gst.State.PAUSED)
        self._fail_if(ret)
        # NO_PREROLL is GStreamer's own word that the pipeline is live; it also covers custom pipelines.
        self._live = ret == Gst.StateChangeReturn.NO_PREROLL
        if self._live or realtime:
            sink.set_property("sync", not self._live)  # a file in real time is paced by the clock
            sink.set_property("drop", True)
            sink.set_property("max-buffers", 1)
            sink.set_property("emit-signals", True)
            self._slot = LatestSlot()
            self._handler = sink.connect("new-sample", self._on_new_sample)
        else:
            sink.set_property("sync", False)
            sink.set_property("drop", False)
            sink.set_property("max-buffers", _FILE_QUEUE)
        self._fail_if(self._pipeline.set_state(Gst.State.PLAYING))

    def _fail_if(self, ret: Gst.StateChangeReturn) -> None:
        if ret == Gst.StateChangeReturn.FAILURE:
            self._poll_bus()
            raise SourceError(f"cannot start {self.spec.display} — run with --debug for GStreamer's details")

    def _on_new_sample(self, sink: GstApp.AppSink) -> Gst.FlowReturn:
        # Streaming thread: stamp the capture time now and leave the copy to the reader.
        sample = sink.try_pull_sample(0)
        if sample is not None:
            self._slot.put((sample, time.monotonic_ns(), time.time_ns()))
        return Gst.FlowReturn.OK

    def _read(self) -> Frame | None:
        started = time.monotonic()
        while not self._closed.is_set():
            got = self._take(_POLL_S)
            if got is not None:
                return self._frame(*got)
            self._poll_bus()
            if self._eos:
                got = self._take(0)  # a last frame may have landed between the wait and the EOS
                if got is not None:
                    return self._frame(*got)
                if self._loop and self._rewind():
                    started = time.monotonic()
                    continue
                return None
            self._check_timeout(started)
        return None

    def _rewind(self) -> bool:
        """Seek a finished file back to its start (``loop``); frame indices keep counting up."""
        self._eos = False
        self._media_offset = self._last_media_ns + round(1e9 / (self._fps or 30.0)) - (self._first_pts or 0)
        flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT
        return bool(self._pipeline.seek_simple(Gst.Format.TIME, flags, 0))

    def _take(self, wait_s: float) -> tuple | None:
        """(sample, index, capture monotonic ns or None, wall ns or None) if one comes within ``wait_s``."""
        if self._slot is not None:
            entry = self._slot.take(wait_s)
            if entry is None:
                return None
            index, (sample, mono, wall) = entry
            return sample, index, mono, wall
        sample = self._sink.try_pull_sample(int(wait_s * Gst.SECOND))
        if sample is None:
            self._eos = self._eos or self._sink.is_eos()
            return None
        self._pulled += 1
        return sample, self._pulled - 1, None, None

    def _poll_bus(self) -> None:
        """Raise the first pipeline error as a SourceError; note EOS; discard everything else."""
        while (msg := self._bus.pop_filtered(_BUS_TYPES)) is not None:
            if msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                log.debug("GStreamer error from %s: %s (%s)", msg.src.get_name(), err.message, debug)
                raise SourceError(_error_message(self.spec, err, debug or ""))
            if msg.type == Gst.MessageType.WARNING:
                warn, debug = msg.parse_warning()
                log.debug("GStreamer warning from %s: %s (%s)", msg.src.get_name(), warn.message, debug)
            else:
                self._eos = True

    def _frame(self, sample: Gst.Sample, index: int, mono: int | None = None, wall: int | None = None) -> Frame:
        caps = sample.get_caps()
        if self._caps is None or not caps.is_equal(self._caps):
            self._caps, self._info = caps, _video_info(caps)
            info = self._info
            self._fps = info.fps_n / info.fps_d if info.fps_n > 0 and info.fps_d > 0 else None
            self._size = (info.width, info.height)
        info = self._info
        buffer = sample.get_buffer()
        data = np.frombuffer(buffer.extract_dup(0, buffer.get_size()), np.uint8)
        if data.size < info.size:
            raise SourceError(f"{self.spec.display} delivered a truncated frame — check the custom pipeline's caps")
        if info.finfo.format == GstVideo.VideoFormat.I420:
            image = I420Image(data, info.width, info.height, tuple(info.offset[:3]), tuple(info.stride[:3]))
        else:
            # Rows may be padded to a multiple of 4 bytes (e.g. width 482 BGR -> stride 1448): drop the padding.
            rows = data[: info.stride[0] * info.height].reshape(info.height, info.stride[0])[:, : info.width * 3]
            image = rows.reshape(info.height, info.width, 3).copy(order="C")
        pts = buffer.pts
        media = None
        if pts != Gst.CLOCK_TIME_NONE:
            self._first_pts = pts if self._first_pts is None else self._first_pts
            media = self._media_offset + pts
        return self._make_frame(image, index, mono, wall, media)

    def _release(self) -> None:
        if self._slot is not None:
            self._slot.close()
        if self._handler is not None:
            self._sink.disconnect(self._handler)
            self._handler = None
        if getattr(self, "_pipeline", None) is not None:
            self._pipeline.set_state(Gst.State.NULL)


def _video_info(caps: Gst.Caps) -> GstVideo.VideoInfo:
    if hasattr(GstVideo.VideoInfo, "new_from_caps"):  # GStreamer >= 1.20
        return GstVideo.VideoInfo.new_from_caps(caps)
    info = GstVideo.VideoInfo()  # GStreamer 1.16/1.18, e.g. JetPack 5 (Ubuntu 20.04)
    info.from_caps(caps)
    return info


def _matches(err: GLib.Error, domain, names) -> bool:
    return any(err.matches(domain.quark(), getattr(domain, name)) for name in names)


# What to check, per kind of source, when it cannot be read.
_HINTS = {
    "camera": "make sure no other program uses it and that this user may access it (group 'video')",
    "rtsp": "check the address, port and credentials and that the camera is on",
    "uri": "check the URL, the network and that the server is up",
    "file": "check the file's permissions",
    "test": "check the pipeline",
}


def _error_message(spec: SourceSpec, err: GLib.Error, debug: str) -> str:
    """One line saying what went wrong with ``spec`` and what the user can do about it."""
    what, kind = spec.display, spec.kind
    if _matches(err, Gst.ResourceError, ("NOT_FOUND",)):
        return {
            "camera": f"camera {what} not found — list cameras with `ls /dev/video*` and pick an existing --camera N",
            "file": f"no such video file: {what} — check the path",
        }.get(kind, f"{what} not found — check the URL's host, port and path")
    if _matches(err, Gst.ResourceError, ("NOT_AUTHORIZED",)):
        return f"{what} refused the credentials — put the right user:password@ in the URL"
    if _matches(err, Gst.ResourceError, _OPEN_ERRORS):
        return f"cannot open {what}: {err.message} — {_HINTS[kind]}"
    if any(_matches(err, domain, names) for domain, names in _DECODE_ERRORS):
        return (
            f"cannot decode {what}: {err.message} — it is not a video GStreamer can read, or the decoder is not "
            f"installed (gstreamer1.0-libav, gstreamer1.0-plugins-bad/-ugly)"
        )
    if "not-negotiated" in debug:
        return (
            f"{what} cannot deliver the requested video format — try other --width/--height/--fps or another "
            f"--pipeline (e.g. v4l2-mjpeg for cameras)"
        )
    return f"cannot read {what}: {err.message} — {_HINTS[kind]}; --debug shows GStreamer's details"


def _parse_error_message(spec: SourceSpec, err: GLib.Error) -> str:
    if err.matches(Gst.parse_error_quark(), Gst.ParseError.NO_SUCH_ELEMENT):
        return (
            f"cannot build the pipeline for {spec.display}: {err.message} — install the GStreamer plugin that "
            f"provides it (`gst-inspect-1.0 NAME` checks) or choose another --pipeline"
        )
    return f"invalid pipeline for {spec.display}: {err.message} — check the gst-launch syntax"
