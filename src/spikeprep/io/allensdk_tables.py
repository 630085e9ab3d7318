"""AllenSDK's project tables (``EcephysProjectCache.get_session_table``, ``get_probes``,
``get_channels``, ``get_units``) built from the bucket's catalog CSVs, as AllenSDK 2.16
builds them: the same joins, renames, filters, counts, column order and index (``id``).

Each CSV is read once per catalog (AllenSDK reads them again on every call).
"""

from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import SpikeprepError
from ..core.options import AMPLITUDE_CUTOFF_MAX, ISI_VIOLATIONS_MAX, PRESENCE_RATIO_MIN

__all__ = ["CatalogTables", "UNIT_FILTER_DEFAULTS", "unit_filter_value"]

# value when absent, value when None (AllenSDK's UNIT_FILTER_DEFAULTS)
UNIT_FILTER_DEFAULTS = {"amplitude_cutoff_maximum": (AMPLITUDE_CUTOFF_MAX, np.inf),
                        "presence_ratio_minimum": (PRESENCE_RATIO_MIN, -np.inf),
                        "isi_violations_maximum": (ISI_VIOLATIONS_MAX, np.inf)}
_UNIT_RENAMES = {"PT_ratio": "waveform_PT_ratio", "amplitude": "waveform_amplitude", "duration": "waveform_duration",
                 "halfwidth": "waveform_halfwidth", "recovery_slope": "waveform_recovery_slope",
                 "repolarization_slope": "waveform_repolarization_slope", "spread": "waveform_spread",
                 "velocity_above": "waveform_velocity_above", "velocity_below": "waveform_velocity_below",
                 "l_ratio": "L_ratio"}
_SESSION_SUPPRESS = ("has_nwb", "isi_experiment_id", "date_of_acquisition")
_PROBE_SUPPRESS = ("air_channel_index", "surface_channel_index", "date_of_acquisition", "published_at", "specimen_id",
                   "session_type", "isi_experiment_id", "age_in_days", "sex", "genotype", "has_nwb",
                   "lfp_temporal_subsampling_factor")
_CHANNEL_SUPPRESS = ("air_channel_index", "surface_channel_index", "name", "date_of_acquisition", "published_at",
                     "specimen_id", "session_type", "isi_experiment_id", "age_in_days", "sex", "genotype", "has_nwb",
                     "lfp_temporal_subsampling_factor")
_UNIT_SUPPRESS = ("air_channel_index", "surface_channel_index", "has_nwb", "lfp_temporal_subsampling_factor",
                  "epoch_name_quality_metrics", "epoch_name_waveform_metrics", "isi_experiment_id")


# the columns each call needs, beyond ``id``
_NEEDS = {"sessions.csv": (), "probes.csv": ("ecephys_session_id",),
          "channels.csv": ("ecephys_probe_id", "ecephys_structure_acronym"),
          "units.csv": ("ecephys_channel_id", "amplitude_cutoff", "presence_ratio", "isi_violations")}
# (table, key, table the key names): rows naming an unknown id drop out of AllenSDK's inner joins
_JOINS = (("probes.csv", "ecephys_session_id", "sessions.csv"), ("channels.csv", "ecephys_probe_id", "probes.csv"),
          ("units.csv", "ecephys_channel_id", "channels.csv"))


def unit_filter_value(key: str, kwargs: dict[str, Any]) -> float:
    """AllenSDK's bound ``key`` from its keyword arguments: its default when absent, no
    bound (±inf) when None."""
    default, when_none = UNIT_FILTER_DEFAULTS[key]
    value = kwargs.get(key, default)
    return when_none if value is None else float(value)


def _merge(left: pd.DataFrame, right: pd.DataFrame, key: str, suffixes: tuple[str, str]) -> pd.DataFrame:
    """``left`` joined to ``right``'s index on ``key``, rows grouped by key in order of the
    key's first appearance, as AllenSDK's pandas (1.5) ordered an inner merge (pandas 2+
    keeps the left order instead)."""
    merged = pd.merge(left, right, left_on=key, right_index=True, suffixes=suffixes)
    codes, _ = pd.factorize(merged[key])
    return merged.iloc[np.argsort(codes, kind="stable")]


def _count(table: pd.DataFrame, other: pd.DataFrame, key: str, name: str) -> None:
    counts = other[key].value_counts()
    table[name] = 0
    table.loc[counts.index.values, name] = counts.values


def _uniques(table: pd.DataFrame, other: pd.DataFrame, key: str, field: str, name: str) -> None:
    found = other.groupby(key, sort=True)[field].apply(lambda x: x.unique())
    values = pd.Series([None] * len(table), index=table.index, dtype=object)
    for i, v in found.items():
        if i in values.index:
            values.at[i] = v
    table[name] = values


class CatalogTables:
    """The catalog of a cache folder (``sessions.csv``, ``probes.csv``, ``channels.csv``,
    ``units.csv``) as AllenSDK's tables.

    Raises
    ------
    SpikeprepError
        A CSV that is missing or not a table with an ``id`` column (one line naming it).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._units_cache: dict[tuple, pd.DataFrame] = {}

    def _read(self, name: str) -> pd.DataFrame:
        path = self.folder / name
        try:
            # numbers correctly rounded (AllenSDK's pandas 1.5 parser is off by one ulp on some)
            table = pd.read_csv(path, index_col="id")
            # text as object columns, as AllenSDK's tables have them (pandas 3 would infer "str")
            return table.astype({c: object for c in table.columns if pd.api.types.is_string_dtype(table[c])})
        except FileNotFoundError:
            raise SpikeprepError(f"{path}: missing (download the catalog first)") from None
        except (OSError, ValueError, KeyError) as exc:
            raise SpikeprepError(f"{path}: not a catalog table ({str(exc).splitlines()[0]})") from None

    def _checked(self, name: str) -> pd.DataFrame:
        """``name`` read, with the columns the calls need, and a warning that counts the
        rows naming an id its parent table lacks (AllenSDK drops them without a word)."""
        table = self._read(name)
        missing = [c for c in _NEEDS[name] if c not in table.columns]
        if missing:
            raise SpikeprepError(f"{self.folder / name}: no column {missing[0]!r} (a catalog table needs "
                                 f"{', '.join(_NEEDS[name])})")
        for child, key, parent in _JOINS:
            if child == name:
                known = {"sessions.csv": lambda: self._sessions, "probes.csv": lambda: self._probes,
                         "channels.csv": lambda: self._channels}[parent]().index
                orphans = int((~table[key].isin(known)).sum())
                if orphans:
                    warnings.warn(f"{self.folder / name}: {orphans} of {len(table)} rows have a {key} that is not in "
                                  f"{parent}; they are left out of the joined tables", stacklevel=4)
        return table

    @cached_property
    def _sessions(self) -> pd.DataFrame:
        sessions = self._checked("sessions.csv")
        if "structure_acronyms" in sessions.columns:  # a list written as text
            import ast

            sessions["ecephys_structure_acronyms"] = [ast.literal_eval(x) for x in sessions.pop("structure_acronyms")]
        return sessions

    @cached_property
    def _probes(self) -> pd.DataFrame:
        probes = self._checked("probes.csv")
        if {"lfp_sampling_rate", "lfp_temporal_subsampling_factor"} <= set(probes.columns):
            probes["lfp_sampling_rate"] = probes["lfp_sampling_rate"] / probes["lfp_temporal_subsampling_factor"]
        return probes

    @cached_property
    def _channels(self) -> pd.DataFrame:
        return self._checked("channels.csv")

    @cached_property
    def _units_raw(self) -> pd.DataFrame:
        return self._checked("units.csv").rename(columns=_UNIT_RENAMES)

    @cached_property
    def _annotated_probes(self) -> pd.DataFrame:
        return _merge(self._probes, self._sessions, "ecephys_session_id", ("_probe", "_session"))

    @cached_property
    def _annotated_channels(self) -> pd.DataFrame:
        return _merge(self._channels, self._annotated_probes, "ecephys_probe_id", ("_channel", "_probe"))

    def _units(self, filter_by_validity: bool = True, **kwargs: Any) -> pd.DataFrame:
        units = self._units_raw
        with np.errstate(invalid="ignore"):
            keep = ((units["amplitude_cutoff"] <= unit_filter_value("amplitude_cutoff_maximum", kwargs))
                    & (units["presence_ratio"] >= unit_filter_value("presence_ratio_minimum", kwargs))
                    & (units["isi_violations"] <= unit_filter_value("isi_violations_maximum", kwargs)))
        units = units[keep]
        if "quality" in units.columns and filter_by_validity:
            units = units[units["quality"] == "good"].drop(columns="quality")
        if "ecephys_structure_id" in units.columns and kwargs.get("filter_out_of_brain_units", True):
            units = units[units["ecephys_structure_id"].notna()]
        return units

    def _annotated_units(self, filter_by_validity: bool = True, **kwargs: Any) -> pd.DataFrame:
        return _merge(self._units(filter_by_validity, **kwargs), self._annotated_channels, "ecephys_channel_id",
                      ("_unit", "_channel"))

    @cached_property
    def _default_units(self) -> pd.DataFrame:
        return self._annotated_units()

    def session_ids(self) -> pd.Index:
        """The sessions of the catalog (no counts computed)."""
        return self._sessions.index

    def session_table(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        """AllenSDK's ``get_session_table``."""
        sessions = self._sessions.copy()
        _count(sessions, self._default_units, "ecephys_session_id", "unit_count")
        _count(sessions, self._annotated_channels, "ecephys_session_id", "channel_count")
        _count(sessions, self._annotated_probes, "ecephys_session_id", "probe_count")
        _uniques(sessions, self._annotated_channels, "ecephys_session_id", "ecephys_structure_acronym",
                 "ecephys_structure_acronyms")
        sessions = sessions.drop(columns=list(_SESSION_SUPPRESS if suppress is None else suppress), errors="ignore")
        return sessions.rename(columns={"genotype": "full_genotype"})

    def probes(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        """AllenSDK's ``get_probes``."""
        probes = self._annotated_probes.copy()
        _count(probes, self._default_units, "ecephys_probe_id", "unit_count")
        _count(probes, self._annotated_channels, "ecephys_probe_id", "channel_count")
        _uniques(probes, self._annotated_channels, "ecephys_probe_id", "ecephys_structure_acronym",
                 "ecephys_structure_acronyms")
        return probes.drop(columns=list(_PROBE_SUPPRESS if suppress is None else suppress), errors="ignore")

    def channels(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        """AllenSDK's ``get_channels``."""
        channels = self._annotated_channels.copy()
        _count(channels, self._default_units, "ecephys_channel_id", "unit_count")
        channels = channels.drop(columns=list(_CHANNEL_SUPPRESS if suppress is None else suppress), errors="ignore")
        return channels.rename(columns={"name": "probe_name"})

    def units(self, suppress: Sequence[str] | None = None, filter_by_validity: bool = True,
              **unit_filter_kwargs: Any) -> pd.DataFrame:
        """AllenSDK's ``get_units`` (each distinct call computed once; a copy returned)."""
        key = (tuple(suppress) if suppress is not None else None, bool(filter_by_validity),
               tuple(sorted((k, repr(v)) for k, v in unit_filter_kwargs.items())))
        if key not in self._units_cache:
            units = self._annotated_units(filter_by_validity, **unit_filter_kwargs)
            self._units_cache[key] = units.drop(columns=list(_UNIT_SUPPRESS if suppress is None else suppress),
                                                errors="ignore")
        return self._units_cache[key].copy()
