"""Firing rates at full scale: the notebook's get_firing_rates + pickle vs spikeprep's
Zarr counts store and lazy rates (issue 3). Run: python benchmarks/rates.py
"""

from __future__ import annotations

import importlib.util
import shutil

from common import DATA, ROOT, dir_size, full_scale_session, measure, ratio

NOTEBOOK = """
import sys, time
sys.path.insert(0, {tests!r})
import numpy as np, pandas as pd
from spikeprep.nwb import read_session
trains = read_session({path!r}).spikes.to_dict()
t = time.perf_counter()
from notebook_reference import get_firing_rates
fr = get_firing_rates(trains)
pd.DataFrame(fr.T).to_pickle({pkl!r})
RESULT = time.perf_counter() - t
"""
WRITE = """
import time
from spikeprep.nwb import SpikeReader
from spikeprep.rates import make_grid
from spikeprep.ratestore import write_counts
t = time.perf_counter()
with SpikeReader({path!r}) as spikes:  # streams from the file: one block of units in memory
    write_counts(spikes, {store!r}, make_grid(spikes))
RESULT = time.perf_counter() - t
"""
WINDOW = """
import time
from spikeprep.ratestore import lazy_rates
r = lazy_rates({store!r})
t = time.perf_counter()
w = r.sel(time=slice({t0}, {t0} + 600 - 1e-9)).values  # 120,000 bins
RESULT = [time.perf_counter() - t, list(w.shape)]
"""
UNIT = """
import time
from spikeprep.ratestore import lazy_rates
r = lazy_rates({store!r})
t = time.perf_counter()
w = r.isel(unit_id=1400).values
RESULT = [time.perf_counter() - t, list(w.shape)]
"""
ONE_PROCESS = """
import time, numpy as np, zarr
from spikeprep.ratestore import lazy_rates
from spikeprep.ratestats import rates_mean, rates_summary
z = zarr.open_group({store!r}, mode="r")["counts"]
r = lazy_rates({store!r})
out = {{}}
r.isel(time=slice(0, 2000)).values  # imports and first allocations out of the timings
for rep in range(2):
    t = time.perf_counter(); c = z[600000:720000, :]; out["read window"] = time.perf_counter() - t; del c
    t = time.perf_counter(); w = r.isel(time=slice(600000, 720000)).values; out["rates window"] = time.perf_counter() - t
    del w
t = time.perf_counter(); u = z[:, 1400]; out["read unit"] = time.perf_counter() - t
t = time.perf_counter(); u = r.isel(unit_id=1400).values; out["rates unit"] = time.perf_counter() - t
t = time.perf_counter()
for a in range(0, z.shape[0], 240000):
    c = z[a:a + 240000]
out["read all"] = time.perf_counter() - t
t = time.perf_counter(); rates_summary({store_out!r}, {sid}); out["summary"] = time.perf_counter() - t
t = time.perf_counter(); rates_mean({store_out!r}, {sid}); out["mean"] = time.perf_counter() - t
RESULT = out
"""
PYNAPPLE = """
import time, numpy as np, pynapple as nap
from spikeprep.nwb import read_session
s = read_session({path!r})
t = time.perf_counter()
ts = nap.TsGroup({{int(u): nap.Ts(s.spikes[i]) for i, u in enumerate(s.spikes.unit_ids)}})
c = ts.count(0.005)
r = c.smooth(std=0.00707, size_factor=5)
RESULT = time.perf_counter() - t
"""


def _one_process(path: str, work) -> dict | None:
    """The lazy-rate ratios of issue 17, measured in one process on an export of the session."""
    out = work / "export"
    code = f"from spikeprep.pipeline import export_file; r = export_file({path!r}, {str(out)!r}); RESULT = r.session_id"
    sid = measure(code, "(e) export for the one-process ratios (setup)")["value"]
    store = str(out / f"session_{sid}" / "binned.zarr")
    return measure(ONE_PROCESS.format(store=store, store_out=str(out), sid=sid), "(e) window, unit, summary, mean")


def main() -> None:
    path = str(full_scale_session())
    work = DATA / "rates_bench"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    pkl, store = str(work / "fr.pkl"), str(work / "binned.zarr")
    tests = str(ROOT / "tests")
    print("firing rates on", path)
    a = measure(NOTEBOOK.format(path=path, pkl=pkl, tests=tests), "(a) notebook get_firing_rates + to_pickle")
    b = measure(WRITE.format(path=path, store=store), "(b) spikeprep write_counts -> binned.zarr")
    c1 = measure(WINDOW.format(store=store, t0=3000), "(c) open_rates: 600 s window [3000, 3600), all units")
    c1b = measure(WINDOW.format(store=store, t0=4321.5), "(c) open_rates: 600 s window [4321.5, 4921.5)")
    c2 = measure(UNIT.format(store=store), "(c) open_rates: one unit, whole session")
    pk, st = dir_size(work / "fr.pkl"), dir_size(work / "binned.zarr")
    print(f"\n(a) notebook step {a['value']:.1f} s (after reading), peak {a['peak_bytes'] / 2**30:.2f} GiB, pickle {pk / 1e9:.2f} GB")
    print(f"(b) counts store  {b['value']:.1f} s (reading included), peak {b['peak_bytes'] / 2**30:.2f} GiB, store  {st / 1e9:.3f} GB")
    print(f"    speed-up (a)/(b) = {ratio(a['value'], b['value'])} (goal >= 5x); store/pickle = 1/{pk / st:.0f} (goal <= 1/20)")
    print(f"(c) 600 s window of all units: {c1['value'][0]:.2f} s and {c1b['value'][0]:.2f} s (goal < 2 s); "
          f"one unit's whole trace: {c2['value'][0]:.2f} s")
    e = _one_process(path, work)
    if e:
        v = e["value"]
        print(f"(e) one process: 600 s window {v['rates window']:.2f} s vs reading its counts {v['read window']:.2f} s "
              f"= {v['rates window'] / v['read window']:.1f}x (goal <= 1.5x); one unit {v['rates unit']:.3f} s vs "
              f"{v['read unit']:.3f} s = {v['rates unit'] / v['read unit']:.1f}x (goal <= 2x)")
        print(f"    whole session: rates_summary (mean, std, max) {v['summary']:.1f} s vs reading all counts "
              f"{v['read all']:.1f} s = {v['summary'] / v['read all']:.1f}x (goal <= 2x), peak "
              f"{e['peak_bytes'] / 2**30:.2f} GiB; exact rates_mean {v['mean']:.2f} s")
    if importlib.util.find_spec("pynapple"):
        d = measure(PYNAPPLE.format(path=path), "(d) pynapple count + smooth")
        print(f"(d) pynapple {d['value']:.1f} s; spikeprep (b) is {ratio(d['value'], b['value'])} faster")
    else:
        print("(d) pynapple not installed: skipped")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
