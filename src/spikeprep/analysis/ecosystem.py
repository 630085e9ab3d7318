"""Exported folders in other tools: every session's units as one table (pyarrow
datasets), unit counts by session, area and layer, and pynapple objects.

DuckDB and polars read the Parquet files directly (see the README); spike times need
no ``session_id`` column because Allen unit ids are unique across sessions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.anatomy import OUTSIDE_BRAIN
from ..core.errors import SpikeprepError
from ..export.layout import OutFolder
from ..export.readers import open_output, open_record, open_spike_trains, open_units

__all__ = ["unit_counts", "to_pynapple", "PYNAPPLE_METADATA"]

# Unit columns carried as TsGroup metadata (those a session has).
PYNAPPLE_METADATA = ("region", "layer", "cortical_depth_um", "cortical_depth_norm", "is_rs", "passes_allen_qc",
                     "quality", "snr", "firing_rate", "isi_violations", "isi_5ms_pct", "probe_name",
                     "probe_vertical_position", "n_spikes")


def unit_counts(units: pd.DataFrame) -> pd.DataFrame:
    """Units per session, area and layer: ``units`` (all) and ``passing`` (Allen's QC)."""
    table = units.assign(region=units["region"].astype(object).fillna(OUTSIDE_BRAIN),
                         layer=units["layer"].astype(object).fillna("-"))
    g = table.groupby(["session_id", "region", "layer"], sort=True)
    return pd.DataFrame({"units": g.size(), "passing": g["passes_allen_qc"].sum().astype(int)})


def to_pynapple(out: str | Path, session_id: int) -> dict[str, Any]:
    """One exported session as pynapple objects.

    Returns
    -------
    dict
        ``units``: a ``TsGroup`` of every unit (zero-spike units included; indexed by
        unit id) with metadata :data:`PYNAPPLE_METADATA`; ``running``: a ``Tsd`` of the
        speed (cm/s) at each sample's start; ``stimulus``: ``{name: IntervalSet}`` of
        the presentations; ``invalid``: an ``IntervalSet``; ``time_support``: the
        ``IntervalSet`` of the counts grid (``t_start`` to ``t_stop``, s). pynapple keeps
        intervals apart: presentations that touch are shortened by 1 µs, and ones that
        overlap are joined (its own rules, applied quietly here).
    """
    try:
        import pynapple as nap
    except ImportError as exc:
        raise SpikeprepError("to_pynapple needs pynapple: pip install 'spikeprep[pynapple]'") from exc
    record = open_record(out, session_id)
    if record is None or not record.is_current:
        raise SpikeprepError(f"{OutFolder(out).session(session_id).path}: not a complete export of this version")
    grid = record.outputs["binned"]["grid"]
    support = nap.IntervalSet(start=grid["t_start"], end=grid["t_stop"])
    units = open_units(out, session_id)
    trains = open_spike_trains(out, session_id)
    meta = units[[c for c in PYNAPPLE_METADATA if c in units]]  # by unit id: TsGroup sorts its keys
    group = nap.TsGroup({int(u): nap.Ts(t=trains[i], time_units="s") for i, u in enumerate(trains.unit_ids)},
                        time_support=support, metadata=meta)
    run = open_output(out, session_id, "running")
    running = nap.Tsd(t=run["start_time"].to_numpy(), d=run["velocity"].to_numpy(), time_units="s")
    stim = open_output(out, session_id, "stimulus")
    stimulus = {str(name): _intervals(nap, rows["start_time"], rows["stop_time"])
                for name, rows in stim.groupby("stimulus_name", sort=False)}
    invalid = open_output(out, session_id, "invalid_times")
    return {"units": group, "running": running, "stimulus": stimulus,
            "invalid": _intervals(nap, invalid["start_time"], invalid["stop_time"]), "time_support": support}


def _intervals(nap: Any, start: pd.Series, stop: pd.Series) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Some starts")  # touching presentations: documented above
        return nap.IntervalSet(start=np.asarray(start, dtype=float), end=np.asarray(stop, dtype=float))
