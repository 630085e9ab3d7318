"""The compiled loop behind :func:`spikeprep.rates.binning.fill_block_counts`: one pass
over a block's spike times, each counted into its unit's row.

The bin of a spike is computed with exactly the float64 operations of
:meth:`spikeprep.rates.binning.Grid.bins` (numba adds no fused multiply-add without
``fastmath``), so both give the same bins, edges included; being exact, they are
non-decreasing along a unit's sorted times. Imported lazily (numba).
"""

from __future__ import annotations

import numba
import numpy as np

from .jit import CAN_CACHE

__all__ = ["count_bins"]


@numba.njit(nogil=True, cache=CAN_CACHE, inline="always")
def _bin(t: float, t_start: float, bin_size: float, fs: float) -> float:
    k = np.floor((t - t_start) * fs)
    if t < k * bin_size + t_start:
        k -= 1.0
    if t >= (k + 1.0) * bin_size + t_start:
        k += 1.0
    return k


@numba.njit(nogil=True, cache=CAN_CACHE, boundscheck=False)
def count_bins(times: np.ndarray, offsets: np.ndarray, t_start: float, bin_size: float, fs: float, lo: int, hi: int,
               out: np.ndarray, limit: int) -> tuple[int, int]:
    """Add to ``out[u, j]`` the spikes of unit ``u`` (``times[offsets[u]:offsets[u + 1]]``,
    sorted) in bin ``lo + j``, for the bins ``lo:hi`` (``0 ≤ lo``, ``hi − lo ≤ out.shape[1]``).

    Each unit's first spike in the range is found by bisection, so a chunk of bins of a
    block costs only its own spikes.

    Returns the largest count and the number of spikes counted, or ``(-1, counted)`` as
    soon as a bin would exceed ``limit`` (``out`` is then partly filled).
    """
    largest, total = 0, 0
    for u in range(offsets.shape[0] - 1):
        a, b = offsets[u], offsets[u + 1]
        while a < b:
            m = (a + b) // 2
            if _bin(times[m], t_start, bin_size, fs) < lo:
                a = m + 1
            else:
                b = m
        row = out[u]
        for i in range(a, offsets[u + 1]):
            k = _bin(times[i], t_start, bin_size, fs)
            if k >= hi:
                break
            j = np.int64(k) - lo
            n = np.int64(row[j]) + 1
            if n > limit:
                return -1, total
            row[j] = n
            largest = max(largest, n)
            total += 1
    return largest, total
