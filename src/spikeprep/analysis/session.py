"""Stimulus-aligned views of an exported session, with AllenSDK's ``EcephysSession`` names.

``open_session(OUT, id)`` gives an object whose attributes and methods have AllenSDK's
names and return shapes, read from the exported folder, so a notebook written for
AllenSDK ports by changing the line that opens the session. Differences, all
deliberate:

- bins and windows are half-open (``[a, b)``); AllenSDK counts closed bins, so a spike
  exactly on an inner edge counts in both of its bins there, and its presentation
  windows are ``(start, stop]``;
- ``units`` holds every unit, with AllenSDK's QC filter as the ``passes_allen_qc``
  column instead of a silent filter;
- a unit or presentation with no spikes counts 0; presentations may overlap or come
  in any order; counts never overflow (uint16, widened when needed);
- numeric stimulus parameters are numbers (vectors as tuples), not strings.

:mod:`spikeprep.analysis.aligned_store` writes the aligned outputs (``spikeprep align``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from ..core.errors import AlignmentError, SpikeprepError
from ..core.model import SpikeTrains
from ..core.stimulus import DETAILED_PARAMETERS
from ..export.layout import SCHEMA_VERSION, SessionFolder
from ..export.readers import open_output, open_rates, open_spike_trains, open_units
from ..export.tables import Column
from .alignment import (aligned_counts, aligned_spike_times, check_edges, condition_statistics, domain_counts,
                        interval_means, window_counts)
from .lfp_session import LfpViews
from .session_info import SessionInfo, as_object_text
from .stimulus_views import StimulusViews
from .unit_filter import UnitFilter

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["AlignmentError", "ExportedSession", "open_session", "ALLENSDK_UNIT_ALIASES", "CONDITION_STATS_COLUMNS"]

# AllenSDK's names for columns spikeprep keeps under their NWB names (added to ``units``).
ALLENSDK_UNIT_ALIASES = {
    "region": ("ecephys_structure_acronym", "structure_acronym"), "probe_id": ("ecephys_probe_id",),
    "peak_channel_id": ("ecephys_channel_id",), "probe_name": ("probe_description",),
    "PT_ratio": ("waveform_PT_ratio",), "amplitude": ("waveform_amplitude",), "l_ratio": ("L_ratio",),
    "spread": ("waveform_spread",), "velocity_above": ("waveform_velocity_above",),
    "velocity_below": ("waveform_velocity_below",), "recovery_slope": ("waveform_recovery_slope",),
    "repolarization_slope": ("waveform_repolarization_slope",),
}
CONDITION_STATS_COLUMNS = (
    Column("unit_id", "int64", "", "Allen unit id"),
    Column("stimulus_condition_id", "int64", "", "condition (stimulus_conditions.parquet)"),
    Column("spike_count", "int64", "", "spikes of the unit over the condition's presentations"),
    Column("stimulus_presentation_count", "int64", "", "presentations of the condition"),
    Column("spike_mean", "float64", "", "mean spikes per presentation ([start_time, stop_time))"),
    Column("spike_std", "float64", "", "standard deviation over presentations (ddof 1)"),
    Column("spike_sem", "float64", "", "standard error of the mean (spike_std / √n)"),
)


def _tuples(df: pd.DataFrame) -> pd.DataFrame:
    """List-valued parameters as tuples (hashable: groupby and == work on them)."""
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object and df[c].map(lambda v: isinstance(v, (list, np.ndarray))).any():
            df[c] = df[c].map(lambda v: tuple(float(x) for x in v) if isinstance(v, (list, np.ndarray)) else v)
    return df


def _choices(values: Sequence[Any], n: int = 8) -> str:
    shown = ", ".join(map(str, values[:n]))
    return shown + (f", … ({len(values)} in all)" if len(values) > n else "")


class _SpikeTimes(Mapping):
    """``{unit_id: spike times}``, read from ``spike_times.parquet`` on first use."""

    def __init__(self, session: "ExportedSession") -> None:
        self._session = session

    @cached_property
    def _trains(self) -> SpikeTrains:
        return self._session.spike_trains

    def __getitem__(self, unit_id: int) -> np.ndarray:
        pos = self._session._unit_positions.get(int(unit_id))
        if pos is None:
            raise KeyError(unit_id)
        return self._trains[pos]

    def __iter__(self) -> Iterator[int]:
        return iter(self._session._unit_positions)

    def __len__(self) -> int:
        return len(self._session._unit_positions)


class ExportedSession(SessionInfo, StimulusViews, LfpViews):
    """One exported session with AllenSDK's ``EcephysSession`` read API.

    Parameters
    ----------
    out : path
        The output root.
    session_id : int

    Attributes
    ----------
    units : DataFrame
        Every unit, indexed by ``unit_id``; the columns of ``units.parquet`` plus
        AllenSDK's names for some (``ecephys_structure_acronym``, ``waveform_amplitude``, …).
    spike_times : Mapping
        ``unit_id`` → spike times (s), read on first use.
    stimulus_presentations : DataFrame
        Indexed by ``stimulus_presentation_id``; AllenSDK's view: presentations in
        invalid intervals are named ``invalid_presentation`` and their parameters and
        condition masked; detailed parameters hidden.
    stimulus_conditions : DataFrame
        Indexed by ``stimulus_condition_id``.
    running_speed : DataFrame
        ``start_time``, ``end_time`` (s), ``velocity`` (cm/s).
    invalid_times, probes, channels : DataFrame
    """

    def __init__(self, out: str | Path, session_id: int, unit_filter: UnitFilter | None = None) -> None:
        self.folder = SessionFolder(out, session_id)
        record = self.folder.read_record()
        if record is None or record.status != "complete":
            raise SpikeprepError(f"{self.folder.path}: not a complete export (run spikeprep export first)")
        if not record.is_current:
            raise SpikeprepError(f"{self.folder.path}: exported under schema {record.schema_version}, this spikeprep "
                                 f"reads {SCHEMA_VERSION}: export the session again (spikeprep export FILE --out "
                                 f"{self.folder.out})")
        self.ecephys_session_id = int(session_id)
        self.record = record
        self.unit_filter = unit_filter

    def __repr__(self) -> str:
        return f"ExportedSession({self.ecephys_session_id}, {self.folder.path})"

    def _open(self, name: str) -> Any:
        return open_output(self.folder.out, self.ecephys_session_id, name)

    # ------------------------------------------------------------------ tables
    @cached_property
    def _all_units(self) -> pd.DataFrame:
        """Every unit in the exported order (that of the store and the spike trains), with
        AllenSDK's names for some columns and its joined peak-channel and probe columns."""
        units = open_units(self.folder.out, self.ecephys_session_id)
        for column, aliases in ALLENSDK_UNIT_ALIASES.items():
            for alias in aliases:
                if column in units and alias not in units:
                    units[alias] = units[column]
        peak = self.channel_table.reindex(units["peak_channel_id"].to_numpy())
        probe = self.probe_table.reindex(units["probe_id"].to_numpy())
        joined = {"probe_channel_number": peak["local_index"], "filtering": peak["filtering"],
                  "location": probe["location"], "probe_sampling_rate": probe["sampling_rate"],
                  "probe_lfp_sampling_rate": probe["lfp_sampling_rate"], "probe_has_lfp_data": probe["has_lfp_data"]}
        for name, values in joined.items():
            if name not in units:
                units[name] = values.to_numpy()
        return as_object_text(units)

    @cached_property
    def units(self) -> pd.DataFrame:
        if self.unit_filter is None:
            return self._all_units
        return self._all_units[self.unit_filter.units(self._all_units)]

    @cached_property
    def _unit_positions(self) -> dict[int, int]:
        """``unit_id`` → position in the exported order (of the store and the spike
        trains), for the units this view shows."""
        shown = set(self.units.index.tolist())
        return {int(u): i for i, u in enumerate(self._all_units.index) if int(u) in shown}

    @cached_property
    def spike_trains(self) -> SpikeTrains:
        """Every unit's spike times as one :class:`~spikeprep.core.model.SpikeTrains`."""
        return open_spike_trains(self.folder.out, self.ecephys_session_id)

    @cached_property
    def spike_times(self) -> Mapping:
        return _SpikeTimes(self)

    @cached_property
    def presentations(self) -> pd.DataFrame:
        """The exported stimulus table as it is, indexed by ``stimulus_presentation_id``:
        real names and ``is_invalid`` (not AllenSDK's masking), vectors as tuples."""
        table = self._open("stimulus").set_index("stimulus_presentation_id")
        return _tuples(table.drop(columns=["session_id"], errors="ignore"))

    @cached_property
    def stimulus_presentations(self) -> pd.DataFrame:
        table = self.presentations.drop(columns=["stimulus_index", *DETAILED_PARAMETERS], errors="ignore")
        invalid = table.pop("is_invalid").to_numpy(dtype=bool)
        if invalid.any():
            keep = {"start_time", "stop_time"}
            table = table.astype({"stimulus_condition_id": "Int64", "stimulus_name": object})
            for c in table.columns.difference(list(keep)):
                table.loc[invalid, c] = None
            table.loc[invalid, "stimulus_name"] = "invalid_presentation"
        return table

    @cached_property
    def stimulus_conditions(self) -> pd.DataFrame:
        return _tuples(self._open("stimulus_conditions").set_index("stimulus_condition_id"))

    @cached_property
    def running_speed(self) -> pd.DataFrame:
        return self._open("running").drop(columns=["session_id"], errors="ignore")

    @cached_property
    def invalid_times(self) -> pd.DataFrame:
        """``start_time``, ``stop_time`` (s), ``tags``; from ``session.json``, which holds
        the same rows as ``invalid_times.parquet`` (no table to read)."""
        rows = self.record.invalid_times
        return pd.DataFrame({"start_time": np.array([r["start_time"] for r in rows], dtype=np.float64),
                             "stop_time": np.array([r["stop_time"] for r in rows], dtype=np.float64),
                             "tags": pd.Series([np.array(r["tags"], dtype=object) for r in rows], dtype=object)})

    # ------------------------------------------------------------------ selections
    def _presentations(self, ids: Any) -> pd.DataFrame:
        table = self.presentations
        if ids is None:
            return table
        ids = np.atleast_1d(np.asarray(ids))
        if ids.dtype.kind not in "iu":
            raise AlignmentError(f"session {self.ecephys_session_id}: stimulus_presentation_ids must be integers")
        missing = np.setdiff1d(ids, table.index.to_numpy())
        if len(missing):
            raise AlignmentError(f"session {self.ecephys_session_id}: no presentation {_choices(missing.tolist(), 5)}; "
                                 f"valid ids are 0…{len(table) - 1}")
        return table.loc[ids]

    def _units(self, ids: Any) -> tuple[np.ndarray, SpikeTrains]:
        trains = self.spike_trains
        if ids is None:
            if self.unit_filter is None:
                return trains.unit_ids, trains
            ids = self.units.index.to_numpy()
        ids = np.atleast_1d(np.asarray(ids))
        missing = [u for u in ids.tolist() if u not in self._unit_positions]
        if missing:
            raise AlignmentError(f"session {self.ecephys_session_id}: no unit {_choices(missing, 5)}; "
                                 f"{len(self._unit_positions)} units, e.g. {_choices(list(self._unit_positions), 3)}")
        positions = np.array([self._unit_positions[int(u)] for u in ids], dtype=np.int64)
        if np.array_equal(positions, np.arange(trains.n_units)):
            return trains.unit_ids, trains
        return ids.astype(np.int64), trains.select(positions)

    # ------------------------------------------------------------------ AllenSDK's methods
    def presentationwise_spike_counts(self, bin_edges: Sequence[float], stimulus_presentation_ids: Any = None,
                                      unit_ids: Any = None, binarize: bool = False, dtype: Any = None,
                                      large_bin_size_threshold: float = 0.001,
                                      time_domain_callback: Callable[[np.ndarray], np.ndarray] | None = None
                                      ) -> "xr.DataArray":
        """Spike counts per presentation, bin and unit.

        Parameters
        ----------
        bin_edges : array of float
            Edges relative to each onset (s), strictly increasing. Bin ``k`` of
            presentation ``i`` is ``[start_i + e_k, start_i + e_{k+1})``.
        stimulus_presentation_ids, unit_ids : array of int, optional
            Default: all, in table order.
        binarize : bool
            1 where a bin holds any spike.
        dtype : numpy dtype, optional
            Default uint16 (uint8 with ``binarize``), widened where a count needs more.
        large_bin_size_threshold : float
            With ``binarize``, warn when a bin is wider than this (s), as AllenSDK does.
        time_domain_callback : callable, optional
            Takes the presentations × edges array of absolute bin edges (s) and returns
            the edges to count in (same shape; each row increasing), as AllenSDK's does.

        Returns
        -------
        xarray.DataArray
            ``spike_counts``, dims (``stimulus_presentation_id``,
            ``time_relative_to_stimulus_onset``, ``unit_id``); the time coordinate holds
            the bin centres (s).
        """
        import xarray as xr

        try:
            edges = check_edges(bin_edges)
        except ValueError as exc:
            raise AlignmentError(f"bin_edges: {exc}") from None
        if binarize and np.diff(edges).max() > large_bin_size_threshold:
            warnings.warn(f"binarized spike counts in bins up to {np.diff(edges).max():.5f} s wide lose spikes; "
                          f"binarize bins of at most {large_bin_size_threshold} s", stacklevel=2)
        pres = self._presentations(stimulus_presentation_ids)
        ids, trains = self._units(unit_ids)
        kind = np.dtype(dtype or np.uint16)
        if time_domain_callback is None:
            counts = aligned_counts(trains, pres["start_time"].to_numpy(), edges, dtype=kind)
        else:
            domain = np.asarray(time_domain_callback(pres["start_time"].to_numpy()[:, None] + edges[None, :]))
            if domain.shape != (len(pres), len(edges)) or (np.diff(domain, axis=1) < 0).any():
                raise AlignmentError(f"time_domain_callback must return a {len(pres)} × {len(edges)} array of "
                                     f"increasing edges per row")
            counts = domain_counts(trains, domain, dtype=kind)
        if binarize:
            counts = (counts > 0).astype(np.dtype(dtype or np.uint8))
        return xr.DataArray(counts, name="spike_counts",
                            dims=("stimulus_presentation_id", "time_relative_to_stimulus_onset", "unit_id"),
                            coords={"stimulus_presentation_id": pres.index.to_numpy(),
                                    "time_relative_to_stimulus_onset": edges[:-1] + np.diff(edges) / 2,
                                    "unit_id": ids})

    def presentationwise_spike_times(self, stimulus_presentation_ids: Any = None, unit_ids: Any = None) -> pd.DataFrame:
        """Every spike inside a presentation's ``[start_time, stop_time)``.

        Returns
        -------
        DataFrame
            Indexed by ``spike_time`` (s, sorted), columns ``stimulus_presentation_id``,
            ``unit_id``, ``time_since_stimulus_presentation_onset`` (s). A spike in two
            overlapping presentations appears once for each.
        """
        pres = self._presentations(stimulus_presentation_ids)
        ids, trains = self._units(unit_ids)
        found = aligned_spike_times(trains, pres["start_time"].to_numpy(), pres["stop_time"].to_numpy())
        return pd.DataFrame({"stimulus_presentation_id": pres.index.to_numpy()[found.presentation],
                             "unit_id": ids[found.unit],
                             "time_since_stimulus_presentation_onset": found.relative},
                            index=pd.Index(found.spike_time, name="spike_time"))

    def conditionwise_spike_statistics(self, stimulus_presentation_ids: Any = None, unit_ids: Any = None,
                                       use_rates: bool = False) -> pd.DataFrame:
        """Spike-count statistics per unit and stimulus condition.

        Counts each presentation's spikes in ``[start_time, stop_time)`` (0 when there
        are none). Presentations in invalid intervals are left out, as AllenSDK does
        (their condition is masked there).

        Returns
        -------
        DataFrame
            Indexed by (``unit_id``, ``stimulus_condition_id``): ``spike_count``,
            ``stimulus_presentation_count``, ``spike_mean``, ``spike_std`` (ddof 1),
            ``spike_sem``; with ``use_rates``, the mean, std and sem of the rate (Hz)
            and no ``spike_count``.
        """
        pres = self._presentations(stimulus_presentation_ids)
        pres = pres[~pres["is_invalid"].to_numpy(dtype=bool)]
        ids, trains = self._units(unit_ids)
        counts = window_counts(trains, pres["start_time"].to_numpy(), pres["stop_time"].to_numpy())
        if not use_rates:
            return condition_statistics(counts, pres["stimulus_condition_id"].to_numpy(), ids)
        rates = counts / pres["duration"].to_numpy()[:, None]
        return _rate_statistics(rates, pres["stimulus_condition_id"].to_numpy(), ids)

    def presentationwise_running_speed(self, stimulus_presentation_ids: Any = None) -> pd.DataFrame:
        """Mean running speed over each presentation's ``[start_time, stop_time)``.

        Returns
        -------
        DataFrame
            Indexed by ``stimulus_presentation_id``; ``velocity`` (cm/s): each running
            sample weighs by its overlap with the window; NaN where none overlaps.
        """
        pres = self._presentations(stimulus_presentation_ids)
        run = self.running_speed
        v = interval_means(run["start_time"].to_numpy(), run["end_time"].to_numpy(), run["velocity"].to_numpy(),
                           pres["start_time"].to_numpy(), pres["stop_time"].to_numpy())
        return pd.DataFrame({"velocity": v}, index=pres.index)

    def presentationwise_rates(self, window: tuple[float, float], stimulus_presentation_ids: Any = None,
                               unit_ids: Any = None, **kernel: Any) -> "xr.DataArray":
        """Smoothed firing rates (Hz) around each onset, from the stored counts.

        Parameters
        ----------
        window : (float, float)
            Start and stop relative to onset (s).
        stimulus_presentation_ids, unit_ids : array of int, optional
        **kernel
            ``sigma_bins``, ``sigma_ms``, ``taps``, ``bin_size``, ``edge_correction``, as
            :func:`spikeprep.open_rates`.

        Returns
        -------
        xarray.DataArray
            float32, dims (``stimulus_presentation_id``, ``time_relative_to_stimulus_onset``,
            ``unit_id``). Value ``k`` of presentation ``i`` is the rate of the grid bin
            holding ``start_i + window[0] + k·Δ``, so it lies up to one bin (Δ, 5 ms by
            default) before its nominal time, the coordinate ``window[0] + k·Δ``.
        """
        import xarray as xr

        rates = open_rates(self.folder.out, self.ecephys_session_id, **kernel)
        pres = self._presentations(stimulus_presentation_ids)
        ids, _ = self._units(unit_ids)
        delta = float(rates.attrs["bin_size_s"])
        t0, n_grid = float(rates.attrs["t_start"]), rates.sizes["time"]
        n = int(round((window[1] - window[0]) / delta))
        if n < 1:
            raise AlignmentError(f"window {window}: stop must be at least one bin ({delta} s) after start")
        first = np.floor((pres["start_time"].to_numpy() + window[0] - t0) / delta).astype(np.int64)
        columns = np.array([self._unit_positions[int(u)] for u in ids], dtype=np.int64)
        out = np.zeros((len(pres), n, len(ids)), dtype=np.float32)
        idx = first[:, None] + np.arange(n)
        inside = (idx >= 0) & (idx < n_grid)
        lo, hi = int(max(idx.min(initial=0), 0)), int(min(idx.max(initial=0) + 1, n_grid))
        for a in range(0, len(columns), 64):
            cols = columns[a : a + 64]
            span = rates.isel(time=slice(lo, hi), unit_id=cols).values if hi > lo else np.zeros((0, len(cols)))
            out[:, :, a : a + 64][inside] = span[idx[inside] - lo]
        return xr.DataArray(out, name="rates", attrs={"units": "Hz", **rates.attrs},
                            dims=("stimulus_presentation_id", "time_relative_to_stimulus_onset", "unit_id"),
                            coords={"stimulus_presentation_id": pres.index.to_numpy(),
                                    "time_relative_to_stimulus_onset": window[0] + np.arange(n) * delta,
                                    "unit_id": ids})


def _rate_statistics(rates: np.ndarray, conditions: np.ndarray, unit_ids: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame(rates, columns=pd.Index(unit_ids, name="unit_id"))
    df["stimulus_condition_id"] = conditions
    long = df.melt(id_vars="stimulus_condition_id", value_name="rate")
    g = long.groupby(["stimulus_condition_id", "unit_id"])["rate"]
    stats = pd.DataFrame({"stimulus_presentation_count": g.size(), "spike_mean": g.mean(), "spike_std": g.std(ddof=1),
                          "spike_sem": g.sem(ddof=1)})
    return stats.reorder_levels(["unit_id", "stimulus_condition_id"])


def open_session(out: str | Path, session_id: int) -> ExportedSession:
    """An exported session with AllenSDK's ``EcephysSession`` read API (see :class:`ExportedSession`).

    Examples
    --------
    >>> session = spikeprep.open_session("OUT", 715093703)
    >>> scenes = session.stimulus_presentations
    >>> ids = scenes[scenes["stimulus_name"] == "natural_scenes"].index
    >>> counts = session.presentationwise_spike_counts(np.arange(-0.05, 0.3, 0.005), ids, session.units.index)
    >>> stats = session.conditionwise_spike_statistics(ids)
    """
    return ExportedSession(out, session_id)
