"""The project cache (issue 26): AllenSDK's tables over a 58-session catalog, and opening
an exported session.

Goals: ``get_units()`` over a 58-session catalog ≤ 1 s cold (a fresh process, the CSVs
read) and ≤ 0.1 s warm; ``get_session_data`` of an exported session ≤ 0.3 s.

The catalog is made from one synthetic bucket session's rows, repeated with new ids to
58 sessions × 6 probes × 384 channels and 2,800 units each (162,400 units), as large as
the released one. Run: python benchmarks/cache.py
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd

from common import DATA, measure

SESSIONS, UNITS = 58, 2800


def catalog() -> str:
    """``DATA/cache58``: a 58-session catalog (and one exported session), made once."""
    folder = DATA / "cache58"
    if (folder / "units.csv").exists():
        return str(folder)
    from spikeprep.synthetic import SynthSpec, write_bucket

    shutil.rmtree(folder, ignore_errors=True)
    root = write_bucket(DATA / "cache58_bucket", [SynthSpec(n_units=UNITS, duration=120.0, n_probes=6, seed=90)])
    sessions, probes = pd.read_csv(root / "sessions.csv"), pd.read_csv(root / "probes.csv")
    channels, units = pd.read_csv(root / "channels.csv"), pd.read_csv(root / "units.csv")
    parts: dict[str, list[pd.DataFrame]] = {"sessions": [], "probes": [], "channels": [], "units": []}
    for k in range(SESSIONS):
        shift = k * 10**7
        parts["sessions"].append(sessions.assign(id=sessions["id"] + shift))
        parts["probes"].append(probes.assign(id=probes["id"] + shift, ecephys_session_id=probes["ecephys_session_id"] + shift))
        parts["channels"].append(channels.assign(id=channels["id"] + shift,
                                                 ecephys_probe_id=channels["ecephys_probe_id"] + shift))
        parts["units"].append(units.assign(id=units["id"] + shift, ecephys_channel_id=units["ecephys_channel_id"] + shift))
    folder.mkdir(parents=True)
    for name, frames in parts.items():
        pd.concat(frames).to_csv(folder / f"{name}.csv", index=False)
    shutil.copytree(root / f"session_{int(sessions['id'].iloc[0])}", folder / f"session_{int(sessions['id'].iloc[0])}")
    shutil.copy(root / "manifest.json", folder / "manifest.json")
    return str(folder)


if __name__ == "__main__":
    folder = catalog()
    sid = int(pd.read_csv(f"{folder}/sessions.csv")["id"].iloc[0])
    print(f"catalog: {SESSIONS} sessions, {len(pd.read_csv(f'{folder}/units.csv')):,} units")
    code = ("import time, spikeprep\n"
            f"cache = spikeprep.EcephysProjectCache.fixed(manifest={folder!r})\n"
            "t = time.perf_counter(); units = cache.get_units(); cold = time.perf_counter() - t\n"
            "t = time.perf_counter(); cache.get_units(); warm = time.perf_counter() - t\n"
            "t = time.perf_counter(); cache.get_session_table(); table = time.perf_counter() - t\n"
            "RESULT = [cold, warm, table, len(units)]")
    cold, warm, table, n = measure(code, "get_units() cold and warm")["value"]
    print(f"  get_units(): {n:,} units, cold {cold:.3f} s (goal ≤ 1 s), warm {warm * 1000:.1f} ms (goal ≤ 100 ms); "
          f"get_session_table() after it {table * 1000:.1f} ms")
    measure("import spikeprep\n"
            f"spikeprep.EcephysProjectCache.fixed(manifest={folder!r}).get_session_data({sid})", "first export")
    code = ("import time, spikeprep\n"
            f"cache = spikeprep.EcephysProjectCache.fixed(manifest={folder!r})\n"
            f"t = time.perf_counter(); s = cache.get_session_data({sid}); s.units; RESULT = time.perf_counter() - t")
    opened = measure(code, "get_session_data of the exported session")["value"]
    print(f"  get_session_data (exported): {opened:.3f} s with units (goal ≤ 0.3 s)")
    print(f"  (numbers: {np.round([cold, warm, opened], 3).tolist()})")
