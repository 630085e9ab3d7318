"""The formulas of AllenSDK's stimulus analysis, numpy in, numpy out.

Each is AllenSDK 2.16's (``stimulus_analysis.py``, ``drifting_gratings.py``,
``natural_scenes.py``), written once here so that every class and the tests use the same
code; where AllenSDK warns and returns NaN, these return NaN quietly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["osi", "dsi", "lifetime_sparseness", "fano_factor", "running_modulation", "overall_firing_rate",
           "block_bounds", "f1_f0", "modulation_index", "c50", "image_selectivity", "time_to_peak"]


def osi(orientations_deg: np.ndarray, tuning: np.ndarray) -> float:
    """Global orientation selectivity, ``|Σ r·e^{2iθ}| / Σ r`` (Ringach 2002)."""
    return _circular(orientations_deg, tuning, 2)


def dsi(orientations_deg: np.ndarray, tuning: np.ndarray) -> float:
    """Global direction selectivity, ``|Σ r·e^{iθ}| / Σ r``."""
    return _circular(orientations_deg, tuning, 1)


def _circular(orientations_deg: np.ndarray, tuning: np.ndarray, harmonic: int) -> float:
    theta = (np.asarray(orientations_deg, dtype=np.float64) / 180 * np.pi).astype(np.complex128)
    tuning = np.asarray(tuning, dtype=np.float64)
    if len(theta) == 0 or len(theta) != len(tuning):
        return np.nan
    total = tuning.sum()
    if total == 0.0:
        return np.nan
    return float(np.abs((tuning * np.exp(1j * harmonic * theta)).sum()) / total)


def lifetime_sparseness(responses: np.ndarray) -> float:
    """Lifetime sparseness (Olsen & Wilson 2008) of one unit's responses."""
    r = np.asarray(responses, dtype=np.float64)
    if len(r) <= 1:
        return np.nan
    coeff = 1.0 / len(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float((1.0 - coeff * (np.power(np.sum(r), 2) / np.sum(np.power(r, 2)))) / (1.0 - coeff))


def fano_factor(counts: np.ndarray) -> np.ndarray:
    """Per column (unit) of trials × units counts: variance over mean (ddof 0); NaN
    where the mean is 0."""
    x = np.asarray(counts, dtype=np.float64)
    if x.shape[0] == 0:
        return np.full(x.shape[1:], np.nan)
    mean = x.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean == 0, np.nan, x.var(axis=0) / mean)


def running_modulation(counts: np.ndarray, running: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column (unit) of trials × units counts: the Welch t-test p-value and the
    relative difference of the running trials' (``running``: speed ≥ 1 cm/s) and the
    stationary trials' mean counts; NaN unless each side has at least two trials
    (AllenSDK's ``running_modulation``, scipy's ``ttest_ind(equal_var=False)`` written
    out for many units at once)."""
    from scipy import special

    x = np.asarray(counts, dtype=np.float64)
    running = np.asarray(running, dtype=bool)
    nan = np.full(x.shape[1], np.nan)
    if not 1 < running.sum() < len(running) - 1:
        return nan, nan.copy()
    run, still = x[running], x[~running]
    n1, n2 = len(run), len(still)
    m1, m2 = run.mean(axis=0), still.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mod = np.where(m1 > m2, (m1 - m2) / m1, -1 * (m2 - m1) / m2)
        vn1, vn2 = run.var(axis=0, ddof=1) / n1, still.var(axis=0, ddof=1) / n2
        df = (vn1 + vn2) ** 2 / (vn1**2 / (n1 - 1) + vn2**2 / (n2 - 1))
        df = np.where(np.isnan(df), 1.0, df)
        t = (m1 - m2) / np.sqrt(vn1 + vn2)
        p = 2 * special.stdtr(df, -np.abs(t))
    both_zero = (m1 == 0) & (m2 == 0)
    return np.where(both_zero, np.nan, p), np.where(both_zero, np.nan, mod)


def block_bounds(starts: np.ndarray, stops: np.ndarray, trial_duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of presentations: a new block where onsets are more than two trial
    durations apart. Returns each block's first start and last stop (s)."""
    gap = np.flatnonzero(np.diff(starts) > trial_duration * 2)
    return starts[np.concatenate([[0], gap + 1])], stops[np.concatenate([gap, [len(starts) - 1]])]


def overall_firing_rate(block_starts: np.ndarray, block_stops: np.ndarray, spikes: np.ndarray) -> float:
    """Spikes in the blocks ``[start, stop)`` over their summed length (Hz)."""
    if len(spikes) == 0:
        return 0.0
    total = np.sum(block_stops - block_starts)
    if total <= 0:
        return np.nan
    return float(np.sum(spikes.searchsorted(block_stops) - spikes.searchsorted(block_starts)) / total)


def f1_f0(trials: np.ndarray, tf: float, duration: float) -> float:
    """F1/F0 of a drifting-grating response: trials × 1 ms bins, folded into cycles of
    the temporal frequency ``tf`` (Hz) over ``duration`` (s)."""
    from scipy.fftpack import fft

    arr = np.asarray(trials)
    if arr.size == 0:
        return np.nan
    if arr.ndim == 1:
        arr = arr.reshape(1, arr.size)
    n_trials, n_bins = arr.shape
    cycles = int(tf * duration)
    if cycles == 0:
        return np.nan
    per_cycle = int(n_bins / cycles)
    if per_cycle == 0:
        return np.nan
    folded = arr[:, : cycles * per_cycle].reshape((n_trials, cycles, per_cycle))
    amp = 2 * np.abs(fft(np.mean(folded, 1), per_cycle)) / per_cycle
    f0, f1 = 0.5 * amp[:, 0], amp[:, 1]
    keep = f0 > 0.0
    if not np.any(keep):
        return np.nan
    return float(np.nanmean(f1[keep] / f0[keep]))


def modulation_index(psth: np.ndarray, tf: float, sample_rate: float) -> float:
    """Depth of modulation at ``tf`` (Matteucci et al. 2019): the PSTH's Welch power at
    ``tf`` against the spectrum's mean and spread."""
    from scipy import signal

    psth = np.asarray(psth)
    if psth.size == 0:
        return np.nan
    f, psd = signal.welch(psth, fs=sample_rate, nperseg=1024)
    mean = np.mean(psd)
    if mean == 0.0:
        return 0.0
    k = np.searchsorted(f, tf)
    if not 0 <= k < psd.size:
        return np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(abs((psd[k] - np.mean(psd)) / np.sqrt(np.mean(psd**2) - mean**2)))


def _contrast_curve(x: np.ndarray, b: float, c: float, d: float, e: float) -> np.ndarray:
    return c + (d - c) / (1 + np.exp(b * (np.log(x) - np.log(e))))


def c50(contrasts: np.ndarray, responses: np.ndarray) -> float:
    """Contrast at half the fitted sigmoid's range (AllenSDK's ``c50``: its ``curve_fit``
    from ones with ``maxfev=100000``, run here as the same MINPACK fit on a compiled
    residual, :func:`.minpack.leastsq`). NaN where the fit does not converge, and where
    AllenSDK raises (fewer contrasts than the sigmoid's 4 parameters, responses not finite)."""
    from .minpack import leastsq

    contrasts, responses = np.asarray(contrasts, np.float64), np.asarray(responses, np.float64)
    if contrasts.size < 4 or contrasts.size != responses.size or not np.isfinite(responses).all():
        return np.nan
    with np.errstate(all="ignore"):
        coefs, info = leastsq("contrast", np.ones(4), np.concatenate([np.log(contrasts), responses]), maxfev=100000)
    if info not in (1, 2, 3, 4):
        return np.nan
    x = np.linspace(min(contrasts) * 0.9, max(contrasts) * 1.1, 256)
    with np.errstate(all="ignore"):
        y = _contrast_curve(x, *coefs)
    middle = (np.max(y) - np.min(y)) / 2 + np.min(y)
    order = np.argsort(y)
    k = np.searchsorted(y[order], middle)
    return float(x[order][k]) if k < len(x) else np.nan


def image_selectivity(means: np.ndarray, num_steps: int = 1000) -> float:
    """Image selectivity (AllenSDK's, after de Vries et al. 2020): 1 − 2·mean over
    ``num_steps`` thresholds of the fraction of images above each."""
    means = np.asarray(means, dtype=np.float64)
    if means.size < 2 or num_steps < 2:
        return np.nan
    lo, hi = means.min(), means.max()
    if lo == hi:
        return 0.0
    thresholds = lo + np.arange(num_steps) * ((hi - lo) / num_steps)
    above = np.count_nonzero(means[None, :] > thresholds[:, None], axis=1) / means.size
    return float(1 - (2 * np.mean(above)))


def time_to_peak(psth: np.ndarray, times: np.ndarray) -> float:
    """The first bin centre (s) where the PSTH reaches its maximum."""
    if psth.size == 0 or not np.isfinite(psth).any():
        return np.nan
    return float(times[int(np.argmax(psth == np.nanmax(psth)))])
