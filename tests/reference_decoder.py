"""Vectorised NumPy + scipy associative-embedding grouping: the oracle and the speed yardstick for ``edgepose.decode``.

The same algorithm as HigherHRNet's ``lib/core/group.py`` (HeatmapParser.parse with adjust and refine) written the
way an efficient NumPy decoder is: top-k by ``argpartition``, tag distances of all candidates to all people in one
broadcast, ``scipy.optimize.linear_sum_assignment`` for the matching, and refinement of all of a person's missing
joints in one whole-map expression. None of the Numba decoder's shortcuts (segment maxima, bounds, search order)
appear here, so agreement between the two means something, and the Numba decoder's speed-up over this one is the
speed-up over a competent NumPy implementation, not over a naive one.

The conventions ``edgepose.decode.grouping`` documents are followed: top-k ties in row-major order, people kept in
a list, float64 tag arithmetic, at most ``max_people`` people returned.

Returns plain arrays (xy (n, 17, 2), conf (n, 17), score (n,)) in heatmap pixels.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter
from scipy.optimize import linear_sum_assignment

JOINT_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)


def top_k(peaks, k, nms_kernel=5, nms=True):
    """(values (J, k), flat positions (J, k)) of the k highest (NMS-ed) pixels per joint, ties in row-major order."""
    nj = peaks.shape[0]
    if nms:
        pooled = maximum_filter(peaks, size=(1, nms_kernel, nms_kernel), mode="constant", cval=-np.inf)
        peaks = peaks * (pooled == peaks)
    flat = peaks.reshape(nj, -1)
    k = min(k, flat.shape[1])
    kth = np.take_along_axis(flat, np.argpartition(-flat, k - 1, axis=1)[:, k - 1 : k], axis=1)
    # argpartition leaves ties at the k-th value in any order: keep everything above it and the first of the
    # equal ones in row-major order, so the result does not depend on the partition's internals.
    above = flat > kth
    equal = flat == kth
    keep = above | (equal & (np.cumsum(equal, axis=1) <= k - above.sum(axis=1, keepdims=True)))
    pos = np.nonzero(keep)[1].reshape(nj, k)  # row-major within each joint
    vals = np.take_along_axis(flat, pos, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(pos, order, axis=1)


def match_by_tag(vals, pos, tags, p):
    """Official match_by_tag on arrays: joint flat positions (P, J) (-1 = missing), values (P, J), tag sums (P, L),
    tag counts (P,)."""
    nj, h, w, nl = tags.shape
    cap = vals.size + 1
    joint_pos = np.full((cap, nj), -1, np.int64)
    joint_val = np.zeros((cap, nj), np.float32)
    tag_sum = np.zeros((cap, nl))
    tag_cnt = np.zeros(cap, np.int64)
    n = 0
    flat_tags = tags.reshape(nj, h * w, nl)
    for idx in p["joint_order"]:
        keep = vals[idx] > p["detection_threshold"]
        v, q = vals[idx][keep], pos[idx][keep]
        if len(v) == 0:
            continue
        row_tags = flat_tags[idx, q].astype(np.float64)  # (m, L)
        target = np.full(len(v), -1)
        if n > 0:
            grouped = min(n, p["max_people"])
            if p["ignore_too_much"] and grouped == p["max_people"]:
                continue
            means = tag_sum[:grouped] / tag_cnt[:grouped, None]
            dist = np.sqrt(((row_tags[:, None, :] - means[None]) ** 2).sum(axis=2))
            cost = np.rint(dist) * 100 - v[:, None].astype(np.float64) if p["use_detection_val"] else dist
            # The official code pads the columns with 1e10 and runs munkres; every such square matching uses all
            # padded columns, so it is the rectangular problem that linear_sum_assignment solves directly.
            rows, cols = linear_sum_assignment(cost)
            ok = dist[rows, cols] < p["tag_threshold"]
            target[rows[ok]] = cols[ok]
        new = target < 0
        target[new] = n + np.arange(new.sum())
        n += int(new.sum())
        joint_pos[target, idx] = q
        joint_val[target, idx] = v
        tag_sum[target] += row_tags
        tag_cnt[target] += 1
    return joint_pos[:n], joint_val[:n], tag_sum[:n], tag_cnt[:n]


def quarter_offsets(det, joints, ys, xs):
    """(dx, dy) arrays: a quarter pixel towards the higher neighbour (ties go left/up), borders clipped."""
    _, h, w = det.shape
    dx = np.where(det[joints, ys, np.minimum(xs + 1, w - 1)] > det[joints, ys, np.maximum(xs - 1, 0)], 0.25, -0.25)
    dy = np.where(det[joints, np.minimum(ys + 1, h - 1), xs] > det[joints, np.maximum(ys - 1, 0), xs], 0.25, -0.25)
    return dx, dy


def refine(det, tags, mean, missing, xy, conf):
    """Official HeatmapParser.refine for one person, all missing joints at once: each goes to the first argmax of
    heatmap - round(|tag - mean tag|) over its whole map, kept when the heatmap value there is > 0."""
    if len(missing) == 0:
        return
    _, h, w = det.shape
    diff = tags[missing] - mean  # float64, (m, H, W, L)
    # One tag dimension (the usual case): sqrt(d * d) is exactly |d| in IEEE arithmetic, at a third of the passes.
    # More: squares summed in dimension order, as the decoder does (einsum's order can flip a rint at k + 0.5).
    dist = np.abs(diff[..., 0])
    if diff.shape[3] > 1:
        np.square(dist, out=dist)
        for dim in range(1, diff.shape[3]):
            dist += diff[..., dim] ** 2
        np.sqrt(dist, out=dist)
    score = np.subtract(det[missing], np.rint(dist, out=dist), out=dist)
    best = score.reshape(len(missing), -1).argmax(axis=1)
    ys, xs = best // w, best % w
    val = det[missing, ys, xs]
    found = val > 0
    dx, dy = quarter_offsets(det, missing, ys, xs)
    joints = missing[found]
    xy[joints, 0] = (xs + 0.5 + dx)[found]
    xy[joints, 1] = (ys + 0.5 + dy)[found]
    conf[joints] = val[found]


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
    nj, h, w = det.shape
    p = dict(
        detection_threshold=detection_threshold,
        tag_threshold=tag_threshold,
        max_people=max_people,
        ignore_too_much=ignore_too_much,
        use_detection_val=use_detection_val,
        joint_order=joint_order,
    )
    vals, pos = top_k(det if peaks is None else np.asarray(peaks, np.float32), top_k_count, nms_kernel, nms)
    joint_pos, joint_val, tag_sum, tag_cnt = (a[:max_people] for a in match_by_tag(vals, pos, tags, p))
    n = len(joint_pos)
    xy = np.zeros((n, nj, 2), np.float32)
    conf = np.where(joint_pos >= 0, joint_val, 0).astype(np.float32)
    people, joints = np.nonzero(joint_pos >= 0)
    ys, xs = joint_pos[people, joints] // w, joint_pos[people, joints] % w
    if adjust_on:
        dx, dy = quarter_offsets(det, joints, ys, xs)
        xy[people, joints, 0] = xs + 0.5 + dx
        xy[people, joints, 1] = ys + 0.5 + dy
    else:
        xy[people, joints, 0] = xs
        xy[people, joints, 1] = ys
    score = conf.astype(np.float64).mean(axis=1).astype(np.float32)
    if refine_on:
        for person in range(n):
            missing = np.flatnonzero(conf[person] <= 0)
            refine(det, tags, tag_sum[person] / tag_cnt[person], missing, xy[person], conf[person])
    return xy, conf, score
