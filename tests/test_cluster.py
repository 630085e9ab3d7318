"""The dataset benchmark in small (issue 28): three sessions streamed from the loopback
bucket with ``spikeprep run --all --stream``, serially and on an external Dask cluster
started as a user starts one (``dask scheduler`` + two ``dask worker`` processes)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from dataset import run_dataset  # noqa: E402

from spikeprep.export.layout import OutFolder  # noqa: E402


def test_external_cluster_gives_the_serial_outputs(tmp_path: Path) -> None:
    reports = run_dataset(tmp_path, n_sessions=3, size="small", workers=2, modes=("serial", "external cluster"))
    serial, cluster = reports
    assert serial.returncode == 0 and cluster.returncode == 0, (serial.stderr, cluster.stderr)
    assert cluster.identical, "the cluster's outputs differ from the serial run's"
    assert 0 < cluster.bytes_fetched and 0 < serial.bytes_fetched
    workers = {k for k in cluster.peaks if k.startswith("worker")}
    assert {k.split("/")[0] for k in workers} == {"worker 1", "worker 2"}, cluster.peaks
    sessions = sorted((tmp_path / "external_cluster" / "out").glob("session_*/session.json"))
    assert len(sessions) == 3
    assert not OutFolder(tmp_path / "external_cluster" / "out").qc.exists()  # run --no-qc


def test_run_without_qc_flag_runs_the_qc(tmp_path: Path) -> None:
    from spikeprep.pipeline import run_then_qc
    from spikeprep.synthetic import SynthSpec, write_bucket

    from http_bucket import Bucket

    spec = SynthSpec(n_units=20, duration=60.0, n_probes=1, seed=95)
    with Bucket(write_bucket(tmp_path / "bucket", [spec])) as b:
        for qc, out in ((False, tmp_path / "no_qc"), (True, tmp_path / "qc")):
            outcome = run_then_qc([spec.sid], tmp_path / "cache", out, base_url=b.url, stream=True, progress=False,
                                  qc=qc, echo=lambda line: None)
            assert [r.status for r in outcome.results] == ["exported"]
            assert OutFolder(out).qc.exists() is qc
