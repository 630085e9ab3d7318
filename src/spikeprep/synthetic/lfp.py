"""Probe LFP files of a synthetic session (``probe_<pid>_lfp.nwb`` beside the session
file), in the layout of AllenSDK's probe-LFP writer: the LFP channels (every 384 /
``lfp_channels``-th channel of the probe) with their own electrodes table, 1,250 Hz
float32 data and timestamps, and the probe's CSD.

The LFP is pink-ish noise plus a flash-evoked response whose sign flips with depth
(a sink above a source), so the LFP and CSD around flashes show something. Written in
blocks of 30 s: a real-size file (9,600 s × 96 channels, about 4.6 GB of float32) never
sits in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
from scipy.signal import lfilter

from .behaviour import write_subject
from .nwb_conform import conform
from .spec import SynthSpec

__all__ = ["write_probe_lfp", "LFP_RATE", "lfp_offset"]

LFP_RATE = 1250.0
_STR = h5py.string_dtype("utf-8")
_BLOCK_S = 30.0


def lfp_offset(spec: SynthSpec) -> float:
    """The first LFP timestamp (s): the LFP starts a little after the session clock."""
    return 0.5 + (spec.seed % 7) * 0.0008


def _evoked(t: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """Sum of damped 8 Hz responses (starting 40 ms after each onset), per sample."""
    out = np.zeros_like(t)
    if not len(onsets):
        return out
    i = np.searchsorted(onsets, t, side="right") - 1
    dt = t - onsets[np.clip(i, 0, None)] - 0.04
    on = (i >= 0) & (dt >= 0) & (dt < 0.5)
    out[on] = np.exp(-dt[on] / 0.08) * np.sin(2 * np.pi * 8 * dt[on])
    return out


def write_probe_lfp(path: str | Path, spec: SynthSpec, probe: dict, channels: dict[str, np.ndarray],
                    flash_onsets: Sequence[float]) -> Path:
    """Write one probe's LFP file; returns its path (written beside, then renamed)."""
    path = Path(path)
    rng = np.random.default_rng([spec.seed, 8, probe["id"] % 1000])
    on_probe = np.flatnonzero(channels["probe"] == probe["index"])
    step = max(1, len(on_probe) // spec.lfp_channels)
    keep = on_probe[::step][: spec.lfp_channels]
    n_ch = len(keep)
    n = int(spec.duration * LFP_RATE)
    t0 = lfp_offset(spec)
    depth = channels["vpos"][keep].astype(np.float64)
    polarity = np.tanh((depth - np.median(depth)) / 400.0)  # sink above, source below
    onsets = np.sort(np.asarray(flash_onsets, dtype=np.float64))
    tmp = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(tmp, "w", libver="latest") as f:
            _header(f, spec, probe)
            _electrodes(f, probe, channels, keep)
            g = f.create_group(f"acquisition/probe_{probe['id']}_lfp/probe_{probe['id']}_lfp_data")
            f[f"acquisition/probe_{probe['id']}_lfp"].attrs.update({"namespace": "core", "neurodata_type": "LFP"})
            g.attrs.update({"namespace": "core", "neurodata_type": "ElectricalSeries", "description": "no description",
                            "comments": "no comments"})
            rows = int(min(n, LFP_RATE * _BLOCK_S))
            # contiguous, as AllenSDK's writer leaves them: a window is one byte range
            data = g.create_dataset("data", shape=(n, n_ch), dtype="f4")
            data.attrs.update({"unit": "volts", "conversion": 1.0, "resolution": -1.0, "offset": 0.0})
            stamps = g.create_dataset("timestamps", shape=(n,), dtype="f8")
            stamps.attrs.update({"unit": "seconds", "interval": 1})
            g["electrodes"] = np.arange(n_ch, dtype=np.int64)
            state = np.zeros((1, n_ch))
            for a in range(0, n, max(rows, 1)):
                b = min(n, a + rows)
                t = t0 + np.arange(a, b) / LFP_RATE
                noise = rng.normal(0, 20e-6, (b - a, n_ch))
                # a leaky integrator (1/f-like background), continuous across blocks
                slow, state = lfilter([1.0], [1.0, -0.995], noise, axis=0, zi=state)
                block = 0.1 * slow + noise + 250e-6 * _evoked(t, onsets)[:, None] * polarity[None, :]
                data[a:b] = block.astype(np.float32)
                stamps[a:b] = t
            _csd(f, rng, depth, channels["hpos"][keep].astype(np.float64), polarity)
            conform(f)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _header(f: h5py.File, spec: SynthSpec, probe: dict) -> None:
    f.attrs.update({"namespace": "core", "neurodata_type": "NWBFile", "nwb_version": "2.7.0"})
    f["identifier"] = str(probe["id"])
    f["session_description"] = "LFP data and associated info for one probe"
    f["session_start_time"] = "2019-01-19T08:54:18-08:00"
    f["timestamps_reference_time"] = "2019-01-19T08:54:18-08:00"
    f["general/session_id"] = str(spec.sid)
    write_subject(f, spec)
    dev = f.create_group(f"general/devices/{probe['name']}")
    dev.attrs.update({"namespace": "ndx-aibs-ecephys", "neurodata_type": "EcephysProbe", "probe_id": np.int64(probe["id"]),
                      "sampling_rate": 30000.0, "description": "Neuropixels 1.0 Probe", "manufacturer": "imec"})
    grp = f.create_group(f"general/extracellular_ephys/{probe['name']}")
    grp.attrs.update({"namespace": "ndx-aibs-ecephys", "neurodata_type": "EcephysElectrodeGroup",
                      "probe_id": np.int64(probe["id"]), "has_lfp_data": np.bool_(True),
                      "lfp_sampling_rate": float(LFP_RATE),
                      "description": "Ecephys Electrode Group", "location": "See electrode locations"})
    grp["device"] = h5py.SoftLink(f"/general/devices/{probe['name']}")
    for grp_name in ("analysis", "stimulus/presentation", "stimulus/templates"):
        f.require_group(grp_name)


def _electrodes(f: h5py.File, probe: dict, channels: dict[str, np.ndarray], keep: np.ndarray) -> None:
    e = f.create_group("general/extracellular_ephys/electrodes")
    cols = ["location", "group", "group_name", "probe_vertical_position", "probe_horizontal_position", "probe_id",
            "probe_channel_number", "valid_data", "x", "y", "z", "imp", "filtering"]
    e.attrs.update({"namespace": "hdmf-common", "neurodata_type": "DynamicTable",
                    "description": "metadata about extracellular electrodes", "colnames": np.array(cols, dtype=object)})
    e["id"] = channels["id"][keep].astype(np.int64)
    e.create_dataset("location", data=channels["area"][keep].astype(object), dtype=_STR)
    group = f[f"general/extracellular_ephys/{probe['name']}"].ref
    e.create_dataset("group", data=[group] * len(keep), dtype=h5py.ref_dtype)
    e.create_dataset("group_name", data=np.full(len(keep), probe["name"], dtype=object), dtype=_STR)
    e["probe_vertical_position"] = channels["vpos"][keep].astype(np.int64)
    e["probe_horizontal_position"] = channels["hpos"][keep].astype(np.int64)
    e["probe_id"] = np.full(len(keep), probe["id"], dtype=np.int64)
    e["probe_channel_number"] = channels["local"][keep].astype(np.int64)
    e["valid_data"] = channels["valid"][keep].astype(bool)
    for axis in "xyz":
        e[axis] = np.zeros(len(keep))
    e["imp"] = np.full(len(keep), np.nan)
    e.create_dataset("filtering", data=np.full(len(keep), "LFP band: 1000 Hz low-pass", dtype=object), dtype=_STR)


def _csd(f: h5py.File, rng: np.random.Generator, depth: np.ndarray, hpos: np.ndarray, polarity: np.ndarray) -> None:
    t = np.arange(-0.1, 0.6, 1 / LFP_RATE)
    response = _evoked(t, np.array([0.0]))
    curvature = -np.gradient(np.gradient(polarity))
    data = response[:, None] * curvature[None, :] * 1e3 + rng.normal(0, 1e-3, (len(t), len(depth)))
    g = f.create_group("processing/current_source_density")
    g.attrs.update({"namespace": "core", "neurodata_type": "ProcessingModule",
                    "description": "Precalculated current source density"})
    c = g.create_group("ecephys_csd")
    c.attrs.update({"namespace": "ndx-aibs-ecephys", "neurodata_type": "EcephysCSD"})
    ts = c.create_group("current_source_density")
    ts.attrs.update({"namespace": "core", "neurodata_type": "TimeSeries", "description": "no description",
                     "comments": "no comments"})
    ts.create_dataset("data", data=data).attrs.update({"unit": "V/cm^2", "conversion": 1.0, "resolution": -1.0})
    ts.create_dataset("timestamps", data=t).attrs.update({"unit": "seconds", "interval": 1})
    c.create_dataset("virtual_electrode_x_positions", data=hpos).attrs["unit"] = "um"
    c.create_dataset("virtual_electrode_y_positions", data=depth).attrs["unit"] = "um"
