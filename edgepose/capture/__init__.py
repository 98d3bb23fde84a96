"""Capture: turn a camera, file, URL, RTSP stream or test pattern into an iterator of ``Frame``s.

    with open_source(parse_source("video.mp4")) as source:
        for frame in source:          # Frame(pixels: I420 or BGR as decoded, .image: BGR uint8, index, ...)
            ...

GStreamer (PyGObject + appsink) does the work; when it is not installed, OpenCV's VideoCapture takes over
with a one-line warning. Launch templates for cameras, RTSP, files, Jetson and Intel VA-API live in
``edgepose/capture/pipelines/`` (``list_templates()``; the repository's ``pipelines/`` links there).
"""

from __future__ import annotations

import logging

from edgepose.capture.source import KINDS, FrameSource, LatestSlot, SourceSpec, camera_spec, parse_source
from edgepose.capture.templates import DEFAULT_TEMPLATE, Template, build_pipeline, list_templates, load_template
from edgepose.errors import SourceError

__all__ = [
    "BACKENDS",
    "DEFAULT_TEMPLATE",
    "KINDS",
    "FrameSource",
    "LatestSlot",
    "SourceSpec",
    "Template",
    "build_pipeline",
    "camera_spec",
    "gstreamer_available",
    "list_templates",
    "load_template",
    "open_source",
    "parse_source",
]

BACKENDS = ("auto", "gstreamer", "opencv")
log = logging.getLogger(__name__)


def gstreamer_available() -> tuple[bool, str]:
    """(True, "") when PyGObject and GStreamer load, else (False, why)."""
    try:
        import edgepose.capture.gstreamer  # noqa: F401
    except (ImportError, ValueError) as exc:  # ValueError: gi is there but a GStreamer typelib is missing
        return False, str(exc)
    return True, ""


def open_source(
    spec: SourceSpec | str | int,
    *,
    realtime: bool = False,
    loop: bool = False,
    pipeline: str | None = None,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    backend: str = "auto",
    latency_ms: int | None = None,
    timeout: float = 10.0,
) -> FrameSource:
    """Open a source and return its ``FrameSource`` (already delivering: the first frame has arrived).

    spec: a ``SourceSpec`` or anything ``parse_source`` accepts. realtime: read a file at its own frame rate,
        dropping frames the consumer is too slow for (live sources always do). loop: start a file again at
        its end, indices counting on (demo sites, soak tests; GStreamer only). pipeline: a template name,
        a ``.pipeline`` file or a custom gst-launch string (GStreamer only). width/height/fps: the size and
        rate to deliver. backend: "auto" (GStreamer, else OpenCV with a warning), "gstreamer" or "opencv".
        latency_ms: RTSP jitter buffer. timeout: seconds without a frame before a ``SourceError``.
    Raises ``SourceError`` when the source cannot be opened or read.
    """
    if not isinstance(spec, SourceSpec):
        spec = parse_source(spec)
    if backend not in BACKENDS:
        raise SourceError(f"unknown capture backend {backend!r} — use one of {', '.join(BACKENDS)}")
    if timeout <= 0:
        raise SourceError(f"timeout must be positive, got {timeout}")
    if loop and spec.live:
        raise SourceError(f"{spec.display} is live; --loop only applies to video files")
    if backend != "opencv":
        ok, why = gstreamer_available()
        if ok:
            from edgepose.capture.gstreamer import GstFrameSource

            description = build_pipeline(spec, pipeline, width=width, height=height, fps=fps, latency_ms=latency_ms)
            source = GstFrameSource(spec, description, realtime=realtime, timeout=timeout, loop=loop)
            log.debug("capture pipeline: %s", source.description)
            return source
        if backend == "gstreamer":
            raise SourceError(f"GStreamer is not available ({why}) — run `make install`, or use the OpenCV backend")
        log.warning("GStreamer (PyGObject) is not available (%s); capturing with OpenCV instead", why)
    if pipeline is not None or loop:
        option = "--pipeline" if pipeline is not None else "--loop"
        raise SourceError(f"{option} needs GStreamer, which is not in use — install PyGObject or drop {option}")
    from edgepose.capture.opencv import CvFrameSource

    return CvFrameSource(spec, realtime=realtime, width=width, height=height, fps=fps, timeout=timeout)
