"""Read one Allen Visual Coding – Neuropixels session NWB file with h5py.

Handles the three layouts in circulation (Oct 2019, June 2020 release, AllenSDK ≥ 2.13
writer) and a few tolerated fallback names. Reads only what is needed: never
``spike_amplitudes`` nor ``waveform_mean``. Every problem with the file raises
:class:`~spikeprep.errors.NWBFormatError` naming the file.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
import pandas as pd

from .errors import NWBFormatError
from .session import RaggedIndex, SelectedSpikes, Session, SpikeTrains, unit_blocks
from .remote import as_source
from .source import Source
from .stimulus import BASE_COLUMNS, add_conditions, parameter_columns, split_color, unify_parameter

__all__ = ["read_session", "streamed_session", "SpikeReader", "peek_session_id", "detect_layout", "ALLEN_QC_COLUMNS", "CCF_COLUMNS"]

log = logging.getLogger(__name__)

ELECTRODES = "general/extracellular_ephys/electrodes"
CCF_COLUMNS = {"x": "anterior_posterior_ccf_coordinate", "y": "dorsal_ventral_ccf_coordinate",
               "z": "left_right_ccf_coordinate"}
ALLEN_QC_COLUMNS = ("quality", "amplitude_cutoff", "presence_ratio", "isi_violations")
_RAGGED_SKIP = {"spike_times", "spike_amplitudes", "waveform_mean", "id"}
_INTERVAL_SKIP = {"id", "tags", "timeseries"}
_OUT_OF_BRAIN = {"None", "", "none", "nan", "null"}
_CHUNK = 1 << 23  # spikes checked per step: bounds the temporaries to ~64 MB


@contextmanager
def _problems(path: str, what: str) -> Iterator[None]:
    """Turn h5py/numpy failures while reading ``what`` into one-line NWBFormatErrors."""
    try:
        yield
    except NWBFormatError:
        raise
    except KeyError as exc:
        raise NWBFormatError(path, f"{what}: missing {exc.args[0] if exc.args else 'object'}") from exc
    except (OSError, ValueError, TypeError, IndexError, RuntimeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NWBFormatError(path, f"{what}: {msg}") from exc


def read_session(path: str | Path | Source) -> Session:
    """Read one session NWB file into a :class:`~spikeprep.session.Session`.

    Parameters
    ----------
    path : str, Path or Source
        A session NWB file (any of the three Allen layouts).

    Returns
    -------
    Session

    Raises
    ------
    NWBFormatError
        The file is not HDF5, is truncated, lacks a required table, or holds
        inconsistent data. The message names the file and the problem.
    """
    source = as_source(path)
    with _open_h5(source) as f:
        return _read(f, source, streamed=False)


@contextmanager
def streamed_session(path: str | Path | Source) -> Iterator[Session]:
    """The session of a file with its spike times left in the file: ``spikes`` is a
    :class:`SpikeReader` that reads one block of units at a time, valid inside the
    ``with`` block. Everything else is as :func:`read_session` reads it.

    Examples
    --------
    >>> with streamed_session("session_715093703.nwb") as session:  # doctest: +SKIP
    ...     write_counts(session.spikes, "binned.zarr", make_grid(session.spikes))
    """
    source = as_source(path)
    with _open_h5(source) as f:
        yield _read(f, source, streamed=True)


def _read(f: h5py.File, source: Source, streamed: bool) -> Session:
    path = source.location
    notes: list[str] = []
    with _problems(path, "layout"):
        layout = detect_layout(f)
    with _problems(path, "electrodes table"):
        probes = _read_probes(f)
        channels = _read_channels(f, path, probes)
    with _problems(path, "units table"):
        units, index = _read_units(f, path)
    if streamed:
        spikes: SpikeTrains | SpikeReader = SpikeReader(source, _open=(f, units.index.to_numpy(), index))
        notes += spikes.notes
    else:
        with _problems(path, "units/spike_times"):
            spikes = _read_spikes(f, path, units.index.to_numpy(), index, notes)
    units = _join_channels(units, channels, path)
    with _problems(path, "invalid_times"):
        invalid = _read_invalid_times(f)
    with _problems(path, "stimulus tables"):
        stimulus = _read_stimulus(f, path, invalid)
    with _problems(path, "running speed"):
        running = _read_running(f)
    with _problems(path, "session metadata"):
        meta = _read_metadata(f, source)
    meta.update(layout=layout, n_units=len(units), n_spikes=int(spikes.offsets[-1]), read_warnings=notes)
    return Session(
        session_id=meta["session_id"], units=units, spikes=spikes, channels=channels, probes=probes,
        stimulus=stimulus, running=running, invalid_times=invalid, metadata=meta,
    )


def peek_session_id(path: str | Path | Source) -> int:
    """The session id of a file, reading only its metadata (for locks and skips).

    Raises
    ------
    NWBFormatError
        The file cannot be opened or names no session id.
    """
    source = as_source(path)
    with _open_h5(source) as f, _problems(source.location, "session id"):
        return _session_id(f, source.location)


def _open_h5(source: Source) -> h5py.File:
    """Open a session file read-only; a missing or unreadable file is an NWBFormatError."""
    target = source.open()
    try:
        return h5py.File(target, "r")
    except OSError as exc:
        raise NWBFormatError(source.location, f"not a readable HDF5 file (truncated or corrupt?): "
                                              f"{str(exc).splitlines()[0]}") from exc


def _session_id(f: h5py.File, path: str) -> int:
    raw = _scalar(f, "general/session_id") or _scalar(f, "identifier")
    try:
        return int(str(raw).strip())
    except (TypeError, ValueError):
        digits = "".join(ch for ch in Path(path).stem if ch.isdigit())
        if not digits:
            raise NWBFormatError(path, "no session id in /general/session_id, /identifier or the file name") from None
        return int(digits)


def detect_layout(f: h5py.File) -> str:
    """Name the layout variant: ``"2019"``, ``"2020"`` or ``"sdk"``.

    Parameters
    ----------
    f : h5py.File
        An open session file.
    """
    e = f[ELECTRODES]
    ts = f.get("processing/running/running_speed/timestamps")
    if "manual_structure_acronym" in e or (ts is not None and ts.ndim == 2):
        return "2019"
    if "probe_channel_number" in e:
        return "sdk"
    return "2020"


# ----------------------------------------------------------------------------- helpers
def _column(ds: h5py.Dataset) -> np.ndarray:
    """A 1-D dataset as numpy, strings decoded to ``str`` objects."""
    if h5py.check_string_dtype(ds.dtype) is not None:
        return np.asarray(ds.asstr()[()], dtype=object)
    if ds.dtype.kind == "O":
        raise TypeError(f"{ds.name} holds objects, not values")
    return ds[()]


def _scalar(f: h5py.File, name: str, default: Any = None) -> Any:
    if name not in f:
        return default
    v = f[name][()]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.reshape(()).item()
        return v.decode() if isinstance(v, bytes) else v
    return v


def _colnames(g: h5py.Group) -> list[str]:
    """Column order: the table's ``colnames`` attribute, then any other datasets."""
    names = [c.decode() if isinstance(c, bytes) else str(c) for c in g.attrs.get("colnames", [])]
    return list(dict.fromkeys([n for n in names if n in g] + sorted(g.keys())))


def _is_ragged_part(g: h5py.Group, name: str) -> bool:
    """True for ``X`` and ``X_index`` of a ragged column (``local_index`` is not one)."""
    return f"{name}_index" in g or (name.endswith("_index") and name[: -len("_index")] in g)


def _region(values: np.ndarray) -> np.ndarray:
    return np.array([None if (v is None or str(v) in _OUT_OF_BRAIN) else str(v) for v in values], dtype=object)


# ----------------------------------------------------------------------------- tables
def _read_probes(f: h5py.File) -> pd.DataFrame:
    rows = []
    ee = f.get("general/extracellular_ephys", {})
    for name in sorted(ee.keys() if hasattr(ee, "keys") else []):
        if name == "electrodes" or not isinstance(ee[name], h5py.Group):
            continue
        attrs = dict(ee[name].attrs)
        dev = f.get(f"general/devices/{name}")
        dattrs = dict(dev.attrs) if dev is not None else {}
        pid = attrs.get("probe_id", dattrs.get("probe_id"))
        rows.append({
            "probe_id": int(pid) if pid is not None else -1 - len(rows),
            "name": name,
            "sampling_rate": float(dattrs.get("sampling_rate", attrs.get("sampling_rate", np.nan))),
            "lfp_sampling_rate": float(attrs.get("lfp_sampling_rate", np.nan)),
            "has_lfp_data": bool(attrs.get("has_lfp_data", False)),
        })
    cols = ["probe_id", "name", "sampling_rate", "lfp_sampling_rate", "has_lfp_data"]
    return pd.DataFrame(rows, columns=cols).set_index("probe_id")


def _read_channels(f: h5py.File, path: str, probes: pd.DataFrame) -> pd.DataFrame:
    if ELECTRODES not in f:
        raise NWBFormatError(path, f"missing /{ELECTRODES} table")
    e = f[ELECTRODES]
    ids = _column(e["id"]).astype(np.int64)
    n = len(ids)

    def col(*names: str, default: Any = None) -> np.ndarray:
        for name in names:
            if name in e:
                v = _column(e[name])
                if len(v) != n:
                    raise NWBFormatError(path, f"electrodes column {name} has {len(v)} rows, ids has {n}")
                return v
        if default is None:
            raise NWBFormatError(path, f"electrodes table has none of {', '.join(names)}")
        return np.full(n, default)

    group_name = col("group_name", default="")
    if "probe_id" in e:
        probe_id = col("probe_id").astype(np.int64)
    else:  # old files: the probe id lives on the electrode group
        lookup = {name: pid for pid, name in probes["name"].items()}
        probe_id = np.array([lookup.get(g, -1) for g in group_name], dtype=np.int64)
    names = probes["name"].to_dict()
    df = pd.DataFrame({
        "probe_id": probe_id,
        "probe_name": [names.get(p, g) for p, g in zip(probe_id, group_name)],
        "local_index": col("local_index", "probe_channel_number", default=-1).astype(np.int64),
        "probe_vertical_position": col("probe_vertical_position").astype(np.int64),
        "probe_horizontal_position": col("probe_horizontal_position").astype(np.int64),
        "region": pd.Series(_region(col("location", "manual_structure_acronym", "ccf_structure")), dtype=object).to_numpy(),
        "valid_data": col("valid_data", default=True).astype(bool),
        **{CCF_COLUMNS[k]: col(k, default=np.nan).astype(np.float64) for k in "xyz"},
    }, index=pd.Index(ids, name="channel_id"))
    if not df.index.is_unique:
        raise NWBFormatError(path, "electrode ids are not unique")
    return df


def _read_units(f: h5py.File, path: str) -> tuple[pd.DataFrame, np.ndarray]:
    if "units" not in f or "id" not in f["units"]:
        raise NWBFormatError(path, "missing /units table")
    g = f["units"]
    ids = _column(g["id"]).astype(np.int64)
    n = len(ids)
    if n == 0:
        raise NWBFormatError(path, "the /units table is empty")
    if len(np.unique(ids)) != n:
        raise NWBFormatError(path, "duplicate unit ids in /units/id")
    if "spike_times_index" not in g or "spike_times" not in g:
        raise NWBFormatError(path, "missing units/spike_times or units/spike_times_index")
    index = g["spike_times_index"][()]
    data: dict[str, np.ndarray] = {}
    for name in _colnames(g):
        if name in _RAGGED_SKIP or _is_ragged_part(g, name):
            continue
        ds = g[name]
        if not isinstance(ds, h5py.Dataset) or ds.shape != (n,) or ds.dtype.kind in "OV" and h5py.check_string_dtype(ds.dtype) is None:
            continue
        data[name] = _column(ds)
    for fallback, name in (("channel", "peak_channel_id"), ("isi_viol", "isi_violations")):
        if name not in data and fallback in data:
            data[name] = data.pop(fallback)
    if "peak_channel_id" not in data:
        raise NWBFormatError(path, "units table has no peak_channel_id column")
    units = pd.DataFrame(data, index=pd.Index(ids, name="unit_id"))
    units["peak_channel_id"] = units["peak_channel_id"].astype(np.int64)
    return units, index


def _join_channels(units: pd.DataFrame, channels: pd.DataFrame, path: str) -> pd.DataFrame:
    missing = ~units["peak_channel_id"].isin(channels.index)
    if missing.any():
        bad = units.index[missing.to_numpy()][:3].tolist()
        raise NWBFormatError(path, f"{int(missing.sum())} units have a peak_channel_id absent from the electrodes (units {bad})")
    ch = channels.loc[units["peak_channel_id"].to_numpy()]
    ch = ch.drop(columns=["local_index"]).set_index(units.index)
    front = ["probe_id", "probe_name", "peak_channel_id", "region", "probe_vertical_position",
             "probe_horizontal_position", *CCF_COLUMNS.values(), "valid_data"]
    joined = pd.concat([units, ch], axis=1)
    rest = [c for c in joined.columns if c not in front]
    return joined[front + rest]


def _spike_index(f: h5py.File, path: str, n_units: int, index: np.ndarray) -> tuple[h5py.Dataset, np.ndarray]:
    """The ``spike_times`` dataset and its checked ragged offsets (length ``n_units + 1``)."""
    ds = f["units/spike_times"]
    n_total = ds.shape[0] if ds.ndim == 1 else -1
    if ds.ndim != 1 or ds.dtype.kind != "f":
        raise NWBFormatError(path, f"units/spike_times must be a 1-D float array, got {ds.dtype} {ds.shape}")
    if index.ndim != 1 or len(index) != n_units or index.dtype.kind not in "iu":
        raise NWBFormatError(path, f"units/spike_times_index has {index.shape} {index.dtype}, expected {n_units} integers")
    offsets = np.zeros(n_units + 1, dtype=np.int64)
    offsets[1:] = index
    if np.any(np.diff(offsets) < 0):
        raise NWBFormatError(path, "units/spike_times_index is not monotonic (corrupt index, cf. AllenSDK #2152)")
    if offsets[-1] != n_total:
        raise NWBFormatError(path, f"units/spike_times_index ends at {offsets[-1]} but units/spike_times holds {n_total} spikes")
    return ds, offsets


def _read_spikes(f: h5py.File, path: str, ids: np.ndarray, index: np.ndarray, notes: list[str]) -> SpikeTrains:
    ds, offsets = _spike_index(f, path, len(ids), index)
    times = np.empty(offsets[-1], dtype=np.float64)
    if len(times):
        ds.read_direct(times)
    trains, n_unsorted, n_dropped = _checked_trains(times, offsets, ids, path)
    _note_repairs(path, n_unsorted, n_dropped, notes)
    return trains


def _note_repairs(path: str, n_unsorted: int, n_dropped: int, notes: list[str]) -> None:
    """Record (and warn about) what :func:`_checked_trains` repaired."""
    for n, msg in ((n_unsorted, f"{n_unsorted} units had unsorted spike times; sorted"),
                   (n_dropped, f"dropped {n_dropped} negative spike times")):
        if n:
            notes.append(msg)
            warnings.warn(f"{path}: {msg}", stacklevel=3)


def _checked_trains(times: np.ndarray, offsets: np.ndarray, ids: np.ndarray, path: str) -> tuple[SpikeTrains, int, int]:
    """Reject NaN/inf; sort unsorted units and drop negative times.

    One pass in chunks: min/max reductions catch NaN, ±inf and negatives; one
    comparison into a reused buffer (unit boundaries masked) finds unsorted units.
    Sorts ``times`` in place. Returns the trains, the number of units sorted and the
    number of spikes dropped.
    """
    n = len(times)
    boundaries = offsets[1:-1]  # first spike of each unit after the first
    any_negative = False
    unsorted_units: set[int] = set()
    dec = np.empty(min(n, _CHUNK), dtype=bool)
    for a in range(0, n, _CHUNK):
        b = min(n, a + _CHUNK)
        lo, hi = times[a:b].min(), times[a:b].max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise NWBFormatError(path, "units/spike_times holds NaN or infinite spike times")
        any_negative |= bool(lo < 0)
        s = max(a, 1)
        d = dec[: b - s]
        np.less(times[s:b], times[s - 1 : b - 1], out=d)
        inside = boundaries[(boundaries >= s) & (boundaries < b)]
        d[inside - s] = False  # a new unit may start lower than the last one ended
        if d.any():
            pos = s + np.flatnonzero(d)
            unsorted_units.update((np.searchsorted(offsets, pos, side="right") - 1).tolist())
    for u in sorted(unsorted_units):
        times[offsets[u] : offsets[u + 1]].sort()
    dropped = 0
    if any_negative:
        keep = times >= 0
        dropped = int(n - keep.sum())
        kept = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])  # (reduceat fails on empty last units)
        times = times[keep]
        offsets = kept[offsets]
    return SpikeTrains(times, offsets, ids), len(unsorted_units), dropped


class SpikeReader(RaggedIndex):
    """A session file's spike times, read one block of units at a time.

    Implements :class:`~spikeprep.session.SpikeSource`, so
    :func:`spikeprep.ratestore.write_counts` streams from the file with bounded memory
    instead of holding every spike time (≈1 GB for a full session). Opening checks the
    whole file once, as :func:`read_session` does: NaN or infinite times raise
    :class:`NWBFormatError`; units with unsorted times are sorted, and negative times
    dropped, in each block read (``notes`` says so).

    Parameters
    ----------
    path : str, Path or Source
        A session NWB file.

    Examples
    --------
    >>> with SpikeReader("session_715093703.nwb") as spikes:  # doctest: +SKIP
    ...     write_counts(spikes, "binned.zarr", make_grid(spikes))
    """

    def __init__(self, path: str | Path | Source, *, _open: tuple[h5py.File, np.ndarray, np.ndarray] | None = None) -> None:
        source = as_source(path)
        self.path = source.location
        self._owns_file = _open is None
        self._file = _open_h5(source) if _open is None else _open[0]
        try:
            if _open is None:
                with _problems(self.path, "units table"):
                    units, index = _read_units(self._file, self.path)
                self.unit_ids = units.index.to_numpy(dtype=np.int64)
            else:
                self.unit_ids, index = np.asarray(_open[1], dtype=np.int64), _open[2]
            with _problems(self.path, "units/spike_times"):
                self._ds, self._raw_offsets = _spike_index(self._file, self.path, len(self.unit_ids), index)
                self.notes: list[str] = []
                self._repair = np.zeros(len(self.unit_ids), dtype=bool)
                self.offsets = self._raw_offsets
                self.t_max, self.offsets = self._scan()
        except BaseException:
            self.close()
            raise

    def _scan(self) -> tuple[float, np.ndarray]:
        """Check every spike once; mark the blocks that need repair. Returns the latest
        time and the offsets after repair (negative times dropped)."""
        t_max, n_unsorted, n_dropped = float("nan"), 0, 0
        raw = self._raw_offsets
        counts = np.diff(raw)
        buf = np.empty(min(int(raw[-1]), _CHUNK), dtype=np.float64)
        for a, b in unit_blocks(raw, _CHUNK):
            lo, hi = raw[a], raw[b]
            times = buf[: hi - lo]
            if len(times):
                self._ds.read_direct(times, np.s_[lo:hi])
            trains, unsorted, dropped = _checked_trains(times, raw[a : b + 1] - lo, self.unit_ids[a:b], self.path)
            if unsorted or dropped:
                self._repair[a:b] = True
                n_unsorted, n_dropped = n_unsorted + unsorted, n_dropped + dropped
                counts[a:b] = trains.n_spikes
            t_max = float(np.fmax(t_max, trains.t_max))
        _note_repairs(self.path, n_unsorted, n_dropped, self.notes)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return t_max, offsets

    def block(self, a: int, b: int) -> SpikeTrains:
        """Units ``a:b`` read from the file (checked and repaired like :func:`read_session`)."""
        lo, hi = int(self._raw_offsets[a]), int(self._raw_offsets[b])
        with _problems(self.path, "units/spike_times"):
            times = self._ds[lo:hi]
        trains = SpikeTrains(times, self._raw_offsets[a : b + 1] - lo, self.unit_ids[a:b])
        if self._repair[a:b].any():
            trains = _checked_trains(times, trains.offsets, trains.unit_ids, self.path)[0]
        return trains

    def select(self, positions: np.ndarray) -> "SelectedSpikes":
        """The units at ``positions``, read from the file on demand."""
        return SelectedSpikes(self, positions)

    def close(self) -> None:
        if self._owns_file:
            self._file.close()

    def __enter__(self) -> "SpikeReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_table(g: h5py.Group, path: str, skip: set[str]) -> pd.DataFrame:
    """A DynamicTable of 1-D columns (ragged and reference columns are skipped)."""
    n = g["start_time"].shape[0]
    data: dict[str, np.ndarray] = {}
    for name in _colnames(g):
        if name in skip or _is_ragged_part(g, name):
            continue
        ds = g[name]
        if not isinstance(ds, h5py.Dataset) or ds.dtype.kind == "V" or ds.ndim != 1:
            continue
        if h5py.check_string_dtype(ds.dtype) is None and ds.dtype.kind == "O":
            continue
        if ds.shape[0] != n:
            raise NWBFormatError(path, f"{g.name}/{name} has {ds.shape[0]} rows, start_time has {n}")
        data[name] = _column(ds)
    return pd.DataFrame(data)


def _read_ragged_strings(g: h5py.Group, name: str) -> list[list[str]]:
    if name not in g:
        return [[] for _ in range(g["start_time"].shape[0])]
    values = list(_column(g[name]))
    ends = g[f"{name}_index"][()] if f"{name}_index" in g else np.arange(1, len(values) + 1)
    starts = np.concatenate([[0], ends[:-1]])
    return [values[a:b] for a, b in zip(starts, ends)]


def _read_invalid_times(f: h5py.File) -> pd.DataFrame:
    g = f.get("intervals/invalid_times")
    if g is None or "start_time" not in g:
        return pd.DataFrame({"start_time": pd.Series(dtype=float), "stop_time": pd.Series(dtype=float),
                             "tags": pd.Series(dtype=object)})
    return pd.DataFrame({"start_time": g["start_time"][()].astype(float),
                         "stop_time": g["stop_time"][()].astype(float),
                         "tags": _read_ragged_strings(g, "tags")})


def _read_stimulus(f: h5py.File, path: str, invalid: pd.DataFrame) -> pd.DataFrame:
    tables = []
    intervals = f.get("intervals", {})
    for name in sorted(intervals.keys() if hasattr(intervals, "keys") else []):
        if not name.endswith("_presentations"):
            continue
        t = _read_table(intervals[name], path, _INTERVAL_SKIP)
        if "stimulus_name" not in t:
            t["stimulus_name"] = name[: -len("_presentations")]
        tables.append(t)
    if not tables:
        empty = pd.DataFrame({c: pd.Series(dtype=float) for c in BASE_COLUMNS + ["is_invalid"]})
        return empty.astype({"stimulus_presentation_id": np.int64, "stimulus_condition_id": np.int64,
                             "stimulus_name": object, "is_invalid": bool})
    stim = pd.concat(tables, ignore_index=True, sort=False)
    stim = stim.sort_values("start_time", kind="stable", ignore_index=True)
    if "stimulus_block" not in stim:
        stim["stimulus_block"] = np.nan
    stim["stimulus_block"] = stim["stimulus_block"].astype(float)
    stim["stimulus_presentation_id"] = np.arange(len(stim), dtype=np.int64)
    stim = split_color(stim)
    for c in sorted(parameter_columns(stim)):
        stim[c] = unify_parameter(stim[c])
    stim = stim[[c for c in stim.columns if c not in parameter_columns(stim)] + sorted(parameter_columns(stim))]
    stim["is_invalid"] = _overlaps_stimulus_invalid(stim, invalid)
    return add_conditions(stim)


def _overlaps_stimulus_invalid(stim: pd.DataFrame, invalid: pd.DataFrame) -> np.ndarray:
    flag = np.zeros(len(stim), dtype=bool)
    start, stop = stim["start_time"].to_numpy(), stim["stop_time"].to_numpy()
    for row in invalid.itertuples(index=False):
        if "stimulus" in list(row.tags):
            flag |= (start < row.stop_time) & (stop > row.start_time)
    return flag


def _read_running(f: h5py.File) -> pd.DataFrame:
    g = f.get("processing/running/running_speed")
    if g is None:
        return pd.DataFrame({"start_time": pd.Series(dtype=float), "end_time": pd.Series(dtype=float),
                             "velocity": pd.Series(dtype=float)})
    velocity = g["data"][()].astype(np.float64)
    ts = g["timestamps"][()].astype(np.float64)
    if ts.ndim == 2:  # Oct 2019: row 0 start, row 1 end
        start, end = ts[0], ts[1]
    else:
        start = ts
        end_g = f.get("processing/running/running_speed_end_times/timestamps")
        if end_g is not None:
            end = end_g[()].astype(np.float64)
        else:
            step = np.median(np.diff(start)) if len(start) > 1 else 0.0
            end = np.append(start[1:], start[-1] + step) if len(start) else start
    if not (len(start) == len(end) == len(velocity)):
        raise ValueError(f"running speed has {len(velocity)} values but {len(start)} starts and {len(end)} ends")
    return pd.DataFrame({"start_time": start, "end_time": end, "velocity": velocity})


def _read_metadata(f: h5py.File, source: Source) -> dict[str, Any]:
    path = source.location
    info = source.info()
    session_id = _session_id(f, path)
    nwb_version = f.attrs.get("nwb_version", "")
    return {
        "session_id": session_id,
        "session_type": _scalar(f, "general/stimulus", ""),
        "genotype": _scalar(f, "general/subject/genotype", ""),
        "sex": _scalar(f, "general/subject/sex", ""),
        "age": _scalar(f, "general/subject/age", ""),
        "subject_id": _scalar(f, "general/subject/subject_id", ""),
        "species": _scalar(f, "general/subject/species", ""),
        "nwb_version": nwb_version.decode() if isinstance(nwb_version, bytes) else str(nwb_version),
        "source_file": info.location,
        "source_size": info.size,
    }
