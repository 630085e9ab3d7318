"""AllenSDK's whole EcephysSession over exported folders: every call against AllenSDK's own
output for files its writer made (../shared/allen/reference2), with the documented
differences (numbers for AllenSDK's strings, NaN for its "null")."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spikeprep
from spikeprep.core.errors import SpikeprepError
from spikeprep.pipeline import export_file

from .conftest import NAMES2, REFERENCE, REFERENCE2, full



@pytest.fixture(scope="module")
def sessions(reference2_sessions: dict) -> dict:
    return reference2_sessions


def _sdk_csv(path: Path, **kwargs: object) -> pd.DataFrame:
    """A table AllenSDK wrote, with its text columns as object (its dtype; pandas 3 reads "str")."""
    table = pd.read_csv(path, **kwargs)
    return table.astype({c: object for c in table.columns if pd.api.types.is_string_dtype(table[c])})


def _number(v: object) -> object:
    """AllenSDK's value as spikeprep gives it: strings parsed, lists as tuples, 1-tuples
    (a column that mixes scalars and vectors) as scalars, "null" as NaN."""
    if isinstance(v, str):
        if v == "null":
            return np.nan
        try:
            v = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            return v
    if isinstance(v, (list, tuple)):
        v = tuple(float(x) for x in v)
        return v[0] if len(v) == 1 else v
    return v


def _same_values(ours: np.ndarray, theirs: list) -> bool:
    a = [_number(v) for v in ours]
    b = [_number(v) for v in theirs]
    return len(a) == len(b) and all((isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y))
                                    or x == y for x, y in zip(a, b))


@pytest.mark.parametrize("name", NAMES2)
def test_metadata_and_scalars_are_allensdks(name: str, sessions) -> None:
    s = sessions[name]
    expected = json.loads((full(name) / "metadata.json").read_text())
    got = s.metadata
    assert list(got) == list(expected)
    start = got.pop("session_start_time")
    assert start.isoformat() == expected.pop("session_start_time")
    assert got == expected
    for key, value in json.loads((full(name) / "scalars.json").read_text()).items():
        ours = getattr(s, key)
        assert (ours.isoformat() if key == "session_start_time" else ours) == value, key
    assert s.ecephys_session_id == expected["ecephys_session_id"]


@pytest.mark.parametrize("name", NAMES2)
def test_structures_rig_and_opto_are_allensdks(name: str, sessions) -> None:
    s = sessions[name]
    counts = pd.read_csv(full(name) / "structurewise_unit_counts.csv", index_col=0).iloc[:, 0]
    ours = s.structurewise_unit_counts
    assert ours.name == "ecephys_structure_acronym" and ours.dtype == np.int64
    assert ours.sort_index().to_dict() == counts.sort_index().to_dict()
    assert list(ours.to_numpy()) == list(counts.to_numpy())  # most first
    rig = pd.read_csv(full(name) / "rig_geometry_data.csv", index_col=0)
    pd.testing.assert_frame_equal(s.rig_geometry_data, rig, check_names=False)
    opto = pd.read_csv(full(name) / "optogenetic_stimulation_epochs.csv", index_col=0)
    ours = s.optogenetic_stimulation_epochs
    assert ours.index.name == "id" and list(ours.columns) == list(opto.columns)
    pd.testing.assert_frame_equal(ours, opto, check_dtype=False)
    assert ours["condition"].dtype == object and ours["level"].dtype == np.float64


@pytest.mark.parametrize("name", NAMES2)
def test_probes_and_channels_are_allensdks(name: str, sessions) -> None:
    s = sessions[name]
    probes = _sdk_csv(REFERENCE2 / f"{name}.allensdk" / "probes.csv", index_col=0)
    pd.testing.assert_frame_equal(s.probes, probes, check_names=False)
    assert s.probes.index.name == "id"
    channels = _sdk_csv(REFERENCE2 / f"{name}.allensdk" / "no_filters" / "channels.csv", index_col=0)
    ours = s.channels
    assert ours.index.name == "id" and list(ours.columns[: len(channels.columns)]) == list(channels.columns)
    assert {c: str(ours[c].dtype) for c in channels.columns} == {c: str(channels[c].dtype) for c in channels.columns}
    pd.testing.assert_frame_equal(ours[channels.columns], channels, check_names=False)
    for pid, got in json.loads((full(name) / "channel_structure_intervals.json").read_text())["per_probe"].items():
        labels, intervals = s.channel_structure_intervals(got["channel_ids"])
        assert list(labels) == got["labels"] and intervals.tolist() == got["intervals"], pid


@pytest.mark.parametrize("name", NAMES2)
def test_stimulus_calls_are_allensdks(name: str, sessions) -> None:
    s = sessions[name]
    epochs = pd.read_csv(full(name) / "stimulus_epochs.csv", index_col=0, na_values=["null"])
    ours = s.get_stimulus_epochs()
    assert list(ours.columns) == list(epochs.columns)
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), epochs.reset_index(drop=True), check_dtype=False)
    values = json.loads((full(name) / "stimulus_parameter_values.json").read_text())
    ours = s.get_stimulus_parameter_values()
    assert set(ours) == set(values)
    for param, got in values.items():
        assert _same_values(ours[param], got["values"]), param
    per_stimulus = json.loads((full(name) / "parameter_values_for_stimulus.json").read_text())
    for stimulus, params in per_stimulus.items():
        ours = s.get_parameter_values_for_stimulus(stimulus)
        assert set(ours) == set(params), stimulus
        for param, got in params.items():
            assert _same_values(ours[param], got["values"]), (stimulus, param)
    for table in sorted((full(name) / "inter_presentation_intervals").glob("*.csv")):
        expected = pd.read_csv(table, index_col=[0, 1])
        ours = s.get_inter_presentation_intervals_for_stimulus([table.stem])
        assert ours.index.names == ["from_presentation_id", "to_presentation_id"]
        pd.testing.assert_frame_equal(ours, expected, check_index_type=False, check_dtype=len(expected) > 0)


@pytest.mark.parametrize("name", NAMES2)
def test_eye_tracking_is_allensdks(name: str, sessions) -> None:
    s = sessions[name]
    with np.load(full(name) / "pupil_data.npz", allow_pickle=True) as z:
        pupil = pd.DataFrame({k: z[k] for k in z.files if k != "index"}, index=z["index"])
    ours = s.get_pupil_data()
    assert ours.index.name == "Time (s)" and list(ours.columns) == list(pupil.columns)
    np.testing.assert_array_equal(ours.index.to_numpy(), pupil.index.to_numpy())
    np.testing.assert_array_equal(ours.to_numpy(), pupil.to_numpy())
    with np.load(full(name) / "screen_gaze_data.npz", allow_pickle=True) as z:
        gaze = pd.DataFrame({k: z[k] for k in z.files if k != "index"}, index=z["index"])
    both = s.get_screen_gaze_data(include_filtered_data=True)
    assert list(both.columns) == list(gaze.columns)
    np.testing.assert_array_equal(both.to_numpy(), gaze.to_numpy())
    raw = s.get_screen_gaze_data()
    assert list(raw.columns) == [c for c in gaze.columns if c.startswith("raw_")]


def test_what_allensdk_raises_on_works_here(sessions) -> None:
    """AllenSDK's metadata, structure_acronyms, structurewise_unit_counts and
    channel_structure_intervals raise KeyError on these files; here they answer."""
    for s in sessions.values():
        assert s.metadata["structure_acronyms"] == s.structure_acronyms
        assert s.structurewise_unit_counts.sum() == s.units["ecephys_structure_acronym"].notna().sum()
        labels, intervals = s.channel_structure_intervals(s.channels.index)
        assert intervals[0] == 0 and intervals[-1] == s.num_channels and len(labels) == len(intervals) - 1


def test_a_session_without_eye_tracking_or_optotagging(tmp_path: Path) -> None:
    r = export_file(REFERENCE / "vcn_seed1_2probes_60u_300s.nwb", tmp_path)
    s = spikeprep.open_session(tmp_path, r.session_id)
    with pytest.warns(UserWarning, match="no eye tracking"):
        assert s.get_pupil_data() is None
    with pytest.warns(UserWarning, match="no eye tracking"):
        assert s.get_screen_gaze_data(include_filtered_data=True) is None
    assert s.optogenetic_stimulation_epochs.empty and s.optogenetic_stimulation_epochs.index.name == "id"
    assert s.rig_geometry_data is None and s.rig_equipment_name is None
    assert s.metadata["num_units"] == s.num_units


def test_bad_input_names_the_culprit(sessions) -> None:
    s = next(iter(sessions.values()))
    with pytest.raises(SpikeprepError, match=r"no channel \[1, 2\]"):
        s.channel_structure_intervals([1, 2])
    with pytest.raises(SpikeprepError, match="unknown stimulus 'dot_motion'"):
        s.get_parameter_values_for_stimulus("dot_motion")
    with pytest.raises(SpikeprepError, match="unknown stimulus 'nope'"):
        s.get_inter_presentation_intervals_for_stimulus("nope")


def test_counts_on_a_callback_domain_equal_the_plain_ones(sessions) -> None:
    s = next(iter(sessions.values()))
    ids = s.get_stimulus_table("flashes").index
    edges = np.arange(-0.05, 0.3, 0.01)
    plain = s.presentationwise_spike_counts(edges, ids, s.units.index)
    same = s.presentationwise_spike_counts(edges, ids, s.units.index, time_domain_callback=lambda d: d)
    np.testing.assert_array_equal(plain.values, same.values)
    shifted = s.presentationwise_spike_counts(edges, ids, s.units.index, time_domain_callback=lambda d: d + 0.1)
    moved = s.presentationwise_spike_counts(edges + 0.1, ids, s.units.index)
    np.testing.assert_array_equal(shifted.values, moved.values)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s.presentationwise_spike_counts(edges, ids, s.units.index, binarize=True)
    assert any("binarize" in str(w.message) for w in caught)
    table = s.get_stimulus_table(["flashes"], include_detailed_parameters=True, include_unused_parameters=True)
    assert len(table) == len(ids) and "color" in table and "frame" in table
    assert "frame" not in s.get_stimulus_table(["flashes"])


@pytest.mark.parametrize("name", NAMES2)
def test_opt_in_waveforms_and_amplitudes_are_allensdks(name: str, tmp_path: Path) -> None:
    from spikeprep.core.options import ExportOptions
    from spikeprep.export.verify import verify_out

    r = export_file(REFERENCE2 / f"{name}.nwb", tmp_path, ExportOptions(waveforms=True, amplitudes=True))
    assert r.ok, r.message
    s = spikeprep.open_session(tmp_path, r.session_id)
    with np.load(full(name) / "mean_waveforms.npz") as z:
        assert {int(k) for k in z.files if k.isdigit()} == set(s.mean_waveforms)
        for uid, wave in s.mean_waveforms.items():
            np.testing.assert_allclose(wave["time"].values, z["time"], rtol=0, atol=1e-15)
            assert wave.dims == ("channel_id", "time") and wave.dtype == np.float32
            np.testing.assert_array_equal(wave.values, z[str(uid)])
            np.testing.assert_array_equal(wave["channel_id"].values, z[f"{uid}__channel_id"])
    with np.load(full(name) / "spike_amplitudes.npz") as z:
        assert set(s.spike_amplitudes) == {int(k) for k in z.files}
        for uid, amplitudes in s.spike_amplitudes.items():
            np.testing.assert_array_equal(amplitudes, z[str(uid)])
    assert verify_out(tmp_path) == ([], 1)
    (s.folder / "mean_waveforms.zarr" / "offsets" / "0").unlink()
    problems, _ = verify_out(tmp_path)
    assert len(problems) == 1 and "mean_waveforms.zarr" in problems[0]


def test_waveforms_not_exported_name_the_flag(sessions) -> None:
    s = next(iter(sessions.values()))
    with pytest.raises(SpikeprepError, match="mean_waveforms were not exported; export the session again with "
                                             "--waveforms"):
        s.mean_waveforms
    with pytest.raises(SpikeprepError, match="with --amplitudes"):
        s.spike_amplitudes


def test_from_nwb_path_exports_once_and_filters_as_allensdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    name = NAMES2[-1]
    nwb = Path(shutil.copy(REFERENCE2 / f"{name}.nwb", tmp_path))
    s = spikeprep.EcephysSession.from_nwb_path(nwb)
    assert s.folder.out == tmp_path / "spikeprep_exports"
    defaults = pd.read_csv(REFERENCE2 / f"{name}.allensdk" / "sdk_defaults" / "units.csv", index_col=0)
    assert sorted(s.units.index) == sorted(defaults.index) and s.num_units == len(defaults)
    channels = pd.read_csv(REFERENCE2 / f"{name}.allensdk" / "sdk_defaults" / "channels.csv", index_col=0)
    assert sorted(s.channels.index) == sorted(channels.index)
    assert set(s.spike_times) == set(defaults.index)
    counts = s.presentationwise_spike_counts([0.0, 0.25], s.get_stimulus_table("flashes").index, None)
    assert list(counts["unit_id"].values) == list(s.units.index)
    stamp = (s.folder / "session.json").stat().st_mtime_ns
    off = {"amplitude_cutoff_maximum": np.inf, "presence_ratio_minimum": -np.inf, "isi_violations_maximum": np.inf,
           "filter_by_validity": False, "filter_out_of_brain_units": False}
    every = spikeprep.EcephysSession.from_nwb_path(nwb, api_kwargs=off)
    assert (every.folder / "session.json").stat().st_mtime_ns == stamp  # found, not exported again
    assert every.num_units == len(pd.read_csv(REFERENCE2 / f"{name}.allensdk" / "no_filters" / "units.csv"))
    monkeypatch.setenv("SPIKEPREP_CACHE", str(tmp_path / "elsewhere"))
    assert spikeprep.EcephysSession.from_nwb_path(nwb).folder.out == tmp_path / "elsewhere"
    with pytest.raises(SpikeprepError, match="no such file"):
        spikeprep.EcephysSession.from_nwb_path(tmp_path / "missing.nwb")
    with pytest.raises(TypeError, match="unknown unit filter argument 'amplitude_cutoff'"):
        spikeprep.EcephysSession.from_nwb_path(nwb, api_kwargs={"amplitude_cutoff": 0.1})


def test_a_probe_without_units_and_channels_outside_the_brain(synth_dir: Path, tmp_path: Path) -> None:
    from spikeprep.core.options import ExportOptions
    from spikeprep.synthetic import SynthSpec, write_session

    nwb = write_session(synth_dir / "api_probes.nwb", SynthSpec(n_units=30, duration=60.0, n_probes=2, seed=17))
    r = export_file(nwb, tmp_path, ExportOptions(units_query="probe_name == 'probeA'"))
    assert r.ok, r.message
    s = spikeprep.open_session(tmp_path, r.session_id)
    assert s.num_probes == 2 and set(s.units["probe_id"]) == {s.probes.index[0]}
    empty_probe = s.probes.index[1]
    channels = s.channels[s.channels["probe_id"] == empty_probe]
    labels, intervals = s.channel_structure_intervals(channels.index)
    assert intervals[-1] == len(channels) and None in list(labels)  # the tip of a shank outside the brain
    in_brain = s.units["ecephys_structure_acronym"].notna().sum()
    assert s.structurewise_unit_counts.sum() == in_brain < s.num_units  # AllenSDK's value_counts drops NaN
    assert None in s.structure_acronyms
    pupil = s.get_pupil_data()
    assert pupil.index.name == "Time (s)" and pupil["pupil_width"].isna().any()  # blinks
    assert len(s.optogenetic_stimulation_epochs) == 96
    assert s.metadata["rig_equipment_name"].startswith("NP.")


def test_a_folder_of_an_older_schema_names_the_fix(tmp_path: Path) -> None:
    from spikeprep.export.layout import SCHEMA_VERSION

    r = export_file(REFERENCE / "vcn2020layout_seed4_1probe_20u_120s.nwb", tmp_path)
    record = tmp_path / f"session_{r.session_id}" / "session.json"
    text = json.loads(record.read_text())
    text["schema_version"] = SCHEMA_VERSION - 1
    record.write_text(json.dumps(text))
    with pytest.raises(SpikeprepError, match=f"exported under schema {SCHEMA_VERSION - 1}.*export the session again"):
        spikeprep.open_session(tmp_path, r.session_id)


def test_from_nwb_path_streams_a_url(tmp_path: Path) -> None:
    import shutil

    from .http_bucket import Bucket

    name = NAMES2[0]
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(REFERENCE2 / f"{name}.nwb", served / "s.nwb")
    with Bucket(served) as bucket:
        s = spikeprep.EcephysSession.from_nwb_path(bucket.url + "s.nwb", cache=tmp_path / "cache")
        assert s.folder.out == tmp_path / "cache" and s.record.source.location == bucket.url + "s.nwb"
        assert 0 < s.record.source.bytes_fetched < (served / "s.nwb").stat().st_size
        again = spikeprep.EcephysSession.from_nwb_path(bucket.url + "s.nwb", cache=tmp_path / "cache")
        assert again.record.finished_at == s.record.finished_at
    expected = json.loads((full(name) / "metadata.json").read_text())
    assert s.metadata["num_units"] < expected["num_units"]  # AllenSDK's default filter
    assert s.metadata["specimen_name"] == expected["specimen_name"]
    invalid = pd.read_csv(full(name) / "invalid_times.csv")
    assert len(s.get_invalid_times()) == len(invalid) and list(s.get_invalid_times().columns) == ["start_time",
                                                                                                  "stop_time", "tags"]


@pytest.mark.parametrize("name", NAMES2)
def test_units_have_allensdks_columns(name: str, sessions) -> None:
    """Every column of AllenSDK's units (with every filter off) is there, with its values;
    the order of the rows is the file's (a documented difference)."""
    s = sessions[name]
    sdk = _sdk_csv(REFERENCE2 / f"{name}.allensdk" / "no_filters" / "units.csv", index_col=0)
    assert set(sdk.columns) <= set(s.units.columns)
    ours = s.units.loc[sdk.index, sdk.columns]
    pd.testing.assert_frame_equal(ours, sdk, check_names=False, check_dtype=False, check_exact=False, rtol=1e-12)
