"""A full session: `spikeprep export` vs the notebook's loop body (_read_activity,
get_firing_rates, four to_pickle), same file, same run (issues 4 and 28).
Goals: wall ratio <= 0.1, peak <= 1 GB, output <= 1/4 of the notebook's bytes.
Run: python benchmarks/export.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from common import DATA, ROOT, dir_size, full_scale_session, measure, ratio, settle

NOTEBOOK = """
import sys
sys.path.insert(0, {tests!r})
import pandas as pd
from notebook_reference import _read_activity, get_firing_rates
units, spike_times, running, stimulus = _read_activity({path!r})
fr = get_firing_rates(spike_times)
units.to_pickle({out!r} + "/units.pkl")
running.to_pickle({out!r} + "/running.pkl")
stimulus.to_pickle({out!r} + "/stimulus.pkl")
pd.DataFrame(fr.T).to_pickle({out!r} + "/fr.pkl")
"""
OURS = """
from spikeprep.pipeline import export_file
r = export_file({path!r}, {out!r})
assert r.ok, r.message
RESULT = r.n_spikes
"""


def main() -> None:
    path = str(full_scale_session())
    # new folders each run, removed at its end: on ext4, creating the store's 3,520 chunk
    # files where thousands were just deleted costs seconds (its inode allocator checks
    # each recently freed inode), which a first export never pays
    nb_out, sp_out = (Path(tempfile.mkdtemp(prefix=f"export_{who}.", dir=DATA)) for who in ("notebook", "spikeprep"))
    print("export on", path)
    # Each step starts with no dirty pages (the 5.4 GB the notebook writes would
    # otherwise be flushed to disk, and its deletion discarded, during the next step) and
    # with the session file in the page cache.
    settle(warm=Path(path))
    nb = measure(NOTEBOOK.format(path=path, out=str(nb_out), tests=str(ROOT / "tests")), "notebook loop body")
    nb_bytes = dir_size(nb_out)
    shutil.rmtree(nb_out, ignore_errors=True)
    settle(warm=Path(path))
    sp = measure(OURS.format(path=path, out=str(sp_out)), "spikeprep export (+ every spike time)")
    sp_bytes = dir_size(sp_out)
    print(f"\nwall    spikeprep / notebook = {ratio(sp['seconds'], nb['seconds'])}  (goal <= 0.1)")
    print(f"peak    notebook {nb['peak_bytes'] / 2**30:.2f} GiB, spikeprep {sp['peak_bytes'] / 2**30:.2f} GiB (goal <= 1 GB)")
    print(f"written notebook {nb_bytes / 1e9:.2f} GB, spikeprep {sp_bytes / 1e9:.2f} GB "
          f"= 1/{nb_bytes / sp_bytes:.1f} (goal <= 1/4), holding {sp['value']:,} spike times")
    for d in (nb_out, sp_out):
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
