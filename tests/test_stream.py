"""Streamed exports: byte ranges from a loopback bucket with faults, against local exports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from spikeprep.export.layout import SessionFolder
from spikeprep.core.options import ExportOptions
from spikeprep.export.outputs import wanted_outputs
from spikeprep.io.remote import HttpSource
from spikeprep.pipeline import export_file, run_sessions
from spikeprep.synthetic import SynthSpec, write_bucket, write_session

from .http_bucket import Bucket

SPEC = SynthSpec(n_units=60, duration=300.0, n_probes=2, seed=91, waveforms=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    write_session(root / "s.nwb", SPEC)
    return root


@pytest.fixture(scope="module")
def local_export(served: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local")
    r = export_file(served / "s.nwb", out)
    assert r.ok, r.message
    return out


@pytest.fixture
def bucket(served: Path):
    with Bucket(served, stall_seconds=2.0) as b:
        yield b


def source(bucket: Bucket, cache: Path, **kw) -> HttpSource:
    kw.setdefault("timeout", 1.0)
    kw.setdefault("max_wait", 0.2)
    return HttpSource(bucket.url + "s.nwb", cache, **kw)


def assert_same_outputs(a: Path, b: Path) -> None:
    sid = SPEC.sid
    for o in wanted_outputs(SessionFolder(a, sid).read_record().params):
        pa, pb = SessionFolder(a, sid) / o.file, SessionFolder(b, sid) / o.file
        if o.file.endswith(".parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(pa), pd.read_parquet(pb))
        else:
            xr.testing.assert_identical(xr.open_zarr(pa).load(), xr.open_zarr(pb).load())


def test_streamed_export_equals_the_local_one(bucket: Bucket, served: Path, local_export: Path, tmp_path: Path) -> None:
    r = export_file(source(bucket, tmp_path / "cache"), tmp_path / "out")
    assert r.ok, r.message
    assert_same_outputs(local_export, tmp_path / "out")
    size = (served / "s.nwb").stat().st_size
    sent = bucket.sent["/s.nwb"]
    assert sent < 0.6 * size  # spike_amplitudes and waveform_mean are never fetched
    assert all(rng for method, _, rng in bucket.requests if method == "GET")  # only ranges
    rec = SessionFolder(tmp_path / "out", r.session_id).read_record()
    assert rec.source.location == bucket.url + "s.nwb" and rec.source.size == size
    assert rec.source.etag and rec.source.bytes_fetched == sent
    assert not list((tmp_path / "cache" / ".ranges").iterdir())  # the block cache is gone after success
    again = export_file(source(bucket, tmp_path / "cache"), tmp_path / "out")
    assert again.status == "skipped"
    assert not list((tmp_path / "cache" / ".ranges").iterdir())  # a skip leaves no cache either


def test_opt_in_waveforms_and_amplitudes_stream_too(bucket: Bucket, served: Path, tmp_path: Path) -> None:
    """--waveforms --amplitudes: the streamed export fetches them and equals the local one."""
    options = ExportOptions(waveforms=True, amplitudes=True)
    local = export_file(served / "s.nwb", tmp_path / "local", options)
    assert local.ok, local.message
    before = bucket.sent.get("/s.nwb", 0)
    streamed = export_file(source(bucket, tmp_path / "cache"), tmp_path / "out", options)
    assert streamed.ok, streamed.message
    assert_same_outputs(tmp_path / "local", tmp_path / "out")
    assert {"mean_waveforms", "spike_amplitudes"} <= set(SessionFolder(tmp_path / "out", SPEC.sid).read_record().outputs)
    assert bucket.sent["/s.nwb"] - before > 0.8 * (served / "s.nwb").stat().st_size  # now they are fetched


def test_never_reads_amplitudes_or_waveforms(bucket: Bucket, served: Path, tmp_path: Path) -> None:
    import h5py

    with h5py.File(served / "s.nwb", "r") as f:
        avoid = []
        for name in ("units/waveform_mean", "units/spike_amplitudes"):
            ds = f[name].id
            avoid += [(ds.get_chunk_info(i).byte_offset, ds.get_chunk_info(i).size) for i in range(ds.get_num_chunks())]
    assert sum(n for _, n in avoid) > 0.5 * (served / "s.nwb").stat().st_size
    r = export_file(source(bucket, tmp_path / "cache", block=4096), tmp_path / "out")
    assert r.ok, r.message
    fetched = [tuple(int(x) for x in rng[6:].split("-")) for m, _, rng in bucket.requests if m == "GET"]
    for a, b in fetched:
        for off, n in avoid:
            overlap = min(b + 1, off + n) - max(a, off)
            assert overlap <= 4 * 4096, (a, b, off, n)  # at most a read-ahead of small blocks


@pytest.mark.parametrize("faults", [["503"], ["", "cut"], ["", "", "stall"], ["500", "", "cut", "503"]])
def test_faults_are_retried_with_the_same_result(faults: list[str], bucket: Bucket, local_export: Path,
                                                  tmp_path: Path) -> None:
    bucket.faults["/s.nwb"].extend(faults)
    t = time.perf_counter()
    r = export_file(source(bucket, tmp_path / "cache"), tmp_path / "out")
    assert r.ok, r.message
    assert_same_outputs(local_export, tmp_path / "out")
    assert not bucket.faults["/s.nwb"]  # every fault was met
    if "503" in faults:
        assert time.perf_counter() - t >= 0.2  # Retry-After (1 s, capped by max_wait) was waited


def test_a_file_that_changes_mid_export_publishes_nothing(bucket: Bucket, tmp_path: Path) -> None:
    bucket.faults["/s.nwb"].extend(["", "", "", "touch"])
    r = export_file(source(bucket, tmp_path / "cache"), tmp_path / "out")
    assert r.status == "failed" and "changed on the server during the export" in r.message
    assert "\n" not in r.message and r.message.startswith(bucket.url)
    assert not SessionFolder(tmp_path / "out", SPEC.sid).path.exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp-")]
    again = export_file(source(bucket, tmp_path / "cache"), tmp_path / "out")  # its cache is discarded
    assert again.ok, again.message


def test_a_server_that_ignores_range_costs_one_download(bucket: Bucket, local_export: Path, served: Path,
                                                        tmp_path: Path) -> None:
    bucket.ignore_ranges = True
    r = export_file(source(bucket, tmp_path / "cache"), tmp_path / "out")
    assert r.ok, r.message
    assert_same_outputs(local_export, tmp_path / "out")
    size = (served / "s.nwb").stat().st_size
    assert bucket.sent["/s.nwb"] < 1.2 * size  # not a file per request
    rec = SessionFolder(tmp_path / "out", r.session_id).read_record()
    assert "ignored Range" in rec.source.note and rec.source.bytes_fetched >= size
    assert not list((tmp_path / "cache").rglob("*.nwb"))  # the one download is removed after success


def _stream_cmd(url: str, out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "spikeprep.cli", "export", url, "--out", str(out), "--cache", str(cache),
            "--quiet", "--no-qc"]


def test_an_interrupted_export_resumes_from_the_block_cache(served: Path, local_export: Path, tmp_path: Path) -> None:
    with Bucket(served) as clean:
        assert export_file(HttpSource(clean.url + "s.nwb", tmp_path / "c0"), tmp_path / "o0").ok
        whole = clean.sent["/s.nwb"]
        spans = [rng[6:].split("-") for m, _, rng in clean.requests if m == "GET"]
        largest = max(int(b) - int(a) + 1 for a, b in spans)  # at most one request in flight is lost
    port = int(clean.url.rsplit(":", 1)[1].strip("/"))  # the same URL, so the same cache
    with Bucket(served, throttle=0.004, port=port) as slow:
        proc = subprocess.Popen(_stream_cmd(slow.url + "s.nwb", tmp_path / "out", tmp_path / "cache"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while slow.sent["/s.nwb"] < whole // 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        first = slow.sent["/s.nwb"]
    assert 0 < first < whole
    assert not SessionFolder(tmp_path / "out", SPEC.sid).path.exists()
    with Bucket(served, port=port) as b:
        done = subprocess.run(_stream_cmd(b.url + "s.nwb", tmp_path / "out", tmp_path / "cache"),
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        second = b.sent["/s.nwb"]
    assert second < whole and first + second <= whole + largest
    assert_same_outputs(local_export, tmp_path / "out")


def test_cli_export_url_and_bad_url(bucket: Bucket, tmp_path: Path) -> None:
    p = subprocess.run(_stream_cmd(bucket.url + "s.nwb", tmp_path / "out", tmp_path / "cache") + ["--keep-cache"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "1 of 1 sessions ready" in p.stdout
    assert list((tmp_path / "cache" / ".ranges").iterdir())  # kept
    p = subprocess.run(_stream_cmd(bucket.url + "nope.nwb", tmp_path / "out2", tmp_path / "cache"),
                       capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.nwb" in lines[0] and "404" in lines[0]


def test_run_stream_uses_a_verified_local_copy_first(tmp_path: Path) -> None:
    specs = [SynthSpec(n_units=20, duration=60.0, n_probes=1, seed=s) for s in (93, 94)]
    root = write_bucket(tmp_path / "bucket", specs)
    cache = tmp_path / "cache"
    local = cache / f"session_{specs[0].sid}" / f"session_{specs[0].sid}.nwb"
    local.parent.mkdir(parents=True)
    local.write_bytes((root / f"session_{specs[0].sid}" / f"session_{specs[0].sid}.nwb").read_bytes())
    with Bucket(root) as b:
        results = run_sessions([s.sid for s in specs], cache, tmp_path / "out", base_url=b.url, stream=True,
                               progress=False)
        assert [r.status for r in results] == ["exported", "exported"], [r.message for r in results]
        gets = {path for m, path, _ in b.requests if m == "GET"}
    assert f"/session_{specs[0].sid}/session_{specs[0].sid}.nwb" not in gets  # the local copy went first
    assert f"/session_{specs[1].sid}/session_{specs[1].sid}.nwb" in gets       # the other one was streamed
    assert not (cache / f"session_{specs[1].sid}" / f"session_{specs[1].sid}.nwb").exists()
    rec = SessionFolder(tmp_path / "out", specs[1].sid).read_record()
    assert rec.source.location.startswith(b.url) and rec.source.bytes_fetched > 0
    assert json.loads((SessionFolder(tmp_path / "out", specs[0].sid) / "session.json").read_text())["source"][
        "location"] == str(local.resolve())
    assert np.isfinite(rec.source.size)
