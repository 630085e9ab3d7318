"""A dataset-scale run (issue 28): N synthetic sessions in the loopback bucket, exported
with ``spikeprep run --all --stream`` serially, on a local Dask cluster (``--workers``),
and on an external cluster started as a user starts one (``dask scheduler`` and
``dask worker`` commands). Prints wall time, bytes fetched, the peak memory of the client
and of each worker, and whether every output equals the serial run's.

Run: python benchmarks/dataset.py [--sessions 8] [--size medium|small|full] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from http_bucket import Bucket  # noqa: E402  (the tests' loopback bucket)

# units, duration (s), probes, waveforms: "medium" is the hand-checked run of the issue
SIZES = {"small": (40, 120.0, 2, False), "medium": (700, 2400.0, 6, True), "full": (2800, 9600.0, 6, True)}


@dataclass
class RunReport:
    """One way of running the export over the dataset."""

    mode: str
    seconds: float
    returncode: int
    bytes_fetched: int
    peaks: dict[str, int] = field(default_factory=dict)  # process label -> peak RSS (bytes)
    identical: bool | None = None
    stderr: str = ""


def make_bucket(folder: Path, n_sessions: int, size: str, seed: int = 500) -> list[int]:
    """The bucket folder (generated once per size and count); returns the session ids."""
    from spikeprep.synthetic import SynthSpec, write_bucket

    units, duration, probes, waveforms = SIZES[size]
    specs = [SynthSpec(n_units=units, duration=duration, n_probes=probes, waveforms=waveforms, seed=seed + k,
                       lfp=False) for k in range(n_sessions)]
    stamp = folder / "dataset.json"
    wanted = {"sessions": [s.sid for s in specs], "size": size}
    if not (stamp.exists() and json.loads(stamp.read_text()) == wanted):
        shutil.rmtree(folder, ignore_errors=True)
        write_bucket(folder, specs)
        stamp.write_text(json.dumps(wanted))
    return wanted["sessions"]


def _peak_rss(pid: int) -> int | None:
    """The peak resident set of a live process (``VmHWM``, bytes)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class PeakWatcher:
    """Samples the peak RSS of processes and all their descendants until stopped (a
    process's own high-water mark, read while it lives)."""

    def __init__(self, roots: dict[str, int], interval: float = 0.2) -> None:
        import psutil

        self.psutil, self.roots, self.interval = psutil, roots, interval
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _label(self, root: str, proc: object, depth: int) -> str:
        return root if depth == 0 else f"{root}/{proc.pid}"  # type: ignore[attr-defined]

    def _sample(self) -> None:
        for name, pid in self.roots.items():
            try:
                root = self.psutil.Process(pid)
                procs = [(root, 0)] + [(c, 1) for c in root.children(recursive=True)]
            except self.psutil.Error:
                continue
            for proc, depth in procs:
                peak = _peak_rss(proc.pid)
                if peak is not None:
                    label = self._label(name, proc, depth)
                    self.peaks[label] = max(self.peaks.get(label, 0), peak)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _spikeprep(*args: str) -> list[str]:
    return [sys.executable, "-m", "spikeprep.cli", *args]


def _run_client(cmd: list[str], watch: dict[str, int], env: dict[str, str]) -> tuple[float, int, str, dict[str, int]]:
    """Run the ``spikeprep`` command while watching it (and ``watch``) for peak memory."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with PeakWatcher({"client": proc.pid, **watch}) as watcher:
        out, err = proc.communicate()
    return time.perf_counter() - t, proc.returncode, err, dict(watcher.peaks)


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    t = time.monotonic()
    while not path.exists():
        if time.monotonic() - t > timeout:
            raise TimeoutError(f"{path} did not appear in {timeout:.0f} s")
        time.sleep(0.1)


class ExternalCluster:
    """A Dask cluster as a user starts one: ``dask scheduler`` and ``n`` ``dask worker``
    processes (one single-threaded worker each, under its nanny), found through a
    scheduler file. Their output goes to ``cluster.log`` in ``folder``."""

    def __init__(self, folder: Path, n_workers: int, env: dict[str, str]) -> None:
        self.folder, self.n, self.env = folder, n_workers, env
        self.file = folder / "scheduler.json"
        self.procs: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> "ExternalCluster":
        from dask.distributed import Client

        self.file.unlink(missing_ok=True)
        dask = str(Path(sys.executable).with_name("dask"))
        log = open(self.folder / "cluster.log", "w")
        self.procs["scheduler"] = subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(self.file)], stdout=log, stderr=log, env=self.env)
        _wait_for(self.file)
        for k in range(self.n):
            self.procs[f"worker {k + 1}"] = subprocess.Popen(
                [dask, "worker", "--scheduler-file", str(self.file), "--nworkers", "1", "--nthreads", "1",
                 "--no-dashboard", "--memory-limit", "0", "--local-directory", str(self.folder / f"w{k}")],
                stdout=log, stderr=log, env=self.env)
        with Client(scheduler_file=str(self.file), timeout=60) as client:
            client.wait_for_workers(self.n, timeout=120)
        self.address = json.loads(self.file.read_text())["address"]
        return self

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items() if name != "scheduler"}

    def __exit__(self, *exc: object) -> None:
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def same_outputs(a: Path, b: Path) -> bool:
    """Every session of ``b`` has the outputs of ``a``, equal in content (Parquet tables
    with their schemas, Zarr arrays and attributes) and in ``session.json``'s facts."""
    import numpy as np
    import pyarrow.parquet as pq
    import zarr

    from spikeprep.export.layout import OutFolder

    sa, sb = OutFolder(a), OutFolder(b)
    if sorted(sa.exported()) != sorted(sb.exported()):
        return False
    for sid in sa.exported():
        fa, fb = sa.session(sid).path, sb.session(sid).path
        ra, rb = (json.loads((f / "session.json").read_text()) for f in (fa, fb))
        if ra["outputs"] != rb["outputs"] or ra["counts"] != rb["counts"]:
            return False
        for f in sorted(fa.iterdir()):
            g = fb / f.name
            if f.suffix == ".parquet":
                ta, tb = pq.read_table(f), pq.read_table(g)
                if not (ta.equals(tb) and ta.schema.equals(tb.schema, check_metadata=True)):
                    return False
            elif f.suffix == ".zarr":
                za, zb = zarr.open_group(str(f), mode="r"), zarr.open_group(str(g), mode="r")
                if dict(za.attrs) != dict(zb.attrs) or sorted(za.array_keys()) != sorted(zb.array_keys()):
                    return False
                for k in za.array_keys():
                    x, y = za[k], zb[k]
                    if x.shape != y.shape or x.dtype != y.dtype or dict(x.attrs) != dict(y.attrs):
                        return False
                    step = max(1, x.chunks[0])
                    if any(not np.array_equal(x[i : i + step], y[i : i + step]) for i in range(0, x.shape[0], step)):
                        return False
    return True


def run_dataset(folder: Path, n_sessions: int = 8, size: str = "medium", workers: int = 2,
                modes: tuple[str, ...] = ("serial", "local cluster", "external cluster")) -> list[RunReport]:
    """Export the dataset from the loopback bucket in each mode; compare every run's
    outputs with the first one's."""
    folder.mkdir(parents=True, exist_ok=True)
    bucket_dir = folder / f"bucket_{size}_{n_sessions}"
    make_bucket(bucket_dir, n_sessions, size)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    reports: list[RunReport] = []
    with Bucket(bucket_dir) as bucket:
        for mode in modes:
            run = folder / mode.replace(" ", "_")
            shutil.rmtree(run, ignore_errors=True)
            run.mkdir()
            cmd = _spikeprep("run", "--all", "--stream", "--cache", str(run / "cache"), "--out", str(run / "out"),
                             "--base-url", bucket.url, "--quiet", "--no-qc")
            before = sum(bucket.sent.values())
            if mode == "external cluster":
                with ExternalCluster(run, workers, env) as cluster:
                    seconds, rc, err, peaks = _run_client(cmd + ["--scheduler", cluster.address], cluster.pids(), env)
            else:
                extra = ["--workers", str(workers)] if mode == "local cluster" else []
                seconds, rc, err, peaks = _run_client(cmd + extra, {}, env)
            reports.append(RunReport(mode, seconds, rc, sum(bucket.sent.values()) - before, peaks, stderr=err))
    first = folder / modes[0].replace(" ", "_") / "out"
    for r in reports:
        r.identical = r.returncode == 0 and same_outputs(first, folder / r.mode.replace(" ", "_") / "out")
    return reports


def _bucket_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*.nwb"))


def main() -> None:
    from common import DATA

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=8, help="synthetic sessions in the bucket (default 8)")
    p.add_argument("--size", choices=sorted(SIZES), default="medium",
                   help="session size: small (40 units x 120 s), medium (700 x 2,400 s, 6 probes, waveforms; "
                        "default), full (2,800 x 9,600 s)")
    p.add_argument("--workers", type=int, default=2, help="worker processes of each cluster (default 2)")
    a = p.parse_args()
    folder = DATA / "dataset"
    reports = run_dataset(folder, a.sessions, a.size, a.workers)
    total = _bucket_bytes(folder / f"bucket_{a.size}_{a.sessions}")
    units, duration, _, _ = SIZES[a.size]
    print(f"{a.sessions} sessions ({units} units x {duration:.0f} s), {total / 1e9:.2f} GB in the bucket, "
          f"{a.workers} workers")
    serial = reports[0].seconds
    for r in reports:
        peaks = ", ".join(f"{k} {v / 2**30:.2f}" for k, v in sorted(r.peaks.items()) if v > 2**26)
        print(f"  {r.mode:<17} {r.seconds:7.1f} s ({serial / r.seconds:4.2f}x serial)  fetched "
              f"{r.bytes_fetched / 1e9:.2f} GB = {100 * r.bytes_fetched / total:.0f}%  identical to serial: "
              f"{r.identical}  exit {r.returncode}\n{'':20}peak GiB: {peaks}")
        if r.returncode:
            print(r.stderr[-2000:])
    each = serial / a.sessions
    rate = reports[0].bytes_fetched / serial
    print(f"\nprojection for 58 sessions of this size: {58 * each / 60:.1f} min on one machine like this one "
          f"({each:.1f} s each; an export already keeps both cores busy, so {a.workers} workers on it gain nothing), "
          f"{58 * each / 60 / 8:.1f} min on 8 such workers, if the bucket serves 8 x {rate / 1e6:.0f} MB/s")

if __name__ == "__main__":
    main()
