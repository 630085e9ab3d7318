"""A counts store read block by block of time, one column of units at a time, decoded
into reused buffers: the input side of the lazy rates and their summaries.

The counts store is our own contract (Zarr format 2, Fortran-ordered chunks, no filters,
see :mod:`spikeprep.rates.store`), so its chunks are decoded straight from their files
with the store's own numcodecs codec into a small per-thread cache of buffers. Through
zarr-python each read would allocate fresh chunk buffers and copy them into a new
array; measured on a full-scale 600 s window that costs more than the smoothing itself.
Coarser bins are summed from each decoded chunk. Any other store (another layout, or a
bin that does not divide the stored chunk) is read through Zarr instead, one block at a
time: the same pieces, only slower.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .smoothing import Pieces, as_piece

__all__ = ["ChunkCache", "CountsReader", "usable_cores"]

_BLOCK_ROWS = 24_000  # time block of the Zarr path (the stored chunk length by default)


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the system tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ChunkCache:
    """A few decoded chunks of one thread; the least recently used is replaced first (the
    blocks of time walk forward, so a block's halo chunks are usually still here)."""

    def __init__(self, stride: int, dtype: np.dtype) -> None:
        self.bufs = np.empty((0, stride), dtype)
        self.keys: list[tuple[int, int] | None] = []
        self.used: list[int] = []
        self.clock = 0
        self.scratch: np.ndarray | None = None  # one stored chunk, for coarser bins

    def grow(self, n: int) -> None:
        """Hold at least ``n`` chunks (keeping those held)."""
        if n > len(self.keys):
            bufs = np.empty((n, self.bufs.shape[1]), self.bufs.dtype)
            bufs[: len(self.keys)] = self.bufs
            extra = n - len(self.keys)
            self.bufs, self.keys, self.used = bufs, self.keys + [None] * extra, self.used + [-1] * extra

    def slot(self, key: tuple[int, int], keep: set[int]) -> tuple[int, bool]:
        """The buffer row for ``key`` and whether it already holds it; a new key takes the
        least recently used row not in ``keep``."""
        self.clock += 1
        if key in self.keys:
            i = self.keys.index(key)
        else:
            i = min((i for i in range(len(self.keys)) if i not in keep), key=self.used.__getitem__)
            self.keys[i] = None
        self.used[i] = self.clock
        ready = self.keys[i] == key
        self.keys[i] = key
        return i, ready


class CountsReader:
    """The ``counts`` of a store, on a grid of ``factor`` stored bins per result bin.

    Parameters
    ----------
    store : path
        The store folder (``binned.zarr``).
    counts : zarr.Array
        Its ``counts`` array, opened read-only.
    factor : int
        Stored bins per result bin (coarser bins are summed).
    """

    def __init__(self, store: str | Path, counts: Any, factor: int) -> None:
        self.counts, self.factor = counts, factor
        self.n_bins = counts.shape[0] // factor
        self.stored_rows, self.width = counts.chunks
        # the codec of the chunk files when they can be decoded directly (False: stored
        # uncompressed), or None to read through Zarr
        self.codec = _chunk_codec(Path(store), counts) if self.stored_rows % factor == 0 else None
        self.rows = self.stored_rows // factor  # result rows per decoded chunk
        self.dtype = counts.dtype if factor == 1 else _sum_dtype(counts.dtype, factor)
        self.folder = Path(store) / "counts"

    def columns(self, u0: int, u1: int) -> list[tuple[int, int]]:
        """Units ``u0:u1`` cut at the store's chunk columns."""
        cuts = sorted({u0, u1, *range((u0 // self.width + 1) * self.width, u1, self.width)})
        return [(a, b) for a, b in zip(cuts[:-1], cuts[1:])]

    def blocks(self, t0: int, t1: int) -> Iterator[tuple[int, int]]:
        """Output rows ``t0:t1`` cut into blocks (at the stored chunks when decoding them)."""
        step = self.rows if self.codec is not None else max(1, _BLOCK_ROWS // self.factor)
        t = t0
        while t < t1:
            nxt = min(t1, (t // step + 1) * step)
            yield t, nxt
            t = nxt

    def cache(self) -> ChunkCache:
        """A buffer cache for one thread."""
        item = self.dtype.itemsize
        cells = self.rows * self.width if self.codec is not None else 0
        cache = ChunkCache(-(-cells * item // 8) * 8 // item, self.dtype)
        if self.factor > 1 and self.codec is not None:  # stored bins are decoded here, then summed
            cache.scratch = np.empty(self.stored_rows * self.width, self.counts.dtype)
        return cache

    def each_part(self, u0: int, u1: int, t0: int, t1: int, work: Callable[[ChunkCache, int, int, int, int], None],
                  *, split_time: bool = True, progress: Callable[[int], None] | None = None) -> None:
        """Run ``work(cache, a, b, s0, s1)`` over units ``u0:u1`` × output rows ``t0:t1``,
        one column ``a:b`` of units per part, on one thread per core (decoding and the
        compiled loops release the GIL), each thread with its own cache.

        With fewer columns than cores (one unit's trace, say) and ``split_time``, the
        columns' rows are also cut into as many parts at stored-chunk edges (the work
        must then not accumulate across parts). ``progress`` is called with the units
        of each finished part.
        """
        from concurrent.futures import ThreadPoolExecutor

        cores = usable_cores()
        columns = self.columns(u0, u1) if u1 > u0 and t1 > t0 else []
        spans = [(t0, t1)]
        edges = [b for _, b in self.blocks(t0, t1)][:-1]  # inner block edges
        if split_time and 0 < len(columns) < cores and edges:
            n_parts = -(-cores // len(columns))
            cuts = sorted({edges[len(edges) * k // n_parts] for k in range(1, n_parts)})
            spans = list(zip([t0, *cuts], [*cuts, t1]))
        parts = [(a, b, s0, s1) for a, b in columns for s0, s1 in spans]
        threads = max(1, min(len(parts), cores))

        def run(mine: list[tuple[int, int, int, int]]) -> None:
            cache = self.cache()
            for a, b, s0, s1 in mine:
                work(cache, a, b, s0, s1)
                if progress:
                    progress(b - a)

        if threads == 1:
            run(parts)
            return
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for f in [pool.submit(run, parts[k::threads]) for k in range(threads)]:
                f.result()

    def pieces(self, t0: int, t1: int, u0: int, u1: int, halo: int, cache: ChunkCache) -> Pieces:
        """Counts of result bins ``t0 − halo : t1 + halo`` (those on the grid) of units
        ``u0:u1`` (within one chunk column), with output row 0 at bin ``t0``."""
        if self.codec is None:
            return self._read(t0, t1, u0, u1, halo)
        first_chunk = max(0, t0 - halo) // self.rows
        last_chunk = (min(self.n_bins, t1 + halo) - 1) // self.rows
        j = u0 // self.width
        wanted = range(first_chunk, last_chunk + 1)
        cache.grow(len(wanted) + 1)
        order: list[int] = []
        for i in wanted:
            slot, ready = cache.slot((i, j), set(order))
            if not ready:
                self._decode(i, j, cache.bufs[slot], cache.scratch)
            order.append(slot)
        return Pieces(cache.bufs, order, self.rows, first_chunk * self.rows - t0, max(0, t0 - halo) - t0,
                      min(self.n_bins, t1 + halo) - t0, u0 - j * self.width)

    def _decode(self, i: int, j: int, buf: np.ndarray, scratch: np.ndarray | None) -> None:
        """Chunk ``(i, j)`` into ``buf``, unit-major; with coarser bins, decoded into
        ``scratch`` first and summed over each ``factor`` consecutive stored bins."""
        target = scratch if scratch is not None else buf[: self.rows * self.width]
        try:
            raw = (self.folder / f"{i}.{j}").read_bytes()
        except FileNotFoundError:  # never written: the fill value
            target[:] = 0
            raw = None
        if raw is not None and self.codec is False:
            target[:] = np.frombuffer(raw, dtype=target.dtype)
        elif raw is not None:
            out = self.codec.decode(raw, out=target)
            if out is not target:  # a codec that ignores ``out``
                target[:] = np.frombuffer(out, dtype=target.dtype)
        if scratch is not None:
            coarse = buf[: self.rows * self.width].reshape(self.width, self.rows)
            np.sum(scratch.reshape(self.width, self.rows, self.factor), axis=2, dtype=buf.dtype, out=coarse)

    def _read(self, t0: int, t1: int, u0: int, u1: int, halo: int) -> Pieces:
        """Through Zarr: one piece, coarse counts of the block and its halo."""
        f = self.factor
        a, b = max(0, t0 - halo), min(self.n_bins, t1 + halo)
        x = np.asarray(self.counts[a * f : b * f, u0:u1])
        if f > 1:
            x = x.reshape(b - a, f, u1 - u0).sum(axis=1, dtype=self.dtype)
        return as_piece(x, a - t0)


def _sum_dtype(dtype: np.dtype, factor: int) -> np.dtype:
    """An unsigned type that holds the sum of ``factor`` counts of ``dtype``."""
    most = int(np.iinfo(dtype).max) * factor
    return next((np.dtype(t) for t in (np.uint16, np.uint32) if most <= np.iinfo(t).max), np.dtype(np.uint64))


def _chunk_codec(store: Path, counts: Any) -> Any:
    """The codec to decode the store's chunk files directly, or None to read through Zarr.

    Direct decoding needs our own layout: a local format 2 array, Fortran-ordered
    chunks, no filters, ``.`` between chunk indices. ``False`` means uncompressed.
    """
    import numcodecs

    meta = store / "counts" / ".zarray"
    if not meta.is_file():
        return None
    spec = json.loads(meta.read_text())
    if spec.get("zarr_format") != 2 or spec.get("order") != "F" or spec.get("filters") \
            or spec.get("dimension_separator", ".") != ".":
        return None
    if np.dtype(spec["dtype"]) != counts.dtype or tuple(spec["chunks"]) != tuple(counts.chunks):
        return None
    return numcodecs.get_codec(spec["compressor"]) if spec.get("compressor") else False
