"""AllenSDK's session-level names over an exported folder: metadata, probes and
channels as AllenSDK shows them, structures, optotagging, eye tracking.

A mixin of :class:`~spikeprep.analysis.session.ExportedSession`; it reads
``session.json`` and the folder's tables through the session's ``record`` and ``_open``.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import SpikeprepError
from ..export.layout import SessionRecord

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["SessionInfo", "value_intervals", "as_object_text"]

_PROBE_COLUMNS = ["description", "location", "sampling_rate", "lfp_sampling_rate", "has_lfp_data"]
_CHANNEL_RENAMES = {"local_index": "probe_channel_number", "region": "structure_acronym"}


def as_object_text(table: pd.DataFrame) -> pd.DataFrame:
    """Text columns as ``object``, the dtype AllenSDK's tables have (pandas 3 reads "str")."""
    text = [c for c in table.columns if pd.api.types.is_string_dtype(table[c]) and table[c].dtype != object]
    return table.astype({c: object for c in text}) if text else table


def value_intervals(values: Sequence[Any]) -> np.ndarray:
    """Bounds of the runs of equal consecutive values (AllenSDK's ``nan_intervals``):
    ``[0, …, len]``, one longer than the number of runs; NaN (and None) equal each other."""
    codes, _ = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return np.concatenate([[0], change, [len(codes)]]).astype(np.int64)


class SessionInfo:
    """Metadata, probes, channels, structures, optotagging and eye tracking."""

    record: SessionRecord
    ecephys_session_id: int
    unit_filter: Any
    units: pd.DataFrame

    def _open(self, name: str) -> Any:  # provided by ExportedSession
        raise NotImplementedError

    # ------------------------------------------------------------------ metadata
    @property
    def _meta(self) -> dict[str, Any]:
        return self.record.metadata or {}

    @property
    def specimen_name(self) -> str | None:
        return self._meta.get("specimen_name")

    @property
    def age_in_days(self) -> float | None:
        return self._meta.get("age_in_days")

    @property
    def sex(self) -> str | None:
        return self._meta.get("sex")

    @property
    def full_genotype(self) -> str | None:
        return self._meta.get("full_genotype")

    @property
    def session_type(self) -> str | None:
        return self._meta.get("stimulus_name") or self.record.session_type

    @property
    def session_start_time(self) -> datetime | None:
        text = self._meta.get("session_start_time")
        return datetime.fromisoformat(text) if text else None

    @property
    def rig_equipment_name(self) -> str | None:
        return self._meta.get("rig", {}).get("equipment")

    @property
    def rig_geometry_data(self) -> pd.DataFrame | None:
        """Positions (mm) and rotations (deg) of monitor, camera and LED, rows x, y, z;
        None when the file has no rig metadata."""
        geometry = self._meta.get("rig", {}).get("geometry")
        if not geometry:
            return None
        return pd.DataFrame(geometry, index=["x", "y", "z"], dtype=np.float64)

    @property
    def num_units(self) -> int:
        return len(self.units)

    @property
    def num_probes(self) -> int:
        return len(self.probes)

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    @property
    def num_stimulus_presentations(self) -> int:
        return len(self.stimulus_presentations)

    @property
    def structure_acronyms(self) -> list[str | None]:
        """Structures of the channels in order of first appearance (None outside the brain)."""
        values = pd.unique(self.channels["ecephys_structure_acronym"].to_numpy(dtype=object))
        return [None if pd.isna(v) else v for v in values]

    @property
    def structurewise_unit_counts(self) -> pd.Series:
        """Units per structure, most first; ties in order of first appearance along the
        units as AllenSDK orders them (by probe, then position on the probe)."""
        order = ["probe_description", "probe_vertical_position", "probe_horizontal_position"]
        units = self.units.sort_values(order, kind="stable") if set(order) <= set(self.units.columns) else self.units
        counts = units["ecephys_structure_acronym"].value_counts(sort=False)
        counts = counts.sort_values(ascending=False, kind="stable")
        return pd.Series(counts.to_numpy(dtype=np.int64), index=pd.Index(counts.index.to_numpy(dtype=object)),
                         name="ecephys_structure_acronym")

    @property
    def metadata(self) -> dict[str, Any]:
        """AllenSDK's ``metadata`` dict (subject, session, rig, counts, structures, stimuli)."""
        return {"specimen_name": self.specimen_name, "session_type": self.session_type,
                "full_genotype": self.full_genotype, "sex": self.sex, "age_in_days": self.age_in_days,
                "rig_equipment_name": self.rig_equipment_name, "num_units": self.num_units,
                "num_channels": self.num_channels, "num_probes": self.num_probes,
                "num_stimulus_presentations": self.num_stimulus_presentations,
                "session_start_time": self.session_start_time, "ecephys_session_id": self.ecephys_session_id,
                "structure_acronyms": self.structure_acronyms, "stimulus_names": self.stimulus_names}

    # ------------------------------------------------------------------ probes and channels
    @cached_property
    def probe_table(self) -> pd.DataFrame:
        """``probes.parquet`` as exported, indexed by ``probe_id``."""
        return self._open("probes").set_index("probe_id")

    @cached_property
    def channel_table(self) -> pd.DataFrame:
        """``channels.parquet`` as exported, indexed by ``channel_id``."""
        return self._open("channels").set_index("channel_id")

    @cached_property
    def probes(self) -> pd.DataFrame:
        """AllenSDK's probes: index ``id``; ``description`` (probeA…), ``location``,
        ``sampling_rate`` and ``lfp_sampling_rate`` (Hz), ``has_lfp_data``."""
        table = self.probe_table.rename(columns={"name": "description"})
        table.index.name = "id"
        return as_object_text(table[_PROBE_COLUMNS])

    @cached_property
    def channels(self) -> pd.DataFrame:
        """AllenSDK's channels: index ``id``; CCF coordinates (µm), ``filtering``,
        ``probe_channel_number``, positions on the probe (µm), ``probe_id``,
        ``structure_acronym``, ``valid_data``, and the names AllenSDK gives them for the
        released files: ``ecephys_structure_acronym``, ``ecephys_structure_id``."""
        table = self.channel_table.rename(columns=_CHANNEL_RENAMES)
        table.index.name = "id"
        # columns the file did not have (all null) are left out, as AllenSDK shows the file's columns
        absent = {c for c in ("structure_id", "filtering") if table[c].isna().all()}
        table = table[sorted(c for c in table.columns if c not in {"probe_name", *absent})]
        table["ecephys_structure_acronym"] = table["structure_acronym"]
        table["ecephys_structure_id"] = self.channel_table["structure_id"].to_numpy()
        if self.unit_filter is not None:
            table = table[self.unit_filter.channels(table)]
        return as_object_text(table)

    def channel_structure_intervals(self, channel_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Runs of channels in one structure, along ``channel_ids`` as given.

        Returns
        -------
        labels : ndarray
            The structure acronym of each run (None outside the brain).
        intervals : ndarray of int
            Run bounds as positions in ``channel_ids``, one longer than ``labels``.

        Runs are told apart by structure id where the file has them, by acronym otherwise
        (AllenSDK reads ids that files written by its own writer lack, and raises).
        """
        ids = np.asarray(channel_ids, dtype=np.int64).ravel()
        rows = self.channels.index.get_indexer(ids)
        if (rows < 0).any():
            unknown = ids[rows < 0]
            raise SpikeprepError(f"session {self.ecephys_session_id}: no channel {unknown[:5].tolist()} "
                                 f"({len(unknown)} of {len(ids)} channel ids are not this session's)")
        if len(np.unique(self.channels["probe_id"].to_numpy()[rows])) > 1:
            warnings.warn("Calculating structure boundaries across channels from multiple probes.", stacklevel=2)
        acronyms = self.channels["ecephys_structure_acronym"].to_numpy(dtype=object)[rows]
        ids_of = self.channels["ecephys_structure_id"].to_numpy(dtype=np.float64)[rows]
        intervals = value_intervals(acronyms if np.isnan(ids_of).all() else ids_of)
        labels = acronyms[intervals[:-1]]
        return np.array([None if pd.isna(v) else v for v in labels], dtype=object), intervals

    # ------------------------------------------------------------------ optional parts
    @cached_property
    def optogenetic_stimulation_epochs(self) -> pd.DataFrame:
        """The light pulses, index ``id``: ``start_time``, ``stop_time``, ``duration`` (s),
        ``condition``, ``level``, ``stimulus_name``; empty when not optotagged."""
        table = self._open("optotagging").set_index("id").drop(columns=["session_id"], errors="ignore")
        return table.astype({c: object for c in ("condition", "stimulus_name")})

    @cached_property
    def _eye_tracking(self) -> pd.DataFrame:
        table = self._open("eye_tracking").drop(columns=["session_id"], errors="ignore")
        return table.set_index(pd.Index(table.pop("time").to_numpy(), name="Time (s)"))

    def _eye_columns(self, columns: list[str]) -> pd.DataFrame | None:
        if self._eye_tracking.empty:
            warnings.warn(f"session {self.ecephys_session_id} has no eye tracking data", stacklevel=3)
            return None
        return self._eye_tracking[columns]

    def get_pupil_data(self) -> pd.DataFrame | None:
        """Ellipse fits per eye-tracking frame, index ``Time (s)``: ``*_center_x``,
        ``*_center_y``, ``*_height``, ``*_width`` (px, full axes), ``*_phi`` (rad) of the
        corneal reflection, pupil and eye. None (with a warning) without eye tracking."""
        return self._eye_columns([c for c in self._eye_tracking.columns if not c.startswith(("raw_", "filtered_"))])

    def get_screen_gaze_data(self, include_filtered_data: bool = False) -> pd.DataFrame | None:
        """Gaze on the screen per eye-tracking frame, index ``Time (s)``: ``raw_eye_area``,
        ``raw_pupil_area`` (px²), ``raw_screen_coordinates_{x,y}_cm``,
        ``raw_screen_coordinates_spherical_{x,y}_deg``, and the ``filtered_*`` ones (NaN where
        filtered out) when asked. None (with a warning) without eye tracking."""
        prefixes = ("raw_", "filtered_") if include_filtered_data else ("raw_",)
        return self._eye_columns([c for c in self._eye_tracking.columns if c.startswith(prefixes)])

    def get_invalid_times(self) -> pd.DataFrame:
        """Invalid intervals: ``start_time``, ``stop_time`` (s), ``tags`` (scope, id, label)."""
        return self.invalid_times

    # ------------------------------------------------------------------ opt-in outputs
    def _opt_in(self, name: str, flag: str) -> Any:
        if not self.record.params.get(flag.strip("-")):
            raise SpikeprepError(f"session {self.ecephys_session_id}: {name} were not exported; export the session "
                                 f"again with {flag}")
        return self._open(name)

    @cached_property
    def spike_amplitudes(self) -> dict[int, np.ndarray]:
        """``unit_id`` → every spike's amplitude as the file holds it (float64, file
        order). Needs an export with ``--amplitudes``."""
        table = self._opt_in("spike_amplitudes", "--amplitudes")
        ids = table["unit_id"].to_numpy()
        values = table["amplitude"].to_numpy(dtype=np.float64)
        bounds = np.flatnonzero(np.diff(ids)) + 1
        found = {int(u): a for u, a in zip(ids[np.concatenate([[0], bounds])] if len(ids) else [],
                                           np.split(values, bounds))}
        return {int(u): found.get(int(u), np.empty(0)) for u in self.units.index}

    @cached_property
    def mean_waveforms(self) -> dict[int, "xr.DataArray"]:
        """``unit_id`` → mean waveform, float32 ``channel_id`` × ``time`` (s from the
        first sample, at the probe's sampling rate), as AllenSDK builds it: row ``i`` of a
        unit is the channel numbered ``i`` on its probe; rows without such a channel are
        left out. Needs an export with ``--waveforms``."""
        import xarray as xr

        root = self._opt_in("mean_waveforms", "--waveforms")
        data, offsets, ids = root["waveform_mean"][:], root["offsets"][:], root["unit_id"][:]
        channels = self.channel_table
        lookup = {(int(p), int(n)): int(c)
                  for c, p, n in zip(channels.index, channels["probe_id"], channels["local_index"])}
        probe_of = self.units["probe_id"].astype(np.int64).to_dict()
        rate = self.probe_table["sampling_rate"].to_dict()
        out, templates = {}, {}  # units of one probe share their coordinates: copy a template (6x faster)
        for k, uid in enumerate(ids.tolist()):
            rows = data[offsets[k] : offsets[k + 1]]
            pid = probe_of[uid]
            if (pid, len(rows)) not in templates:
                channel = np.array([lookup.get((pid, i), -1) for i in range(len(rows))], dtype=np.int64)
                keep = channel != -1
                templates[pid, len(rows)] = keep, xr.DataArray(
                    rows[keep], dims=("channel_id", "time"),
                    coords={"channel_id": channel[keep], "time": np.arange(rows.shape[1]) / rate[pid]})
            keep, template = templates[pid, len(rows)]
            out[uid] = template.copy(deep=False, data=rows if keep.all() else rows[keep])  # a view when whole
        return out
