"""Whole-session summaries of the smoothed rates, without materialising them.

:func:`rates_mean` is exact and convolves nothing: the kernel only moves spikes in time,
so a unit's summed rate is its spike count times the kernel's mass, less what falls
off the ends of the grid. :func:`rates_summary` gives the mean, standard deviation and
maximum of every unit's rate by smoothing the stored counts one unit and one stored
chunk of time at a time into a reused buffer, reducing it there, in bounded memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.options import SIGMA_BINS, TAPS
from ..export.readers import open_units, rates_kernel
from ..rates.binning import Grid, Kernel, correct_edges, scaled_weights
from ..rates.chunks import ChunkCache, CountsReader
from ..rates.smoothing import summarise_into
from ..rates.store import open_store_grid

__all__ = ["rates_mean", "rates_summary", "rates_correlation"]


def _setup(out: str | Path, session_id: int, sigma_bins: float, taps: int, sigma_ms: float | None,
           bin_size: float | None, edge_correction: bool) -> tuple[Path, Any, Kernel, int, Grid]:
    """The session's counts store, its ``counts`` array, the kernel, the stored bins per
    result bin and the result grid."""
    store, kernel = rates_kernel(out, session_id, sigma_bins=sigma_bins, taps=taps, sigma_ms=sigma_ms,
                                 bin_size=bin_size, edge_correction=edge_correction)
    root, factor, grid = open_store_grid(store, bin_size)
    return store, root["counts"], kernel, factor, grid


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
    _, counts, kernel, factor, grid = _setup(out, session_id, sigma_bins, taps, sigma_ms, bin_size, edge_correction)
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
                  progress: bool = False) -> pd.DataFrame:
    """Mean, standard deviation (ddof 0) and maximum of every unit's smoothed rate over
    the whole session, without keeping the rates: each thread smooths one unit at a time
    over one stored chunk of time into a reused buffer and reduces it there. Memory holds
    a few decoded chunks per thread.

    Returns
    -------
    DataFrame
        Indexed by ``unit_id``: ``mean``, ``std``, ``max`` (Hz), equal to those of the
        materialised float32 rates (sums in float64).
    """
    from tqdm.auto import tqdm

    store, counts, kernel, factor, grid = _setup(out, session_id, sigma_bins, taps, sigma_ms, bin_size,
                                                 edge_correction)
    reader = CountsReader(store, counts, factor)
    n, n_units = grid.n_bins, counts.shape[1]
    w = scaled_weights(kernel, grid.bin_size, np.float32)
    total, squares = np.zeros(n_units), np.zeros(n_units)
    peak = np.full(n_units, -np.inf, dtype=np.float32)
    spans = list(reader.blocks(0, n))
    scales = [_edge_scale(kernel, s0, s1, n) for s0, s1 in spans]  # the same for every column
    longest = max((s1 - s0 for s0, s1 in spans), default=0)

    def column(cache: ChunkCache, a: int, b: int, t0: int, t1: int) -> None:  # t0, t1: the whole grid
        scratch = np.empty(longest, np.float32)
        for (s0, s1), scale in zip(spans, scales):
            summarise_into(reader.pieces(s0, s1, a, b, kernel.half, cache), w, scale, scratch[: s1 - s0], a, b - a,
                           total, squares, peak)

    with tqdm(total=n_units, desc="rates", unit="unit", disable=None if progress else True) as bar:
        reader.each_part(0, n_units, 0, n, column, split_time=False, progress=bar.update)
    mean = total / n if n else np.full(n_units, np.nan)
    std = np.sqrt(np.maximum(squares / n - mean**2, 0.0)) if n else mean
    ids = open_units(out, session_id, columns=["n_spikes"]).index
    return pd.DataFrame({"mean": mean, "std": std, "max": peak.astype(np.float64)}, index=ids)


def _edge_scale(kernel: Kernel, s0: int, s1: int, n: int) -> np.ndarray:
    """The float32 edge-correction factors of bins ``s0:s1`` of an ``n``-bin grid, as
    :func:`~spikeprep.rates.binning.correct_edges` applies them; empty where they are all 1."""
    scale = np.ones((s1 - s0, 1), np.float32)
    correct_edges(scale, kernel, s0, n)
    return scale[:, 0] if (scale != 1).any() else scale[:0, 0]


def rates_correlation(out: str | Path, session_id: int, t_start: float, t_stop: float, *,
                      unit_ids: Sequence[int] | None = None, sigma_bins: float = SIGMA_BINS, taps: int = TAPS,
                      sigma_ms: float | None = None, bin_size: float | None = None, edge_correction: bool = False,
                      block_s: float = 60.0, progress: bool = False) -> pd.DataFrame:
    """Pearson correlation between units' smoothed rates over the bins starting in
    ``[t_start, t_stop)`` (s), in bounded memory.

    The rates are computed ``block_s`` seconds at a time; each block's products are
    summed in float32 (BLAS) and accumulated in float64, so memory holds one block of
    rates and two units × units matrices (the data are first centred on the first block's
    means, so that the float32 products keep their precision). Cost grows with units² ×
    bins: all 2,800 units over 600 s take 7.4 s on two cores.

    Parameters
    ----------
    unit_ids : sequence of int, optional
        The units, in this order (default: every unit of the session).

    Returns
    -------
    DataFrame
        Units × units (``unit_id`` on both axes), dimensionless; NaN for a unit whose
        rate is constant over the window (e.g. no spikes).

    Raises
    ------
    ValueError
        The window holds no bin, or a unit id is not in the session.
    """
    from tqdm.auto import tqdm

    from ..export.readers import open_rates

    rates = open_rates(out, session_id, sigma_bins=sigma_bins, taps=taps, sigma_ms=sigma_ms, bin_size=bin_size,
                       edge_correction=edge_correction)
    edges = rates["time"].values
    i0, i1 = np.searchsorted(edges, [t_start, t_stop], side="left")
    if i1 <= i0:
        raise ValueError(f"no bin starts in [{t_start}, {t_stop}) s")
    ids = rates["unit_id"].values if unit_ids is None else np.asarray(unit_ids, dtype=np.int64)
    missing = np.setdiff1d(ids, rates["unit_id"].values)
    if len(missing):
        raise ValueError(f"unit ids not in session {session_id}: {missing[:5].tolist()}")
    rates = rates.sel(unit_id=ids) if unit_ids is not None else rates
    step = max(1, int(round(block_s / float(rates.attrs["bin_size_s"]))))
    products, sums, shift = np.zeros((len(ids), len(ids))), np.zeros(len(ids)), None
    with tqdm(total=i1 - i0, desc="correlation", unit="bin", disable=None if progress else True) as bar:
        for a in range(i0, i1, step):
            y = np.asfortranarray(rates.isel(time=slice(a, min(i1, a + step))).values)
            if shift is None:  # centre on the first block's means: float32 products lose less
                shift = y.mean(axis=0, dtype=np.float64).astype(np.float32)
            y -= shift
            products += y.T @ y
            sums += y.sum(axis=0, dtype=np.float64)
            bar.update(y.shape[0])
    n = i1 - i0
    mean = sums / n
    cov = products / n - np.outer(mean, mean)
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    corr[sd == 0, :] = np.nan
    corr[:, sd == 0] = np.nan
    np.fill_diagonal(corr, np.where(sd > 0, 1.0, np.nan))
    index = pd.Index(ids, name="unit_id")
    return pd.DataFrame(np.clip(corr, -1.0, 1.0), index=index, columns=index.copy())
