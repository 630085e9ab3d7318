"""Where windows fall in sorted spike trains: for each window ``[lo, hi)`` the index range
``[a, b)`` of the spikes inside it (numpy's ``searchsorted(side="left")`` of both ends).

For many windows (a movie's 25,000 frames, 6,000 natural scenes) the ends are sorted once
and each train is merged against them by a compiled galloping search, O(k log(n/k)) per
train instead of O(k log n) with a cache miss per probe; a few windows use numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Spans"]

_COMPILED_FROM = 1000  # windows; below, numpy (and no numba import for a quick call)


class Spans:
    """The windows ``[lo, hi)``, ready to be located in any number of sorted trains."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.lo, self.hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        self.compiled = len(self.lo) >= _COMPILED_FROM and np.isfinite(self.lo).all() and np.isfinite(self.hi).all()
        if self.compiled:
            self._lo_order = np.argsort(self.lo, kind="stable")
            self._hi_order = np.argsort(self.hi, kind="stable")
            self._lo_sorted, self._hi_sorted = self.lo[self._lo_order], self.hi[self._hi_order]

    def of(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)``: the spikes of the sorted ``times`` in window ``i`` are ``times[a[i]:b[i]]``."""
        if not self.compiled:
            return np.searchsorted(times, self.lo, side="left"), np.searchsorted(times, self.hi, side="left")
        from ._spans_jit import count_below

        a, b = np.empty(len(self.lo), dtype=np.int64), np.empty(len(self.hi), dtype=np.int64)
        a[self._lo_order] = count_below(times, self._lo_sorted)
        b[self._hi_order] = count_below(times, self._hi_sorted)
        return a, b
