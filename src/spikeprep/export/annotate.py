"""The stage that adds the derived unit columns (declared in :mod:`spikeprep.export.columns`)
and keeps the units a query selects.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..core.anatomy import add_layers
from ..core.errors import SpikeprepError
from ..core.model import Session
from ..core.options import ExportOptions
from .columns import DERIVED_COLUMNS, FRONT_COLUMNS
from .qc import is_rs, isi_metrics, passes_allen_qc

__all__ = ["annotate", "with_isi", "order_unit_columns"]


def order_unit_columns(flat: pd.DataFrame) -> pd.DataFrame:
    """Front columns first (declared order), then the file's other columns (file order),
    then the derived columns (declared order)."""
    front = [c.name for c in FRONT_COLUMNS if c.name in flat]
    tail = [c.name for c in DERIVED_COLUMNS if c.name in flat]
    return flat[front + [c for c in flat.columns if c not in front + tail] + tail]


def with_isi(units: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """``units`` with the columns of :func:`~spikeprep.export.qc.isi_metrics` (same unit order)."""
    return units.assign(**{c: metrics[c].to_numpy() for c in metrics.columns})


def annotate(session: Session, options: ExportOptions, *, isi: pd.DataFrame | None = None) -> Session:
    """Add the derived unit columns; keep only the units matching ``options.units_query``.

    ``isi``, the table of :func:`~spikeprep.export.qc.isi_metrics` already counted (by the
    file scan, :class:`~spikeprep.export.qc.IsiCounter`), saves reading the spikes again.

    Returns a new :class:`~spikeprep.core.model.Session` whose units carry every column of
    :data:`DERIVED_COLUMNS`, ordered by :func:`order_unit_columns`.

    Raises
    ------
    SpikeprepError
        The units query is not a valid pandas query on the units table.
    """
    if isi is None:
        isi = isi_metrics(session.spikes, threshold_ms=options.isi_threshold_ms)
    units = with_isi(session.units, isi)
    units["is_rs"] = is_rs(units["waveform_duration"]) if "waveform_duration" in units else False
    units = add_layers(units, session.channels)
    units["passes_allen_qc"] = passes_allen_qc(units)
    units["session_id"] = np.int64(session.session_id)
    spikes = session.spikes
    if options.units_query:
        try:
            keep = units.eval(options.units_query)
        except Exception as exc:  # pandas raises many kinds for a bad query
            raise SpikeprepError(f"bad --units-query {options.units_query!r}: {exc}") from exc
        if not (isinstance(keep, pd.Series) and keep.dtype == bool):
            raise SpikeprepError(f"bad --units-query {options.units_query!r}: not a true/false condition per unit "
                                 f"(use == to compare)")
        positions = np.flatnonzero(np.asarray(keep, dtype=bool))
        units = units.iloc[positions]
        spikes = spikes.select(positions)
    flat = order_unit_columns(units.reset_index())
    return replace(session, units=flat.set_index("unit_id"), spikes=spikes, metadata=dict(session.metadata))
