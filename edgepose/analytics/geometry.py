"""Plane geometry in frame-height units: x and y in pixels divided by the frame height, so distances are the same
in every direction whatever the aspect ratio (normalised config coordinates are not)."""

from __future__ import annotations

import math
from collections.abc import Sequence

Pt = tuple[float, float]


def to_height_units(points: Sequence[Sequence[float]], width: int, height: int) -> list[Pt]:
    """Normalised (0..1 of width, 0..1 of height) points -> frame-height units."""
    aspect = width / height
    return [(float(x) * aspect, float(y)) for x, y in points]


def inside_polygon(p: Pt, polygon: Sequence[Pt]) -> bool:
    """Even-odd ray casting; points on an edge may go either way (hysteresis makes that harmless)."""
    x, y = p
    inside = False
    n = len(polygon)
    for i in range(n):
        (x0, y0), (x1, y1) = polygon[i], polygon[(i + 1) % n]
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def distance_to_segment(p: Pt, a: Pt, b: Pt) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2))
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


def distance_to_boundary(p: Pt, polygon: Sequence[Pt]) -> float:
    n = len(polygon)
    return min(distance_to_segment(p, polygon[i], polygon[(i + 1) % n]) for i in range(n))


def line_position(p: Pt, a: Pt, b: Pt) -> tuple[float, float]:
    """(signed distance from the line a-b, positive on the right when walking a -> b in the picture; position
    along it, 0 at a and 1 at b). The picture's y axis points down, so "right" is the clockwise normal."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = math.hypot(dx, dy)
    rx, ry = p[0] - a[0], p[1] - a[1]
    return (ry * dx - rx * dy) / length, (rx * dx + ry * dy) / (length * length)
