"""The tables of an Allen session NWB file: probes, electrodes, units (without their
spikes), invalid times, stimulus presentations, running speed and metadata.

Every reader takes an open ``h5py.File``; :mod:`spikeprep.io.nwb` wraps them in
:func:`problems` so that each failure names the file and the table.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
import pandas as pd

from ..core.errors import NWBFormatError
from ..core.stimulus import BASE_COLUMNS, add_conditions, parameter_columns, split_color, unify_parameter
from .source import Source

ELECTRODES = "general/extracellular_ephys/electrodes"
CCF_COLUMNS = {"x": "anterior_posterior_ccf_coordinate", "y": "dorsal_ventral_ccf_coordinate",
               "z": "left_right_ccf_coordinate"}
_RAGGED_SKIP = {"spike_times", "spike_amplitudes", "waveform_mean", "id"}
_INTERVAL_SKIP = {"id", "tags", "timeseries"}
_OUT_OF_BRAIN = {"None", "", "none", "nan", "null"}


@contextmanager
def problems(path: str, what: str) -> Iterator[None]:
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


# ----------------------------------------------------------------------------- helpers
def _column(ds: h5py.Dataset) -> np.ndarray:
    """A 1-D dataset as numpy, strings decoded to ``str`` objects."""
    if h5py.check_string_dtype(ds.dtype) is not None:
        return np.asarray(ds.asstr()[()], dtype=object)
    if ds.dtype.kind == "O":
        raise TypeError(f"{ds.name} holds objects, not values")
    return ds[()]


def scalar(f: h5py.File, name: str, default: Any = None) -> Any:
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
def attr_text(v: Any) -> str:
    """An HDF5 attribute or scalar as text (h5py gives bytes or str)."""
    return v.decode() if isinstance(v, bytes) else str(v)


def read_probes(f: h5py.File) -> pd.DataFrame:
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
            "location": attr_text(attrs.get("location", "")),
        })
    cols = ["probe_id", "name", "sampling_rate", "lfp_sampling_rate", "has_lfp_data", "location"]
    return pd.DataFrame(rows, columns=cols).set_index("probe_id")


def read_channels(f: h5py.File, path: str, probes: pd.DataFrame) -> pd.DataFrame:
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
        "structure_id": col("ecephys_structure_id", "structure_id", "manual_structure_id",
                            default=np.nan).astype(np.float64),
        "filtering": pd.Series(col("filtering", default=""), dtype=object).replace("", None).to_numpy(),
    }, index=pd.Index(ids, name="channel_id"))
    if not df.index.is_unique:
        raise NWBFormatError(path, "electrode ids are not unique")
    return df


def read_units(f: h5py.File, path: str) -> tuple[pd.DataFrame, np.ndarray]:
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


def join_channels(units: pd.DataFrame, channels: pd.DataFrame, path: str) -> pd.DataFrame:
    missing = ~units["peak_channel_id"].isin(channels.index)
    if missing.any():
        bad = units.index[missing.to_numpy()][:3].tolist()
        raise NWBFormatError(path, f"{int(missing.sum())} units have a peak_channel_id absent from the electrodes (units {bad})")
    ch = channels.loc[units["peak_channel_id"].to_numpy()]
    ch = ch.drop(columns=["local_index", "structure_id", "filtering"]).set_index(units.index)
    front = ["probe_id", "probe_name", "peak_channel_id", "region", "probe_vertical_position",
             "probe_horizontal_position", *CCF_COLUMNS.values(), "valid_data"]
    joined = pd.concat([units, ch], axis=1)
    rest = [c for c in joined.columns if c not in front]
    return joined[front + rest]


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


def read_invalid_times(f: h5py.File) -> pd.DataFrame:
    g = f.get("intervals/invalid_times")
    if g is None or "start_time" not in g:
        return pd.DataFrame({"start_time": pd.Series(dtype=float), "stop_time": pd.Series(dtype=float),
                             "tags": pd.Series(dtype=object)})
    return pd.DataFrame({"start_time": g["start_time"][()].astype(float),
                         "stop_time": g["stop_time"][()].astype(float),
                         "tags": _read_ragged_strings(g, "tags")})


def read_stimulus(f: h5py.File, path: str, invalid: pd.DataFrame) -> pd.DataFrame:
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


def read_running(f: h5py.File) -> pd.DataFrame:
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


def read_session_id(f: h5py.File, path: str) -> int:
    raw = scalar(f, "general/session_id") or scalar(f, "identifier")
    try:
        return int(str(raw).strip())
    except (TypeError, ValueError):
        digits = "".join(ch for ch in Path(path).stem if ch.isdigit())
        if not digits:
            raise NWBFormatError(path, "no session id in /general/session_id, /identifier or the file name") from None
        return int(digits)


def read_metadata(f: h5py.File, source: Source) -> dict[str, Any]:
    path = source.location
    info = source.info()
    session_id = read_session_id(f, path)
    nwb_version = f.attrs.get("nwb_version", "")
    return {
        "session_id": session_id,
        "session_type": scalar(f, "general/stimulus", ""),
        "genotype": scalar(f, "general/subject/genotype", ""),
        "sex": scalar(f, "general/subject/sex", ""),
        "age": scalar(f, "general/subject/age", ""),
        "subject_id": scalar(f, "general/subject/subject_id", ""),
        "species": scalar(f, "general/subject/species", ""),
        "nwb_version": nwb_version.decode() if isinstance(nwb_version, bytes) else str(nwb_version),
        "source_file": info.location,
        "source_size": info.size,
    }
