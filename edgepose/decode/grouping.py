"""Associative-embedding grouping (HigherHRNet's ``HeatmapParser.parse``) as one Numba function.

The algorithm, per frame:
1. Candidates: per joint type, the pixels that are maxima of a ``nms_kernel`` max-pool window (skipped when the
   network already did this NMS) with a value above ``detection_threshold``; the ``top_k`` highest are kept,
   highest first, equal values in row-major pixel order.
2. Matching: joint types are taken in ``joint_order``. The first one with candidates seeds one person per
   candidate. Each later candidate is matched to the first ``max_people`` people by an optimal assignment on
   ``round(|tag - person mean tag|) * 100 - value``; a match whose tag distance is not below ``tag_threshold``,
   or a candidate left without a person, starts a new person.
3. Person score = mean of the 17 joint values (missing joints count 0).
4. Adjust: every joint moves a quarter pixel towards its higher neighbour in x and in y, and by +0.5 into the
   centre of its pixel.
5. Refine: each missing joint of a person goes to the argmax of ``heatmap - round(|tag - person mean tag|)``
   (first in row-major order), kept when the heatmap value there is > 0.

Positions are in heatmap pixels with HigherHRNet's convention: pixel (i, j) spans [j, j+1) x [i, i+1), so its
centre is (j + 0.5, i + 0.5); with ``adjust`` the decoder returns such continuous positions, which scale to
frame pixels by a plain multiplication.

Deliberate differences from the official Python, none of which change results on real network outputs:
people are kept in a list rather than a dict keyed by their first tag value (the official code merges two
people whose seed tags are bit-identical); tag means and distances are computed in float64; at most
``max_people`` people are returned. The assignment is the shortest-augmenting-path Hungarian method
(Crouse 2016, the algorithm behind ``scipy.optimize.linear_sum_assignment``), so ties resolve as scipy does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_INF = np.inf


@njit(cache=True)
def _augmenting_path(cost, u, v, path, row4col, spc, i, sr, sc, remaining):
    """Shortest augmenting path from free row i; returns (sink column, path length) or (-1, inf)."""
    nc = cost.shape[1]
    num_remaining = nc
    for it in range(nc):
        # Reverse order makes a constant cost matrix resolve to the identity, as scipy does.
        remaining[it] = nc - it - 1
    sr[:] = False
    sc[:] = False
    spc[:] = _INF
    min_val = 0.0
    sink = -1
    while sink == -1:
        index = -1
        lowest = _INF
        sr[i] = True
        for it in range(num_remaining):
            j = remaining[it]
            r = min_val + cost[i, j] - u[i] - v[j]
            if r < spc[j]:
                path[j] = i
                spc[j] = r
            # Among equal costs prefer a free column: it ends the path sooner.
            if spc[j] < lowest or (spc[j] == lowest and row4col[j] == -1):
                lowest = spc[j]
                index = it
        min_val = lowest
        if min_val == _INF:
            return -1, min_val
        j = remaining[index]
        if row4col[j] == -1:
            sink = j
        else:
            i = row4col[j]
        sc[j] = True
        num_remaining -= 1
        remaining[index] = remaining[num_remaining]
    return sink, min_val


@njit(cache=True)
def _solve_square_or_wide(cost):
    """Min-cost assignment for nr <= nc: col4row (nr,), every row assigned."""
    nr, nc = cost.shape
    u = np.zeros(nr)
    v = np.zeros(nc)
    spc = np.empty(nc)
    path = np.full(nc, -1, np.int64)
    col4row = np.full(nr, -1, np.int64)
    row4col = np.full(nc, -1, np.int64)
    sr = np.zeros(nr, np.bool_)
    sc = np.zeros(nc, np.bool_)
    remaining = np.empty(nc, np.int64)
    for cur_row in range(nr):
        sink, min_val = _augmenting_path(cost, u, v, path, row4col, spc, cur_row, sr, sc, remaining)
        u[cur_row] += min_val
        for i in range(nr):
            if sr[i] and i != cur_row:
                u[i] += min_val - spc[col4row[i]]
        for j in range(nc):
            if sc[j]:
                v[j] -= min_val - spc[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            tmp = col4row[i]
            col4row[i] = j
            j = tmp
            if i == cur_row:
                break
    return col4row


@njit(cache=True)
def linear_sum_assignment(cost):
    """Min-cost assignment of a finite (nr, nc) float64 matrix: col_for_row (nr,), -1 for rows left out.

    min(nr, nc) pairs are made, the same pairs ``scipy.optimize.linear_sum_assignment`` makes.
    """
    nr, nc = cost.shape
    out = np.full(nr, -1, np.int64)
    if nr == 0 or nc == 0:
        return out
    transpose = nc < nr
    work = np.ascontiguousarray(cost.T) if transpose else cost.copy()
    col4row = _solve_square_or_wide(work)
    if transpose:
        for c in range(col4row.shape[0]):
            out[col4row[c]] = c
    else:
        out[:] = col4row
    return out


@njit(cache=True)
def _is_peak(hm, y, x, value, radius):
    """True when no pixel of the (2r+1)^2 window around (y, x), clipped at the border, exceeds value."""
    h, w = hm.shape
    for yy in range(max(y - radius, 0), min(y + radius + 1, h)):
        for xx in range(max(x - radius, 0), min(x + radius + 1, w)):
            if hm[yy, xx] > value:
                return False
    return True


_CHUNK = 64  # pixels of a row tested at once (vectorised) before looking at any of them individually


@njit(cache=True)
def _f32_floor(threshold):
    """The largest float32 <= threshold: ``v >= floor`` is then a superset test of ``v > threshold``."""
    t32 = np.float32(threshold)
    if t32 > threshold:
        t32 = np.nextafter(t32, np.float32(-np.inf))
    return t32


@njit(cache=True)
def _count_at_least(row, x0, x1, floor):
    """How many of row[x0:x1] are >= floor; branch-free float32 compares so LLVM vectorises it."""
    count = 0
    for x in range(x0, x1):
        count += row[x] >= floor
    return count


@njit(cache=True)
def _candidates(peaks, do_nms, radius, top_k, threshold):
    """Per joint the top_k peaks above threshold: values (J, K) f32, flat positions (J, K), counts (J,)."""
    nj, h, w = peaks.shape
    vals = np.zeros((nj, top_k), np.float32)
    pos = np.full((nj, top_k), -1, np.int64)
    count = np.zeros(nj, np.int64)
    floor = _f32_floor(threshold)
    for j in range(nj):
        hm = peaks[j]
        n = 0
        for y in range(h):
            row = hm[y]
            # Most of a heatmap is background: skip rows, then chunks, with nothing above the threshold.
            if _count_at_least(row, 0, w, floor) == 0:
                continue
            for x0 in range(0, w, _CHUNK):
                x1 = min(x0 + _CHUNK, w)
                if _count_at_least(row, x0, x1, floor) == 0:
                    continue
                for x in range(x0, x1):
                    value = row[x]
                    if value <= threshold or (n == top_k and value <= vals[j, n - 1]):
                        continue
                    if do_nms and not _is_peak(hm, y, x, value, radius):
                        continue
                    # Insert after all values >= value: equal values stay in row-major order.
                    k = n if n < top_k else top_k - 1
                    while k > 0 and vals[j, k - 1] < value:
                        vals[j, k] = vals[j, k - 1]
                        pos[j, k] = pos[j, k - 1]
                        k -= 1
                    vals[j, k] = value
                    pos[j, k] = y * w + x
                    if n < top_k:
                        n += 1
        count[j] = n
    return vals, pos, count


@njit(cache=True)
def _quarter(det, y, x):
    """Quarter-pixel shift (dx, dy) towards the higher neighbour (ties go left/up), as HigherHRNet."""
    h, w = det.shape
    dx = 0.25 if det[y, min(x + 1, w - 1)] > det[y, max(x - 1, 0)] else -0.25
    dy = 0.25 if det[min(y + 1, h - 1), x] > det[max(y - 1, 0), x] else -0.25
    return dx, dy


@njit(cache=True)
def _match(tags, cand_val, cand_pos, cand_n, joint_order, tag_threshold, max_people, use_detection_val,
           ignore_too_much):
    """Group candidates into people: joint flat positions (P, J) (-1 = missing), values (P, J), tag sums, counts."""
    nj, h, w, nl = tags.shape
    cap = nj * cand_val.shape[1] + 1
    joint_pos = np.full((cap, nj), -1, np.int64)
    joint_val = np.zeros((cap, nj), np.float32)
    tag_sum = np.zeros((cap, nl))
    tag_cnt = np.zeros(cap, np.int64)
    n_people = 0
    for idx in joint_order:
        m = cand_n[idx]
        if m == 0:
            continue
        row_tags = np.empty((m, nl))
        for r in range(m):
            p = cand_pos[idx, r]
            for l in range(nl):
                row_tags[r, l] = tags[idx, p // w, p % w, l]
        col_for_row = np.full(m, -1, np.int64)
        dist = np.zeros((m, 0))
        if n_people > 0:
            n_grouped = min(n_people, max_people)
            if ignore_too_much and n_grouped == max_people:
                continue
            dist = np.empty((m, n_grouped))
            cost = np.empty((m, n_grouped))
            for g in range(n_grouped):
                for r in range(m):
                    s = 0.0
                    for l in range(nl):
                        d = row_tags[r, l] - tag_sum[g, l] / tag_cnt[g]
                        s += d * d
                    dist[r, g] = np.sqrt(s)
                    if use_detection_val:
                        cost[r, g] = np.rint(dist[r, g]) * 100.0 - np.float64(cand_val[idx, r])
                    else:
                        cost[r, g] = dist[r, g]
            col_for_row = linear_sum_assignment(cost)
        for r in range(m):
            g = col_for_row[r]
            if g < 0 or dist[r, g] >= tag_threshold:
                g = n_people
                n_people += 1
            joint_pos[g, idx] = cand_pos[idx, r]
            joint_val[g, idx] = cand_val[idx, r]
            tag_sum[g] += row_tags[r]
            tag_cnt[g] += 1
    return joint_pos[:n_people], joint_val[:n_people], tag_sum[:n_people], tag_cnt[:n_people]


@njit(cache=True)
def _refine(det, tags, joint_pos, joint_val, tag_sum, tag_cnt, cand_pos, cand_n, xy, conf):
    """Fill missing joints in place (xy, conf), one pass over each joint's map for all people missing it."""
    nj, h, w, nl = tags.shape
    n = joint_pos.shape[0]
    mean = np.empty((n, nl))
    for p in range(n):
        mean[p] = tag_sum[p] / tag_cnt[p]
    lower = np.empty(n)
    nsx = (w + _CHUNK - 1) // _CHUNK
    seg_max = np.empty((h, nsx), np.float32)
    tmin = np.empty((h, nsx, nl), np.float32)
    tmax = np.empty((h, nsx, nl), np.float32)
    bound = np.empty((h, nsx))
    best = np.empty(n)
    best_pos = np.empty(n, np.int64)
    for j in range(nj):
        need = np.flatnonzero(joint_val[:, j] <= 0.0)
        if need.shape[0] == 0:
            continue
        hm = det[j]
        tg = tags[j]
        # A lower bound on each person's maximum, from pixels likely to score well: the joint's own candidates
        # and the person's other joints. Pixels whose heatmap value is below it cannot win (score <= heatmap).
        for q in need:
            lb = -_INF
            for k in range(cand_n[j] + nj):
                flat = cand_pos[j, k] if k < cand_n[j] else joint_pos[q, k - cand_n[j]]
                if flat >= 0:
                    lb = max(lb, _refine_score(hm, tg, flat // w, flat % w, mean[q]))
            lower[q] = lb
        # Per 64-pixel row segment: max heatmap value and tag box. A pixel's score is at most the segment's
        # max heatmap value - round(distance from the person's mean tag to the box), so segments whose bound is
        # below the person's best score so far cannot hold its maximum.
        for y in range(h):
            for si in range(nsx):
                x0 = si * _CHUNK
                seg_max[y, si] = _segment_box(hm[y], tg[y], x0, min(x0 + _CHUNK, w), tmin[y, si], tmax[y, si])
        for q in need:
            for y in range(h):
                for si in range(nsx):
                    s = 0.0
                    for l in range(nl):
                        gap = max(tmin[y, si, l] - mean[q, l], mean[q, l] - tmax[y, si, l], 0.0)
                        s += gap * gap
                    bound[y, si] = np.float64(seg_max[y, si]) - np.rint(np.sqrt(s))
            # Raise the lower bound with the most promising segment first, then scan row-major.
            k = np.argmax(bound)
            y, si = k // nsx, k % nsx
            if bound[y, si] >= lower[q]:
                lower[q] = max(lower[q], _segment_best(hm, tg, y, si * _CHUNK, min(si * _CHUNK + _CHUNK, w),
                                                       mean[q], -_INF)[0])
            best[q] = -_INF
            best_pos[q] = -1
            for y in range(h):
                for si in range(nsx):
                    # Only a strictly higher score can replace the best so far.
                    if bound[y, si] < lower[q] or bound[y, si] <= best[q]:
                        continue
                    x0 = si * _CHUNK
                    value, at = _segment_best(hm, tg, y, x0, min(x0 + _CHUNK, w), mean[q], max(lower[q], best[q]))
                    if value > best[q]:  # strict: the first maximum in row-major order wins, like argmax
                        best[q] = value
                        best_pos[q] = y * w + at
        for q in need:
            y, x = best_pos[q] // w, best_pos[q] % w
            if hm[y, x] > 0:
                dx, dy = _quarter(hm, y, x)
                xy[q, j, 0] = x + 0.5 + dx
                xy[q, j, 1] = y + 0.5 + dy
                conf[q, j] = hm[y, x]


@njit(cache=True, fastmath={"nnan", "ninf"})  # inputs are checked finite; lets LLVM vectorise the reductions
def _segment_box(hm_row, tag_row, x0, x1, tmin, tmax):
    """Max heatmap value of row[x0:x1]; per-dimension tag min/max of the same pixels into tmin, tmax."""
    seg_max = hm_row[x0]
    for x in range(x0 + 1, x1):
        seg_max = max(seg_max, hm_row[x])
    for l in range(tag_row.shape[1]):
        lo = tag_row[x0, l]
        hi = lo
        for x in range(x0 + 1, x1):
            lo = min(lo, tag_row[x, l])
            hi = max(hi, tag_row[x, l])
        tmin[l] = lo
        tmax[l] = hi
    return seg_max


@njit(cache=True)
def _segment_best(hm, tg, y, x0, x1, mean, floor):
    """(best score, its x) over row y, x0 <= x < x1, looking only at pixels whose heatmap value >= floor."""
    best = -_INF
    at = -1
    for x in range(x0, x1):
        if hm[y, x] >= floor:
            score = _refine_score(hm, tg, y, x, mean)
            if score > best:
                best = score
                at = x
    return best, at


@njit(cache=True)
def _refine_score(hm, tg, y, x, mean):
    s = 0.0
    for l in range(mean.shape[0]):
        d = tg[y, x, l] - mean[l]
        s += d * d
    return np.float64(hm[y, x]) - np.rint(np.sqrt(s))


@njit(cache=True)
def group_arrays(peaks, det, tags, do_nms, nms_kernel, top_k, detection_threshold, tag_threshold, max_people,
                 use_detection_val, ignore_too_much, adjust, refine, joint_order):
    """The whole grouping on validated, C-contiguous float32 arrays.

    peaks (J, H, W): where candidates are looked for (max-pool NMS applied here when do_nms).
    det (J, H, W): heatmap values used for the quarter-pixel adjustment and refinement (== peaks unless the
        network applied NMS itself). tags (J, H, W, L). joint_order: int64 (J,).
    Returns xy (n, J, 2) f32 heatmap pixels, conf (n, J) f32, score (n,) f32.
    """
    nj, h, w = det.shape
    cand_val, cand_pos, cand_n = _candidates(peaks, do_nms, nms_kernel // 2, top_k, detection_threshold)
    joint_pos, joint_val, tag_sum, tag_cnt = _match(
        tags, cand_val, cand_pos, cand_n, joint_order, tag_threshold, max_people, use_detection_val,
        ignore_too_much,
    )
    n = min(joint_pos.shape[0], max_people)
    joint_pos, joint_val, tag_sum, tag_cnt = joint_pos[:n], joint_val[:n], tag_sum[:n], tag_cnt[:n]
    xy = np.zeros((n, nj, 2), np.float32)
    conf = np.zeros((n, nj), np.float32)
    score = np.empty(n, np.float32)
    for p in range(n):
        total = 0.0
        for j in range(nj):
            total += joint_val[p, j]
            flat = joint_pos[p, j]
            if flat < 0:
                continue
            y, x = flat // w, flat % w
            conf[p, j] = joint_val[p, j]
            if adjust:
                dx, dy = _quarter(det[j], y, x)
                xy[p, j, 0] = x + 0.5 + dx
                xy[p, j, 1] = y + 0.5 + dy
            else:
                xy[p, j, 0] = x
                xy[p, j, 1] = y
        score[p] = total / nj
    if refine and n > 0:
        _refine(det, tags, joint_pos, joint_val, tag_sum, tag_cnt, cand_pos, cand_n, xy, conf)
    return xy, conf, score


@njit(cache=True, fastmath={"reassoc"})
def all_finite(flat):
    """True when no element is NaN or infinite: x - x is 0 for finite x and NaN otherwise."""
    acc = np.float32(0.0)
    for i in range(flat.shape[0]):
        acc += flat[i] - flat[i]
    return acc == 0
