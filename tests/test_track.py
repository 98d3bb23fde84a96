"""Tracking: optimal assignment, OKS/IoU distances, track life cycle and events, and ids on real video."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_path
from edgepose.track import Tracker, get_distance_by_name, iou_distance, linear_sum_assignment, oks_distance
from edgepose.types import NUM_JOINTS, Poses

# A standing person about 160 px tall, joints relative to the hip centre (COCO order).
_BODY = np.array(
    [
        [0, -140], [-5, -145], [5, -145], [-12, -140], [12, -140],  # nose, eyes, ears
        [-25, -110], [25, -110], [-35, -70], [35, -70], [-40, -30], [40, -30],  # shoulders, elbows, wrists
        [-15, 0], [15, 0], [-15, 45], [15, 45], [-15, 90], [15, 90],  # hips, knees, ankles
    ],
    np.float32,
)


def people(*centres, conf: float = 0.9) -> Poses:
    """Synthetic people standing at the given (x, y) hip centres."""
    xy = np.array([_BODY + np.float32(c) for c in centres], np.float32).reshape(-1, NUM_JOINTS, 2)
    n = len(centres)
    return Poses(xy, np.full((n, NUM_JOINTS), conf, np.float32), np.full(n, conf, np.float32))


def run(tracker: Tracker, frames, timestamps=None):
    """Feed frames through the tracker; returns the list of TrackUpdates."""
    timestamps = timestamps or [None] * len(frames)
    return [tracker.update(p, t) for p, t in zip(frames, timestamps)]


# --- assignment -------------------------------------------------------------------------------------------


def test_linear_sum_assignment_is_optimal_like_scipy():
    scipy_lsa = pytest.importorskip("scipy.optimize").linear_sum_assignment
    rng = np.random.default_rng(7)
    for k in range(300):
        n, m = rng.integers(0, 9, size=2)
        # Integer costs exercise ties, where a sloppy implementation picks a non-optimal set.
        cost = rng.integers(0, 4, (n, m)).astype(float) if k % 2 else rng.random((n, m))
        rows, cols = linear_sum_assignment(cost)
        want_rows, want_cols = scipy_lsa(cost)
        assert len(rows) == len(want_rows) == min(n, m)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert cost[rows, cols].sum() == pytest.approx(cost[want_rows, want_cols].sum())


def test_linear_sum_assignment_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        linear_sum_assignment(np.array([[0.1, np.nan]]))


# --- distances --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", [oks_distance, iou_distance])
def test_distances_are_zero_for_same_pose_one_for_far_apart(distance):
    a = people((100, 200), (400, 200))
    d = distance(a, people((100, 200), (1000, 200), (400, 205)))
    assert d.shape == (2, 3)
    assert ((0 <= d) & (d <= 1)).all()
    assert d[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert d[1, 1] == pytest.approx(1.0, abs=1e-6)
    assert 0 < d[1, 2] < d[0, 2]  # a 5 px shift is close, 300 px is not


def test_oks_distance_ignores_joints_not_seen_on_both_sides():
    track, person = people((100, 200)), people((100, 200))
    person.xy[0, :5] += 500  # the head is far off ...
    person.conf[0, :5] = 0.05  # ... but below min_joint_conf, so it must not count
    assert oks_distance(track, person, min_joint_conf=0.1)[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert oks_distance(track, person, min_joint_conf=0.01)[0, 0] > 0.2
    person.conf[0] = 0.0
    assert oks_distance(track, person)[0, 0] == 1.0  # nothing in common


def test_iou_distance_of_half_overlapping_boxes():
    # The body's box is 80 x 235; shifting it by half its width leaves 1/3 IoU.
    d = iou_distance(people((100, 200)), people((140, 200)))
    assert d[0, 0] == pytest.approx(1 - 1 / 3, abs=1e-6)


def test_distances_of_empty_sets():
    for name in ("oks", "iou"):
        assert get_distance_by_name(name)(Poses.empty(), people((1, 1))).shape == (0, 1)
        assert get_distance_by_name(name)(people((1, 1)), Poses.empty()).shape == (1, 0)


# --- tracker life cycle -----------------------------------------------------------------------------------


def crossing(steps: int = 20, speed: float = 20.0):
    """Two people walking towards each other on the same line, passing through each other. Half a step of
    offset: they never stand exactly on one spot, where any tracker could only guess."""
    offset = speed / 2
    return [people((100 + speed * t, 300), (100 + offset + speed * (steps - t), 300)) for t in range(steps + 1)]


@pytest.mark.parametrize("distance", ["oks", "iou"])
def test_crossing_people_keep_their_ids_with_velocity_prediction(distance):
    updates = run(Tracker(distance, init_delay=0), crossing())
    ids = np.array([u.poses.track_id for u in updates])
    assert (ids[:, 0] == ids[0, 0]).all() and (ids[:, 1] == ids[0, 1]).all()
    assert ids[0, 0] != ids[0, 1]
    # Without prediction each track matches where the other person now is: the ids swap when paths cross.
    # This checks that the crossing above is a real test of the prediction.
    still = np.array([u.poses.track_id for u in run(Tracker(distance, init_delay=0, velocity_gain=0), crossing())])
    assert not (still[:, 0] == still[0, 0]).all()


def test_crossing_with_dropped_frames_uses_timestamps():
    frames = crossing(steps=40, speed=10.0)
    keep = [t for t in range(41) if t % 7 not in (3, 4)]  # irregular gaps, like a busy pipeline dropping frames
    stamps = [1_000_000_000 + t * 100_000_000 for t in keep]  # 10 fps capture clock
    updates = run(Tracker("oks", init_delay=0), [frames[t] for t in keep], stamps)
    ids = np.array([u.poses.track_id for u in updates])
    assert (ids == ids[0]).all() and ids[0, 0] != ids[0, 1]


def test_entered_after_init_delay_left_after_max_age_and_reentry_gets_new_id():
    tracker = Tracker("oks", init_delay=2, max_age=3)
    walk = [people((100 + 5 * t, 300)) for t in range(6)]
    updates = run(tracker, walk)
    assert [u.entered for u in updates] == [[], [], [1], [], [], []]
    assert [u.poses.track_id.tolist() for u in updates] == [[-1], [-1], [1], [1], [1], [1]]
    # Out of view: the track survives max_age empty frames and expires on the next one.
    gone = run(tracker, [Poses.empty()] * 4)
    assert [u.left for u in gone] == [[], [], [], [1]]
    assert all(len(u.poses) == 0 and u.entered == [] for u in gone)
    assert tracker.active_ids == []
    # Back where it left: a new person as far as the tracker knows, with a new id.
    back = run(tracker, [people((130, 300))] * 3)
    assert [u.entered for u in back] == [[], [], [2]]
    assert back[-1].poses.track_id.tolist() == [2]


def test_short_occlusion_keeps_the_id():
    tracker = Tracker("oks", init_delay=0, max_age=3)
    frames = [people((100 + 10 * t, 300)) for t in range(5)] + [Poses.empty()] * 3
    frames += [people((100 + 10 * t, 300)) for t in range(8, 11)]  # reappears further along its path
    updates = run(tracker, frames)
    assert [u.poses.track_id.tolist() for u in updates if len(u.poses)] == [[1]] * 8
    assert sum((u.entered for u in updates), []) == [1] and sum((u.left for u in updates), []) == []


def test_one_frame_false_detection_never_gets_an_id():
    tracker = Tracker("iou", init_delay=1)
    updates = run(tracker, [people((100, 300)), people((100, 300), (600, 300)), people((100, 300))] * 2)
    assert sum((u.entered for u in updates), []) == [1]
    assert all(u.poses.track_id[1] == -1 for u in updates if len(u.poses) == 2)


def test_empty_frames_and_track_ids_per_instance():
    tracker = Tracker()
    first = tracker.update(Poses.empty())
    assert len(first.poses) == 0 and first.entered == [] and first.left == []
    a, b = Tracker(init_delay=0), Tracker(init_delay=0)
    assert a.update(people((1, 300))).entered == [1]
    assert b.update(people((1, 300))).entered == [1]  # ids are not shared between trackers
    assert a.update(people((1, 300), (500, 300))).entered == [2]


def test_input_track_ids_are_replaced():
    out = Tracker(init_delay=0).update(people((10, 300)).with_track_ids(np.array([42]))).poses
    assert out.track_id.tolist() == [1]


# --- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"distance": "euclid"}, "unknown distance 'euclid'"),
        ({"distance": 3}, "distance must be 'oks', 'iou' or a callable, got 3"),
        ({"max_distance": 0}, "max_distance must be a number > 0, got 0"),
        ({"max_distance": "0.5"}, "max_distance must be a number > 0, got '0.5'"),
        ({"min_joint_conf": 1.0}, r"min_joint_conf must be a number in \[0.0, 1.0\), got 1.0"),
        ({"min_joint_conf": -0.1}, r"min_joint_conf .* got -0.1"),
        ({"init_delay": -1}, "init_delay must be an integer >= 0, got -1"),
        ({"init_delay": 1.5}, "init_delay must be an integer >= 0, got 1.5"),
        ({"max_age": True}, "max_age must be an integer >= 0, got True"),
        ({"velocity_gain": 1.5}, r"velocity_gain must be a number in \[0.0, 1.0\], got 1.5"),
        ({"velocity_gain": float("nan")}, "velocity_gain .* got nan"),
        ({"distance": lambda a, b: np.zeros((len(a), len(b)))}, "max_distance is required with a custom"),
    ],
)
def test_bad_arguments_are_named_with_their_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Tracker(**kwargs)


def test_bad_updates_are_explained():
    tracker = Tracker()
    with pytest.raises(ValueError, match="poses must be an edgepose.types.Poses, got list"):
        tracker.update([])
    tracker.update(people((1, 300)), 2_000)
    with pytest.raises(ValueError, match="timestamp_ns must increase between updates, got 2000 after 2000"):
        tracker.update(people((1, 300)), 2_000)
    with pytest.raises(ValueError, match="timestamp_ns is missing"):
        tracker.update(people((1, 300)))
    untimed = Tracker()
    untimed.update(Poses.empty())
    with pytest.raises(ValueError, match="give it on every update or on none"):
        untimed.update(Poses.empty(), 5)
    # A rejected update changes nothing: the first good timestamp after it is still a first timestamp.
    fresh = Tracker(init_delay=0)
    with pytest.raises(ValueError, match="timestamp_ns must be an integer \\(nanoseconds\\), got '1'"):
        fresh.update(people((1, 300)), "1")
    assert fresh.update(people((1, 300)), 1).entered == [1]


@pytest.mark.parametrize(
    "distance, message",
    [
        (lambda a, b: np.full((len(a), len(b)), np.nan), "returned NaN"),
        (lambda a, b: np.zeros((len(b), len(a) + 1)), r"returned shape \(1, 2\), expected .* \(1, 1\)"),
    ],
)
def test_broken_custom_distance_is_explained(distance, message):
    tracker = Tracker(distance, max_distance=1.0)
    tracker.update(people((1, 300)))
    with pytest.raises(ValueError, match=message):
        tracker.update(people((1, 300)))


def test_custom_distance_is_used():
    def hip_pixels(tracks: Poses, poses: Poses) -> np.ndarray:
        return np.linalg.norm(tracks.xy[:, None, 11] - poses.xy[None, :, 11], axis=-1)

    tracker = Tracker(hip_pixels, max_distance=50.0, init_delay=0)
    assert tracker.update(people((100, 300))).entered == [1]
    assert tracker.update(people((140, 300))).poses.track_id.tolist() == [1]  # 40 px: within the gate
    assert tracker.update(people((240, 300))).entered == [2]  # 80 px from where it was heading: a new person


# --- real video -------------------------------------------------------------------------------------------

# one-by-one-person-detection.mp4: six people walk into the room one after another, stand, and walk out
# (checked by eye and with MoveNet person boxes); there is never more than one person in view.
VISITS = 6


@pytest.mark.slow
def test_walking_person_keeps_one_id_on_real_video(video_one_by_one):
    cv2 = pytest.importorskip("cv2")
    from edgepose.train.teacher import MoveNet

    detect = MoveNet(shared_path("models", "movenet-multipose", "movenet-multipose.xml"))
    tracker = Tracker("oks")
    cap = cv2.VideoCapture(str(video_one_by_one))
    stride = 2  # every other frame (5 fps of a 10 fps video): half the inference time, twice the motion
    updates, index = [], 0
    while True:
        ok, image = cap.read() if index % stride == 0 else (cap.grab(), None)
        if not ok:
            break
        if image is not None:
            timestamp_ns = round(cap.get(cv2.CAP_PROP_POS_MSEC) * 1e6)
            updates.append(tracker.update(detect(image, size=256, min_score=0.25), timestamp_ns))
        index += 1
    cap.release()
    assert len(updates) == 697

    ids = [u.poses.track_id for u in updates]
    people_seen = sum(len(i) for i in ids)
    assert people_seen > 400  # the person is in view most of the time
    assert max(len(i) for i in ids) == 1
    # An id switch: the person is seen in two consecutive processed frames, tracked in the first, and has
    # another id (or none) in the second.
    switches = sum(
        1
        for before, now in zip(ids, ids[1:])
        if len(before) == len(now) == 1 and before[0] >= 0 and now[0] != before[0]
    )
    entered = sum((u.entered for u in updates), [])
    left = sum((u.left for u in updates), [])
    print(f"one-by-one video: {people_seen} detections in {len(updates)} frames, {switches} id switches, ids {entered}")
    assert switches == 0
    assert entered == list(range(1, VISITS + 1))  # one id per visit
    assert left == entered  # everyone was seen leaving before the video ends


def test_median_seen_is_numpys_median_bit_for_bit():
    """The tracker's velocity step takes, per person, the median over the joints seen both times, for all people
    in one sort; it must equal np.median of each person's seen joints exactly (ties, odd/even counts, none)."""
    from edgepose.track.tracker import median_seen

    rng = np.random.default_rng(0)
    for trial in range(300):
        m = int(rng.integers(1, 31))
        d = rng.normal(0, 50, (m, 17, 2))
        if trial % 3 == 0:
            d = np.round(d)  # ties
        seen = rng.random((m, 17)) < rng.uniform(0.05, 1.0)
        got = median_seen(d, seen)
        for i in range(m):
            if seen[i].any():
                assert np.array_equal(got[i], np.median(d[i][seen[i]], axis=0))
            else:
                assert np.isnan(got[i]).all()