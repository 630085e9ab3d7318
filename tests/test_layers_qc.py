"""Layers on hand-built geometries; ISI metrics on hand-computed trains; Allen's filter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spikeprep.core.anatomy import add_layers, layer_of_depth
from spikeprep.core.model import SpikeTrains
from spikeprep.export.qc import is_rs, isi_metrics, notebook_selection, passes_allen_qc, session_summary
from spikeprep.io.nwb import read_session

from .conftest import REFERENCE_NAMES, reference_dir, reference_nwb


def _geometry() -> tuple[pd.DataFrame, pd.DataFrame]:
    # probe 1: VISp channels from 3000 (surface) down to 2160; below it CA1; above it air
    vpos = np.arange(20, 3841, 20)
    region = np.where(vpos > 3000, None, np.where(vpos >= 2160, "VISp", "CA1"))
    channels = pd.DataFrame({"probe_id": 1, "probe_vertical_position": vpos,
                             "region": pd.array(region, dtype="string")})
    # probe 2 has VISp too, with another surface: per-probe spans must not mix
    ch2 = pd.DataFrame({"probe_id": 2, "probe_vertical_position": vpos,
                        "region": pd.array(np.where((vpos <= 2000) & (vpos >= 1000), "VISp", "LP"), dtype="string")})
    channels = pd.concat([channels, ch2], ignore_index=True)
    units = pd.DataFrame({"probe_id": [1, 1, 1, 1, 1, 1, 2, 1],
                          "region": pd.array(["VISp", "VISp", "VISp", "VISp", "VISp", "CA1", "VISp", None], dtype="string"),
                          "probe_vertical_position": [3000, 2920, 2700, 2540, 2160, 1000, 2000, 3500]},
                         index=pd.Index(range(8), name="unit_id"))
    return units, channels


def test_layers_on_a_hand_built_geometry() -> None:
    units, channels = _geometry()
    out = add_layers(units, channels)
    thickness = 3000 - 2160 + 20  # 860
    np.testing.assert_allclose(out["cortical_depth_um"][:5], [0, 80, 300, 460, 840])
    np.testing.assert_allclose(out["cortical_depth_norm"][:5], np.array([0, 80, 300, 460, 840]) / thickness)
    # scaled to 850: 0, 79.1, 296.5, 454.7, 830.2
    assert list(out["layer"][:5]) == ["L1", "L1", "L2/3", "L5", "L6"]
    assert out["cortical_depth_um"][6] == 0 and out["layer"][6] == "L1"  # probe 2's own surface
    assert out["layer"][5:6].isna().all() and np.isnan(out["cortical_depth_um"][5])
    assert out["layer"][7:].isna().all()


def test_layer_boundaries() -> None:
    d = np.array([0, 99.9, 100, 309.9, 310, 429.9, 430, 649.9, 650, 849]) / 850
    assert list(layer_of_depth(d)) == ["L1", "L1", "L2/3", "L2/3", "L4", "L4", "L5", "L5", "L6", "L6"]
    assert layer_of_depth(np.array([np.nan]))[0] is None


def test_isi_metrics_hand_computed() -> None:
    regular = np.arange(100) * 0.1                       # 99 ISIs of 100 ms
    k_short = regular.copy()
    k_short[[10, 40, 70]] = k_short[[9, 39, 69]] + 0.003  # 3 ISIs of 3 ms (and 3 of 97 ms)
    burst = np.array([0.0, 0.004, 0.008, 1.0, 1.0049, 2.0])
    trains = {1: regular, 2: np.sort(k_short), 3: burst, 4: [], 5: [1.0], 6: [1.0, 1.004]}
    m = isi_metrics(SpikeTrains.from_dict(trains))
    assert m.loc[1, "isi_5ms_pct"] == 0.0
    assert m.loc[2, "isi_5ms_pct"] == pytest.approx(100 * 3 / 99)
    assert m.loc[3, "isi_5ms_pct"] == pytest.approx(100 * 3 / 5)
    assert np.isnan(m.loc[4, "isi_5ms_pct"]) and np.isnan(m.loc[5, "isi_5ms_pct"])
    assert m.loc[6, "isi_5ms_pct"] == 100.0
    assert list(m["n_spikes"]) == [100, 100, 6, 0, 1, 2]
    assert isi_metrics(SpikeTrains.from_dict(trains), threshold_ms=3.5).loc[2, "isi_5ms_pct"] == pytest.approx(100 * 3 / 99)


def _hill_direct(train: np.ndarray, t_min: float, t_max: float, thr: float = 0.0015, min_isi: float = 0.000166) -> float:
    """ecephys_spike_sorting's isi_violations, written out as it is there."""
    isis = np.diff(train)
    train = np.delete(train, np.where(isis <= min_isi)[0] + 1)
    isis = np.diff(train)
    n = len(train)
    violation_rate = np.sum(isis < thr) / (2 * n * (thr - min_isi))
    return violation_rate / (n / (t_max - t_min))


def test_hill_matches_a_direct_implementation() -> None:
    rng = np.random.default_rng(1)
    trains = {}
    for u in range(20):
        t = np.sort(rng.uniform(0, 100, 400))
        t = np.sort(np.r_[t, t[:5] + 0.0001, t[5:12] + 0.001])  # duplicates and violations
        trains[u] = t
    s = SpikeTrains.from_dict(trains)
    m = isi_metrics(s)
    t_min, t_max = s.times.min(), s.times.max()
    expected = [_hill_direct(trains[u], t_min, t_max) for u in range(20)]
    np.testing.assert_allclose(m["isi_violations_recomputed"], expected, rtol=1e-12)


@pytest.mark.parametrize("name", REFERENCE_NAMES)
def test_hill_agrees_with_the_files_column(name: str) -> None:
    """Within 0.1 %: the files used the recording length for T, we use first-to-last spike."""
    s = read_session(reference_nwb(name))
    m = isi_metrics(s.spikes)
    f = s.units["isi_violations"]
    np.testing.assert_allclose(m["isi_violations_recomputed"], f, rtol=1e-3, atol=1e-12)
    assert (m["isi_violations_recomputed"] > 0).sum() == (f > 0).sum() > 0


@pytest.mark.parametrize("name", REFERENCE_NAMES)
@pytest.mark.parametrize("view", ["sdk_defaults", "inf_metrics"])
def test_allen_filter_selects_what_allensdk_keeps(name: str, view: str) -> None:
    s = read_session(reference_nwb(name))
    kept = set(pd.read_csv(reference_dir(name) / view / "units.csv", index_col="unit_id").index)
    if view == "sdk_defaults":
        flag = passes_allen_qc(s.units)
    else:
        flag = passes_allen_qc(s.units, amplitude_cutoff_max=np.inf, presence_ratio_min=-np.inf,
                               isi_violations_max=np.inf)
    assert set(s.units.index[flag.to_numpy()]) == kept


def test_rs_and_selection() -> None:
    units = pd.DataFrame({"waveform_duration": [0.3, 0.41, np.nan, 0.4, 0.9], "snr": [3, 3, 3, 3, 2],
                          "region": pd.array(["VISp", "VISl", "VISp", "VISp", None], dtype="string")})
    units["is_rs"] = is_rs(units["waveform_duration"])
    assert list(units["is_rs"]) == [False, True, False, False, True]
    assert list(notebook_selection(units)) == [False, True, False, False, False]


def test_session_summary_against_pandas() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"session_id": rng.integers(0, 3, 200), "selected": rng.random(200) < 0.6,
                       "isi_5ms_pct": rng.random(200) * 5})
    out = session_summary(df).set_index("session_id")
    for sid, g in df[df.selected].groupby("session_id"):
        assert out.loc[sid, "mean_pct"] == pytest.approx(np.mean(g.isi_5ms_pct))
        assert out.loc[sid, "std_pct"] == pytest.approx(np.std(g.isi_5ms_pct))
        assert out.loc[sid, "n_units"] == len(g)


def test_llobet_contamination_hand_computed() -> None:
    # one unit: 1000 spikes over 100 s, 10 ISIs of 0.5 ms; t_r = 1.5 ms, min_isi 0
    base = np.linspace(0.0, 100.0, 990)
    t = np.sort(np.r_[base, base[50:950:90] + 0.0005])
    m = isi_metrics(SpikeTrains.from_dict({1: t}), min_isi_ms=0.0)
    n_v, n, duration, t_r = 10, 1000, 100.0, 0.0015
    assert m.loc[1, "isi_violations_recomputed"] == pytest.approx(n_v * duration / (2 * n**2 * t_r))
    assert m.loc[1, "rp_contamination"] == pytest.approx(1 - np.sqrt(1 - n_v * duration / (n**2 * t_r)))
    from spikeprep.export.qc import llobet_contamination

    assert np.isnan(llobet_contamination(np.array([0.6]))[0]) and llobet_contamination(np.array([0.0]))[0] == 0.0


def test_synthetic_isi_violations_column_is_the_allen_formula(tmp_path) -> None:
    """The generator's column follows ecephys_spike_sorting: duplicates (ISI <= 0.166 ms) dropped
    first, then the Hill ratio over the kept spikes, T from the first to the last spike."""
    from spikeprep.synthetic import SynthSpec, write_session

    s = read_session(write_session(tmp_path / "h.nwb", SynthSpec(n_units=80, duration=200.0, n_probes=1, seed=17)))
    m = isi_metrics(s.spikes)
    short = (np.diff(s.spikes.times) <= 0.000166) & (np.diff(np.repeat(np.arange(s.spikes.n_units),
                                                                         s.spikes.n_spikes)) == 0)
    assert short.any()  # the generator does make ISIs that short
    np.testing.assert_allclose(s.units["isi_violations"], m["isi_violations_recomputed"], rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("block_spikes", [None, 997])
def test_isi_counted_during_the_file_scan_equals_isi_metrics(small_nwb, tmp_path, monkeypatch,
                                                            block_spikes: int | None) -> None:
    """The export counts ISIs while SpikeReader checks the file (one read fewer): same table,
    also for a file whose units need repair (unsorted and negative times); with small
    blocks, the check's blocks are shared by two threads (the tables' joins it)."""
    import h5py
    import shutil

    from spikeprep.export.qc import IsiCounter
    from spikeprep.io import nwb
    from spikeprep.io.nwb import streamed_session

    if block_spikes:
        monkeypatch.setattr(nwb, "_CHUNK", block_spikes)
    broken = tmp_path / "broken.nwb"
    shutil.copy(small_nwb, broken)
    with h5py.File(broken, "r+") as f:
        t = f["units/spike_times"]
        middle = int(f["units/spike_times_index"][60]) + 5
        for k in (3, middle):
            t[k], t[k + 1] = t[k + 1], t[k]
        t[0] = -1.0
    for path in (small_nwb, broken):
        counter = IsiCounter(threshold_ms=3.0)
        with pytest.warns(UserWarning) if path == broken else _nothing(), \
                streamed_session(path, visit=counter.add) as s:
            got = counter.metrics(s.spikes.unit_ids)
            offsets, t_max = s.spikes.offsets.copy(), s.spikes.t_max
        with pytest.warns(UserWarning) if path == broken else _nothing():
            spikes = read_session(path).spikes
        pd.testing.assert_frame_equal(got, isi_metrics(spikes, threshold_ms=3.0), check_exact=True)
        np.testing.assert_array_equal(offsets, spikes.offsets)
        assert t_max == spikes.t_max


def _nothing():
    import contextlib

    return contextlib.nullcontext()


@pytest.mark.parametrize("enabled", [True, False])
def test_paused_gc_holds_the_collector_and_restores_it(enabled: bool) -> None:
    import gc

    from spikeprep.core.runtime import paused_gc

    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        with pytest.raises(RuntimeError), paused_gc():
            assert not gc.isenabled()
            raise RuntimeError  # restored on the way out of an error too
        assert gc.isenabled() == enabled
    finally:
        gc.enable() if was else gc.disable()
