"""Mutated session NWB files, and a judge of what spikeprep does with them.

A mutant is good behaviour when ``spikeprep export`` either exits 1 with exactly one
line on stderr naming the file (and nothing marked complete), or exits 0 with an
output that verifies. Anything else (a traceback, another exit code, a hang, a
session marked complete that does not verify) is misbehaviour.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

U = "units"
E = "general/extracellular_ephys/electrodes"
IMPORTANT = [f"{U}/spike_times", f"{U}/spike_times_index", f"{U}/id", f"{U}/peak_channel_id", f"{U}/quality",
             f"{U}/snr", f"{U}/waveform_duration", f"{E}/id", f"{E}/location", f"{E}/probe_vertical_position",
             f"{E}/probe_id", "intervals/drifting_gratings_presentations/start_time", "intervals",
             "processing/running/running_speed/data", "processing/running", "general/session_id", U, E,
             "intervals/invalid_times/tags_index", "general/extracellular_ephys/probeA"]


def _replace(f: h5py.File, name: str, data: object, dtype: object = None) -> None:
    del f[name]
    f.create_dataset(name, data=data, dtype=dtype)


def m_remove(f: h5py.File, rng: np.random.Generator) -> str:
    name = str(rng.choice([n for n in IMPORTANT if n in f]))
    del f[name]
    return f"removed {name}"


def m_dtype(f: h5py.File, rng: np.random.Generator) -> str:
    name, dt = [(f"{U}/spike_times", np.float32), (f"{U}/spike_times", np.int64), (f"{U}/spike_times_index", np.float64),
                (f"{U}/id", np.float64), (f"{E}/probe_vertical_position", np.float32),
                (f"{U}/peak_channel_id", np.float64)][rng.integers(6)]
    _replace(f, name, f[name][()].astype(dt))
    return f"{name} as {np.dtype(dt)}"


def m_strings(f: h5py.File, rng: np.random.Generator) -> str:
    name = str(rng.choice([f"{U}/snr", f"{U}/waveform_duration", f"{U}/spike_times", f"{E}/probe_vertical_position",
                           "intervals/gabors_presentations/start_time", f"{U}/id", f"{U}/peak_channel_id"]))
    _replace(f, name, np.array([str(v) for v in f[name][()]], dtype=object), h5py.string_dtype())
    return f"{name} as strings"


def m_index(f: h5py.File, rng: np.random.Generator) -> str:
    idx = f[f"{U}/spike_times_index"][()]
    kind = rng.integers(4)
    if kind == 0:
        idx = idx[::-1].copy()
    elif kind == 1:
        idx = idx + 10
    elif kind == 2:
        idx = idx[:-3]
    else:
        idx = idx.astype(np.uint16)
    _replace(f, f"{U}/spike_times_index", idx)
    return f"spike_times_index kind {kind}"


def m_times(f: h5py.File, rng: np.random.Generator) -> str:
    t = f[f"{U}/spike_times"][()]
    kind = rng.integers(4)
    pos = rng.integers(0, len(t), 5)
    if kind == 0:
        t[pos] = np.nan
    elif kind == 1:
        t[pos] = -rng.uniform(0.1, 10, 5)
    elif kind == 2:
        t[pos[0] : pos[0] + 50] = t[pos[0] : pos[0] + 50][::-1].copy()
    else:
        t[pos] = np.inf
    _replace(f, f"{U}/spike_times", t)
    return f"spike times kind {kind}"


def m_negative_then_empty_last(f: h5py.File, rng: np.random.Generator) -> str:
    """Negative spike times while the last unit has none (np.add.reduceat used to fail there)."""
    t = f[f"{U}/spike_times"][()]
    index = f[f"{U}/spike_times_index"][()]
    keep = int(index[-2]) if len(index) > 1 else 0
    t = t[:keep]
    if len(t):
        t[rng.integers(0, len(t), 3)] = -rng.uniform(0.1, 10, 3)
    _replace(f, f"{U}/spike_times", t)
    _replace(f, f"{U}/spike_times_index", np.minimum(index, keep))
    return "negative times, empty last unit"


def m_sample_rounded(f: h5py.File, rng: np.random.Generator) -> str:
    """Spike times on the 30 kHz sample grid, a share of them exactly on 5 ms bin edges."""
    t = np.round(f[f"{U}/spike_times"][()] * 30000) / 30000
    on_edge = rng.random(len(t)) < 0.1
    t[on_edge] = np.floor(t[on_edge] * 200) * 0.005
    index = f[f"{U}/spike_times_index"][()]
    for a, b in zip(np.r_[0, index[:-1]], index):
        t[a:b].sort()
    _replace(f, f"{U}/spike_times", t)
    return "sample-rounded times on bin edges"


def m_empty_units(f: h5py.File, rng: np.random.Generator) -> str:
    for k in list(f[U].keys()):
        ds = f[f"{U}/{k}"]
        if isinstance(ds, h5py.Dataset) and ds.ndim >= 1:
            _replace(f, f"{U}/{k}", np.empty((0,) + ds.shape[1:], ds.dtype), ds.dtype)
    return "empty units table"


def m_duplicate_ids(f: h5py.File, rng: np.random.Generator) -> str:
    ids = f[f"{U}/id"][()]
    ids[1] = ids[0]
    _replace(f, f"{U}/id", ids)
    return "duplicate unit ids"


def m_missing_channel(f: h5py.File, rng: np.random.Generator) -> str:
    pc = f[f"{U}/peak_channel_id"][()]
    pc[rng.integers(len(pc))] = -5
    _replace(f, f"{U}/peak_channel_id", pc)
    return "peak channel missing"


def m_unequal(f: h5py.File, rng: np.random.Generator) -> str:
    name = str(rng.choice(["intervals/static_gratings_presentations/stop_time",
                           "intervals/static_gratings_presentations/orientation", f"{E}/location",
                           "processing/running/running_speed/data", f"{U}/snr",
                           "processing/running/running_speed_end_times/timestamps"]))
    _replace(f, name, f[name][()][:-2], f[name].dtype)
    return f"{name} shortened"


HDF5_MUTATORS: list[Callable[[h5py.File, np.random.Generator], str]] = [
    m_remove, m_dtype, m_strings, m_index, m_times, m_empty_units, m_duplicate_ids, m_missing_channel, m_unequal,
    m_negative_then_empty_last, m_sample_rounded]


def make_mutant(source: Path, dest: Path, seed: int) -> str:
    """Write one mutant of ``source`` to ``dest``; return what was done."""
    rng = np.random.default_rng(seed)
    kind = int(rng.integers(len(HDF5_MUTATORS) + 2))
    if kind == len(HDF5_MUTATORS):  # truncated at a random offset
        data = source.read_bytes()
        cut = int(rng.integers(0, len(data)))
        dest.write_bytes(data[:cut])
        return f"truncated at {cut}"
    shutil.copy(source, dest)
    if kind == len(HDF5_MUTATORS) + 1:  # random bytes flipped
        size = dest.stat().st_size
        with open(dest, "r+b") as fh:
            for off in rng.integers(0, size, int(rng.integers(1, 40))):
                fh.seek(int(off))
                byte = fh.read(1)
                fh.seek(int(off))
                fh.write(bytes([byte[0] ^ 0xFF]) if byte else b"\0")
        return "bytes flipped"
    with h5py.File(dest, "a") as f:
        return HDF5_MUTATORS[kind](f, rng)


def judge(mutant: Path, out: Path, timeout: float = 60.0) -> tuple[bool, str]:
    """Run ``spikeprep export`` on a mutant; return (behaved, explanation)."""
    cmd = [sys.executable, "-m", "spikeprep.cli", "export", str(mutant), "--out", str(out), "--quiet", "--no-qc"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "hang"
    err = [line for line in p.stderr.splitlines() if line.strip()]
    complete = list(out.glob("session_*/session.json"))
    if p.returncode == 0:
        from spikeprep.export.verify import verify_out

        problems, _ = verify_out(out)
        return (not problems and len(complete) == 1), "exported" + (f" but {problems[0]}" if problems else "")
    if p.returncode == 1:
        if "Traceback" in p.stderr:
            return False, "traceback: " + p.stderr[-300:]
        if len(err) != 1 or str(mutant) not in err[0]:
            return False, "not one line naming the file: " + " | ".join(err)[:300]
        if complete:
            return False, "failed but a session is marked complete"
        return True, err[0]
    return False, f"exit {p.returncode}: {p.stderr[-300:]}"
