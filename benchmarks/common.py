"""Shared helpers of the benchmarks: the full-scale session, timing and peak memory.

Each measured step runs in a fresh Python process, so its peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SPIKEPREP_BENCH_DATA", ROOT / "bench_data"))
FULL = dict(n_units=2800, duration=9600.0, n_probes=6, seed=1)

_RUNNER = r"""
import json, resource, sys, time
code = sys.argv[1]
t = time.perf_counter()
ns = {}
exec(code, ns)
wall = time.perf_counter() - t
usage = resource.getrusage(resource.RUSAGE_SELF)
print("@@RESULT@@" + json.dumps({"seconds": wall, "peak_bytes": usage.ru_maxrss * 1024, "user": usage.ru_utime,
                                 "system": usage.ru_stime, "read_mb": usage.ru_inblock * 512 / 1e6,
                                 "waits": usage.ru_nvcsw, "value": ns.get("RESULT")}))
"""


def measure(code: str, label: str) -> dict:
    """Run ``code`` in a new interpreter; return wall seconds, peak RSS and ``RESULT``."""
    # as an installed package runs: with its modules' bytecode cached (some machines set
    # PYTHONDONTWRITEBYTECODE, which would compile spikeprep's modules in every process)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    p = subprocess.run([sys.executable, "-c", _RUNNER, code], capture_output=True, text=True, cwd=ROOT, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{p.stderr[-3000:]}")
    line = [l for l in p.stdout.splitlines() if l.startswith("@@RESULT@@")][-1]
    out = json.loads(line[len("@@RESULT@@"):])
    print(f"  {label:<52} {out['seconds']:8.2f} s   peak {out['peak_bytes'] / 2**30:6.2f} GiB   "
          f"cpu {out['user']:.1f} s user + {out['system']:.1f} s system, {out['read_mb']:.0f} MB read from disk",
          flush=True)
    return out


def full_scale_session(waveforms: bool = False, tuned: bool = False) -> Path:
    """The full-scale synthetic session (2,800 units × 9,600 s), generated once; with
    ``waveforms``, also ``units/waveform_mean`` at real size (2.7 GB in all, like a
    released file); with ``tuned``, planted visual tuning (a separate file)."""
    DATA.mkdir(parents=True, exist_ok=True)
    name = "fullscale_tuned.nwb" if tuned else "fullscale_waveforms.nwb" if waveforms else "fullscale_session.nwb"
    path = DATA / name
    spec = {**FULL, "waveforms": waveforms, "tuned": tuned}
    if not path.exists():
        print(f"generating {path} ({spec}) ...", flush=True)
        code = (f"from spikeprep.synthetic import write_session; write_session({str(path)!r}, **{spec!r})")
        measure(code, "synthetic.write_session (full scale)")
        print(f"  file {path.stat().st_size / 1e9:.2f} GB", flush=True)
    return path


def settle(seconds: float = 2.0, warm: Path | None = None) -> None:
    """Flush dirty pages (and let the disk settle) before a measured step, so that the
    writeback of an earlier step's output is not charged to it; with ``warm``, read that
    input file through first, so that each step starts with it in the page cache (this
    VM's proactive reclaim evicts a file's pages within minutes: a step that ran after
    a two-minute one would otherwise read from disk what the first found cached)."""
    import time

    os.sync()
    if warm is not None:
        with open(warm, "rb", buffering=0) as f:
            while f.read(1 << 24):
                pass
    time.sleep(seconds)


def dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"
