"""The compiled loop behind :class:`spikeprep.export.qc.IsiCounter`: the interspike-interval
counts of a block of units in one pass over their spike times. Imported lazily (numba).
"""

from __future__ import annotations

import numba
import numpy as np

from ..rates.jit import CAN_CACHE

__all__ = ["isi_counts"]


@numba.njit(nogil=True, cache=CAN_CACHE, boundscheck=False)
def isi_counts(times: np.ndarray, offsets: np.ndarray, threshold: float, hill_threshold: float, min_isi: float,
               short: np.ndarray, hill: np.ndarray, kept: np.ndarray) -> None:
    """Per unit ``u`` of the block (``times[offsets[u]:offsets[u + 1]]``, sorted):

    - ``short[u]``: ISIs below ``threshold``;
    - ``kept[u]``: spikes left after dropping each spike closer than ``min_isi`` (≤) to
      the spike before it (ecephys_spike_sorting's duplicates; none when ``min_isi`` ≤ 0);
    - ``hill[u]``: ISIs between consecutive kept spikes below ``hill_threshold``.
    """
    for u in range(offsets.shape[0] - 1):
        lo, hi = offsets[u], offsets[u + 1]
        n_short, n_hill, n_kept = 0, 0, hi - lo
        if hi > lo:
            last = times[lo]
            for i in range(lo + 1, hi):
                isi = times[i] - times[i - 1]
                n_short += isi < threshold
                if min_isi > 0.0 and isi <= min_isi:
                    n_kept -= 1
                    continue
                n_hill += times[i] - last < hill_threshold
                last = times[i]
        short[u], hill[u], kept[u] = n_short, n_hill, n_kept
