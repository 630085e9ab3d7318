"""AllenSDK's stimulus-table methods over an exported folder: the stimulus table with
its options, epochs, parameter values and inter-presentation intervals.

A mixin of :class:`~spikeprep.analysis.session.ExportedSession`, which provides
``presentations`` (the exported table) and ``stimulus_presentations`` (AllenSDK's
masked view). Parameters are numbers (vectors as tuples) and "not applicable" is NaN,
where AllenSDK has strings and ``"null"``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import AlignmentError
from ..core.stimulus import DETAILED_PARAMETERS
from .session_info import value_intervals

__all__ = ["StimulusViews", "NON_STIMULUS_PARAMETERS"]

NON_STIMULUS_PARAMETERS = ("start_time", "stop_time", "duration", "stimulus_block", "stimulus_condition_id")


def _names(stimulus_names: str | Sequence[str]) -> list[str]:
    return [stimulus_names] if isinstance(stimulus_names, str) else list(stimulus_names)


def drop_unused(table: pd.DataFrame) -> pd.DataFrame:
    """Without the columns that hold nothing (all NaN, empty or "null"), as AllenSDK does."""
    empty = table.isna().all().to_numpy()
    unused = [c for c, none in zip(table.columns, empty)
              if none or (table[c].dtype == object and table[c].isin(["", "null"]).all())]
    return table.drop(columns=unused)


def _unique(values: pd.Series) -> list[Any]:
    """Distinct values in order of first appearance; NaN counts once."""
    return list(pd.unique(values.to_numpy(dtype=object)))


def _array(values: list[Any]) -> np.ndarray:
    """A 1-D array of the values (tuples stay whole: an object array)."""
    if not any(isinstance(v, tuple) for v in values):
        return np.array(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class StimulusViews:
    """``get_stimulus_table``, ``get_stimulus_epochs``, parameter values, intervals."""

    DETAILED_STIMULUS_PARAMETERS = DETAILED_PARAMETERS
    ecephys_session_id: int
    presentations: pd.DataFrame
    stimulus_presentations: pd.DataFrame

    @property
    def stimulus_names(self) -> list[str]:
        """Names in ``stimulus_presentations``, in order of first presentation (AllenSDK's:
        ``invalid_presentation`` is one of them when some presentation is masked)."""
        return _unique(self.stimulus_presentations["stimulus_name"])

    @cached_property
    def _valid_stimuli(self) -> list[str]:
        names = self.presentations["stimulus_name"].to_numpy(dtype=object)
        return list(pd.unique(names[~self.presentations["is_invalid"].to_numpy(dtype=bool)]))

    def check_stimulus(self, names: Sequence[str]) -> None:
        """SpikeprepError naming the first stimulus without presentations, listing the valid ones."""
        valid = self._valid_stimuli
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise AlignmentError(f"session {self.ecephys_session_id}: unknown stimulus {unknown[0]!r}; "
                                 f"valid: {', '.join(map(str, valid))}")

    @property
    def _all_parameters(self) -> pd.DataFrame:
        """AllenSDK's masked view with the detailed parameters still in."""
        table = self.stimulus_presentations
        detailed = [c for c in DETAILED_PARAMETERS if c in self.presentations.columns]
        if detailed:
            extra = self.presentations[detailed].copy()
            extra[self.presentations["is_invalid"].to_numpy(dtype=bool)] = None
            table = table.join(extra)
        return table

    def get_stimulus_table(self, stimulus_names: str | Sequence[str] | None = None,
                           include_detailed_parameters: bool = False,
                           include_unused_parameters: bool = False) -> pd.DataFrame:
        """Presentations of the named stimuli (all when None), indexed by
        ``stimulus_presentation_id``, without the parameters none of them uses unless
        ``include_unused_parameters``, without PsychoPy's detailed parameters unless
        ``include_detailed_parameters``.

        Raises
        ------
        AlignmentError
            A name with no presentation in this session.
        """
        table = self._all_parameters if include_detailed_parameters else self.stimulus_presentations
        if stimulus_names is not None:
            names = _names(stimulus_names)
            self.check_stimulus([n for n in names if n != "invalid_presentation"])
            table = table[table["stimulus_name"].isin(names)]
        return table if include_unused_parameters else drop_unused(table)

    def get_stimulus_epochs(self, duration_thresholds: dict[str, float] | None = None) -> pd.DataFrame:
        """Continuous runs of one stimulus block: ``start_time``, ``stop_time``,
        ``duration`` (s), ``stimulus_name``, ``stimulus_block``.

        Parameters
        ----------
        duration_thresholds : dict, optional
            Stimulus name → shortest epoch kept (s). AllenSDK's default,
            ``{"spontaneous_activity": 90.0}``, names no stimulus of these files, so
            nothing is dropped by default, as in AllenSDK.
        """
        if duration_thresholds is None:
            duration_thresholds = {"spontaneous_activity": 90.0}
        table = self.stimulus_presentations
        # masked presentations have no block, like spontaneous ones: keep them apart, as AllenSDK's
        # "null" (spontaneous) and NaN (masked) are
        invalid = (table["stimulus_name"] == "invalid_presentation").to_numpy()
        key = np.where(invalid, "invalid_presentation", table["stimulus_block"].to_numpy(dtype=object))
        bounds = value_intervals(key)
        first, last = bounds[:-1], bounds[1:] - 1
        epochs = pd.DataFrame({"start_time": table["start_time"].to_numpy()[first],
                               "stop_time": table["stop_time"].to_numpy()[last],
                               "stimulus_name": table["stimulus_name"].to_numpy()[first],
                               "stimulus_block": table["stimulus_block"].to_numpy()[first]})
        epochs["duration"] = epochs["stop_time"] - epochs["start_time"]
        for name, threshold in duration_thresholds.items():
            epochs = epochs[(epochs["stimulus_name"] != name) | (epochs["duration"] >= threshold)]
        return epochs[["start_time", "stop_time", "duration", "stimulus_name", "stimulus_block"]]

    @cached_property
    def _parameter_arrays(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Presentation ids, names, and each parameter column as an object array."""
        table = self.stimulus_presentations
        params = [c for c in table.columns if c not in (*NON_STIMULUS_PARAMETERS, "stimulus_name")]
        return (table.index.to_numpy(), table["stimulus_name"].to_numpy(dtype=object),
                {c: table[c].to_numpy() for c in params})

    def _parameter_values(self, rows: np.ndarray | slice, drop_nulls: bool) -> dict[str, np.ndarray]:
        values = {}
        for c, column in self._parameter_arrays[2].items():
            found = pd.unique(column[rows])
            if found.dtype.kind == "f":
                kept = list(found[~np.isnan(found)])
            else:
                kept = [v for v in found if not (np.ndim(v) == 0 and (pd.isna(v) or v in ("", "null")))]
            if not kept:  # unused by these presentations: AllenSDK leaves the column out
                continue
            if not drop_nulls and len(kept) < len(found):
                kept.append(np.nan)
            values[c] = _array(kept)
        return values

    def get_stimulus_parameter_values(self, stimulus_presentation_ids: Any = None,
                                      drop_nulls: bool = True) -> dict[str, np.ndarray]:
        """Each stimulus parameter's distinct values (order of first appearance) over the
        given presentations (all when None); with ``drop_nulls=False`` a NaN stands for
        "not applicable" where some presentation has none."""
        if stimulus_presentation_ids is None:
            return self._parameter_values(slice(None), drop_nulls)
        ids = self._parameter_arrays[0]
        wanted = np.atleast_1d(np.asarray(stimulus_presentation_ids))
        rows = np.searchsorted(ids, wanted) if np.all(ids[:-1] < ids[1:]) else pd.Index(ids).get_indexer(wanted)
        rows = np.clip(rows, 0, len(ids) - 1)
        missing = wanted[ids[rows] != wanted]
        if len(missing):
            raise AlignmentError(f"session {self.ecephys_session_id}: no presentation {missing[:5].tolist()}")
        return self._parameter_values(rows, drop_nulls)

    def get_parameter_values_for_stimulus(self, stimulus_name: str, drop_nulls: bool = True) -> dict[str, np.ndarray]:
        """:meth:`get_stimulus_parameter_values` over the presentations of one stimulus."""
        self.check_stimulus([stimulus_name])
        return self._parameter_values(self._parameter_arrays[1] == stimulus_name, drop_nulls)

    @cached_property
    def inter_presentation_intervals(self) -> pd.DataFrame:
        """Gap (s) from each presentation's stop to the next one's start, indexed by
        (``from_presentation_id``, ``to_presentation_id``)."""
        table = self.stimulus_presentations
        ids = table.index.to_numpy()
        index = pd.MultiIndex.from_arrays([ids[:-1], ids[1:]], names=["from_presentation_id", "to_presentation_id"])
        return pd.DataFrame({"interval": table["start_time"].to_numpy()[1:] - table["stop_time"].to_numpy()[:-1]},
                            index=index)

    def get_inter_presentation_intervals_for_stimulus(self, stimulus_names: str | Sequence[str]) -> pd.DataFrame:
        """:attr:`inter_presentation_intervals` between two presentations of the named stimuli."""
        names = _names(stimulus_names)
        self.check_stimulus(names)
        table = self.stimulus_presentations
        ids = table.index[table["stimulus_name"].isin(names)]
        gaps = self.inter_presentation_intervals
        keep = gaps.index.get_level_values(0).isin(ids) & gaps.index.get_level_values(1).isin(ids)
        return gaps[keep]
