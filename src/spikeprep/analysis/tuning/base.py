"""What every stimulus analysis shares: the stimulus's presentations and conditions,
spike counts per trial, condition statistics, the preferred condition of each unit and
its PSTH there, running speed per trial — computed once for all units, with the
session's aligned kernels (:mod:`spikeprep.analysis.alignment`).

AllenSDK computes each metric unit by unit through pandas lookups; here each quantity is
an array over all units (units × conditions, trials × units), and the per-unit formulas
of :mod:`.kernels` run on rows of it. Values are AllenSDK's.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..alignment import aligned_counts, condition_sums, condition_table, window_counts
from . import kernels
from .columns import Metric, metrics_frame

__all__ = ["StimulusAnalysis", "scalar"]


def scalar(value: Any) -> float:
    """A stimulus parameter as one number: 1-tuples (Parquet lists) unwrapped, missing
    values (AllenSDK's ``"null"``) NaN."""
    if isinstance(value, (tuple, list, np.ndarray)):
        return float(value[0]) if len(value) == 1 else np.nan
    if value is None:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


class StimulusAnalysis:
    """Base of the stimulus analyses: AllenSDK's ``StimulusAnalysis`` over a spikeprep
    session (:func:`spikeprep.open_session`, :class:`spikeprep.EcephysSession`, or the
    project cache's ``get_session_data``).

    Parameters
    ----------
    ecephys_session : ExportedSession
    trial_duration : float
        Window after each onset (s) in which spikes count as the trial's response.
    filter : list of unit ids or dict, optional
        AllenSDK's unit filter: ids, or column → value (or list of values) of ``units``.
    stimulus_key : str or list of str, optional
        The stimulus name(s); found among the class's known names by default.
    psth_resolution : float
        PSTH bin (s), 1 ms as in AllenSDK.

    Notes
    -----
    A session without the stimulus gives a metrics table of NaN (False for flags) and a
    ``note`` saying so, where AllenSDK raises.
    """

    KNOWN_KEYS: tuple[str, ...] = ()
    PREFIX_MATCH = False
    METRICS: tuple[Metric, ...] = ()
    TRIAL_DURATION: float | None = None
    PARAMS_KEY = ""  # the class's entry in AllenSDK's ``params`` dict

    def __init__(self, ecephys_session: Any, trial_duration: float | None = None, **kwargs: Any) -> None:
        if not hasattr(ecephys_session, "conditionwise_spike_statistics"):
            raise TypeError(f"{type(self).__name__} takes a spikeprep session (spikeprep.open_session, "
                            f"spikeprep.EcephysSession), not {type(ecephys_session).__name__}")
        self.ecephys_session = ecephys_session
        self._trial_duration = self.TRIAL_DURATION if trial_duration is None else float(trial_duration)
        self._unit_filter = kwargs.get("filter")
        self._stimulus_key = kwargs.get("stimulus_key")
        params = kwargs.get("params") or {}
        if isinstance(params, dict) and self.PARAMS_KEY in params:
            self._stimulus_key = params[self.PARAMS_KEY].get("stimulus_key", self._stimulus_key)
        self._psth_resolution = float(kwargs.get("psth_resolution", 0.001))
        self.note = ""

    # ------------------------------------------------------------------ AllenSDK's properties
    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def trial_duration(self) -> float:
        if self._trial_duration is None or self._trial_duration < 0:
            raise TypeError(f'Invalid value {self._trial_duration} for parameter "trial_duration".')
        return self._trial_duration

    @cached_property
    def unit_ids(self) -> np.ndarray:
        """The units analysed (the session's, or those the filter selects)."""
        units = self.ecephys_session.units
        f = self._unit_filter
        if isinstance(f, (list, tuple, np.ndarray, pd.Series, pd.Index)):
            units = units.loc[list(f)]
        elif isinstance(f, dict):
            if "unit_id" in f:
                units = units.loc[np.atleast_1d(f["unit_id"])]
            else:
                mask = np.ones(len(units), dtype=bool)
                for column, value in f.items():
                    mask &= (units[column].isin(value) if isinstance(value, (list, np.ndarray))
                             else units[column] == value).to_numpy()
                units = units[mask]
        return units.index.to_numpy()

    @property
    def unit_count(self) -> int:
        return len(self.unit_ids)

    @cached_property
    def stimulus_key(self) -> str | None:
        if self._stimulus_key is not None:
            return self._stimulus_key
        known = [k.lower() for k in self.KNOWN_KEYS]
        for name in pd.unique(self.ecephys_session.stimulus_presentations["stimulus_name"].astype(str)):
            low = name.lower()
            if low in known or (self.PREFIX_MATCH and any(low.startswith(k) for k in known)):
                return name
        return None

    @cached_property
    def stim_table(self) -> pd.DataFrame:
        """The stimulus's presentations (a copy: nothing here changes the session's)."""
        table = self.ecephys_session.stimulus_presentations
        keys = [self.stimulus_key] if isinstance(self.stimulus_key, str) else list(self.stimulus_key or [])
        return table[table["stimulus_name"].isin(keys)].copy()

    @property
    def total_presentations(self) -> int:
        return len(self.stim_table)

    @cached_property
    def stimulus_conditions(self) -> pd.DataFrame:
        conditions = self.ecephys_session.stimulus_conditions
        return conditions[conditions.index.isin(self.stim_table["stimulus_condition_id"].unique())]

    def _values(self, column: str) -> pd.Series:
        """A condition parameter as numbers (NaN where AllenSDK has ``"null"``)."""
        return self.stimulus_conditions[column].map(scalar).astype(np.float64)

    def _sorted_values(self, column: str) -> np.ndarray:
        v = self._values(column)
        return np.sort(v[v.notna()].unique())

    @property
    def null_condition(self) -> Any:
        return -1

    @cached_property
    def conditionwise_statistics(self) -> pd.DataFrame:
        """AllenSDK's table: (``unit_id``, ``stimulus_condition_id``) → ``spike_count``,
        ``stimulus_presentation_count``, ``spike_mean``, ``spike_std``, ``spike_sem``."""
        return condition_table(*self._sums, self.unit_ids)

    @cached_property
    def presentationwise_statistics(self) -> pd.DataFrame:
        """AllenSDK's table: (``stimulus_presentation_id``, ``unit_id``) → ``spike_counts``
        in ``[onset, onset + trial_duration)``, ``stimulus_condition_id``, ``running_speed``
        (cm/s, the mean of the samples starting inside the presentation)."""
        n_u = self.unit_count
        index = pd.MultiIndex.from_product([self.stim_table.index.to_numpy(), self.unit_ids],
                                           names=["stimulus_presentation_id", "unit_id"])
        return pd.DataFrame({"spike_counts": self._trial_counts.reshape(-1),
                             "stimulus_condition_id": np.repeat(self._conditions, n_u),
                             "running_speed": np.repeat(self._running, n_u)}, index=index)

    # ------------------------------------------------------------------ arrays over all units
    @cached_property
    def _trains(self) -> Any:
        return self.ecephys_session._units(self.unit_ids)[1]

    @cached_property
    def _starts(self) -> np.ndarray:
        return self.stim_table["start_time"].to_numpy(dtype=np.float64)

    @cached_property
    def _conditions(self) -> np.ndarray:
        return self.stim_table["stimulus_condition_id"].to_numpy()

    def _window_counts(self) -> np.ndarray:
        """Presentations × units: spikes in ``[start_time, stop_time)`` (not kept: a movie's
        are 137 MB; only their sums per condition are)."""
        return window_counts(self._trains, self._starts, self.stim_table["stop_time"].to_numpy(np.float64),
                             dtype=np.dtype(np.uint16))

    @cached_property
    def _trial_counts(self) -> np.ndarray:
        """Presentations × units: spikes in ``[onset, onset + trial_duration)`` (each
        window's end summed in float64 as ``onset + trial_duration``)."""
        return window_counts(self._trains, self._starts, self._starts + self.trial_duration, dtype=np.dtype(np.uint16))

    @cached_property
    def _running(self) -> np.ndarray:
        run = self.ecephys_session.running_speed
        t, v = run["start_time"].to_numpy(np.float64), run["velocity"].to_numpy(np.float64)
        lo = np.searchsorted(t, self._starts, side="left")
        hi = np.searchsorted(t, self.stim_table["stop_time"].to_numpy(np.float64), side="left")
        valid = np.isfinite(v)
        total = np.concatenate([[0.0], np.cumsum(np.where(valid, v, 0.0))])
        count = np.concatenate([[0], np.cumsum(valid)])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(hi > lo, (total[hi] - total[lo]) / (count[hi] - count[lo]), np.nan)

    @cached_property
    def _condition_ids(self) -> np.ndarray:
        return np.unique(self._conditions)

    @cached_property
    def _sums(self) -> tuple[np.ndarray, ...]:
        return condition_sums(self._window_counts(), self._conditions)

    @cached_property
    def _means(self) -> np.ndarray:
        """Units × conditions (ascending id): ``spike_mean`` of ``conditionwise_statistics``
        (the same arithmetic, without the table)."""
        _, n, total, _ = self._sums
        return (total / n.astype(np.float64)[:, None]).T

    @property
    def _counts(self) -> np.ndarray:
        """Units × conditions (ascending id): ``spike_count`` of ``conditionwise_statistics``."""
        return self._sums[2].T

    def _columns(self, condition_ids: Any) -> np.ndarray:
        """Positions of conditions in the columns of :attr:`_means` and :attr:`_counts`."""
        return np.searchsorted(self._condition_ids, np.asarray(condition_ids))

    @cached_property
    def _not_null(self) -> np.ndarray:
        """Over the conditions (ascending id): False for the null (blank) ones."""
        null = self.null_condition
        ids = np.asarray(null if isinstance(null, (pd.Index, np.ndarray, list)) else [null])
        return ~np.isin(self._condition_ids, ids)

    @cached_property
    def preferred_condition(self) -> np.ndarray:
        """Per unit, the condition (not a null one) with the highest mean spike count; the
        first one on ties, in order of condition id."""
        keep = self._not_null
        if not keep.any():
            keep = np.ones(len(self._condition_ids), dtype=bool)
        ids = self._condition_ids[keep]
        return ids[np.argmax(self._means[:, keep], axis=1)] if self._means.size else np.empty(0, dtype=ids.dtype)

    def _by_value(self, column: str, values: np.ndarray) -> np.ndarray:
        """Units × values: the mean over the conditions having each value of ``column``
        of their mean spike count."""
        param = self._values(column)
        out = np.empty((self.unit_count, len(values)))
        for k, v in enumerate(values):
            cols = self._columns(param.index[param.to_numpy() == v])
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[:, k] = self._means[:, cols].mean(axis=1) if len(cols) else np.nan
        return out

    def _preferred_value(self, column: str, values: np.ndarray) -> np.ndarray:
        table = self._by_value(column, values)
        if not len(values):
            return np.full(self.unit_count, np.nan)
        return np.asarray(values, dtype=np.float64)[np.argmax(np.nan_to_num(table, nan=-np.inf), axis=1)]

    def _multiple_preferred(self, column: str, values: np.ndarray) -> np.ndarray:
        table = self._by_value(column, values)
        if not len(values):
            return np.zeros(self.unit_count, dtype=bool)
        return np.count_nonzero(table == np.max(table, axis=1, keepdims=True), axis=1) > 1

    def _firing_rate(self) -> np.ndarray:
        starts, stops = kernels.block_bounds(self._starts, self.stim_table["stop_time"].to_numpy(np.float64),
                                             self.trial_duration)
        return np.array([kernels.overall_firing_rate(starts, stops, self._trains[j]) for j in range(self.unit_count)])

    @cached_property
    def _preferred_groups(self) -> list[tuple[Any, np.ndarray, np.ndarray]]:
        """(condition, positions of the units preferring it, positions of its trials)."""
        preferred = self.preferred_condition
        return [(c, np.flatnonzero(preferred == c), np.flatnonzero(self._conditions == c))
                for c in np.unique(preferred)]

    def _fano(self) -> np.ndarray:
        out = np.full(self.unit_count, np.nan)
        for _, units, trials in self._preferred_groups:
            out[units] = kernels.fano_factor(self._trial_counts[np.ix_(trials, units)])
        return out

    def _run_modulation(self) -> tuple[np.ndarray, np.ndarray]:
        p, mod = np.full(self.unit_count, np.nan), np.full(self.unit_count, np.nan)
        with np.errstate(invalid="ignore"):
            running = self._running >= 1.0
        for _, units, trials in self._preferred_groups:
            p[units], mod[units] = kernels.running_modulation(self._trial_counts[np.ix_(trials, units)],
                                                              running[trials])
        return p, mod

    def _lifetime_sparseness(self) -> np.ndarray:
        return np.array([kernels.lifetime_sparseness(row) for row in self._counts[:, self._not_null]])

    def psth_groups(self, conditions: np.ndarray, edges: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per distinct condition: the unit positions whose ``conditions`` entry it is,
        and their counts (trials × bins × units) in bins ``edges`` after each onset."""
        for c in np.unique(conditions):
            onsets = self._starts[self._conditions == c]
            every = np.flatnonzero(conditions == c)
            for a in range(0, len(every), 128):  # select() copies the units' spikes: a few at a time
                units = every[a : a + 128]
                yield units, aligned_counts(self._trains.select(units), onsets, edges)

    @cached_property
    def psth_edges(self) -> np.ndarray:
        return np.arange(0, self.trial_duration, self._psth_resolution)

    @cached_property
    def preferred_psth(self) -> np.ndarray:
        """Units × bins: the mean counts per ``psth_resolution`` bin at each unit's
        preferred condition (AllenSDK's ``conditionwise_psth`` there)."""
        edges = self.psth_edges
        out = np.full((self.unit_count, max(len(edges) - 1, 0)), np.nan)
        if len(edges) < 2:
            return out
        for units, counts in self.psth_groups(self.preferred_condition, edges):
            out[units] = counts.mean(axis=0).T
        return out

    def _time_to_peak(self) -> np.ndarray:
        times = self.psth_edges[:-1] + np.diff(self.psth_edges) / 2
        return np.array([kernels.time_to_peak(row, times) for row in self.preferred_psth])

    # ------------------------------------------------------------------ the table
    def _compute(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def has_stimulus(self) -> bool:
        return self.stimulus_key is not None and len(self.stim_table) > 0

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """One row per unit (index ``unit_id``), the class's declared columns (see
        ``METRICS`` for each one's dtype, unit and meaning)."""
        if not self.has_stimulus:
            self.note = (f"session {self.ecephys_session.ecephys_session_id} has no {self.name} stimulus "
                         f"(looked for {', '.join(self.KNOWN_KEYS)}); its metrics are NaN")
            warnings.warn(self.note, stacklevel=2)
            return metrics_frame(self.METRICS, self.unit_ids, {})
        return metrics_frame(self.METRICS, self.unit_ids, self._compute())

    @classmethod
    def known_stimulus_keys(cls) -> list[str]:
        return list(cls.KNOWN_KEYS)

    @property
    def metrics_names(self) -> list[str]:
        return [m.name for m in self.METRICS]

    @property
    def METRICS_COLUMNS(self) -> list[tuple[str, Any]]:  # noqa: N802 (AllenSDK's name)
        return [(m.name, m.dtype) for m in self.METRICS]

