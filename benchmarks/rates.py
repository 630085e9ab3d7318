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
from spikeprep.io.nwb import read_session
trains = read_session({path!r}).spikes.to_dict()
t = time.perf_counter()
from notebook_reference import get_firing_rates
fr = get_firing_rates(trains)
pd.DataFrame(fr.T).to_pickle({pkl!r})
RESULT = time.perf_counter() - t
"""
WRITE = """
import time
from spikeprep.io.nwb import SpikeReader
from spikeprep.rates.binning import make_grid
from spikeprep.rates.writer import write_counts
t = time.perf_counter()
with SpikeReader({path!r}) as spikes:  # streams from the file: one block of units in memory
    write_counts(spikes, {store!r}, make_grid(spikes))
RESULT = time.perf_counter() - t
"""
WINDOW = """
import time
from spikeprep.rates.store import lazy_rates
r = lazy_rates({store!r})
t = time.perf_counter()
w = r.sel(time=slice({t0}, {t0} + 600 - 1e-9)).values  # 120,000 bins
RESULT = [time.perf_counter() - t, list(w.shape)]
"""
UNIT = """
import time
from spikeprep.rates.store import lazy_rates
r = lazy_rates({store!r})
t = time.perf_counter()
w = r.isel(unit_id=1400).values
RESULT = [time.perf_counter() - t, list(w.shape)]
"""
ONE_PROCESS = """
import statistics, time, zarr
from spikeprep.rates.store import lazy_rates
from spikeprep.analysis.rate_summaries import rates_correlation, rates_mean, rates_summary
z = zarr.open_group({store!r}, mode="r")["counts"]
r = lazy_rates({store!r})
out = {{}}
r.isel(time=slice(0, 2000)).values  # imports, compiled-kernel loading and first allocations out of the timings

def timed(f, reps=7):
    times = []
    for _ in range(reps):
        t = time.perf_counter(); x = f(); times.append(time.perf_counter() - t); del x
    return [min(times), statistics.median(times)]

for name, t0 in (("aligned", 600000), ("unaligned", 864300)):  # 3000 s (on a stored chunk edge) and 4321.5 s
    out["read " + name] = timed(lambda: z[t0 : t0 + 120000, :])
    out["read halo " + name] = timed(lambda: z[t0 - 5 : t0 + 120000 + 5, :])  # the counts the window needs
    out["rates " + name] = timed(lambda: r.isel(time=slice(t0, t0 + 120000)).values)
out["read unit"] = timed(lambda: z[:, 1400])
out["rates unit"] = timed(lambda: r.isel(unit_id=1400).values)

def read_all():
    for a in range(0, z.shape[0], 240000):
        c = z[a:a + 240000]
out["read all"] = timed(read_all, 3)
out["summary"] = timed(lambda: rates_summary({store_out!r}, {sid}), 3)
out["mean"] = timed(lambda: rates_mean({store_out!r}, {sid}), 3)
out["correlation"] = timed(lambda: rates_correlation({store_out!r}, {sid}, 3000.0, 3600.0), 1)
RESULT = out
"""
SUMMARY_ALONE = """
from spikeprep.analysis.rate_summaries import rates_summary
rates_summary({store_out!r}, {sid})
"""
DASK_MEAN = """
import time, spikeprep
t = time.perf_counter()
spikeprep.open_rates({store_out!r}, {sid}, chunks="auto").mean("time").compute()
RESULT = time.perf_counter() - t
"""
PYNAPPLE = """
import time, numpy as np, pynapple as nap
from spikeprep.io.nwb import read_session
s = read_session({path!r})
t = time.perf_counter()
ts = nap.TsGroup({{int(u): nap.Ts(s.spikes[i]) for i, u in enumerate(s.spikes.unit_ids)}})
c = ts.count(0.005)
r = c.smooth(std=0.00707, size_factor=5)
RESULT = time.perf_counter() - t
"""


def _one_process(path: str, work) -> None:
    """The lazy-rate ratios of issue 17, measured in one process on an export of the
    session (medians of repeated runs: this VM's page-fault times vary 10x)."""
    out = work / "export"
    code = f"from spikeprep.pipeline import export_file; r = export_file({path!r}, {str(out)!r}); RESULT = r.session_id"
    sid = measure(code, "(e) export for the one-process ratios (setup)")["value"]
    store = str(out / f"session_{sid}" / "binned.zarr")
    v = measure(ONE_PROCESS.format(store=store, store_out=str(out), sid=sid), "(e) windows, unit, summaries")["value"]
    alone = measure(SUMMARY_ALONE.format(store_out=str(out), sid=sid), "(e) rates_summary alone (for its peak)")
    dask = measure(DASK_MEAN.format(store_out=str(out), sid=sid), "(e) open_rates(chunks='auto').mean('time')")
    def both(what: str, base: str, goal: str) -> str:
        (a, am), (b, bm) = v[what], v[base]
        return (f"{a:.3f} s vs {b:.3f} s = {a / b:.2f}x by the fastest runs, {am:.3f} s vs {bm:.3f} s = "
                f"{am / bm:.2f}x by the medians (goal <= {goal})")

    for name in ("aligned", "unaligned"):
        print(f"(e) 600 s window, all units, {name}: rates vs reading its counts: "
              + both("rates " + name, "read " + name, "1.5x"))
        print("      vs reading the counts it needs (with the kernel's 5-bin halo on either side): "
              + both("rates " + name, "read halo " + name, "1.5x"))
    print("    one unit, whole session: " + both("rates unit", "read unit", "2x"))
    print("    rates_summary (mean, std, max per unit) vs reading all counts: " + both("summary", "read all", "2x"))
    print(f"    rates_summary alone: {alone['seconds']:.1f} s with imports, peak {alone['peak_bytes'] / 2**30:.2f} GiB "
          f"(goal <= 1.5 GB); exact rates_mean {v['mean'][0]:.3f} s; dask open_rates(chunks='auto').mean('time') "
          f"{dask['value']:.1f} s; rates_correlation of all units over 600 s {v['correlation'][0]:.1f} s")


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
    _one_process(path, work)
    if importlib.util.find_spec("pynapple"):
        try:
            d = measure(PYNAPPLE.format(path=path), "(d) pynapple count + smooth")
            print(f"(d) pynapple {d['value']:.1f} s; spikeprep (b) is {ratio(d['value'], b['value'])} faster")
        except RuntimeError as e:  # a full session does not fit: int64 counts of every bin are 40 GiB
            print(f"(d) pynapple failed: {str(e).strip().splitlines()[-1]}")
    else:
        print("(d) pynapple not installed: skipped")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
