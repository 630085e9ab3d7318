"""LFP windows (issue 25) on a real-size probe file (96 channels × 5,000 s at 1,250 Hz,
float32: 2.4 GB) served by the loopback bucket.

Goals: a 10 s window of all channels, streamed: ≤ 1.5× the window's data bytes + 2 MB
fetched, ≤ 0.5 s; presentationwise_lfp of 75 flashes × 0.5 s streamed ≤ 1 s; peak
memory ≤ 2× the data returned + 200 MB. AllenSDK's get_lfp reads the whole file into
memory on every call (series.data[:]); it cannot open the synthetic files (pynwb refuses
them, issue 30), so its figures are its recorded times on the AllenSDK-written reference
probe files (../shared/allen/reference2/…/full/timings.json) and the arithmetic of a
whole read of this file.
Run: python benchmarks/lfp.py
"""

from __future__ import annotations

import json
import shutil
import sys

from common import DATA, ROOT, measure

sys.path.insert(0, str(ROOT / "tests"))
from http_bucket import Bucket  # noqa: E402  (the tests' loopback bucket)

SPEC = dict(n_units=60, duration=5000.0, n_probes=1, seed=3, lfp=True, lfp_channels=96, eye_tracking=False)
TIMINGS = ROOT.parent / "shared" / "allen" / "reference2" / "vcn2_seed11_2probes_80u_600s.allensdk" / "full" / "timings.json"

# xarray imports dask on its first DataArray (1.2 s once per process): done before the clock, as
# AllenSDK's own import does it
WARM = "import numpy, xarray; xarray.DataArray(numpy.zeros(2), dims=('time',), coords={{'time': [0.0, 1.0]}})"
WINDOW = WARM + """
import resource, time
import numpy as np
import spikeprep
s = spikeprep.open_session({out!r}, {sid})
s.lfp_cache = {cache!r}
s.set_lfp_path({pid}, {url!r})
t = time.perf_counter()
lfp = s.get_lfp({pid})
w = lfp.sel(time=slice({a}, {a} + 10.0)).values
RESULT = {{"seconds": time.perf_counter() - t, "bytes": int(w.nbytes), "shape": list(w.shape)}}
"""
PRESENTATIONS = WARM + """
import time
import spikeprep
s = spikeprep.open_session({out!r}, {sid})
s.lfp_cache = {cache!r}
s.set_lfp_path({pid}, {url!r})
ids = s.get_stimulus_table("flashes").index[:75]
t = time.perf_counter()
p = s.presentationwise_lfp(ids, (-0.1, 0.4), probe_id={pid})
RESULT = {{"seconds": time.perf_counter() - t, "bytes": int(p.values.nbytes), "shape": list(p.shape)}}
"""


def main() -> None:
    root = DATA / "lfp_bucket"
    sid = 700_000_000 + 1009 * SPEC["seed"]
    folder = root / f"session_{sid}"
    nwb = folder / f"session_{sid}.nwb"
    if not nwb.exists():
        folder.mkdir(parents=True, exist_ok=True)
        measure(f"from spikeprep.synthetic import write_session, SynthSpec; write_session({str(nwb)!r}, "
                f"SynthSpec(**{SPEC!r}))", "synthetic session + real-size probe LFP file")
    probe = next(folder.glob("probe_*_lfp.nwb"))
    pid = int(probe.stem.split("_")[1])
    size = probe.stat().st_size
    print(f"probe file {probe.name}: {size / 1e9:.2f} GB")
    out = DATA / "lfp_out"
    shutil.rmtree(out, ignore_errors=True)
    measure(f"from spikeprep.pipeline import export_file; r = export_file({str(nwb)!r}, {str(out)!r}); "
            f"assert r.ok, r.message", "spikeprep export (setup)")
    with Bucket(root) as bucket:
        url = f"{bucket.url}session_{sid}/{probe.name}"
        path = f"/session_{sid}/{probe.name}"
        for label, code in (("10 s window, all channels, streamed", WINDOW),
                            ("presentationwise_lfp, 75 flashes x 0.5 s, streamed", PRESENTATIONS)):
            cache = DATA / "lfp_cache"
            shutil.rmtree(cache, ignore_errors=True)
            before = bucket.sent[path]
            r = measure(code.format(out=str(out), sid=sid, pid=pid, url=url, cache=str(cache), a=2000.0), label)
            fetched = bucket.sent[path] - before
            v = r["value"]
            print(f"    {v['shape']} ({v['bytes'] / 1e6:.2f} MB) in {v['seconds']:.3f} s; fetched {fetched / 1e6:.2f} MB"
                  f" = {fetched / v['bytes']:.2f}x the data ({(fetched - 1.5 * v['bytes']) / 1e6:+.2f} MB over 1.5x);"
                  f" peak {r['peak_bytes'] / 2**20:.0f} MiB (goal <= {2 * v['bytes'] / 2**20 + 200:.0f} MiB);"
                  f" the clock includes opening the untouched probe file over HTTP")
    sdk = json.loads(TIMINGS.read_text())
    print(f"  AllenSDK 2.16.2's get_lfp reads the whole probe file on every call: here {size / 1e9:.2f} GB into memory"
          f" for any window; on the 3 s reference probe files it took {sdk['get_lfp[800011000]']:.2f} s per call "
          f"(its .sel afterwards {sdk['get_lfp[800011000].sel(time=slice(a,b))'] * 1e3:.1f} ms)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
