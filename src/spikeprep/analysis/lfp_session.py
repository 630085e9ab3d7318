"""``get_lfp``, ``get_current_source_density`` and ``presentationwise_lfp`` for a
session view: the probe files are found beside the session's source (AllenSDK's cache
layout, or the bucket for a streamed session) and read a window at a time.

A mixin of :class:`~spikeprep.analysis.session.ExportedSession`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..core.errors import AlignmentError, SpikeprepError
from ..io.lfp import LfpFile, lfp_file_name
from ..io.source import is_url

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["LfpViews", "lfp_locations"]


def lfp_locations(session_location: str, probe_id: int) -> list[str]:
    """Where a probe's LFP file may be, given the session file's path or URL: beside it,
    as ``probe_<pid>_lfp.nwb`` (the bucket and AllenSDK's cache) or
    ``<session stem>_probe_<pid>_lfp.nwb``."""
    name = lfp_file_name(probe_id)
    if is_url(session_location):
        return [session_location.rsplit("/", 1)[0] + "/" + name]
    path = Path(session_location)
    return [str(path.with_name(name)), str(path.with_name(f"{path.stem}_{name}"))]


def xr_mask(bad: np.ndarray, lfp: "xr.DataArray") -> "xr.DataArray":
    import xarray as xr

    return xr.DataArray(bad, dims=("time",), coords={"time": lfp["time"]})


class LfpViews:
    """The probe LFP files of a session, opened once each.

    Attributes
    ----------
    lfp_cache : path, optional
        Block cache of streamed probe files (default ``~/.cache/spikeprep``).
    """

    lfp_cache: Path | None = None
    ecephys_session_id: int
    record: Any
    folder: Any
    probe_table: pd.DataFrame
    channel_table: pd.DataFrame
    invalid_times: pd.DataFrame

    def set_lfp_path(self, probe_id: int, location: str | Path) -> None:
        """Read probe ``probe_id``'s LFP from ``location`` (a path or URL) instead of
        looking beside the session file (AllenSDK's ``probe_lfp_paths``)."""
        self.__dict__.setdefault("_lfp_paths", {})[int(probe_id)] = str(location)
        self.__dict__.setdefault("_lfp_files", {}).pop(int(probe_id), None)

    def _probe_name(self, probe_id: int) -> str:
        if int(probe_id) not in self.probe_table.index:
            raise SpikeprepError(f"session {self.ecephys_session_id}: no probe {probe_id}; its probes are "
                                 f"{', '.join(map(str, self.probe_table.index))}")
        return str(self.probe_table.loc[int(probe_id), "name"])

    def lfp_file(self, probe_id: int) -> LfpFile:
        """The open LFP file of a probe (local, or streamed through the block cache).

        Raises
        ------
        SpikeprepError
            No such probe, a probe without LFP, or no file where it should be (one line
            naming the session, the probe and where it looked).
        """
        from ..io.resolve import open_source

        probe_id = int(probe_id)
        name = self._probe_name(probe_id)
        files = self.__dict__.setdefault("_lfp_files", {})
        if probe_id in files:
            return files[probe_id]
        given = self.__dict__.get("_lfp_paths", {}).get(probe_id)
        source = self.record.source.location if self.record.source else ""
        places = [given] if given else lfp_locations(source, probe_id)
        if not given and not bool(self.probe_table.loc[probe_id, "has_lfp_data"]):
            raise SpikeprepError(f"session {self.ecephys_session_id}: probe {probe_id} ({name}) has no LFP data")
        for place in places:
            if is_url(place) or Path(place).exists():
                try:
                    files[probe_id] = LfpFile(open_source(place, self.lfp_cache), probe_id)
                except SpikeprepError as exc:
                    raise SpikeprepError(f"session {self.ecephys_session_id}: probe {probe_id} ({name}): {exc}") from exc
                return files[probe_id]
        raise SpikeprepError(f"session {self.ecephys_session_id}: no LFP file for probe {probe_id} ({name}); "
                             f"looked for {' and '.join(places)}")

    def _lfp_intervals(self, probe_id: int, mask_invalid_intervals: bool) -> np.ndarray | None:
        from .lfp import invalid_intervals

        if not mask_invalid_intervals:
            return None
        return invalid_intervals(self.invalid_times, self._probe_name(probe_id))

    def get_lfp(self, probe_id: int, mask_invalid_intervals: bool = True) -> "xr.DataArray":
        """The probe's LFP, lazy: ``LFP``, ``time`` (s) × ``channel`` (electrode id), in
        the file's unit (volts). Selecting a window (``.sel(time=slice(a, b))``) or
        channels reads only those; invalid intervals are NaN, as AllenSDK masks them."""
        from .lfp import in_intervals, lfp_array

        copy = self._lfp_copy(probe_id)
        if copy is not None:  # spikeprep lfp wrote it into the folder
            intervals = self._lfp_intervals(probe_id, mask_invalid_intervals)
            lfp = copy[0]
            if intervals is None or not len(intervals):
                return lfp
            return lfp.where(~xr_mask(in_intervals(lfp["time"].values, intervals), lfp))
        return lfp_array(self.lfp_file(probe_id), self._lfp_intervals(probe_id, mask_invalid_intervals))

    def _lfp_copy(self, probe_id: int) -> "tuple[xr.DataArray, xr.DataArray] | None":
        from .lfp_store import open_lfp_store

        self._probe_name(probe_id)
        path = self.folder.lfp_store(probe_id)
        return open_lfp_store(path) if path.exists() else None

    def get_current_source_density(self, probe_id: int) -> "xr.DataArray":
        """The probe's CSD as AllenSDK returns it: ``CSD``, ``virtual_channel_index`` ×
        ``time`` (s from flash onset), with ``vertical_position`` and
        ``horizontal_position`` (µm)."""
        from .lfp import csd_array

        copy = self._lfp_copy(probe_id)
        return copy[1] if copy is not None else csd_array(self.lfp_file(probe_id).csd())

    def presentationwise_lfp(self, stimulus_presentation_ids: Any, window: tuple[float, float],
                             channel_ids: Any = None, probe_id: int | None = None,
                             mask_invalid_intervals: bool = True) -> "xr.DataArray":
        """The LFP around each presentation's onset (not in AllenSDK).

        Parameters
        ----------
        stimulus_presentation_ids : array of int
        window : (float, float)
            Start and stop relative to onset (s), half-open: ``n = round((stop − start)
            · rate)`` samples at ``start + k / rate``.
        channel_ids : array of int, optional
            LFP channels (default: every channel of ``probe_id``), in the order given.
        probe_id : int, optional
            Needed when ``channel_ids`` is not given; else the channels' probe.

        Returns
        -------
        xarray.DataArray
            float32 ``presentation_lfp``, (``stimulus_presentation_id``,
            ``time_from_presentation_onset``, ``channel``): each value is the sample
            nearest the nominal time (no interpolation: every value is a recorded one);
            NaN outside the file and in invalid intervals.
        """
        import xarray as xr

        from .lfp import in_intervals, window_rows

        probe_id = self._lfp_probe(channel_ids, probe_id)
        lfp = self.lfp_file(probe_id)
        ids = lfp.channel_ids()
        columns = np.arange(len(ids)) if channel_ids is None else self._lfp_columns(ids, channel_ids, probe_id)
        pres = self._presentations(stimulus_presentation_ids)
        rate = float(self.probe_table.loc[probe_id, "lfp_sampling_rate"])
        rows, offsets = window_rows(lfp.times, pres["start_time"].to_numpy(), window, rate)
        out = np.full((len(pres), len(offsets), len(columns)), np.nan, dtype=np.float32)
        intervals = self._lfp_intervals(probe_id, mask_invalid_intervals)
        for i, r in enumerate(rows):
            ok = r >= 0
            if not ok.any():
                continue
            lo, hi = int(r[ok].min()), int(r[ok].max()) + 1
            block = lfp.read(slice(lo, hi))
            out[i, ok] = block[r[ok] - lo][:, columns]
            if intervals is not None and len(intervals):
                bad = in_intervals(lfp.times.read(lo, hi)[r[ok] - lo], intervals)
                out[i, np.flatnonzero(ok)[bad]] = np.nan
        return xr.DataArray(out, name="presentation_lfp",
                            dims=("stimulus_presentation_id", "time_from_presentation_onset", "channel"),
                            coords={"stimulus_presentation_id": pres.index.to_numpy(),
                                    "time_from_presentation_onset": offsets, "channel": ids[columns]},
                            attrs={"units": lfp.unit, "probe_id": probe_id, "lfp_sampling_rate_hz": rate})

    def _lfp_probe(self, channel_ids: Any, probe_id: int | None) -> int:
        if channel_ids is None:
            if probe_id is None:
                raise AlignmentError(f"session {self.ecephys_session_id}: give probe_id or channel_ids")
            return int(probe_id)
        ids = np.atleast_1d(np.asarray(channel_ids, dtype=np.int64))
        rows = self.channel_table.index.get_indexer(ids)
        if (rows < 0).any():
            raise AlignmentError(f"session {self.ecephys_session_id}: no channel {ids[rows < 0][:5].tolist()}")
        probes = np.unique(self.channel_table["probe_id"].to_numpy()[rows])
        if len(probes) != 1 or (probe_id is not None and int(probes[0]) != int(probe_id)):
            raise AlignmentError(f"session {self.ecephys_session_id}: channels of probes {probes.tolist()}; "
                                 f"give the channels of one probe")
        return int(probes[0])

    def _lfp_columns(self, ids: np.ndarray, channel_ids: Any, probe_id: int) -> np.ndarray:
        wanted = np.atleast_1d(np.asarray(channel_ids, dtype=np.int64))
        where = pd.Index(ids).get_indexer(wanted)
        if (where < 0).any():
            raise AlignmentError(f"session {self.ecephys_session_id}: probe {probe_id} has no LFP on channel "
                                 f"{wanted[where < 0][:5].tolist()} (the LFP holds {len(ids)} of its channels)")
        return where
