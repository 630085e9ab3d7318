"""The compiled loops behind :func:`spikeprep.rates.binning.fill_block_counts` and
:func:`spikeprep.rates.planes.fill_chunk_planes`: one pass over a block's spike times,
each counted into its unit's row (or into the bit planes of its unit's row).

The bin of a spike is computed with exactly the float64 operations of
:meth:`spikeprep.rates.binning.Grid.bins` (numba adds no fused multiply-add without
``fastmath``), so both give the same bins, edges included; being exact, they are
non-decreasing along a unit's sorted times. Imported lazily (numba).
"""

from __future__ import annotations

import numba
import numpy as np

from .jit import CAN_CACHE

__all__ = ["count_bins", "count_bit_planes"]


@numba.njit(nogil=True, cache=CAN_CACHE, inline="always")
def _bin(t: float, t_start: float, bin_size: float, fs: float) -> float:
    k = np.floor((t - t_start) * fs)
    if t < k * bin_size + t_start:
        k -= 1.0
    if t >= (k + 1.0) * bin_size + t_start:
        k += 1.0
    return k


@numba.njit(nogil=True, cache=CAN_CACHE, inline="always")
def _first_in(times: np.ndarray, a: int, b: int, t_start: float, bin_size: float, fs: float, lo: int) -> int:
    """The first index of sorted ``times[a:b]`` in bin ``lo`` or later (bisection)."""
    while a < b:
        m = (a + b) // 2
        if _bin(times[m], t_start, bin_size, fs) < lo:
            a = m + 1
        else:
            b = m
    return a


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
        a = _first_in(times, offsets[u], offsets[u + 1], t_start, bin_size, fs, lo)
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


@numba.njit(nogil=True, cache=CAN_CACHE, boundscheck=False)
def count_bit_planes(times: np.ndarray, offsets: np.ndarray, t_start: float, bin_size: float, fs: float, lo: int,
                     hi: int, rows: int, out: np.ndarray, block_size: int) -> tuple[int, int]:
    """Count the spikes of the units of a block in bins ``lo:hi`` straight into Blosc's
    bit-shuffled layout of a uint8 chunk (``out``, zeroed, all the chunk's bytes).

    Count ``c`` of unit ``u`` in bin ``lo + j`` is element ``e = u · rows + j`` of the
    chunk (unit-major). The chunk is cut in blocks of ``block_size`` elements (the last
    one shorter). A block of ``L`` elements, ``L`` a multiple of 8, is stored as 8 planes
    of ``L / 8`` bytes, plane ``b`` holding bit ``b`` of each element (element ``w`` of
    the block at byte ``w // 8``, bit ``w mod 8``); any other block as it is (Blosc 1's
    bit-shuffle, frame format 2).

    A unit's sorted spikes fall in non-decreasing bins, so each bin's count is a run,
    written once. Returns the largest count and the number of spikes counted, or
    ``(-1, counted)`` as soon as a count exceeds 255.
    """
    n_bytes = out.shape[0]
    largest, total = 0, 0
    for u in range(offsets.shape[0] - 1):
        a = _first_in(times, offsets[u], offsets[u + 1], t_start, bin_size, fs, lo)
        row = np.int64(u) * rows
        base = (row // block_size) * block_size  # the block holding the unit's first element
        length = min(block_size, n_bytes - base)
        planar = length if length % 8 == 0 else 0
        prev, c = np.int64(-1), 0
        for i in range(a, offsets[u + 1] + 1):
            j = np.int64(-2)
            if i < offsets[u + 1]:
                k = _bin(times[i], t_start, bin_size, fs)
                if k < hi:
                    j = np.int64(k) - lo
            if j == prev:
                c += 1
                continue
            if c > 0:  # write the run just ended: count c in bin prev
                if c > 255:
                    return -1, total
                e = row + prev
                while e >= base + length:
                    base += length
                    length = min(block_size, n_bytes - base)
                    planar = length if length % 8 == 0 else 0
                w = e - base
                if w < planar:
                    at, bit, plane = base + (w >> 3), np.uint8(1 << (w & 7)), planar >> 3
                    for p in range(8):
                        if (c >> p) & 1:
                            out[at + p * plane] |= bit
                else:
                    out[e] = c
                largest = max(largest, c)
                total += c
            if j < 0:
                break
            prev, c = j, 1
    return largest, total
