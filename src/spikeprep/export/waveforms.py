"""The opt-in outputs: every spike's amplitude and every unit's mean waveform.

Together they are 63% of a released file's bytes, so an export (or a streamed one) reads
them only when asked (``--amplitudes``, ``--waveforms``):

- ``spike_amplitudes.parquet``: ``unit_id``, ``amplitude``, every spike of the file in
  file order (negative spike times are kept here, as AllenSDK keeps them);
- ``mean_waveforms.zarr`` (Zarr format 2): ``waveform_mean`` (rows × samples, float32),
  ``offsets`` (unit ``i``'s rows are ``offsets[i]:offsets[i + 1]``, one per channel of
  the unit's probe in probe-channel order) and ``unit_id``, in the units' order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ExportError
from ..core.model import Session
from ..core.options import ExportOptions
from .layout import SessionRecord
from .tables import Column

__all__ = ["AMPLITUDE_COLUMNS", "write_amplitudes", "write_waveforms", "open_waveforms", "check_waveforms"]

AMPLITUDE_COLUMNS = (
    Column("unit_id", "int64", "", "Allen unit id"),
    Column("amplitude", "float64", "V", "the spike's amplitude as the file holds it (units/spike_amplitudes)"),
)
_UNITS_PER_BLOCK = 64


def _positions(session: Session, name: str) -> tuple[Any, np.ndarray]:
    """The file's column reader and the exported units' positions in the file."""
    columns = session.unit_columns
    if columns is None or not columns.has(name):
        raise ExportError(f"session {session.session_id}: the file has no units/{name}")
    where = {int(u): i for i, u in enumerate(columns.unit_ids)}
    return columns, np.array([where[int(u)] for u in session.units.index], dtype=np.int64)


def write_amplitudes(session: Session, path: Path, options: ExportOptions) -> dict[str, Any]:
    """``spike_amplitudes.parquet``, one row group per block of units."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, positions = _positions(session, "spike_amplitudes")
    schema = pa.schema([pa.field(c.name, pa.int64() if c.dtype == "int64" else pa.float64(),
                                 metadata={"unit": c.unit, "description": c.meaning}) for c in AMPLITUDE_COLUMNS])
    rows = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for a in range(0, len(positions), _UNITS_PER_BLOCK):
            values, offsets = columns.read("spike_amplitudes", positions[a : a + _UNITS_PER_BLOCK])
            ids = np.repeat(session.units.index.to_numpy(dtype=np.int64)[a : a + _UNITS_PER_BLOCK], np.diff(offsets))
            writer.write_table(pa.table({"unit_id": ids, "amplitude": values.astype(np.float64)}, schema=schema))
            rows += len(values)
    return {"rows": rows}


def write_waveforms(session: Session, path: Path, options: ExportOptions) -> dict[str, Any]:
    """``mean_waveforms.zarr``, written one block of units at a time (float32)."""
    import zarr
    from numcodecs import Blosc

    columns, positions = _positions(session, "waveform_mean")
    first, _ = columns.read("waveform_mean", positions[:1])
    n_samples = first.shape[1] if first.ndim == 2 else 0
    root = zarr.open_group(str(path), mode="w-", zarr_format=2)
    rows_per_unit = max(1, len(first))
    store = root.create_array("waveform_mean", shape=(0, n_samples), dtype="float32",
                              chunks=(rows_per_unit * 16, max(n_samples, 1)), compressors=Blosc("zstd", 3),
                              fill_value=None, attributes={"_ARRAY_DIMENSIONS": ["row", "time"]})
    offsets = [0]
    for a in range(0, len(positions), _UNITS_PER_BLOCK):
        values, block_offsets = columns.read("waveform_mean", positions[a : a + _UNITS_PER_BLOCK])
        start = offsets[-1]
        store.resize((start + len(values), n_samples))
        store[start:] = values.astype(np.float32)
        offsets += (start + block_offsets[1:]).tolist()
    root.create_array("offsets", data=np.array(offsets, dtype=np.int64), fill_value=None,
                      attributes={"_ARRAY_DIMENSIONS": ["bound"]})
    root.create_array("unit_id", data=session.units.index.to_numpy(dtype=np.int64), fill_value=None,
                      attributes={"_ARRAY_DIMENSIONS": ["unit_id"]})
    zarr.consolidate_metadata(str(path), zarr_format=2)
    return {"units": len(positions), "rows": int(offsets[-1]), "samples": int(n_samples)}


def open_waveforms(path: Path) -> Any:
    import zarr

    return zarr.open_group(str(path), mode="r", zarr_format=2)


def check_waveforms(path: Path, record: SessionRecord) -> list[str]:
    facts = record.outputs.get("mean_waveforms", {})
    root = open_waveforms(path)
    rows, units = root["waveform_mean"].shape[0], root["unit_id"].shape[0]
    if (rows, units) != (facts.get("rows"), facts.get("units")) or root["offsets"][-1] != rows:
        return [f"{path}: {units} units and {rows} rows, session.json says {facts.get('units')} and {facts.get('rows')}"]
    return []
