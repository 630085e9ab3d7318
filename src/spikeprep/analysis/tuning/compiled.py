"""The analyses' compiled loops (numba; compiled once and cached on disk): the residuals
of the least-squares fits and the receptive-field bootstrap.

MINPACK calls a fit's residual up to 1,200 (RF) or 100,000 (C50) times per unit; as numpy
expressions on 9–81 values each call costs ~10–20 µs of interpreter overhead, compiled
well under 1 µs. Each residual exists twice over one arithmetic: for scipy's ``leastsq``
(numpy in, numpy out) and as a C callback for MINPACK's Fortran (:mod:`.minpack_residuals`). The
arithmetic is AllenSDK's, term for term. Imported only when an
analysis needs it (numba takes ≈0.3 s to import).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from ...rates.jit import CAN_CACHE

__all__ = ["gaussian_2d_residual", "contrast_residual", "inverse_cdf", "bootstrap_p"]


@numba.njit(cache=CAN_CACHE, inline="always")
def gaussian_2d_into(p: Any, data: np.ndarray, nx: int, out: Any) -> None:
    height, cy, cx, wy, wx = p[0], p[1], p[2], p[3], p[4]
    for i in range(data.size):
        y, x = i // nx, i % nx
        out[i] = height * np.exp(-(((cy - y) / wy) ** 2 + ((cx - x) / wx) ** 2) / 2) - data[i]


@numba.njit(cache=CAN_CACHE, inline="always")
def contrast_into(p: Any, log_x: np.ndarray, responses: np.ndarray, out: Any) -> None:
    b, c, d, e = p[0], p[1], p[2], p[3]
    log_e = np.log(e)
    for i in range(len(log_x)):
        out[i] = c + (d - c) / (1 + np.exp(b * (log_x[i] - log_e))) - responses[i]


@numba.njit(cache=CAN_CACHE)
def gaussian_2d_residual(p: np.ndarray, data: np.ndarray) -> np.ndarray:
    """``height·exp(−(((cy − y)/wy)² + ((cx − x)/wx)²)/2) − data``, raveled (AllenSDK's
    ``_gaussian_function_2d`` minus the map); ``p`` = (height, cy, cx, wy, wx)."""
    out = np.empty(data.size)
    gaussian_2d_into(p, data.ravel(), data.shape[1], out)
    return out


@numba.njit(cache=CAN_CACHE)
def contrast_residual(p: np.ndarray, log_x: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """``c + (d − c)/(1 + exp(b·(log x − log e))) − responses`` (AllenSDK's
    ``_contrast_curve`` minus the responses); ``p`` = (b, c, d, e)."""
    out = np.empty(len(log_x))
    contrast_into(p, log_x, responses, out)
    return out


@numba.njit(cache=CAN_CACHE)
def inverse_cdf(cdfs: np.ndarray, starts: np.ndarray, table: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """For each uniform ``uniforms[s, c]``, the value (index) whose cumulative
    probability first exceeds it, in the CDF ``cdfs[starts[k]:starts[k + 1]]`` with
    ``k = table[c]``."""
    # a guide table per CDF (the cutpoint method): guide[a + g] is the first index whose
    # cumulative probability exceeds g / length, so each draw scans a step or two
    guide = np.empty(len(cdfs), dtype=np.int64)
    for k in range(len(starts) - 1):
        a, b = starts[k], starts[k + 1]
        n, i = b - a, 0
        for g in range(n):
            while i < n - 1 and cdfs[a + i] <= g / n:
                i += 1
            guide[a + g] = i
    out = np.empty(uniforms.shape)
    for c in range(uniforms.shape[1]):
        a, b = starts[table[c]], starts[table[c] + 1]
        n = b - a
        for s in range(uniforms.shape[0]):
            u = uniforms[s, c]
            i = guide[a + min(int(u * n), n - 1)]
            while i < n - 1 and cdfs[a + i] <= u:
                i += 1
            out[s, c] = i
    return out


@numba.njit(cache=CAN_CACHE)
def _chi(observed: np.ndarray, sweeps: np.ndarray, n: int) -> float:
    mean = observed.sum() / n
    total = 0.0
    for c in range(len(sweeps)):
        expected = sweeps[c] * mean
        if expected > 0:
            total += (observed[c] - expected) ** 2 / expected
    return total


@numba.njit(cache=CAN_CACHE)
def bootstrap_p(p: np.ndarray, distinct: np.ndarray, table: np.ndarray, sweeps: np.ndarray, actual: np.ndarray,
                uniforms: np.ndarray) -> float:
    """The chi-square bootstrap's p: the share of resamplings (one row of ``uniforms`` each,
    one uniform per category) whose chi-square exceeds that of the ``actual`` category
    sums. Category ``c`` holds ``sweeps[c]`` sweeps; its resampled sum is drawn from the
    ``distinct[table[c]]``-fold convolution of the count distribution ``p``."""
    n = int(sweeps.sum())
    lengths = (distinct * (len(p) - 1) + 1).astype(np.int64)
    starts = np.zeros(len(distinct) + 1, dtype=np.int64)
    starts[1:] = np.cumsum(lengths)
    cdfs = np.empty(starts[-1])
    dist = np.ones(1)
    done = 0
    for k in range(len(distinct)):  # ascending sizes: each distribution from the last
        while done < distinct[k]:
            nxt = np.zeros(len(dist) + len(p) - 1)
            for i in range(len(dist)):
                if dist[i] != 0.0:
                    for m in range(len(p)):
                        nxt[i + m] += dist[i] * p[m]
            dist = nxt
            done += 1
        c = np.cumsum(dist)
        cdfs[starts[k]:starts[k + 1]] = c / c[-1]
    sums = inverse_cdf(cdfs, starts, table, uniforms)
    reference = _chi(actual, sweeps, n)
    above = 0
    for s in range(uniforms.shape[0]):
        if reference < _chi(sums[s], sweeps, n):
            above += 1
    return above / uniforms.shape[0]
