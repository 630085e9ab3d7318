"""Bad input and process faults: one clear line, nothing lost, a rerun finishes the job."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import spikeprep.export.outputs as export_mod
from spikeprep.export.spike_pass import SpikeTimesWriter
from spikeprep.rates.writer import CountsWriter
from spikeprep.core.errors import ExportError
from spikeprep.export.layout import SessionFolder
from spikeprep.export.verify import verify_out
from spikeprep.pipeline import export_file
from spikeprep.synthetic import SynthSpec, write_session

from .mutants import judge, make_mutant


@pytest.fixture(scope="module")
def tiny(synth_dir: Path) -> Path:
    return write_session(synth_dir / "tiny.nwb", SynthSpec(n_units=24, duration=40.0, n_probes=2, seed=31))


N_MUTANTS = 36


@pytest.mark.parametrize("seed", range(N_MUTANTS))
def test_fuzzed_files(seed: int, tiny: Path, tmp_path: Path) -> None:
    mutant = tmp_path / f"session_{seed}.nwb"
    what = make_mutant(tiny, mutant, seed)
    ok, why = judge(mutant, tmp_path / "out")
    assert ok, f"mutant {seed} ({what}): {why}"


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def session_dir(out: Path, sid: int) -> Path:
    return SessionFolder(out, sid).path


@pytest.mark.parametrize("module, target", [(SpikeTimesWriter, "close"), (CountsWriter, "close"),
                                            (CountsWriter, "_chunk"), (export_mod, "write_table")])
def test_full_disk_during_export(module, target: str, tiny: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real = getattr(module, target)

    def half_then_fail(*args, **kwargs):
        real(*args, **kwargs)  # something was written...
        _enospc()              # ...then the disk filled up

    monkeypatch.setattr(module, target, half_then_fail)
    with pytest.raises(ExportError, match="No space left on device"):
        from spikeprep.core.options import ExportOptions
        from spikeprep.export.annotate import annotate
        from spikeprep.export.write import write_outputs
        from spikeprep.io.nwb import read_session

        write_outputs(annotate(read_session(tiny), ExportOptions()), tmp_path, ExportOptions())
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob("session_*"))
    r = export_file(tiny, tmp_path)
    assert r.status == "failed" and "No space left on device" in r.message and str(tmp_path) in r.message
    monkeypatch.setattr(module, target, real)
    assert export_file(tiny, tmp_path).status == "exported"  # space again: the rerun finishes the job


def test_two_exports_on_one_out(tiny: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "spikeprep.cli", "export", str(tiny), "--out", str(tmp_path), "--quiet", "--no-qc"]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: subprocess.run(cmd, capture_output=True, text=True), range(2)))
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    statuses = sorted("skipped" in r.stdout for r in runs)
    assert statuses == [False, True]  # one exported, the other waited for the lock and skipped
    assert verify_out(tmp_path) == ([], 1)


def test_verify_reports_each_problem(tiny: Path, tmp_path: Path) -> None:
    r = export_file(tiny, tmp_path)
    d = session_dir(tmp_path, r.session_id)
    assert verify_out(tmp_path) == ([], 1)
    st = json.loads((d / "session.json").read_text())
    st["outputs"]["spike_times"]["rows"] += 1
    (d / "session.json").write_text(json.dumps(st))
    problems, _ = verify_out(tmp_path)
    assert any("spike_times.parquet" in p and "rows" in p for p in problems)
    (d / "running.parquet").unlink()
    problems, _ = verify_out(tmp_path)
    assert any("running.parquet: missing" in p for p in problems)
    shutil.rmtree(d / "binned.zarr" / "counts" / "c", ignore_errors=True)
    p = subprocess.run([sys.executable, "-m", "spikeprep.cli", "verify", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "x.nwb"
    bad.write_text("nope")
    p = subprocess.run([sys.executable, "-m", "spikeprep.cli", "inspect", str(bad), "--verbose"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" in p.stderr
