"""Every declared column of every table in a session folder, each declared once.

A :class:`~spikeprep.export.tables.Column` gives a column's name, dtype, unit of
measure and meaning. ``units.parquet`` holds the identity and peak-channel columns
(:data:`FRONT_COLUMNS`, the channel columns of :data:`CHANNEL_COLUMNS` as the unit's
peak channel has them), then every scalar ``/units`` column of the file under its NWB
name (the known ones: :data:`METRIC_COLUMNS`), then the derived columns
(:data:`DERIVED_COLUMNS`). The same declarations give the Parquet field metadata and the
README's column table (``python -m spikeprep.export.columns``).
"""

from __future__ import annotations

from dataclasses import replace

from .tables import Column, markdown_table

__all__ = ["CHANNEL_COLUMNS", "FRONT_COLUMNS", "METRIC_COLUMNS", "ISI_COLUMNS", "DERIVED_COLUMNS", "UNIT_COLUMNS",
           "STIMULUS_COLUMNS", "RUNNING_COLUMNS", "PROBE_COLUMNS", "INVALID_COLUMNS", "OPTOTAGGING_COLUMNS",
           "EYE_TRACKING_COLUMNS", "SESSION_ID", "unit_column"]

C = Column
SESSION_ID = C("session_id", "int64", "", "Allen session id")
CHANNEL_COLUMNS = (
    C("channel_id", "int64", "", "electrode (channel) id"),
    C("probe_id", "int64", "", "id of the probe"),
    C("probe_name", "string", "", "probe name (probeA … probeF)"),
    C("local_index", "int64", "", "channel index on the probe"),
    C("probe_vertical_position", "int64", "µm", "position along the shank from the tip (larger = shallower)"),
    C("probe_horizontal_position", "int64", "µm", "position across the shank"),
    C("region", "string", "", "brain structure acronym (electrode location); null outside the brain"),
    C("valid_data", "bool", "", "marked valid"),
    C("anterior_posterior_ccf_coordinate", "float64", "µm", "CCF anterior-posterior coordinate"),
    C("dorsal_ventral_ccf_coordinate", "float64", "µm", "CCF dorsal-ventral coordinate"),
    C("left_right_ccf_coordinate", "float64", "µm", "CCF left-right coordinate as the file holds it (the released files repeat dorsal-ventral)"),
    C("structure_id", "float64", "", "CCF structure id of the region where the file has one; NaN otherwise"),
    C("filtering", "string", "", "the channel's filters as the file describes them"),
)
_CHANNEL = {c.name: c for c in CHANNEL_COLUMNS}


def _of_peak_channel(name: str) -> Column:
    """A channel column as a unit column: the value of the unit's peak channel."""
    c = _CHANNEL[name]
    return replace(c, meaning=f"peak channel's: {c.meaning}")


FRONT_COLUMNS = (
    C("unit_id", "int64", "", "Allen unit id (unique across sessions)"),
    *map(_of_peak_channel, ("probe_id", "probe_name")),
    C("peak_channel_id", "int64", "", "electrode (channel) id of the unit's peak channel"),
    *map(_of_peak_channel, ("region", "probe_vertical_position", "probe_horizontal_position",
                            "anterior_posterior_ccf_coordinate", "dorsal_ventral_ccf_coordinate",
                            "left_right_ccf_coordinate", "valid_data")),
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


STIMULUS_COLUMNS = (
    C("stimulus_presentation_id", "int64", "", "0…n−1 over all presentation tables sorted by start_time (AllenSDK's)"),
    C("start_time", "float64", "s", "presentation onset, session clock"),
    C("stop_time", "float64", "s", "presentation offset, session clock"),
    C("stimulus_name", "string", "", "stimulus (drifting_gratings, natural_scenes, …)"),
    C("stimulus_block", "float64", "", "block number; NaN where the file has none (spontaneous)"),
    C("duration", "float64", "s", "stop_time − start_time"),
    C("stimulus_condition_id", "int64", "", "distinct stimulus_name + parameter values, AllenSDK's numbering"),
    C("is_invalid", "bool", "", "overlaps an invalid interval tagged 'stimulus' (AllenSDK renames these 'invalid_presentation')"),
    SESSION_ID,
)
RUNNING_COLUMNS = (
    C("start_time", "float64", "s", "start of the running-speed sample"),
    C("end_time", "float64", "s", "end of the running-speed sample"),
    C("velocity", "float64", "cm/s", "running speed"),
    SESSION_ID,
)
PROBE_COLUMNS = (
    C("probe_id", "int64", "", "probe id"), C("name", "string", "", "probe name (probeA … probeF)"),
    C("sampling_rate", "float64", "Hz", "spike-band sampling rate"),
    C("lfp_sampling_rate", "float64", "Hz", "LFP sampling rate"),
    C("has_lfp_data", "bool", "", "an LFP file exists for this probe"),
    C("location", "string", "", "the electrode group's location as the file gives it"),
)
INVALID_COLUMNS = (
    C("start_time", "float64", "s", "start of the invalid interval"),
    C("stop_time", "float64", "s", "end of the invalid interval"),
    C("tags", "list<string>", "", "scope (stimulus, probe name, all_probes), id, label"),
)


OPTOTAGGING_COLUMNS = (
    C("id", "int64", "", "light pulse (AllenSDK's index of optogenetic_stimulation_epochs)"),
    C("start_time", "float64", "s", "pulse onset, session clock"),
    C("condition", "string", "", "pulse shape, as the file describes it"),
    C("level", "float64", "V", "light power command (LED/laser drive)"),
    C("stop_time", "float64", "s", "pulse offset, session clock"),
    C("stimulus_name", "string", "", "pulse, raised_cosine, …"),
    C("duration", "float64", "s", "stop_time − start_time"),
    SESSION_ID,
)
_ELLIPSE_MEANING = {"center_x": ("px", "centre, x in the eye-camera image"),
                    "center_y": ("px", "centre, y in the eye-camera image"),
                    "height": ("px", "full height of the fitted ellipse (twice the file's half-axis, as AllenSDK)"),
                    "width": ("px", "full width of the fitted ellipse (twice the file's half-axis, as AllenSDK)"),
                    "phi": ("rad", "rotation of the fitted ellipse")}
_GAZE_MEANING = {"eye_area": ("px²", "area of the eye ellipse"), "pupil_area": ("px²", "area of the pupil ellipse"),
                 "screen_coordinates_x_cm": ("cm", "gaze on the monitor, AllenSDK's x (the file's column 1)"),
                 "screen_coordinates_y_cm": ("cm", "gaze on the monitor, AllenSDK's y (the file's column 0)"),
                 "screen_coordinates_spherical_x_deg": ("deg", "gaze, spherical, AllenSDK's x (the file's column 1)"),
                 "screen_coordinates_spherical_y_deg": ("deg", "gaze, spherical, AllenSDK's y (the file's column 0)")}
EYE_TRACKING_COLUMNS = (
    C("time", "float64", "s", "eye-tracking frame time, session clock (AllenSDK's 'Time (s)' index)"),
    *(C(f"{part}_{k}", "float64", unit, f"{label}: {meaning}")
      for part, label in (("corneal_reflection", "corneal reflection"), ("pupil", "pupil"), ("eye", "eye"))
      for k, (unit, meaning) in _ELLIPSE_MEANING.items()),
    *(C(f"{kind}_{k}", "float64", unit, f"{meaning} ({kind}{'' if kind == 'raw' else ': NaN where filtered out'})")
      for kind in ("raw", "filtered") for k, (unit, meaning) in _GAZE_MEANING.items()),
    SESSION_ID,
)


if __name__ == "__main__":  # the README's column table
    print(markdown_table(UNIT_COLUMNS))
