"""The analytics rules on synthetic tracks made of real people: COCO-2017 annotations from ../shared/data/coco-mini
(standing people with every body joint labelled), moved, jittered and bent over time the way a body moves.

A clip is a list of (seconds, poses) at FPS; the rules see it exactly as the service hands it over (frame pixels,
track ids, a monotonic and a wall clock).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgepose.analytics import Analytics, torso
from edgepose.analytics.pose import J
from edgepose.config import LineConfig, RulesConfig, ZoneConfig
from edgepose.types import Poses

FPS = 15
W, H = 1280, 720
WALL0 = 1_700_000_000 * 10**9
BODY_PX = 300.0  # standing height in the synthetic frame
UPPER = list(range(0, 11))  # head, shoulders, arms: they move with the torso
RNG_SEED = 7


def _people(coco_mini) -> list[np.ndarray]:
    """Every coco-mini person standing upright with all body joints labelled, as (17, 2) arrays, feet at (0, 0),
    scaled to BODY_PX tall."""
    ann = json.loads((coco_mini / "person_keypoints.json").read_text())
    need = [J[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_knee", "right_knee",
                           "left_ankle", "right_ankle", "left_wrist", "right_wrist", "nose")]
    out = []
    for a in ann["annotations"]:
        k = np.asarray(a["keypoints"], np.float32).reshape(17, 3)
        if not (k[need, 2] > 0).all():
            continue
        t = torso(k[:, :2], (k[:, 2] > 0).astype(np.float32), 0.5)
        legs = k[[J["left_ankle"], J["right_ankle"]], 1].mean() - t.hips[1]
        wrists_down = (k[[J["left_wrist"], J["right_wrist"]], 1] > k[[J["left_shoulder"], J["right_shoulder"]], 1])
        if t.angle_deg < 12 and legs > 1.3 * t.length and wrists_down.all():
            xy = k[:, :2].copy()
            for j in np.flatnonzero(k[:, 2] == 0):  # unlabelled face joints: put them at the nose
                xy[j] = xy[J["nose"]]
            feet = xy[[J["left_ankle"], J["right_ankle"]]].mean(axis=0)
            xy = (xy - feet) * (BODY_PX / (feet[1] - xy[:, 1].min()))
            out.append(xy)
    return out


@pytest.fixture(scope="module")
def people(coco_mini):
    found = _people(coco_mini)
    assert len(found) >= 4, "coco-mini has too few fully labelled standing people"
    return found


def rotate(xy: np.ndarray, joints, centre: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate ``joints`` about ``centre`` by ``degrees`` (positive: clockwise on screen, i.e. tipping right)."""
    out = xy.copy()
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float32)
    out[joints] = (xy[joints] - centre) @ rot.T + centre
    return out


def hip_mid(xy):
    return xy[[J["left_hip"], J["right_hip"]]].mean(axis=0)


def smooth(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3 - 2 * u)


def fall(xy, u):
    """Tipping over sideways about the feet; u: 0 standing .. 1 lying."""
    return rotate(xy, list(range(17)), np.zeros(2, np.float32), 90 * u * u)  # accelerating, as under gravity


def sit(xy, u):
    """Sitting down on a chair: thighs swing from vertical to horizontal about the knees' height, shins stay,
    the upper body comes down with the hips and leans 15 degrees."""
    out = xy.copy()
    for hip, knee in ((J["left_hip"], J["left_knee"]), (J["right_hip"], J["right_knee"])):
        thigh = float(np.linalg.norm(xy[knee] - xy[hip]))
        a = math.radians(90 * u)
        out[hip] = xy[knee] + thigh * np.array([-math.sin(a), -math.cos(a)], np.float32)  # hips go back and down
    shift = hip_mid(out) - hip_mid(xy)
    out[UPPER] = xy[UPPER] + shift
    return rotate(out, UPPER, hip_mid(out), 15 * u)


def bend(xy, u):
    """Bending forward from the hips to touch the floor: the legs stay, the upper body swings 90 degrees."""
    return rotate(xy, UPPER, hip_mid(xy), 90 * u)


def crouch(xy, u):
    """A fast squat: knees forward (shins tilt 40 degrees), thighs past horizontal, torso leaning 45 degrees."""
    out = xy.copy()
    for hip, knee, ankle in ((J["left_hip"], J["left_knee"], J["left_ankle"]),
                             (J["right_hip"], J["right_knee"], J["right_ankle"])):
        shin, thigh = (float(np.linalg.norm(xy[knee] - xy[ankle])), float(np.linalg.norm(xy[hip] - xy[knee])))
        a, b = math.radians(40 * u), math.radians(115 * u)
        out[knee] = xy[ankle] + shin * np.array([math.sin(a), -math.cos(a)], np.float32)
        out[hip] = out[knee] + thigh * np.array([-math.sin(b), -math.cos(b)], np.float32)
    out[UPPER] = xy[UPPER] + hip_mid(out) - hip_mid(xy)
    return rotate(out, UPPER, hip_mid(out), 45 * u)


def hands_up(xy, u):
    """Both arms raised straight up over the head."""
    out = xy.copy()
    for sh, el, wr in ((J["left_shoulder"], J["left_elbow"], J["left_wrist"]),
                       (J["right_shoulder"], J["right_elbow"], J["right_wrist"])):
        upper, fore = float(np.linalg.norm(xy[el] - xy[sh])), float(np.linalg.norm(xy[wr] - xy[el]))
        down_el, down_wr = xy[el], xy[wr]
        up_el = xy[sh] + np.array([0, -upper], np.float32)
        up_wr = up_el + np.array([0, -fore], np.float32)
        out[el] = down_el + (up_el - down_el) * u
        out[wr] = down_wr + (up_wr - down_wr) * u
    return out


def clip(person, feet_at, pose_at, seconds, track_id=1, jitter_px=2.0, seed=RNG_SEED):
    """[(t, xy)] at FPS: ``feet_at(t)`` -> frame pixel position of the feet, ``pose_at(t)`` -> posture 0..1 argument
    pairs (fn, u); joint jitter as a real detector's (Gaussian, jitter_px)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(int(seconds * FPS)):
        t = k / FPS
        fn, u = pose_at(t)
        xy = fn(person, u) + np.asarray(feet_at(t), np.float32) + rng.normal(0, jitter_px, (17, 2)).astype(np.float32)
        out.append((t, track_id, xy))
    return out


def still(fn=lambda xy, u: xy, u=0.0):
    return lambda t: (fn, u)


def run(analytics: Analytics, *tracks, left_at: dict | None = None):
    """Feed tracks (lists from clip()) frame by frame; return every event."""
    frames: dict[float, list] = {}
    for track in tracks:
        for t, tid, xy in track:
            frames.setdefault(t, []).append((tid, xy))
    events = []
    for t in sorted(frames):
        people = frames[t]
        xy = np.stack([p[1] for p in people])
        poses = Poses(xy, np.full((len(people), 17), 0.9, np.float32), np.full(len(people), 0.9, np.float32),
                      [p[0] for p in people])
        left = [tid for tid, when in (left_at or {}).items() if abs(when - t) < 0.5 / FPS]
        events += analytics.update(poses, (W, H), int(t * 1e9), WALL0 + int(t * 1e9), left=left)
    return events


def kinds(events, type_=None):
    return [e.type for e in events if type_ is None or e.type == type_]


# ---------------------------------------------------------------------------------------------- zones


def test_walking_in_and_out_of_a_zone_counts_and_dwell(people):
    zone = ZoneConfig(name="counter", polygon=[[0.4, 0.5], [0.7, 0.5], [0.7, 0.95], [0.4, 0.95]], dwell_s=3)
    a = Analytics([zone])
    # Walk left to right across the frame at 0.1 frame widths per second: 0.4..0.7 is 3 s inside.
    walk_slow = clip(people[0], lambda t: (W * (0.1 + 0.1 * t), H * 0.8), still(), 8.0, track_id=1)
    # A second person walks through faster (1.5 s inside): no dwell.
    walk_fast = clip(people[1], lambda t: (W * (0.2 * t - 0.1), H * 0.7), still(), 6.0, track_id=2, seed=3)
    events = run(a, walk_slow, walk_fast)
    mine = [(e.type, e.track_id) for e in events]
    assert mine.count(("zone_entered", 1)) == 1 and mine.count(("zone_left", 1)) == 1
    assert mine.count(("zone_entered", 2)) == 1 and mine.count(("zone_left", 2)) == 1
    assert [e.track_id for e in events if e.type == "dwell"] == [1]
    dwell = next(e for e in events if e.type == "dwell")
    entered = next(e for e in events if e.type == "zone_entered" and e.track_id == 1)
    assert dwell.start_ns == entered.start_ns and dwell.pose is not None and len(dwell.pose) == 1
    left = next(e for e in events if e.type == "zone_left" and e.track_id == 1)
    assert 2.5 < (left.end_ns - left.start_ns) / 1e9 < 3.6
    # Both were inside together for a while: the count shown on entering says so.
    assert max(e.count for e in events if e.type == "zone_entered") == 2
    assert a.counters()["zones"]["counter"] == {"count": 0, "crowded": False}


def test_zone_edge_jitter_and_tracker_leaving(people):
    zone = ZoneConfig(name="bay", polygon=[[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]], crowd=2)
    a = Analytics([zone])
    # Standing right on the edge with 8 px of jitter (hysteresis 0.02 * 720 = 14 px): one entry, no flapping.
    edge = clip(people[0], lambda t: (W * 0.5, H * 0.8), still(), 4.0, track_id=1, jitter_px=8.0)
    inside = clip(people[1], lambda t: (W * 0.8, H * 0.8), still(), 2.0, track_id=2)
    events = run(a, edge, inside, left_at={2: 2.0})
    assert kinds(events, "zone_entered") == ["zone_entered", "zone_entered"]
    # Person 2 is reported gone by the tracker at 2 s: zone_left (no pose: they were not seen) and the crowd ends.
    gone = [e for e in events if e.type == "zone_left"]
    assert [(e.track_id, e.pose) for e in gone] == [(2, None)]
    assert kinds(events, "crowd") == ["crowd"] and kinds(events, "crowd_ended") == ["crowd_ended"]
    assert a.counters()["zones"]["bay"]["count"] == 1


# ---------------------------------------------------------------------------------------------- lines


def test_crossing_a_line_both_ways_with_jitter_counts_each_crossing_once(people):
    door = LineConfig(name="door", points=[[0.5, 0.1], [0.5, 1.0]])  # top to bottom: right-hand side is x < 0.5
    a = Analytics(lines=[door])

    def there_and_back(t):
        # Walk in from the right (x 0.8 -> 0.2) in 3 s, dither around the line on the way back
        # (0.49..0.51 for 2 s), then walk out to the right.
        if t < 3:
            x = 0.8 - 0.2 * t
        elif t < 4:
            x = 0.2 + 0.29 * (t - 3)
        elif t < 6:
            x = 0.5 + 0.012 * math.sin(2 * math.pi * 3 * t)
        else:
            x = 0.5 + 0.15 * (t - 6)
        return W * x, H * 0.8

    events = run(a, clip(people[0], there_and_back, still(), 8.0, jitter_px=4.0))
    crossed = [(e.direction, e.track_id) for e in events if e.type == "line_crossed"]
    assert crossed == [("in", 1), ("out", 1)]
    assert a.counters()["lines"]["door"] == {"in": 1, "out": 1}
    # The same walk against a line with in_side: left counts the other way round.
    b = Analytics(lines=[door.model_copy(update={"in_side": "left"})])
    run(b, clip(people[0], there_and_back, still(), 8.0, jitter_px=4.0))
    assert b.counters()["lines"]["door"] == {"in": 1, "out": 1}
    assert [e.direction for e in run(Analytics(lines=[door.model_copy(update={"in_side": "left"})]),
                                     clip(people[0], there_and_back, still(), 8.0))
            if e.type == "line_crossed"] == ["out", "in"]


def test_walking_around_the_end_of_a_line_is_no_crossing_and_hips_stand_in_for_hidden_ankles(people):
    short = LineConfig(name="gate", points=[[0.5, 0.0], [0.5, 0.5]])  # only the top half of the frame
    a = Analytics(lines=[short])
    events = run(a, clip(people[0], lambda t: (W * (0.8 - 0.15 * t), H * 0.9), still(), 4.0))
    assert kinds(events, "line_crossed") == []
    # Ankles hidden (conf 0): the hip midpoint (at y ~ 0.6 - 0.16 of the frame) is tested instead, and it does
    # cross this line, which ends at y 0.5.
    a = Analytics(lines=[short])
    track = clip(people[0], lambda t: (W * (0.8 - 0.15 * t), H * 0.6), still(), 4.0)
    conf = np.full((1, 17), 0.9, np.float32)
    conf[0, [J["left_ankle"], J["right_ankle"]]] = 0.0
    crossed = []
    for t, tid, xy in track:
        crossed += a.update(Poses(xy[None], conf, conf.mean(axis=1), [tid]), (W, H), int(t * 1e9), WALL0 + int(t * 1e9))
    assert [e.direction for e in crossed if e.type == "line_crossed"] == ["in"]  # towards x < 0.5: the right-hand side


# ---------------------------------------------------------------------------------------------- falls


FALL = RulesConfig(fall=True)


@pytest.mark.parametrize("index", range(4))
def test_standing_falling_lying_fires_once(people, index):
    events = run(Analytics(rules=FALL), clip(
        people[index], lambda t: (W * 0.4, H * 0.85),
        lambda t: (fall, smooth((t - 2.0) / 0.8) if t < 2.8 else 1.0), 10.0, seed=index))
    falls = [e for e in events if e.type == "fall"]
    assert len(falls) == 1, kinds(events)
    # The event comes lying_s (2 s) after lying starts, and its start is when the hips began to drop.
    assert 2.0 <= (falls[0].start_ns - WALL0) / 1e9 <= 2.8
    assert falls[0].pose is not None and falls[0].confidence > 0.5


def test_fall_rule_holds_while_lying_and_rearms_after_getting_up(people):
    a = Analytics(rules=FALL)

    def fall_get_up_fall(t):
        if t < 2:
            return fall, 0.0
        if t < 7:
            return fall, smooth((t - 2) / 0.8)
        if t < 9:
            return fall, 1 - smooth((t - 7) / 1.5)  # gets up slowly
        return fall, smooth((t - 11) / 0.8)

    track = clip(people[0], lambda t: (W * 0.4, H * 0.85), fall_get_up_fall, 16.0)
    events = run(a, track[: 6 * FPS])
    assert kinds(events, "fall") == ["fall"] and a.counters()["rules"] == {"fall": 1}
    events = run(a, track[6 * FPS : 10 * FPS])
    assert kinds(events, "fall") == [] and a.counters()["rules"] == {"fall": 0}
    assert kinds(run(a, track[10 * FPS :]), "fall") == ["fall"]


def test_lying_down_slowly_is_not_a_fall(people):
    events = run(Analytics(rules=FALL), clip(people[0], lambda t: (W * 0.4, H * 0.85),
                                             lambda t: (fall, smooth((t - 1) / 4)), 10.0))
    assert kinds(events, "fall") == []


@pytest.mark.parametrize("motion", [sit, bend, crouch], ids=["sitting", "bending", "crouching"])
@pytest.mark.parametrize("index", range(4))
def test_sitting_bending_crouching_never_fire(people, motion, index):
    # Fast (0.6 s down), held for 6 s, then back up, twice; with detector-like jitter.
    def down_up(t):
        phase = t % 8
        return motion, smooth(phase / 0.6) if phase < 6 else 1 - smooth((phase - 6) / 0.6)

    a = Analytics(rules=FALL)
    events = run(a, clip(people[index], lambda t: (W * 0.4, H * 0.85), down_up, 16.0, jitter_px=3.0, seed=index))
    assert kinds(events, "fall") == []


def test_real_bending_person_from_coco_is_not_lying(coco_mini):
    # Annotation 1242217 is a person bent forward at the hips (torso about 80 degrees from vertical).
    ann = json.loads((coco_mini / "person_keypoints.json").read_text())
    k = np.asarray(next(a for a in ann["annotations"] if a["id"] == 1242217)["keypoints"], np.float32).reshape(17, 3)
    t = torso(k[:, :2], (k[:, 2] > 0).astype(np.float32), 0.5)
    assert t.angle_deg > 60 and not t.wide


# ---------------------------------------------------------------------------------------------- hands up


def test_hands_up_held_fires_once_a_short_wave_does_not(people):
    a = Analytics(rules=RulesConfig(hands_up=True))

    def gesture(t):
        if 1 <= t < 2:  # up for one second: shorter than hold_s (2 s)
            return hands_up, 1.0
        if 4 <= t < 8:  # up for four seconds: one event
            return hands_up, 1.0
        return hands_up, 0.0

    events = run(a, clip(people[0], lambda t: (W * 0.5, H * 0.85), gesture, 10.0))
    ups = [e for e in events if e.type == "hands_up"]
    assert len(ups) == 1 and abs((ups[0].start_ns - WALL0) / 1e9 - 4.0) < 0.1
    assert a.counters()["rules"] == {"hands_up": 0}  # hands down again at the end
    assert kinds(run(Analytics(rules=FALL), clip(people[0], lambda t: (W * 0.5, H * 0.85), gesture, 10.0))) == []


def test_no_rules_configured_is_disabled():
    assert not Analytics().enabled
    assert Analytics(rules=RulesConfig(hands_up=True)).enabled


def test_the_lying_angle_is_what_keeps_a_deep_squat_from_firing(people):
    # The same squat as above: with the tilt threshold lowered to 40 degrees it does count as a fall, so the
    # test above holds because of the rule, not because the motion is too gentle to trip anything.
    loose = RulesConfig(fall={"enabled": True, "lying_angle_deg": 40})
    events = run(Analytics(rules=loose), clip(people[1], lambda t: (W * 0.4, H * 0.85),
                                              lambda t: (crouch, smooth(t / 0.6)), 6.0, jitter_px=3.0, seed=1))
    assert kinds(events, "fall") == ["fall"]
