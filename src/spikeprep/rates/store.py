"""Zarr and xarray around the kernels of :mod:`spikeprep.rates.binning`: :func:`lazy_rates`
computes firing rates from a counts store (written by :mod:`spikeprep.rates.writer`) on
indexing, :func:`firing_rates` gives them in memory as a DataArray.

Imported lazily (it pulls in Zarr and xarray).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from ..core.model import SpikeSource
from ..core.options import BIN_SIZE_S
from .binning import (Grid, Kernel, bin_counts, correct_edges, grid_attrs, grid_stop,
                      make_grid, scaled_weights, smooth_counts)
from .chunks import ChunkCache, CountsReader
from .smoothing import smooth_into

__all__ = ["lazy_rates", "open_store_grid", "firing_rates", "store_bin_size"]


def _as_dataarray(values: Any, grid: Grid, unit_ids: np.ndarray, name: str, attrs: dict) -> xr.DataArray:
    return xr.DataArray(values, dims=("time", "unit_id"), name=name,
                        coords={"time": grid.edges(), "unit_id": np.asarray(unit_ids, dtype=np.int64)},
                        attrs=attrs)


def firing_rates(spikes: SpikeSource, *, bin_size: float = BIN_SIZE_S, t_start: float = 0.0,
                 t_stop: float | None = None, kernel: Kernel | None = None,
                 dtype: Any = np.float32) -> xr.DataArray:
    """Smoothed firing rates in memory, as an ``xarray.DataArray`` (``time`` × ``unit_id``, Hz).

    Parameters
    ----------
    spikes : SpikeTrains
    bin_size, t_start, t_stop : float
        The grid (s; default: 5 ms from 0 to the last spike + 1 s).
    kernel : Kernel, optional
        Default: 11 taps, σ = √2 bins.
    dtype : numpy dtype
        float32 by default; float64 for bit-level comparisons.
    """
    grid = make_grid(spikes, bin_size, t_start, t_stop)
    kernel = kernel or Kernel()
    rates = smooth_counts(bin_counts(spikes, grid), kernel, grid.bin_size, dtype=dtype)
    return _as_dataarray(rates, grid, spikes.unit_ids, "rates", grid_attrs(grid, kernel, units="Hz"))


def store_bin_size(store: str | Path) -> float:
    """The bin size (s) of a counts store."""
    import zarr

    return float(zarr.open_group(str(store), mode="r").attrs["bin_size_s"])


class _LazyRates(BackendArray):
    """The rates of a counts store as an array computed on indexing (xarray's lazy
    backend protocol): a selection computes exactly its own bins and units."""

    def __init__(self, reader: CountsReader, kernel: Kernel, n_units: int, bin_size: float) -> None:
        self.reader, self.kernel, self.bin_size = reader, kernel, bin_size
        self.shape = (reader.n_bins, n_units)
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, key: Any) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._basic)

    def _basic(self, key: tuple) -> np.ndarray:
        spans, post = [], []
        for k, n in zip(key, self.shape):
            r = range(n)[k]
            if isinstance(r, int):
                spans.append((r, r + 1))
                post.append(0)
            elif len(r) == 0:
                spans.append((0, 0))
                post.append(slice(None))
            else:
                lo, hi = min(r[0], r[-1]), max(r[0], r[-1]) + 1
                spans.append((lo, hi))
                post.append(slice(None) if r.step == 1 else slice(r[0] - lo, None, r.step))
        (t0, t1), (u0, u1) = spans
        return self.window(t0, t1, u0, u1)[tuple(post)]

    def window(self, t0: int, t1: int, u0: int, u1: int) -> np.ndarray:
        """Rates of bins ``t0:t1`` × units ``u0:u1`` (float32, Fortran-ordered: each
        unit's trace contiguous, as the store keeps it), block by block of time, one
        column of units (or part of one) per thread."""
        reader, h = self.reader, self.kernel.half
        out = np.empty((t1 - t0, u1 - u0), dtype=np.float32, order="F")
        w = scaled_weights(self.kernel, self.bin_size, np.float32)

        def part(cache: ChunkCache, a: int, b: int, p0: int, p1: int) -> None:
            for s0, s1 in reader.blocks(p0, p1):
                smooth_into(reader.pieces(s0, s1, a, b, h, cache), w, out[s0 - t0 : s1 - t0, a - u0 : b - u0])

        reader.each_part(u0, u1, t0, t1, part)
        correct_edges(out, self.kernel, t0, reader.n_bins)
        return out


def open_store_grid(store: str | Path, bin_size: float | None = None) -> tuple[Any, int, Grid]:
    """A counts store opened read-only, with the grid of its rates at ``bin_size``.

    Returns the Zarr group, the number of stored bins per result bin, and the result
    grid (whole result bins: an incomplete last one is dropped).

    Raises
    ------
    ValueError
        ``bin_size`` is not an integer multiple of the stored bin.
    """
    import zarr

    root = zarr.open_group(str(store), mode="r")
    stored, t_start = float(root.attrs["bin_size_s"]), float(root.attrs["t_start"])
    factor = 1 if bin_size is None else int(round(bin_size / stored))
    if factor < 1 or abs(factor * stored - (bin_size or stored)) > 1e-9:
        raise ValueError(f"bin_size {bin_size} is not a multiple of the stored {stored} s")
    n_bins = root["counts"].shape[0] // factor
    return root, factor, Grid(stored * factor, t_start, grid_stop(t_start, n_bins, stored * factor))


def lazy_rates(store: str | Path, kernel: Kernel | None = None, *, bin_size: float | None = None,
               chunks: tuple[int, int] | str | None = None) -> "xr.DataArray":
    """Lazy float32 firing rates (Hz) computed from the ``counts`` of a store.

    Indexing computes exactly the bins and units selected: their counts plus a halo
    of ``kernel.half`` bins on either side are read straight from Zarr and smoothed,
    so a window or one unit's trace costs only its own chunks, and the result equals
    smoothing the whole matrix at once (bit for bit). With ``chunks`` the array is
    dask-backed instead, each dask chunk computed the same way (use it for reductions
    over a whole session: 21.6 GB of float32).

    Parameters
    ----------
    store : path
        A ``binned.zarr`` folder written by :func:`write_counts`.
    kernel : Kernel, optional
        In bins of the result.
    bin_size : float, optional
        A coarser bin (an integer multiple of the stored one): counts are summed over
        consecutive bins first; an incomplete last bin is dropped.
    chunks : (time, unit) or "auto", optional
        Dask chunks of the result; ``"auto"`` is one store chunk in time (120 s at
        5 ms) × all units (≈270 MB of float32).
    """
    kernel = kernel or Kernel()
    root, factor, grid = open_store_grid(store, bin_size)
    counts = root["counts"]
    n_units = counts.shape[1]
    lazy = _LazyRates(CountsReader(store, counts, factor), kernel, n_units, grid.bin_size)
    rates = _as_dataarray(indexing.LazilyIndexedArray(lazy), grid, root["unit_id"][:], "rates",
                          grid_attrs(grid, kernel, units="Hz"))
    if chunks is not None:
        if chunks == "auto":
            chunks = (max(1, counts.chunks[0] // factor), max(n_units, 1))
        rates = rates.chunk({"time": chunks[0], "unit_id": chunks[1]})
    return rates
