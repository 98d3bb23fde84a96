"""The rules, evaluated per track on every frame; see docs/analytics.md for what each does and how to tune it.

Time: ``now_ns`` (a monotonic clock, the frame's capture time) measures durations; ``wall_ns`` stamps events.
Coordinates: poses in frame pixels; zones and lines are normalised in the config and converted per frame size.
A track keeps its zone memberships while the tracker still holds it (it may miss a frame or two); the ids in
``left`` end them. Tracks with id -1 (not confirmed yet) are ignored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgepose.analytics import geometry
from edgepose.analytics.pose import HEIGHT_PER_TORSO, body_point, hands_above_head, torso
from edgepose.config import LineConfig, RulesConfig, ZoneConfig
from edgepose.types import Poses

# A condition that flickers off for less than this (a missed joint, a noisy frame) still counts as held.
GRACE_S = 0.5
# The fall rule re-arms once a person has been up again this long.
REARM_S = 1.0
# Torso lengths are remembered this long: the body height of a person who tilts towards the camera is the
# longest torso seen lately, not the foreshortened one.
SCALE_MEMORY_S = 3.0
# A track that neither shows up nor is reported as left for this long is forgotten (callers without a tracker).
STALE_S = 30.0

EVENT_TYPES = ("zone_entered", "zone_left", "dwell", "crowd", "crowd_ended", "line_crossed", "fall", "hands_up")


@dataclass(frozen=True)
class Event:
    """One thing that happened. Times are wall-clock ns; ``pose`` is the person at that moment (frame pixels).

    type: one of EVENT_TYPES; rule: zone, dwell, crowd, line, fall or hands_up.
    start_ns: when the condition began (entered the zone, the hips started to drop, hands went up).
    end_ns: when it ended, for events that close something (zone_left, crowd_ended); None otherwise.
    count: people in the zone after the event (zone and crowd events).
    """

    type: str
    rule: str
    track_id: int | None
    start_ns: int
    end_ns: int | None
    confidence: float
    zone: str | None = None
    line: str | None = None
    direction: str | None = None
    count: int | None = None
    pose: Poses | None = None


@dataclass
class _Stamp:
    now_ns: int
    wall_ns: int


class _Held:
    """A condition that must hold for a while, tolerating short dropouts (GRACE_S)."""

    __slots__ = ("since", "last_true")

    def __init__(self):
        self.since: _Stamp | None = None
        self.last_true = 0

    def update(self, true: bool, stamp: _Stamp) -> float:
        """Seconds the condition has held (0 when it does not)."""
        if true:
            if self.since is None:
                self.since = stamp
            self.last_true = stamp.now_ns
        elif self.since is not None and (stamp.now_ns - self.last_true) / 1e9 > GRACE_S:
            self.since = None
        return 0.0 if self.since is None else (stamp.now_ns - self.since.now_ns) / 1e9


@dataclass
class _Track:
    last_seen_ns: int
    zones: dict[str, _Stamp] = field(default_factory=dict)  # zone -> inside since
    dwelt: set[str] = field(default_factory=set)
    sides: dict[str, int] = field(default_factory=dict)  # line -> last side the point was clearly on (+1 right)
    history: deque = field(default_factory=deque)  # (now_ns, wall_ns, hip_y, torso length) for falls
    drop: _Stamp | None = None  # when the last fast drop of the hips began
    lying: _Held = field(default_factory=_Held)
    upright: _Held = field(default_factory=_Held)
    fallen: bool = False
    hands: _Held = field(default_factory=_Held)
    hands_fired: bool = False


class Analytics:
    """Zones, lines and pose rules of one source. Not thread-safe: one per source worker."""

    def __init__(self, zones: Sequence[ZoneConfig] = (), lines: Sequence[LineConfig] = (),
                 rules: RulesConfig | None = None):
        self.zones = list(zones)
        self.lines = list(lines)
        self.rules = rules or RulesConfig()
        self._tracks: dict[int, _Track] = {}
        self._size: tuple[int, int] | None = None
        self._crowd_since: dict[str, _Stamp] = {}
        self._line_counts = {line.name: {"in": 0, "out": 0} for line in self.lines}
        self._event_counts = dict.fromkeys(EVENT_TYPES, 0)

    @property
    def enabled(self) -> bool:
        """Anything to evaluate at all (otherwise the service skips this stage)."""
        return bool(self.zones or self.lines or self.rules.fall.enabled or self.rules.hands_up.enabled)

    def _geometry(self, size: tuple[int, int]) -> None:
        if size == self._size:
            return
        w, h = size
        self._size = size
        self._polygons = [geometry.to_height_units(z.polygon, w, h) for z in self.zones]
        self._segments = [geometry.to_height_units(line.points, w, h) for line in self.lines]

    def update(self, poses: Poses, frame_size: tuple[int, int], now_ns: int, wall_ns: int,
               left: Iterable[int] = ()) -> list[Event]:
        """Evaluate every rule on one frame's tracked people; return the events it produced, in order."""
        self._geometry(frame_size)
        stamp = _Stamp(int(now_ns), int(wall_ns))
        height = float(frame_size[1])
        events: list[Event] = []
        thr = self.rules.joint_threshold
        for i in np.flatnonzero(poses.track_id >= 0):
            tid = int(poses.track_id[i])
            track = self._tracks.get(tid)
            if track is None:
                track = self._tracks[tid] = _Track(stamp.now_ns)
            track.last_seen_ns = stamp.now_ns
            xy, conf = poses.xy[i], poses.conf[i]
            person = poses[int(i)]
            for zi, zone in enumerate(self.zones):
                found = body_point(xy, conf, zone.point, thr)
                if found is not None:
                    self._zone(track, tid, zone, self._polygons[zi], found[0] / height, found[1], stamp, person,
                               events)
                self._dwell(track, tid, zone, stamp, person, events)
            for li, line in enumerate(self.lines):
                found = body_point(xy, conf, line.point, thr)
                if found is not None:
                    self._line(track, tid, line, self._segments[li], found[0] / height, found[1], stamp, person,
                               events)
            if self.rules.fall.enabled:
                self._fall(track, tid, xy, conf, stamp, person, events)
            if self.rules.hands_up.enabled:
                self._hands_up(track, tid, xy, conf, stamp, person, events)
        gone = set(left) | {t for t, s in self._tracks.items() if (stamp.now_ns - s.last_seen_ns) / 1e9 > STALE_S}
        for tid in sorted(gone):
            track = self._tracks.pop(tid, None)
            if track is not None:
                for name in list(track.zones):
                    self._leave(track, tid, name, stamp, None, 1.0, events)
        self._crowds(stamp, events)
        for event in events:
            self._event_counts[event.type] += 1
        return events

    # zones ----------------------------------------------------------------------------------------------
    def _count(self, name: str) -> int:
        return sum(name in t.zones for t in self._tracks.values())

    def _zone(self, track, tid, zone, polygon, p, confidence, stamp, person, events) -> None:
        inside = geometry.inside_polygon(tuple(p), polygon)
        if zone.name not in track.zones:
            if inside:
                track.zones[zone.name] = stamp
                events.append(Event("zone_entered", "zone", tid, stamp.wall_ns, None, confidence, zone=zone.name,
                                    count=self._count(zone.name), pose=person))
        elif not inside and geometry.distance_to_boundary(tuple(p), polygon) > zone.hysteresis:
            self._leave(track, tid, zone.name, stamp, person, confidence, events)

    def _leave(self, track, tid, name, stamp, person, confidence, events) -> None:
        since = track.zones.pop(name)
        track.dwelt.discard(name)
        events.append(Event("zone_left", "zone", tid, since.wall_ns, stamp.wall_ns, confidence, zone=name,
                            count=self._count(name), pose=person))

    def _dwell(self, track, tid, zone, stamp, person, events) -> None:
        since = track.zones.get(zone.name)
        if (zone.dwell_s is None or since is None or zone.name in track.dwelt
                or (stamp.now_ns - since.now_ns) / 1e9 < zone.dwell_s):
            return
        track.dwelt.add(zone.name)
        events.append(Event("dwell", "dwell", tid, since.wall_ns, None, 1.0, zone=zone.name,
                            count=self._count(zone.name), pose=person))

    def _crowds(self, stamp, events) -> None:
        for zone in self.zones:
            if zone.crowd is None:
                continue
            count = self._count(zone.name)
            since = self._crowd_since.get(zone.name)
            if since is None and count >= zone.crowd:
                self._crowd_since[zone.name] = stamp
                events.append(Event("crowd", "crowd", None, stamp.wall_ns, None, 1.0, zone=zone.name, count=count))
            elif since is not None and count < zone.crowd:
                del self._crowd_since[zone.name]
                events.append(Event("crowd_ended", "crowd", None, since.wall_ns, stamp.wall_ns, 1.0, zone=zone.name,
                                    count=count))

    # lines ----------------------------------------------------------------------------------------------
    def _line(self, track, tid, line, segment, p, confidence, stamp, person, events) -> None:
        distance, along = geometry.line_position(tuple(p), *segment)
        if abs(distance) <= line.hysteresis:
            return  # in the band around the line: jitter here changes nothing
        side = 1 if distance > 0 else -1
        before = track.sides.get(line.name)
        track.sides[line.name] = side
        # A change of side counts when it happens across the segment, not around one of its ends.
        if before is None or before == side or not 0.0 <= along <= 1.0:
            return
        direction = "in" if (side > 0) == (line.in_side == "right") else "out"
        self._line_counts[line.name][direction] += 1
        events.append(Event("line_crossed", "line", tid, stamp.wall_ns, None, confidence, line=line.name,
                            direction=direction, pose=person))

    # pose rules -----------------------------------------------------------------------------------------
    def _fall(self, track, tid, xy, conf, stamp, person, events) -> None:
        rule = self.rules.fall
        t = torso(xy, conf, self.rules.joint_threshold)
        if t is None:
            return
        track.history.append((stamp.now_ns, stamp.wall_ns, float(t.hips[1]), t.length))
        while (stamp.now_ns - track.history[0][0]) / 1e9 > max(SCALE_MEMORY_S, rule.drop_window_s):
            track.history.popleft()
        body_height = HEIGHT_PER_TORSO * max(h[3] for h in track.history)
        window = [h for h in track.history if (stamp.now_ns - h[0]) / 1e9 <= rule.drop_window_s]
        top = min(window, key=lambda h: h[2])  # where the hips were highest lately (image y grows downwards)
        if (t.hips[1] - top[2]) / body_height / rule.drop_window_s >= rule.drop_speed:
            if track.drop is None or (stamp.now_ns - track.drop.now_ns) / 1e9 > rule.within_s:
                track.drop = _Stamp(top[0], top[1])
        lying = t.angle_deg >= rule.lying_angle_deg and t.wide
        dropped = track.drop is not None and (stamp.now_ns - track.drop.now_ns) / 1e9 <= rule.within_s
        held = track.lying.update(lying and (dropped or track.lying.since is not None), stamp)
        if not track.fallen and track.drop is not None and track.lying.since is not None and held >= rule.lying_s:
            track.fallen = True
            events.append(Event("fall", "fall", tid, track.drop.wall_ns, None, t.confidence, pose=person))
        if track.upright.update(t.angle_deg < rule.upright_angle_deg, stamp) >= REARM_S:
            track.fallen, track.drop = False, None

    def _hands_up(self, track, tid, xy, conf, stamp, person, events) -> None:
        rule = self.rules.hands_up
        confidence = hands_above_head(xy, conf, self.rules.joint_threshold, rule.margin)
        held = track.hands.update(confidence > 0, stamp)
        if not track.hands_fired and track.hands.since is not None and held >= rule.hold_s:
            track.hands_fired = True
            events.append(Event("hands_up", "hands_up", tid, track.hands.since.wall_ns, None, confidence,
                                pose=person))
        if track.hands.since is None:  # down for longer than GRACE_S: the next raise is a new gesture
            track.hands_fired = False

    # figures --------------------------------------------------------------------------------------------
    def counters(self) -> dict:
        """Plain data for retained topics, stats and metrics.

        zones: name -> {count, crowded}; lines: name -> {in, out}; rules: enabled rule -> people it holds now
        (fallen and not up again; hands up); events: type -> total since start.
        """
        rules = {}
        if self.rules.fall.enabled:
            rules["fall"] = sum(t.fallen for t in self._tracks.values())
        if self.rules.hands_up.enabled:
            rules["hands_up"] = sum(t.hands_fired and t.hands.since is not None for t in self._tracks.values())
        return {
            "zones": {z.name: {"count": self._count(z.name), "crowded": z.name in self._crowd_since}
                      for z in self.zones},
            "lines": {name: dict(c) for name, c in self._line_counts.items()},
            "rules": rules,
            "events": dict(self._event_counts),
        }
