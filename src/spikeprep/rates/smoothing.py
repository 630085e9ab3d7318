"""Gaussian smoothing of spike counts, compiled: counts in, rates out.

The counts arrive as :class:`Pieces`: rows of a 2-D buffer (one per decoded store chunk,
or one for an array in memory), each holding a unit-major ``(rows, units)`` block, so
a unit's counts in a piece are one contiguous run. Counts are ≈2 % non-zero, so each run
is scanned one 8-byte word at a time and only the non-zero counts scatter their taps.

For every output element the taps are added in the order of the spikes' bins, in the
output's dtype, exactly as the dense ``Σ_k w[k] · x[t + k − h]`` does with ``k``
ascending: the result does not depend on how the counts were cut into pieces, blocks,
windows or threads (tested bit for bit, and against scipy).

The loops are in :mod:`spikeprep.rates.jit` (numba), imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Pieces", "as_piece", "smooth_into", "summarise_into"]


@dataclass
class Pieces:
    """Decoded counts around one block of output rows.

    Piece ``p`` is ``bufs[order[p]]``; its row ``r`` is output row ``first + p·rows + r``;
    the block's unit ``j`` is unit ``j0 + j`` of the piece, stored at
    ``bufs[order[p], (j0 + j)·rows : (j0 + j + 1)·rows]``. Only rows whose output row is
    in ``[lo, hi)`` hold counts (the grid around the block; beyond are padding or rows
    off the grid). Buffer rows are whole 8-byte words (C-contiguous), so they can be
    scanned a word at a time.
    """

    bufs: np.ndarray
    order: np.ndarray
    rows: int
    first: int
    lo: int
    hi: int
    j0: int = 0
    words: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        b = self.bufs
        if b.ndim != 2 or not b.flags.c_contiguous or (b.shape[1] * b.itemsize) % 8 or b.ctypes.data % 8:
            raise ValueError("piece buffers must be C-contiguous rows of whole 8-byte words")
        self.words = b.view(np.uint64)
        self.order = np.asarray(self.order, dtype=np.int64)


def as_piece(x: np.ndarray, first: int = 0) -> Pieces:
    """A ``(rows, units)`` array of counts (any layout) as one piece starting at output row ``first``."""
    rows, units = x.shape
    per_word = max(1, 8 // x.dtype.itemsize)
    cells = rows * units
    flat = x.T
    if cells and cells % per_word == 0 and flat.flags.c_contiguous and flat.ctypes.data % 8 == 0:
        return Pieces(flat.reshape(1, cells), np.zeros(1, np.int64), rows, first, first, first + rows)  # no copy
    buf = np.zeros((1, -(-max(cells, 1) // per_word) * per_word), x.dtype)
    buf[0, :cells].reshape(units, rows)[:] = x.T
    return Pieces(buf, np.zeros(1, np.int64), rows, first, first, first + rows)


def smooth_into(pieces: Pieces, w: np.ndarray, out: np.ndarray) -> None:
    """Write the rates of ``out.shape[1]`` units into ``out`` (``(T, units)``, each unit's
    rows contiguous: a Fortran-ordered array or a column slice of one).

    ``w`` are the scaled taps in ``out``'s dtype (:func:`spikeprep.rates.binning.scaled_weights`).
    Every element of ``out`` is written.
    """
    from .jit import scatter_units

    if out.size:
        p = pieces
        scatter_units(p.bufs, p.words, p.order, p.rows, p.first, p.lo, p.hi, p.j0, w.astype(out.dtype), out.T)


def summarise_into(pieces: Pieces, w: np.ndarray, scale: np.ndarray, scratch: np.ndarray, u0: int, units: int,
                   total: np.ndarray, squares: np.ndarray, peak: np.ndarray) -> None:
    """Accumulate the rates of ``units`` units over ``len(scratch)`` output rows, without keeping them.

    Adds each unit's sum and sum of squares (float64) to ``total[u0 + j]`` and
    ``squares[u0 + j]``, and raises ``peak[u0 + j]`` to its maximum. The rates are made in
    ``scratch`` (float32, reused), multiplied by ``scale`` (edge correction, float32;
    empty for none), exactly as a window of them would be.
    """
    from .jit import summarise_units

    p = pieces
    summarise_units(p.bufs, p.words, p.order, p.rows, p.first, p.lo, p.hi, p.j0, w.astype(scratch.dtype), scale,
                    scratch, u0, units, total, squares, peak)
