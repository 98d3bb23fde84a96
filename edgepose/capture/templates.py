"""GStreamer launch templates: find them, fill their placeholders, append the appsink tail.

Templates are ``*.pipeline`` files inside the package (``edgepose/capture/pipelines/``), shipped as package
data so an installed edgepose finds them exactly like a source checkout; the repository's top-level
``pipelines/`` is a symlink to that folder. Pure string work: nothing here imports GStreamer, so the
pipeline a source would run can be built and checked on any machine.

Template file format::

    # <name>: one-line summary shown by list_templates()
    # more comment lines (what it needs, when to pick it)
    # defaults: width=640 height=480 fps=30
    v4l2src device={device} ! video/x-raw,width={width},height={height},framerate={fps}

Placeholders: ``{device}`` (``/dev/videoN``), ``{index}`` (N), ``{location}`` (quoted file path), ``{uri}``
(quoted URI/URL), ``{latency}`` (RTSP jitter buffer, ms), ``{width}``, ``{height}``, ``{fps}`` (a GStreamer
fraction such as ``30/1``). Values the user does not give come from the ``# defaults:`` line. Every template
ends with decoded video; ``APPSINK_TAIL`` scales/thins it and ends in ``appsink name=sink``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from edgepose.capture.source import SourceSpec
from edgepose.errors import SourceError

PIPELINES_DIR = Path(__file__).resolve().parent / "pipelines"
SUFFIX = ".pipeline"

# Which template each kind of source uses when the user names none.
DEFAULT_TEMPLATE = {"camera": "v4l2-raw", "file": "file", "uri": "uri", "rtsp": "rtsp", "test": "test"}
DEFAULT_LATENCY_MS = 200

# Appended to every template (and to custom strings without an appsink): whatever the template decodes is
# scaled and thinned to the requested size/rate. The capture code sets appsink's caps (I420, which frames carry
# as decoded, or BGR) and its other properties.
APPSINK_TAIL = "{rate}videoconvert n-threads=0 ! {scale}appsink name=sink"

_PLACEHOLDER = re.compile(r"\{(\w+)\}")  # `{ NV12, I420 }` caps lists contain spaces and are left alone
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Template:
    """One launch template: ``name``, one-line ``summary``, ``defaults`` for placeholders, the ``body``."""

    name: str
    summary: str
    body: str
    defaults: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_text(cls, name: str, text: str, path: Path | None = None) -> Template:
        """Parse a template file's text (comment header, optional ``# defaults:`` line, gst-launch body)."""
        comments, body = [], []
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                comments.append(stripped.lstrip("#").strip())
            elif stripped:
                body.append(stripped)
        if not body:
            raise SourceError(f"pipeline template {name} ({path}) has no pipeline line — add one below the comments")
        defaults: dict[str, str] = {}
        for comment in comments:
            if comment.lower().startswith("defaults:"):
                for item in comment.split(":", 1)[1].split():
                    key, sep, value = item.partition("=")
                    if not sep:
                        raise SourceError(f"pipeline template {name}: bad default {item!r} — write key=value")
                    defaults[key] = value
        summary = comments[0].split(":", 1)[-1].strip() if comments else ""
        return cls(name=name, summary=summary, body=" ".join(body), defaults=defaults, path=path)

    @property
    def placeholders(self) -> list[str]:
        return sorted(set(_PLACEHOLDER.findall(self.body)))


def list_templates() -> list[Template]:
    """Every template shipped with edgepose, sorted by name."""
    return [load_template(p.stem) for p in sorted(PIPELINES_DIR.glob("*" + SUFFIX))]


def load_template(name: str) -> Template:
    """The shipped template ``name``, or a template file given by its path (ending in ``.pipeline``)."""
    path = Path(name).expanduser() if name.endswith(SUFFIX) else PIPELINES_DIR / f"{name}{SUFFIX}"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(PIPELINES_DIR.glob("*" + SUFFIX)))
        raise SourceError(f"unknown pipeline template {name!r} — use one of: {known}, or a gst-launch string")
    return Template.from_text(path.stem, path.read_text(encoding="utf-8"), path)


def gst_fraction(fps: float) -> str:
    """A frame rate as a GStreamer fraction: 30 -> ``30/1``, 29.97 -> ``2997/100``."""
    if fps <= 0:
        raise SourceError(f"fps must be positive, got {fps} — pass e.g. --fps 15")
    frac = Fraction(fps).limit_denominator(1001)
    return f"{frac.numerator}/{frac.denominator}"


def quote(value: str) -> str:
    """A string property value quoted for gst-launch syntax (paths and URLs may hold spaces or '!')."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_pipeline(
    spec: SourceSpec,
    pipeline: str | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    latency_ms: int | None = None,
) -> str:
    """The full gst-launch string a GStreamer source runs for ``spec``.

    ``pipeline``: None (the default template for the source's kind), a template name, a path to a
    ``.pipeline`` file, or a custom gst-launch string. A custom string may use the same placeholders; without
    ``appsink name=sink`` the appsink tail is appended. ``width``/``height`` (both or neither) and ``fps`` are
    passed to the template and also enforced by the tail (scaling / dropping frames), so a file can be
    read smaller or slower than it was recorded.
    """
    if (width is None) != (height is None):
        raise SourceError("give both width and height (or neither) — e.g. --width 640 --height 480")
    for label, value in (("width", width), ("height", height)):
        if value is not None and value <= 0:
            raise SourceError(f"{label} must be positive, got {value}")
    name = pipeline if pipeline is not None else DEFAULT_TEMPLATE[spec.kind]
    custom = bool(re.search(r"\s|!", name)) and not name.endswith(SUFFIX)
    template = Template("custom", "a custom pipeline", name.strip()) if custom else load_template(name)

    values = dict(template.defaults)
    values.update(
        device=spec.location if spec.kind == "camera" else "/dev/video0",
        index=spec.location.removeprefix("/dev/video") if spec.kind == "camera" else "0",
        location=quote(spec.location),
        uri=quote(spec.uri),
    )
    values.setdefault("latency", str(DEFAULT_LATENCY_MS))
    if latency_ms is not None:
        values["latency"] = str(int(latency_ms))
    if width is not None:
        values.update(width=str(width), height=str(height))
    if fps is not None:
        values["fps"] = gst_fraction(fps)
    elif "fps" in values:
        values["fps"] = gst_fraction(float(Fraction(values["fps"])))

    missing = [key for key in template.placeholders if key not in values]
    if missing:
        raise SourceError(
            f"pipeline {template.name} uses {', '.join('{' + k + '}' for k in missing)} with no value — "
            f"pass the option (e.g. --width/--height/--fps) or add a '# defaults:' line"
        )
    body = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template.body)
    if re.search(r"\bappsink\b[^!]*\bname=sink\b", body):
        return body
    tail = APPSINK_TAIL.format(
        rate=f"videorate max-rate={max(1, round(fps))} ! " if fps is not None else "",
        scale=f"videoscale ! video/x-raw,width={width},height={height} ! " if width is not None else "",
    )
    return f"{body} ! {tail}"
