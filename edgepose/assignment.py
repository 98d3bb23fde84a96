"""Minimum-cost assignment (the linear sum assignment problem), compiled with Numba: the grouping matches
joints to people with it inside its own compiled code, the tracker matches tracks to people with it.

The method is the shortest-augmenting-path Hungarian algorithm of Crouse 2016, the one behind
``scipy.optimize.linear_sum_assignment``, so ties resolve as scipy resolves them. Costs must be finite.
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
