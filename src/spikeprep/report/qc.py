"""ISI QC over the exported sessions of an output folder: ``OUT/qc/``.

Per unit (``isi_violations.parquet``), per session (``isi_summary.csv``: mean and std
over the selected units) and a figure (``isi_violations.png``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..core.errors import SpikeprepError
from ..core.options import ISI_THRESHOLD_MS
from ..export.annotate import with_isi
from ..export.columns import ISI_COLUMNS, unit_column
from ..export.layout import OutFolder, atomic_write
from ..export.qc import isi_metrics, notebook_selection, session_summary
from ..export.readers import open_record, open_spike_trains, open_units
from ..export.tables import Column, write_table

__all__ = ["qc_table", "run_qc", "QC_COLUMNS"]

log = logging.getLogger(__name__)

QC_COLUMNS = (
    Column("session_id", "int64", "", "Allen session id"),
    *(unit_column(c) for c in ("unit_id", "region", "layer", "is_rs", "snr")),
    ISI_COLUMNS[0], unit_column("isi_violations"), *ISI_COLUMNS[1:],
    Column("selected", "bool", "", "counted in the session summary (default: RS, snr > 2.5, six visual areas)"),
)


def qc_table(out: str | Path, session_id: int, *, select: str | None = None,
             threshold_ms: float = ISI_THRESHOLD_MS) -> pd.DataFrame:
    """Per-unit ISI QC of one exported session (columns :data:`QC_COLUMNS`).

    Uses the metrics the export stored in ``units.parquet`` when they were computed
    with the same threshold; otherwise recomputes them from ``spike_times.parquet``.
    """
    units = open_units(out, session_id)
    record = open_record(out, session_id)
    exported_with = record.params.get("isi_threshold_ms") if record else None
    if exported_with != threshold_ms or not {c.name for c in ISI_COLUMNS} <= set(units.columns):
        units = with_isi(units, isi_metrics(open_spike_trains(out, session_id), threshold_ms=threshold_ms))
    selected = units.eval(select) if select else notebook_selection(units)
    df = units.reset_index().assign(session_id=session_id, selected=np.asarray(selected, dtype=bool))
    names = [c.name for c in QC_COLUMNS]
    for c in names:
        if c not in df:
            df[c] = np.nan
    return df[names]


def run_qc(out: str | Path, *, select: str | None = None, threshold_ms: float = ISI_THRESHOLD_MS,
           echo: Callable[[str], None] = print, progress: bool = False) -> pd.DataFrame:
    """ISI QC over every exported session in ``out``; writes ``OUT/qc/``.

    Writes ``isi_violations.parquet`` (per unit), ``isi_summary.csv`` (per session mean
    and std over the selected units) and ``isi_violations.png``; prints the notebook's
    lines, with a bar over the sessions when ``progress`` (on a terminal). Returns the summary.

    Raises
    ------
    SpikeprepError
        No complete export in ``out``.
    """
    from .plots import isi_figure

    root = OutFolder(out)
    ids = root.exported()
    for folder in root.session_folders():
        if folder.session_id not in ids:
            log.warning("%s: not a complete export of this version; left out of the QC", folder.path)
    if not ids:
        raise SpikeprepError(f"{out}: no exported session to check")
    from tqdm.auto import tqdm

    per_unit = pd.concat([qc_table(out, sid, select=select, threshold_ms=threshold_ms)
                          for sid in tqdm(ids, desc="qc", unit="session", disable=None if progress else True)],
                         ignore_index=True)
    summary = session_summary(per_unit)
    root.qc.mkdir(exist_ok=True)
    atomic_write(root.qc / "isi_violations.parquet", lambda p: write_table(per_unit, p, QC_COLUMNS))
    atomic_write(root.qc / "isi_summary.csv", lambda p: summary.to_csv(p, index=False))
    atomic_write(root.qc / "isi_violations.png", lambda p: isi_figure(per_unit, summary, p, threshold_ms=threshold_ms))
    for row in summary.itertuples(index=False):
        echo(f"session {row.session_id} ({row.n_units} units): {row.mean_pct:.2f} +- {row.std_pct:.2f} "
             f"% of spikes per neuron violate {threshold_ms:g} ms condition.")  # the notebook's words
    means = summary["mean_pct"].dropna()
    echo(f"all {len(means)} sessions: {means.mean():.2f} +- {means.std(ddof=0):.2f} "
         f"% of spikes per neuron violate {threshold_ms:g} ms condition.")
    return summary
