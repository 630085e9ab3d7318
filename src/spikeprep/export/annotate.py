"""The unit-column contract, declared once, and the stage that adds the derived columns.

``units.parquet`` holds the identity and channel columns (:data:`FRONT_COLUMNS`), then
every scalar ``/units`` column of the file under its NWB name (the known ones are
declared in :data:`METRIC_COLUMNS`), then the derived columns (:data:`DERIVED_COLUMNS`).
The same declarations give the Parquet field metadata (units of measure) and the
column table of the README.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import SpikeprepError
from ..core.anatomy import add_layers
from ..core.options import ExportOptions
from .qc import is_rs, isi_metrics, passes_allen_qc
from ..core.model import Session
from .tables import Column, markdown_table

__all__ = ["FRONT_COLUMNS", "METRIC_COLUMNS", "DERIVED_COLUMNS", "ISI_COLUMNS", "UNIT_COLUMNS", "unit_column",
           "annotate", "with_isi", "order_unit_columns"]

C = Column
FRONT_COLUMNS = (
    C("unit_id", "int64", "", "Allen unit id (unique across sessions)"),
    C("probe_id", "int64", "", "id of the probe the unit was recorded on"),
    C("probe_name", "string", "", "probe name (probeA … probeF)"),
    C("peak_channel_id", "int64", "", "electrode (channel) id of the unit's peak channel"),
    C("region", "string", "", "brain structure acronym of the peak channel (electrode location); null outside the brain"),
    C("probe_vertical_position", "int64", "µm", "peak channel's position along the shank from the tip (larger = shallower)"),
    C("probe_horizontal_position", "int64", "µm", "peak channel's position across the shank"),
    C("anterior_posterior_ccf_coordinate", "float64", "µm", "CCF anterior-posterior coordinate of the peak channel"),
    C("dorsal_ventral_ccf_coordinate", "float64", "µm", "CCF dorsal-ventral coordinate of the peak channel"),
    C("left_right_ccf_coordinate", "float64", "µm", "CCF left-right coordinate as the file holds it (the released files repeat dorsal-ventral)"),
    C("valid_data", "bool", "", "the peak channel is marked valid"),
    C("quality", "string", "", "sorting label: 'good' or 'noise'"),
)
METRIC_COLUMNS = (
    C("cluster_id", "int64", "", "Kilosort cluster id on the probe"),
    C("local_index", "int64", "", "unit's index on its probe"),
    C("firing_rate", "float64", "Hz", "mean firing rate over the recording (Allen's)"),
    C("snr", "float64", "", "waveform signal-to-noise ratio"),
    C("d_prime", "float64", "", "LDA cluster separation"),
    C("isi_violations", "float64", "", "Allen's refractory-violation ratio (Hill et al. 2011, 1.5 ms)"),
    C("amplitude_cutoff", "float64", "", "estimated fraction of missed spikes (0–0.5)"),
    C("presence_ratio", "float64", "", "fraction of the recording in which the unit fired (0–1)"),
    C("isolation_distance", "float64", "", "Mahalanobis isolation distance"),
    C("l_ratio", "float64", "", "L-ratio cluster quality"),
    C("nn_hit_rate", "float64", "", "nearest-neighbour hit rate (0–1)"),
    C("nn_miss_rate", "float64", "", "nearest-neighbour miss rate (0–1)"),
    C("silhouette_score", "float64", "", "cluster silhouette score"),
    C("max_drift", "float64", "µm", "largest change of the spike position"),
    C("cumulative_drift", "float64", "µm", "cumulative change of the spike position"),
    C("waveform_duration", "float64", "ms", "trough-to-peak duration of the mean waveform"),
    C("waveform_halfwidth", "float64", "ms", "width of the mean waveform at half amplitude"),
    C("PT_ratio", "float64", "", "peak-to-trough amplitude ratio"),
    C("amplitude", "float64", "µV", "peak-to-trough amplitude of the mean waveform"),
    C("spread", "float64", "µm", "spatial extent of the waveform along the probe"),
    C("repolarization_slope", "float64", "", "slope of the waveform after the trough (as in the file)"),
    C("recovery_slope", "float64", "", "slope of the waveform after the peak (as in the file)"),
    C("velocity_above", "float64", "s/m", "inverse propagation velocity above the peak channel"),
    C("velocity_below", "float64", "s/m", "inverse propagation velocity below the peak channel"),
)
ISI_COLUMNS = (
    C("isi_5ms_pct", "float64", "%", "share of the unit's ISIs shorter than the ISI threshold (5 ms by default); NaN below 2 spikes"),
    C("isi_violations_recomputed", "float64", "", "Allen's isi_violations recomputed from the spikes (Hill et al. 2011, 1.5 ms, min ISI 0.166 ms)"),
    C("rp_contamination", "float64", "", "refractory-period contamination (Llobet et al. 2022) from the same counts; NaN where undefined"),
)
DERIVED_COLUMNS = (
    C("n_spikes", "int64", "", "spikes of the unit in the file (after dropping negative times)"),
    C("is_rs", "bool", "", "regular spiking: waveform_duration > 0.4 ms (NaN is not RS)"),
    C("cortical_depth_um", "float64", "µm", "depth below the surface of the area on this probe; null outside the six visual areas"),
    C("cortical_depth_norm", "float64", "", "cortical_depth_um / (area's extent on the probe + 20 µm)"),
    C("layer", "string", "", "approximate cortical layer (L1, L2/3, L4, L5, L6) from cortical_depth_norm"),
    *ISI_COLUMNS,
    C("passes_allen_qc", "bool", "", "AllenSDK's default unit filter: good, valid channel, in brain, amplitude_cutoff ≤ 0.1, presence_ratio ≥ 0.95, isi_violations ≤ 0.5"),
    C("session_id", "int64", "", "Allen session id (for queries across sessions)"),
)
UNIT_COLUMNS = FRONT_COLUMNS + METRIC_COLUMNS + DERIVED_COLUMNS
_BY_NAME = {c.name: c for c in UNIT_COLUMNS}


def unit_column(name: str) -> Column:
    """The declaration of unit column ``name`` (KeyError when undeclared)."""
    return _BY_NAME[name]


def order_unit_columns(flat: pd.DataFrame) -> pd.DataFrame:
    """Front columns first (declared order), then the file's other columns (file order),
    then the derived columns (declared order)."""
    front = [c.name for c in FRONT_COLUMNS if c.name in flat]
    tail = [c.name for c in DERIVED_COLUMNS if c.name in flat]
    return flat[front + [c for c in flat.columns if c not in front + tail] + tail]


def with_isi(units: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """``units`` with the columns of :func:`~spikeprep.export.qc.isi_metrics` (same unit order)."""
    return units.assign(**{c: metrics[c].to_numpy() for c in metrics.columns})


def annotate(session: Session, options: ExportOptions) -> Session:
    """Add the derived unit columns; keep only the units matching ``options.units_query``.

    Returns a new :class:`~spikeprep.core.model.Session` whose units carry every column of
    :data:`DERIVED_COLUMNS`, ordered by :func:`order_unit_columns`.

    Raises
    ------
    SpikeprepError
        The units query is not a valid pandas query on the units table.
    """
    units = with_isi(session.units, isi_metrics(session.spikes, threshold_ms=options.isi_threshold_ms))
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
    return Session(session.session_id, flat.set_index("unit_id"), spikes, session.channels, session.probes,
                   session.stimulus, session.running, session.invalid_times, dict(session.metadata))


if __name__ == "__main__":  # the README's column table: python -m spikeprep.export.annotate
    print(markdown_table(UNIT_COLUMNS))
