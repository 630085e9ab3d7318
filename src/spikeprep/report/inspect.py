"""A readable text summary of one session (``spikeprep inspect``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.anatomy import OUTSIDE_BRAIN
from ..core.model import Session
from ..core.stimulus import epochs

__all__ = ["describe"]


def describe(session: Session) -> str:
    """Session id and type, duration, probes, units per area and quality, spikes,
    stimulus epochs, running speed and the layout variant, as text."""
    m = session.metadata
    u = session.units
    t = session.spikes.times
    duration = float(t.max() - min(0.0, float(t.min()))) if len(t) else 0.0
    lines = [
        f"session {session.session_id}  ({m.get('session_type', '?')}, layout {m.get('layout')}, NWB {m.get('nwb_version', '?')})",
        f"  file      {m.get('source_file')}  ({m.get('source_size', 0) / 1e6:.1f} MB)",
        f"  subject   {m.get('genotype', '?')}  sex {m.get('sex', '?')}  age {m.get('age', '?')}",
        f"  duration  {duration:.1f} s (first to last spike)",
        f"  probes    {len(session.probes)}: " + ", ".join(
            f"{name} ({(session.channels['probe_id'] == pid).sum()} ch)" for pid, name in session.probes["name"].items()),
        f"  units     {len(u)} ({(u['quality'] == 'good').sum()} good), spikes {len(t):,}",
    ]
    if m.get("read_warnings"):
        lines.append("  warnings  " + "; ".join(m["read_warnings"]))
    area = u["region"].astype(object).fillna(OUTSIDE_BRAIN)
    table = pd.crosstab(area, u["quality"].astype(object)).sort_index()
    lines.append("  units per area and quality:")
    lines += ["    " + row for row in table.to_string().splitlines()]
    lines.append("  stimulus epochs:")
    s = session.stimulus
    if len(s):
        for e in epochs(s).itertuples(index=False):
            btxt = "-" if np.isnan(e.stimulus_block) else f"{e.stimulus_block:g}"
            lines.append(f"    {e.stimulus_name:<24} block {btxt:>3}  {e.rows:>6} rows  "
                         f"{e.start_time:9.1f} – {e.stop_time:9.1f} s")
    r = session.running
    if len(r):
        lines.append(f"  running   {len(r):,} samples, {r['velocity'].min():.1f} … {r['velocity'].max():.1f} cm/s "
                     f"(mean {r['velocity'].mean():.1f})")
    if len(session.invalid_times):
        lines.append(f"  invalid   {len(session.invalid_times)} intervals: " + "; ".join(
            f"{row.start_time:.1f}-{row.stop_time:.1f} s [{','.join(t for t in row.tags if t)}]"
            for row in session.invalid_times.itertuples(index=False)))
    return "\n".join(lines)
