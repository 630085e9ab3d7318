"""The metrics outputs of an exported session (``spikeprep metrics``):

- ``session_<id>/unit_metrics.parquet``: one row per unit, ``unit_id`` and every
  analysis's columns (units of measure and meanings in the field metadata);
- ``session_<id>/receptive_fields.zarr``: ``receptive_fields`` (unit × y_position ×
  x_position spike counts, the gabor grid as seen on the screen: top row first);
- ``OUT/unit_metrics.parquet``: every session's rows with ``session_id`` and
  ``session_type`` (the table behind the project cache's
  ``get_unit_analysis_metrics_by_session_type``).

Each is written beside its place and renamed into it; a session whose metrics were
computed from its current export is skipped.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...core.errors import SpikeprepError
from ...export.layout import OutFolder, SessionFolder, atomic_write
from ...export.tables import Column, write_table
from ..session import ExportedSession
from .columns import ALL
from .rf import ReceptiveFieldMapping

__all__ = ["UNIT_METRICS", "RECEPTIVE_FIELDS", "METRICS_VERSION", "session_metrics", "write_metrics",
           "collect_metrics", "metrics_columns"]

UNIT_METRICS = "unit_metrics.parquet"
RECEPTIVE_FIELDS = "receptive_fields.zarr"
METRICS_VERSION = 1
_KEY = "spikeprep_metrics"
_UNIT_ID = Column("unit_id", "int64", "", "the unit (AllenSDK's unit_id)")


def metrics_columns() -> list[Column]:
    """Every metric column once, in the order of the analyses (the first of a repeated name)."""
    seen: dict[str, Column] = {}
    for columns in ALL.values():
        for c in columns:
            seen.setdefault(c.name, c)
    return list(seen.values())


def session_metrics(session: ExportedSession, seed: int = 0) -> tuple[pd.DataFrame, ReceptiveFieldMapping, list[str]]:
    """Every analysis on one session: the merged table (index ``unit_id``), the receptive
    field analysis (its maps) and the notes of stimuli the session lacks."""
    from . import ANALYSES

    parts, notes, rf = [], [], None
    for cls in ANALYSES:
        analysis = cls(session, seed=seed) if cls is ReceptiveFieldMapping else cls(session)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a missing stimulus: kept as a note
            parts.append(analysis.metrics)
        if analysis.note:
            notes.append(analysis.note)
        if cls is ReceptiveFieldMapping:
            rf = analysis
    merged = pd.concat(parts, axis=1)
    return merged.loc[:, ~merged.columns.duplicated()], rf, notes


def _stamp(folder: SessionFolder) -> dict[str, Any]:
    record = folder.read_record()
    if record is None or not folder.path.is_dir():
        raise SpikeprepError(f"{folder.path}: not an exported session (run spikeprep export first)")
    return {"version": METRICS_VERSION, "export_finished_at": record.finished_at}


def _is_done(folder: SessionFolder, stamp: dict[str, Any]) -> bool:
    import pyarrow.parquet as pq

    table, store = folder.path / UNIT_METRICS, folder.path / RECEPTIVE_FIELDS
    if not (table.exists() and store.exists()):
        return False
    try:
        meta = pq.read_schema(table).metadata or {}
        return json.loads(meta.get(_KEY.encode(), b"{}")) == stamp
    except Exception:  # unreadable: computed again
        return False


def write_metrics(out: str | Path, session_id: int, *, force: bool = False, seed: int = 0) -> dict[str, Any]:
    """Compute and write one session's metrics outputs (see the module); returns the
    status (``computed`` or ``skipped``), the number of units, the notes and the time."""
    t0 = time.perf_counter()
    folder = SessionFolder(out, session_id)
    stamp = _stamp(folder)
    if not force and _is_done(folder, stamp):
        return {"status": "skipped", "units": None, "notes": [], "seconds": time.perf_counter() - t0}
    session = ExportedSession(out, session_id)
    table, rf, notes = session_metrics(session, seed=seed)
    frame = table.reset_index()
    metadata = {_KEY: json.dumps(stamp), "spikeprep_notes": json.dumps(notes)}
    _write_rf_store(folder.path / RECEPTIVE_FIELDS, rf)
    atomic_write(folder.path / UNIT_METRICS, lambda p: write_table(frame, p, [_UNIT_ID, *metrics_columns()], metadata))
    return {"status": "computed", "units": len(frame), "notes": notes, "seconds": time.perf_counter() - t0}


def _write_rf_store(path: Path, rf: ReceptiveFieldMapping) -> None:
    """``receptive_fields`` (unit_id × y_position × x_position), Zarr format 2 with
    xarray's dimension names, written beside ``path`` and renamed into it."""
    import zarr

    maps = rf.receptive_fields if rf.has_stimulus else np.zeros((rf.unit_count, 0, 0), dtype=np.uint16)
    screen_y = 40.0 - rf.elevations if rf.has_stimulus else np.empty(0)
    x = rf.azimuths if rf.has_stimulus else np.empty(0)
    tmp = path.with_name(f".tmp-{path.name}-{time.time_ns()}")
    try:
        root = zarr.open_group(str(tmp), mode="w-", zarr_format=2)
        root.attrs.update({"long_name": "spike counts in [0, 0.249) s after each gabor onset, summed per position",
                           "rows": "y_position descending (top of the screen first), as AllenSDK's maps",
                           "stimulus": str(rf.stimulus_key)})
        dims = ["unit_id", "y_position", "x_position"]
        root.create_array("receptive_fields", data=maps, fill_value=None, attributes={"_ARRAY_DIMENSIONS": dims})
        for name, values in (("unit_id", rf.unit_ids.astype(np.int64)), ("y_position", screen_y), ("x_position", x)):
            root.create_array(name, data=np.asarray(values), fill_value=None,
                              attributes={"_ARRAY_DIMENSIONS": [name], **({} if name == "unit_id" else {"units": "deg"})})
        zarr.consolidate_metadata(str(tmp))
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def collect_metrics(out: str | Path) -> Path | None:
    """``OUT/unit_metrics.parquet`` from every session's table (``session_id`` and
    ``session_type`` first); None when no session has metrics yet."""
    out = Path(out)
    frames = []
    for sid in OutFolder(out).exported():
        folder = SessionFolder(out, sid)
        path = folder.path / UNIT_METRICS
        if path.exists():
            t = pd.read_parquet(path)
            t.insert(0, "session_type", str(folder.read_record().session_type))
            t.insert(0, "session_id", np.int64(sid))
            frames.append(t)
    if not frames:
        return None
    table = pd.concat(frames, ignore_index=True)
    declared = [Column("session_id", "int64", "", "the session"),
                Column("session_type", "string", "", "brain_observatory_1.1 or functional_connectivity"),
                _UNIT_ID, *metrics_columns()]
    target = out / UNIT_METRICS
    atomic_write(target, lambda p: write_table(table, p, declared))
    return target
