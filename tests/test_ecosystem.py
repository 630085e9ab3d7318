"""Outputs in other tools: pyarrow datasets across sessions, DuckDB, polars, xarray, pynapple."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spikeprep
from spikeprep.export.tables import column_units
from spikeprep.pipeline import export_file
from spikeprep.synthetic import SynthSpec, write_session

SPECS = [SynthSpec(n_units=30, duration=60.0, n_probes=3, seed=s) for s in (101, 102)]


@pytest.fixture(scope="module")
def out(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eco")
    for spec in SPECS:
        r = export_file(write_session(synth_dir / f"eco_{spec.seed}.nwb", spec), root)
        assert r.ok, r.message
    return root


def test_every_table_has_session_id_and_units(out: Path) -> None:
    sid = SPECS[0].sid
    folder = out / f"session_{sid}"
    for name in ("units", "stimulus", "running"):
        df = pd.read_parquet(folder / f"{name}.parquet")
        assert (df["session_id"] == sid).all(), name
    assert column_units(folder / "running.parquet")["velocity"] == "cm/s"
    assert column_units(folder / "stimulus.parquet")["start_time"] == "s"
    assert column_units(folder / "spike_times.parquet")["time"] == "s"
    assert column_units(folder / "channels.parquet")["probe_vertical_position"] == "µm"
    assert column_units(folder / "probes.parquet")["sampling_rate"] == "Hz"


def test_open_units_of_every_session(out: Path) -> None:
    units = spikeprep.open_units(out)
    assert sorted(units["session_id"].unique()) == sorted(s.sid for s in SPECS) and len(units) == 60
    few = spikeprep.open_units(out, columns=["region"])
    assert list(few.columns) == ["session_id", "region"]
    one = spikeprep.open_units(out, SPECS[1].sid)
    pd.testing.assert_frame_equal(units[units["session_id"] == SPECS[1].sid], one, check_dtype=False)


def test_units_command(out: Path, tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "spikeprep.cli", "units", str(out), "--where", "passes_allen_qc",
                        "--output", str(tmp_path / "good.csv")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    good = pd.read_csv(tmp_path / "good.csv")
    assert good["passes_allen_qc"].all() and len(good) > 0
    assert f"{len(good)} units" in p.stdout and "passing" in p.stdout
    bad = subprocess.run([sys.executable, "-m", "spikeprep.cli", "units", str(out), "--output", str(tmp_path / "x.txt")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and ".parquet or .csv" in bad.stderr


def test_pynapple_objects(out: Path) -> None:
    import pynapple as nap

    sid = SPECS[0].sid
    d = spikeprep.to_pynapple(out, sid)
    units = spikeprep.open_units(out, sid)
    group = d["units"]
    assert isinstance(group, nap.TsGroup) and sorted(group.keys()) == sorted(units.index)
    trains = spikeprep.open_spike_times(out, sid)
    for u in units.index:
        np.testing.assert_array_equal(group[u].index, trains[u])
    assert (units["n_spikes"] == 0).any() and len(group) == len(units)  # zero-spike units kept
    ids = np.array(list(group.keys()))
    meta = units.loc[ids]
    assert list(group["region"].fillna("-")) == list(meta["region"].fillna("-"))
    np.testing.assert_array_equal(group["passes_allen_qc"].to_numpy(bool), meta["passes_allen_qc"].to_numpy())
    np.testing.assert_array_equal(group["n_spikes"].to_numpy(), meta["n_spikes"].to_numpy())
    assert isinstance(d["running"], nap.Tsd) and len(d["running"]) == len(spikeprep.open_running(out, sid))
    stim = spikeprep.open_stimulus(out, sid)
    assert set(d["stimulus"]) == set(stim["stimulus_name"])
    flashes = stim[stim["stimulus_name"] == "flashes"]
    np.testing.assert_allclose(d["stimulus"]["flashes"]["start"], flashes["start_time"])
    assert isinstance(d["invalid"], nap.IntervalSet) and len(d["invalid"]) > 0
    counts = spikeprep.open_counts(out, sid)
    assert d["time_support"]["end"][0] == pytest.approx(counts.attrs["t_stop"])


def test_readme_tools_snippet_runs(out: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- tools-snippet -->")[1].split("```python")[1].split("```")[0]
    code = block.replace("OUT", str(out)).replace("715093703", str(SPECS[0].sid))
    ns: dict = {}
    exec(compile(code, "README tools snippet", "exec"), ns)
    assert len(ns["units"]) == 60 and set(ns["per_area"]["session_id"]) <= {s.sid for s in SPECS}
    assert ns["spikes"]["len"].sum() == ns["units"]["n_spikes"].sum()
    assert ns["counts"].dims == ("time", "unit_id") and len(ns["visp"]) > 0
