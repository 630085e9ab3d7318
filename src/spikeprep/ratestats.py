"""Whole-session summaries of the smoothed rates, without materialising them.

:func:`rates_mean` is exact and convolves nothing: the kernel only moves spikes in time,
so a unit's summed rate is its spike count times the kernel's mass, less what falls
off the ends of the grid. :func:`rates_summary` gives the mean, standard deviation and
maximum of every unit's rate by smoothing the stored counts one block at a time into a
reused buffer (two threads), in bounded memory.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .options import SIGMA_BINS, TAPS
from .rates import Grid, Kernel, correct_edges
from .readers import open_units, rates_kernel
from .ratestore import open_store_grid, rates_block

__all__ = ["rates_mean", "rates_summary"]


def _setup(out: str | Path, session_id: int, sigma_bins: float, taps: int, sigma_ms: float | None,
           bin_size: float | None, edge_correction: bool) -> tuple[Any, Kernel, int, Grid]:
    store, kernel = rates_kernel(out, session_id, sigma_bins=sigma_bins, taps=taps, sigma_ms=sigma_ms,
                                 bin_size=bin_size, edge_correction=edge_correction)
    root, factor, grid = open_store_grid(store, bin_size)
    return root["counts"], kernel, factor, grid


def _coarse(counts: Any, a: int, b: int, factor: int) -> np.ndarray:
    """Counts of bins ``a:b`` of the (coarser) result grid, int64."""
    x = counts[a * factor : b * factor, :].astype(np.int64)
    return x.reshape(b - a, factor, -1).sum(axis=1) if factor > 1 else x


def rates_mean(out: str | Path, session_id: int, *, sigma_bins: float = SIGMA_BINS, taps: int = TAPS,
               sigma_ms: float | None = None, bin_size: float | None = None,
               edge_correction: bool = False) -> pd.Series:
    """Every unit's time-averaged smoothed rate (Hz), exactly, without convolving.

    Equals ``open_rates(...).mean("time")`` with the same kernel (to float32 rounding of
    the rates themselves): ``fs / (Σw · n) · Σ_j c_j m_j``, where ``m_j`` is the kernel
    mass that spike bin ``j`` puts inside the grid (``Σw`` except within a kernel width
    of its ends). Reads only the units table and the counts near the grid's ends.

    Returns
    -------
    Series
        Indexed by ``unit_id``, Hz.
    """
    counts, kernel, factor, grid = _setup(out, session_id, sigma_bins, taps, sigma_ms, bin_size, edge_correction)
    n, h, w = grid.n_bins, kernel.half, kernel.weights()
    units = open_units(out, session_id, columns=["n_spikes"])
    total = units["n_spikes"].to_numpy(np.int64).copy()
    if factor > 1 and counts.shape[0] > n * factor:  # spikes in the incomplete last coarse bin are off the grid
        total -= counts[n * factor :, :].astype(np.int64).sum(axis=0)
    zone = min(n, 2 * h)
    factors = np.ones(n)
    for start, stop in ((0, zone), (n - zone, n)):
        f = np.ones((stop - start, 1))
        correct_edges(f, kernel, start, n)
        factors[start:stop] = f[:, 0]
    edges = sorted({*range(0, zone), *range(max(0, n - zone), n)})
    mass = np.array([sum(w[k] * factors[j + k - h] for k in range(kernel.taps) if 0 <= j + k - h < n) for j in edges])
    near = np.concatenate([_coarse(counts, 0, zone, factor), _coarse(counts, max(0, n - zone), n, factor)])
    if n < 2 * zone:  # a short grid: the two zones overlap; count each bin once
        near = _coarse(counts, 0, n, factor)
    correction = (near * (mass - w.sum())[:, None]).sum(axis=0)
    mean = grid.fs / (w.sum() * n) * (w.sum() * total + correction)
    return pd.Series(mean, index=units.index, name="mean_rate_hz")


def rates_summary(out: str | Path, session_id: int, *, sigma_bins: float = SIGMA_BINS, taps: int = TAPS,
                  sigma_ms: float | None = None, bin_size: float | None = None, edge_correction: bool = False,
                  block_bins: int = 240_000, progress: bool = False) -> pd.DataFrame:
    """Mean, standard deviation (ddof 0) and maximum of every unit's smoothed rate over
    the whole session, in bounded memory (a reused buffer of ``block_bins`` × 64 units
    per thread, two threads).

    Returns
    -------
    DataFrame
        Indexed by ``unit_id``: ``mean``, ``std``, ``max`` (Hz).
    """
    from tqdm.auto import tqdm

    counts, kernel, factor, grid = _setup(out, session_id, sigma_bins, taps, sigma_ms, bin_size, edge_correction)
    n, n_units, width = grid.n_bins, counts.shape[1], counts.chunks[1]
    pad = kernel.taps - 1
    s1, s2 = np.zeros(n_units), np.zeros(n_units)
    peak = np.full(n_units, -np.inf)
    columns = [(u, min(n_units, u + width)) for u in range(0, n_units, width)]

    def column(span: tuple[int, int], buffers: dict[tuple[int, int], np.ndarray]) -> None:
        u0, u1 = span
        for t0 in range(0, n, block_bins):
            t1 = min(n, t0 + block_bins)
            shape = (t1 - t0 + 2 * pad, u1 - u0)
            if shape not in buffers:  # whole Fortran-ordered buffers, reused (no page faults after the first)
                buffers[shape] = np.zeros(shape, np.float32, order="F")
            buf = buffers[shape]
            buf.fill(0.0)
            rates_block(counts, t0, t1, u0, u1, kernel, factor, n, grid.bin_size, buf)
            y = buf[pad : pad + t1 - t0]
            correct_edges(y, kernel, t0, n)
            s1[u0:u1] += y.sum(axis=0, dtype=np.float64)
            s2[u0:u1] += np.einsum("ij,ij->j", y, y, dtype=np.float64)
            peak[u0:u1] = np.maximum(peak[u0:u1], y.max(axis=0))
        bar.update(1)

    with tqdm(total=len(columns), desc="rates", unit="block", disable=None if progress else True) as bar, \
            ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(lambda part: [column(c, {}) for c in part], part)
                   for part in (columns[0::2], columns[1::2])]
        for f in futures:
            f.result()
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
    ids = open_units(out, session_id, columns=["n_spikes"]).index
    return pd.DataFrame({"mean": mean, "std": std, "max": peak}, index=ids)
