"""Stimulus-aligned kernels: numpy in, numpy out.

Windows and bins are half-open. Bin ``k`` of presentation ``i`` is
``[start_i + e_k, start_i + e_{k+1})`` with each edge computed in float64 exactly in
that form, and a spike belongs to it when ``edge_k <= t < edge_{k+1}``; a spike on an
inner edge counts once, in the bin it starts. (AllenSDK counts closed bins, so such a
spike counts in both bins there.) Presentations may overlap and come in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.model import SpikeSource, SpikeTrains
from .spans import Spans

__all__ = ["check_edges", "window_spans", "aligned_counts", "domain_counts", "window_counts", "aligned_spike_times",
           "condition_statistics", "condition_sums", "condition_table", "interval_means", "AlignedSpikes"]


def check_edges(bin_edges: np.ndarray) -> np.ndarray:
    """``bin_edges`` as float64, or ValueError unless 1-D, finite, ≥ 2 and strictly increasing."""
    e = np.asarray(bin_edges, dtype=np.float64)
    if e.ndim != 1 or len(e) < 2:
        raise ValueError(f"bin_edges must hold at least 2 values, got {e.shape}")
    if not np.all(np.isfinite(e)):
        raise ValueError("bin_edges must be finite")
    if np.any(np.diff(e) <= 0):
        raise ValueError("bin_edges must increase strictly")
    return e


def window_spans(times: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index ranges ``[a, b)`` of the sorted ``times`` inside each window ``[lo, hi)``."""
    return np.searchsorted(times, lo, side="left"), np.searchsorted(times, hi, side="left")


def _expand(block: SpikeTrains, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (unit, window, spike) triple of a block: for each unit ``j`` and window ``i``
    the spikes ``lo[i] <= t < hi[i]``. Returns the unit positions, window positions and
    the spikes' indices into ``block.times``, ordered by unit, window, then time."""
    n_w = len(lo)
    a = np.empty((block.n_units, n_w), dtype=np.int64)
    b = np.empty((block.n_units, n_w), dtype=np.int64)
    spans = Spans(lo, hi)
    for j in range(block.n_units):
        a[j], b[j] = spans.of(block[j])
        a[j] += block.offsets[j]
        b[j] += block.offsets[j]
    n = (b - a).reshape(-1)
    total = int(n.sum())
    pair = np.repeat(np.arange(n.size, dtype=np.int64), n)
    first = np.cumsum(n) - n  # where each pair's run starts in the output
    spike = np.arange(total, dtype=np.int64) - first[pair] + a.reshape(-1)[pair]
    return pair // n_w, pair % n_w, spike


def _bins(t: np.ndarray, start: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each spike ``t`` relative to its window's ``start``: the ``k`` with
    ``start + edges[k] <= t < start + edges[k + 1]`` (each edge summed in float64)."""
    k = np.searchsorted(edges, t - start, side="right") - 1
    np.clip(k, 0, len(edges) - 2, out=k)
    while True:  # t - start rounds; settle against the exact edges (one step at most in practice)
        low = t < start + edges[k]
        high = t >= start + edges[k + 1]
        if not (low.any() or high.any()):
            return k
        k = k - low + high


def aligned_counts(spikes: SpikeSource, starts: np.ndarray, bin_edges: np.ndarray, a: int = 0,
                   b: int | None = None, dtype: np.dtype = np.dtype(np.uint16)) -> np.ndarray:
    """Spike counts of units ``a:b`` in the bins of every presentation.

    Parameters
    ----------
    spikes : SpikeTrains or SpikeReader
    starts : array of float
        Presentation onsets (s), any order.
    bin_edges : array of float
        Bin edges relative to onset (s), strictly increasing.
    a, b : int
        Unit positions (default all units).
    dtype : numpy dtype
        Of the result; widened (uint32, uint64) when a count does not fit.

    Returns
    -------
    numpy.ndarray
        Shape ``(presentations, bins, units)``.
    """
    b = spikes.n_units if b is None else b
    edges = check_edges(bin_edges)
    starts = np.asarray(starts, dtype=np.float64)
    n_p, n_k = len(starts), len(edges) - 1
    out = np.zeros((n_p, n_k, b - a), dtype=dtype)
    lo, hi = starts + edges[0], starts + edges[-1]
    for p, q in _unit_blocks(spikes, a, b):
        block = spikes.block(p, q)
        unit, window, spike = _expand(block, lo, hi)
        t = block.times[spike]
        k = _bins(t, starts[window], edges)
        cells = (unit * n_p + window) * n_k + k  # unit-major: non-decreasing, so runs are bins
        counts = _run_lengths(cells)
        cell_ids = cells[np.cumsum(counts) - 1] if len(cells) else cells
        if len(counts) and counts.max() > np.iinfo(out.dtype).max:
            out = out.astype(np.uint64 if counts.max() > np.iinfo(np.uint32).max else np.uint32)
        u, rest = np.divmod(cell_ids, n_p * n_k)
        i, kk = np.divmod(rest, n_k)
        out[i, kk, u + (p - a)] = counts
    return out


def domain_counts(spikes: SpikeSource, domain: np.ndarray, dtype: np.dtype = np.dtype(np.uint16)) -> np.ndarray:
    """Spike counts in ``[domain[i, k], domain[i, k + 1])`` for every row ``i``, bin ``k``
    and unit: bins given as absolute edges (AllenSDK's ``time_domain_callback``).

    Parameters
    ----------
    spikes : SpikeTrains or SpikeReader
    domain : array of float, (presentations, edges)
        Absolute edges (s), non-decreasing along each row.
    dtype : numpy dtype
        Of the result; widened (uint32, uint64) when a count does not fit.

    Returns
    -------
    numpy.ndarray
        Shape ``(presentations, edges - 1, units)``.
    """
    domain = np.asarray(domain, dtype=np.float64)
    n_p, n_e = domain.shape
    flat = domain.ravel()
    counts = np.zeros((n_p, n_e - 1, spikes.n_units), dtype=np.int64)
    for p, q in _unit_blocks(spikes, 0, spikes.n_units):
        block = spikes.block(p, q)
        for j in range(q - p):
            below = np.searchsorted(block[j], flat, side="left").reshape(n_p, n_e)
            counts[:, :, p + j] = np.diff(below, axis=1)
    top = int(counts.max(initial=0))
    kind = np.dtype(dtype)
    if kind.kind == "u" and top > np.iinfo(kind).max:
        kind = np.dtype(np.uint64 if top > np.iinfo(np.uint32).max else np.uint32)
    return counts.astype(kind)


def _unit_blocks(spikes: SpikeSource, a: int, b: int) -> list[tuple[int, int]]:
    return [(max(p, a), min(q, b)) for p, q in spikes.blocks(1 << 22) if q > a and p < b]


def _run_lengths(sorted_values: np.ndarray) -> np.ndarray:
    if not len(sorted_values):
        return np.empty(0, dtype=np.int64)
    change = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    return np.diff(np.concatenate([[0], change, [len(sorted_values)]]))


def window_counts(spikes: SpikeSource, starts: np.ndarray, stops: np.ndarray,
                  dtype: np.dtype = np.dtype(np.int64)) -> np.ndarray:
    """Spikes of every unit in each window ``[start, stop)``: ``(windows, units)`` of
    ``dtype`` (int64; uint16 quarters the memory of a movie's 25,000 frames × 2,800 units),
    widened to int64 where a count does not fit."""
    starts, stops = np.asarray(starts, np.float64), np.asarray(stops, np.float64)
    out = np.zeros((len(starts), spikes.n_units), dtype=dtype)
    limit = np.iinfo(out.dtype).max
    spans = Spans(starts, stops)
    for p, q in spikes.blocks():
        block = spikes.block(p, q)
        for j in range(block.n_units):
            lo, hi = spans.of(block[j])
            n = hi - lo
            if len(n) and n.max() > limit:
                out, limit = out.astype(np.int64), np.iinfo(np.int64).max
            out[:, p + j] = n
    return out


@dataclass
class AlignedSpikes:
    """Spikes inside presentation windows, one row per (spike, presentation)."""

    spike_time: np.ndarray
    presentation: np.ndarray  # positions into the presentations given
    unit: np.ndarray          # unit positions
    relative: np.ndarray      # spike_time − start (s)


def aligned_spike_times(spikes: SpikeSource, starts: np.ndarray, stops: np.ndarray) -> AlignedSpikes:
    """Every spike in each window ``[start, stop)``, ordered by time (then unit, window)."""
    starts, stops = np.asarray(starts, np.float64), np.asarray(stops, np.float64)
    parts = []
    for p, q in spikes.blocks():
        block = spikes.block(p, q)
        unit, window, spike = _expand(block, starts, stops)
        parts.append((block.times[spike], window, unit + p))
    t = np.concatenate([x[0] for x in parts]) if parts else np.empty(0)
    w = np.concatenate([x[1] for x in parts]) if parts else np.empty(0, np.int64)
    u = np.concatenate([x[2] for x in parts]) if parts else np.empty(0, np.int64)
    order = np.lexsort((w, u, t))
    t, w, u = t[order], w[order], u[order]
    return AlignedSpikes(t, w, u, t - starts[w])


def condition_sums(counts: np.ndarray, conditions: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per condition (ascending id) and unit (as in ``counts``' columns): the condition
    ids, the presentations per condition, and the sums of the counts and of their squares
    (int64). ``counts``: (presentations, units) integers."""
    cond_ids, inverse = np.unique(np.asarray(conditions), return_inverse=True)
    n_u = counts.shape[1]
    order = np.argsort(inverse, kind="stable")
    first = np.searchsorted(inverse[order], np.arange(len(cond_ids)))
    total = np.zeros((len(cond_ids), n_u), np.int64)
    squares = np.zeros((len(cond_ids), n_u), np.int64)
    for a in range(0, n_u if len(order) else 0, 256):  # a block of units at a time: int64 copies stay small
        c = counts[order, a : a + 256].astype(np.int64)
        total[:, a : a + 256] = np.add.reduceat(c, first, axis=0)
        squares[:, a : a + 256] = np.add.reduceat(c * c, first, axis=0)
    return cond_ids, np.bincount(inverse, minlength=len(cond_ids)), total, squares


def condition_statistics(counts: np.ndarray, conditions: np.ndarray, unit_ids: np.ndarray) -> pd.DataFrame:
    """AllenSDK's ``conditionwise_spike_statistics`` from per-presentation counts.

    Parameters
    ----------
    counts : (presentations, units) integer array
    conditions : (presentations,) condition id of each presentation
    unit_ids : (units,) ids

    Returns
    -------
    DataFrame
        Indexed by (``unit_id``, ``stimulus_condition_id``), rows ordered by condition
        id, then unit id, as AllenSDK's: ``spike_count``, ``stimulus_presentation_count``,
        ``spike_mean``, ``spike_std`` (ddof 1; NaN for one presentation), ``spike_sem``.
    """
    return condition_table(*condition_sums(counts, conditions), unit_ids)


def condition_table(cond_ids: np.ndarray, n: np.ndarray, total: np.ndarray, squares: np.ndarray,
                    unit_ids: np.ndarray) -> pd.DataFrame:
    """:func:`condition_statistics`' table from :func:`condition_sums`' arrays (columns in
    the order of ``unit_ids``)."""
    by_id = np.argsort(np.asarray(unit_ids), kind="stable")
    unit_ids = np.asarray(unit_ids)[by_id]
    total, squares = total[:, by_id], squares[:, by_id]
    n_u = total.shape[1]
    n = n.astype(np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        var = (n * squares - total.astype(np.float64) ** 2) / (n * (n - 1))  # exact integer numerator
        std = np.sqrt(np.maximum(var, 0.0))
        sem = std / np.sqrt(n)
    index = pd.MultiIndex.from_arrays([np.tile(np.asarray(unit_ids, np.int64), len(cond_ids)), np.repeat(cond_ids, n_u)],
                                      names=["unit_id", "stimulus_condition_id"])
    return pd.DataFrame({"spike_count": total.reshape(-1), "stimulus_presentation_count": np.repeat(n[:, 0], n_u).astype(np.int64),
                         "spike_mean": mean.reshape(-1), "spike_std": std.reshape(-1), "spike_sem": sem.reshape(-1)},
                        index=index)


def interval_means(sample_start: np.ndarray, sample_end: np.ndarray, values: np.ndarray, starts: np.ndarray,
                   stops: np.ndarray) -> np.ndarray:
    """Time-weighted mean of piecewise-constant ``values`` over each window ``[start, stop)``.

    Sample ``j`` holds ``values[j]`` over ``[sample_start[j], sample_end[j])``; each
    sample weighs by its overlap with the window. NaN where no valid sample overlaps.
    Samples must not overlap each other (they are sorted here).
    """
    s, e, v = (np.asarray(x, dtype=np.float64) for x in (sample_start, sample_end, values))
    order = np.argsort(s, kind="stable")
    s, e, v = s[order], e[order], v[order]
    if np.any(e[:-1] > s[1:]) or np.any(e < s):
        raise ValueError("running samples overlap or end before they start")
    valid = np.isfinite(v)
    v0 = np.where(valid, v, 0.0)
    dur = np.where(valid, e - s, 0.0)
    area = np.concatenate([[0.0], np.cumsum(v0 * dur)])  # area[j]: ∫ before sample j
    cover = np.concatenate([[0.0], np.cumsum(dur)])

    def integral(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        j = np.searchsorted(s, x, side="right") - 1  # the sample starting at or before x
        jj = np.clip(j, 0, len(s) - 1)
        inside = np.where(j >= 0, np.clip(x - s[jj], 0.0, dur[jj]), 0.0)
        base = np.where(j >= 0, jj, 0)
        return area[base] + v0[jj] * inside, cover[base] + inside

    if len(s) == 0:
        return np.full(len(starts), np.nan)
    a0, c0 = integral(np.asarray(starts, np.float64))
    a1, c1 = integral(np.asarray(stops, np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c1 - c0 > 0, (a1 - a0) / (c1 - c0), np.nan)
