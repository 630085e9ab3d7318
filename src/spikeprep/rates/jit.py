"""The compiled (numba) loops behind :mod:`spikeprep.rates.smoothing`; see there for the
layout of the pieces they take. Imported only when rates are computed: numba takes
≈0.4 s to import, and the loops are compiled once and cached on disk.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["scatter_units", "summarise_units", "CAN_CACHE"]


def _can_cache() -> bool:
    """Whether numba can keep the compiled loops on disk, beside this file or in the
    user's cache folder. If neither is writable (a read-only install and home), numba
    refuses ``cache=True`` outright; the loops are then compiled in each process instead."""
    try:
        numba.njit(cache=True)(_can_cache)
    except RuntimeError:
        return False
    return True


_CACHE = _can_cache()
CAN_CACHE = _CACHE  # for compiled loops elsewhere (numba's cache=)
_jit = numba.njit(nogil=True, cache=_CACHE, boundscheck=False)


@numba.njit(nogil=True, cache=_CACHE, boundscheck=False, inline="always")
def _add(col: np.ndarray, s: int, c: float, w: np.ndarray) -> None:
    """Add count ``c``'s taps to ``col``: ``col[s − k] += c · w[k]``, ``k`` ascending.
    (Unsigned indices: numba then skips its negative-index check.)"""
    taps, n = w.shape[0], col.shape[0]
    if s >= taps - 1 and s < n:
        for k in range(taps):
            col[np.uint64(s - k)] += c * w[k]
    else:
        for k in range(taps):
            t = s - k
            if t >= 0 and t < n:
                col[np.uint64(t)] += c * w[k]


@_jit
def _scatter_unit(bufs: np.ndarray, words: np.ndarray, order: np.ndarray, rows: int, first: int, lo: int, hi: int,
                  unit: int, w: np.ndarray, col: np.ndarray, one: np.ndarray, found: np.ndarray,
                  hits: np.ndarray) -> None:
    """Add one unit's smoothed counts (all its pieces, in time order) to ``col``.

    Branch-free where it can be: the positions of non-zero words, then of non-zero
    counts, are collected first (``hits``, ``found``: scratch of ``rows + 8``), then
    scattered. Branching on each count instead was 3x slower (mispredictions).
    """
    h = w.shape[0] // 2
    per_word = bufs.shape[1] // words.shape[1]  # a power of two
    bits = 0
    while (1 << bits) < per_word:
        bits += 1
    for p in range(order.shape[0]):
        o = first + p * rows  # output row of the piece's row 0
        r0, r1 = max(0, lo - o), min(rows, hi - o)
        if r1 <= r0:
            continue
        buf, wd = bufs[order[p]], words[order[p]]
        shift = o + h - unit * rows  # element q of the buffer → tap-0 output row q + shift
        e, end = unit * rows + r0, unit * rows + r1
        m = 0
        while e < end and (e & (per_word - 1)) != 0:
            found[m] = e
            m += buf[e] != 0
            e += 1
        k0, k1 = e >> bits, end >> bits
        n_hits = 0
        for k in range(k0, k1):  # zero words (most of them) are skipped whole
            hits[n_hits] = k
            n_hits += wd[k] != 0
        for i in range(n_hits):
            q0 = hits[i] << bits
            for q in range(q0, q0 + per_word):
                found[m] = q
                m += buf[q] != 0
        for q in range(max(e, k1 << bits), end):
            found[m] = q
            m += buf[q] != 0
        for i in range(m):
            q = found[i]
            one[0] = buf[q]  # the count in the output's dtype, as numpy's astype gives it
            _add(col, q + shift, one[0], w)


@_jit
def scatter_units(bufs: np.ndarray, words: np.ndarray, order: np.ndarray, rows: int, first: int, lo: int, hi: int,
                  j0: int, w: np.ndarray, out_t: np.ndarray) -> None:
    """Write the rates of every unit of the pieces into ``out_t`` (``(units, T)``,
    C-contiguous rows: the transposed view of a Fortran-ordered ``(T, units)`` result).

    Every element of ``out_t`` is written (zero where no spike reaches). ``w`` are the
    scaled taps in the output's dtype (:func:`spikeprep.rates.binning.scaled_weights`).
    """
    one, found, hits = np.zeros(1, out_t.dtype), np.empty(rows + 8, np.int64), np.empty(rows + 8, np.int64)
    for j in range(out_t.shape[0]):
        col = out_t[j]
        col[:] = 0
        _scatter_unit(bufs, words, order, rows, first, lo, hi, j0 + j, w, col, one, found, hits)


@_jit
def summarise_units(bufs: np.ndarray, words: np.ndarray, order: np.ndarray, rows: int, first: int, lo: int, hi: int,
                    j0: int, w: np.ndarray, scale: np.ndarray, col: np.ndarray, u0: int, units: int,
                    total: np.ndarray, squares: np.ndarray, peak: np.ndarray) -> None:
    """Add each of ``units`` units' sum and sum of squares (float64) of its rates over
    the ``len(col)`` output rows to ``total[u0 + j]`` and ``squares[u0 + j]``, and raise
    ``peak[u0 + j]`` to their maximum. The rates are made in ``col`` (a reused float32
    buffer), then multiplied by ``scale`` (edge correction; empty for none) as float32, as
    the windows are.
    Eight running sums per unit, in a fixed order: the same bits on every run.
    """
    one, found, hits = np.zeros(1, col.dtype), np.empty(rows + 8, np.int64), np.empty(rows + 8, np.int64)
    n = col.shape[0]
    lanes = 8
    s1, s2 = np.zeros(lanes), np.zeros(lanes)
    for j in range(units):
        col[:] = 0
        _scatter_unit(bufs, words, order, rows, first, lo, hi, j0 + j, w, col, one, found, hits)
        if scale.shape[0]:
            for t in range(n):
                col[t] *= scale[t]
        s1[:] = 0.0
        s2[:] = 0.0
        top = col[0] if n else 0.0
        for t0 in range(0, n - n % lanes, lanes):
            for k in range(lanes):
                x = np.float64(col[t0 + k])
                s1[k] += x
                s2[k] += x * x
        for t in range(n - n % lanes, n):
            x = np.float64(col[t])
            s1[0] += x
            s2[0] += x * x
        for t in range(n):
            if col[t] > top:
                top = col[t]
        total[u0 + j] += s1.sum()
        squares[u0 + j] += s2.sum()
        if n and top > peak[u0 + j]:
            peak[u0 + j] = top
