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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _is_peak(hm, y, x, value, radius):
    """True when no pixel of the (2r+1)^2 window around (y, x), clipped at the border, exceeds value."""
    h, w = hm.shape
    # Most pixels above the threshold sit on the slope of a peak: a higher left/right neighbour rejects them
    # before the whole window is read.
    if radius > 0 and ((x > 0 and hm[y, x - 1] > value) or (x + 1 < w and hm[y, x + 1] > value)):
        return False
    for yy in range(max(y - radius, 0), min(y + radius + 1, h)):
        for xx in range(max(x - radius, 0), min(x + radius + 1, w)):
            if hm[yy, xx] > value:
                return False
    return True


# Maps are summarised per row segment of this many pixels: the candidate scan skips segments whose max is below
# the threshold, and refinement ranks segments by their max. 32 keeps the max vectorised and the segments small
# enough that their tag ranges stay tight.
_SEG = 32


# Max is exact under any flags; fastmath lets LLVM vectorise the reduction, and inlining keeps the
# constant-length loop visible to it (a call per segment costs as much as the maximum itself).
@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _row_max(row, x0, x1):
    """max(row[x0:x1]) (x0 < x1)."""
    m = row[x0]
    if x1 - x0 == _SEG:  # a constant trip count: LLVM unrolls it into a few SIMD max instructions
        for k in range(_SEG):
            m = max(m, row[x0 + k])
        return m
    for x in range(x0 + 1, x1):
        m = max(m, row[x])
    return m


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _row_min(row, x0, x1):
    """min(row[x0:x1]) (x0 < x1), vectorised as ``_row_max``."""
    m = row[x0]
    if x1 - x0 == _SEG:
        for k in range(_SEG):
            m = min(m, row[x0 + k])
        return m
    for x in range(x0 + 1, x1):
        m = min(m, row[x])
    return m


@njit(cache=True, nogil=True)
def _segment_maxima(maps):
    """(J, H, ceil(W / _SEG)) float32: the max of every row segment of every map."""
    nj, h, w = maps.shape
    nsx = (w + _SEG - 1) // _SEG
    out = np.empty((nj, h, nsx), np.float32)
    for j in range(nj):
        for y in range(h):
            for s in range(nsx):
                out[j, y, s] = _row_max(maps[j, y], s * _SEG, min(s * _SEG + _SEG, w))
    return out


@njit(cache=True, nogil=True)
def _candidates(peaks, do_nms, radius, top_k, threshold):
    """Per joint the top_k peaks above threshold: values (J, K) f32, flat positions (J, K), counts (J,),
    and the row-segment maxima of ``peaks`` (as ``_segment_maxima``), computed on the way."""
    nj, h, w = peaks.shape
    vals = np.zeros((nj, top_k), np.float32)
    pos = np.full((nj, top_k), -1, np.int64)
    count = np.zeros(nj, np.int64)
    nsx = (w + _SEG - 1) // _SEG
    seg_max = np.empty((nj, h, nsx), np.float32)
    for j in range(nj):
        hm = peaks[j]
        n = 0
        for y in range(h):
            row = hm[y]
            for s in range(nsx):
                x0 = s * _SEG
                x1 = min(x0 + _SEG, w)
                m = _row_max(row, x0, x1)
                seg_max[j, y, s] = m
                # Most of a heatmap is background: nothing in this segment passes the threshold or the k-th value.
                if m <= threshold or (n == top_k and m <= vals[j, n - 1]):
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
    return vals, pos, count, seg_max


@njit(cache=True, nogil=True)
def _quarter(det, y, x):
    """Quarter-pixel shift (dx, dy) towards the higher neighbour (ties go left/up), as HigherHRNet."""
    h, w = det.shape
    dx = 0.25 if det[y, min(x + 1, w - 1)] > det[y, max(x - 1, 0)] else -0.25
    dy = 0.25 if det[min(y + 1, h - 1), x] > det[max(y - 1, 0), x] else -0.25
    return dx, dy


@njit(cache=True, nogil=True)
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


_TILE_ROWS = 8  # refinement bounds 8-row stacks of segments (256 pixels): few enough to order, small enough to prune


@njit(cache=True, nogil=True)
def _refine(det, tags, seg_max, joint_pos, joint_val, tag_sum, tag_cnt, cand_pos, cand_n, xy, conf):
    """Fill missing joints in place (xy, conf): each goes to the first argmax (row-major) of
    ``det[j] - round(|tag - person mean tag|)``, without scanning the whole map.

    A pixel's score is at most its heatmap value minus the rounded distance from the person's tag to the tag box
    (per-dimension min/max) of any region holding it. The map is cut into tiles of _TILE_ROWS row segments; a
    tile's heatmap max comes from ``seg_max`` ((J, H, S), the candidate scan's by-product). Per joint type the
    tiles are ordered once by heatmap max (a heap popped lazily, shared by all people missing the joint) and
    their tag boxes are computed on first use, also shared. Each person's search is best-first on two streams:
    the shared order, whose tiles get their box bound and go into the person's own heap, and that heap, whose
    top tile is scanned; it stops when neither stream can reach the person's best score. Equal scores resolve
    to the lower row-major index wherever they are found, so the visiting order does not change the result.
    """
    nj, h, w, nl = tags.shape
    n = joint_pos.shape[0]
    mean = np.empty((n, nl))
    for p in range(n):
        mean[p] = tag_sum[p] / tag_cnt[p]
    nsx = seg_max.shape[2]
    nty = (h + _TILE_ROWS - 1) // _TILE_ROWS
    n_tiles = nty * nsx
    tile_max = np.empty(n_tiles, np.float32)
    heap = np.empty(n_tiles, np.int64)
    order = np.empty(n_tiles, np.int64)  # tiles popped from the heap so far: descending max
    box_lo = np.empty((n_tiles, nl), np.float32)
    box_hi = np.empty((n_tiles, nl), np.float32)
    bound = np.empty(n_tiles)  # the current person's bound of each tile in its heap
    own = np.empty(n_tiles, np.int64)  # the current person's heap
    best = np.empty(n)
    best_pos = np.empty(n, np.int64)
    buf = np.empty(_SEG)
    for j in range(nj):
        need = np.flatnonzero(joint_val[:, j] <= 0.0)
        if need.shape[0] == 0:
            continue
        hm = det[j]
        tg = tags[j]
        sm = seg_max[j]
        # Start each search from pixels likely to score well, the joint's candidates and the person's other
        # joints, so that it stops early; tiles below the weakest such start are left out of the order.
        floor = _INF
        for q in need:
            best[q] = -_INF
            best_pos[q] = -1
            for k in range(cand_n[j] + nj):
                flat = cand_pos[j, k] if k < cand_n[j] else joint_pos[q, k - cand_n[j]]
                if flat >= 0:
                    _offer(hm, tg, flat // w, flat % w, mean, q, best, best_pos)
            floor = min(floor, best[q])
        n_heap = 0
        for t in range(n_tiles):
            y0 = (t // nsx) * _TILE_ROWS
            m = sm[y0, t % nsx]
            for y in range(y0 + 1, min(y0 + _TILE_ROWS, h)):
                m = max(m, sm[y, t % nsx])
            tile_max[t] = m
            if m >= floor:
                heap[n_heap] = t
                n_heap += 1
        for i in range(n_heap // 2 - 1, -1, -1):
            _sift_down(heap, n_heap, i, tile_max)
        _tile_boxes(tg, tile_max, floor, nsx, box_lo, box_hi)
        n_order = 0
        for q in need:
            i = 0
            n_own = 0
            while True:
                if i == n_order and n_heap > 0:
                    order[n_order] = heap[0]
                    n_order += 1
                    n_heap -= 1
                    heap[0] = heap[n_heap]
                    _sift_down(heap, n_heap, 0, tile_max)
                shared_key = np.float64(tile_max[order[i]]) if i < n_order else -_INF
                own_key = bound[own[0]] if n_own > 0 else -_INF
                # Equal is not enough to stop: a pixel scoring exactly the best but earlier in row-major order wins.
                if max(shared_key, own_key) < best[q]:
                    break
                if own_key >= shared_key:
                    t = own[0]
                    n_own -= 1
                    own[0] = own[n_own]
                    _sift_down(own, n_own, 0, bound)
                    _scan_tile(hm, tg, sm, t, nsx, w, mean, q, best, best_pos, buf)
                    continue
                t = order[i]
                i += 1
                gap2 = 0.0
                for l in range(nl):
                    gap = max(np.float64(box_lo[t, l]) - mean[q, l], mean[q, l] - np.float64(box_hi[t, l]), 0.0)
                    gap2 += gap * gap
                b = shared_key - np.rint(np.sqrt(gap2))
                if b > best[q] or (b == best[q] and (t // nsx) * _TILE_ROWS * w + (t % nsx) * _SEG < best_pos[q]):
                    bound[t] = b
                    own[n_own] = t
                    _sift_up(own, n_own, bound)
                    n_own += 1
        for q in need:
            y, x = best_pos[q] // w, best_pos[q] % w
            if hm[y, x] > 0:
                dx, dy = _quarter(hm, y, x)
                xy[q, j, 0] = x + 0.5 + dx
                xy[q, j, 1] = y + 0.5 + dy
                conf[q, j] = hm[y, x]


@njit(cache=True, nogil=True)
def _scan_tile(hm, tg, sm, t, nsx, w, mean, q, best, best_pos, buf):
    """Offer every pixel of tile t that can reach person q's best score (row segments below it are skipped)."""
    sx = t % nsx
    x0 = sx * _SEG
    x1 = min(x0 + _SEG, w)
    y0 = (t // nsx) * _TILE_ROWS
    for y in range(y0, min(y0 + _TILE_ROWS, hm.shape[0])):
        if np.float64(sm[y, sx]) < best[q]:
            continue
        if tg.shape[2] == 1:
            _scan_row_1d(hm[y], tg[y], y * w, x0, x1, mean[q, 0], q, best, best_pos, buf)
            continue
        for x in range(x0, x1):
            if hm[y, x] >= best[q]:
                _offer(hm, tg, y, x, mean, q, best, best_pos)


@njit(cache=True, nogil=True, inline="always")
def _scan_row_1d(hm_row, tg_row, flat0, x0, x1, m, q, best, best_pos, buf):
    """``_offer`` for pixels x0..x1 of one row with one tag dimension, scores computed in one vectorised loop
    (sqrt(d * d) is exactly |d|, so the score is the same)."""
    top = -_INF
    for x in range(x0, x1):
        score = np.float64(hm_row[x]) - np.rint(np.abs(np.float64(tg_row[x, 0]) - m))
        buf[x - x0] = score
        top = max(top, score)
    if top < best[q]:
        return
    for x in range(x0, x1):
        if buf[x - x0] == top:
            if top > best[q] or flat0 + x < best_pos[q]:
                best[q] = top
                best_pos[q] = flat0 + x
            return


@njit(cache=True, nogil=True)
def _offer(hm, tg, y, x, mean, q, best, best_pos):
    """Make pixel (y, x) person q's best if it scores higher, or equal and earlier in row-major order (argmax)."""
    s = 0.0
    for l in range(mean.shape[1]):
        d = np.float64(tg[y, x, l]) - mean[q, l]
        s += d * d
    score = np.float64(hm[y, x]) - np.rint(np.sqrt(s))
    flat = y * hm.shape[1] + x
    if score > best[q] or (score == best[q] and flat < best_pos[q]):
        best[q] = score
        best_pos[q] = flat


@njit(cache=True, nogil=True)
def _sift_down(heap, n, i, key):
    """Restore the max-heap property (by key[heap[.]]) below position i of heap[:n]."""
    item = heap[i]
    k = key[item]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and key[heap[c + 1]] > key[heap[c]]:
            c += 1
        if key[heap[c]] <= k:
            break
        heap[i] = heap[c]
        i = c
    heap[i] = item


@njit(cache=True, nogil=True)
def _sift_up(heap, i, key):
    """Move heap[i] up until its parent's key (key[heap[.]]) is not smaller: a push onto heap[:i + 1]."""
    item = heap[i]
    k = key[item]
    while i > 0:
        parent = (i - 1) // 2
        if key[heap[parent]] >= k:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = item


@njit(cache=True, nogil=True, fastmath={"nnan", "ninf"})  # inputs are checked finite; min/max are exact then
def _tile_boxes(tg, tile_max, floor, nsx, lo, hi):
    """Per-dimension min and max of the tags of every tile that can reach ``floor``, into lo[t], hi[t].

    One row-major sweep: memory is read in order, which costs a fraction of visiting the tiles one by one.
    """
    h, w, nl = tg.shape
    rows = tg.reshape(h, w * nl)
    for y in range(h):
        first = y % _TILE_ROWS == 0
        for sx in range(nsx):
            t = (y // _TILE_ROWS) * nsx + sx
            if tile_max[t] < floor:
                continue
            x0 = sx * _SEG
            x1 = min(x0 + _SEG, w)
            if nl == 1:  # one tag dimension: contiguous segments, min and max vectorise
                a = _row_min(rows[y], x0, x1)
                b = _row_max(rows[y], x0, x1)
                lo[t, 0] = a if first else min(a, lo[t, 0])
                hi[t, 0] = b if first else max(b, hi[t, 0])
                continue
            for l in range(nl):
                a = tg[y, x0, l] if first else lo[t, l]
                b = tg[y, x0, l] if first else hi[t, l]
                for x in range(x0, min(x0 + _SEG, w)):
                    a = min(a, tg[y, x, l])
                    b = max(b, tg[y, x, l])
                lo[t, l] = a
                hi[t, l] = b


@njit(cache=True, nogil=True)
def group_arrays(peaks, det, tags, do_nms, nms_kernel, top_k, detection_threshold, tag_threshold, max_people,
                 use_detection_val, ignore_too_much, adjust, refine, joint_order):
    """The whole grouping on validated, C-contiguous float32 arrays.

    peaks (J, H, W): where candidates are looked for; with do_nms this must be det itself (max-pool NMS is
        applied here), without it the network's NMS-ed map.
    det (J, H, W): heatmap values used for the quarter-pixel adjustment and refinement. tags (J, H, W, L). joint_order: int64 (J,).
    Returns xy (n, J, 2) f32 heatmap pixels, conf (n, J) f32, score (n,) f32.
    """
    nj, h, w = det.shape
    cand_val, cand_pos, cand_n, seg_max = _candidates(peaks, do_nms, nms_kernel // 2, top_k, detection_threshold)
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
        if not do_nms:  # peaks is the network's NMS-ed map: refinement needs the maxima of det itself
            seg_max = _segment_maxima(det)
        _refine(det, tags, seg_max, joint_pos, joint_val, tag_sum, tag_cnt, cand_pos, cand_n, xy, conf)
    return xy, conf, score


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def all_finite(flat):
    """True when no element is NaN or infinite: x - x is 0 for finite x and NaN otherwise."""
    acc = np.float32(0.0)
    for i in range(flat.shape[0]):
        acc += flat[i] - flat[i]
    return acc == 0
