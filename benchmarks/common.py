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
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("@@RESULT@@" + json.dumps({"seconds": wall, "peak_bytes": rss, "value": ns.get("RESULT")}))
"""


def measure(code: str, label: str) -> dict:
    """Run ``code`` in a new interpreter; return wall seconds, peak RSS and ``RESULT``."""
    p = subprocess.run([sys.executable, "-c", _RUNNER, code], capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{p.stderr[-3000:]}")
    line = [l for l in p.stdout.splitlines() if l.startswith("@@RESULT@@")][-1]
    out = json.loads(line[len("@@RESULT@@"):])
    print(f"  {label:<52} {out['seconds']:8.2f} s   peak {out['peak_bytes'] / 2**30:6.2f} GiB", flush=True)
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


def settle(seconds: float = 2.0) -> None:
    """Flush dirty pages (and let the disk settle) before a measured step, so that the
    writeback of an earlier step's output is not charged to it."""
    import time

    os.sync()
    time.sleep(seconds)


def dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"
