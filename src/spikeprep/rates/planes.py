"""Counts chunks encoded as Blosc's bit-shuffled frames without Blosc shuffling them.

The counts store's chunks are Blosc frames, lz4 over bit-shuffled uint8 counts
(:func:`spikeprep.rates.writer._codecs`). Bit-shuffling 5.4 GB of counts per full
session was half of Blosc's time, itself the export's largest cost. The counts are
sparse (≈2 % of bins hold a spike), so :func:`fill_chunk_planes` counts each bin's
spikes straight into the bit planes Blosc would make, and :func:`encode_planes` has
Blosc compress the planes unshuffled and marks the frame bit-shuffled: the frame is
byte for byte the one Blosc writes from the counts (tested), 2x faster to make.

Where the frame would not be Blosc's (a chunk Blosc stores uncompressed, or a block
size Blosc chose otherwise), :func:`encode_planes` returns None and the caller encodes
the counts (:func:`counts_of_planes`) with Blosc as usual.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.model import SpikeTrains
from .binning import Grid

__all__ = ["fill_chunk_planes", "encode_planes", "planes_of_counts", "counts_of_planes", "plane_codec"]

_SHUFFLE, _MEMCPYED, _BITSHUFFLE = 0x1, 0x2, 0x4  # Blosc 1 header flags (byte 2 of the frame)


def plane_codec(codec: Any) -> Any | None:
    """The unshuffled twin of a Blosc bit-shuffle codec (same compressor, level and
    block size), or None if ``codec`` is not one."""
    import numcodecs

    if not isinstance(codec, numcodecs.Blosc) or codec.shuffle != numcodecs.Blosc.BITSHUFFLE:
        return None
    return numcodecs.Blosc(cname=codec.cname, clevel=codec.clevel, shuffle=numcodecs.Blosc.NOSHUFFLE,
                           blocksize=codec.blocksize)


def block_size(codec: Any, n_bytes: int) -> int:
    """The block size (bytes) Blosc uses for a uint8 chunk of ``n_bytes`` with ``codec``'s
    forced block size (the whole chunk when it is smaller)."""
    return max(1, min(int(codec.blocksize), n_bytes))


def fill_chunk_planes(block: SpikeTrains, grid: Grid, lo: int, hi: int, rows: int, out: np.ndarray,
                      block_size: int) -> tuple[int, int]:
    """Count units of ``block`` in bins ``lo:hi`` into the bit planes of a uint8 chunk of
    ``rows`` bins per unit (``out``: zeroed, every byte of the chunk; see
    :func:`spikeprep.rates._counts_jit.count_bit_planes` for the layout).

    Returns
    -------
    (int, int)
        The largest count and the number of spikes counted.

    Raises
    ------
    OverflowError
        A bin holds more than 255 spikes (``out`` is then partly filled).
    """
    from ._counts_jit import count_bit_planes

    if out.dtype != np.uint8 or out.ndim != 1 or block.n_units * rows > len(out) or not 0 <= hi - lo <= rows:
        raise ValueError(f"a uint8 chunk of {len(out)} bytes cannot hold bins {lo}:{hi} of {block.n_units} units")
    largest, total = count_bit_planes(block.times, block.offsets, float(grid.t_start), float(grid.bin_size),
                                      float(grid.fs), lo, hi, rows, out, block_size)
    if largest < 0:
        raise OverflowError("a bin holds more spikes than uint8 holds")
    return int(largest), int(total)


def encode_planes(planes_codec: Any, planes: np.ndarray, block_size: int) -> bytes | None:
    """The Blosc frame of the counts whose bit planes are ``planes`` (uint8, laid out with
    ``block_size``): compressed unshuffled by ``planes_codec`` (:func:`plane_codec`), the
    header then marked bit-shuffled. None when that would not be the frame Blosc makes
    from the counts."""
    frame = bytearray(planes_codec.encode(planes))
    flags = frame[2]
    if flags & (_SHUFFLE | _MEMCPYED | _BITSHUFFLE) or int.from_bytes(frame[8:12], "little") != block_size:
        return None
    frame[2] = flags | _BITSHUFFLE
    return bytes(frame)


def _blocks(n: int, block_size: int) -> list[tuple[int, int]]:
    """Each block's start and its bit-shuffled length: all of it when a multiple of 8,
    else none (Blosc 1 stores such a block unshuffled)."""
    starts = range(0, n, block_size)
    lengths = (min(block_size, n - s) for s in starts)
    return [(s, length if length % 8 == 0 else 0) for s, length in zip(starts, lengths)]


def planes_of_counts(counts: np.ndarray, block_size: int) -> np.ndarray:
    """The bit planes of uint8 ``counts`` (1-D), as Blosc's bit-shuffle lays them out."""
    out = counts.copy()
    for s, m in _blocks(len(counts), block_size):
        bits = np.unpackbits(counts[s : s + m].reshape(-1, 1), axis=1, bitorder="little")  # (m, 8)
        out[s : s + m] = np.packbits(bits.T, axis=1, bitorder="little").ravel()
    return out


def counts_of_planes(planes: np.ndarray, block_size: int) -> np.ndarray:
    """The uint8 counts whose bit planes are ``planes`` (inverse of :func:`planes_of_counts`)."""
    out = planes.copy()
    for s, m in _blocks(len(planes), block_size):
        bits = np.unpackbits(planes[s : s + m].reshape(8, -1), axis=1, bitorder="little")  # (8, m)
        out[s : s + m] = np.packbits(bits.T, axis=1, bitorder="little").ravel()
    return out
