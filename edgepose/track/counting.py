"""Who counts as a person: the one rule behind the people count, entered/left events, Home Assistant,
Prometheus and the dashboard's count chart.

A detection counts when its person score is at least ``min_score``; such detections are tracked, and a track
becomes a counted person once it has been seen in ``min_hits`` consecutive frames (``entered``) and stops
being one after ``max_age`` frames without a match (``left``). The count is the number of such people, so it
changes exactly when an entered or left event fires: a person hidden for a few frames, or whose score dips
under the threshold for a moment, is still counted, and a one-frame fragment never is.

Detections under ``min_score`` (fragments of a person, reflections) are still reported, untracked
(track_id -1) and flagged as not counting, so subscribers can apply a rule of their own.

Without a tracker the rule is per frame: the count is the number of detections scored ``min_score`` or more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgepose.track.tracker import Tracker
from edgepose.types import Poses


@dataclass(frozen=True)
class CountUpdate:
    """What one ``PeopleCounter.update`` produced.

    poses: every input person, in input order, with track ids for counted tracks (-1 otherwise).
    counts: (n,) bool, whether each person counts (a confirmed track seen in this frame).
    count: people present under the rule (confirmed tracks, including those unseen for up to max_age frames).
    entered / left: track ids that started / stopped counting in this update.
    """

    poses: Poses
    counts: np.ndarray
    count: int
    entered: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)


class PeopleCounter:
    """Applies the counting rule to one source's frames (one instance per source, like its ``Tracker``)."""

    def __init__(self, min_score: float, tracker: Tracker | None = None):
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score!r}")
        self.min_score = float(min_score)
        self.tracker = tracker

    def update(self, poses: Poses, timestamp_ns: int | None = None) -> CountUpdate:
        eligible = poses.score >= self.min_score
        if self.tracker is None:
            return CountUpdate(poses, eligible, int(eligible.sum()))
        tracked = self.tracker.update(poses[eligible], timestamp_ns)
        track_id = np.full(len(poses), -1, np.int64)
        track_id[eligible] = tracked.poses.track_id
        return CountUpdate(poses.with_track_ids(track_id), track_id >= 0, len(self.tracker.active_ids),
                           list(tracked.entered), list(tracked.left))
