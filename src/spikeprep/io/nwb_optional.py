"""The optional parts of an Allen session NWB file: optotagging, eye tracking, rig and
subject metadata.

Each reader returns an empty table (or an empty dict) when the file has no such part:
not every session was optotagged or eye-tracked, and the 2019 files have no rig
metadata. Columns follow AllenSDK 2.16's ``EcephysNwbSessionApi`` so that the session
view can return what AllenSDK returns.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np
import pandas as pd

from .nwb_tables import attr_text

__all__ = ["OPTO_COLUMNS", "ELLIPSE_COLUMNS", "GAZE_COLUMNS", "read_optotagging", "read_eye_tracking", "read_rig",
           "read_subject"]

OPTO = "processing/optotagging/optogenetic_stimulation"
OPTO_COLUMNS = ("start_time", "condition", "level", "stop_time", "stimulus_name", "duration")
# (prefix in AllenSDK's pupil table, table in processing/eye_tracking)
_ELLIPSES = (("corneal_reflection", "cr_ellipse_fits"), ("pupil", "pupil_ellipse_fits"), ("eye", "eye_ellipse_fits"))
ELLIPSE_COLUMNS = tuple(f"{p}_{k}" for p, _ in _ELLIPSES for k in ("center_x", "center_y", "height", "width", "phi"))
# AllenSDK labels column 1 of screen_coordinates as x and column 0 as y (see the README's differences)
_GAZE = (("eye_area", "eye_area", None), ("pupil_area", "pupil_area", None),
         ("screen_coordinates_x_cm", "screen_coordinates", 1), ("screen_coordinates_y_cm", "screen_coordinates", 0),
         ("screen_coordinates_spherical_x_deg", "screen_coordinates_spherical", 1),
         ("screen_coordinates_spherical_y_deg", "screen_coordinates_spherical", 0))
GAZE_COLUMNS = tuple(f"{kind}_{name}" for kind in ("raw", "filtered") for name, _, _ in _GAZE)
_RIG = "processing/eye_tracking_rig_metadata/eye_tracking_rig_metadata"
_RIG_ARRAYS = ("monitor_position", "camera_position", "led_position", "monitor_rotation", "camera_rotation")


def _texts(values: np.ndarray) -> np.ndarray:
    return np.array([attr_text(v) for v in values], dtype=object)


def read_optotagging(f: h5py.File) -> pd.DataFrame:
    """The light pulses (AllenSDK's ``optogenetic_stimulation_epochs``), indexed by ``id``:
    ``start_time``, ``condition``, ``level``, ``stop_time``, ``stimulus_name``, ``duration``.
    Empty when the session was not optotagged."""
    g = f.get(OPTO)
    if g is None:
        empty = {c: pd.Series(dtype=object if c in ("condition", "stimulus_name") else float) for c in OPTO_COLUMNS}
        return pd.DataFrame(empty, index=pd.Index([], dtype=np.int64, name="id"))
    ids = g["id"][()].astype(np.int64)
    data = {}
    for c in OPTO_COLUMNS:  # a column the file lacks is left empty (duration: stop − start)
        ds = g.get(c)
        if ds is None:
            data[c] = np.full(len(ids), None if c in ("condition", "stimulus_name") else np.nan)
        elif h5py.check_string_dtype(ds.dtype) is not None:
            data[c] = _texts(ds[()])
        else:
            data[c] = ds[()].astype(np.float64)
    if "duration" not in g and "start_time" in g and "stop_time" in g:
        data["duration"] = data["stop_time"] - data["start_time"]
    return pd.DataFrame(data, index=pd.Index(ids, name="id"))


def read_eye_tracking(f: h5py.File) -> pd.DataFrame:
    """Ellipse fits of pupil, eye and corneal reflection (full heights and widths, as
    AllenSDK doubles the file's half-axes) and the raw and filtered gaze mapping, one
    row per eye-tracking frame, indexed by ``Time (s)``. Empty when the file has none."""
    et, raw, filtered = (f.get(f"processing/{m}") for m in ("eye_tracking", "raw_gaze_mapping", "filtered_gaze_mapping"))
    if et is None or raw is None:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in ELLIPSE_COLUMNS + GAZE_COLUMNS},
                            index=pd.Index([], dtype=np.float64, name="Time (s)"))
    n = len(raw["eye_area/timestamps"])
    data: dict[str, np.ndarray] = {}
    for prefix, table in _ELLIPSES:  # a table or column the file lacks is left NaN
        g = et.get(table)
        for k in ("center_x", "center_y", "height", "width", "phi"):
            v = g[k][()].astype(np.float64) if g is not None and k in g else np.full(n, np.nan)
            data[f"{prefix}_{k}"] = 2 * v if k in ("height", "width") else v
    for kind, module in (("raw", raw), ("filtered", filtered)):
        for name, series, column in _GAZE:
            if module is None or series not in module:
                data[f"{kind}_{name}"] = np.full(n, np.nan)
                continue
            v = module[f"{series}/data"][()].astype(np.float64)
            data[f"{kind}_{name}"] = v if column is None else v[:, column]
    time = raw["eye_area/timestamps"][()].astype(np.float64)
    return pd.DataFrame(data, index=pd.Index(time, name="Time (s)"))


def read_rig(f: h5py.File) -> dict[str, Any]:
    """``{"equipment": str, "geometry": {column: [x, y, z]}}`` of the eye-tracking rig, the
    geometry's columns named ``<array>_<unit>`` as AllenSDK names them; empty when absent."""
    g = f.get(_RIG)
    if g is None:
        return {}
    geometry = {}
    for name in _RIG_ARRAYS:
        if name in g:
            geometry[f"{name}_{attr_text(g[name].attrs.get('unit', ''))}"] = [float(x) for x in g[name][()]]
    equipment = g.attrs.get("equipment", "")
    return {"equipment": attr_text(equipment),
            "geometry": geometry}


def read_subject(f: h5py.File) -> dict[str, Any]:
    """AllenSDK's session metadata: ``specimen_name``, ``age_in_days``, ``full_genotype``,
    ``strain``, ``sex``, ``stimulus_name`` (the session type), ``subject_id``, ``age``,
    ``species``, and ``session_start_time`` (ISO 8601)."""
    subject = f.get("general/subject")
    attrs = dict(subject.attrs) if subject is not None else {}

    def text(name: str) -> str | None:
        if name not in f:
            return None
        return attr_text(f[name][()])

    age_in_days = attrs.get("age_in_days")
    if age_in_days is None:  # older files: only the ISO 8601 age ("P111D")
        age = text("general/subject/age") or ""
        digits = age.strip("PD")
        age_in_days = float(digits) if digits.replace(".", "", 1).isdigit() else None
    name = attrs.get("specimen_name")
    return {
        "specimen_name": None if name is None else attr_text(name),
        "age_in_days": None if age_in_days is None else float(age_in_days),
        "full_genotype": text("general/subject/genotype"),
        "strain": text("general/subject/strain"),
        "sex": text("general/subject/sex"),
        "stimulus_name": text("general/stimulus"),
        "subject_id": text("general/subject/subject_id"),
        "age": text("general/subject/age"),
        "species": text("general/subject/species"),
        "session_start_time": text("session_start_time"),
    }
