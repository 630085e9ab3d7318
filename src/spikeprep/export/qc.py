"""Spike-train and unit quality: ISI metrics, RS/FS class, Allen's default unit filter.

The ISI counts are one compiled pass over each block of units (:mod:`._isi_jit`); the
rest is vectorised over units.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from ..core.anatomy import VISUAL_AREAS
from ..core.model import SpikeSource, SpikeTrains
from ..core.options import AMPLITUDE_CUTOFF_MAX, ISI_THRESHOLD_MS, ISI_VIOLATIONS_MAX, PRESENCE_RATIO_MIN

__all__ = ["isi_metrics", "IsiCounter", "is_rs", "passes_allen_qc", "notebook_selection", "session_summary",
           "hill_isi_violations", "llobet_contamination", "RS_THRESHOLD_MS", "HILL_MIN_ISI_MS"]

RS_THRESHOLD_MS = 0.4
HILL_MIN_ISI_MS = 0.166  # ecephys_spike_sorting default (5 samples at 30 kHz)


class IsiCounter:
    """The interspike-interval counts behind :func:`isi_metrics`, added block of units by
    block (any partition of the units, in any order), so that the pass that reads the
    spike times anyway (the file scan of :class:`spikeprep.io.nwb.SpikeReader`) counts them.

    Parameters
    ----------
    n_units : int
        Units expected (the arrays grow if a block reaches further).
    threshold_ms, hill_threshold_ms, min_isi_ms : float
        As in :func:`isi_metrics`.
    """

    def __init__(self, n_units: int = 0, threshold_ms: float = ISI_THRESHOLD_MS, hill_threshold_ms: float = 1.5,
                 min_isi_ms: float = HILL_MIN_ISI_MS) -> None:
        self.thresholds_s = (threshold_ms / 1000.0, hill_threshold_ms / 1000.0, min_isi_ms / 1000.0)
        self.short, self.hill, self.kept = (np.zeros(n_units, np.int64) for _ in range(3))
        self.n_spikes = np.zeros(n_units, np.int64)
        self.t_min, self.t_max = np.inf, -np.inf
        self._lock = threading.Lock()

    def add(self, a: int, b: int, block: SpikeTrains) -> None:
        """Count units ``a:b`` (``block`` holds exactly them). Safe from several threads
        (the file check shares its blocks): one block is counted at a time, since the
        arrays may grow (the compiled count is a small part of a block's check)."""
        from ._isi_jit import isi_counts

        with self._lock:
            self._reach(b)
            isi_counts(block.times, block.offsets, *self.thresholds_s, self.short[a:b], self.hill[a:b],
                       self.kept[a:b])
            n = block.n_spikes
            self.n_spikes[a:b] = n
            if (n > 0).any():
                self.t_min = min(self.t_min, float(block.times[block.offsets[:-1][n > 0]].min()))
                self.t_max = max(self.t_max, float(block.times[block.offsets[1:][n > 0] - 1].max()))

    def _reach(self, n: int) -> None:
        if n > len(self.n_spikes):
            self.short, self.hill, self.kept, self.n_spikes = (
                np.concatenate([x, np.zeros(n - len(x), np.int64)])
                for x in (self.short, self.hill, self.kept, self.n_spikes))

    def metrics(self, unit_ids: np.ndarray) -> pd.DataFrame:
        """The table of :func:`isi_metrics` from the counts added, for ``unit_ids`` (the
        units in the order they were added)."""
        self._reach(len(unit_ids))
        threshold, hill_threshold, min_isi = self.thresholds_s
        n = self.n_spikes
        duration = self.t_max - self.t_min if self.t_max >= self.t_min else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(n >= 2, 100.0 * self.short / (n - 1), np.nan)
        recomputed = hill_isi_violations(self.hill, self.kept, duration, hill_threshold, min_isi)
        return pd.DataFrame({"n_spikes": n.astype(np.int64), "isi_5ms_pct": pct,
                             "isi_violations_recomputed": recomputed,
                             "rp_contamination": llobet_contamination(recomputed)},
                            index=pd.Index(unit_ids, name="unit_id"))


def hill_isi_violations(n_violations: np.ndarray, n_spikes: np.ndarray, duration: float,
                        threshold_s: float = 0.0015, min_isi_s: float = 0.0) -> np.ndarray:
    """Hill et al. (2011) false-positive ratio as ecephys_spike_sorting computes it.

    ``n_v · T / (2 · N² · (threshold − min_isi))``; NaN for units without spikes.
    """
    n = np.asarray(n_spikes, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(n_violations, dtype=float) * duration / (2.0 * n**2 * (threshold_s - min_isi_s))
    return np.where(n > 0, ratio, np.nan)


def llobet_contamination(hill_ratio: np.ndarray) -> np.ndarray:
    """Llobet et al. (2022) contamination for random contaminant spikes.

    ``C = 1 − sqrt(1 − n_v·T / (N²·t_r))`` = ``1 − sqrt(1 − 2·r)`` with ``r`` the Hill
    ratio computed on the same ``n_v``, ``N``, ``T`` and ``t_r``. NaN where the root is
    imaginary (more violations than random contamination can produce).
    """
    r = np.asarray(hill_ratio, dtype=float)
    with np.errstate(invalid="ignore"):
        return 1.0 - np.sqrt(1.0 - 2.0 * r)


def isi_metrics(spikes: SpikeSource, *, threshold_ms: float = ISI_THRESHOLD_MS, hill_threshold_ms: float = 1.5,
                min_isi_ms: float = HILL_MIN_ISI_MS) -> pd.DataFrame:
    """Per-unit ISI metrics.

    Parameters
    ----------
    spikes : SpikeTrains
    threshold_ms : float
        ``isi_5ms_pct`` = 100 · #(ISI < threshold) / #ISI (NaN below 2 spikes).
    hill_threshold_ms, min_isi_ms : float
        Parameters of the recomputed Allen ``isi_violations`` (Hill et al. 2011 as in
        ecephys_spike_sorting: spikes closer than ``min_isi`` to the previous one are
        dropped first; T runs from the first to the last spike of all units). The
        default min_isi, 0.166 ms (5 samples at 30 kHz), is the one Allen's files were
        computed with.

    Returns
    -------
    DataFrame
        Indexed by ``unit_id``: ``n_spikes``, ``isi_5ms_pct``, ``isi_violations_recomputed``
        and ``rp_contamination`` (Llobet et al. 2022, from the same counts).
    """
    counter = IsiCounter(spikes.n_units, threshold_ms, hill_threshold_ms, min_isi_ms)
    for a, b in spikes.blocks():
        counter.add(a, b, spikes.block(a, b))
    return counter.metrics(spikes.unit_ids)


def is_rs(waveform_duration_ms: pd.Series, threshold_ms: float = RS_THRESHOLD_MS) -> pd.Series:
    """Regular-spiking: waveform duration above 0.4 ms (NaN is not RS)."""
    return (waveform_duration_ms.astype(float) > threshold_ms).fillna(False).astype(bool)


def passes_allen_qc(units: pd.DataFrame, *, amplitude_cutoff_max: float = AMPLITUDE_CUTOFF_MAX,
                    presence_ratio_min: float = PRESENCE_RATIO_MIN, isi_violations_max: float = ISI_VIOLATIONS_MAX,
                    by_validity: bool = True, in_brain: bool = True) -> pd.Series:
    """AllenSDK's unit filter (its defaults); NaN metrics fail, as in AllenSDK.

    ``by_validity`` keeps good units on valid channels; ``in_brain`` drops units whose
    peak channel has no structure (AllenSDK's ``filter_by_validity`` and
    ``filter_out_of_brain_units``)."""
    def col(name: str) -> pd.Series:
        return units[name].astype(float) if name in units else pd.Series(np.nan, index=units.index)

    ok = pd.Series(True, index=units.index)
    if by_validity:
        ok &= units["quality"].astype(object).eq("good") if "quality" in units else False
        ok &= units["valid_data"].astype(bool)
    if in_brain:
        ok &= units["region"].notna()
    ok &= col("amplitude_cutoff").le(amplitude_cutoff_max)
    ok &= col("presence_ratio").ge(presence_ratio_min)
    ok &= col("isi_violations").le(isi_violations_max)
    return ok.fillna(False).astype(bool)


def notebook_selection(units: pd.DataFrame, *, snr_min: float = 2.5, areas: tuple[str, ...] = VISUAL_AREAS) -> pd.Series:
    """The notebook's QC selection: RS units with snr > 2.5 in the six visual areas."""
    return (units["is_rs"].astype(bool) & units["snr"].astype(float).gt(snr_min)
            & units["region"].isin(areas).fillna(False)).astype(bool)


def session_summary(per_unit: pd.DataFrame, value: str = "isi_5ms_pct") -> pd.DataFrame:
    """Mean and std (ddof 0) of ``value`` over the selected units of each session.

    Parameters
    ----------
    per_unit : DataFrame
        Columns ``session_id``, ``selected`` and ``value``.
    """
    sel = per_unit[per_unit["selected"].astype(bool)]
    g = sel.groupby("session_id")[value]
    out = pd.DataFrame({"n_units": g.count(), "mean_pct": g.mean(), "std_pct": g.std(ddof=0)})
    all_ids = pd.Index(sorted(per_unit["session_id"].unique()), name="session_id")
    out = out.reindex(all_ids)
    out["n_units"] = out["n_units"].fillna(0).astype(int)
    return out.reset_index()
