"""Read a full-scale session: spikeprep.read_session vs reading units/spike_times alone.

Goal (issue 2): within 1.5x the raw read's time, peak memory within 1.5x the spike
times' size. Run: python benchmarks/read_session.py
"""

from __future__ import annotations

from common import full_scale_session, measure, ratio

RAW = """
import time, h5py, numpy as np
t0 = time.perf_counter()
with h5py.File({path!r}, "r") as f:
    ds = f["units/spike_times"]
    t = np.empty(ds.shape, ds.dtype)
    ds.read_direct(t)
RESULT = [time.perf_counter() - t0, t.nbytes]
"""
BASELINE = "import numpy, pandas, h5py, spikeprep.nwb\nRESULT = 0"
OURS = """
import time
from spikeprep.io.nwb import read_session
t0 = time.perf_counter()
s = read_session({path!r})
RESULT = [time.perf_counter() - t0, s.spikes.times.nbytes]
"""


def main() -> None:
    path = str(full_scale_session())
    print("read_session on", path)
    base = measure(BASELINE, "interpreter + imports (baseline)")
    # This VM reclaims page cache on its own (DAMON): interleave 3 runs of each, keep the best.
    raws, ours_runs = [], []
    for k in range(3):
        raws.append(measure(RAW.format(path=path), f"h5py: units/spike_times only (run {k + 1})"))
        ours_runs.append(measure(OURS.format(path=path), f"spikeprep.read_session, everything (run {k + 1})"))
    raw = min(raws, key=lambda r: r["value"][0])
    ours = min(ours_runs, key=lambda r: r["value"][0])
    size = raw["value"][1]
    print(f"\nspike times: {size / 2**30:.2f} GiB (reads timed after the imports)")
    print(f"time   read_session {ours['value'][0]:.2f} s / raw read {raw['value'][0]:.2f} s = "
          f"{ratio(ours['value'][0], raw['value'][0])}  (goal <= 1.5x)")
    print(f"memory read_session peak / spikes   = {ratio(ours['peak_bytes'], size)}  (goal <= 1.5x); "
          f"above the import baseline: {ratio(ours['peak_bytes'] - base['peak_bytes'], size)}")


if __name__ == "__main__":
    main()
