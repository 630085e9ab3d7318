"""Streamed export (issue 13): `spikeprep export URL` from the loopback test bucket vs the
local export of the same real-size file (2,800 units, 9,600 s, spike_amplitudes and
waveform_mean at real size, 2.7 GB), in the same run; then again with faults injected.

Goals: bytes fetched <= 40% of the file (floor ~37%), wall <= 1.2x local (issue 28; 1.5x
before), peak <= local + 0.5 GB, outputs identical (also with a 503 + Retry-After, a connection cut mid-range and
a stalled response).
Run: python benchmarks/stream.py
"""

from __future__ import annotations

import shutil
import sys

from common import DATA, ROOT, full_scale_session, measure, ratio, settle

sys.path.insert(0, str(ROOT / "tests"))
from http_bucket import Bucket  # noqa: E402  (the tests' loopback bucket)

EXPORT = """
from spikeprep.pipeline import export_file
from spikeprep.io.remote import HttpSource
src = {source}
r = export_file(src, {out!r})
assert r.ok, r.message
RESULT = r.session_id
"""
SAME = """
import glob
import numpy as np, pyarrow.parquet as pq, zarr
from spikeprep.export.outputs import OUTPUTS
a, b = glob.glob({a!r} + "/session_*")[0], glob.glob({b!r} + "/session_*")[0]
import os
for o in OUTPUTS.values():
    if o.file.endswith(".parquet") and os.path.exists(a + "/" + o.file):
        assert pq.read_table(a + "/" + o.file).equals(pq.read_table(b + "/" + o.file)), o.file
za, zb = zarr.open_group(a + "/binned.zarr", mode="r"), zarr.open_group(b + "/binned.zarr", mode="r")
assert dict(za.attrs) == dict(zb.attrs)
ca, cb = za["counts"], zb["counts"]
assert ca.shape == cb.shape and ca.dtype == cb.dtype
for u in range(0, ca.shape[1], 256):
    assert np.array_equal(ca[:, u:u + 256], cb[:, u:u + 256])
RESULT = True
"""


def main() -> None:
    path = full_scale_session(waveforms=True)
    size = path.stat().st_size
    local, streamed, faulty, cache = (DATA / n for n in ("stream_local", "stream_remote", "stream_faults",
                                                          "stream_cache"))
    for d in (local, streamed, faulty, cache):
        shutil.rmtree(d, ignore_errors=True)
    print(f"streamed export of {path.name} ({size / 1e9:.2f} GB)")
    settle(warm=path)  # both steps start with the file in the page cache (the bucket serves it from there)
    loc = measure(EXPORT.format(source=repr(str(path)), out=str(local)), "local export")
    with Bucket(path.parent) as bucket:
        url = bucket.url + path.name
        src = f"HttpSource({url!r}, {str(cache)!r})"
        settle(warm=path)
        rem = measure(EXPORT.format(source=src, out=str(streamed)), "streamed export (loopback bucket)")
        fetched = bucket.sent["/" + path.name]
        gets = sum(1 for m, _, _ in bucket.requests if m == "GET")
        bucket.faults["/" + path.name].extend(["503", "", "", "cut", "", "", "", "stall", "", "cut"])
        bucket.stall_seconds = 3.0
        src = f"HttpSource({url!r}, {str(cache)!r}, timeout=2.0, max_wait=2.0)"
        measure(EXPORT.format(source=src, out=str(faulty)), "streamed export, 503 + cut + stall + cut")
        left = list(bucket.faults["/" + path.name])
    same = measure(SAME.format(a=str(local), b=str(streamed)), "compare outputs (streamed vs local)")["value"]
    same_f = measure(SAME.format(a=str(local), b=str(faulty)), "compare outputs (with faults vs local)")["value"]
    print(f"\nbytes fetched {fetched / 1e9:.3f} GB = {100 * fetched / size:.1f}% of the file in {gets} GETs "
          f"(goal <= 40%)")
    print(f"wall    streamed / local = {ratio(rem['seconds'], loc['seconds'])} (goal <= 1.2x)")
    print(f"peak    local {loc['peak_bytes'] / 2**30:.2f} GiB, streamed {rem['peak_bytes'] / 2**30:.2f} GiB "
          f"(goal <= local + 0.5 GB)")
    print(f"outputs identical: {same}; with faults: {same_f} (faults left unmet: {left or 'none'})")
    for d in (local, streamed, faulty, cache):
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
