"""Multi-person tracking: give every detected person a `track_id` that stays the same across frames.

The loop follows norfair's shape with an injected distance: predict where each track's joints are now,
compute a distance matrix between predictions and the new detections, assign optimally within a gate,
update matched tracks, age unmatched ones, start tentative tracks for the rest. A track is confirmed (and
gets an id) after it has been matched in `init_delay + 1` consecutive frames; a confirmed track that stays
unmatched for more than `max_age` frames expires. Confirmations and expiries are reported as
`TrackUpdate.entered` / `.left`, which the publisher turns into "person entered/left" events.

Track ids are per `Tracker` instance, start at 1 and increase by one per confirmed person; they are never
reused. -1 means "not tracked (yet)", as in `Poses.track_id`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real

import numpy as np

from edgepose.track.distances import DistanceFn, get_distance_by_name
from edgepose.types import Poses

# max_distance used when a built-in distance is named and none is given. Chosen on the sample video
# one-by-one-person-detection.mp4 with MoveNet poses: with velocity prediction these gates keep one id per
# visit at 10 and 5 fps; a person walking out of view fast is where tighter gates (OKS 0.5-0.7) lose the
# track. OKS is strict (head joints have small sigmas), hence its wider gate.
DEFAULT_MAX_DISTANCE = {"oks": 0.8, "iou": 0.7}


def median_seen(d: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Per person, the median over joints of the (m, 17, 2) displacements ``d`` at the joints where ``seen`` (m, 17)
    is True: ``np.median(d[i][seen[i]], axis=0)`` bit for bit for every i with a seen joint (NaN where none is).
    One sort for all people: the per-person median calls were most of the tracker's time in crowds."""
    s = np.sort(np.where(seen[..., None], d, np.nan), axis=1)  # the unseen sort last, as NaN
    k = seen.sum(axis=1)
    people = np.arange(len(k))
    # Odd k: the two middles are one, and (a + a) / 2 is exactly a.
    return (s[people, np.maximum((k - 1) // 2, 0)] + s[people, k // 2]) / 2


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of rows to columns, the same pairs as ``scipy.optimize.linear_sum_assignment``
    (scipy is not a runtime dependency): (rows, cols), sorted by row, min(n_rows, n_cols) pairs.

    Optimal rather than greedy because greedy matching swaps ids where two people cross: the closest pair is
    taken first even when it forces the other person onto a far worse match. The grouping's compiled solver
    (``edgepose.assignment``) does the work: for a crowd of 30 a NumPy loop took milliseconds a frame.
    """
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("cost contains NaN or infinite values")
    from edgepose.assignment import linear_sum_assignment as solve  # numba loads on first use, not on import

    col_for_row = solve(cost)
    rows = np.flatnonzero(col_for_row >= 0)
    return rows, col_for_row[rows]


@dataclass(frozen=True)
class TrackUpdate:
    """What one `Tracker.update` produced.

    poses: the input people with `track_id` set (-1 for people not confirmed yet).
    entered: ids confirmed in this update (a new person is in view).
    left: ids that expired in this update (not seen for more than max_age frames).
    """

    poses: Poses
    entered: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)


class _Track:
    """State of one person: last joint estimates, a shared velocity, hit/miss counters."""

    __slots__ = ("xy", "conf", "velocity", "last_seen", "hits", "misses", "id")

    def __init__(self, xy: np.ndarray, conf: np.ndarray, now: int):
        self.xy = xy.astype(np.float64)
        self.conf = conf.copy()
        # One velocity for the whole person, not per joint: a walking person moves as a whole between
        # frames, while per-joint velocities would extrapolate arm and leg swings.
        self.velocity = np.zeros(2)
        self.last_seen = now
        self.hits = 1
        self.misses = 0
        self.id = -1


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_real(name: str, value, low: float, high: float, high_inclusive: bool = True) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and low <= value and (value <= high if high_inclusive else value < high)
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be a number in [{low}, {high}{bracket}, got {value!r}")
    return float(value)


class Tracker:
    """Assigns stable track ids to people across frames; one instance per video source.

    distance: "oks" (default; 1 - COCO OKS over joints seen on both sides), "iou" (1 - box IoU), or a
        callable `(track_predictions: Poses, poses: Poses) -> (n_tracks, n_people) array`.
    max_distance: gate; pairs farther apart are never matched. Defaults to DEFAULT_MAX_DISTANCE for the
        built-in distances; required with a callable.
    min_joint_conf: joints with confidence <= this count as not seen (built-in distances and velocity).
    init_delay: a new person is confirmed, and gets an id, once matched in init_delay + 1 consecutive
        frames; 0 confirms on first sight. Filters one-frame false detections.
    max_age: a confirmed person unmatched for more than this many consecutive frames expires (`left`).
    velocity_gain: smoothing of the constant-velocity prediction, in [0, 1]; the velocity estimate moves
        this fraction towards the newest frame-to-frame displacement. 0 turns prediction off.
    """

    def __init__(
        self,
        distance: str | DistanceFn = "oks",
        *,
        max_distance: float | None = None,
        min_joint_conf: float = 0.1,
        init_delay: int = 2,
        max_age: int = 10,
        velocity_gain: float = 0.5,
    ):
        self.min_joint_conf = _check_real("min_joint_conf", min_joint_conf, 0.0, 1.0, high_inclusive=False)
        if isinstance(distance, str):
            self.distance = get_distance_by_name(distance, min_joint_conf=self.min_joint_conf)
            if max_distance is None:
                max_distance = DEFAULT_MAX_DISTANCE[distance]
        elif callable(distance):
            self.distance = distance
            if max_distance is None:
                raise ValueError("max_distance is required with a custom distance callable (no default scale)")
        else:
            raise ValueError(f"distance must be 'oks', 'iou' or a callable, got {distance!r}")
        if isinstance(max_distance, bool) or not isinstance(max_distance, Real) or not max_distance > 0:
            raise ValueError(f"max_distance must be a number > 0, got {max_distance!r}")
        self.max_distance = float(max_distance)
        self.init_delay = _check_int("init_delay", init_delay, 0)
        self.max_age = _check_int("max_age", max_age, 0)
        self.velocity_gain = _check_real("velocity_gain", velocity_gain, 0.0, 1.0)
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._frame = 0
        self._last_timestamp_ns: int | None = None

    @property
    def active_ids(self) -> list[int]:
        """Ids of the confirmed people currently tracked (seen within max_age frames)."""
        return [t.id for t in self._tracks if t.id >= 0]

    def update(self, poses: Poses, timestamp_ns: int | None = None) -> TrackUpdate:
        """Track the people of the next frame.

        timestamp_ns: the frame's time (`Frame.clock_ns`: a file's own timeline, else capture time); velocities
            are then per second, which keeps prediction right when frames are dropped. Without it, each update is one time step. Give it on
            every update or on none.
        """
        if not isinstance(poses, Poses):
            raise ValueError(f"poses must be an edgepose.types.Poses, got {type(poses).__name__}")
        now, scale = self._clock(timestamp_ns)

        # Match first, change state after: a failing distance function leaves the tracker as it was.
        predictions = self._predict(now, scale)
        ids = np.full(len(poses), -1, np.int64)  # track index per person while matching; ids further down
        free_people = np.arange(len(poses))
        # Confirmed people get the first pick; tentative tracks may only take what is left, so a false
        # detection next to a known person cannot steal that person's match.
        for confirmed in (True, False):
            rows = np.array([k for k, t in enumerate(self._tracks) if (t.id >= 0) == confirmed], np.int64)
            for r, c in self._match(predictions, rows, poses, free_people):
                ids[c] = r
            free_people = free_people[ids[free_people] < 0]
        self._frame += 1
        if timestamp_ns is not None:
            self._last_timestamp_ns = int(timestamp_ns)
        matched_people = np.flatnonzero(ids >= 0)
        matched_tracks = set(ids[matched_people].tolist())
        if len(matched_people):
            self._correct([self._tracks[k] for k in ids[matched_people]], poses.xy[matched_people],
                          poses.conf[matched_people], now, scale)

        entered: list[int] = []
        left: list[int] = []
        survivors: list[_Track] = []
        for k, track in enumerate(self._tracks):
            if k in matched_tracks:
                survivors.append(track)
                continue
            track.hits = 0
            track.misses += 1
            if track.id >= 0 and track.misses <= self.max_age:
                survivors.append(track)
            elif track.id >= 0:
                left.append(track.id)
            # an unmatched tentative track is dropped silently: it was never announced
        for c in free_people:
            track = _Track(poses.xy[c], poses.conf[c], now)
            ids[c] = len(self._tracks)
            self._tracks.append(track)
            survivors.append(track)

        track_of_person = [self._tracks[k] for k in ids]
        for track in survivors:
            if track.id < 0 and track.hits > self.init_delay:
                track.id = self._next_id
                self._next_id += 1
                entered.append(track.id)
        self._tracks = survivors
        out_ids = np.array([t.id for t in track_of_person], np.int64)
        return TrackUpdate(poses.with_track_ids(out_ids), entered, left)

    def _clock(self, timestamp_ns: int | None) -> tuple[int, float]:
        """(now, seconds or frames per unit of now) for this update; checks that timestamps move forward."""
        if timestamp_ns is None:
            if self._last_timestamp_ns is not None:
                raise ValueError("timestamp_ns is missing; give it on every update or on none")
            return self._frame + 1, 1.0
        if isinstance(timestamp_ns, bool) or not isinstance(timestamp_ns, (int, np.integer)):
            raise ValueError(f"timestamp_ns must be an integer (nanoseconds), got {timestamp_ns!r}")
        if self._last_timestamp_ns is None and self._frame > 0:
            raise ValueError("timestamp_ns given after updates without it; give it on every update or on none")
        if self._last_timestamp_ns is not None and timestamp_ns <= self._last_timestamp_ns:
            raise ValueError(
                f"timestamp_ns must increase between updates, got {timestamp_ns} after {self._last_timestamp_ns}"
            )
        return int(timestamp_ns), 1e-9

    def _predict(self, now: int, scale: float) -> Poses:
        """Every track's joints moved to `now` at its velocity, with the confidences last seen."""
        if not self._tracks:
            return Poses.empty()
        dt = np.array([(now - t.last_seen) * scale for t in self._tracks])
        velocity = np.stack([t.velocity for t in self._tracks])
        xy = np.stack([t.xy for t in self._tracks]) + (velocity * dt[:, None])[:, None, :]
        conf = np.stack([t.conf for t in self._tracks])
        return Poses(xy, conf, conf.mean(axis=1))

    def _match(self, predictions: Poses, rows: np.ndarray, poses: Poses, cols: np.ndarray) -> list[tuple[int, int]]:
        """Optimal (track index, person index) pairs between predictions[rows] and poses[cols], within the gate."""
        if len(rows) == 0 or len(cols) == 0:
            return []
        dist = np.asarray(self.distance(predictions[rows], poses[cols]), dtype=np.float64)
        if dist.shape != (len(rows), len(cols)):
            raise ValueError(
                f"the distance function returned shape {dist.shape}, expected (n_tracks, n_people) = "
                f"({len(rows)}, {len(cols)})"
            )
        if np.isnan(dist).any():
            raise ValueError(
                "the distance function returned NaN; check that it handles people without visible joints "
                "(e.g. return the largest distance for them)"
            )
        # Costs above the gate are clipped to the gate, so a pair that cannot match neither attracts nor
        # repels the optimum (and +inf from a custom distance stays usable).
        r, c = linear_sum_assignment(np.minimum(dist, self.max_distance))
        keep = dist[r, c] <= self.max_distance
        return list(zip(rows[r[keep]].tolist(), cols[c[keep]].tolist()))

    def _correct(self, tracks: list[_Track], xy: np.ndarray, conf: np.ndarray, now: int, scale: float) -> None:
        """Fold matched detections (xy (m, 17, 2), conf (m, 17)) into their m tracks, all at once: new joints,
        updated velocities, one more hit."""
        dt = np.array([(now - t.last_seen) * scale for t in tracks])
        old_xy = np.stack([t.xy for t in tracks])
        velocity = np.stack([t.velocity for t in tracks])
        predicted = old_xy + velocity[:, None, :] * dt[:, None, None]
        seen_now = conf > self.min_joint_conf
        both = seen_now & (np.stack([t.conf for t in tracks]) > self.min_joint_conf)
        # Median over the joints seen both times: robust to a single mislocated joint.
        step = median_seen(xy - old_xy, both) / dt[:, None]
        velocity = np.where(both.any(axis=1)[:, None], velocity + self.velocity_gain * (step - velocity), velocity)
        # Joints not seen now keep moving with the person, so they are in place when they reappear.
        new_xy = np.where(seen_now[..., None], xy, predicted)
        for k, track in enumerate(tracks):
            track.xy, track.conf, track.velocity = new_xy[k], conf[k].copy(), velocity[k]
            track.last_seen = now
            track.hits += 1
            track.misses = 0
