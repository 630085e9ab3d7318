"""Check exported session folders against their ``session.json`` (``spikeprep verify``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["verify_session", "verify_out"]


def verify_session(folder: Path) -> list[str]:
    """Problems of one ``session_<id>`` folder, one line each (empty when it is whole)."""
    import pyarrow.parquet as pq
    import zarr

    problems: list[str] = []
    try:
        st = json.loads((folder / "session.json").read_text())
    except (OSError, ValueError) as exc:
        return [f"{folder}: session.json missing or unreadable ({exc})"]
    if st.get("status") != "complete":
        problems.append(f"{folder}: session.json status is {st.get('status')!r}")
    counts = st.get("counts", {})
    for name in ("units.parquet", "spike_times.parquet", "stimulus.parquet", "running.parquet", "binned.zarr"):
        if not (folder / name).exists():
            problems.append(f"{folder / name}: missing")
    if problems:
        return problems

    def rows(name: str) -> int:
        return pq.ParquetFile(folder / name).metadata.num_rows

    try:
        expected = {"units.parquet": counts["units"], "spike_times.parquet": counts["spikes"],
                    "stimulus.parquet": counts["stimulus_rows"], "running.parquet": counts["running_rows"]}
        for name, n in expected.items():
            if rows(name) != n:
                problems.append(f"{folder / name}: {rows(name)} rows, session.json says {n}")
        n_spikes = pq.read_table(folder / "units.parquet", columns=["n_spikes"]).column(0).to_numpy()
        if int(n_spikes.sum()) != counts["spikes"]:
            problems.append(f"{folder / 'units.parquet'}: n_spikes sum to {int(n_spikes.sum())}, expected {counts['spikes']}")
        arr = zarr.open_group(str(folder / "binned.zarr"), mode="r")["counts"]
        if list(arr.shape) != list(counts["binned_shape"]):
            problems.append(f"{folder / 'binned.zarr'}: shape {list(arr.shape)}, session.json says {counts['binned_shape']}")
        else:
            per_unit = np.zeros(arr.shape[1], dtype=np.int64)
            step = arr.chunks[0] * 8
            for a in range(0, arr.shape[0], step):
                per_unit += arr[a : a + step].sum(axis=0, dtype=np.int64)
            if int(per_unit.sum()) != counts["binned_total"]:
                problems.append(f"{folder / 'binned.zarr'}: counts sum to {int(per_unit.sum())}, "
                                f"session.json says {counts['binned_total']}")
            if len(n_spikes) == len(per_unit) and (per_unit > n_spikes).any():
                problems.append(f"{folder / 'binned.zarr'}: some units have more counts than spikes")
    except Exception as exc:  # unreadable parquet or zarr: report, don't crash
        problems.append(f"{folder}: unreadable output ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    return problems


def verify_out(out: str | Path) -> tuple[list[str], int]:
    """Problems of every ``session_<id>`` folder in ``out``, and how many were checked."""
    folders = sorted(p for p in Path(out).glob("session_*") if p.is_dir())
    problems: list[str] = []
    for f in folders:
        problems += verify_session(f)
    if not folders:
        problems.append(f"{out}: no session_<id> folders")
    return problems, len(folders)
