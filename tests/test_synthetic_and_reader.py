"""The synthetic generator and the reader on synthetic files: layouts, quirks, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from spikeprep.core.errors import NWBFormatError
from spikeprep.core.model import SpikeTrains
from spikeprep.io.nwb import SpikeReader, read_session, streamed_session
from spikeprep.synthetic import VISUAL_AREAS, write_session


def test_layouts_read_to_the_same_session(layout_files: dict[str, Path]) -> None:
    sessions = {k: read_session(p) for k, p in layout_files.items()}
    ref = sessions["2020"]
    for layout, s in sessions.items():
        assert s.metadata["layout"] == layout
        np.testing.assert_array_equal(s.spikes.times, ref.spikes.times)
        np.testing.assert_array_equal(s.spikes.offsets, ref.spikes.offsets)
        common = [c for c in ref.units.columns if c != "waveform_halfwidth"]
        pd.testing.assert_frame_equal(s.units[common], ref.units[common])
        pd.testing.assert_frame_equal(s.running, ref.running)
        cols = [c for c in ref.stimulus.columns if c != "stimulus_index"]
        pd.testing.assert_frame_equal(s.stimulus[cols], ref.stimulus[cols])
    assert "waveform_halfwidth" in ref.units and "waveform_halfwidth" not in sessions["sdk"].units


def test_deterministic_per_seed(tmp_path: Path) -> None:
    a = read_session(write_session(tmp_path / "a.nwb", n_units=30, duration=60.0, n_probes=1, seed=3))
    b = read_session(write_session(tmp_path / "b.nwb", n_units=30, duration=60.0, n_probes=1, seed=3))
    c = read_session(write_session(tmp_path / "c.nwb", n_units=30, duration=60.0, n_probes=1, seed=4))
    np.testing.assert_array_equal(a.spikes.times, b.spikes.times)
    pd.testing.assert_frame_equal(a.units, b.units)
    assert not np.array_equal(a.spikes.n_spikes, c.spikes.n_spikes)


def test_synthetic_has_the_quirks_users_meet(small_nwb: Path) -> None:
    s = read_session(small_nwb)
    n = s.spikes.n_spikes
    assert (n == 0).any() and (n == 1).any()
    assert set(s.units["quality"]) == {"good", "noise"}
    assert s.units["region"].isna().any(), "some units sit outside the brain"
    assert set(VISUAL_AREAS[:3]) <= set(s.units["region"].dropna())
    assert (~s.channels["valid_data"]).any()
    assert len(s.channels) == 3 * 384
    isi = np.concatenate([np.diff(t) for t in s.spikes])
    assert (isi < 0.0015).any(), "refractory violations"
    assert ((isi > 0.003) & (isi < 0.006)).sum() > 100, "bursts"
    with h5py.File(small_nwb) as f:
        assert "stimulus_block" not in f["intervals/spontaneous_presentations"]
        assert "stimulus_index" not in f["intervals/spontaneous_presentations"]
        assert f["intervals/gabors_presentations/spatial_frequency"].dtype.kind == "O"
        assert f["intervals/drifting_gratings_presentations/spatial_frequency"].dtype.kind == "f"
        assert b"N/A" in f["intervals/static_gratings_presentations/phase"][()]
    assert s.stimulus["stimulus_block"].isna().sum() == (s.stimulus["stimulus_name"] == "spontaneous").sum()
    assert s.stimulus["start_time"].is_monotonic_increasing
    assert s.stimulus["is_invalid"].any()
    assert s.stimulus["spatial_frequency"].dtype == float
    assert len(s.invalid_times) == 2
    assert (s.running["end_time"] > s.running["start_time"]).all()


def test_isi_violations_column_is_the_hill_formula(small_nwb: Path) -> None:
    s = read_session(small_nwb)
    t_min = min(t[0] for t in s.spikes if len(t))
    t_max = max(t[-1] for t in s.spikes if len(t))
    for i, uid in enumerate(s.spikes.unit_ids):
        t = s.spikes[i]
        if len(t) < 2:
            continue
        # ecephys_spike_sorting: drop the spikes <= 0.166 ms after the previous one, then the Hill ratio
        kept = np.delete(t, np.where(np.diff(t) <= 0.000166)[0] + 1)
        expected = np.sum(np.diff(kept) < 0.0015) * (t_max - t_min) / (2 * len(kept) ** 2 * (0.0015 - 0.000166))
        assert s.units.loc[uid, "isi_violations"] == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- bad files
def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


def _expect_error(path: Path, fragment: str) -> None:
    with pytest.raises(NWBFormatError) as info:
        read_session(path)
    msg = str(info.value)
    assert str(path) in msg and fragment in msg, msg
    assert "\n" not in msg


def test_not_hdf5(tmp_path: Path) -> None:
    p = tmp_path / "text.nwb"
    p.write_text("hello")
    _expect_error(p, "not a readable HDF5 file")


def test_truncated(small_nwb: Path, tmp_path: Path) -> None:
    p = tmp_path / "cut.nwb"
    p.write_bytes(small_nwb.read_bytes()[: small_nwb.stat().st_size // 2])
    with pytest.raises(NWBFormatError) as info:
        read_session(p)
    assert str(p) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.nwb", "no such file")


@pytest.mark.parametrize("group, fragment", [("units", "missing /units"),
                                             ("general/extracellular_ephys/electrodes", "electrodes")])
def test_missing_tables(small_nwb: Path, tmp_path: Path, group: str, fragment: str) -> None:
    p = _copy(small_nwb, tmp_path / "m.nwb")
    with h5py.File(p, "a") as f:
        del f[group]
    _expect_error(p, fragment)


def _edit(p: Path, name: str, fn) -> None:
    with h5py.File(p, "a") as f:
        data = fn(f[name][()])
        del f[name]
        f[name] = data


def test_index_not_monotonic(small_nwb: Path, tmp_path: Path) -> None:
    p = _copy(small_nwb, tmp_path / "i.nwb")
    _edit(p, "units/spike_times_index", lambda x: np.r_[x[:5], x[5:][::-1]] if len(x) > 6 else x)
    _expect_error(p, "not monotonic")


def test_index_uint16_wraparound(small_nwb: Path, tmp_path: Path) -> None:
    """AllenSDK #2152: an index written as uint16 wraps above 65,535 spikes."""
    p = _copy(small_nwb, tmp_path / "u16.nwb")
    _edit(p, "units/spike_times_index", lambda x: x.astype(np.uint16))
    _expect_error(p, "spike_times_index")


def test_index_past_the_data(small_nwb: Path, tmp_path: Path) -> None:
    p = _copy(small_nwb, tmp_path / "past.nwb")
    _edit(p, "units/spike_times_index", lambda x: np.r_[x[:-1], x[-1] + 7])
    _expect_error(p, "ends at")


def test_peak_channel_absent(small_nwb: Path, tmp_path: Path) -> None:
    p = _copy(small_nwb, tmp_path / "pc.nwb")
    _edit(p, "units/peak_channel_id", lambda x: np.r_[x[:-1], 12345])
    _expect_error(p, "absent from the electrodes")


def test_nan_spike_times(small_nwb: Path, tmp_path: Path) -> None:
    p = _copy(small_nwb, tmp_path / "nan.nwb")
    _edit(p, "units/spike_times", lambda x: np.r_[x[:10], np.nan, x[11:]])
    _expect_error(p, "NaN")


def _scrambled(src: Path, dst: Path, u: int) -> Path:
    """A copy of ``src`` where unit ``u``'s spikes are reversed and its largest one negative."""
    p = _copy(src, dst)
    with h5py.File(p, "r") as f:
        a, b = (int(f["units/spike_times_index"][i]) if i >= 0 else 0 for i in (u - 1, u))

    def scramble(x: np.ndarray) -> np.ndarray:
        x = x.copy()
        x[a:b] = x[a:b][::-1]
        x[a] = -1.0
        return x

    _edit(p, "units/spike_times", scramble)
    return p


def test_unsorted_and_negative_are_repaired_with_a_warning(small_nwb: Path, tmp_path: Path) -> None:
    clean = read_session(small_nwb)
    u = int(np.argmax(clean.spikes.n_spikes))
    p = _scrambled(small_nwb, tmp_path / "uns.nwb", u)
    with pytest.warns(UserWarning, match="unsorted"):
        s = read_session(p)
    assert any("negative" in w for w in s.metadata["read_warnings"])
    assert s.spikes.n_spikes[u] == clean.spikes.n_spikes[u] - 1
    np.testing.assert_array_equal(s.spikes[u], clean.spikes[u][:-1])
    for i in range(s.spikes.n_units):
        if i != u:
            np.testing.assert_array_equal(s.spikes[i], clean.spikes[i])


def _assert_same_trains(x: SpikeTrains, y: SpikeTrains) -> None:
    np.testing.assert_array_equal(x.times, y.times)
    np.testing.assert_array_equal(x.offsets, y.offsets)
    np.testing.assert_array_equal(x.unit_ids, y.unit_ids)


@pytest.mark.parametrize("max_spikes", [1, 5_000, 1 << 23])
def test_spike_reader_blocks_equal_read_session(small_nwb: Path, max_spikes: int) -> None:
    spikes = read_session(small_nwb).spikes
    with SpikeReader(small_nwb) as reader:
        assert reader.t_max == spikes.t_max and reader.n_units == spikes.n_units and reader.notes == []
        assert reader.blocks(max_spikes) == spikes.blocks(max_spikes)
        for a, b in reader.blocks(max_spikes):
            _assert_same_trains(reader.block(a, b), spikes.block(a, b))


def test_spike_reader_repairs_like_read_session(small_nwb: Path, tmp_path: Path) -> None:
    u = int(np.argmax(read_session(small_nwb).spikes.n_spikes))
    p = _scrambled(small_nwb, tmp_path / "uns.nwb", u)
    with pytest.warns(UserWarning, match="unsorted"):
        s = read_session(p)
    with pytest.warns(UserWarning, match="unsorted"), SpikeReader(p) as reader:
        assert reader.notes == s.metadata["read_warnings"] and reader.t_max == s.spikes.t_max
        for a, b in [(0, reader.n_units), (u, u + 1), (max(u - 3, 0), u + 2)]:
            _assert_same_trains(reader.block(a, b), s.spikes.block(a, b))


def test_spike_reader_rejects_nan_at_open_and_closes_the_file(small_nwb: Path, tmp_path: Path) -> None:
    p = _copy(small_nwb, tmp_path / "nan.nwb")
    _edit(p, "units/spike_times", lambda x: np.r_[x[:10], np.nan, x[11:]])
    with pytest.raises(NWBFormatError, match="NaN") as info:
        SpikeReader(p)
    assert str(p) in str(info.value)
    with h5py.File(p, "a"):  # no handle left open
        pass


def test_negative_times_with_an_empty_last_unit(small_nwb: Path, tmp_path: Path) -> None:
    """Dropping negative times when the last unit has no spikes (np.add.reduceat failed there)."""
    from spikeprep.export.readers import open_spike_trains
    from spikeprep.io.nwb import streamed_session
    from spikeprep.pipeline import export_file

    p = _copy(small_nwb, tmp_path / "neg.nwb")
    with h5py.File(p, "r") as f:
        last_start = int(f["units/spike_times_index"][-2])
    _edit(p, "units/spike_times", lambda x: np.r_[-2.0, x[1:last_start]])
    _edit(p, "units/spike_times_index", lambda ix: np.minimum(ix, last_start))
    with pytest.warns(UserWarning, match="dropped 1 negative"):
        s = read_session(p)
    assert s.spikes.n_spikes[-1] == 0 and len(s.spikes.times) == last_start - 1 and (s.spikes.times >= 0).all()
    with pytest.warns(UserWarning, match="dropped 1 negative"), streamed_session(p) as streamed:
        np.testing.assert_array_equal(streamed.spikes.offsets, s.spikes.offsets)
        _assert_same_trains(streamed.spikes.block(0, streamed.spikes.n_units), s.spikes)
    with pytest.warns(UserWarning):
        r = export_file(p, tmp_path / "out")
    assert r.ok, r.message
    _assert_same_trains(open_spike_trains(tmp_path / "out", r.session_id), s.spikes)


@pytest.mark.parametrize("block_spikes", [None, 997])
@pytest.mark.parametrize("nan_spikes", [True, False])
def test_streamed_read_reports_the_files_first_error(small_nwb: Path, tmp_path: Path, nan_spikes: bool,
                                                     block_spikes: int | None, monkeypatch) -> None:
    """The spike check runs on a thread beside the other tables' reading (which then
    joins it, with small blocks): with both broken, the spike times' error comes first,
    as in the file's order; with only a table broken, its error; either way the file is
    closed."""
    from spikeprep.io import nwb

    if block_spikes:
        monkeypatch.setattr(nwb, "_CHUNK", block_spikes)
    p = _copy(small_nwb, tmp_path / "broken.nwb")
    with h5py.File(p, "a") as f:
        table = next(k for k in f["intervals"] if k.endswith("_presentations"))
        del f[f"intervals/{table}/start_time"]
    if nan_spikes:  # near the start and near the end: the first is reported
        _edit(p, "units/spike_times", lambda x: np.r_[x[:10], np.nan, x[11:-30], np.inf, x[-29:]])
    with pytest.raises(NWBFormatError) as info:
        with streamed_session(p):
            pass
    msg = str(info.value)
    assert str(p) in msg and "\n" not in msg
    assert ("NaN" in msg) if nan_spikes else ("stimulus tables" in msg), msg
    with h5py.File(p, "a"):  # no handle left open
        pass
