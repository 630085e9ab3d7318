"""LFP and CSD: lazy windows from probe files, local or streamed, against AllenSDK's own
output for its probe files (../shared/allen/reference2) and against h5py reads of the
whole file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import spikeprep
from spikeprep.core.errors import SpikeprepError
from spikeprep.pipeline import export_file
from spikeprep.synthetic import SynthSpec, write_session

from .conftest import NAMES2, REFERENCE2, full
from .http_bucket import Bucket

SPEC = SynthSpec(n_units=30, duration=300.0, n_probes=2, seed=4, lfp=True, lfp_channels=12)


@pytest.fixture(scope="module")
def references(reference2_sessions: dict) -> dict:
    return reference2_sessions


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, spikeprep.ExportedSession]:
    root = tmp_path_factory.mktemp("lfp_syn")
    folder = root / f"session_{SPEC.sid}"
    folder.mkdir()
    nwb = write_session(folder / f"session_{SPEC.sid}.nwb", SPEC)
    r = export_file(nwb, root / "out")
    assert r.ok, r.message
    return folder, spikeprep.open_session(root / "out", r.session_id)


def _raw(path: Path, pid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        g = f[f"acquisition/probe_{pid}_lfp/probe_{pid}_lfp_data"]
        return g["data"][()], g["timestamps"][()], f["general/extracellular_ephys/electrodes/id"][()]


@pytest.mark.parametrize("name", NAMES2)
def test_lfp_and_csd_are_allensdks(name: str, references) -> None:
    s = references[name]
    for pid in s.probes.index:
        lfp = s.get_lfp(pid)
        assert lfp.name == "LFP" and lfp.dims == ("time", "channel") and lfp.dtype == np.float32
        with np.load(full(name) / f"lfp_{pid}.npz") as z:
            np.testing.assert_array_equal(lfp.values, z["data"])
            np.testing.assert_array_equal(lfp["time"].values, z["time"])
            np.testing.assert_array_equal(lfp["channel"].values, z["channel"])
        with np.load(full(name) / f"lfp_{pid}_window.npz") as z:
            window = lfp.sel(time=slice(float(z["a"]), float(z["b"])))
            np.testing.assert_array_equal(window.values, z["data"])
            np.testing.assert_array_equal(window["time"].values, z["time"])
        csd = s.get_current_source_density(pid)
        assert csd.name == "CSD" and csd.dims == ("virtual_channel_index", "time")
        with np.load(full(name) / f"csd_{pid}.npz") as z:
            np.testing.assert_array_equal(csd.values, z["data"])
            for coord in ("time", "virtual_channel_index", "vertical_position", "horizontal_position"):
                np.testing.assert_array_equal(csd[coord].values, z[coord])


def test_windows_at_the_ends_and_channels_in_any_order(synthetic) -> None:
    folder, s = synthetic
    pid = int(s.probes.index[0])
    data, times, ids = _raw(folder / f"probe_{pid}_lfp.nwb", pid)
    lfp = s.get_lfp(pid, mask_invalid_intervals=False)
    for a, b in [(-5.0, times[0] + 0.01), (times[-1] - 0.013, times[-1] + 3), (times[100], times[100]),
                 (50.0001, 52.5), (times[-1] + 1, times[-1] + 2)]:
        rows = (times >= a) & (times <= b)
        window = lfp.sel(time=slice(a, b))
        np.testing.assert_array_equal(window.values, data[rows])
        np.testing.assert_array_equal(window["time"].values, times[rows])
    order = [7, 1, 3, 11, 0]
    np.testing.assert_array_equal(lfp.isel(channel=order).sel(time=slice(10, 11)).values,
                                  data[(times >= 10) & (times <= 11)][:, order])
    np.testing.assert_array_equal(lfp.sel(channel=ids[[5, 2]]).isel(time=slice(1000, 1010)).values,
                                  data[1000:1010][:, [5, 2]])
    assert float(lfp.sel(time=times[77]).isel(channel=0)) == data[77, 0]
    assert float(lfp.sel(time=times[77] + 1e-5, method="nearest")["time"]) == times[77]


def test_invalid_intervals_are_masked_as_allensdk(synthetic) -> None:
    folder, s = synthetic
    invalid = s.invalid_times
    masked = []
    for pid, name in s.probes["description"].items():
        data, times, _ = _raw(folder / f"probe_{pid}_lfp.nwb", int(pid))
        bad = np.zeros(len(times), dtype=bool)
        for row in invalid.itertuples():
            if "all_probes" in list(row.tags) or name in list(row.tags):
                bad |= (times >= row.start_time) & (times <= row.stop_time)  # closed, as AllenSDK
        lfp = s.get_lfp(pid)
        whole = lfp.values
        assert np.isnan(whole).all(axis=1).tolist() == bad.tolist()
        np.testing.assert_array_equal(whole[~bad], data[~bad])
        if bad.any():  # a window that crosses the interval
            first, last = np.flatnonzero(bad)[[0, -1]]
            window = lfp.sel(time=slice(times[first - 5], times[last + 5])).values
            assert np.isnan(window).all(axis=1).tolist() == bad[first - 5 : last + 6].tolist()
        assert not np.isnan(s.get_lfp(pid, mask_invalid_intervals=False).values).any()
        masked.append(int(bad.sum()))
    assert max(masked) > 0  # the synthetic session has an interval tagged with a probe


def test_presentationwise_lfp_takes_the_nearest_samples(synthetic) -> None:
    folder, s = synthetic
    pid = int(s.probes.index[1])
    data, times, ids = _raw(folder / f"probe_{pid}_lfp.nwb", pid)
    flashes = s.get_stimulus_table("flashes").index
    got = s.presentationwise_lfp(flashes, (-0.1, 0.4), channel_ids=ids[[4, 0]], mask_invalid_intervals=False)
    assert got.dims == ("stimulus_presentation_id", "time_from_presentation_onset", "channel")
    assert got.shape == (len(flashes), 625, 2) and list(got["channel"].values) == list(ids[[4, 0]])
    onsets = s.stimulus_presentations.loc[flashes, "start_time"].to_numpy()
    for i, onset in enumerate(onsets):
        want = onset + got["time_from_presentation_onset"].values
        rows = np.abs(times[None, :] - want[:, None]).argmin(axis=1)
        np.testing.assert_array_equal(got.values[i], data[rows][:, [4, 0]])
    ends = s.presentationwise_lfp(flashes, (-0.1, 0.4), channel_ids=ids[[0, -1]], mask_invalid_intervals=False)
    mean = np.abs(ends.mean("stimulus_presentation_id").values)
    assert (mean[150:250].max(axis=0) > 3 * mean[:100].max(axis=0)).all()  # the planted evoked response
    with pytest.raises(SpikeprepError, match="give the channels of one probe"):
        s.presentationwise_lfp(flashes, (0, 0.1), channel_ids=[s.channels.index[0], s.channels.index[-1]])


def test_a_probe_without_an_lfp_file_names_it(synthetic, tmp_path: Path) -> None:
    folder, s = synthetic
    pid = int(s.probes.index[0])
    copy = tmp_path / "s"
    shutil.copytree(folder, copy)
    (copy / f"probe_{pid}_lfp.nwb").unlink()
    r = export_file(copy / f"session_{SPEC.sid}.nwb", tmp_path / "out")
    session = spikeprep.open_session(tmp_path / "out", r.session_id)
    with pytest.raises(SpikeprepError, match=rf"session {SPEC.sid}: no LFP file for probe {pid} \(probeA\); looked "
                                             rf"for .*probe_{pid}_lfp.nwb"):
        session.get_lfp(pid)
    with pytest.raises(SpikeprepError, match=f"session {SPEC.sid}: no probe 123; its probes are"):
        session.get_lfp(123)
    plain = tmp_path / "plain"
    plain.mkdir()
    no_lfp = write_session(plain / "p.nwb", SynthSpec(n_units=10, duration=60.0, n_probes=1, seed=5))
    r = export_file(no_lfp, tmp_path / "out2")
    other = spikeprep.open_session(tmp_path / "out2", r.session_id)
    with pytest.raises(SpikeprepError, match="has no LFP data"):
        other.get_lfp(other.probes.index[0])
    p = _cli("lfp", str(tmp_path / "out2"), "--session", str(r.session_id))
    assert p.returncode == 1 and p.stderr.strip().splitlines() == [
        f"spikeprep: session {r.session_id}: no probe has LFP data (has_lfp_data is False for each)"]
    assert not (other.folder / "lfp").exists()


def test_streamed_probe_files_fetch_only_their_windows(references, tmp_path: Path) -> None:
    name = NAMES2[-1]
    served = tmp_path / "served"
    served.mkdir()
    for f in REFERENCE2.glob(f"{name}*_lfp.nwb"):
        shutil.copy(f, served / f.name.replace(f"{name}_", ""))
    shared = references[name]
    s = spikeprep.open_session(shared.folder.out, shared.ecephys_session_id)  # its own LFP paths
    pid = int(s.probes.index[0])
    local = s.get_lfp(pid)
    with Bucket(served) as bucket:
        path = f"/probe_{pid}_lfp.nwb"
        size = (served / path.lstrip("/")).stat().st_size
        s.set_lfp_path(pid, bucket.url + path.lstrip("/"))
        s.lfp_cache = tmp_path / "cache"
        bucket.faults[path].extend(["503", "", "cut", "", "stall"])
        streamed = s.get_lfp(pid)
        with np.load(full(name) / f"lfp_{pid}_window.npz") as z:
            window = streamed.sel(time=slice(float(z["a"]), float(z["b"])))
            np.testing.assert_array_equal(window.values, z["data"])
        assert bucket.sent[path] < 0.9 * size  # 2 s of a 3 s file, and the metadata
        np.testing.assert_array_equal(streamed.values, local.values)
        s.set_lfp_path(pid, bucket.url + path.lstrip("/"))
        s.lfp_cache = tmp_path / "cache2"
        before = bucket.sent[path]
        tiny = s.get_lfp(pid).sel(time=slice(89.0, 89.2)).values
        np.testing.assert_array_equal(tiny, local.sel(time=slice(89.0, 89.2)).values)
        assert len(tiny) > 200 and bucket.sent[path] - before <= 0.5 * size
        s.set_lfp_path(pid, bucket.url + path.lstrip("/"))
        s.lfp_cache = tmp_path / "cache3"
        lazy = s.get_lfp(pid)
        (served / path.lstrip("/")).touch()  # replaced: its validators change
        with pytest.raises(SpikeprepError) as caught:
            lazy.sel(time=slice(89.6, 90.4)).values
        assert len(str(caught.value).splitlines()) == 1 and path.lstrip("/") in str(caught.value), caught.value


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spikeprep.cli", *args], capture_output=True, text=True, timeout=300)


def test_lfp_command_copies_probes_into_the_folder(synthetic, tmp_path: Path) -> None:
    from spikeprep.export.verify import verify_out

    folder, s = synthetic
    out = tmp_path / "out"
    shutil.copytree(s.folder.out, out, ignore=shutil.ignore_patterns("*.lock"))
    sid = str(s.ecephys_session_id)
    p = _cli("lfp", str(out), "--session", sid, "--window", "200", "220")
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("written") == 2 and "25,000 samples x 12 channels" in p.stdout
    again = _cli("lfp", str(out), "--session", sid, "--window", "200", "220")
    assert again.returncode == 0 and again.stdout.count("skipped") == 2
    copy = spikeprep.open_session(out, s.ecephys_session_id)
    for pid in copy.probes.index:
        original = s.get_lfp(pid).sel(time=slice(200, 219.9995))
        stored = copy.get_lfp(pid)
        assert stored.name == "LFP" and stored.sizes["time"] == original.sizes["time"] == 25000
        np.testing.assert_array_equal(stored.values, original.values)  # masked the same way (probe B's interval)
        np.testing.assert_array_equal(copy.get_current_source_density(pid).values,
                                      s.get_current_source_density(pid).values)
    assert verify_out(out) == ([], 1)
    store = copy.folder.lfp_store(copy.probes.index[0])
    shutil.rmtree(store / "time")
    (store / ".zmetadata").unlink()
    problems, _ = verify_out(out)
    assert len(problems) == 1 and str(store) in problems[0]
    bad = _cli("lfp", str(out), "--session", sid, "--probe", "12")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        f"spikeprep: session {sid}: no probe 12; its probes are {', '.join(map(str, copy.probes.index))}"]
    assert _cli("lfp", str(out), "--session", sid, "--window", "5", "1").returncode == 2


def test_lfp_command_streams_from_the_bucket(synthetic, tmp_path: Path) -> None:
    folder, s = synthetic
    out = tmp_path / "out"
    shutil.copytree(s.folder.out, out, ignore=shutil.ignore_patterns("*.lock"))
    served = tmp_path / "bucket"
    shutil.copytree(folder, served / folder.name)
    pid = int(s.probes.index[1])
    with Bucket(served) as bucket:
        p = _cli("lfp", str(out), "--session", str(s.ecephys_session_id), "--probe", str(pid), "--window", "100",
                 "101", "--stream", "--base-url", bucket.url, "--cache", str(tmp_path / "cache"))
        assert p.returncode == 0, p.stderr
        size = (served / folder.name / f"probe_{pid}_lfp.nwb").stat().st_size
        assert 0 < bucket.sent[f"/{folder.name}/probe_{pid}_lfp.nwb"] < 0.2 * size
    copy = spikeprep.open_session(out, s.ecephys_session_id)
    np.testing.assert_array_equal(copy.get_lfp(pid).values, s.get_lfp(pid).sel(time=slice(100, 100.9995)).values)


def test_the_bucket_serves_probe_files_and_the_table_lists_them(tmp_path: Path) -> None:
    from spikeprep.io.catalog import build_session_table
    from spikeprep.synthetic import write_bucket

    specs = [SynthSpec(n_units=10, duration=30.0, n_probes=2, seed=41, lfp=True, lfp_channels=4),
             SynthSpec(n_units=10, duration=30.0, n_probes=1, seed=42)]
    root = write_bucket(tmp_path / "bucket", specs)
    table = build_session_table(root)
    with_lfp = table.loc[specs[0].sid, "lfp_probe_ids"]
    assert len(with_lfp) == 2 and table.loc[specs[1].sid, "lfp_probe_ids"] == []
    for pid in with_lfp:
        assert (root / f"session_{specs[0].sid}" / f"probe_{pid}_lfp.nwb").exists()
    p = _cli("sessions", "--cache", str(root), "--base-url", "http://127.0.0.1:9/", "--offline", "--csv")
    assert p.returncode == 0 and "lfp_probe_ids" in p.stdout.splitlines()[0]


def test_a_streamed_file_that_changes_before_a_timestamp_search_is_one_line(synthetic, tmp_path: Path) -> None:
    folder, s = synthetic
    served = tmp_path / "served"
    shutil.copytree(folder, served)
    pid = int(s.probes.index[0])
    session = spikeprep.open_session(s.folder.out, s.ecephys_session_id)
    with Bucket(served) as bucket:
        session.set_lfp_path(pid, f"{bucket.url}probe_{pid}_lfp.nwb")
        session.lfp_cache = tmp_path / "cache"
        lazy = session.get_lfp(pid)
        (served / f"probe_{pid}_lfp.nwb").touch()  # replaced: its validators change
        with pytest.raises(SpikeprepError) as caught:
            lazy.sel(time=slice(250.0, 251.0))  # searches the timestamps in the file
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and f"probe_{pid}_lfp.nwb: LFP timestamps:" in message
