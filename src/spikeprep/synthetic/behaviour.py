"""The subject, optotagging, eye tracking and rig metadata of a synthetic session, in the layout of
files written by AllenSDK's ecephys writer (``processing/optotagging``,
``processing/eye_tracking``, ``processing/{raw,filtered}_gaze_mapping``,
``processing/eye_tracking_rig_metadata``)."""

from __future__ import annotations

import h5py
import numpy as np

from .spec import SynthSpec

__all__ = ["write_subject", "write_optotagging", "write_eye_tracking", "OPTO_PULSES", "EYE_HZ"]

_STR = h5py.string_dtype("utf-8")
OPTO_PULSES = 96
EYE_HZ = 30.0
_CONDITIONS = (("pulse", "a single square pulse", 0.01), ("raised_cosine", "half-period of a cosine wave", 1.0))
_LEVELS = (1.3, 1.7, 2.0)


def write_subject(f: h5py.File, spec: SynthSpec) -> None:
    """``general/subject``: the mouse (AllenSDK's ``EcephysSpecimen``)."""
    subj = f.create_group("general/subject")
    subj.attrs.update({"namespace": "ndx-aibs-ecephys", "neurodata_type": "EcephysSpecimen",
                       "specimen_name": f"synthetic-{400_000_000 + spec.seed}", "age_in_days": float(100 + spec.seed % 30)})
    genotypes = ("wt/wt", "Sst-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
                 "Pvalb-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
                 "Vip-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt")
    for k, v in {"age": f"P{100 + spec.seed % 30}D", "genotype": genotypes[spec.seed % 4],
                 "sex": "MF"[spec.seed % 2], "species": "Mus musculus", "strain": "C57BL/6J",
                 "subject_id": str(400_000_000 + spec.seed)}.items():
        subj[k] = v


def _module(f: h5py.File, name: str, description: str) -> h5py.Group:
    g = f.create_group(f"processing/{name}")
    g.attrs.update({"namespace": "core", "neurodata_type": "ProcessingModule", "description": description})
    return g


def _series(g: h5py.Group, name: str, data: np.ndarray, timestamps: np.ndarray, unit: str) -> None:
    ts = g.create_group(name)
    ts.attrs.update({"namespace": "core", "neurodata_type": "TimeSeries", "description": "no description",
                     "comments": "no comments"})
    ts.create_dataset("data", data=data).attrs.update({"unit": unit, "conversion": 1.0, "resolution": -1.0})
    ts.create_dataset("timestamps", data=timestamps).attrs.update({"interval": 1, "unit": "seconds"})


def opto_times(spec: SynthSpec) -> np.ndarray:
    """Pulse onsets (s): 96 pulses in the session's last 4%, ~0.6 s apart (jittered)."""
    rng = np.random.default_rng([spec.seed, 5])
    start = spec.duration * 0.96
    step = spec.duration * 0.04 / (OPTO_PULSES + 1)
    return np.round(start + step * (np.arange(OPTO_PULSES) + 0.5) + rng.uniform(0, step / 4, OPTO_PULSES), 5)


def write_optotagging(f: h5py.File, spec: SynthSpec) -> None:
    """``processing/optotagging``: the pulse table (start, condition, level, stop, name,
    duration, tags) and the ``optotagging`` time series of levels."""
    rng = np.random.default_rng([spec.seed, 6])
    start = opto_times(spec)
    kind = rng.integers(0, len(_CONDITIONS), OPTO_PULSES)
    level = np.array(_LEVELS)[rng.integers(0, len(_LEVELS), OPTO_PULSES)]
    duration = np.array([_CONDITIONS[k][2] for k in kind])
    g = _module(f, "optotagging", "optogenetic stimulution data")
    t = g.create_group("optogenetic_stimulation")
    columns = ["start_time", "condition", "level", "stop_time", "stimulus_name", "duration", "tags"]
    t.attrs.update({"namespace": "core", "neurodata_type": "TimeIntervals", "description": "",
                    "colnames": np.array(columns, dtype=object)})
    t["id"] = np.arange(OPTO_PULSES, dtype=np.int64)
    t["start_time"] = start
    t["stop_time"] = start + duration
    t["duration"] = duration
    t["level"] = level
    t.create_dataset("condition", data=np.array([_CONDITIONS[k][1] for k in kind], dtype=object), dtype=_STR)
    t.create_dataset("stimulus_name", data=np.array([_CONDITIONS[k][0] for k in kind], dtype=object), dtype=_STR)
    t.create_dataset("tags", data=np.full(OPTO_PULSES, "optical_stimulation", dtype=object), dtype=_STR)
    t["tags_index"] = np.arange(1, OPTO_PULSES + 1, dtype=np.uint8)
    _series(g, "optotagging", level, start, "volts")


def _ellipse_table(g: h5py.Group, name: str, fits: dict[str, np.ndarray], time: np.ndarray) -> None:
    t = g.create_group(name)
    t.attrs.update({"namespace": "hdmf-common", "neurodata_type": "DynamicTable", "description": "",
                    "colnames": np.array([*fits, "timestamps"], dtype=object)})
    t["id"] = np.arange(len(time), dtype=np.int64)
    for k, v in fits.items():
        t[k] = v
    t["timestamps"] = time


def write_eye_tracking(f: h5py.File, spec: SynthSpec) -> None:
    """Ellipse fits (half-axes, as the files hold them), raw and filtered gaze mapping
    (blinks: NaN in the pupil and corneal-reflection fits and in the filtered gaze) and
    the rig's geometry, at 30 Hz."""
    rng = np.random.default_rng([spec.seed, 7])
    n = int(spec.duration * EYE_HZ)
    time = (np.arange(n) + 3) / EYE_HZ
    blink = np.zeros(n, dtype=bool)
    for s in rng.integers(0, max(1, n - 10), max(1, n // 900)):
        blink[s : s + int(rng.integers(3, 9))] = True
    drift = np.cumsum(rng.normal(0, 0.6, (n, 2)), axis=0)
    drift -= np.linspace(0, 1, n)[:, None] * drift[-1]  # the gaze wanders and comes back
    pupil_r = 30 + 4 * np.sin(time / 7.0) + rng.normal(0, 0.8, n)

    def fits(cx: np.ndarray, cy: np.ndarray, h: np.ndarray, w: np.ndarray, nan: bool) -> dict[str, np.ndarray]:
        out = {"center_x": cx, "center_y": cy, "height": h, "phi": rng.normal(0, 0.03, n), "width": w}
        return {k: np.where(blink, np.nan, v) if nan else v for k, v in out.items()}

    et = _module(f, "eye_tracking", "Eye tracking processing module")
    _ellipse_table(et, "cr_ellipse_fits", fits(302 + drift[:, 0] / 4, 229 + drift[:, 1] / 4, rng.normal(5.6, 0.3, n),
                                               rng.normal(6.0, 0.3, n), True), time)
    _ellipse_table(et, "eye_ellipse_fits", fits(320 + rng.normal(0, 0.01, n), 241 + rng.normal(0, 0.01, n),
                                                np.full(n, 105.8), np.full(n, 149.9), False), time)
    _ellipse_table(et, "pupil_ellipse_fits", fits(320 + drift[:, 0], 240 + drift[:, 1], pupil_r,
                                                  pupil_r * 1.04, True), time)
    screen = np.column_stack([drift[:, 1] * 0.05, drift[:, 0] * 0.05])  # AllenSDK's [y, x] order in the files
    spherical = np.degrees(np.arctan2(screen, 15.0))
    areas = {"eye_area": np.pi * 105.8 * 149.9 + rng.normal(0, 5, n), "pupil_area": np.pi * pupil_r**2 * 1.04}
    for kind, mask in (("raw", np.zeros(n, dtype=bool)), ("filtered", blink)):
        g = _module(f, f"{kind}_gaze_mapping", f"Gaze mapping processing module {kind} outputs")
        for name, values in areas.items():
            _series(g, name, np.where(mask, np.nan, values), time, "Pixels ^ 2")
        _series(g, "screen_coordinates", np.where(mask[:, None], np.nan, screen), time, "Centimeters")
        _series(g, "screen_coordinates_spherical", np.where(mask[:, None], np.nan, spherical), time, "Degrees")
    rig = _module(f, "eye_tracking_rig_metadata", "Eye tracking rig metadata module")
    m = rig.create_group("eye_tracking_rig_metadata")
    m.attrs.update({"namespace": "ndx-aibs-ecephys", "neurodata_type": "EcephysEyeTrackingRigMetadata",
                    "equipment": f"NP.{1 + spec.seed % 3}"})
    for name, value, unit in (("monitor_position", (170.0, 0.0, 0.0), "mm"), ("camera_position", (130.0, 0.0, 0.0), "mm"),
                              ("led_position", (265.1, -39.3, 1.0), "mm"), ("monitor_rotation", (0.0, 0.0, 0.0), "deg"),
                              ("camera_rotation", (0.0, 0.0, 13.1), "deg")):
        m.create_dataset(name, data=np.array(value)).attrs["unit"] = unit
