"""Tracking: stable per-person `track_id` across frames, and entered/left events.

    tracker = Tracker("oks")
    update = tracker.update(poses, frame.clock_ns)
    update.poses.track_id, update.entered, update.left
"""

from edgepose.track.distances import get_distance_by_name, iou_distance, oks_distance
from edgepose.track.tracker import Tracker, TrackUpdate, linear_sum_assignment

__all__ = ["Tracker", "TrackUpdate", "get_distance_by_name", "iou_distance", "linear_sum_assignment", "oks_distance"]
