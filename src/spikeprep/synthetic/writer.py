"""Synthetic session NWB files in the Allen Visual Coding – Neuropixels layout.

Written with h5py, deterministic per seed (each unit draws from its own
``numpy.random.default_rng([seed, unit])`` stream, like SpikeInterface's seeded
generators), in bounded memory at any scale: spikes are generated unit by unit and
appended to the file in blocks.

Three layouts, as in ``../shared/allen/FORMAT.md``:

``"2020"``
    the June 2020 release (NWB 2.2.2): electrodes ``local_index`` and ``location``,
    ``units/waveform_halfwidth``, spontaneous rows without ``stimulus_index``.
``"sdk"``
    AllenSDK ≥ 2.13's writer: ``probe_channel_number``, no ``waveform_halfwidth``.
``"2019"``
    the Oct 2019 files: ``manual_structure_acronym`` instead of ``location``, running
    timestamps of shape (2, N) and no ``running_speed_end_times``.

The same seed and sizes give the same content in every layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from ..io.lfp import lfp_file_name
from .behaviour import write_eye_tracking, write_optotagging, write_subject
from .lfp import LFP_RATE, write_probe_lfp
from .nwb_conform import conform
from .spec import VISUAL_AREAS, SynthSpec, check_spec
from .stimuli import presentations, write_stimulus
from .tuning import evoked_spikes, plant, running_trace, stimulus_columns

__all__ = ["write_session", "truth_path"]

_BELOW_CORTEX = (("CA1", 260), ("DG", 300), ("CA3", 180), ("LP", 520), ("LGd", 380), ("APN", 500))
_STR = h5py.string_dtype("utf-8")
_CHANNELS_PER_PROBE = 384
_FLUSH_SPIKES = 4_000_000
_HILL_MIN_ISI_S = 0.000166


def write_session(path: str | Path, spec: SynthSpec | None = None, **kwargs: object) -> Path:
    """Write one synthetic session NWB file.

    Parameters
    ----------
    path : str or Path
        Output file (overwritten; written to a side file and renamed into place).
    spec : SynthSpec, optional
        What to generate; keyword arguments build one when omitted.

    Returns
    -------
    Path
        The file written.
    """
    spec = spec or SynthSpec(**kwargs)  # type: ignore[arg-type]
    check_spec(spec)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    rng = np.random.default_rng([spec.seed, 0])
    probes = _probes(spec)
    channels = _channels(spec, probes, rng)
    units = _units(spec, channels, rng)
    try:
        with h5py.File(tmp, "w", libver="latest") as f:
            _write_header(f, spec)
            _write_probes(f, spec, probes)
            _write_electrodes(f, spec, channels, probes)
            spike_stats = _write_spikes(f, spec, units)
            _write_unit_columns(f, spec, units, spike_stats)
            if spec.waveforms:
                _write_waveforms(f, spec)
            write_stimulus(f, spec)
            _write_invalid_times(f, spec, probes)
            _write_running(f, spec)
            if spec.optotagging:
                write_optotagging(f, spec)
            if spec.eye_tracking:
                write_eye_tracking(f, spec)
            conform(f)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    if spec.tuned:
        _write_truth(path, spec, units, channels)
    if spec.lfp:
        flashes = presentations(spec).get("flashes", {}).get("start_time", [])
        for index, probe in enumerate(probes):
            write_probe_lfp(path.with_name(lfp_file_name(probe["id"])), spec, {**probe, "index": index}, channels,
                            flashes)
    return path


def truth_path(path: str | Path) -> Path:
    """Where the planted truth of a session file goes: ``<name>.truth.json`` beside it."""
    path = Path(path)
    return path.with_name(path.stem + ".truth.json")


def _write_truth(path: Path, spec: SynthSpec, units: dict, channels: dict[str, np.ndarray]) -> None:
    rows = [{"unit_id": int(units["id"][u]), "structure_acronym": str(channels["area"][units["peak"][u]]),
             "tuned": units["tuning"][u] is not None, **(units["tuning"][u] or {})} for u in range(spec.n_units)]
    truth = {"seed": spec.seed, "session_id": spec.sid, "duration_s": spec.duration, "units": rows}
    tmp = truth_path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(truth, indent=1))
    tmp.replace(truth_path(path))


# ----------------------------------------------------------------------------- layout
def _probes(spec: SynthSpec) -> list[dict]:
    names = [f"probe{c}" for c in "ABCDEF"[: spec.n_probes]]
    base = 800_000_000 + 1000 * spec.seed
    return [{"id": base + 7 * i, "name": n, "area": VISUAL_AREAS[i]} for i, n in enumerate(names)]


def _channels(spec: SynthSpec, probes: list[dict], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Channel table: areas along the shank, the visual area near the top, air above."""
    n = _CHANNELS_PER_PROBE
    local = np.arange(n)
    vpos = 20 * (local // 2 + 1)
    hpos = np.array([43, 11, 59, 27])[local % 4]
    cols: dict[str, list] = {k: [] for k in ("id", "probe", "local", "vpos", "hpos", "area", "valid")}
    for p_i, probe in enumerate(probes):
        surface = rng.uniform(3300, 3620)
        areas = np.full(n, "APN", dtype=object)
        areas[vpos > surface] = "None"
        edge = surface - rng.uniform(820, 980)
        areas[(vpos <= surface) & (vpos > edge)] = probe["area"]
        for name, thick in _BELOW_CORTEX:
            low = edge - thick
            areas[(vpos <= edge) & (vpos > low)] = name
            edge = low
        valid = np.ones(n, bool)
        valid[191] = False  # the reference channel of a Neuropixels 1.0 probe
        valid[rng.integers(0, n)] = False
        cols["id"].append(850_000_000 + 1000 * spec.seed + 400 * p_i + local)
        cols["probe"].append(np.full(n, p_i))
        cols["local"].append(local)
        cols["vpos"].append(vpos)
        cols["hpos"].append(hpos)
        cols["area"].append(areas)
        cols["valid"].append(valid)
    out = {k: np.concatenate(v) for k, v in cols.items()}
    m = len(out["id"])
    out["x"] = np.round(rng.uniform(7600, 9600) + 0.1 * rng.standard_normal(m) * 30, 1)
    out["y"] = np.round(4200 - out["vpos"] * 0.9 + rng.normal(0, 5, m), 1)
    out["z"] = np.round(rng.uniform(7000, 9500) + rng.normal(0, 5, m), 1)
    return out


def _units(spec: SynthSpec, ch: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-unit parameters: peak channel, quality, rate, waveform shape, spike quirks."""
    n = spec.n_units
    in_brain = np.flatnonzero(ch["area"] != "None")
    air = np.flatnonzero(ch["area"] == "None")
    n_air = int(round(0.05 * n)) if len(air) else 0
    cortex = np.isin(ch["area"][in_brain], VISUAL_AREAS)
    weight = np.where(cortex, 3.0, 1.0)  # cortex is dense with units, as in the real sessions
    peak = np.concatenate([rng.choice(in_brain, n - n_air, p=weight / weight.sum()), rng.choice(air, n_air)])
    rng.shuffle(peak)
    quality = np.where(rng.random(n) < 0.38, "noise", "good").astype(object)
    quality[ch["area"][peak] == "None"] = "noise"
    sigma = 1.1
    mu = np.log(spec.mean_rate) - sigma**2 / 2
    rate = np.clip(rng.lognormal(mu, sigma, n), 0.02, 150.0)
    kind = rng.choice(["plain", "violator", "burster"], n, p=[0.8, 0.08, 0.12])
    if n >= 4:
        rate[:2] = 0.0  # one zero-spike unit and one single-spike unit (see _spike_train)
        kind[:2] = "plain"
    fs = rng.random(n) < 0.2
    duration = np.where(fs, rng.normal(0.26, 0.05, n), rng.normal(0.72, 0.15, n)).clip(0.1, 1.5)
    duration[rng.random(n) < 0.01] = np.nan
    ids = 950_000_000 + 1000 * spec.seed + rng.permutation(max(4 * n, 10))[:n]
    area = ch["area"][peak]
    return {
        "tuning": [plant(spec, u, str(area[u]), quality[u] == "good") for u in range(n)],
        "id": ids.astype(np.int64),
        "peak": peak,
        "quality": quality,
        "rate": rate,
        "kind": kind,
        "waveform_duration": np.round(duration, 6),
        "waveform_halfwidth": np.round(duration * rng.uniform(0.35, 0.55, n), 6),
        "amplitude_v": rng.lognormal(np.log(1e-4), 0.4, n),
    }


def _spike_train(spec: SynthSpec, u: int, rate: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One unit's sorted spike times and amplitudes, from its own seeded stream."""
    rng = np.random.default_rng([spec.seed, 1, u])
    T = spec.duration
    if u == 1 and spec.n_units >= 4:
        return np.array([rng.uniform(0, T)]), np.array([1e-4])
    n = int(rng.poisson(rate * T))
    dead = 0.002
    n = min(n, int(T / dead) - 1)
    # Sorted uniforms on a shortened line plus k * dead time: a Poisson train with an
    # absolute refractory period, in O(n) memory and one sort.
    base = np.sort(rng.uniform(0.0, T - n * dead, n)) + dead * np.arange(n)
    extra: list[np.ndarray] = []
    if kind == "violator" and n > 10:
        pick = rng.choice(n, max(1, int(n * rng.uniform(0.002, 0.02))), replace=False)
        extra.append(base[pick] + rng.uniform(0.0002, 0.0014, len(pick)))
    if kind == "burster" and n > 10:
        starts = rng.choice(n, max(1, int(n * rng.uniform(0.02, 0.1))), replace=False)
        t = base[starts]
        for _ in range(int(rng.integers(1, 4))):
            t = t + rng.uniform(0.003, 0.006, len(t))
            extra.append(t)
    if extra:
        base = np.concatenate([base, *extra])
        base = np.sort(base[base < T])
    amps = rng.lognormal(np.log(1e-4), 0.25, len(base))
    return base, amps


def _write_header(f: h5py.File, spec: SynthSpec) -> None:
    version = {"2020": "2.2.2", "sdk": "2.7.0", "2019": "2.0b"}[spec.layout]
    f.attrs.update({"namespace": "core", "neurodata_type": "NWBFile", "nwb_version": version})
    f["identifier"] = str(spec.sid)
    f["session_description"] = "synthetic Allen Visual Coding - Neuropixels session (spikeprep)"
    f["session_start_time"] = "2019-01-19T08:54:18-08:00"
    f["timestamps_reference_time"] = "2019-01-19T08:54:18-08:00"
    g = f.create_group("general")
    g["session_id"] = str(spec.sid)
    g["stimulus"] = "brain_observatory_1.1" if spec.seed % 2 == 0 else "functional_connectivity"
    g["institution"] = "Allen Institute for Brain Science"
    write_subject(f, spec)
    for grp in ("acquisition", "analysis", "stimulus/presentation", "stimulus/templates", "intervals"):
        f.require_group(grp)


def _write_probes(f: h5py.File, spec: SynthSpec, probes: list[dict]) -> None:
    for p in probes:
        dev = f.create_group(f"general/devices/{p['name']}")
        dev.attrs.update({"namespace": "ndx-aibs-ecephys", "neurodata_type": "EcephysProbe",
                          "description": "Neuropixels 1.0 Probe", "manufacturer": "imec",
                          "probe_id": np.int64(p["id"]), "sampling_rate": 30000.0})
        grp = f.create_group(f"general/extracellular_ephys/{p['name']}")
        grp.attrs.update({"namespace": "ndx-aibs-ecephys", "neurodata_type": "EcephysElectrodeGroup",
                          "description": "Ecephys Electrode Group", "location": "See electrode locations",
                          "probe_id": np.int64(p["id"]), "has_lfp_data": np.bool_(spec.lfp),
                          "lfp_sampling_rate": LFP_RATE})
        grp["device"] = h5py.SoftLink(f"/general/devices/{p['name']}")


def _write_electrodes(f: h5py.File, spec: SynthSpec, ch: dict[str, np.ndarray], probes: list[dict]) -> None:
    e = f.create_group("general/extracellular_ephys/electrodes")
    loc_col = "manual_structure_acronym" if spec.layout == "2019" else "location"
    idx_col = "probe_channel_number" if spec.layout == "sdk" else "local_index"
    names = np.array([p["name"] for p in probes], dtype=object)[ch["probe"]]
    pids = np.array([p["id"] for p in probes], dtype=np.int64)[ch["probe"]]
    cols = [loc_col, "group", "group_name", "probe_vertical_position", "probe_horizontal_position",
            "probe_id", idx_col, "valid_data", "x", "y", "z", "imp", "filtering"]
    e.attrs.update({"namespace": "hdmf-common", "neurodata_type": "DynamicTable",
                    "colnames": np.array(cols, dtype=object), "description": "electrodes"})
    e["id"] = ch["id"].astype(np.int64)
    e.create_dataset(loc_col, data=ch["area"].astype(object), dtype=_STR)
    refs = [f[f"general/extracellular_ephys/{n}"].ref for n in names]
    e.create_dataset("group", data=refs, dtype=h5py.ref_dtype)
    e.create_dataset("group_name", data=names, dtype=_STR)
    e["probe_vertical_position"] = ch["vpos"].astype(np.int64)
    e["probe_horizontal_position"] = ch["hpos"].astype(np.int64)
    e["probe_id"] = pids
    e[idx_col] = ch["local"].astype(np.int64)
    e["valid_data"] = ch["valid"]
    for k in "xyz":
        e[k] = ch[k]
    e["imp"] = np.full(len(ch["id"]), np.nan)
    e.create_dataset("filtering", data=np.full(len(ch["id"]), "AP band: 500 Hz high-pass; LFP band: 1000 Hz low-pass", dtype=object), dtype=_STR)


def _iter_trains(spec: SynthSpec, units: dict[str, np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    columns = stimulus_columns(presentations(spec)) if spec.tuned else {}
    running = running_trace(spec)
    for u in range(spec.n_units):
        t, a = _spike_train(spec, u, float(units["rate"][u]), str(units["kind"][u]))
        planted = units["tuning"][u]
        if planted is not None:
            extra = evoked_spikes(spec, u, planted, columns, running)
            extra = extra[(extra >= 0) & (extra < spec.duration)]
            amps = np.random.default_rng([spec.seed, 13, u]).lognormal(np.log(1e-4), 0.25, len(extra))
            order = np.argsort(np.concatenate([t, extra]), kind="stable")
            t, a = np.concatenate([t, extra])[order], np.concatenate([a, amps])[order]
        yield t, a


def _write_spikes(f: h5py.File, spec: SynthSpec, units: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Append every unit's spikes to ``units/spike_times`` and ``spike_amplitudes``."""
    g = f.create_group("units")
    expected = float(np.sum(units["rate"])) * spec.duration
    chunk = (int(np.clip(expected / 4, 1 << 12, 1 << 20)),)  # 8 MB chunks at full scale, small for small files
    st = g.create_dataset("spike_times", shape=(0,), maxshape=(None,), dtype="f8", chunks=chunk)
    sa = g.create_dataset("spike_amplitudes", shape=(0,), maxshape=(None,), dtype="f8", chunks=chunk)
    n = spec.n_units
    ends = np.zeros(n, np.int64)
    n_short = np.zeros(n, np.int64)  # ISIs < 1.5 ms after duplicate removal, for the Hill metric
    n_kept = np.zeros(n, np.int64)   # spikes left after duplicate removal
    first, last = np.full(n, np.nan), np.full(n, np.nan)
    buf_t: list[np.ndarray] = []
    buf_a: list[np.ndarray] = []
    pending = written = 0

    def flush() -> None:
        nonlocal pending, written
        if not pending:
            return
        for ds, buf in ((st, buf_t), (sa, buf_a)):
            ds.resize((written + pending,))
            ds[written:] = np.concatenate(buf)
            buf.clear()
        written += pending
        pending = 0

    total = 0
    for u, (t, a) in enumerate(_iter_trains(spec, units)):
        total += len(t)
        ends[u] = total
        if len(t):
            first[u], last[u] = t[0], t[-1]
            # ecephys_spike_sorting: spikes ≤ 0.166 ms after the one before are duplicates, dropped first
            kept = t[np.concatenate([[True], np.diff(t) > _HILL_MIN_ISI_S])]
            n_short[u] = int(np.count_nonzero(np.diff(kept) < 0.0015))
            n_kept[u] = len(kept)
        buf_t.append(t)
        buf_a.append(a * units["amplitude_v"][u] / 1e-4)
        pending += len(t)
        if pending >= _FLUSH_SPIKES:
            flush()
    flush()
    for name in ("spike_times_index", "spike_amplitudes_index"):
        g[name] = ends
        g[name].attrs.update({"namespace": "hdmf-common", "neurodata_type": "VectorIndex"})
    return {"n": np.diff(ends, prepend=0), "n_short": n_short, "n_kept": n_kept, "first": first, "last": last}


def _write_unit_columns(f: h5py.File, spec: SynthSpec, units: dict[str, np.ndarray], s: dict[str, np.ndarray]) -> None:
    g = f["units"]
    n = spec.n_units
    rng = np.random.default_rng([spec.seed, 2])
    ch_local = f["general/extracellular_ephys/electrodes"]
    ch_ids = ch_local["id"][:]
    idx_col = "probe_channel_number" if spec.layout == "sdk" else "local_index"
    counts = s["n"]
    t_min, t_max = np.nanmin(s["first"]) if n else 0.0, np.nanmax(s["last"]) if n else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        # ecephys_spike_sorting's Hill ratio with min_isi = 0.166 ms, on the spikes left after duplicates
        isi_viol = s["n_short"] * (t_max - t_min) / (2.0 * s["n_kept"].astype(float) ** 2 *
                                                     (0.0015 - _HILL_MIN_ISI_S))
    isi_viol[counts == 0] = np.nan

    def noisy(x: np.ndarray, p: float = 0.03) -> np.ndarray:
        x = x.astype(float)
        x[rng.random(n) < p] = np.nan
        return x

    cols: dict[str, np.ndarray] = {
        "PT_ratio": noisy(rng.uniform(0.2, 1.2, n)),
        "amplitude": rng.lognormal(np.log(120), 0.5, n),
        "amplitude_cutoff": np.round(np.clip(rng.beta(1, 18, n), 0, 0.5), 6),
        "cluster_id": np.arange(n, dtype=np.int64),
        "cumulative_drift": rng.uniform(10, 400, n),
        "d_prime": noisy(rng.lognormal(np.log(3.5), 0.4, n)),
        "firing_rate": counts / spec.duration,
        "isi_violations": isi_viol,
        "isolation_distance": noisy(rng.lognormal(np.log(45), 0.5, n)),
        "l_ratio": noisy(rng.lognormal(np.log(0.03), 1.0, n)),
        "local_index": ch_local[idx_col][:][units["peak"]].astype(np.int64),
        "max_drift": rng.uniform(2, 60, n),
        "nn_hit_rate": noisy(rng.uniform(0.3, 1.0, n)),
        "nn_miss_rate": noisy(rng.uniform(0, 0.05, n)),
        "peak_channel_id": ch_ids[units["peak"]].astype(np.int64),
        "presence_ratio": np.round(np.clip(1.0 - rng.beta(1, 25, n), 0.5, 0.99), 2),
        "quality": units["quality"],
        "recovery_slope": noisy(rng.normal(-0.08, 0.03, n)),
        "repolarization_slope": noisy(rng.lognormal(np.log(0.5), 0.4, n)),
        "silhouette_score": noisy(rng.uniform(-0.1, 0.4, n)),
        "snr": rng.lognormal(np.log(2.8), 0.5, n),
        "spread": rng.choice([30.0, 40.0, 50.0, 60.0, 80.0], n),
        "velocity_above": noisy(rng.normal(0.3, 0.4, n), 0.2),
        "velocity_below": noisy(rng.normal(-0.3, 0.4, n), 0.2),
        "waveform_duration": units["waveform_duration"],
    }
    if spec.layout == "2020":
        cols["waveform_halfwidth"] = units["waveform_halfwidth"]
    g["id"] = units["id"]
    for k, v in cols.items():
        if v.dtype == object:
            g.create_dataset(k, data=v, dtype=_STR)
        else:
            g[k] = v
    colnames = list(cols) + ["spike_times", "spike_amplitudes"] + (["waveform_mean"] if spec.waveforms else [])
    g.attrs.update({"namespace": "core", "neurodata_type": "Units", "description": "",
                    "colnames": np.array(colnames, dtype=object)})


def _write_waveforms(f: h5py.File, spec: SynthSpec, samples: int = 82) -> None:
    """``units/waveform_mean`` (one 384 × 82 float64 block of noise per unit) and its index."""
    g = f["units"]
    rows = spec.n_units * _CHANNELS_PER_PROBE
    ds = g.create_dataset("waveform_mean", shape=(rows, samples), dtype="f8",
                          chunks=(min(rows, _CHANNELS_PER_PROBE * 16), samples))
    rng = np.random.default_rng([spec.seed, 7])
    step = _CHANNELS_PER_PROBE * 64
    for a in range(0, rows, step):
        b = min(rows, a + step)
        ds[a:b] = rng.standard_normal((b - a, samples)) * 1e-5
    g["waveform_mean_index"] = np.arange(1, spec.n_units + 1, dtype=np.int64) * _CHANNELS_PER_PROBE
    g["waveform_mean_index"].attrs.update({"namespace": "hdmf-common", "neurodata_type": "VectorIndex"})


def _write_invalid_times(f: h5py.File, spec: SynthSpec, probes: list[dict]) -> None:
    T = spec.duration
    g = f.create_group("intervals/invalid_times")
    g["id"] = np.arange(2, dtype=np.int64)
    g["start_time"] = np.array([0.30 * T, 0.70 * T])
    g["stop_time"] = np.array([0.30 * T + min(5.0, 0.01 * T), 0.70 * T + min(30.0, 0.02 * T)])
    p = probes[-1]
    tags = ["stimulus", "", "optotagging_artifact", "EcephysProbe", str(p["id"]), p["name"]]
    g.create_dataset("tags", data=np.array(tags, dtype=object), dtype=_STR)
    g["tags_index"] = np.array([3, 6], dtype=np.int64)
    g.attrs.update({"namespace": "core", "neurodata_type": "TimeIntervals",
                    "colnames": np.array(["start_time", "stop_time", "tags"], dtype=object)})


def _write_running(f: h5py.File, spec: SynthSpec) -> None:
    start, end, velocity = running_trace(spec)
    g = f.create_group("processing/running")
    g.attrs.update({"namespace": "core", "neurodata_type": "ProcessingModule"})
    if spec.layout == "2019":
        g["running_speed/data"] = velocity
        g["running_speed/timestamps"] = np.vstack([start, end])
        return
    g["running_speed/data"] = velocity
    g["running_speed/timestamps"] = start
    g["running_speed_end_times/data"] = velocity
    g["running_speed_end_times/timestamps"] = end
