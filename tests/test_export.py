"""The output contract, resumability, many sessions on Dask, legacy pickles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import spikeprep
from spikeprep.core.options import ExportOptions
from spikeprep.export.layout import SessionFolder
from spikeprep.export.verify import verify_out
from spikeprep.io.nwb import read_session
from spikeprep.io.source import LocalFile
from spikeprep.pipeline import export_file, export_many
from spikeprep.report.qc import run_qc
from spikeprep.synthetic import SynthSpec, write_session

from .conftest import REFERENCE_NAMES, reference_dir, reference_nwb

UNIT_CONTRACT = ["unit_id", "probe_id", "probe_name", "peak_channel_id", "region", "probe_vertical_position",
                 "probe_horizontal_position", "anterior_posterior_ccf_coordinate", "dorsal_ventral_ccf_coordinate",
                 "left_right_ccf_coordinate", "valid_data", "quality", "snr", "d_prime", "isi_violations",
                 "amplitude_cutoff", "presence_ratio", "firing_rate", "waveform_duration", "n_spikes", "is_rs",
                 "cortical_depth_um", "cortical_depth_norm", "layer", "isi_5ms_pct", "passes_allen_qc"]


@pytest.fixture(scope="module")
def exported(small_nwb: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("out")
    r = export_file(small_nwb, out)
    assert r.status == "exported", r.message
    return out, r.session_id


def session_dir(out: Path, sid: int) -> Path:
    return SessionFolder(out, sid).path


def read_status(out: Path, sid: int) -> dict | None:
    p = session_dir(out, sid) / "session.json"
    return json.loads(p.read_text()) if p.exists() else None


def is_complete(out: Path, sid: int, options: ExportOptions, nwb: Path) -> bool:
    return SessionFolder(out, sid).is_complete(options.as_dict(), LocalFile(nwb).info())


def test_contract_files_and_session_json(exported, small_nwb: Path) -> None:
    from spikeprep.export.layout import SCHEMA_VERSION

    out, sid = exported
    d = session_dir(out, sid)
    assert {p.name for p in d.iterdir()} == {"units.parquet", "spike_times.parquet", "stimulus.parquet",
                                            "stimulus_conditions.parquet", "running.parquet", "probes.parquet",
                                            "channels.parquet", "invalid_times.parquet", "optotagging.parquet",
                                            "eye_tracking.parquet", "binned.zarr",
                                            "session.json"}
    st = json.loads((d / "session.json").read_text())
    assert st["status"] == "complete" and st["session_id"] == sid and st["schema_version"] == SCHEMA_VERSION
    assert st["params"] == ExportOptions().as_dict()
    assert st["source"]["size"] == small_nwb.stat().st_size and st["source"]["location"] == str(small_nwb.resolve())
    assert st["spikeprep_version"] == spikeprep.__version__
    assert st["outputs"]["units"]["rows"] == st["counts"]["units"] and st["outputs"]["binned"]["grid"]["t_start"] == 0
    assert not list(out.glob(".tmp-*"))


def test_units_table_contract(exported, small_nwb: Path) -> None:
    out, sid = exported
    raw = pd.read_parquet(session_dir(out, sid) / "units.parquet")
    for c in UNIT_CONTRACT:
        assert c in raw.columns, c
    assert raw.columns[0] == "unit_id" and raw["unit_id"].dtype == np.int64
    s = read_session(small_nwb)
    np.testing.assert_array_equal(raw["unit_id"], s.units.index)  # NWB order, all clusters
    np.testing.assert_array_equal(raw["n_spikes"], s.spikes.n_spikes)
    assert raw["is_rs"].dtype == bool and raw["passes_allen_qc"].dtype == bool
    assert set(raw["layer"].dropna()) <= {"L1", "L2/3", "L4", "L5", "L6"}
    assert raw["layer"].notna().sum() > 0


def test_spike_times_round_trip_exactly(exported, small_nwb: Path) -> None:
    out, sid = exported
    s = read_session(small_nwb)
    trains = spikeprep.open_spike_times(out, sid)
    assert list(trains) == list(s.spikes.unit_ids)
    for i, u in enumerate(s.spikes.unit_ids):
        np.testing.assert_array_equal(trains[u], s.spikes[i])
    long = pd.read_parquet(session_dir(out, sid) / "spike_times.parquet")
    assert list(long.columns) == ["unit_id", "time"] and long["unit_id"].dtype == np.int64


def test_other_tables_open(exported, small_nwb: Path) -> None:
    out, sid = exported
    s = read_session(small_nwb)
    stim = spikeprep.open_stimulus(out, sid)
    assert stim.index.name == "stimulus_presentation_id" and list(stim.index) == list(range(len(s.stimulus)))
    assert list(stim.columns[:4]) == ["start_time", "stop_time", "stimulus_name", "stimulus_block"]
    running = spikeprep.open_running(out, sid)
    assert (running.pop("session_id") == sid).all()
    pd.testing.assert_frame_equal(running, s.running)
    counts = spikeprep.open_counts(out, sid)["counts"]
    assert int(counts.sum()) == len(s.spikes.times)
    rates = spikeprep.open_rates(out, sid)
    assert rates.dims == ("time", "unit_id") and rates.dtype == np.float32
    expected = spikeprep.firing_rates(s.spikes).isel(time=slice(0, 2000))
    np.testing.assert_array_equal(rates.isel(time=slice(0, 2000)).values, expected.values)
    sessions = spikeprep.open_sessions(out)
    assert list(sessions.index) == [sid] and sessions.loc[sid, "n_units"] == len(s.units)


def test_skip_force_and_changed_params(exported, small_nwb: Path) -> None:
    out, sid = exported
    before = read_status(out, sid)["finished_at"]
    assert export_file(small_nwb, out).status == "skipped"
    assert is_complete(out, sid, ExportOptions(), small_nwb)
    assert not is_complete(out, sid, ExportOptions(bin_size=0.01), small_nwb)
    time.sleep(1.1)
    assert export_file(small_nwb, out, force=True).status == "exported"
    assert read_status(out, sid)["finished_at"] != before


def test_units_query(small_nwb: Path, tmp_path: Path) -> None:
    q = "quality == 'good' and snr > 2.5"
    r = export_file(small_nwb, tmp_path, ExportOptions(units_query=q))
    assert r.ok, r.message
    units = spikeprep.open_units(tmp_path, r.session_id)
    s = read_session(small_nwb)
    expected = s.units.query(q).index
    assert list(units.index) == list(expected)
    trains = spikeprep.open_spike_times(tmp_path, r.session_id)
    assert set(trains) == set(expected)
    assert read_status(tmp_path, r.session_id)["params"]["units_query"] == q
    assert spikeprep.open_counts(tmp_path, r.session_id)["counts"].shape[1] == len(expected)
    bad = export_file(small_nwb, tmp_path / "bad", ExportOptions(units_query="no_such_column > 1"))
    assert bad.status == "failed" and "bad --units-query" in bad.message


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_reference_export_flags_match_allensdk(name: str, tmp_path: Path) -> None:
    r = export_file(reference_nwb(name), tmp_path)
    assert r.ok, r.message
    units = spikeprep.open_units(tmp_path, r.session_id)
    kept = pd.read_csv(reference_dir(name) / "sdk_defaults" / "units.csv", index_col="unit_id").index
    assert set(units.index[units["passes_allen_qc"]]) == set(kept)
    assert verify_out(tmp_path) == ([], 1)


def test_legacy_pickles(small_nwb: Path, tmp_path: Path) -> None:
    r = export_file(small_nwb, tmp_path, ExportOptions(legacy_pickle=True))
    assert r.ok, r.message
    sid = r.session_id
    units = pd.read_pickle(tmp_path / "legacy" / f"units_{sid}.pkl")
    assert list(units.columns) == ["channel", "id", "snr", "d_prime", "isi_viol", "region", "probe", "hpos",
                                   "vpos", "RS", "layer"]
    assert list(units.index) == list(range(len(units))) and units["RS"].dtype == bool
    running = pd.read_pickle(tmp_path / "legacy" / f"running_{sid}.pkl")
    assert list(running.columns) == ["times", "running_speed"]
    stim = pd.read_pickle(tmp_path / "legacy" / f"stimulus_{sid}.pkl")
    assert list(stim.columns) == ["time", "stimulus_name", "block"] and (stim["block"] == -1).any()
    fr = pd.read_pickle(tmp_path / "legacy" / f"fr_{sid}.pkl")
    assert (fr.dtypes == np.uint8).all() and list(fr.columns) == list(range(len(units)))
    exact = spikeprep.firing_rates(read_session(small_nwb).spikes, dtype=np.float64).values
    np.testing.assert_array_equal(fr.to_numpy(), np.clip(np.floor(exact), 0, 255).astype(np.uint8))
    np.testing.assert_allclose(fr.index.to_numpy(), np.arange(len(fr)) * 0.005)


def test_dask_cluster_equals_serial(tmp_path: Path, synth_dir: Path) -> None:
    files = [write_session(synth_dir / f"many_{k}.nwb", SynthSpec(n_units=40, duration=60.0, n_probes=2, seed=20 + k))
             for k in range(3)]
    serial = export_many(files, tmp_path / "serial", progress=False)
    parallel = export_many(files, tmp_path / "dask", workers=2, progress=False)
    assert [r.status for r in serial] == [r.status for r in parallel] == ["exported"] * 3
    for r in serial:
        for name in ("units.parquet", "spike_times.parquet", "stimulus.parquet", "running.parquet"):
            a = pd.read_parquet(session_dir(tmp_path / "serial", r.session_id) / name)
            b = pd.read_parquet(session_dir(tmp_path / "dask", r.session_id) / name)
            pd.testing.assert_frame_equal(a, b)
        xr.testing.assert_identical(spikeprep.open_counts(tmp_path / "serial", r.session_id).load(),
                                    spikeprep.open_counts(tmp_path / "dask", r.session_id).load())


def test_a_bad_file_does_not_stop_the_others(small_nwb: Path, tmp_path: Path) -> None:
    bad = tmp_path / "session_1.nwb"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    results = export_many([bad, small_nwb], tmp_path / "out", progress=False)
    assert [r.status for r in results] == ["failed", "exported"]
    assert str(bad) in results[0].message and "\n" not in results[0].message


def _export_cmd(nwb: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "spikeprep.cli", "export", str(nwb), "--out", str(out), "--quiet", "--no-qc"]


@pytest.mark.parametrize("delay", [0.2, 0.6, 1.2])
def test_kill_9_then_rerun_equals_a_clean_run(delay: float, tmp_path: Path, synth_dir: Path) -> None:
    nwb = synth_dir / "kill.nwb"
    if not nwb.exists():
        write_session(nwb, SynthSpec(n_units=200, duration=600.0, n_probes=3, seed=9))
    clean, out = tmp_path / "clean", tmp_path / "killed"
    assert subprocess.run(_export_cmd(nwb, clean), capture_output=True).returncode == 0
    proc = subprocess.Popen(_export_cmd(nwb, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    sid = read_session(nwb).session_id
    st = read_status(out, sid)
    assert st is None or st["status"] == "complete"  # never a folder that claims to be whole and is not
    if st is not None:
        assert verify_out(out)[0] == []
    done = subprocess.run(_export_cmd(nwb, out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not list(out.glob(".tmp-*")) and not list(out.glob(".trash-*"))
    for name in ("units.parquet", "spike_times.parquet", "stimulus.parquet", "running.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(session_dir(clean, sid) / name),
                                      pd.read_parquet(session_dir(out, sid) / name))
    xr.testing.assert_identical(spikeprep.open_counts(clean, sid).load(), spikeprep.open_counts(out, sid).load())


def test_qc_outputs(exported) -> None:
    out, sid = exported
    lines: list[str] = []
    summary = run_qc(out, echo=lines.append)
    assert (out / "qc" / "isi_violations.parquet").exists() and (out / "qc" / "isi_summary.csv").exists()
    per_unit = pd.read_parquet(out / "qc" / "isi_violations.parquet")
    assert list(per_unit.columns) == ["session_id", "unit_id", "region", "layer", "is_rs", "snr", "isi_5ms_pct",
                                      "isi_violations", "isi_violations_recomputed", "rp_contamination", "selected"]
    sel = per_unit[per_unit["selected"]]
    assert summary.loc[0, "mean_pct"] == pytest.approx(sel["isi_5ms_pct"].mean())
    assert summary.loc[0, "std_pct"] == pytest.approx(np.std(sel["isi_5ms_pct"]))
    assert "violate 5 ms condition." in lines[0] and lines[-1].startswith("all 1 sessions")
    import matplotlib.image as mpimg

    img = mpimg.imread(out / "qc" / "isi_violations.png")
    assert img.shape[0] > 300 and img.shape[1] > 800


def test_qc_figure_axes(exported) -> None:
    from spikeprep.report.plots import build_isi_figure

    out, _ = exported
    per_unit = pd.read_parquet(out / "qc" / "isi_violations.parquet") if (out / "qc").exists() else None
    if per_unit is None:
        run_qc(out, echo=lambda line: None)
        per_unit = pd.read_parquet(out / "qc" / "isi_violations.parquet")
    summary = pd.read_csv(out / "qc" / "isi_summary.csv")
    fig = build_isi_figure(per_unit, summary)
    hist, layers = fig.axes
    assert "session mean" in hist.get_xlabel() and hist.get_ylabel() == "sessions"
    assert len(hist.lines) == 1 and hist.lines[0].get_xdata()[0] == pytest.approx(summary["mean_pct"].mean())
    assert [t.get_text() for t in layers.get_xticklabels()] == ["L1", "L2/3", "L4", "L5", "L6"]
    assert "per unit" in layers.get_ylabel()


def test_existing_scheduler(tmp_path: Path, synth_dir: Path) -> None:
    from dask.distributed import LocalCluster

    files = [write_session(synth_dir / f"sched_{k}.nwb", SynthSpec(n_units=30, duration=40.0, n_probes=1, seed=40 + k))
             for k in range(2)]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        results = export_many(files, tmp_path, scheduler=cluster.scheduler_address, progress=False)
    assert [r.status for r in results] == ["exported", "exported"]
    assert verify_out(tmp_path) == ([], 2)


def test_qc_reuses_stored_metrics_and_recomputes_for_another_threshold(exported, monkeypatch: pytest.MonkeyPatch) -> None:
    import spikeprep.report.qc as pipeline

    out, sid = exported
    stored = spikeprep.open_units(out, sid)
    real = pipeline.open_spike_trains
    calls: list[int] = []

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "open_spike_trains", counting)
    same = pipeline.qc_table(out, sid)
    assert calls == []  # the export's own metrics, no second read of every spike
    np.testing.assert_array_equal(same["isi_5ms_pct"], stored["isi_5ms_pct"])
    other = pipeline.qc_table(out, sid, threshold_ms=3.0)
    assert calls == [1]
    assert (other["isi_5ms_pct"].fillna(0) <= same["isi_5ms_pct"].fillna(0)).all()
    assert (other["isi_5ms_pct"] < same["isi_5ms_pct"]).any()


def test_spike_times_in_whole_row_groups(small_nwb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row groups of ROW_GROUP_ROWS spikes (the last shorter), in unit order, whatever the
    blocks the pass reads; the table is the session's spike trains."""
    import pyarrow.parquet as pq

    from spikeprep.export import spike_pass
    from spikeprep.export.outputs import write_spike_times

    monkeypatch.setattr(spike_pass, "ROW_GROUP_ROWS", 1000)
    spikes = read_session(small_nwb).spikes
    n = write_spike_times(spikes, tmp_path / "s.parquet")
    meta = pq.ParquetFile(tmp_path / "s.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert n == len(spikes.times) == sum(sizes) and set(sizes[:-1]) == {1000} and 0 < sizes[-1] <= 1000
    table = pq.read_table(tmp_path / "s.parquet")
    np.testing.assert_array_equal(table["time"].to_numpy(), spikes.times)
    np.testing.assert_array_equal(table["unit_id"].to_numpy(), np.repeat(spikes.unit_ids, spikes.n_spikes))
    assert not any(f.nullable for f in table.schema)  # no spike lacks a unit or a time: no definition levels
