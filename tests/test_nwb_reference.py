"""read_session against what AllenSDK 2.16.2 returns for the same files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from spikeprep.io.nwb import read_session

from .conftest import REFERENCE_NAMES, reference_dir, reference_nwb

# AllenSDK renames these /units columns; spikeprep keeps the NWB names.
SDK_RENAMES = {
    "waveform_PT_ratio": "PT_ratio", "waveform_amplitude": "amplitude", "L_ratio": "l_ratio",
    "waveform_spread": "spread", "waveform_velocity_above": "velocity_above",
    "waveform_velocity_below": "velocity_below", "waveform_recovery_slope": "recovery_slope",
    "waveform_repolarization_slope": "repolarization_slope",
}
POSITION_COLUMNS = ["peak_channel_id", "probe_id", "probe_vertical_position", "probe_horizontal_position",
                    "anterior_posterior_ccf_coordinate", "dorsal_ventral_ccf_coordinate",
                    "left_right_ccf_coordinate", "valid_data"]

pytestmark = pytest.mark.skipif(not REFERENCE_NAMES, reason="../shared/allen/reference not found")


@pytest.fixture(scope="module", params=REFERENCE_NAMES)
def pair(request: pytest.FixtureRequest):
    name = request.param
    return read_session(reference_nwb(name)), reference_dir(name)


def test_same_unit_ids(pair) -> None:
    s, ref = pair
    sdk = pd.read_csv(ref / "no_filters" / "units.csv", index_col="unit_id")
    assert sorted(s.units.index) == sorted(sdk.index)
    assert s.units.index.is_unique


def test_every_metric_and_position_matches(pair) -> None:
    s, ref = pair
    sdk = pd.read_csv(ref / "no_filters" / "units.csv", index_col="unit_id").rename(columns=SDK_RENAMES)
    ours = s.units.loc[sdk.index]
    metrics = [c for c in sdk.columns if c in ours.columns and c not in ("quality", "region")]
    assert {"snr", "d_prime", "isi_violations", "amplitude_cutoff", "presence_ratio", "PT_ratio",
            "waveform_duration", "l_ratio"} <= set(metrics)
    for c in set(metrics) | set(POSITION_COLUMNS):
        np.testing.assert_array_equal(ours[c].to_numpy(dtype=float), sdk[c].to_numpy(dtype=float), err_msg=c)
    assert (ours["quality"].to_numpy() == sdk["quality"].to_numpy()).all()
    sdk_region = sdk["ecephys_structure_acronym"].astype(object).where(sdk["ecephys_structure_acronym"].notna(), None)
    assert list(ours["region"].astype(object).where(ours["region"].notna(), None)) == list(sdk_region)


def test_every_spike_time_bit_for_bit(pair) -> None:
    s, ref = pair
    with np.load(ref / "spike_times.npz") as z:
        assert set(z.files) == {str(u) for u in s.spikes.unit_ids}
        for i, u in enumerate(s.spikes.unit_ids):
            np.testing.assert_array_equal(s.spikes[i], z[str(u)])
    meta = json.loads((ref / "metadata.json").read_text())
    assert int(s.spikes.offsets[-1]) == meta["views"]["no_filters"]["n_spikes"]


def test_running_speed(pair) -> None:
    s, ref = pair
    with np.load(ref / "running_speed.npz") as z:
        for c in ("start_time", "end_time", "velocity"):
            np.testing.assert_array_equal(s.running[c].to_numpy(), z[c])


def test_stimulus_times_names_blocks_ids(pair) -> None:
    s, ref = pair
    sdk = pd.read_csv(ref / "stimulus_presentations.csv", na_values=["null"])
    assert len(s.stimulus) == len(sdk)
    np.testing.assert_array_equal(s.stimulus["stimulus_presentation_id"], sdk["stimulus_presentation_id"])
    np.testing.assert_array_equal(s.stimulus["start_time"], sdk["start_time"])
    np.testing.assert_array_equal(s.stimulus["stop_time"], sdk["stop_time"])
    np.testing.assert_array_equal(s.stimulus["stimulus_block"], sdk["stimulus_block"].astype(float))
    # AllenSDK renames presentations in "stimulus" invalid intervals; spikeprep flags them instead.
    expected = np.where(s.stimulus["is_invalid"], "invalid_presentation", s.stimulus["stimulus_name"])
    assert list(expected) == list(sdk["stimulus_name"])


def test_stimulus_parameters_match_where_allensdk_keeps_them(pair) -> None:
    s, ref = pair
    sdk = pd.read_csv(ref / "stimulus_presentations.csv", na_values=["null"])
    for c in ("contrast", "orientation", "temporal_frequency", "frame", "x_position", "y_position"):
        if c in s.stimulus:
            np.testing.assert_array_equal(s.stimulus[c].to_numpy(float), sdk[c].to_numpy(float), err_msg=c)


def test_probes_and_channels(pair) -> None:
    s, ref = pair
    probes = pd.read_csv(ref / "probes.csv", index_col="id")
    assert sorted(s.probes.index) == sorted(probes.index)
    assert dict(s.probes["name"]) == dict(probes["description"])
    ch = pd.read_csv(ref / "no_filters" / "channels.csv", index_col="id")
    assert sorted(s.channels.index) == sorted(ch.index)
    mine = s.channels.loc[ch.index]
    np.testing.assert_array_equal(mine["probe_vertical_position"], ch["probe_vertical_position"])
    np.testing.assert_array_equal(mine["local_index"], ch["probe_channel_number"])


def test_metadata(pair) -> None:
    s, ref = pair
    meta = json.loads((ref / "metadata.json").read_text())
    assert s.session_id == meta["ecephys_session_id"]
    assert s.metadata["session_type"] == "brain_observatory_1.1"
    assert s.metadata["layout"] in ("2020", "sdk")
