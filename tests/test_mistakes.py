"""A table of user mistakes: each gives one line naming the file or argument and the
problem, the right exit code, no traceback, nothing overwritten and no temporary file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spikeprep.pipeline import export_file
from spikeprep.synthetic import SynthSpec, write_session


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace: a session file, its copy, an export, a bad file, an empty folder, a plain file."""
    root = tmp_path_factory.mktemp("mistakes")
    nwb = write_session(root / "s.nwb", SynthSpec(n_units=20, duration=40.0, n_probes=1, seed=44))
    shutil.copy(nwb, root / "copy.nwb")
    (root / "bad.nwb").write_text("not hdf5")
    (root / "empty").mkdir()
    (root / "plain.txt").write_text("a file")
    (root / "nodata").mkdir()
    assert export_file(nwb, root / "OUT").ok
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


SID = SynthSpec(n_units=20, duration=40.0, n_probes=1, seed=44).sid
CLOSED = "http://127.0.0.1:9/"  # nothing listens on the discard port: connection refused at once

# (arguments, exit code, what the one line must say); {w} is the workspace
CASES = [
    (["export", "{w}/missing.nwb", "--out", "{w}/o"], 1, "missing.nwb: no such file"),
    (["export", "{w}/nodata", "--out", "{w}/o"], 1, "no session NWB files in"),
    (["export", "{w}/s.nwb", "--out", "{w}/plain.txt"], 2, "--out {w}/plain.txt: is a file, not a folder"),
    (["export", "{w}/s.nwb", "--out", "{w}/o", "--bin-size", "0"], 2, "--bin-size"),
    (["export", "{w}/s.nwb", "--out", "{w}/o", "--taps", "4"], 2, "--taps"),
    (["export", "{w}/s.nwb", "--out", "{w}/o", "--sigma-bins", "-1"], 2, "--sigma-bins"),
    (["export", "{w}/s.nwb", "--out", "{w}/o", "--threshold-ms", "-3"], 2, "--threshold-ms"),
    (["export", "{w}/s.nwb", "--out", "{w}/o", "--units-query", "quality = 'good'"], 1, "not a true/false condition"),
    (["export", "{w}/s.nwb", "--out", "{w}/o", "--units-query", "no_such > 1"], 1, "bad --units-query"),
    (["export", "{w}/bad.nwb", "--out", "{w}/o"], 1, "bad.nwb: not a readable HDF5 file"),
    (["export", "{w}/empty", "--out", "{w}/o"], 1, "no session NWB files in {w}/empty"),
    (["export", "{w}/s.nwb", "--out", "{w}/o", "--workers", "two"], 2, "--workers"),
    (["export", CLOSED + "s.nwb", "--out", "{w}/o", "--cache", "{w}/o/c"], 1, "s.nwb: "),
    (["qc", "{w}/OUT", "--threshold-ms", "-3"], 2, "--threshold-ms must be a positive number"),
    (["qc", "{w}/empty"], 1, "no exported session to check"),
    (["verify", "{w}/empty"], 1, "no session_<id> folders"),
    (["synth", "{w}/s.nwb"], 2, "{w}/s.nwb exists; pass --force"),
    (["synth", "{w}/nowhere/x.nwb"], 2, "{w}/nowhere: no such folder"),
    (["synth", "{w}/x.nwb", "--duration", "-5"], 2, "--duration must be at least 10 s"),
    (["synth", "{w}/x.nwb", "--probes", "9"], 2, "--probes must be between 1 and 6"),
    (["synth", "{w}/x.nwb", "--units", "0"], 2, "--units must be at least 1"),
    (["synth", "{w}/x.nwb", "--layout", "1999"], 2, "--layout"),
    (["inspect", "{w}/empty"], 1, "{w}/empty: is a folder, not an NWB file"),
    (["inspect", "{w}/missing.nwb"], 1, "{w}/missing.nwb: no such file"),
    (["align", "{w}/OUT", "--stimulus", "nope", "--window", "0", "0.2"], 1, "unknown stimulus 'nope'; valid: "),
    (["align", "{w}/OUT", "--stimulus", "flashes", "--window", "0.3", "0.1"], 2, "--window 0.3 0.1"),
    (["align", "{w}/OUT", "--stimulus", "flashes"], 2, "--window"),
    (["align", "{w}/OUT", "--stimulus", "flashes", "--window", "0", "0.2", "--bin-size", "0"], 2, "--bin-size 0"),
    (["align", "{w}/OUT", "--stimulus", "flashes", "--window", "0", "0.2", "--session", "5"], 1,
     "session_5: not a complete export"),
    (["align", "{w}/empty", "--stimulus", "flashes", "--window", "0", "0.2"], 1, "no exported session to align"),
    (["run", "123", "--cache", "{w}/cache", "--out", "{w}/o", "--base-url", CLOSED], 1, "Connection refused"),
    (["run", "--all", "--where", "x", "--cache", "{w}/cache", "--out", "{w}/o", "--base-url", CLOSED], 2,
     "not several"),
    (["download", "--cache", "{w}/cache", "--base-url", CLOSED], 2, "give session ids, --all or --where"),
    (["sessions", "--offline", "--cache", "{w}/empty"], 1, "cannot read the session table"),
    (["demo", "--out", "{w}/plain.txt"], 2, "is a file, not a folder"),
    (["demo", "--out", "{w}/d", "--units", "0"], 2, "--units must be at least 1"),
    (["units", "{w}/OUT", "--where", "no_such >"], 2, "--where 'no_such >'"),
    (["nosuchcommand"], 2, "invalid choice"),
    (["export"], 2, "the following arguments are required"),
]


@pytest.mark.parametrize("args, code, text", CASES, ids=[" ".join(c[0][:2]) + f" #{i}" for i, c in enumerate(CASES)])
def test_a_mistake_is_one_clear_line(args: list[str], code: int, text: str, ws: Path) -> None:
    before = snapshot(ws)
    argv = [a.replace("{w}", str(ws)) for a in args]
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "spikeprep.cli", *argv, "--quiet"] if args[0] not in ("nosuchcommand",)
                       else [sys.executable, "-m", "spikeprep.cli", *argv], capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - t < 30  # offline failures come within seconds
    assert p.returncode == code, (p.returncode, p.stderr)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert text.replace("{w}", str(ws)) in lines[0], lines[0]
    assert "Traceback" not in p.stderr and "unexpected error" not in p.stderr
    after = snapshot(ws)
    changed = [k for k in before if after.get(k) != before[k]]
    assert not changed, changed  # nothing overwritten or removed
    new = {k for k in set(after) - set(before) if "/.locks/" not in "/" + k}  # (empty lock files are kept)
    assert not [k for k in new if ".tmp" in k or "/." in "/" + k], new  # no temporary files left
    for k in new:  # only the QC or catalog files of the commands that write them, never a session folder
        assert not k.startswith("OUT/session_"), k


def test_two_files_of_one_session_name_each_other(ws: Path, tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "spikeprep.cli", "export", str(ws / "s.nwb"), str(ws / "copy.nwb"),
                        "--out", str(tmp_path / "o"), "--quiet"], capture_output=True, text=True)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 2 and all(f"session {SID} is also in" in line for line in lines)
    assert str(ws / "copy.nwb") in lines[0] and str(ws / "s.nwb") in lines[1]
    assert not (tmp_path / "o" / f"session_{SID}").exists()
    assert "failed" in p.stdout and "None" not in p.stdout  # the reason is in the table too


def test_synth_gives_each_file_its_own_session_and_force_replaces(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "spikeprep.cli", "synth"]
    for name in ("a.nwb", "b.nwb"):
        assert subprocess.run(run + [str(tmp_path / name), "--units", "10", "--duration", "20"]).returncode == 0
    from spikeprep.io.nwb import peek_session_id

    assert peek_session_id(tmp_path / "a.nwb") != peek_session_id(tmp_path / "b.nwb")
    before = (tmp_path / "a.nwb").stat().st_mtime_ns
    assert subprocess.run(run + [str(tmp_path / "a.nwb"), "--units", "12", "--duration", "20", "--force"]).returncode == 0
    assert (tmp_path / "a.nwb").stat().st_mtime_ns != before


def test_demo_follows_new_settings(tmp_path: Path) -> None:
    from spikeprep.demo import run_demo
    from spikeprep.export.readers import open_units

    assert run_demo(tmp_path, n_units=12, duration=30.0, n_probes=1) == 0
    assert run_demo(tmp_path, n_units=15, duration=30.0, n_probes=1) == 0
    sid = SynthSpec(seed=0).sid
    assert len(open_units(tmp_path / "out", sid)) == 15  # not "skipped" with the old file


def test_qc_says_which_folder_it_leaves_out(ws: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    shutil.copytree(ws / "OUT", out)
    (out / "session_123").mkdir()
    (out / "session_123" / "session.json").write_text('{"session_id": 123, "status": "writing"}')
    p = subprocess.run([sys.executable, "-m", "spikeprep.cli", "qc", str(out)], capture_output=True, text=True)
    assert p.returncode == 0
    assert "session_123: not a complete export of this version; left out of the QC" in p.stderr


# ----------------------------------------------------------------------------- the Python API
def test_api_mistakes_name_the_problem(ws: Path) -> None:
    from spikeprep.analysis.session import AlignmentError, open_session
    from spikeprep.core.errors import NWBFormatError, SpikeprepError
    from spikeprep.core.model import SpikeTrains
    from spikeprep.core.options import ExportOptions
    from spikeprep.export.readers import open_units
    from spikeprep.io.nwb import read_session
    from spikeprep.rates.binning import make_grid

    with pytest.raises(NWBFormatError, match="is a folder, not an NWB file"):
        read_session(ws / "empty")
    with pytest.raises(ValueError, match="bin_size must be a positive number"):
        ExportOptions(bin_size=0)
    with pytest.raises(ValueError, match="not a whole number of 0.005 s bins"):
        make_grid(SpikeTrains.from_dict({1: [0.1]}), t_stop=1.0012)
    with pytest.raises(FileNotFoundError, match="session_123/units.parquet: not found"):
        open_units(ws / "OUT", 123)
    with pytest.raises(SpikeprepError, match="session_123: not a complete export"):
        open_session(ws / "OUT", 123)
    with pytest.raises(AlignmentError, match="unknown stimulus 'x'"):
        open_session(ws / "OUT", SID).get_stimulus_table("x")


def test_an_interrupted_dask_export_leaves_no_temporary(ws: Path, tmp_path: Path) -> None:
    from spikeprep.export.layout import OutFolder

    out = tmp_path / "o"
    orphan = out / f".tmp-session_{SID}-999999-deadbeef"
    orphan.mkdir(parents=True)
    (orphan / "units.parquet").write_bytes(b"x" * 100)
    busy = out / ".tmp-session_777-1-cafe"
    busy.mkdir()
    with OutFolder(out).session(777).lock():  # an export of 777 is running: its folder stays
        removed = OutFolder(out).remove_orphan_temporaries()
    assert removed == [orphan] and not orphan.exists() and busy.exists()


def test_exact_edges_with_sample_rounded_times() -> None:
    from spikeprep.core.model import SpikeTrains
    from spikeprep.rates.binning import Grid, bin_counts, make_grid

    g = Grid(0.005, 0.0, 900.0)
    edges = g.edges()
    np.testing.assert_array_equal(g.bins(edges), np.arange(g.n_bins))  # every edge starts its own bin
    assert np.count_nonzero(np.floor(edges * 200).astype(int) != np.arange(g.n_bins)) > 0  # floor alone fails
    rng = np.random.default_rng(5)
    t = np.sort(np.round(rng.uniform(0, 899, 20000) * 30000) / 30000)  # 30 kHz samples: many on 5 ms edges
    t = np.concatenate([t, edges[::97]])
    t.sort()
    c = bin_counts(SpikeTrains.from_dict({1: t}), g)[:, 0]
    expected = np.array([np.count_nonzero((t >= edges[i]) & (t < edges[i + 1])) for i in range(2000)])
    np.testing.assert_array_equal(c[:2000], expected)
    brute = np.searchsorted(edges, t, side="right") - 1  # exact against the float64 edges
    np.testing.assert_array_equal(np.bincount(brute, minlength=g.n_bins), c)
    assert c.sum() == len(t)  # conserved
    grid = make_grid(SpikeTrains.from_dict({1: [899.9977]}))
    assert grid.t_stop == 901.0 and grid.n_bins == 180200  # whole bins: counts and rates agree on t_stop


def test_store_and_rates_agree_on_t_stop(tmp_path: Path, ws: Path) -> None:
    import spikeprep

    counts = spikeprep.open_counts(ws / "OUT", SID)
    rates = spikeprep.open_rates(ws / "OUT", SID)
    assert counts.attrs["t_stop"] == rates.attrs["t_stop"]
    assert counts.sizes["time"] * counts.attrs["bin_size_s"] == pytest.approx(counts.attrs["t_stop"])
