"""The compiled search behind :class:`spikeprep.analysis.spans.Spans` (a module of its
own, imported only for many windows: numba takes ≈0.3 s to import)."""

from __future__ import annotations

import numba
import numpy as np

from ..rates.jit import CAN_CACHE

__all__ = ["count_below"]


@numba.njit(cache=CAN_CACHE, nogil=True)
def count_below(times: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``out[i]``: how many ``times`` are < ``keys[i]``, for sorted ``times`` and ``keys``
    (numpy's ``searchsorted(times, keys, side="left")``), by galloping from the last answer."""
    n = len(times)
    out = np.empty(len(keys), dtype=np.int64)
    j = 0
    for i in range(len(keys)):
        k = keys[i]
        if j < n and times[j] < k:
            step = 1
            while j + step < n and times[j + step] < k:
                step *= 2
            lo, hi = j + step // 2 + 1, min(j + step, n)  # times[lo - 1] < k; times[hi] >= k or hi == n
            while lo < hi:
                mid = (lo + hi) // 2
                if times[mid] < k:
                    lo = mid + 1
                else:
                    hi = mid
            j = lo
        out[i] = j
    return out
