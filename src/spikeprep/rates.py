"""Spike counts on a time grid, Gaussian smoothing, the Zarr counts store, lazy rates.

Defaults reproduce the notebook: 5 ms bins (200 Hz), bin of a spike ``floor(t * fs)``,
grid from 0 to the last spike + 1 s, an 11-tap Gaussian with σ = √2 bins, rates in Hz,
zero outside the grid. Unlike the notebook, counts are exact (two spikes in one bin
count 2) and never overflow: the integer type is chosen from the data.

Kernels are numpy in, numpy out; the Zarr writer streams one block of units at a time,
and :func:`lazy_rates` smooths chunk by chunk with a halo read from the store, giving
results identical to smoothing the whole matrix at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .session import SpikeSource, SpikeTrains

if TYPE_CHECKING:  # heavy imports stay lazy
    import xarray as xr

__all__ = ["Grid", "Kernel", "gaussian_kernel", "make_grid", "bin_counts", "count_dtype",
           "max_bin_count", "counts_dtype", "fill_counts", "smooth_counts", "firing_rates", "write_counts", "lazy_rates",
           "DEFAULT_BIN_SIZE", "DEFAULT_SIGMA_BINS", "DEFAULT_TAPS"]

DEFAULT_BIN_SIZE = 0.005
DEFAULT_SIGMA_BINS = math.sqrt(2.0)
DEFAULT_TAPS = 11
COUNTS_CHUNKS = (24_000, 64)  # 120 s × 64 units: ≈1.5 MB raw uint8; chosen in benchmarks/rates.py


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
        """Bin index of each time (int64); may fall outside ``[0, n_bins)``."""
        return np.floor((times - self.t_start) * self.fs).astype(np.int64)


def make_grid(spikes: SpikeSource, bin_size: float = DEFAULT_BIN_SIZE, t_start: float = 0.0,
              t_stop: float | None = None) -> Grid:
    """The notebook's grid: ``t_start`` to the last spike + 1 s unless ``t_stop`` is given."""
    if bin_size <= 0:
        raise ValueError("bin_size must be positive")
    if t_stop is None:
        t_max = spikes.t_max
        t_stop = (t_max if np.isfinite(t_max) else t_start) + 1.0
    if t_stop <= t_start:
        raise ValueError(f"t_stop ({t_stop}) must be after t_start ({t_start})")
    return Grid(float(bin_size), float(t_start), float(t_stop))


@dataclass(frozen=True)
class Kernel:
    """A Gaussian smoothing kernel in bins.

    Parameters
    ----------
    sigma_bins : float
        Standard deviation in bins (default √2 = 7.07 ms at 5 ms bins).
    taps : int
        Odd number of taps (default 11).
    edge_correction : bool
        Divide by the kernel mass inside the grid near its ends instead of treating
        the outside as zero spikes.
    """

    sigma_bins: float = DEFAULT_SIGMA_BINS
    taps: int = DEFAULT_TAPS
    edge_correction: bool = False

    def __post_init__(self) -> None:
        if self.taps < 1 or self.taps % 2 == 0:
            raise ValueError("taps must be a positive odd number")
        if self.sigma_bins <= 0:
            raise ValueError("sigma must be positive")

    @classmethod
    def make(cls, *, sigma_bins: float | None = None, sigma_ms: float | None = None,
             taps: int | None = None, half_width_sigmas: float | None = None,
             bin_size: float = DEFAULT_BIN_SIZE, edge_correction: bool = False) -> "Kernel":
        """Build from σ in bins or in ms, and taps or a half-width in σ."""
        if sigma_bins is not None and sigma_ms is not None:
            raise ValueError("give sigma_bins or sigma_ms, not both")
        sigma = sigma_ms / 1000.0 / bin_size if sigma_ms is not None else (sigma_bins or DEFAULT_SIGMA_BINS)
        if taps is not None and half_width_sigmas is not None:
            raise ValueError("give taps or half_width_sigmas, not both")
        if half_width_sigmas is not None:
            taps = 2 * int(math.ceil(half_width_sigmas * sigma)) + 1
        return cls(float(sigma), int(taps or DEFAULT_TAPS), edge_correction)

    @property
    def half(self) -> int:
        return self.taps // 2

    def weights(self) -> np.ndarray:
        return gaussian_kernel(self.sigma_bins, self.taps)


def gaussian_kernel(sigma_bins: float = DEFAULT_SIGMA_BINS, taps: int = DEFAULT_TAPS) -> np.ndarray:
    """Unnormalised Gaussian ``w[k] = exp(-(k - h)² / (2σ²))``, ``k = 0 … taps-1``.

    With the defaults this is the notebook's ``exp(-(k - 5)² / 4)``.
    """
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
    x = block.times - grid.t_start
    x *= grid.fs
    np.floor(x, out=x)
    flat = x.astype(np.int64)
    inside = (flat >= 0) & (flat < n)
    flat += np.repeat(np.arange(block.n_units, dtype=np.int64) * n, block.n_spikes)
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


def counts_dtype(spikes: SpikeSource, grid: Grid) -> np.dtype:
    """The narrowest unsigned type for the counts of ``spikes`` on ``grid``."""
    return count_dtype(max_bin_count(spikes, grid))


def fill_counts(spikes: SpikeSource, grid: Grid, a: int, b: int, out: np.ndarray) -> tuple[int, int]:
    """Exact counts of units ``a:b`` into ``out``.

    Parameters
    ----------
    out : numpy.ndarray
        Zeroed, shape ``(n_bins, b - a)``, the transposed view of a C-ordered unit-major
        buffer (``buf[: b - a].T``): each unit's bins are contiguous, so counting is one
        pass of flat indices.

    Returns
    -------
    (int, int)
        The largest count and the number of spikes counted (those inside the grid).

    Raises
    ------
    OverflowError
        A bin holds more spikes than ``out.dtype`` can; ``out`` is then partly filled.
    """
    if out.shape != (grid.n_bins, b - a) or not out.T.flags.c_contiguous:
        raise ValueError("out must be the (n_bins, units) transposed view of a unit-major C-ordered buffer")
    flat = _flat_bins(spikes.block(a, b), grid)
    repeats = _repeats(flat)
    largest = _largest_count(flat, repeats)
    if largest > np.iinfo(out.dtype).max:
        raise OverflowError(f"a bin holds {largest} spikes, more than {out.dtype} holds")
    cells = out.T.reshape(-1)  # a view
    cells[flat] = 1
    if len(repeats):
        np.add.at(cells, flat[repeats], 1)
    return largest, len(flat)


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
    dtype = dtype or counts_dtype(spikes, grid)
    out = np.zeros((spikes.n_units, grid.n_bins), dtype=dtype).T  # unit-major memory
    for a, b in spikes.blocks():
        fill_counts(spikes, grid, a, b, out[:, a:b])
    return out


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


def smooth_counts(counts: np.ndarray, kernel: Kernel, bin_size: float, *, start: int = 0,
                  n_bins: int | None = None, dtype: Any = np.float32) -> np.ndarray:
    """Firing rates (Hz) from counts along axis 0: ``fs / Σw · (counts ⊛ w)``.

    Zero outside the array ('same' convolution). ``start`` and ``n_bins`` place the
    array on a longer grid, for edge correction only. The result may be a transposed
    (Fortran-ordered) view.
    """
    from scipy.ndimage import convolve1d

    w = kernel.weights()
    scaled = w * ((1.0 / bin_size) / w.sum())
    # Convolve along contiguous memory: on a unit-major copy (cheap for integer counts),
    # 1.5x faster than along the strided time axis; the result is its transposed view.
    lines = np.ascontiguousarray(np.moveaxis(counts, 0, -1))
    out = np.moveaxis(convolve1d(lines, scaled, axis=-1, output=np.dtype(dtype), mode="constant", cval=0.0), -1, 0)
    n_bins = counts.shape[0] if n_bins is None else n_bins
    factor = _edge_factor(kernel, start, start + counts.shape[0], n_bins)
    if factor is not None:
        out *= factor.astype(out.dtype).reshape((-1,) + (1,) * (out.ndim - 1))
    return out


def _as_dataarray(values: Any, grid: Grid, unit_ids: np.ndarray, name: str, attrs: dict) -> "xr.DataArray":
    import xarray as xr

    return xr.DataArray(values, dims=("time", "unit_id"), name=name,
                        coords={"time": grid.edges(), "unit_id": np.asarray(unit_ids, dtype=np.int64)},
                        attrs=attrs)


def firing_rates(spikes: SpikeSource, *, bin_size: float = DEFAULT_BIN_SIZE, t_start: float = 0.0,
                 t_stop: float | None = None, kernel: Kernel | None = None,
                 dtype: Any = np.float32) -> "xr.DataArray":
    """Smoothed firing rates in memory, as an ``xarray.DataArray`` (``time`` × ``unit_id``, Hz).

    Parameters
    ----------
    spikes : SpikeTrains
    bin_size, t_start, t_stop : float
        The grid (default: 5 ms from 0 to the last spike + 1 s).
    kernel : Kernel, optional
        Default: 11 taps, σ = √2 bins.
    dtype : numpy dtype
        float32 by default; float64 for bit-level comparisons.
    """
    grid = make_grid(spikes, bin_size, t_start, t_stop)
    kernel = kernel or Kernel()
    rates = smooth_counts(bin_counts(spikes, grid), kernel, grid.bin_size, dtype=dtype)
    return _as_dataarray(rates, grid, spikes.unit_ids, "rates", _attrs(grid, kernel, units="Hz"))


def _attrs(grid: Grid, kernel: Kernel | None = None, **extra: Any) -> dict:
    from . import __version__

    attrs: dict[str, Any] = {"bin_size_s": grid.bin_size, "t_start": grid.t_start, "t_stop": grid.t_stop,
                             "spikeprep_version": __version__}
    if kernel is not None:
        attrs.update(sigma_bins=kernel.sigma_bins, taps=kernel.taps, edge_correction=int(kernel.edge_correction))
    attrs.update(extra)
    return attrs


# ----------------------------------------------------------------------------- Zarr store
def _codecs() -> dict[str, Any]:
    """Unit-major chunks (long zero runs of one unit), bitshuffled, zstd level 1, 256 KiB blocks.

    Chosen by measurement on full-scale counts (one core): 2.0 GB/s to encode, 1.4 GB/s
    to decode, 1/39 of the raw size. Blosc's default block size is 1.6x slower both
    ways; lz4 is 1.6x faster to encode but the store is 2x larger; no shuffle is 1.5x
    larger and slower.
    """
    from zarr.codecs import BloscCodec, TransposeCodec

    return {"filters": [TransposeCodec(order=(1, 0))],
            "compressors": [BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle", blocksize=1 << 18)]}


# Writers hand Zarr Fortran-ordered (time, unit) views of unit-major buffers, so the
# TransposeCodec's encode needs no copy; and they skip Zarr's scan of every chunk for
# "all fill value" (a full compare per chunk, measured 60 % of the write time).
_WRITE_CONFIG = {"order": "F", "write_empty_chunks": True}


def write_counts(spikes: SpikeSource, store: str | Path, grid: Grid, *, chunks: tuple[int, int] = COUNTS_CHUNKS,
                 rates_kernel: Kernel | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Stream exact counts (and optionally float32 rates) into a Zarr store, unit block by block.

    Counts are stored as uint8 unless a bin holds more than 255 spikes; then the store
    is rewritten with the narrowest type that holds the largest count.

    Parameters
    ----------
    spikes : SpikeTrains or spikeprep.nwb.SpikeReader
        With a reader, only one block of units' spike times is in memory at a time.
    store : path
        Folder of the new Zarr (v3) group; must not exist.
    grid : Grid
    chunks : (time, unit)
        Chunk shape; two blocks of ``chunks[1]`` units are held in memory.
    rates_kernel : Kernel, optional
        Also store materialised float32 ``rates`` smoothed with this kernel.
    progress : callable, optional
        Called with the number of units done after each block.

    Returns
    -------
    dict
        ``dtype``, ``shape``, ``max_count``, ``total`` (sum of counts), ``chunks``.
    """
    import shutil

    try:
        return _write_counts(spikes, store, grid, np.dtype(np.uint8), chunks, rates_kernel, progress)
    except OverflowError:
        shutil.rmtree(store)
        dtype = counts_dtype(spikes, grid)
        return _write_counts(spikes, store, grid, dtype, chunks, rates_kernel, progress)


def _write_counts(spikes: SpikeSource, store: str | Path, grid: Grid, dtype: np.dtype, chunks: tuple[int, int],
                  rates_kernel: Kernel | None, progress: Callable[[int], None] | None) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    import zarr

    n_bins, n_units = grid.n_bins, spikes.n_units
    tc, uc = min(chunks[0], max(n_bins, 1)), min(chunks[1], max(n_units, 1))
    root = zarr.open_group(str(store), mode="w-", zarr_format=3, attributes=_attrs(grid))
    counts = root.create_array("counts", shape=(n_bins, n_units), dtype=dtype, chunks=(tc, uc), **_codecs(),
                               fill_value=0, dimension_names=("time", "unit_id"), config=_WRITE_CONFIG,
                               attributes={"long_name": "exact spike counts per bin"})
    rates = None
    if rates_kernel is not None:
        rates = root.create_array("rates", shape=(n_bins, n_units), dtype="float32", chunks=(tc, uc), **_codecs(),
                                  fill_value=0.0, dimension_names=("time", "unit_id"), config=_WRITE_CONFIG,
                                  attributes={"units": "Hz", **_attrs(grid, rates_kernel)})
    root.create_array("time", data=grid.edges(), chunks=(max(n_bins, 1),), dimension_names=("time",),
                      attributes={"units": "s", "long_name": "bin left edge"})
    root.create_array("unit_id", data=np.asarray(spikes.unit_ids, dtype=np.int64), dimension_names=("unit_id",))
    total = max_count = 0
    buffers = [np.zeros((uc, n_bins), dtype=dtype) for _ in range(2)]  # unit-major

    def store_block(view: np.ndarray, a: int, b: int) -> None:
        counts[:, a:b] = view
        if rates is not None:
            rates[:, a:b] = smooth_counts(view, rates_kernel, grid.bin_size)
        if progress:
            progress(b - a)

    # Double buffering: a thread stores block k while this one fills block k + 1
    # (blosc and numpy release the GIL).
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for k, a in enumerate(range(0, n_units, uc)):
            b = min(n_units, a + uc)
            view = buffers[k % 2][: b - a].T
            view.fill(0)
            try:
                block_max, block_total = fill_counts(spikes, grid, a, b, view)
            finally:
                if pending is not None:
                    pending.result()
            max_count, total = max(max_count, block_max), total + block_total
            pending = writer.submit(store_block, view, a, b)
        if pending is not None:
            pending.result()
    _consolidate(store)
    return {"dtype": str(dtype), "shape": [n_bins, n_units], "max_count": max_count, "total": total,
            "chunks": [tc, uc]}


def _consolidate(store: str | Path) -> None:
    """Consolidated metadata, so xarray opens the store with one read."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not part of the Zarr v3 spec yet": xarray reads it fine
        zarr.consolidate_metadata(str(store))


@lru_cache(maxsize=8)
def _open_counts(path: str) -> Any:
    import zarr

    return zarr.open_array(path, mode="r")


def lazy_rates(store: str | Path, kernel: Kernel | None = None, *, bin_size: float | None = None,
               chunks: tuple[int, int] | None = None) -> "xr.DataArray":
    """Lazy float32 firing rates (Hz) computed from the ``counts`` of a store.

    Each output chunk reads its counts plus a halo of ``kernel.half`` bins on either
    side straight from Zarr and smooths them, so a window costs only its own chunks
    and the result equals smoothing the whole matrix at once.

    Parameters
    ----------
    store : path
        A ``binned.zarr`` folder written by :func:`write_counts`.
    kernel : Kernel, optional
        In bins of the result.
    bin_size : float, optional
        A coarser bin (an integer multiple of the stored one): counts are summed over
        consecutive bins first; an incomplete last bin is dropped.
    chunks : (time, unit), optional
        Dask chunks of the result (default: 5 store chunks in time × the store's unit
        chunk; measured faster than store-aligned chunks, whose halos decode
        neighbouring chunks again).
    """
    import dask.array as da
    import zarr

    kernel = kernel or Kernel()
    root = zarr.open_group(str(store), mode="r")
    counts = root["counts"]
    attrs = dict(root.attrs)
    stored = Grid(float(attrs["bin_size_s"]), float(attrs["t_start"]), float(attrs["t_stop"]))
    factor = 1 if bin_size is None else int(round(bin_size / stored.bin_size))
    if factor < 1 or abs(factor * stored.bin_size - (bin_size or stored.bin_size)) > 1e-9:
        raise ValueError(f"bin_size {bin_size} is not a multiple of the stored {stored.bin_size} s")
    n_bins, n_units = counts.shape[0] // factor, counts.shape[1]
    grid = Grid(stored.bin_size * factor, stored.t_start, stored.t_start + n_bins * stored.bin_size * factor)
    ctc, cuc = counts.chunks
    tc, uc = chunks or (max(1, 5 * ctc // factor), cuc)
    path = str(Path(store) / "counts")
    h = kernel.half
    plain = Kernel(kernel.sigma_bins, kernel.taps, False)

    def block(block_info: dict | None = None) -> np.ndarray:
        (t0, t1), (u0, u1) = block_info[None]["array-location"]
        a, b = max(0, t0 - h), min(n_bins, t1 + h)
        x = _open_counts(path)[a * factor : b * factor, u0:u1]
        if factor > 1:
            x = x.reshape(b - a, factor, u1 - u0).sum(axis=1, dtype=np.uint32)
        y = smooth_counts(x, plain, grid.bin_size)[t0 - a : t0 - a + (t1 - t0)]
        edge = _edge_factor(kernel, t0, t1, n_bins)
        if edge is not None:
            y *= edge.astype(np.float32)[:, None]
        return y

    tchunks = tuple(min(tc, n_bins - s) for s in range(0, n_bins, tc)) or (0,)
    uchunks = tuple(min(uc, n_units - s) for s in range(0, n_units, uc)) or (0,)
    data = da.map_blocks(block, dtype=np.float32, chunks=(tchunks, uchunks), meta=np.empty((0, 0), np.float32),
                         name=f"rates-{Path(store).resolve()}-{kernel}-{factor}")
    return _as_dataarray(data, grid, root["unit_id"][:], "rates", _attrs(grid, kernel, units="Hz"))
