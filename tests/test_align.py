"""Stimulus alignment: AllenSDK's outputs, hand-made cases, brute force, the align command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import spikeprep
from spikeprep.analysis.aligned_store import align_session, aligned_paths
from spikeprep.analysis.alignment import (aligned_counts, aligned_spike_times, condition_statistics, interval_means,
                                          window_counts)
from spikeprep.analysis.session import AlignmentError, open_session
from spikeprep.core.model import SpikeTrains
from spikeprep.core.stimulus import condition_ids
from spikeprep.export.layout import SessionFolder
from spikeprep.pipeline import align_many, export_file
from spikeprep.synthetic import SynthSpec, write_session

from .conftest import REFERENCE_NAMES, reference_dir, reference_nwb

STIMULI = ["drifting_gratings", "flashes", "natural_scenes", "static_gratings"]


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    out = tmp_path_factory.mktemp("aligned_refs")
    found = {}
    for name in REFERENCE_NAMES:
        r = export_file(reference_nwb(name), out)
        assert r.ok, r.message
        found[name] = (out, r.session_id)
    return found


# ----------------------------------------------------------------------------- AllenSDK's own outputs
@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_condition_ids_are_allensdks(name: str, references) -> None:
    out, sid = references[name]
    sdk = pd.read_csv(reference_dir(name) / "stimulus_presentations.csv", na_values=["null"])
    mine = spikeprep.open_stimulus(out, sid)
    valid = sdk["stimulus_condition_id"].notna().to_numpy()
    np.testing.assert_array_equal(mine["stimulus_condition_id"].to_numpy()[valid],
                                  sdk["stimulus_condition_id"].to_numpy()[valid])
    conditions = pd.read_csv(reference_dir(name) / "stimulus_conditions.csv", index_col=0)
    session = open_session(out, sid)
    assert list(session.stimulus_conditions.index) == list(conditions.index)
    assert list(session.stimulus_conditions["stimulus_name"]) == list(conditions["stimulus_name"])
    np.testing.assert_allclose(mine["duration"], sdk["duration"], rtol=0, atol=0)


@pytest.mark.parametrize("name", REFERENCE_NAMES)
@pytest.mark.parametrize("stimulus", STIMULI)
def test_counts_match_allensdk_but_for_edge_spikes(name: str, stimulus: str, references) -> None:
    out, sid = references[name]
    session = open_session(out, sid)
    with np.load(reference_dir(name) / "aligned" / f"{stimulus}_counts.npz") as z:
        sdk, edges, pids, uids = z["counts"], z["bin_edges"], z["presentation_ids"], z["unit_ids"]
    mine = session.presentationwise_spike_counts(edges, pids, uids)
    assert mine.dims == ("stimulus_presentation_id", "time_relative_to_stimulus_onset", "unit_id")
    assert mine.dtype == np.uint16 and mine.shape == sdk.shape
    np.testing.assert_array_equal(mine["unit_id"], uids)
    np.testing.assert_allclose(mine["time_relative_to_stimulus_onset"], edges[:-1] + np.diff(edges) / 2)
    # AllenSDK's closed bins [a, b] count a spike on an inner right edge once more.
    starts = session.stimulus_presentations.loc[pids, "start_time"].to_numpy()
    on_edge = np.zeros(sdk.shape, dtype=np.int64)
    for j, u in enumerate(uids):
        t = session.spike_times[u]
        right = starts[:, None] + edges[None, 1:]
        on_edge[:, :, j] = np.isin(right, t)
    np.testing.assert_array_equal(sdk.astype(np.int64), mine.values.astype(np.int64) + on_edge)


@pytest.mark.parametrize("name", REFERENCE_NAMES)
@pytest.mark.parametrize("stimulus", STIMULI)
def test_condition_statistics_and_spike_times_match_allensdk(name: str, stimulus: str, references) -> None:
    out, sid = references[name]
    session = open_session(out, sid)
    with np.load(reference_dir(name) / "aligned" / f"{stimulus}_counts.npz") as z:
        pids, uids = z["presentation_ids"], z["unit_ids"]
    sdk = pd.read_csv(reference_dir(name) / "aligned" / f"{stimulus}_condstats.csv", index_col=[0, 1])
    mine = session.conditionwise_spike_statistics(pids, uids)
    assert list(mine.index.names) == ["unit_id", "stimulus_condition_id"]
    assert list(mine.columns) == list(sdk.columns) and mine.index.equals(sdk.index)
    for c in sdk.columns:
        np.testing.assert_allclose(mine[c].to_numpy(float), sdk[c].to_numpy(float), rtol=1e-12, equal_nan=True,
                                   err_msg=c)
    times = pd.read_csv(reference_dir(name) / "aligned" / f"{stimulus}_spike_times.csv.gz", index_col=0)
    mine_t = session.presentationwise_spike_times(pids, uids)
    assert mine_t.index.name == "spike_time" and list(mine_t.columns) == list(times.columns)
    key = ["spike_time", "unit_id", "stimulus_presentation_id"]
    a = times.reset_index().sort_values(key).to_numpy(float)
    b = mine_t.reset_index().sort_values(key).to_numpy(float)
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- hand-made cases
def trains(*units: list[float]) -> SpikeTrains:
    return SpikeTrains.from_dict({100 + i: np.asarray(u, dtype=float) for i, u in enumerate(units)})


def test_a_spike_on_an_edge_counts_once_in_the_bin_it_starts() -> None:
    s = trains([1.0 + 0.1, 1.0 + 0.2, 2.0])  # 1.1 is exactly 1.0 + 0.1 in float64
    counts = aligned_counts(s, np.array([1.0]), np.array([0.0, 0.1, 0.2, 0.3]))
    assert counts[0, :, 0].tolist() == [0, 1, 1]
    # the window is half-open: a spike on the last edge is outside
    assert aligned_counts(s, np.array([1.0]), np.array([0.0, 0.1]))[0, :, 0].tolist() == [0]


def test_sample_rounded_spikes_on_edges_are_exact() -> None:
    rng = np.random.default_rng(3)
    fs, bin_ = 30_000.0, 0.005
    starts = np.sort(rng.choice(np.arange(10_000), 40, replace=False)) / fs * 30  # onsets on the sample grid
    edges = np.arange(-10, 31) * bin_
    on_grid = (starts[:, None] + edges[None, :]).reshape(-1)
    t = np.sort(np.concatenate([on_grid[::3], np.round(rng.uniform(0, starts[-1] + 1, 3000) * fs) / fs]))
    s = trains(t, [], t[::2])
    mine = aligned_counts(s, starts, edges)
    brute = np.zeros_like(mine, dtype=np.int64)
    for j in range(s.n_units):
        for i, st in enumerate(starts):
            for k in range(len(edges) - 1):
                lo, hi = st + edges[k], st + edges[k + 1]
                brute[i, k, j] = np.count_nonzero((s[j] >= lo) & (s[j] < hi))
    np.testing.assert_array_equal(mine, brute)
    assert mine[:, :, 1].sum() == 0  # a unit without spikes
    # conservation: every spike inside a window is counted once per window it is in
    inside = sum(np.count_nonzero((s[0] >= a + edges[0]) & (s[0] < a + edges[-1])) for a in starts)
    assert mine[:, :, 0].sum() == inside


def test_overlapping_windows_and_ids_in_any_order() -> None:
    s = trains([1.05, 1.15, 1.25, 5.0])
    starts = np.array([1.0, 1.1])  # windows [1.0, 1.3) and [1.1, 1.4) overlap
    edges = np.array([0.0, 0.1, 0.2, 0.3])
    c = aligned_counts(s, starts, edges)
    assert c[0, :, 0].tolist() == [1, 1, 1] and c[1, :, 0].tolist() == [1, 1, 0]
    np.testing.assert_array_equal(aligned_counts(s, starts[::-1], edges), c[::-1])
    found = aligned_spike_times(s, starts, starts + 0.3)
    assert found.spike_time.tolist() == [1.05, 1.15, 1.15, 1.25, 1.25]
    assert found.presentation.tolist() == [0, 0, 1, 0, 1]


def test_empty_presentation_counts_zero_in_the_statistics() -> None:
    s = trains([0.5, 2.5, 2.6], [])
    counts = window_counts(s, np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert counts.tolist() == [[1, 0], [0, 0], [2, 0], [0, 0]]
    stats = condition_statistics(counts, np.array([7, 7, 9, 9]), np.array([100, 101]))
    assert stats.loc[(100, 7), "spike_count"] == 1 and stats.loc[(100, 7), "stimulus_presentation_count"] == 2
    assert stats.loc[(100, 7), "spike_mean"] == 0.5
    assert stats.loc[(100, 7), "spike_std"] == pytest.approx(np.std([1, 0], ddof=1))
    assert stats.loc[(100, 9), "spike_sem"] == pytest.approx(np.std([2, 0], ddof=1) / np.sqrt(2))
    assert (stats.xs(101, level="unit_id")["spike_count"] == 0).all()


def test_nan_parameters_are_equal_in_condition_ids() -> None:
    table = pd.DataFrame({"stimulus_name": ["g", "g", "g", "s", "g"],
                          "orientation": [np.nan, 45.0, np.nan, np.nan, 45.0],
                          "size": [[250.0, 250.0], [250.0, 250.0], [250.0, 250.0], None, [250.0, 250.0]],
                          "stimulus_index": [0, 1, 2, 3, 4]})  # not a parameter
    assert condition_ids(table).tolist() == [0, 1, 0, 2, 1]


def test_running_speed_is_the_time_weighted_mean() -> None:
    s = np.array([0.0, 1.0, 2.0, 4.0])
    e = np.array([1.0, 2.0, 3.0, 5.0])  # a gap [3, 4)
    v = np.array([10.0, 20.0, np.nan, 40.0])
    starts, stops = np.array([0.5, 0.0, 2.0, 3.2, 6.0]), np.array([1.5, 3.0, 3.9, 4.5, 7.0])
    got = interval_means(s, e, v, starts, stops)
    np.testing.assert_allclose(got[:2], [15.0, 15.0])
    assert np.isnan(got[2]) and got[3] == 40.0 and np.isnan(got[4])
    rng = np.random.default_rng(0)
    s = np.cumsum(rng.uniform(0.01, 0.03, 500))
    e = s + 0.01
    v = rng.normal(10, 3, 500)
    a = rng.uniform(0, s[-1], 50)
    b = a + rng.uniform(0.05, 1.0, 50)
    brute = []
    for lo, hi in zip(a, b):
        w = np.clip(np.minimum(e, hi) - np.maximum(s, lo), 0, None)
        brute.append((w * v).sum() / w.sum() if w.sum() > 0 else np.nan)
    np.testing.assert_allclose(interval_means(s, e, v, a, b), brute, rtol=1e-9)


# ----------------------------------------------------------------------------- the session object
@pytest.fixture(scope="module")
def small(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    nwb = write_session(synth_dir / "align_small.nwb", SynthSpec(n_units=40, duration=300.0, n_probes=2, seed=71))
    out = tmp_path_factory.mktemp("align_out")
    r = export_file(nwb, out)
    assert r.ok, r.message
    return out, r.session_id


def test_session_attributes(small) -> None:
    out, sid = small
    s = open_session(out, sid)
    assert len(s.units) == 40 and "passes_allen_qc" in s.units and "ecephys_structure_acronym" in s.units
    assert set(s.spike_times) == set(s.units.index)
    np.testing.assert_array_equal(s.spike_times[s.units.index[3]], spikeprep.open_spike_times(out, sid)[s.units.index[3]])
    p = s.stimulus_presentations
    assert p.index.name == "stimulus_presentation_id" and {"duration", "stimulus_condition_id"} <= set(p.columns)
    assert "mask" not in p and "stimulus_index" not in p
    assert s.stimulus_conditions.index.name == "stimulus_condition_id"
    assert list(s.running_speed.columns) == ["start_time", "end_time", "velocity"]
    assert list(s.invalid_times.columns) == ["start_time", "stop_time", "tags"]
    assert "natural_scenes" in s.stimulus_names
    sizes = p.loc[p["stimulus_name"] == "drifting_gratings", "size"]
    assert set(sizes) == {(250.0, 250.0)}  # numbers, hashable


def test_invalid_presentations_are_masked_like_allensdk(small) -> None:
    out, sid = small
    s = open_session(out, sid)
    raw = spikeprep.open_stimulus(out, sid)
    view = s.stimulus_presentations
    invalid = raw["is_invalid"].to_numpy()
    if not invalid.any():
        pytest.skip("no invalid presentation in this synthetic session")
    assert (view.loc[invalid, "stimulus_name"] == "invalid_presentation").all()
    assert view.loc[invalid, "stimulus_condition_id"].isna().all()
    np.testing.assert_array_equal(view["start_time"], raw["start_time"])


def test_presentationwise_running_speed_and_rates(small) -> None:
    out, sid = small
    s = open_session(out, sid)
    ids = s.get_stimulus_table("natural_scenes").index[:30]
    run = s.presentationwise_running_speed(ids)
    assert list(run.columns) == ["velocity"] and list(run.index) == list(ids)
    assert run["velocity"].notna().all()
    rates = s.presentationwise_rates((-0.05, 0.3), ids, s.units.index[:5])
    assert rates.shape == (30, 70, 5) and rates.dtype == np.float32
    full = spikeprep.open_rates(out, sid)
    start = s.stimulus_presentations.loc[ids[4], "start_time"]
    first = int(np.floor((start - 0.05) / 0.005))
    expected = full.isel(time=slice(first, first + 70), unit_id=slice(0, 5)).values
    np.testing.assert_array_equal(rates.values[4], expected)


def test_bad_ids_and_edges_name_the_problem(small) -> None:
    out, sid = small
    s = open_session(out, sid)
    with pytest.raises(AlignmentError, match="no presentation 99999999"):
        s.presentationwise_spike_counts([0, 0.1], [1, 99999999])
    with pytest.raises(AlignmentError, match="no unit 5"):
        s.conditionwise_spike_statistics(unit_ids=[5])
    with pytest.raises(AlignmentError, match="increase strictly"):
        s.presentationwise_spike_counts([0.1, 0.1, 0.2])
    with pytest.raises(AlignmentError, match="unknown stimulus 'nope'; valid: .*natural_scenes"):
        s.get_stimulus_table("nope")


def test_align_writes_what_the_api_returns_and_skips_on_rerun(small) -> None:
    out, sid = small
    r = align_session(out, sid, "natural_scenes", (-0.05, 0.3), 0.005, unit_block=16)
    assert r["status"] == "aligned" and r["bins"] == 70
    zarr_path, table_path = aligned_paths(SessionFolder(out, sid), "natural_scenes")
    ds = xr.open_zarr(zarr_path)
    s = open_session(out, sid)
    ids = ds["stimulus_presentation_id"].values
    api = s.presentationwise_spike_counts(np.linspace(-0.05, 0.3, 71), ids)
    assert ds["spike_counts"].dtype == np.uint16
    np.testing.assert_array_equal(ds["spike_counts"].values, api.values)
    np.testing.assert_array_equal(ds["unit_id"], s.units.index)
    stats = pd.read_parquet(table_path).set_index(["unit_id", "stimulus_condition_id"])
    pd.testing.assert_frame_equal(stats, s.conditionwise_spike_statistics(ids), check_dtype=False)
    assert align_session(out, sid, "natural_scenes", (-0.05, 0.3), 0.005)["status"] == "skipped"
    assert align_session(out, sid, "natural_scenes", (-0.1, 0.3), 0.005)["status"] == "aligned"
    assert not [p for p in zarr_path.parent.iterdir() if p.name.startswith(".")]
    from spikeprep.export.verify import verify_out

    assert verify_out(out)[0] == []
    table_path.unlink()
    assert verify_out(out)[0] == [f"{table_path}: missing"]
    assert align_session(out, sid, "natural_scenes", (-0.1, 0.3), 0.005)["status"] == "aligned"  # not skipped


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spikeprep.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, code, text", [
    (["--stimulus", "nope", "--window", "-0.05", "0.3"], 1, "unknown stimulus 'nope'; valid: "),
    (["--stimulus", "flashes", "--window", "0.3", "0.1"], 2, "--window 0.3 0.1: the stop must come after the start"),
    (["--stimulus", "flashes", "--window", "0", "0.3", "--bin-size", "0"], 2, "--bin-size 0: must be a positive"),
    (["--stimulus", "flashes", "--window", "0", "0.3", "--bin-size", "0.007"], 2, "not a whole number"),
    (["--stimulus", "flashes", "--window", "0", "0.3", "--session", "123"], 1, "session_123: not a complete export"),
])
def test_align_command_errors(args: list[str], code: int, text: str, small) -> None:
    out, _ = small
    p = cli("align", str(out), *args, "--quiet")
    assert p.returncode == code and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], p.stderr


def test_align_many_on_dask_equals_serial(tmp_path: Path, synth_dir: Path) -> None:
    files = [write_session(synth_dir / f"align_many_{k}.nwb", SynthSpec(n_units=20, duration=120.0, n_probes=1,
                                                                          seed=80 + k)) for k in range(2)]
    for f in files:
        assert export_file(f, tmp_path / "a").ok and export_file(f, tmp_path / "b").ok
    serial = align_many(tmp_path / "a", "flashes", (-0.1, 0.4), 0.01, progress=False)
    parallel = align_many(tmp_path / "b", "flashes", (-0.1, 0.4), 0.01, workers=2, progress=False)
    assert [r.status for r in serial] == [r.status for r in parallel] == ["aligned"] * 2
    for r in serial:
        a = xr.open_zarr(aligned_paths(SessionFolder(tmp_path / "a", r.session_id), "flashes")[0]).load()
        b = xr.open_zarr(aligned_paths(SessionFolder(tmp_path / "b", r.session_id), "flashes")[0]).load()
        xr.testing.assert_identical(a, b)


def test_readme_allensdk_snippet_runs(small) -> None:
    out, sid = small
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- allensdk-snippet -->")[1].split("```python")[1].split("```")[0]
    code = block.replace('"OUT"', repr(str(out))).replace("715093703", str(sid))
    ns: dict = {}
    exec(compile(code, "README snippet", "exec"), ns)
    assert ns["counts"].dims == ("stimulus_presentation_id", "time_relative_to_stimulus_onset", "unit_id")
    assert len(ns["stats"]) > 0 and "velocity" in ns["running"]


@pytest.mark.parametrize("seed", range(5))
def test_condition_ids_number_distinct_rows_by_first_appearance(seed: int) -> None:
    """Against a dictionary of row tuples numbered as they first appear."""
    rng = np.random.default_rng(seed)
    n = 3000
    table = pd.DataFrame({"stimulus_name": rng.choice(["g", "s", "n"], n),
                          "orientation": rng.choice([0.0, 45.0, 90.0, np.nan], n),
                          "phase": rng.choice([None, "0.25", "0.5"], n),
                          "size": [None if k == 0 else [float(k), float(k)] for k in rng.integers(0, 3, n)],
                          "frame": rng.integers(0, 1200, n).astype(float)})
    seen: dict[tuple, int] = {}
    expected = []
    for row in table.itertuples(index=False):
        key = tuple("nan" if v is None or (isinstance(v, float) and np.isnan(v)) else
                    tuple(v) if isinstance(v, list) else v for v in row)
        expected.append(seen.setdefault(key, len(seen)))
    assert condition_ids(table).tolist() == expected


def test_unify_parameter_decides_on_the_values_and_converts_each_row() -> None:
    from spikeprep.core.stimulus import unify_parameter

    idx = pd.Index([5, 3, 9, 1, 7, 2])
    numbers = unify_parameter(pd.Series(["0.08", 0.04, None, "N/A", " 0.08", np.nan], index=idx, dtype=object))
    assert numbers.dtype == float and numbers.index.equals(idx)
    np.testing.assert_array_equal(numbers.to_numpy(), [0.08, 0.04, np.nan, np.nan, 0.08, np.nan])
    vectors = unify_parameter(pd.Series(["[250.0, 250.0]", 30.0, "None", "(1, 2, 3)", "[250.0, 250.0]"], dtype=object))
    assert vectors.tolist() == [[250.0, 250.0], [30.0], None, [1.0, 2.0, 3.0], [250.0, 250.0]]
    text = unify_parameter(pd.Series(["a", "b", "", "a", None], dtype=object))
    assert text.tolist() == ["a", "b", None, "a", None]
    assert unify_parameter(pd.Series([None, np.nan], dtype=object)).isna().all()
