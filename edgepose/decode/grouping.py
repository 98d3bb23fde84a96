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
(Crouse 2016, the algorithm behind ``scipy.optimize.linear_sum_assignment``; ``edgepose.assignment``), so ties
resolve as scipy does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgepose.assignment import linear_sum_assignment

_INF = np.inf
NON_FINITE_PEAKS, NON_FINITE_TAGS = 1, 2  # group_arrays' status when a map holds NaN or infinite values


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


# Maps are summarised per tile of _TILE_ROWS rows by _SEG columns: the candidate scan skips tiles whose max is not
# above the threshold, and refinement bounds the scores of a tile by its heatmap max and its tag range. 8 x 32
# (256 pixels) keeps the tiles few enough to order and small enough to prune.
_SEG = 32
_TILE_ROWS = 8


@njit(cache=True, nogil=True)
def _band_extrema(m, y0, y1, lo, hi, need_lo, fin):
    """lo[x] = min and hi[x] = max of m[y0:y1, x] over the rows (lo only with need_lo). Unless fin is empty,
    fin[x] += v - v for every value v: it stays 0 while they are finite, a check that costs no extra pass over
    the map.

    Element by element across rows, so LLVM vectorises it; it does not vectorise a float max reduction along a
    row, which is what a per-tile loop would be.
    """
    w = m.shape[1]
    for x in range(w):
        hi[x] = m[y0, x]
    if need_lo:
        for x in range(w):
            lo[x] = m[y0, x]
    check = fin.shape[0] > 0
    for y in range(y0, y1):
        row = m[y]
        if check:
            for x in range(w):
                fin[x] += row[x] - row[x]
        if y == y0:  # already the initial extrema
            continue
        for x in range(w):
            hi[x] = max(hi[x], row[x])
        if need_lo:
            for x in range(w):
                lo[x] = min(lo[x], row[x])


@njit(cache=True, nogil=True, inline="always")
def _span_extremum(a, x0, x1, stride, take_max):
    """max (or min) of a[x0:x1:stride]."""
    v = a[x0]
    for x in range(x0 + stride, x1, stride):
        v = max(v, a[x]) if take_max else min(v, a[x])
    return v


@njit(cache=True, nogil=True)
def _segment_extremum(a, w, nl, l, out, take_max):
    """out[s] = max (or min) of a[(s * _SEG + k) * nl + l] over the pixels k of segment s of a w-pixel row.

    With one tag dimension, a (scratch) is folded in place: halving each segment twice is element-wise, so it
    vectorises, and leaves 8 values per segment to reduce one by one.
    """
    full = w // _SEG if nl == 1 else 0
    for half in (_SEG // 2, _SEG // 4):
        for s in range(full):
            lo, hi = a[s * _SEG:s * _SEG + half], a[s * _SEG + half:s * _SEG + 2 * half]
            for i in range(half):
                lo[i] = max(lo[i], hi[i]) if take_max else min(lo[i], hi[i])
    for s in range(full):
        v = a[s * _SEG]
        for i in range(s * _SEG + 1, s * _SEG + _SEG // 4):
            v = max(v, a[i]) if take_max else min(v, a[i])
        out[s] = v
    for s in range(full, out.shape[0]):
        x0 = (s * _SEG) * nl + l
        x1 = min(s * _SEG + _SEG, w) * nl
        out[s] = _span_extremum(a, x0, x1, nl, take_max)


@njit(cache=True, nogil=True)
def _band_tile_max(m, ty, acc, fin, out):
    """out[s] = max of tile (ty, s) of map m (H, W); acc: scratch (W,); fin as ``_band_extrema``."""
    h, w = m.shape
    y0 = ty * _TILE_ROWS
    _band_extrema(m, y0, min(y0 + _TILE_ROWS, h), acc, acc, False, fin)
    _segment_extremum(acc, w, 1, 0, out, True)


@njit(cache=True, nogil=True)
def _tile_maxima(maps):
    """(J, ceil(H / _TILE_ROWS), ceil(W / _SEG)) float32: the max of every tile of every map."""
    nj, h, w = maps.shape
    nty, nsx = (h + _TILE_ROWS - 1) // _TILE_ROWS, (w + _SEG - 1) // _SEG
    out = np.empty((nj, nty, nsx), np.float32)
    acc = np.empty(w, np.float32)
    no_check = np.empty(0, np.float32)  # used for det, finite where the candidate scan found peaks finite
    for j in range(nj):
        for ty in range(nty):
            _band_tile_max(maps[j], ty, acc, no_check, out[j, ty])
    return out


@njit(cache=True, nogil=True, inline="always")
def _count_above(row, x0, x1, floor):
    """How many of row[x0:x1] exceed floor (a count vectorises; an early exit would not)."""
    c = 0
    seg = row[x0:x1]
    for x in range(seg.shape[0]):
        c += seg[x] > floor
    return c


@njit(cache=True, nogil=True)
def _candidates(peaks, do_nms, radius, top_k, threshold):
    """Per joint the top_k peaks above threshold: values (J, K) f32, flat positions (J, K), counts (J,),
    the tile maxima of ``peaks`` (as ``_tile_maxima``), and whether every value of ``peaks`` is finite."""
    nj, h, w = peaks.shape
    vals = np.zeros((nj, top_k), np.float32)
    pos = np.full((nj, top_k), -1, np.int64)
    count = np.zeros(nj, np.int64)
    nty, nsx = (h + _TILE_ROWS - 1) // _TILE_ROWS, (w + _SEG - 1) // _SEG
    tile_max = np.empty((nj, nty, nsx), np.float32)
    acc = np.empty(w, np.float32)
    fin = np.zeros(w, np.float32)
    for j in range(nj):
        hm = peaks[j]
        n = 0
        for ty in range(nty):
            tm = tile_max[j, ty]
            _band_tile_max(hm, ty, acc, fin, tm)
            # Row by row across the band's tiles, so pixels are visited in row-major order.
            for y in range(ty * _TILE_ROWS, min(ty * _TILE_ROWS + _TILE_ROWS, h)):
                row = hm[y]
                for s in range(nsx):
                    # Most of a heatmap is background: nothing in this tile, or this row of it, passes the
                    # threshold or the k-th value.
                    floor = threshold if n < top_k else max(threshold, vals[j, n - 1])
                    if tm[s] <= floor or _count_above(row, s * _SEG, min(s * _SEG + _SEG, w), floor) == 0:
                        continue
                    for x in range(s * _SEG, min(s * _SEG + _SEG, w)):
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
        if fin.any():  # NaN or infinite values: nothing after this is meaningful
            return vals, pos, count, tile_max, False
    return vals, pos, count, tile_max, True


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


@njit(cache=True, nogil=True)
def _refine(det, tags, tile_max, joint_pos, joint_val, tag_sum, tag_cnt, cand_pos, cand_n, xy, conf):
    """Fill missing joints in place (xy, conf): each goes to the first argmax (row-major) of
    ``det[j] - round(|tag - person mean tag|)``, without scanning the whole map. Returns False, as soon as it
    finds one, when the tags hold a NaN or infinite value: the tag boxes check them on their way.

    The map is cut into tiles of _TILE_ROWS x _SEG pixels. A pixel's score is at most its tile's heatmap max
    (``tile_max`` (J, TY, TX), the candidate scan's by-product) minus the rounded distance from the person's tag to
    the tile's tag box (per-dimension min/max, computed once per joint type). Each search starts from pixels
    likely to score well, bounds every tile in one vectorised pass, and scans the tiles that can still beat its
    best, highest bound first, until none can. Equal scores resolve to the lower row-major index wherever they
    are found, so the visiting order does not change the result.
    """
    nj, h, w, nl = tags.shape
    n = joint_pos.shape[0]
    mean = np.empty((n, nl))
    for p in range(n):
        mean[p] = tag_sum[p] / tag_cnt[p]
    nsx = tile_max.shape[2]
    n_tiles = tile_max.shape[1] * nsx
    box_lo = np.empty((nl, n_tiles), np.float32)
    box_hi = np.empty((nl, n_tiles), np.float32)
    bound = np.empty(n_tiles)
    heap = np.empty(n_tiles, np.int64)
    best = np.empty(n)
    best_pos = np.empty(n, np.int64)
    buf = np.empty(_SEG)
    lo = np.empty(w * nl, np.float32)
    hi = np.empty(w * nl, np.float32)
    cand_heat = np.empty(cand_pos.shape[1], np.float32)
    cand_tag = np.empty((cand_pos.shape[1], nl), np.float32)
    for j in range(nj):
        need = np.flatnonzero(joint_val[:, j] <= 0.0)
        if need.shape[0] == 0:
            if not all_finite(tags[j].reshape(-1)):
                return False
            continue
        hm = det[j]
        tg = tags[j]
        tg1 = tg.reshape(h, w * nl)
        tm = tile_max[j].reshape(-1)
        # Start each search from pixels likely to score well, the joint's candidates (their heat and tags read
        # once for everyone) and the person's other joints; tiles below the weakest such start cannot matter to
        # anyone and get no tag box.
        nc = cand_n[j]
        for k in range(nc):
            flat = cand_pos[j, k]
            cand_heat[k] = hm[flat // w, flat % w]
            cand_tag[k] = tg[flat // w, flat % w]
        floor = _INF
        for q in need:
            best[q] = -_INF
            best_pos[q] = -1
            for k in range(nc):  # _offer on the values read above; a shared helper on row views was 4 % slower
                s = 0.0
                for l in range(nl):
                    d = np.float64(cand_tag[k, l]) - mean[q, l]
                    s += d * d
                score = np.float64(cand_heat[k]) - np.rint(np.sqrt(s))
                if score > best[q] or (score == best[q] and cand_pos[j, k] < best_pos[q]):
                    best[q] = score
                    best_pos[q] = cand_pos[j, k]
            for k in range(nj):
                flat = joint_pos[q, k]
                if flat >= 0:
                    _offer(hm, tg, flat // w, flat % w, mean, q, best, best_pos)
            floor = min(floor, best[q])
        if not _tile_boxes(tg, tm, floor, nsx, box_lo, box_hi, lo, hi):
            return False
        for q in need:
            _tile_bounds(tm, box_lo, box_hi, mean[q], floor, bound)
            n_heap = 0
            for t in range(n_tiles):
                if bound[t] >= best[q]:
                    heap[n_heap] = t
                    n_heap += 1
            for i in range(n_heap // 2 - 1, -1, -1):
                _sift_down(heap, n_heap, i, bound)
            while n_heap > 0:
                t = heap[0]
                n_heap -= 1
                heap[0] = heap[n_heap]
                _sift_down(heap, n_heap, 0, bound)
                if bound[t] < best[q]:
                    break
                # A tile that can only tie the best holds a winner only if it starts earlier in row-major order.
                if bound[t] > best[q] or (t // nsx) * _TILE_ROWS * w + (t % nsx) * _SEG < best_pos[q]:
                    _scan_tile(hm, tg, tg1, t, nsx, mean, q, best, best_pos, buf)
        for q in need:
            y, x = best_pos[q] // w, best_pos[q] % w
            if hm[y, x] > 0:
                dx, dy = _quarter(hm, y, x)
                xy[q, j, 0] = x + 0.5 + dx
                xy[q, j, 1] = y + 0.5 + dy
                conf[q, j] = hm[y, x]
    return True


@njit(cache=True, nogil=True)
def _tile_bounds(tile_max, box_lo, box_hi, m, floor, bound):
    """bound[t]: the most any pixel of tile t can score for a person of mean tag m; -inf for tiles below floor
    (they have no box). One element-wise pass over the tiles, which vectorises."""
    nl, n_tiles = box_lo.shape
    if nl == 1:
        for t in range(n_tiles):
            gap = max(np.float64(box_lo[0, t]) - m[0], m[0] - np.float64(box_hi[0, t]), 0.0)
            b = np.float64(tile_max[t]) - np.rint(gap)  # sqrt(gap * gap) is exactly gap
            bound[t] = b if tile_max[t] >= floor else -_INF
        return
    for t in range(n_tiles):
        gap2 = 0.0
        for l in range(nl):
            gap = max(np.float64(box_lo[l, t]) - m[l], m[l] - np.float64(box_hi[l, t]), 0.0)
            gap2 += gap * gap
        b = np.float64(tile_max[t]) - np.rint(np.sqrt(gap2))
        bound[t] = b if tile_max[t] >= floor else -_INF


@njit(cache=True, nogil=True)
def _scan_tile(hm, tg, tg1, t, nsx, mean, q, best, best_pos, buf):
    """Offer every pixel of tile t to person q; tg1: the tags as (H, W) when they have one dimension."""
    h, w = hm.shape
    x0 = (t % nsx) * _SEG
    x1 = min(x0 + _SEG, w)
    y0 = (t // nsx) * _TILE_ROWS
    for y in range(y0, min(y0 + _TILE_ROWS, h)):
        if tg.shape[2] == 1:
            _scan_row_1d(hm[y], tg1[y], y * w, x0, x1, mean[q, 0], q, best, best_pos, buf)
            continue
        for x in range(x0, x1):
            if hm[y, x] >= best[q]:
                _offer(hm, tg, y, x, mean, q, best, best_pos)


@njit(cache=True, nogil=True, inline="always")
def _scan_row_1d(hm_row, tg_row, flat0, x0, x1, m, q, best, best_pos, buf):
    """``_offer`` for pixels x0..x1 of one row with one tag dimension (sqrt(d * d) is exactly |d|, so the score is
    the same). The scores and the count of those reaching the best are element-wise loops, which vectorise; the
    rare row with such a score is searched one pixel at a time."""
    n = x1 - x0
    hs = hm_row[x0:x1]  # indices from 0 let LLVM see they are never negative: contiguous vector loads
    ts = tg_row[x0:x1]
    for i in range(n):
        buf[i] = np.float64(hs[i]) - np.rint(np.abs(np.float64(ts[i]) - m))
    b = best[q]
    hits = 0
    for i in range(n):
        hits += buf[i] >= b
    if hits == 0:
        return
    for i in range(n):
        if buf[i] > best[q] or (buf[i] == best[q] and flat0 + x0 + i < best_pos[q]):
            best[q] = buf[i]
            best_pos[q] = flat0 + x0 + i


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
def _tile_boxes(tg, tile_max, floor, nsx, box_lo, box_hi, lo, hi):
    """Per-dimension min and max of the tags of every tile that can reach ``floor``, into box_lo[:, t], box_hi[:, t];
    returns whether all of this joint's tags are finite, checked on the way (the only pass over them).

    A band of tiles at a time: the rows' element-wise extrema (vectorised), then each tile's span of them.
    lo, hi: scratch (W * L,).
    """
    h, w, nl = tg.shape
    rows = tg.reshape(h, w * nl)
    seg_lo = np.empty((nl, nsx), np.float32)
    seg_hi = np.empty((nl, nsx), np.float32)
    fin = np.zeros(w * nl, np.float32)
    for ty in range((h + _TILE_ROWS - 1) // _TILE_ROWS):
        y0, y1 = ty * _TILE_ROWS, min(ty * _TILE_ROWS + _TILE_ROWS, h)
        live = False
        for sx in range(nsx):
            live = live or tile_max[ty * nsx + sx] >= floor
        if not live:
            if not all_finite(rows[y0:y1].reshape(-1)):
                return False
            continue
        _band_extrema(rows, y0, y1, lo, hi, True, fin)
        for l in range(nl):
            _segment_extremum(lo, w, nl, l, seg_lo[l], False)
            _segment_extremum(hi, w, nl, l, seg_hi[l], True)
        for sx in range(nsx):
            t = ty * nsx + sx
            if tile_max[t] < floor:
                continue
            for l in range(nl):
                box_lo[l, t] = seg_lo[l, sx]
                box_hi[l, t] = seg_hi[l, sx]
    return not fin.any()


@njit(cache=True, nogil=True)
def group_arrays(peaks, det, tags, do_nms, nms_kernel, top_k, detection_threshold, tag_threshold, max_people,
                 use_detection_val, ignore_too_much, adjust, refine, joint_order):
    """The whole grouping on validated, C-contiguous float32 arrays.

    peaks (J, H, W): where candidates are looked for; with do_nms this must be det itself (max-pool NMS is
        applied here), without it the network's NMS-ed map.
    det (J, H, W): heatmap values used for the quarter-pixel adjustment and refinement; finite where peaks is.
    tags (J, H, W, L). joint_order: int64 (J,).
    Returns xy (n, J, 2) f32 heatmap pixels, conf (n, J) f32, score (n,) f32 and a status: NON_FINITE_PEAKS or
    NON_FINITE_TAGS (with no people) when peaks or tags hold a NaN or infinite value, else 0. Each map's
    finiteness is checked by the first pass that reads all of it: the candidate scan for peaks, refinement's tag
    boxes for the tags (a plain pass when there is nothing to refine).
    """
    nj, h, w = det.shape
    cand_val, cand_pos, cand_n, tile_max, finite = _candidates(peaks, do_nms, nms_kernel // 2, top_k,
                                                               detection_threshold)
    if not finite:
        return _no_people(nj, NON_FINITE_PEAKS)
    nl = tags.shape[3]
    for j in range(nj):  # matching needs the candidates' tags finite; the rest are checked below
        for k in range(cand_n[j]):
            for l in range(nl):
                v = tags[j, cand_pos[j, k] // w, cand_pos[j, k] % w, l]
                if v - v != 0:
                    return _no_people(nj, NON_FINITE_TAGS)
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
            tile_max = _tile_maxima(det)
        finite = _refine(det, tags, tile_max, joint_pos, joint_val, tag_sum, tag_cnt, cand_pos, cand_n, xy, conf)
    else:
        finite = all_finite(tags.reshape(-1))
    return (xy, conf, score, 0) if finite else _no_people(nj, NON_FINITE_TAGS)


@njit(cache=True, nogil=True)
def _no_people(nj, status):
    """group_arrays' result without people, with a status."""
    return np.zeros((0, nj, 2), np.float32), np.zeros((0, nj), np.float32), np.zeros(0, np.float32), status


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def all_finite(flat):
    """True when no element is NaN or infinite: x - x is 0 for finite x and NaN otherwise."""
    acc = np.float32(0.0)
    for i in range(flat.shape[0]):
        acc += flat[i] - flat[i]
    return acc == 0
