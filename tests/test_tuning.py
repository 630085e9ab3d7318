"""AllenSDK's stimulus analyses: every metric against AllenSDK 2.16.2's own output on both
reference2 files, every receptive-field map exactly, and the edge cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from spikeprep.analysis import tuning

from .conftest import NAMES2, REFERENCE2

CLASSES = {"receptive_field_mapping": tuning.ReceptiveFieldMapping, "drifting_gratings": tuning.DriftingGratings,
           "static_gratings": tuning.StaticGratings, "natural_scenes": tuning.NaturalScenes,
           "flashes": tuning.Flashes, "natural_movies": tuning.NaturalMovies}
# nonlinear least-squares fits (MINPACK): where a fit is ill-conditioned or stops at its
# evaluation limit, AllenSDK's own value moves with the scipy version and the machine, and
# the dumps were made on another machine (tests/test_minpack.py checks them bit for bit
# against AllenSDK's fits made on this kind of machine)
FITTED = {"c50_dg", "width_rf", "height_rf"}


def _reference(name: str, key: str) -> tuple[pd.DataFrame, dict]:
    folder = REFERENCE2 / f"{name}.allensdk" / "stimulus_analysis"
    meta = json.loads((folder / "meta.json").read_text())["classes"][key]
    return pd.read_csv(folder / f"{key}_metrics.csv", index_col="unit_id"), meta


def _converged(analysis: tuning.base.StimulusAnalysis, units: pd.Index, column: str) -> np.ndarray:
    """Units whose fit ends on a minimum (the RF's Gaussian within its evaluation limit);
    c50's fits are all taken."""
    from spikeprep.analysis.tuning.rf import fit_2d_gaussian, oriented, threshold_rf

    if column == "c50_dg":
        return np.ones(len(units), dtype=bool)
    maps = [analysis.get_receptive_field(u) for u in units]
    return np.array([fit_2d_gaussian(oriented(m, threshold_rf(m, 0.5)[0]))[1] for m in maps])


@pytest.mark.parametrize("key", list(CLASSES))
@pytest.mark.parametrize("name", NAMES2)
def test_metrics_are_allensdks(name: str, key: str, reference2_sessions: dict) -> None:
    expected, meta = _reference(name, key)
    analysis = CLASSES[key](reference2_sessions[name], **meta["kwargs"])
    got = analysis.metrics
    assert got.index.name == "unit_id" and sorted(got.index) == sorted(expected.index)
    assert list(got.columns) == list(expected.columns)
    for column, dtype in meta["dtypes"].items():  # AllenSDK's text parameters are numbers here
        assert str(got[column].dtype) == (dtype if dtype != "object" else "float64"), column
    got = got.loc[expected.index]
    for column in expected.columns:
        a, b = got[column].to_numpy(np.float64), expected[column].to_numpy(np.float64)
        assert np.array_equal(np.isnan(a), np.isnan(b)) or column in FITTED, column
        both = ~np.isnan(a) & ~np.isnan(b)
        if column == "p_value_rf":  # a bootstrap: within its sampling error
            assert np.abs(a[both] - b[both]).max(initial=0) <= 0.1, column
        elif column in FITTED:
            trusted = both & _converged(analysis, got.index, column)
            rel = np.abs(a[trusted] - b[trusted]) / np.abs(b[trusted])
            assert np.median(rel) <= 1e-5 and np.mean(rel <= 1e-3) >= 0.65, column
            assert np.mean(np.isnan(a) == np.isnan(b)) >= 0.9, column
        else:
            np.testing.assert_allclose(a[both], b[both], rtol=1e-9, atol=1e-12, err_msg=column)


@pytest.mark.parametrize("name", NAMES2)
def test_every_receptive_field_map_is_allensdks(name: str, reference2_sessions: dict) -> None:
    maps = np.load(REFERENCE2 / f"{name}.allensdk" / "stimulus_analysis" / "receptive_fields.npz")
    rf = tuning.ReceptiveFieldMapping(reference2_sessions[name])
    units = [k for k in maps.keys() if k.isdigit()]
    assert sorted(int(u) for u in units) == sorted(rf.unit_ids.tolist())
    for unit in units:
        got = rf.get_receptive_field(int(unit))
        assert got.dtype == maps[unit].dtype and np.array_equal(got, maps[unit]), unit


def test_the_session_table_is_left_alone(reference2_sessions: dict) -> None:
    """AllenSDK's ReceptiveFieldMapping rewrites y_position in place (40 − y), so a second
    analysis sees another stimulus table; here the session's table never changes."""
    session = reference2_sessions[NAMES2[0]]
    before = session.stimulus_presentations.copy()
    first = tuning.ReceptiveFieldMapping(session)
    first.metrics
    pd.testing.assert_frame_equal(session.stimulus_presentations, before)
    second = tuning.ReceptiveFieldMapping(session)
    pd.testing.assert_frame_equal(second.metrics, first.metrics)
    np.testing.assert_array_equal(second.receptive_fields, first.receptive_fields)


def test_p_value_is_reproducible_and_per_unit(reference2_sessions: dict) -> None:
    session = reference2_sessions[NAMES2[0]]
    full = tuning.ReceptiveFieldMapping(session).metrics["p_value_rf"]
    some = full.index[:7].tolist()
    part = tuning.ReceptiveFieldMapping(session, filter=some).metrics["p_value_rf"]
    pd.testing.assert_series_equal(part, full.loc[some])
    other = tuning.ReceptiveFieldMapping(session, seed=1).metrics["p_value_rf"]
    assert not other.equals(full) and (other - full).abs().max() <= 0.1


def test_a_missing_stimulus_gives_nan_and_a_note(reference2_sessions: dict) -> None:
    session = reference2_sessions[NAMES2[0]]
    dm = tuning.DotMotion(session)
    with pytest.warns(UserWarning, match="no Dot Motion stimulus"):
        metrics = dm.metrics
    assert list(metrics.columns) == [m.name for m in tuning.DotMotion.METRICS]
    assert len(metrics) == len(session.units)
    assert metrics.select_dtypes("float").isna().all().all() and not metrics.select_dtypes(bool).any().any()
    assert "no Dot Motion stimulus" in dm.note


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A synthetic session with planted tuning, exported, and its truth."""
    import spikeprep
    from spikeprep.pipeline import export_file
    from spikeprep.synthetic import SynthSpec, write_session
    from spikeprep.synthetic.writer import truth_path

    folder = tmp_path_factory.mktemp("tuned")
    nwb = write_session(folder / "tuned.nwb", SynthSpec(n_units=120, duration=1500.0, n_probes=2, seed=3, tuned=True))
    result = export_file(nwb, folder / "out")
    assert result.ok, result.message
    truth = pd.DataFrame(json.loads(truth_path(nwb).read_text())["units"]).set_index("unit_id")
    return spikeprep.open_session(folder / "out", result.session_id), truth


def test_the_planted_tuning_is_recovered(tuned: tuple) -> None:
    session, truth = tuned
    strong = truth[truth["tuned"] & (truth["peak_rate_hz"] >= 10)]
    assert len(strong) >= 25
    dg = tuning.DriftingGratings(session).metrics.loc[strong.index]
    sg = tuning.StaticGratings(session).metrics.loc[strong.index]
    ns = tuning.NaturalScenes(session).metrics.loc[strong.index]
    fl = tuning.Flashes(session).metrics.loc[strong.index]
    assert (dg["pref_ori_dg"] == strong["dg_pref_dir"]).mean() >= 0.9
    assert (dg["pref_tf_dg"] == strong["dg_pref_tf"]).mean() >= 0.85
    assert (sg["pref_ori_sg"] == strong["sg_pref_ori"]).mean() >= 0.9
    assert (sg["pref_sf_sg"] == strong["sg_pref_sf"]).mean() >= 0.85
    frames = session.stimulus_conditions.loc[ns["pref_image_ns"], "frame"].to_numpy()
    assert (frames == strong["ns_pref_frame"].to_numpy()).mean() >= 0.75
    assert ((fl["on_off_ratio_fl"] > 1) == (strong["flash_pref_color"] > 0)).mean() >= 0.9
    untuned = truth.index[~truth["tuned"]]
    assert tuning.DriftingGratings(session).metrics.loc[untuned, "g_dsi_dg"].median() < dg["g_dsi_dg"].median()


def test_the_receptive_field_peaks_where_it_was_planted(tuned: tuple) -> None:
    session, truth = tuned
    strong = truth[truth["tuned"] & (truth["peak_rate_hz"] >= 10)]
    rf = tuning.ReceptiveFieldMapping(session)
    screen_y = 40 - rf.elevations  # rows: top of the grid first
    near = []
    for unit in strong.index:
        row, col = np.unravel_index(np.argmax(rf.get_receptive_field(unit)), (len(screen_y), len(rf.azimuths)))
        near.append(abs(rf.azimuths[col] - strong.loc[unit, "rf_x_deg"]) <= 10
                    and abs(screen_y[row] - strong.loc[unit, "rf_y_deg"]) <= 10)
    assert np.mean(near) >= 0.9
    metrics = rf.metrics.loc[strong.index]
    assert (metrics["p_value_rf"] < 0.05).mean() >= 0.8
    # AllenSDK's degrees: azimuth = x + 50, elevation = y + 10 on this grid
    assert (np.abs(metrics["azimuth_rf"] - 50 - strong["rf_x_deg"]) <= 10).mean() >= 0.85


def test_edge_cases(tuned: tuple, tmp_path) -> None:
    session, truth = tuned
    silent = session.units.index[session.units["n_spikes"] == 0]
    assert len(silent)
    metrics = tuning.Flashes(session).metrics
    for unit in silent:  # a unit without spikes: rates 0, ratios NaN
        assert metrics.loc[unit, "firing_rate_fl"] == 0.0 and np.isnan(metrics.loc[unit, "fano_fl"])
    # presentations masked as invalid (an interval tagged "stimulus") are not analysed
    dg = tuning.DriftingGratings(session)
    invalid = session.presentations.index[session.presentations["is_invalid"].to_numpy(bool)]
    assert len(invalid) and not set(invalid) & set(dg.stim_table.index)
    # a session without gabors: NaN metrics and a note, no error
    no_gabors = type(session)(session.folder.out, session.ecephys_session_id)
    table = no_gabors.stimulus_presentations
    no_gabors.__dict__["stimulus_presentations"] = table[table["stimulus_name"] != "gabors"]
    rf = tuning.ReceptiveFieldMapping(no_gabors)
    with pytest.warns(UserWarning, match="no Receptive Field Mapping stimulus"):
        assert rf.metrics["azimuth_rf"].isna().all()
    # a stimulus with one condition: every unit prefers it; sparseness undefined
    one = type(session)(session.folder.out, session.ecephys_session_id)
    flashes = table[table["stimulus_name"] == "flashes"]
    keep = table.index.difference(flashes.index[flashes["color"] != flashes["color"].iloc[0]])
    one.__dict__["stimulus_presentations"] = table.loc[keep]
    single = tuning.Flashes(one)
    assert len(single.stimulus_conditions) == 1
    m = single.metrics
    assert m["lifetime_sparseness_fl"].isna().all() and m["on_off_ratio_fl"].isna().all()
    assert (m["firing_rate_fl"] >= 0).all()


def test_spikeprep_metrics_writes_skips_and_says_what_is_wrong(tuned: tuple, tmp_path, capsys) -> None:
    import shutil

    import pyarrow.parquet as pq
    import xarray as xr

    from spikeprep.cli import main

    session, _ = tuned
    out = tmp_path / "out"
    shutil.copytree(session.folder.out, out)
    sid = session.ecephys_session_id
    assert main(["metrics", str(out), "--quiet"]) == 0
    table = pq.read_table(out / f"session_{sid}" / "unit_metrics.parquet")
    frame = table.to_pandas()
    assert len(frame) == len(session.units) and frame["unit_id"].tolist() == session.units.index.tolist()
    field = table.schema.field("firing_rate_dg")
    assert field.metadata[b"unit"] == b"Hz" and b"blocks" in field.metadata[b"description"]
    expected = tuning.DriftingGratings(session).metrics
    np.testing.assert_array_equal(frame["pref_ori_dg"].to_numpy(), expected["pref_ori_dg"].to_numpy())
    assert frame["pref_speed_dm"].isna().all()  # no dot motion: NaN, and a note
    assert "no Dot Motion stimulus" in capsys.readouterr().out
    maps = xr.open_zarr(out / f"session_{sid}" / "receptive_fields.zarr")["receptive_fields"]
    rf = tuning.ReceptiveFieldMapping(session)
    assert maps.dims == ("unit_id", "y_position", "x_position") and maps.shape == (len(session.units), 9, 9)
    np.testing.assert_array_equal(maps.sel(unit_id=rf.unit_ids[5]).values, rf.get_receptive_field(rf.unit_ids[5]))
    assert maps["y_position"].values[0] == 40.0  # the top of the screen first, as AllenSDK's maps
    everything = pd.read_parquet(out / "unit_metrics.parquet")
    assert list(everything.columns[:3]) == ["session_id", "session_type", "unit_id"] and len(everything) == len(frame)
    before = (out / f"session_{sid}" / "unit_metrics.parquet").stat().st_mtime_ns
    assert main(["metrics", str(out), "--quiet"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert (out / f"session_{sid}" / "unit_metrics.parquet").stat().st_mtime_ns == before
    assert main(["metrics", str(out), "--session", "12345", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "session_12345: not an exported session" in err[0]
    assert not [p for p in (out / f"session_{sid}").iterdir() if p.name.startswith(".")]


def test_metrics_on_a_dask_cluster_equal_the_serial_ones(tuned: tuple, tmp_path) -> None:
    import shutil

    from spikeprep.pipeline import metrics_many

    session, _ = tuned
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    for folder in (serial, parallel):
        shutil.copytree(session.folder.out, folder)
    assert all(r.status == "computed" for r in metrics_many(serial, progress=False))
    assert all(r.status == "computed" for r in metrics_many(parallel, workers=2, progress=False))
    pd.testing.assert_frame_equal(pd.read_parquet(serial / "unit_metrics.parquet"),
                                  pd.read_parquet(parallel / "unit_metrics.parquet"))


def test_the_report_shows_the_tuning_once_metrics_ran(tuned: tuple, tmp_path) -> None:
    import shutil

    import spikeprep
    from spikeprep.pipeline import metrics_many
    from spikeprep.report.pages import _tuning_sections, write_reports

    session, _ = tuned
    out = tmp_path / "out"
    shutil.copytree(session.folder.out, out)
    sid = session.ecephys_session_id
    before = "".join(_tuning_sections(spikeprep.open_session(out, sid)))
    assert "Not computed yet: <code>spikeprep metrics OUT</code>" in before
    metrics_many(out, progress=False)
    write_reports(out)
    page = (out / f"session_{sid}" / "report.html").read_text()
    for alt in ("receptive fields per area", "OSI, DSI and preferred directions per area",
                "image selectivity and ON/OFF per area"):
        assert f'alt="{alt}"' in page
    assert 'alt="metric distributions per area across sessions"' in (out / "report.html").read_text()


def test_optotagged_units_fire_just_after_the_light(tuned: tuple) -> None:
    session, truth = tuned
    pulses = session.optogenetic_stimulation_epochs["start_time"].to_numpy()
    tagged = truth.index[truth["tuned"] & truth["optotagged"].fillna(False).astype(bool)]
    assert len(tagged) >= 2 and len(pulses) == 96

    def share(unit: int) -> float:
        t = session.spike_times[unit]
        lo, hi = np.searchsorted(t, pulses + 0.002), np.searchsorted(t, pulses + 0.008)
        return float(np.mean(hi > lo))

    assert min(share(u) for u in tagged) >= 0.6
    others = [share(u) for u in truth.index[~truth.index.isin(tagged)] if u in session.units.index]
    assert np.median(others) <= 0.1
