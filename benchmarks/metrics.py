"""Stimulus analyses (issue 27): every analysis on each reference file against AllenSDK
2.16.2's, and at full scale.

Goals: all analyses on a reference file ≥ 50× faster than AllenSDK's on the same file;
full scale (2,800 units, every stimulus): ≤ 60 s and ≤ 2 GB.

AllenSDK's times: measured live when $SPIKEPREP_ALLENSDK_PYTHON names a Python with
allensdk==2.16.2 (the same script as the reference dumps: np.random.seed(0) before each
class, every quality filter off), else the wall times AllenSDK recorded for the same
classes on the same files (../shared/allen/reference2/<name>.allensdk/stimulus_analysis/
timings.json). Ours: a fresh process that exports the file, imports scipy's modules (as
AllenSDK's own import does before its timer), opens the session and runs every class (the
export is timed apart; AllenSDK's first class pays for loading the session).
Run: python benchmarks/metrics.py [--small]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from common import DATA, ROOT, full_scale_session, measure

REFERENCE2 = ROOT.parent / "shared" / "allen" / "reference2"
NAMES = ["vcn2_seed11_2probes_80u_600s", "vcn2020layout2_seed13_1probe_40u_600s"]
CLASSES = {"receptive_field_mapping": "ReceptiveFieldMapping", "drifting_gratings": "DriftingGratings",
           "static_gratings": "StaticGratings", "natural_scenes": "NaturalScenes", "flashes": "Flashes",
           "dot_motion": "DotMotion", "natural_movies": "NaturalMovies"}
MOVIE = {"stimulus_key": "natural_movie_one", "trial_duration": 1 / 30}

OURS = """
import time, warnings, json
warnings.simplefilter("ignore")
t = time.perf_counter()
import spikeprep
from spikeprep.pipeline import export_file
r = export_file({nwb!r}, {out!r}, force=True)
export_s = time.perf_counter() - t
import scipy.optimize, scipy.signal, scipy.stats, scipy.ndimage, scipy.fftpack  # AllenSDK's imports precede its timer too
import spikeprep.analysis.tuning
t = time.perf_counter()
s = spikeprep.open_session({out!r}, r.session_id)
times = {{}}
for key, name in {classes!r}.items():
    c = time.perf_counter()
    getattr(spikeprep, name)(s, **({movie!r} if key == "natural_movies" else {{}})).metrics
    times[key] = time.perf_counter() - c
RESULT = {{"export": export_s, "analyses": time.perf_counter() - t, "per_class": times}}
"""

ALLENSDK = """
import json, time, warnings, sys
warnings.simplefilter("ignore")
import numpy as np
from allensdk.brain_observatory.ecephys.ecephys_session import EcephysSession
from allensdk.brain_observatory.ecephys import stimulus_analysis as sa
kw = dict(amplitude_cutoff_maximum=np.inf, presence_ratio_minimum=-np.inf, isi_violations_maximum=np.inf,
          filter_by_validity=False)
t = time.perf_counter()
session = EcephysSession.from_nwb_path(sys.argv[1], api_kwargs=kw)
out = {}
for key, name in json.loads(sys.argv[2]).items():
    np.random.seed(0)
    c = time.perf_counter()
    try:
        getattr(sa, name)(session, **(json.loads(sys.argv[3]) if key == "natural_movies" else {})).metrics
    except Exception:
        pass  # dot motion raises on sessions without it; its time still counts, as in timings.json
    out[key] = time.perf_counter() - c
print("@@" + json.dumps({"total": time.perf_counter() - t, "per_class": out}))
"""


def allensdk_times(nwb: str, name: str) -> tuple[dict, str]:
    python = os.environ.get("SPIKEPREP_ALLENSDK_PYTHON")
    if python:
        p = subprocess.run([python, "-c", ALLENSDK, nwb, json.dumps(CLASSES), json.dumps(MOVIE)],
                           capture_output=True, text=True)
        line = [x for x in p.stdout.splitlines() if x.startswith("@@")]
        if p.returncode == 0 and line:
            return json.loads(line[-1][2:])["per_class"], "live"
        print(f"  AllenSDK failed ({p.stderr[-300:]}); using its recorded times")
    times = json.loads((REFERENCE2 / f"{name}.allensdk" / "stimulus_analysis" / "timings.json").read_text())
    return times, "recorded"


def reference_file(name: str) -> None:
    nwb = str(REFERENCE2 / f"{name}.nwb")
    out = DATA / "metrics_ref"
    shutil.rmtree(out, ignore_errors=True)
    ours = measure(OURS.format(nwb=nwb, out=str(out), classes=CLASSES, movie=MOVIE), f"spikeprep: {name}")["value"]
    sdk, how = allensdk_times(nwb, name)
    total_sdk = sum(sdk.values())
    print(f"\n  {'class':<26} {'AllenSDK':>9} {'spikeprep':>10} {'ratio':>8}")
    for key in CLASSES:
        a, b = sdk.get(key, float("nan")), ours["per_class"][key]
        print(f"  {key:<26} {a:8.2f}s {b:9.3f}s {a / b:7.0f}x")
    print(f"  {'all analyses':<26} {total_sdk:8.2f}s {ours['analyses']:9.3f}s {total_sdk / ours['analyses']:7.0f}x "
          f"(AllenSDK {how}; goal ≥ 50x)")
    both = ours["analyses"] + ours["export"]
    print(f"  {'with our export':<26} {total_sdk:8.2f}s {both:9.3f}s {total_sdk / both:7.0f}x\n")


def full_scale() -> None:
    nwb = full_scale_session(tuned=True)
    out = DATA / "metrics_full"
    if not (out / "sessions.parquet").exists() and not any(out.glob("session_*")):
        measure(f"from spikeprep.pipeline import export_file; export_file({str(nwb)!r}, {str(out)!r})",
                "export (full scale, tuned)")
    code = (f"import warnings; warnings.simplefilter('ignore')\n"
            f"from spikeprep.pipeline import metrics_many\n"
            f"r = metrics_many({str(out)!r}, force=True, progress=False)\n"
            f"assert all(x.ok for x in r), [x.message for x in r]\nRESULT = r[0].n_units")
    result = measure(code, "spikeprep metrics (full scale, every analysis)")
    print(f"  {result['value']} units: {result['seconds']:.1f} s (goal ≤ 60 s), "
          f"peak {result['peak_bytes'] / 2**30:.2f} GiB (goal ≤ 2 GB)")


if __name__ == "__main__":
    from spikeprep.analysis.tuning.minpack import fortran_minpack

    print("fits on", "Fortran MINPACK (libminpack)" if fortran_minpack() else "scipy's leastsq (no libminpack here)")
    for name in NAMES:
        reference_file(name)
    if "--small" not in sys.argv:
        full_scale()
