"""Stimulus alignment (issue 12): `spikeprep align` and `conditionwise_spike_statistics` on
the full-scale session (natural_scenes: 5,952 presentations × 70 bins × 2,800 units), and
counts + condition statistics for one stimulus against AllenSDK 2.16.2.

Goals: align ≤ 15 s and ≤ 2 GB; condition statistics ≤ 5 s; ≥ 20× AllenSDK.
AllenSDK runs in its own Python 3.11 venv (`pip install allensdk==2.16.2 hdmf==3.14.6`),
named by $SPIKEPREP_ALLENSDK_PYTHON; without it that part is skipped with a note.
AllenSDK reads only files its own writer made, so the comparison uses the AllenSDK-written
reference session of ../shared/allen/reference (60 units, 300 s) and, for scale, the
same calls repeated over its units ×5 (300 units).
Run: python benchmarks/aligned.py
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from common import DATA, ROOT, full_scale_session, measure, ratio

REFERENCE = ROOT.parent / "shared" / "allen" / "reference" / "vcn_seed1_2probes_60u_300s.nwb"

EXPORT = """
from spikeprep.pipeline import export_file
r = export_file({path!r}, {out!r})
assert r.ok, r.message
RESULT = r.session_id
"""
ALIGN = """
from spikeprep.analysis.aligned_store import align_session
r = align_session({out!r}, {sid}, "natural_scenes", (-0.05, 0.3), 0.005, force=True)
RESULT = r
"""
CONDSTATS = """
import time
from spikeprep.analysis.session import open_session
s = open_session({out!r}, {sid})
ids = s.get_stimulus_table("natural_scenes").index
s.spike_trains  # read every spike time once (also timed in the total)
t = time.perf_counter()
stats = s.conditionwise_spike_statistics(ids)
RESULT = {{"method_s": time.perf_counter() - t, "rows": len(stats)}}
"""
# The same timed calls in both processes, ours and AllenSDK's (the scripts' {timing}).
TIMED_CALLS = """\
t = time.perf_counter()
for _ in range({repeat}):
    counts = s.presentationwise_spike_counts(np.arange(-0.05, 0.3, 0.005), ids, units)
t_counts = time.perf_counter() - t
t = time.perf_counter()
for _ in range({repeat}):
    stats = s.conditionwise_spike_statistics(ids, units)
"""
OURS_SMALL = """
import time
import numpy as np
from spikeprep.analysis.session import open_session
s = open_session({out!r}, {sid})
ids = s.get_stimulus_table("{stim}").index
units = s.units.index
s.spike_trains  # read once, as AllenSDK's spike_times below
s.presentationwise_spike_counts([0.0, 0.005], ids[:1], units[:1])  # imports xarray (AllenSDK has already)
{timing}RESULT = {{"counts_s": t_counts, "stats_s": time.perf_counter() - t}}
"""
SDK_SMALL = """
import json, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from allensdk.brain_observatory.ecephys.ecephys_session import EcephysSession
s = EcephysSession.from_nwb_path({path!r}, api_kwargs={{"amplitude_cutoff_maximum": np.inf,
    "presence_ratio_minimum": -np.inf, "isi_violations_maximum": np.inf, "filter_by_validity": False,
    "filter_out_of_brain_units": False}})
p = s.stimulus_presentations
ids = p[p.stimulus_name == "{stim}"].index
units = s.units.index
s.spike_times
{timing}print("@@SDK@@" + json.dumps({{"counts_s": t_counts, "stats_s": time.perf_counter() - t}}))
"""


def full_scale() -> None:
    path = str(full_scale_session())
    out = DATA / "aligned_out"
    shutil.rmtree(out, ignore_errors=True)
    print("full-scale session", path)
    sid = measure(EXPORT.format(path=path, out=str(out)), "spikeprep export (setup)")["value"]
    a = measure(ALIGN.format(out=str(out), sid=sid), "spikeprep align natural_scenes, all units")
    r = a["value"]
    cells = r["presentations"] * r["bins"] * r["units"]
    print(f"    {r['presentations']} presentations x {r['bins']} bins x {r['units']} units = {cells:.3g} cells"
          f"  (goal <= 15 s, <= 2 GB)")
    c = measure(CONDSTATS.format(out=str(out), sid=sid), "conditionwise_spike_statistics, all units (total)")
    print(f"    the method itself {c['value']['method_s']:.2f} s, {c['value']['rows']:,} rows (goal <= 5 s)")
    shutil.rmtree(out, ignore_errors=True)


def against_allensdk(stim: str = "natural_scenes") -> None:
    python = os.environ.get("SPIKEPREP_ALLENSDK_PYTHON")
    out = DATA / "aligned_ref"
    shutil.rmtree(out, ignore_errors=True)
    sid = measure(EXPORT.format(path=str(REFERENCE), out=str(out)), "spikeprep export of the reference (setup)")["value"]
    print(f"\n{stim} on {REFERENCE.name}, counts (-0.05…0.3 s, 5 ms) + condition statistics, x5 (= 300 units):")
    timing = TIMED_CALLS.format(repeat=5)
    ours = measure(OURS_SMALL.format(out=str(out), sid=sid, stim=stim, timing=timing), "spikeprep")["value"]
    print(f"    counts {ours['counts_s']:.3f} s, condition statistics {ours['stats_s']:.3f} s")
    if not python or not Path(python).exists():
        print("    AllenSDK: set SPIKEPREP_ALLENSDK_PYTHON to a Python with allensdk==2.16.2 to compare")
        return
    import json
    import subprocess

    p = subprocess.run([python, "-c", SDK_SMALL.format(path=str(REFERENCE), stim=stim, timing=timing)],
                       capture_output=True, text=True)
    line = [x for x in p.stdout.splitlines() if x.startswith("@@SDK@@")]
    if p.returncode != 0 or not line:
        print(f"    AllenSDK failed:\n{p.stderr[-2000:]}")
        return
    sdk = json.loads(line[-1][len("@@SDK@@"):])
    print(f"  AllenSDK 2.16.2: counts {sdk['counts_s']:.3f} s, condition statistics {sdk['stats_s']:.3f} s")
    ours_total, sdk_total = ours["counts_s"] + ours["stats_s"], sdk["counts_s"] + sdk["stats_s"]
    print(f"  spikeprep is {sdk_total / ours_total:.1f}x faster (counts {ratio(sdk['counts_s'], ours['counts_s'])}, "
          f"statistics {ratio(sdk['stats_s'], ours['stats_s'])}; goal >= 20x)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    if "--small" not in sys.argv:
        full_scale()
    against_allensdk()
