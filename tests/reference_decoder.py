"""Plain NumPy + scipy associative-embedding grouping: the correctness oracle for ``edgepose.decode``.

Written straight from the semantics of HigherHRNet's ``lib/core/group.py`` (HeatmapParser.parse with adjust and
refine), whole-array and without any of the Numba decoder's shortcuts, so the two can be compared on the same
inputs. The conventions ``edgepose.decode.grouping`` documents are followed here too: top-k ties in row-major
order, people kept in a list, float64 tag arithmetic, at most ``max_people`` people returned.

Returns plain arrays (xy (n, 17, 2), conf (n, 17), score (n,)) in heatmap pixels.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter
from scipy.optimize import linear_sum_assignment

JOINT_ORDER = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16]


def top_k(det, k, nms_kernel=5, nms=True):
    """Per joint: (values (k,), x (k,), y (k,)) of the k highest NMS-ed pixels, ties in row-major order."""
    out = []
    for hm in det:
        if nms:
            pooled = maximum_filter(hm, size=nms_kernel, mode="constant", cval=-np.inf)
            hm = hm * (pooled == hm)
        flat = hm.reshape(-1)
        order = np.argsort(-flat, kind="stable")[: min(k, flat.size)]
        out.append((flat[order], order % hm.shape[1], order // hm.shape[1]))
    return out


def match_by_tag(candidates, tags, p):
    """Official match_by_tag: returns a list of people, each {"joints": (17, 3) [x, y, val], "tags": [...]}."""
    people = []
    for idx in p["joint_order"]:
        vals, xs, ys = candidates[idx]
        keep = vals > p["detection_threshold"]
        vals, xs, ys = vals[keep], xs[keep], ys[keep]
        if len(vals) == 0:
            continue
        joint_tags = tags[idx, ys, xs].astype(np.float64)  # (m, L)
        joints = np.stack([xs, ys, vals.astype(np.float64)], axis=1)
        if not people:
            for joint, tag in zip(joints, joint_tags):
                people.append(_new_person(joint, tag, idx))
            continue
        grouped = people[: p["max_people"]]
        if p["ignore_too_much"] and len(grouped) == p["max_people"]:
            continue
        means = np.array([np.mean(np.stack(person["tags"]), axis=0) for person in grouped])
        dist = np.sqrt(((joint_tags[:, None, :] - means[None, :, :]) ** 2).sum(axis=2))
        cost = np.rint(dist) * 100 - joints[:, 2:3] if p["use_detection_val"] else dist
        # The official code pads the columns with 1e10 and runs munkres; every such square matching uses all padded
        # columns, so it is the rectangular problem that linear_sum_assignment solves directly.
        rows, cols = linear_sum_assignment(cost)
        col_for_row = dict(zip(rows.tolist(), cols.tolist()))
        for row in range(len(joints)):
            col = col_for_row.get(row)
            if col is not None and dist[row, col] < p["tag_threshold"]:
                grouped[col]["joints"][idx] = joints[row]
                grouped[col]["tags"].append(joint_tags[row])
            else:
                people.append(_new_person(joints[row], joint_tags[row], idx))
    return people


def _new_person(joint, tag, idx):
    joints = np.zeros((17, 3))
    joints[idx] = joint
    return {"joints": joints, "tags": [tag]}


def _quarter_offset(hm, x, y):
    h, w = hm.shape
    dx = 0.25 if hm[y, min(x + 1, w - 1)] > hm[y, max(x - 1, 0)] else -0.25
    dy = 0.25 if hm[min(y + 1, h - 1), x] > hm[max(y - 1, 0), x] else -0.25
    return dx, dy


def adjust(keypoints, det):
    for j, (x, y, val) in enumerate(keypoints):
        if val > 0:
            xi, yi = int(x), int(y)
            dx, dy = _quarter_offset(det[j], xi, yi)
            keypoints[j, :2] = (xi + dx + 0.5, yi + dy + 0.5)
    return keypoints


def refine(det, tags, keypoints):
    """Official HeatmapParser.refine: fill joints with value 0 from the heatmap minus rounded tag distance."""
    found = [tags[j, int(y), int(x)] for j, (x, y, val) in enumerate(keypoints) if val > 0]
    prev_tag = np.mean(np.stack(found).astype(np.float64), axis=0)
    for j in range(det.shape[0]):
        hm = det[j]
        tt = np.sqrt(((tags[j].astype(np.float64) - prev_tag) ** 2).sum(axis=2))
        score = hm.astype(np.float64) - np.rint(tt)
        y, x = np.unravel_index(np.argmax(score), hm.shape)
        val = hm[y, x]
        if val > 0 and keypoints[j, 2] == 0:
            dx, dy = _quarter_offset(hm, x, y)
            keypoints[j] = (x + 0.5 + dx, y + 0.5 + dy, val)
    return keypoints


def reference_group(
    det,
    tags,
    *,
    nms=True,
    peaks=None,
    nms_kernel=5,
    top_k_count=30,
    detection_threshold=0.1,
    tag_threshold=1.0,
    max_people=30,
    use_detection_val=True,
    ignore_too_much=False,
    adjust_on=True,
    refine_on=True,
    joint_order=JOINT_ORDER,
):
    """HigherHRNet parse() on one image. det (17, H, W); tags (17, H, W[, L]); peaks: map for candidates if not det."""
    det = np.asarray(det, np.float32)
    tags = np.asarray(tags, np.float32)
    if tags.ndim == 3:
        tags = tags[..., None]
    p = dict(
        detection_threshold=detection_threshold,
        tag_threshold=tag_threshold,
        max_people=max_people,
        use_detection_val=use_detection_val,
        ignore_too_much=ignore_too_much,
        joint_order=joint_order,
    )
    candidates = top_k(det if peaks is None else np.asarray(peaks, np.float32), top_k_count, nms_kernel, nms)
    people = match_by_tag(candidates, tags, p)[:max_people]
    out = []
    for person in people:
        kp = person["joints"]
        if adjust_on:
            kp = adjust(kp, det)
        score = np.float32(kp[:, 2].mean())
        if refine_on:
            kp = refine(det, tags, kp)
        out.append((kp, score))
    xy = np.array([kp[:, :2] for kp, _ in out], np.float32).reshape(-1, 17, 2)
    conf = np.array([kp[:, 2] for kp, _ in out], np.float32).reshape(-1, 17)
    score = np.array([s for _, s in out], np.float32)
    return xy, conf, score
