"""EcephysProjectCache on a catalog: every table as AllenSDK 2.16.2 returned it for the
same catalog (../shared/allen/reference_cache), and sessions from a loopback bucket."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spikeprep
from spikeprep.core.errors import SpikeprepError
from spikeprep.synthetic import SynthSpec, write_bucket

from .conftest import REFERENCE
from .http_bucket import Bucket

CACHE_REF = REFERENCE.parent / "reference_cache"
EXPECTED = json.loads((CACHE_REF / "allensdk_tables.json").read_text())


def _value(x: object) -> object:
    if isinstance(x, dict) and "list" in x:
        return [_value(i) for i in x["list"]]
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_value(i) for i in list(x)]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(x) else float(x)
    return x


def _same(a: object, b: object) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):  # AllenSDK's pandas 1.5 parser: one ulp off on some values
        return math.isclose(a, b, rel_tol=1e-15, abs_tol=0.0)
    return a == b


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> spikeprep.EcephysProjectCache:
    folder = tmp_path_factory.mktemp("cache")
    for f in (CACHE_REF / "catalog").glob("*.csv"):
        shutil.copy(f, folder / f.name)
    (folder / "manifest.json").write_text("{}")
    return spikeprep.EcephysProjectCache.fixed(manifest=folder / "manifest.json")


@pytest.mark.parametrize("label", list(EXPECTED["calls"]))
def test_every_call_is_allensdks(label: str, cache) -> None:
    call, expected = EXPECTED["calls"][label], EXPECTED["results"][label]
    kwargs = {k: float(v) if v in ("inf", "-inf") else v for k, v in call["kwargs"].items()}
    got = getattr(cache, call["method"])(**kwargs)
    if expected["kind"] == "list":
        assert _value(got) == expected["values"]
        return
    assert got.index.name == expected["index_name"] and [int(i) for i in got.index] == expected["index"]
    assert list(got.columns) == expected["columns"]
    assert {c: str(got[c].dtype) for c in got.columns} == expected["dtypes"]
    for column in expected["columns"]:
        assert _same(_value(got[column].tolist()), _value(expected["data"][column])), column


def test_tables_are_read_once(cache, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.get_units()
    reads = []
    original = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: reads.append(a) or original(*a, **k))
    cache.get_session_table(), cache.get_units(filter_by_validity=False), cache.get_channels()
    assert reads == []


def test_fixed_without_a_catalog_says_so(tmp_path: Path) -> None:
    with pytest.raises(SpikeprepError, match="no catalog here"):
        spikeprep.EcephysProjectCache.fixed(manifest=tmp_path / "manifest.json").get_session_table()
    with pytest.warns(UserWarning, match="ignores fetch_tries, timeout"):
        spikeprep.EcephysProjectCache.from_warehouse(manifest=tmp_path / "manifest.json", fetch_tries=3, timeout=9)


@pytest.mark.parametrize("stream", [False, True])
def test_get_session_data_exports_once_and_filters_as_allensdk(stream: bool, tmp_path: Path) -> None:
    spec = SynthSpec(n_units=40, duration=60.0, n_probes=2, seed=51)
    root = write_bucket(tmp_path / "bucket", [spec])
    with Bucket(root) as bucket:
        cache = spikeprep.EcephysProjectCache.from_warehouse(manifest=tmp_path / "cache" / "manifest.json",
                                                             base_url=bucket.url, stream=stream)
        session = cache.get_session_data(spec.sid)
        assert (tmp_path / "cache" / f"session_{spec.sid}" / f"session_{spec.sid}.nwb").exists() != stream
        units = cache.get_units()
        assert sorted(session.units.index) == sorted(units[units["ecephys_session_id"] == spec.sid].index)
        again = cache.get_session_data(spec.sid)
        assert again.record.finished_at == session.record.finished_at  # opened, not exported again
        off = dict(filter_by_validity=False, amplitude_cutoff_maximum=np.inf, presence_ratio_minimum=-np.inf,
                   isi_violations_maximum=np.inf)
        every = cache.get_session_data(spec.sid, filter_out_of_brain_units=False, **off)
        table = cache.get_units(**off)
        assert every.num_units == (table["ecephys_session_id"] == spec.sid).sum() > session.num_units
        with pytest.raises(SpikeprepError, match="no session 1 in the catalog"):
            cache.get_session_data(1)


def test_templates_come_from_the_bucket_once(tmp_path: Path) -> None:
    from PIL import Image

    root = write_bucket(tmp_path / "bucket", [SynthSpec(n_units=10, duration=30.0, n_probes=1, seed=52)])
    with Bucket(root) as bucket:
        cache = spikeprep.EcephysProjectCache.from_warehouse(manifest=tmp_path / "cache" / "manifest.json",
                                                             base_url=bucket.url)
        scene = cache.get_natural_scene_template(2)
        expected = np.asarray(Image.open(root / "natural_scene_templates" / "natural_scene_2.tiff"))
        assert scene.dtype == np.uint8 and scene.shape == (48, 64)
        np.testing.assert_array_equal(scene, expected)
        movie = cache.get_natural_movie_template(1)
        np.testing.assert_array_equal(movie, np.load(root / "natural_movie_templates" / "natural_movie_1.h5"))
        sent = dict(bucket.sent)
        np.testing.assert_array_equal(cache.get_natural_scene_template(2), scene)  # from the cache now
        assert dict(bucket.sent) == sent
        with pytest.raises(SpikeprepError, match="natural scene template 99"):
            cache.get_natural_scene_template(99)
        left = {p.name for p in (tmp_path / "cache" / "natural_scene_templates").iterdir()}
        assert "natural_scene_99.tiff" not in left and not any(n.endswith(".part") for n in left)
    offline = spikeprep.EcephysProjectCache.fixed(manifest=tmp_path / "cache")
    np.testing.assert_array_equal(offline.get_natural_movie_template(1), movie)
    with pytest.raises(SpikeprepError, match="not in the cache"):
        offline.get_natural_movie_template(3)


def test_a_bound_of_none_is_no_bound_as_in_allensdk(cache) -> None:
    """get_units(amplitude_cutoff_maximum=None) and the session filter agree: None lifts
    the bound (AllenSDK's 'missing' value), an absent bound is the default."""
    from spikeprep.analysis.unit_filter import UnitFilter

    f = UnitFilter.from_kwargs(amplitude_cutoff_maximum=None, presence_ratio_minimum=None)
    assert f.amplitude_cutoff_maximum == np.inf and f.presence_ratio_minimum == -np.inf
    assert f.isi_violations_maximum == 0.5 and f.filter_by_validity
    none = cache.get_units(amplitude_cutoff_maximum=None, presence_ratio_minimum=None, isi_violations_maximum=None)
    inf = cache.get_units(amplitude_cutoff_maximum=np.inf, presence_ratio_minimum=-np.inf, isi_violations_maximum=np.inf)
    assert list(none.index) == list(inf.index)


def test_a_cached_file_that_cannot_be_opened_is_named_and_kept(tmp_path: Path) -> None:
    """AllenSDK takes an unreadable cached file for a broken download and deletes it
    (#1628, #2741); here the error names it, and the file stays for the user to look at."""
    spec = SynthSpec(n_units=10, duration=30.0, n_probes=1, seed=53)
    root = write_bucket(tmp_path / "bucket", [spec])
    nwb = tmp_path / "cache" / f"session_{spec.sid}" / f"session_{spec.sid}.nwb"
    nwb.parent.mkdir(parents=True)
    served = next(root.rglob(f"session_{spec.sid}.nwb")).read_bytes()
    broken = served[:8] + b"\0" * 4096 + served[8 + 4096:]  # the right size, the superblock zeroed
    nwb.write_bytes(broken)
    with Bucket(root) as bucket:
        cache = spikeprep.EcephysProjectCache.from_warehouse(manifest=tmp_path / "cache" / "manifest.json",
                                                             base_url=bucket.url)
        with pytest.raises(SpikeprepError) as error:
            cache.get_session_data(spec.sid)
    assert str(nwb) in str(error.value) and "\n" not in str(error.value)
    assert nwb.read_bytes() == broken
    assert not (cache.out / f"session_{spec.sid}").exists()


def test_a_catalog_with_a_missing_column_or_unknown_ids_says_so(tmp_path: Path) -> None:
    for f in (CACHE_REF / "catalog").glob("*.csv"):
        shutil.copy(f, tmp_path / f.name)
    units = pd.read_csv(tmp_path / "units.csv")
    units.loc[:2, "ecephys_channel_id"] = -1  # three units on a channel the catalog lacks
    units.to_csv(tmp_path / "units.csv", index=False)
    cache = spikeprep.EcephysProjectCache.fixed(manifest=tmp_path / "manifest.json")
    with pytest.warns(UserWarning, match=r"units.csv: 3 of \d+ rows have a ecephys_channel_id that is not in "
                                         r"channels.csv"):
        got = cache.get_units(filter_by_validity=False, amplitude_cutoff_maximum=np.inf,
                              presence_ratio_minimum=-np.inf, isi_violations_maximum=np.inf)
    assert not set(units["id"][:3]) & set(got.index)
    pd.read_csv(tmp_path / "channels.csv").drop(columns="ecephys_probe_id").to_csv(tmp_path / "channels.csv",
                                                                                   index=False)
    fresh = spikeprep.EcephysProjectCache.fixed(manifest=tmp_path / "manifest.json")
    with pytest.raises(SpikeprepError, match=r"channels.csv: no column 'ecephys_probe_id'"):
        fresh.get_channels()


def test_a_synthetic_bucket_catalog_gives_allensdks_table_shapes(tmp_path: Path) -> None:
    """write_bucket's CSVs carry the released bucket's columns: every table call has the
    columns (in order), index name and dtypes AllenSDK gave on the reference catalog, and
    the released tables' extra metric columns."""
    root = write_bucket(tmp_path / "bucket", [SynthSpec(n_units=30, duration=30.0, n_probes=2, seed=s)
                                              for s in (54, 55)])
    catalog = next(p.parent for p in root.rglob("units.csv"))
    folder = tmp_path / "cache"
    folder.mkdir()
    for f in catalog.glob("*.csv"):
        shutil.copy(f, folder / f.name)
    cache = spikeprep.EcephysProjectCache.fixed(manifest=folder / "manifest.json")
    for label, call in EXPECTED["calls"].items():
        expected = EXPECTED["results"][label]
        if expected["kind"] == "list":
            continue
        kwargs = {k: float(v) if v in ("inf", "-inf") else v for k, v in call["kwargs"].items()}
        got = getattr(cache, call["method"])(**kwargs)
        assert len(got) > 0, label
        assert got.index.name == expected["index_name"], label
        # the released units.csv has more columns than the reference catalog's, among them
        # local_index, which the join with the channels splits into local_index_{unit,channel}
        expected_columns = [("local_index_channel" if c == "local_index" and "local_index_unit" in got.columns
                             else c) for c in expected["columns"]]
        assert [c for c in got.columns if c in expected_columns] == expected_columns, label
        shared = [c for c in expected["columns"] if c in got.columns]
        assert {c: str(got[c].dtype) for c in shared} == {c: expected["dtypes"][c] for c in shared}, label
    units = cache.get_units()
    assert {"cumulative_drift", "d_prime", "isolation_distance", "nn_hit_rate", "local_index_unit"} <= set(units.columns)


def test_unit_analysis_metrics_are_computed_once_and_joined_as_allensdk(tmp_path: Path) -> None:
    specs = [SynthSpec(n_units=30, duration=400.0, n_probes=1, seed=s, tuned=True) for s in (60, 62)]
    root = write_bucket(tmp_path / "bucket", specs)
    with Bucket(root) as bucket:
        cache = spikeprep.EcephysProjectCache.from_warehouse(manifest=tmp_path / "cache" / "manifest.json",
                                                             base_url=bucket.url)
        sid = specs[0].sid
        metrics = cache.get_unit_analysis_metrics_for_session(sid)
        units = cache.get_units()
        assert metrics.index.name == "ecephys_unit_id"
        assert sorted(metrics.index) == sorted(units.index[units["ecephys_session_id"] == sid])
        assert list(metrics.columns[: len(units.columns)]) == list(units.columns)
        assert {"pref_ori_dg", "azimuth_rf", "image_selectivity_ns", "on_off_ratio_fl"} <= set(metrics.columns)
        stored = cache.out / f"session_{sid}" / "unit_metrics.parquet"
        before = stored.stat().st_mtime_ns
        raw = cache.get_unit_analysis_metrics_for_session(sid, annotate=False)
        assert stored.stat().st_mtime_ns == before  # kept, not computed again
        assert len(raw) == specs[0].n_units and raw.index.name == "ecephys_unit_id"
        session_type = cache.get_session_table().loc[sid, "session_type"]
        by_type = cache.get_unit_analysis_metrics_by_session_type(session_type, filter_by_validity=False,
                                                                  amplitude_cutoff_maximum=np.inf,
                                                                  presence_ratio_minimum=-np.inf,
                                                                  isi_violations_maximum=np.inf)
        table = cache.get_session_table()
        same = table.index[table["session_type"] == session_type]
        assert set(by_type["ecephys_session_id"]) == set(same)
        with pytest.raises(ValueError, match="unrecognized session type: nope"):
            cache.get_unit_analysis_metrics_by_session_type("nope")


def test_allensdks_quickstart_with_only_the_import_changed(tmp_path: Path) -> None:
    """AllenSDK's quickstart steps (the cache, the session table, a session, the flashes
    PSTH and the natural-scenes spike-times table), the import line changed."""
    spec = SynthSpec(n_units=40, duration=300.0, n_probes=2, seed=64, tuned=True)
    root = write_bucket(tmp_path / "bucket", [spec])
    with Bucket(root) as bucket:
        from spikeprep import EcephysProjectCache  # was: from allensdk.brain_observatory.ecephys.ecephys_project_cache ...

        cache = EcephysProjectCache.from_warehouse(manifest=str(tmp_path / "cache" / "manifest.json"),
                                                   base_url=bucket.url)
        sessions = cache.get_session_table()
        session_id = sessions.index.values[0]
        session = cache.get_session_data(session_id)
    presentations = session.get_stimulus_table("flashes")
    units = session.units[session.units["ecephys_structure_acronym"].str.startswith("VIS")]
    time_step = 0.01
    time_bins = np.arange(-0.1, 0.5 + time_step, time_step)
    histograms = session.presentationwise_spike_counts(stimulus_presentation_ids=presentations.index.values,
                                                       bin_edges=time_bins, unit_ids=units.index.values)
    mean_histograms = histograms.mean(dim="stimulus_presentation_id")
    assert mean_histograms.dims == ("time_relative_to_stimulus_onset", "unit_id")
    rates = mean_histograms.values / time_step
    t = mean_histograms["time_relative_to_stimulus_onset"].values
    assert rates[(t > 0.03) & (t < 0.2)].mean() > rates[t < 0].mean()  # the planted flash response
    scenes = session.get_stimulus_table(["natural_scenes"])
    times = session.presentationwise_spike_times(stimulus_presentation_ids=scenes.index.values,
                                                 unit_ids=units.index.values[:5])
    assert times.index.name == "spike_time" and list(times.columns) == [
        "stimulus_presentation_id", "unit_id", "time_since_stimulus_presentation_onset"]
    assert set(times["stimulus_presentation_id"]) <= set(scenes.index)


def test_a_second_get_session_data_sends_no_request(tmp_path: Path) -> None:
    spec = SynthSpec(n_units=20, duration=60.0, n_probes=1, seed=65)
    root = write_bucket(tmp_path / "bucket", [spec])
    with Bucket(root) as bucket:
        cache = spikeprep.EcephysProjectCache.from_warehouse(manifest=tmp_path / "cache" / "manifest.json",
                                                             base_url=bucket.url)
        first = cache.get_session_data(spec.sid)
        sent = dict(bucket.sent)
        again = spikeprep.EcephysProjectCache.from_warehouse(manifest=tmp_path / "cache" / "manifest.json",
                                                             base_url=bucket.url).get_session_data(spec.sid)
        assert dict(bucket.sent) == sent and again.record.finished_at == first.record.finished_at


_TWO = """
import sys, spikeprep
cache = spikeprep.EcephysProjectCache.from_warehouse(manifest=sys.argv[1], base_url=sys.argv[2])
print(cache.get_session_data(int(sys.argv[3])).record.finished_at)
"""


def test_two_processes_export_a_session_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    spec = SynthSpec(n_units=60, duration=300.0, n_probes=2, seed=66)
    root = write_bucket(tmp_path / "bucket", [spec])
    manifest = str(tmp_path / "cache" / "manifest.json")
    with Bucket(root) as bucket:
        procs = [subprocess.Popen([sys.executable, "-c", _TWO, manifest, bucket.url, str(spec.sid)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    stamps = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(stamps) == 1  # one export, which the other process opened
    assert bucket.sent[f"/session_{spec.sid}/session_{spec.sid}.nwb"] > 0


def test_an_allensdk_cache_folder_is_used_as_it_is(tmp_path: Path) -> None:
    """A folder AllenSDK filled (its manifest, the catalog, session_<id>/session_<id>.nwb):
    no download, and an offline machine is fine."""
    spec = SynthSpec(n_units=20, duration=60.0, n_probes=1, seed=67)
    root = write_bucket(tmp_path / "bucket", [spec])
    folder = tmp_path / "allensdk_cache"
    shutil.copytree(root, folder)  # the bucket's layout is AllenSDK's cache layout, manifest included
    assert json.loads((folder / "manifest.json").read_text())["manifest"][0]["value"] == "0.3.0"
    cache = spikeprep.EcephysProjectCache.fixed(manifest=folder / "manifest.json")  # offline: never asks a server
    session = cache.get_session_data(spec.sid)
    assert session.num_units > 0 and cache.get_session_table().index.tolist() == [spec.sid]
    with pytest.raises(SpikeprepError, match="not in the cache"):
        (folder / f"session_{spec.sid}" / f"session_{spec.sid}.nwb").rename(folder / "elsewhere.nwb")
        spikeprep.EcephysProjectCache.fixed(manifest=folder, out=tmp_path / "other").get_session_data(spec.sid)


def test_an_offline_machine_gets_one_clear_line_fast(tmp_path: Path) -> None:
    import time

    cache = spikeprep.EcephysProjectCache.from_warehouse(manifest=tmp_path / "empty" / "manifest.json",
                                                         base_url="http://127.0.0.1:9/")
    t0 = time.perf_counter()
    with pytest.raises(SpikeprepError) as error:
        cache.get_session_table()
    assert time.perf_counter() - t0 < 30 and "\n" not in str(error.value)
    assert "127.0.0.1:9" in str(error.value) or "sessions.csv" in str(error.value)
