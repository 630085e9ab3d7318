"""The counts store written: :class:`CountsWriter` takes a session's units block by block
(so one pass over the spike times can feed it and other outputs), :func:`write_counts`
runs it over a whole :class:`~spikeprep.core.model.SpikeSource`.

The store is our own contract (Zarr format 2, Fortran-ordered chunks, no filters; read
back directly by :mod:`spikeprep.rates.chunks`). Zarr writes its metadata; the chunks of
``counts`` are counted and encoded here, chunk by chunk on a pool of threads, straight
into their files: through zarr-python a dense column of counts was filled, copied chunk
by chunk and encoded (three passes over 5.4 GB at full scale, on one core for the most
part), the costliest step of an export. Decoded, the chunks are the ones zarr-python
writes (tested).
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.model import SpikeSource, SpikeTrains, spike_pass
from .binning import Grid, Kernel, count_dtype, fill_chunk_counts, grid_attrs, max_bin_count, smooth_counts
from .chunks import usable_cores
from .planes import block_size, counts_of_planes, encode_planes, fill_chunk_planes, plane_codec

__all__ = ["CountsWriter", "write_counts", "COUNTS_CHUNKS"]

COUNTS_CHUNKS = (24_000, 64)  # 120 s × 64 units: ≈1.5 MB raw uint8; chosen in benchmarks/rates.py


def _codecs() -> dict[str, Any]:
    """Zarr format 2 (zarr-python 2 and 3 both read it), chunks in Fortran order, that is
    unit-major (long zero runs of one unit), bitshuffled, lz4, 256 KiB blocks.

    Chosen by measurement on full-scale counts (one core, on real chunks): lz4 encodes
    at 1.6x zstd level 1's speed (0.88 against 0.54 GB/s on this project's 2-core VM)
    and decodes 1.2x faster, for a store 1/18 of the raw size against zstd's 1/35
    (≈300 MB against ≈150 MB per full session, beside a 640 MB ``spike_times.parquet``):
    encoding is the export's largest cost, decoding every read of rates'. blosclz is
    slower at lz4's size; Blosc's default block size is 1.6x slower both ways; no
    shuffle is larger and slower. Format 2's ``order: "F"`` gives the same chunk bytes as
    format 3's transpose codec, 10 % smaller and as fast (measured), without needing
    zarr 3. ``fill_value`` None: with 0, xarray would read every zero count as missing.
    """
    import numcodecs

    return {"compressors": numcodecs.Blosc(cname="lz4", clevel=1, shuffle=numcodecs.Blosc.BITSHUFFLE,
                                           blocksize=1 << 18),
            "order": "F", "fill_value": None}


class CountsWriter:
    """Exact counts (and optionally float32 rates) into a new Zarr store, one column of
    chunks (``chunks[1]`` units) at a time.

    :meth:`add` hands each chunk of a block of units to the encoding threads as a task
    that counts its bins (compiled, releasing the GIL) into a buffer of its thread,
    encodes it while it is still in cache, writes it and zeros the buffer. uint8 counts
    are counted straight into the bit planes Blosc would shuffle them into
    (:mod:`spikeprep.rates.planes`: the same bytes, made at twice the speed). Counting is
    thus spread over the threads with the encoding, and no dense column of counts is ever
    held (at full scale, 5.4 GB of counts would otherwise cross memory three times). At
    most two columns are in flight, so reading the next block overlaps encoding.

    Counts are uint8 unless a bin holds more than 255 spikes: then the store is
    restarted with the narrowest type that holds the largest count (the units already
    added are read again from ``spikes``).

    Parameters
    ----------
    store : path
        Folder of the new store; must not exist.
    grid : Grid
    spikes : SpikeTrains or spikeprep.io.nwb.SpikeReader
        The units (their ids label the store; read again only when counts overflow).
    chunks : (time, unit)
        Chunk shape; blocks given to :meth:`add` are exactly the chunk columns.
    rates_kernel : Kernel, optional
        Also store materialised float32 ``rates`` smoothed with this kernel.
    threads : int, optional
        Encoding threads (default: one per core).
    progress : callable, optional
        Called with the number of units stored after each column.

    Raises
    ------
    FileExistsError
        ``store`` exists.
    """

    def __init__(self, store: str | Path, grid: Grid, spikes: SpikeSource, *,
                 chunks: tuple[int, int] = COUNTS_CHUNKS, rates_kernel: Kernel | None = None,
                 threads: int | None = None, progress: Callable[[int], None] | None = None) -> None:
        if Path(store).exists():
            raise FileExistsError(f"{store} already exists")
        self.store, self.grid, self.spikes = Path(store), grid, spikes
        self.n_units = spikes.n_units
        self.tc, self.width = min(chunks[0], max(grid.n_bins, 1)), min(chunks[1], max(self.n_units, 1))
        self.rates_kernel, self.progress = rates_kernel, progress
        self.total = self.max_count = 0
        self._next = 0
        self._local, self._io = threading.local(), threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads or usable_cores())
        self._pending: list[list[Future]] = []
        try:
            self._start(np.dtype(np.uint8))
        except BaseException:
            self.abort()
            raise

    def _start(self, dtype: np.dtype) -> None:
        """Create the store's arrays, with counts of ``dtype``."""
        import zarr

        grid, n_bins = self.grid, self.grid.n_bins
        root = zarr.open_group(str(self.store), mode="w", zarr_format=2, attributes=grid_attrs(grid))
        dims = {"_ARRAY_DIMENSIONS": ["time", "unit_id"]}  # xarray's names for format 2
        codecs = _codecs()
        self.codec = codecs["compressors"]
        # uint8 counts go straight into Blosc's bit planes (rates/planes.py: same bytes, 2x faster)
        self._planes = plane_codec(self.codec) if dtype == np.uint8 else None
        self._block_size = block_size(self.codec, self.width * self.tc)
        root.create_array("counts", shape=(n_bins, self.n_units), dtype=dtype, chunks=(self.tc, self.width),
                          **codecs, attributes={"long_name": "exact spike counts per bin", **dims})
        self.rates = None
        if self.rates_kernel is not None:
            self.rates = root.create_array("rates", shape=(n_bins, self.n_units), dtype="float32",
                                           chunks=(self.tc, self.width), **codecs,
                                           config={"write_empty_chunks": True},
                                           attributes={"units": "Hz", **grid_attrs(grid, self.rates_kernel), **dims})
        root.create_array("time", data=grid.edges(), chunks=(max(n_bins, 1),), fill_value=None,
                          attributes={"units": "s", "long_name": "bin left edge", "_ARRAY_DIMENSIONS": ["time"]})
        root.create_array("unit_id", data=np.asarray(self.spikes.unit_ids, dtype=np.int64), fill_value=None,
                          attributes={"_ARRAY_DIMENSIONS": ["unit_id"]})
        self.dtype = dtype

    def add(self, a: int, b: int, block: SpikeTrains) -> None:
        """Queue units ``a:b`` (the next chunk column; ``block`` holds exactly them)."""
        if a != self._next or b != min(self.n_units, a + self.width):
            raise ValueError(f"blocks must be the chunk columns in order: expected units {self._next}:"
                             f"{min(self.n_units, self._next + self.width)}, got {a}:{b}")
        if len(self._pending) >= 2 and not self._settle(self._pending.pop(0)):
            self._widen()
        j, n_bins = a // self.width, self.grid.n_bins
        tasks = [self._pool.submit(self._chunk, block, i, j, i * self.tc, min(n_bins, (i + 1) * self.tc))
                 for i in range(-(-n_bins // self.tc))]
        if self.rates is not None:
            tasks.append(self._pool.submit(self._store_rates, block, a, b))
        if self.progress and tasks:
            tasks[-1].add_done_callback(lambda f: f.exception() is None and self.progress(b - a))
        self._pending.append(tasks)
        self._next = b

    def _chunk(self, block: SpikeTrains, i: int, j: int, lo: int, hi: int) -> tuple[int, int]:
        """Count, encode and write chunk ``(i, j)``; its largest count and total, or
        ``(-1, 0)`` when a count does not fit the store's type."""
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.dtype != self.dtype:
            buf = self._local.buf = np.zeros((self.width, self.tc), dtype=self.dtype)  # unit-major: order "F"
        try:
            try:
                if self._planes is not None:
                    result, data = self._planes_frame(block, lo, hi, buf.reshape(-1))
                else:
                    result = fill_chunk_counts(block, self.grid, lo, hi, buf[: block.n_units])
                    data = self.codec.encode(buf)
            except OverflowError:
                return -1, 0
            with self._io:  # file systems slow to create files get slower still when two threads do
                (self.store / "counts" / f"{i}.{j}").write_bytes(data)
            return result
        finally:
            buf.fill(0)

    def _planes_frame(self, block: SpikeTrains, lo: int, hi: int, flat: np.ndarray) -> tuple[tuple[int, int], bytes]:
        """Count a uint8 chunk into its bit planes and make its Blosc frame from them."""
        result = fill_chunk_planes(block, self.grid, lo, hi, self.tc, flat, self._block_size)
        data = encode_planes(self._planes, flat, self._block_size)
        if data is None:  # not a frame Blosc would make from the counts: let Blosc make it
            data = self.codec.encode(counts_of_planes(flat, self._block_size))
        return result, data

    def _store_rates(self, block: SpikeTrains, a: int, b: int) -> tuple[int, int]:
        counts = np.zeros((b - a, self.grid.n_bins), dtype=np.uint32)
        fill_chunk_counts(block, self.grid, 0, self.grid.n_bins, counts)
        self.rates[:, a:b] = smooth_counts(counts.T, self.rates_kernel, self.grid.bin_size)
        return 0, 0

    def _settle(self, tasks: list[Future]) -> bool:
        """Wait for a column's tasks and add up their counts; False if one overflowed."""
        fits = True
        for f in tasks:
            largest, total = f.result()
            fits &= largest >= 0
            self.max_count, self.total = max(self.max_count, largest), self.total + total
        return fits

    def _widen(self) -> None:
        """Restart the store with a type that holds the largest count, re-adding every
        unit added so far."""
        for tasks in self._pending:
            for f in tasks:
                f.result()
        done, self._pending = self._next, []
        shutil.rmtree(self.store)
        self._start(count_dtype(max_bin_count(self.spikes, self.grid)))
        self.total = self.max_count = self._next = 0
        for a in range(0, done, self.width):
            b = min(self.n_units, a + self.width)
            self.add(a, b, self.spikes.block(a, b))

    def close(self) -> dict[str, Any]:
        """Finish writing (consolidated metadata: xarray opens the store with one read).

        Returns
        -------
        dict
            ``dtype``, ``shape``, ``max_count``, ``total`` (sum of counts), ``chunks`` and
            ``grid`` (``bin_size_s``, ``t_start``, ``t_stop``).
        """
        import warnings

        import zarr

        if self._next != self.n_units:
            raise ValueError(f"{self.store}: units {self._next}:{self.n_units} were not added")
        while self._pending:
            if not self._settle(self._pending.pop(0)):
                self._widen()
        self._pool.shutdown()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (format 3 stores of earlier versions warned here)
            zarr.consolidate_metadata(str(self.store))
        grid = self.grid
        return {"dtype": str(self.dtype), "shape": [grid.n_bins, self.n_units], "max_count": self.max_count,
                "total": self.total, "chunks": [self.tc, self.width],
                "grid": {"bin_size_s": grid.bin_size, "t_start": grid.t_start, "t_stop": grid.t_stop}}

    def abort(self) -> None:
        """Stop, and remove the store (it did not exist before): no half-written store is left."""
        for tasks in self._pending:
            for f in tasks:
                f.cancel()
        for tasks in self._pending:
            for f in tasks:
                if not f.cancelled():
                    f.exception()
        self._pending = []
        self._pool.shutdown()
        shutil.rmtree(self.store, ignore_errors=True)


def write_counts(spikes: SpikeSource, store: str | Path, grid: Grid, *, chunks: tuple[int, int] = COUNTS_CHUNKS,
                 rates_kernel: Kernel | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Stream exact counts (and optionally float32 rates) into a Zarr store, unit block by block.

    Parameters
    ----------
    spikes : SpikeTrains or spikeprep.io.nwb.SpikeReader
        With a reader, only one block of units' spike times is in memory at a time.
    store : path
        Folder of the new store; must not exist. Removed again if writing fails (e.g. a
        corrupt block of the file), so no half-written store is left.
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
        As :meth:`CountsWriter.close`.
    """
    writer = CountsWriter(store, grid, spikes, chunks=chunks, rates_kernel=rates_kernel, progress=progress)
    return spike_pass(spikes, [writer])[0]
