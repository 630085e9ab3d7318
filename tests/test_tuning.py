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
# evaluation limit, AllenSDK's own value moves with the scipy version and the machine
FITTED = {"c50_dg", "width_rf", "height_rf"}


def _reference(name: str, key: str) -> tuple[pd.DataFrame, dict]:
    folder = REFERENCE2 / f"{name}.allensdk" / "stimulus_analysis"
    meta = json.loads((folder / "meta.json").read_text())["classes"][key]
    return pd.read_csv(folder / f"{key}_metrics.csv", index_col="unit_id"), meta


def _converged(analysis: tuning.base.StimulusAnalysis, units: pd.Index, column: str) -> np.ndarray:
    """Units whose fit ends on a minimum (the RF's Gaussian within its evaluation limit);
    c50's fits are all taken."""
    from spikeprep.analysis.tuning.rf import fit_2d_gaussian, oriented

    if column == "c50_dg":
        return np.ones(len(units), dtype=bool)
    return np.array([fit_2d_gaussian(oriented(analysis.get_receptive_field(u), 0.5))[1] for u in units])


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
