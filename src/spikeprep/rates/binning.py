"""Spike counts on a time grid and Gaussian smoothing: numpy in, numpy out.

Defaults reproduce the notebook: 5 ms bins (200 Hz), bin of a spike ``floor(t * fs)``,
grid from 0 to the last spike + 1 s, an 11-tap Gaussian with σ = √2 bins, rates in Hz,
zero outside the grid. Unlike the notebook, counts are exact (two spikes in one bin
count 2) and never overflow: the integer type is chosen from the data.

The smoothing loop itself is compiled (:mod:`spikeprep.rates.smoothing`). The Zarr counts
store, lazy rates and the xarray wrappers are in :mod:`spikeprep.rates.store`, which
builds on these kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from ..core.model import SpikeSource, SpikeTrains
from ..core.options import BIN_SIZE_S, SIGMA_BINS, TAPS

__all__ = ["Grid", "Kernel", "gaussian_kernel", "make_grid", "bin_counts", "count_dtype", "max_bin_count",
           "fill_counts", "fill_block_counts", "fill_chunk_counts", "smooth_counts", "correct_edges", "scaled_weights", "grid_attrs"]



@dataclass(frozen=True)
class Grid:
    """A regular time grid: bin ``i`` covers ``[t_start + i·bin_size, t_start + (i+1)·bin_size)``."""

    bin_size: float
    t_start: float
    t_stop: float

    @property
    def fs(self) -> float:
        return 1.0 / self.bin_size

    @property
    def n_bins(self) -> int:
        return max(0, int(np.rint((self.t_stop - self.t_start) * self.fs)))

    def edges(self) -> np.ndarray:
        """Left edges of the bins (s)."""
        return self.t_start + np.arange(self.n_bins) * self.bin_size

    def bins(self, times: np.ndarray) -> np.ndarray:
        """Bin index of each time (int64); may fall outside ``[0, n_bins)``.

        Exact for the float64 edges ``t_start + i·bin_size`` (those of :meth:`edges`): a
        time equal to an edge is in the bin it starts. ``floor((t − t_start)·fs)`` alone
        puts some of those one bin early; it is corrected against the edges themselves.
        """
        k = times - self.t_start  # one float temporary, floored in place
        k *= self.fs
        np.floor(k, out=k)
        edge = k * self.bin_size
        edge += self.t_start
        k -= times < edge  # below its bin's left edge: one bin earlier
        np.multiply(k + 1.0, self.bin_size, out=edge)
        edge += self.t_start
        k += times >= edge  # at or past the next left edge: one bin later
        return k.astype(np.int64)


def make_grid(spikes: SpikeSource, bin_size: float = BIN_SIZE_S, t_start: float = 0.0,
              t_stop: float | None = None) -> Grid:
    """The notebook's grid: ``t_start`` to the last spike + 1 s unless ``t_stop`` is given.

    The grid holds whole bins: by default ``t_stop`` is moved up to the next bin edge
    (after every spike, as before); an explicit ``t_stop`` must be a whole number of
    bins after ``t_start`` (ValueError otherwise, rather than silently dropping or
    adding a partial bin).
    """
    if not bin_size > 0:
        raise ValueError(f"bin_size must be positive, got {bin_size}")
    n = None
    if t_stop is None:
        t_max = spikes.t_max
        n = int(np.ceil(((t_max if np.isfinite(t_max) else t_start) + 1.0 - t_start) / bin_size - 1e-9))
    elif t_stop <= t_start:
        raise ValueError(f"t_stop ({t_stop}) must be after t_start ({t_start})")
    else:
        x = (t_stop - t_start) / bin_size
        n = int(round(x))
        if abs(x - n) > 1e-6 * max(1.0, x):
            raise ValueError(f"t_stop {t_stop} is not a whole number of {bin_size} s bins after t_start {t_start}")
    return Grid(float(bin_size), float(t_start), grid_stop(t_start, n, bin_size))


def grid_stop(t_start: float, n_bins: int, bin_size: float) -> float:
    """The end of ``n_bins`` bins after ``t_start``: the float nearest the exact decimal
    ``t_start + n_bins · bin_size`` (100.99, where float arithmetic gives 100.99000000000001)."""
    return float(Decimal(repr(float(t_start))) + int(n_bins) * Decimal(repr(float(bin_size))))


@dataclass(frozen=True)
class Kernel:
    """A Gaussian smoothing kernel in bins.

    Parameters
    ----------
    sigma_bins : float
        Standard deviation in bins (default √2 = 7.07 ms at 5 ms bins). 0 means no
        smoothing: one tap of weight 1, so the rates are the counts / bin width.
    taps : int
        Odd number of taps (default 11; 1 when ``sigma_bins`` is 0).
    edge_correction : bool
        Divide by the kernel mass inside the grid near its ends instead of treating
        the outside as zero spikes.
    """

    sigma_bins: float = SIGMA_BINS
    taps: int = TAPS
    edge_correction: bool = False

    def __post_init__(self) -> None:
        if self.taps < 1 or self.taps % 2 == 0:
            raise ValueError("taps must be a positive odd number")
        if not self.sigma_bins >= 0 or not math.isfinite(self.sigma_bins):
            raise ValueError(f"sigma must be 0 (no smoothing) or positive, got {self.sigma_bins}")
        if self.sigma_bins == 0 and self.taps != 1:
            raise ValueError("sigma 0 (no smoothing) takes one tap")

    @classmethod
    def make(cls, *, sigma_bins: float | None = None, sigma_ms: float | None = None,
             taps: int | None = None, half_width_sigmas: float | None = None,
             bin_size: float = BIN_SIZE_S, edge_correction: bool = False) -> "Kernel":
        """Build from σ in bins or in ms, and taps or a half-width in σ; σ = 0 is no
        smoothing (one tap, whatever ``taps`` says)."""
        if sigma_bins is not None and sigma_ms is not None:
            raise ValueError("give sigma_bins or sigma_ms, not both")
        sigma = sigma_ms / 1000.0 / bin_size if sigma_ms is not None else sigma_bins
        sigma = SIGMA_BINS if sigma is None else sigma
        if taps is not None and half_width_sigmas is not None:
            raise ValueError("give taps or half_width_sigmas, not both")
        if half_width_sigmas is not None:
            taps = 2 * int(math.ceil(half_width_sigmas * sigma)) + 1
        if sigma == 0:
            taps = 1
        return cls(float(sigma), int(taps or TAPS), edge_correction)

    @property
    def half(self) -> int:
        return self.taps // 2

    def weights(self) -> np.ndarray:
        return gaussian_kernel(self.sigma_bins, self.taps)


def gaussian_kernel(sigma_bins: float = SIGMA_BINS, taps: int = TAPS) -> np.ndarray:
    """Unnormalised Gaussian ``w[k] = exp(-(k - h)² / (2σ²))``, ``k = 0 … taps-1``.

    With the defaults this is the notebook's ``exp(-(k - 5)² / 4)``; σ = 0 gives the
    one tap ``[1]`` (no smoothing).
    """
    if sigma_bins == 0:
        return np.ones(1)
    k = np.arange(taps, dtype=np.float64) - taps // 2
    two_var = round(2.0 * sigma_bins**2, 12)  # so that σ = √2 gives exactly 4, as in the notebook
    return np.exp(-(k**2) / two_var)


def count_dtype(max_count: int) -> np.dtype:
    """The narrowest unsigned integer type that holds ``max_count``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_count <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def _flat_bins(block: SpikeTrains, grid: Grid) -> np.ndarray:
    """Unit-major flat bin (``unit · n_bins + bin``) of every in-grid spike of a block.

    Non-decreasing, since spikes are sorted within each unit, so spikes sharing a bin
    are neighbours.
    """
    n = grid.n_bins
    flat = grid.bins(block.times)
    inside = (flat >= 0) & (flat < n)
    flat += block.block_owner(0, block.n_units) * n
    return flat if inside.all() else flat[inside]


def _repeats(flat: np.ndarray) -> np.ndarray:
    """Positions of the spikes that share a bin with the spike before them."""
    return np.flatnonzero(flat[1:] == flat[:-1]) + 1


def _largest_count(flat: np.ndarray, repeats: np.ndarray) -> int:
    if not len(repeats):
        return int(len(flat) > 0)
    _, runs = np.unique(flat[repeats], return_counts=True)
    return int(runs.max()) + 1


def max_bin_count(spikes: SpikeSource, grid: Grid) -> int:
    """The largest number of spikes any unit has in one bin of ``grid``."""
    best = 0
    for a, b in spikes.blocks():
        flat = _flat_bins(spikes.block(a, b), grid)
        best = max(best, _largest_count(flat, _repeats(flat)))
    return best


def fill_counts(spikes: SpikeSource, grid: Grid, a: int, b: int, out: np.ndarray) -> tuple[int, int]:
    """Exact counts of units ``a:b`` into ``out`` (see :func:`fill_block_counts`)."""
    return fill_block_counts(spikes.block(a, b), grid, out)


def fill_block_counts(block: SpikeTrains, grid: Grid, out: np.ndarray) -> tuple[int, int]:
    """Add the exact counts of a block of units to ``out``.

    One compiled pass over the spike times (:mod:`spikeprep.rates._counts_jit`), with
    the bins of :meth:`Grid.bins`; it releases the GIL.

    Parameters
    ----------
    block : SpikeTrains
        The units, in the order of ``out``'s columns.
    out : numpy.ndarray
        Zeroed, shape ``(n_bins, block.n_units)``, the transposed view of a C-ordered
        unit-major buffer (``buf[:n].T``): each unit's bins are contiguous.

    Returns
    -------
    (int, int)
        The largest count and the number of spikes counted (those inside the grid).

    Raises
    ------
    OverflowError
        A bin holds more spikes than ``out.dtype`` can; ``out`` is then partly filled.
    """
    if out.shape != (grid.n_bins, block.n_units) or not out.T.flags.c_contiguous:
        raise ValueError("out must be the (n_bins, units) transposed view of a unit-major C-ordered buffer")
    return fill_chunk_counts(block, grid, 0, grid.n_bins, out.T)


def fill_chunk_counts(block: SpikeTrains, grid: Grid, lo: int, hi: int, out: np.ndarray) -> tuple[int, int]:
    """Add the exact counts of a block of units in bins ``lo:hi`` to ``out`` (zeroed,
    ``(units, ≥ hi − lo)``, each row contiguous): one chunk of a store, unit-major.

    Returns and raises as :func:`fill_block_counts`.
    """
    from ._counts_jit import count_bins

    if out.ndim != 2 or out.shape[0] != block.n_units or not 0 <= lo <= hi <= grid.n_bins \
            or out.shape[1] < hi - lo:
        raise ValueError(f"out of shape {out.shape} cannot hold bins {lo}:{hi} of {block.n_units} units")
    limit = min(int(np.iinfo(out.dtype).max), int(np.iinfo(np.int64).max))
    largest, total = count_bins(block.times, block.offsets, float(grid.t_start), float(grid.bin_size),
                                float(grid.fs), lo, hi, out, limit)
    if largest < 0:
        raise OverflowError(f"a bin holds more spikes than {out.dtype} holds")
    return int(largest), int(total)


def bin_counts(spikes: SpikeSource, grid: Grid, dtype: np.dtype | None = None) -> np.ndarray:
    """Exact spike counts, shape ``(n_bins, n_units)`` (Fortran-ordered: unit-major memory).

    Parameters
    ----------
    spikes : SpikeTrains
    grid : Grid
        Spikes outside the grid are not counted.
    dtype : numpy dtype, optional
        Default: the narrowest unsigned type that holds the largest count.
    """
    dtype = dtype or count_dtype(max_bin_count(spikes, grid))
    out = np.zeros((spikes.n_units, grid.n_bins), dtype=dtype).T  # unit-major memory
    for a, b in spikes.blocks():
        fill_counts(spikes, grid, a, b, out[:, a:b])
    return out


def correct_edges(rates: np.ndarray, kernel: Kernel, start: int, n_bins: int) -> None:
    """With ``kernel.edge_correction``, rescale in place the rows of ``rates`` (bins
    ``start…`` of an ``n_bins`` grid) near the grid's ends by Σw / (kernel mass inside)."""
    h, stop = kernel.half, start + rates.shape[0]
    head = min(stop, h)
    for a, b in ((start, head), (max(start, n_bins - h, head), stop)):  # only rows near the ends change
        factor = _edge_factor(kernel, a, b, n_bins) if b > a else None
        if factor is not None:
            rates[a - start : b - start] *= factor.astype(rates.dtype)[:, None]


def _edge_factor(kernel: Kernel, start: int, stop: int, n_bins: int) -> np.ndarray | None:
    """Σw / (mass of w inside the grid) for bins ``start:stop``; None where it is all 1."""
    h = kernel.half
    if not kernel.edge_correction or (start >= h and stop <= n_bins - h):
        return None
    w = kernel.weights()
    idx = np.arange(start, stop)
    mass = np.zeros(len(idx))
    for k in range(kernel.taps):
        j = idx + k - h
        mass += np.where((j >= 0) & (j < n_bins), w[k], 0.0)
    return w.sum() / mass


def scaled_weights(kernel: Kernel, bin_size: float, dtype: Any) -> np.ndarray:
    """The kernel's taps scaled to give Hz from counts: ``w · fs / Σw``."""
    w = kernel.weights()
    return (w * ((1.0 / bin_size) / w.sum())).astype(dtype)


def smooth_counts(counts: np.ndarray, kernel: Kernel, bin_size: float, *, start: int = 0,
                  n_bins: int | None = None, dtype: Any = np.float32) -> np.ndarray:
    """Firing rates (Hz) from counts along axis 0: ``fs / Σw · (counts ⊛ w)``, Fortran-ordered
    (each unit's trace contiguous).

    Zero outside the array ('same' convolution). ``start`` and ``n_bins`` place the
    array on a longer grid, for edge correction only.
    """
    from .smoothing import as_piece, smooth_into

    out = np.empty(counts.shape, dtype=dtype, order="F")
    smooth_into(as_piece(np.asarray(counts)), scaled_weights(kernel, bin_size, dtype), out)
    correct_edges(out, kernel, start, counts.shape[0] if n_bins is None else n_bins)
    return out


def grid_attrs(grid: Grid, kernel: Kernel | None = None, **extra: Any) -> dict:
    """Attributes of a counts or rates array: its grid, kernel and spikeprep version."""
    from .. import __version__

    attrs: dict[str, Any] = {"bin_size_s": grid.bin_size, "t_start": grid.t_start, "t_stop": grid.t_stop,
                             "spikeprep_version": __version__}
    if kernel is not None:
        attrs.update(sigma_bins=kernel.sigma_bins, taps=kernel.taps, edge_correction=int(kernel.edge_correction))
        if kernel.sigma_bins == 0:
            attrs["smoothing"] = "none: counts / bin width"
    attrs.update(extra)
    return attrs
