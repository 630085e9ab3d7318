"""Downloads and the catalog against a real HTTP server on 127.0.0.1 with injected faults."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikeprep.core.errors import DownloadError
from spikeprep.io import download as fetch
from spikeprep.io.bucket import download_sessions, session_table
from spikeprep.io.download import download_file, session_nwb_path
from spikeprep.pipeline import run_sessions
from spikeprep.synthetic import SynthSpec, write_bucket

from .http_bucket import Bucket

SPECS = [SynthSpec(n_units=30, duration=60.0, n_probes=2, seed=s) for s in (11, 12)]


@pytest.fixture(scope="module")
def bucket_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bucket(tmp_path_factory.mktemp("bucket"), SPECS)


@pytest.fixture
def bucket(bucket_dir: Path):
    with Bucket(bucket_dir, stall_seconds=2.5) as b:
        yield b


SID = SPECS[0].sid
PATH = f"/session_{SID}/session_{SID}.nwb"


def _get(bucket: Bucket, dest: Path, **kw) -> Path:
    kw.setdefault("timeout", 1.0)
    kw.setdefault("max_wait", 0.2)
    return download_file(bucket.url + PATH.lstrip("/"), dest, **kw)


def _same(a: Path, b: Path) -> bool:
    return hashlib.md5(a.read_bytes()).digest() == hashlib.md5(b.read_bytes()).digest()


def test_clean_download(bucket: Bucket, bucket_dir: Path, tmp_path: Path) -> None:
    dest = _get(bucket, tmp_path / "f.nwb")
    assert _same(dest, bucket_dir / PATH.lstrip("/"))
    assert not (tmp_path / "f.nwb.part").exists()
    assert bucket.sent[PATH] == dest.stat().st_size
    bucket.requests.clear()
    _get(bucket, dest)  # already complete: only a HEAD
    assert [r[0] for r in bucket.requests] == ["HEAD"]


@pytest.mark.parametrize("faults", [["503"], ["500", "500"], ["cut"], ["stall"], ["short"], ["cut", "ignore_range"],
                                    ["cut", "503", "cut"]])
def test_faults_are_retried_and_resumed(faults: list[str], bucket: Bucket, bucket_dir: Path, tmp_path: Path) -> None:
    bucket.faults[PATH].extend(faults)
    dest = _get(bucket, tmp_path / "f.nwb")
    source = bucket_dir / PATH.lstrip("/")
    assert _same(dest, source)
    size = source.stat().st_size
    if "ignore_range" not in faults and "short" not in faults:
        # a resumed download never fetches again what it already has
        assert bucket.sent[PATH] == size
    ranges = [r[2] for r in bucket.requests if r[0] == "GET"]
    if "cut" in faults:
        assert any(r.startswith("bytes=") for r in ranges)


def test_retry_after_is_honoured(bucket: Bucket, tmp_path: Path) -> None:
    bucket.faults[PATH].append("503")
    t = time.perf_counter()
    _get(bucket, tmp_path / "f.nwb", max_wait=5.0)
    assert time.perf_counter() - t >= 0.9  # Retry-After: 1


def test_gives_up_after_bounded_attempts(bucket: Bucket, tmp_path: Path) -> None:
    bucket.faults[PATH].extend(["500"] * 10)
    with pytest.raises(DownloadError, match="failed after 3 attempts"):
        _get(bucket, tmp_path / "f.nwb", attempts=3)
    assert not (tmp_path / "f.nwb").exists()


def test_truncated_file_in_cache_is_resumed(bucket: Bucket, bucket_dir: Path, tmp_path: Path) -> None:
    source = bucket_dir / PATH.lstrip("/")
    dest = tmp_path / "f.nwb"
    dest.write_bytes(source.read_bytes()[:1000])
    _get(bucket, dest)
    assert _same(dest, source)
    assert bucket.sent[PATH] == source.stat().st_size - 1000


def test_missing_file_is_a_clear_error(bucket: Bucket, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="404"):
        download_file(bucket.url + "session_1/session_1.nwb", tmp_path / "x.nwb", timeout=1.0)


def test_no_disk_space(bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda p: type("U", (), {"free": 10})())
    with pytest.raises(DownloadError, match="GB free"):
        _get(bucket, tmp_path / "f.nwb")
    assert not (tmp_path / "f.nwb").exists() and not (tmp_path / "f.nwb.part").exists()


def test_md5_etag_mismatch_is_refused(bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = fetch.remote_info
    monkeypatch.setattr(fetch, "remote_info", lambda *a, **k: fetch.RemoteInfo(real(*a, **k).size, "0" * 32))
    with pytest.raises(DownloadError, match="MD5"):
        _get(bucket, tmp_path / "f.nwb")
    assert not (tmp_path / "f.nwb").exists()


_SCRIPT = "import sys; from spikeprep.io.download import download_file; download_file(sys.argv[1], sys.argv[2], timeout=5)"


def test_kill_9_during_download_then_resume(bucket_dir: Path, tmp_path: Path) -> None:
    with Bucket(bucket_dir, throttle=0.05) as b:  # ~0.5 s for the file: time to kill it midway
        url, dest = b.url + PATH.lstrip("/"), tmp_path / "f.nwb"
        proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, url, str(dest)])
        part = tmp_path / "f.nwb.part"
        for _ in range(400):
            if part.exists() and part.stat().st_size > 200_000:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not dest.exists() and part.exists()
        had = part.stat().st_size
        b.throttle = 0.0
        subprocess.run([sys.executable, "-c", _SCRIPT, url, str(dest)], check=True)
        source = bucket_dir / PATH.lstrip("/")
        assert _same(dest, source)
        assert 0 < had < source.stat().st_size
        # the rerun asked for what the .part file lacked, and got exactly that
        assert b.body_bytes[-1] == (f"bytes={had}-", source.stat().st_size - had)


def test_two_processes_one_file(bucket_dir: Path, tmp_path: Path) -> None:
    with Bucket(bucket_dir, throttle=0.002) as b:
        url, dest = b.url + PATH.lstrip("/"), tmp_path / "f.nwb"
        procs = [subprocess.Popen([sys.executable, "-c", _SCRIPT, url, str(dest)]) for _ in range(2)]
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
        source = bucket_dir / PATH.lstrip("/")
        assert _same(dest, source)
        assert b.sent[PATH] == source.stat().st_size  # the second one waited, then found it whole


def test_session_table_and_offline(bucket: Bucket, bucket_dir: Path, tmp_path: Path) -> None:
    table = session_table(bucket.url, tmp_path)
    assert list(table.index) == [s.sid for s in SPECS]
    for c in ("published_at", "specimen_id", "session_type", "age_in_days", "sex", "full_genotype", "unit_count",
              "channel_count", "probe_count", "ecephys_structure_acronyms"):
        assert c in table.columns, c
    assert "genotype" not in table and "has_nwb" not in table
    assert (table["probe_count"] == 2).all() and (table["channel_count"] == 768).all()
    from spikeprep.export.qc import passes_allen_qc
    from spikeprep.io.nwb import read_session

    s = read_session(bucket_dir / PATH.lstrip("/"))
    assert table.loc[SID, "unit_count"] == passes_allen_qc(s.units).sum()
    assert "VISam" in table.loc[SID, "ecephys_structure_acronyms"]
    offline = session_table("http://127.0.0.1:9/", tmp_path, offline=True)
    assert offline.equals(table)


def test_existing_cache_is_used_and_verified(bucket: Bucket, bucket_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    dest = session_nwb_path(cache, SID)
    dest.parent.mkdir(parents=True)
    dest.write_bytes((bucket_dir / PATH.lstrip("/")).read_bytes())
    (cache / "manifest.json").write_text("{}")
    [d] = download_sessions([SID], cache, base_url=bucket.url, progress=False)
    assert not d.error and bucket.sent[PATH] == 0
    # offline: the file is used as it is, with a warning
    [d] = download_sessions([SID], cache, base_url="http://127.0.0.1:9/", progress=False, max_wait=0.2)
    assert not d.error


def test_run_downloads_exports_and_skips(bucket: Bucket, tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    ids = [s.sid for s in SPECS]
    results = run_sessions(ids, cache, out, base_url=bucket.url, progress=False)
    assert [r.status for r in results] == ["exported", "exported"]
    assert (out / "sessions.parquet").exists()
    again = run_sessions(ids, cache, out, base_url=bucket.url, progress=False)
    assert [r.status for r in again] == ["skipped", "skipped"]
    bad = run_sessions([123], cache, out, base_url=bucket.url, progress=False)
    assert bad[0].status == "failed" and "404" in bad[0].message


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spikeprep.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_sessions_download_run(bucket: Bucket, tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    r = _cli("sessions", "--base-url", bucket.url, "--cache", str(cache), "--csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("id,") and str(SID) in r.stdout
    r = _cli("sessions", "--cache", str(cache), "--offline", "--where", f"index == {SID}", "--json")
    assert r.returncode == 0 and f'"id":{SID}' in r.stdout.replace(" ", "")
    r = _cli("download", str(SID), "--cache", str(cache), "--base-url", bucket.url, "--quiet")
    assert r.returncode == 0, r.stderr
    assert session_nwb_path(cache, SID).exists() and not list(cache.rglob("*.part"))
    r = _cli("run", "--all", "--cache", str(cache), "--out", str(out), "--base-url", bucket.url, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "2 of 2 sessions ready" in r.stdout and (out / "qc" / "isi_summary.csv").exists()
    bucket.requests.clear()
    r = _cli("run", "999", "--cache", str(cache), "--out", str(out), "--base-url", bucket.url, "--quiet")
    assert r.returncode == 2  # checked against the session table before any download
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "session 999 is not in the session table" in err[0]
    assert not [q for q in bucket.requests if "session_999" in q[1]]
