"""Counts, kernel and rates against direct numpy/scipy, the notebook, and chunking."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.ndimage import convolve1d

from spikeprep.core.model import SpikeTrains
from spikeprep.io.nwb import read_session
from spikeprep.rates.binning import Grid, Kernel, bin_counts, count_dtype, gaussian_kernel, make_grid, smooth_counts
from spikeprep.rates.store import firing_rates, lazy_rates
from spikeprep.rates.writer import write_counts
from spikeprep.synthetic import SynthSpec, write_session

from .notebook_reference import get_firing_rates


def direct_counts(trains: dict, fs: float, n_bins: int) -> np.ndarray:
    out = np.zeros((n_bins, len(trains)), dtype=np.int64)
    for j, t in enumerate(trains.values()):
        for b in np.floor(np.asarray(t) * fs).astype(int):
            if 0 <= b < n_bins:
                out[b, j] += 1
    return out


def test_kernel_is_the_notebooks() -> None:
    np.testing.assert_array_equal(gaussian_kernel(), np.exp(-(np.arange(11) - 5) ** 2 / 4))
    assert Kernel.make(sigma_ms=10, bin_size=0.005).sigma_bins == 2.0
    assert Kernel.make(sigma_bins=2.0, half_width_sigmas=3).taps == 13
    with pytest.raises(ValueError):
        Kernel(taps=10)


def test_hand_computed_counts_and_edges() -> None:
    trains = {7: [0.0, 0.004999, 0.005, 0.0099999], 8: [], 9: [1.0, 1.0, 1.0025]}
    s = SpikeTrains.from_dict(trains)
    g = make_grid(s)
    assert g.t_stop == 2.005 and g.n_bins == 401  # last spike + 1 s, up to the next bin edge
    c = bin_counts(s, g)
    assert c.dtype == np.uint8
    assert c[:, 0].tolist()[:3] == [2, 2, 0]
    assert c[:, 1].sum() == 0
    assert c[200, 2] == 3 and c[:, 2].sum() == 3
    # last bin and bin edges
    s2 = SpikeTrains.from_dict({1: [0.995, 0.9999999]})
    g2 = Grid(0.005, 0.0, 1.0)
    assert bin_counts(s2, g2)[-1, 0] == 2
    # spikes outside the grid are not counted
    s3 = SpikeTrains.from_dict({1: [-0.001, 0.5, 1.0, 1.2]})
    assert bin_counts(s3, g2).sum() == 1


def test_counts_type_grows_with_the_data() -> None:
    s = SpikeTrains.from_dict({1: np.full(300, 0.0012), 2: [0.5]})
    c = bin_counts(s, make_grid(s))
    assert c.dtype == np.uint16 and c[0, 0] == 300
    assert count_dtype(255) == np.uint8 and count_dtype(70000) == np.uint32


def test_counts_match_direct_and_are_conserved(small_nwb: Path) -> None:
    s = read_session(small_nwb)
    g = make_grid(s.spikes)
    c = bin_counts(s.spikes, g)
    np.testing.assert_array_equal(c, direct_counts(s.spikes.to_dict(), g.fs, g.n_bins))
    assert c.sum(dtype=np.int64) == len(s.spikes.times)
    np.testing.assert_array_equal(c.sum(axis=0, dtype=np.int64), s.spikes.n_spikes)


def test_rates_match_scipy_convolution(small_nwb: Path) -> None:
    s = read_session(small_nwb)
    g = make_grid(s.spikes)
    c = bin_counts(s.spikes, g).astype(float)
    w = np.exp(-(np.arange(11) - 5) ** 2 / 4)
    expected = np.stack([np.convolve(c[:, j], w, mode="same") for j in range(c.shape[1])], axis=1) * 200 / w.sum()
    fr = firing_rates(s.spikes, dtype=np.float64)
    np.testing.assert_allclose(fr.values, expected, rtol=1e-12, atol=1e-9)
    assert fr.dims == ("time", "unit_id") and fr.attrs["bin_size_s"] == 0.005
    # mass: Σ rate · bin = Σ over spikes of the kernel's share inside the grid
    bins = np.floor(s.spikes.times * 200).astype(int)
    share = np.array([w[[k for k in range(11) if 0 <= b + 5 - k < g.n_bins]].sum() for b in bins]) / w.sum()
    assert (share < 1).any()
    assert fr.values.sum() * g.bin_size == pytest.approx(share.sum(), rel=1e-9)


def test_parity_with_the_notebook(small_nwb: Path) -> None:
    s = read_session(small_nwb)
    trains = s.spikes.to_dict()
    nb = get_firing_rates(trains).T  # (time, unit)
    ours = firing_rates(s.spikes, dtype=np.float64).values
    g = make_grid(s.spikes)
    counts = bin_counts(s.spikes, g).astype(np.int64)
    binary = np.minimum(counts, 1)
    w = gaussian_kernel()
    shared = convolve1d((counts > 1).astype(float), np.ones(11), axis=0, mode="constant") > 0
    correct = ~shared & (ours < 256)
    assert correct.mean() > 0.99
    np.testing.assert_array_equal(np.floor(ours[correct]), nb[correct])
    # elsewhere the notebook's error is exactly the lost spikes (then its floor and wrap)
    lost = counts - binary
    lost_rate = convolve1d(lost.astype(float), w * 200 / w.sum(), axis=0, mode="constant")
    nb_exact = ours - lost_rate
    assert shared.any()
    np.testing.assert_array_equal(nb[shared], np.floor(nb_exact[shared] + 1e-9).astype(np.int64) % 256)


def test_edge_correction() -> None:
    s = SpikeTrains.from_dict({1: np.arange(0, 10, 0.005) + 0.001})  # one spike in every bin
    flat = firing_rates(s, t_stop=10.0, kernel=Kernel(edge_correction=True), dtype=np.float64).values[:, 0]
    np.testing.assert_allclose(flat, 200.0, rtol=1e-12)
    plain = firing_rates(s, t_stop=10.0, dtype=np.float64).values[:, 0]
    assert plain[0] < 200 and plain[100] == pytest.approx(200.0)


@pytest.fixture(scope="module")
def store(small_nwb: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    s = read_session(small_nwb)
    path = tmp_path_factory.mktemp("z") / "binned.zarr"
    info = write_counts(s.spikes, path, make_grid(s.spikes), chunks=(7000, 16))
    return path, s, info


def test_store_is_xarray_readable_and_exact(store) -> None:
    path, s, info = store
    ds = xr.open_zarr(path)
    assert ds["counts"].dims == ("time", "unit_id")
    assert ds["counts"].dtype == np.uint8
    assert {"bin_size_s", "t_start", "t_stop", "spikeprep_version"} <= set(ds.attrs)
    np.testing.assert_array_equal(ds["unit_id"].values, s.spikes.unit_ids)
    np.testing.assert_array_equal(ds["counts"].values, bin_counts(s.spikes, make_grid(s.spikes)))
    assert info["total"] == len(s.spikes.times) == int(ds["counts"].sum())


@pytest.mark.parametrize("chunks", [None, "auto", (1000, 7), (7000, 16), (50, 120), (24000, 1)])
@pytest.mark.parametrize("edge", [False, True])
def test_lazy_rates_identical_for_any_chunks(store, chunks, edge) -> None:
    path, s, _ = store
    kernel = Kernel(edge_correction=edge)
    whole = firing_rates(s.spikes, kernel=kernel).values
    lazy = lazy_rates(path, kernel, chunks=chunks)
    assert lazy.dtype == np.float32 and lazy.attrs["units"] == "Hz"
    assert (lazy.chunks is None) == (chunks is None)
    np.testing.assert_array_equal(lazy.values, whole)


@pytest.mark.parametrize("key", [np.s_[::7, 3], np.s_[5000:4000:-3, 10:2:-2], np.s_[100, :], np.s_[40:40, :],
                                 np.s_[-50:, -3:], np.s_[[3, 900, 20], [0, 5]]])
def test_lazy_indexing_of_any_kind_equals_the_whole(store, key) -> None:
    path, s, _ = store
    np.testing.assert_array_equal(lazy_rates(path)[key].values, firing_rates(s.spikes)[key].values)


def dense_reference(counts: np.ndarray, kernel: Kernel, dtype: type) -> np.ndarray:
    """The rates as shifted dense adds, taps in order, in the output's dtype (numpy only)."""
    w = (kernel.weights() * (200.0 / kernel.weights().sum())).astype(dtype)
    h, T = kernel.half, counts.shape[0]
    x = np.pad(counts.astype(dtype), ((h, h), (0, 0)))
    out = np.zeros(counts.shape, dtype)
    for k in range(kernel.taps):
        out += x[k : k + T] * w[k]
    return out


@pytest.mark.parametrize("count_type", [np.uint8, np.uint16, np.uint32])
@pytest.mark.parametrize("out_type", [np.float32, np.float64])
@pytest.mark.parametrize("density", [0.0, 0.02, 0.5, 1.0])
def test_compiled_smoothing_equals_dense_adds_bit_for_bit(count_type: type, out_type: type, density: float) -> None:
    rng = np.random.default_rng(3)
    counts = ((rng.random((5003, 9)) < density) * rng.integers(1, 300, (5003, 9))).astype(count_type)
    if count_type is np.uint8:
        counts = np.minimum(counts, 4).astype(np.uint8)
    for kernel in (Kernel(), Kernel.make(sigma_ms=20.0, taps=31)):
        got = smooth_counts(counts, kernel, 0.005, dtype=out_type)
        np.testing.assert_array_equal(got, dense_reference(counts, kernel, out_type))
        np.testing.assert_allclose(got, convolve1d(counts.astype(float), kernel.weights() * 200 / kernel.weights().sum(),
                                                   axis=0, mode="constant"), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("rows", [1, 5, 8, 37, 1000])
def test_pieces_cut_anywhere_give_the_same_bits(rows: int) -> None:
    """Counts cut into pieces of any length, held in buffer rows in any order, with the
    output block anywhere inside them: the same bits as one piece."""
    from spikeprep.rates.smoothing import Pieces, as_piece, smooth_into

    rng = np.random.default_rng(rows)
    counts = ((rng.random((2000, 6)) < 0.05) * rng.integers(1, 4, (2000, 6))).astype(np.uint8)
    w = (gaussian_kernel() * 200 / gaussian_kernel().sum()).astype(np.float32)
    whole = np.empty((2000, 6), np.float32, order="F")
    smooth_into(as_piece(counts), w, whole)
    n_pieces = -(-2000 // rows)
    stride = -(-rows * 6 // 8) * 8
    slots = rng.permutation(n_pieces + 2)  # spare rows, shuffled
    bufs = np.full((n_pieces + 2, stride), 99, np.uint8)  # garbage beyond each piece's cells
    for p in range(n_pieces):
        block = np.zeros((rows, 6), np.uint8)
        part = counts[p * rows : (p + 1) * rows]
        block[: len(part)] = part
        bufs[slots[p], : rows * 6] = block.T.reshape(-1)
    for t0, t1, u0 in [(0, 2000, 0), (3, 1999, 2), (700, 1300, 5), (1995, 2000, 1)]:
        out = np.empty((t1 - t0, 6 - u0), np.float32, order="F")
        smooth_into(Pieces(bufs, slots[:n_pieces], rows, -t0, max(-5, -t0), min(t1 - t0 + 5, 2000 - t0), u0), w, out)
        np.testing.assert_array_equal(out, whole[t0:t1, u0:])


def test_random_windows_match_scipy(store) -> None:
    """Windows unaligned to the stored chunks, at the grid's edges, against scipy on the
    whole counts matrix."""
    path, s, _ = store
    counts = bin_counts(s.spikes, make_grid(s.spikes)).astype(float)
    w = gaussian_kernel()
    expected = convolve1d(counts, w * 200 / w.sum(), axis=0, mode="constant")
    lazy = lazy_rates(path)
    n = counts.shape[0]
    rng = np.random.default_rng(11)
    windows = [(0, 17), (n - 23, n), (0, n)] + [tuple(sorted(rng.integers(0, n, 2))) for _ in range(12)]
    for t0, t1 in windows:
        u0, u1 = sorted(rng.integers(0, counts.shape[1] + 1, 2))
        got = lazy.isel(time=slice(t0, t1), unit_id=slice(u0, u1)).values
        np.testing.assert_allclose(got, expected[t0:t1, u0:u1], rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("window", [(0.0, 1.0), (33.3, 47.1), (230.0, 250.0)])
def test_any_window_read_equals_the_whole(store, window) -> None:
    path, s, _ = store
    whole = firing_rates(s.spikes)
    lazy = lazy_rates(path, chunks=(2000, 16))
    sel = dict(time=slice(*window))
    np.testing.assert_array_equal(lazy.sel(**sel).values, whole.sel(**sel).values)
    u = s.spikes.unit_ids[5]
    np.testing.assert_array_equal(lazy.sel(unit_id=u).values, whole.sel(unit_id=u).values)


def test_stored_rates_match(small_nwb: Path, tmp_path: Path) -> None:
    s = read_session(small_nwb)
    g = make_grid(s.spikes)
    write_counts(s.spikes, tmp_path / "b.zarr", g, rates_kernel=Kernel(), chunks=(5000, 32))
    stored = xr.open_zarr(tmp_path / "b.zarr")["rates"].values
    np.testing.assert_array_equal(stored, firing_rates(s.spikes).values)


def test_empty_units_and_smooth_shape() -> None:
    s = SpikeTrains.from_dict({1: [], 2: [], 3: [0.5]})
    fr = firing_rates(s)
    assert fr.shape == (300, 3) and float(fr[:, :2].sum()) == 0.0
    out = smooth_counts(np.zeros((4, 2), np.uint8), Kernel(), 0.005)
    assert out.shape == (4, 2) and out.dtype == np.float32


def test_store_streamed_from_the_file_equals_the_one_from_memory(small_nwb: Path, tmp_path: Path) -> None:
    from spikeprep.io.nwb import SpikeReader

    spikes = read_session(small_nwb).spikes
    mem = write_counts(spikes, tmp_path / "mem.zarr", make_grid(spikes), chunks=(7000, 16))
    with SpikeReader(small_nwb) as reader:
        streamed = write_counts(reader, tmp_path / "file.zarr", make_grid(reader), chunks=(7000, 16))
    assert streamed == mem and mem["total"] == len(spikes.times)
    a, b = xr.open_zarr(tmp_path / "mem.zarr"), xr.open_zarr(tmp_path / "file.zarr")
    xr.testing.assert_identical(a.compute(), b.compute())


def test_a_failing_source_leaves_no_store(tmp_path: Path) -> None:
    from spikeprep.core.errors import NWBFormatError

    class Corrupt(SpikeTrains):
        def block(self, a: int, b: int) -> SpikeTrains:
            if a > 0:
                raise NWBFormatError("x.nwb", "units/spike_times: truncated")
            return super().block(a, b)

    s = SpikeTrains.from_dict({u: np.sort(np.random.default_rng(u).uniform(0, 5, 50)) for u in range(10)})
    bad = Corrupt(s.times, s.offsets, s.unit_ids)
    with pytest.raises(NWBFormatError, match="truncated"):
        write_counts(bad, tmp_path / "b.zarr", make_grid(s), chunks=(300, 4))
    assert not (tmp_path / "b.zarr").exists()
    write_counts(s, tmp_path / "b.zarr", make_grid(s), chunks=(300, 4))
    with pytest.raises(FileExistsError):
        write_counts(s, tmp_path / "b.zarr", make_grid(s))
    assert (tmp_path / "b.zarr" / ".zgroup").exists()  # an existing store is left alone


def test_store_widens_the_type_when_a_bin_overflows_uint8(tmp_path: Path) -> None:
    s = SpikeTrains.from_dict({1: np.full(300, 0.0012), 2: [0.5, 0.7]})
    info = write_counts(s, tmp_path / "b.zarr", make_grid(s))
    c = xr.open_zarr(tmp_path / "b.zarr")["counts"]
    assert info["dtype"] == "uint16" and info["max_count"] == 300 and info["total"] == 302
    assert c.dtype == np.uint16 and int(c[0, 0]) == 300 and int(c.sum()) == 302


@pytest.mark.parametrize("factor", [2, 3, 4])  # 3 does not divide the stored chunk: read through Zarr
def test_coarser_bins_at_read_time(store, factor: int) -> None:
    import zarr

    from spikeprep.rates.chunks import CountsReader

    path, s, _ = store
    reader = CountsReader(path, zarr.open_group(str(path), mode="r")["counts"], factor)
    assert (reader.codec is not None) == (7000 % factor == 0)  # summed from decoded chunks, or through Zarr
    lazy = lazy_rates(path, bin_size=0.005 * factor, chunks=(3000, 16))
    assert lazy.attrs["bin_size_s"] == pytest.approx(0.005 * factor)
    direct = firing_rates(s.spikes, bin_size=0.005 * factor, t_stop=float(lazy.attrs["t_stop"]))
    assert direct.shape == lazy.shape
    np.testing.assert_array_equal(lazy.values, direct.values)
    with pytest.raises(ValueError, match="multiple"):
        lazy_rates(path, bin_size=0.0075)


@pytest.mark.parametrize("kw", [{}, {"edge_correction": True}, {"bin_size": 0.01}, {"sigma_ms": 20.0, "taps": 31}])
def test_whole_session_summaries_equal_the_materialised_rates(kw: dict, tmp_path: Path, synth_dir: Path) -> None:
    """rates_mean (exact, no convolution) and rates_summary (block by block) against the
    whole rate matrix smoothed at once."""
    import spikeprep
    from spikeprep.analysis.rate_summaries import rates_mean, rates_summary
    from spikeprep.pipeline import export_file

    nwb = synth_dir / "stats.nwb"
    if not nwb.exists():
        write_session(nwb, SynthSpec(n_units=50, duration=120.0, n_probes=1, seed=77))
    r = export_file(nwb, tmp_path)
    store = tmp_path / f"session_{r.session_id}" / "binned.zarr"
    shutil.rmtree(store)  # the same counts in chunks that cut the grid unevenly
    spikes = read_session(nwb).spikes
    write_counts(spikes, store, make_grid(spikes), chunks=(7000, 16))
    full = spikeprep.open_rates(tmp_path, r.session_id, **kw).values.astype(np.float64)
    mean = rates_mean(tmp_path, r.session_id, **kw)
    np.testing.assert_allclose(mean.to_numpy(), full.mean(axis=0), rtol=1e-6, atol=1e-9)
    summary = rates_summary(tmp_path, r.session_id, **kw)
    assert list(summary.index) == list(mean.index)
    np.testing.assert_allclose(summary["mean"], full.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(summary["std"], full.std(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(summary["max"], full.max(axis=0))


@pytest.mark.parametrize("layout", [{"zarr_format": 3}, {"zarr_format": 2, "order": "C"}])
def test_stores_of_another_layout_are_read_through_zarr_with_the_same_bits(store, layout: dict, tmp_path: Path) -> None:
    """Chunk files are decoded directly only in our own layout (format 2, Fortran order);
    any other store, e.g. one written by another tool in format 3, is read through Zarr."""
    import zarr

    from spikeprep.rates.chunks import CountsReader

    path, s, _ = store
    src = zarr.open_group(str(path), mode="r")
    assert CountsReader(path, src["counts"], 1).codec is not None  # our layout: direct decoding
    other = tmp_path / "other.zarr"
    root = zarr.open_group(str(other), mode="w", zarr_format=layout["zarr_format"], attributes=dict(src.attrs))
    extra = {"order": layout["order"]} if "order" in layout else {}
    root.create_array("counts", data=src["counts"][:], chunks=(3000, 10), **extra)
    root.create_array("unit_id", data=src["unit_id"][:])
    assert CountsReader(other, root["counts"], 1).codec is None
    np.testing.assert_array_equal(lazy_rates(other).values, lazy_rates(path).values)
    np.testing.assert_array_equal(lazy_rates(other)[777:5432, 3:40].values, lazy_rates(path)[777:5432, 3:40].values)


def test_correlation_matrix_equals_numpy_on_the_materialised_rates(tmp_path: Path, synth_dir: Path) -> None:
    import spikeprep
    from spikeprep.analysis.rate_summaries import rates_correlation
    from spikeprep.pipeline import export_file

    nwb = synth_dir / "stats.nwb"
    if not nwb.exists():
        write_session(nwb, SynthSpec(n_units=50, duration=120.0, n_probes=1, seed=77))
    sid = export_file(nwb, tmp_path).session_id
    rates = spikeprep.open_rates(tmp_path, sid)
    ids = rates["unit_id"].values[[7, 3, 40, 12, 0]]  # a subset, in any order
    window = rates.sel(time=slice(10.0, 70.0 - 1e-9), unit_id=ids).values.astype(np.float64)
    got = rates_correlation(tmp_path, sid, 10.0, 70.0, unit_ids=ids, block_s=7.3)  # blocks that cut unevenly
    assert list(got.index) == list(ids) == list(got.columns)
    with np.errstate(invalid="ignore"):  # a unit silent in the window: NaN, as here
        expected = np.corrcoef(window, rowvar=False)
    np.testing.assert_allclose(got.values, expected, atol=1e-5)
    assert rates_correlation(tmp_path, sid, 0.0, 120.0).shape == (50, 50)
    silent = rates_correlation(tmp_path, sid, 100.0, 100.004)  # one bin: every rate is constant
    assert silent.isna().all().all()
    with pytest.raises(ValueError, match="no bin"):
        rates_correlation(tmp_path, sid, 50.0, 50.0)
    with pytest.raises(ValueError, match="not in session"):
        rates_correlation(tmp_path, sid, 0.0, 10.0, unit_ids=[123456789])


def test_rates_work_where_numba_cannot_keep_its_cache() -> None:
    """A read-only install and home: numba refuses ``cache=True``; the kernels are then
    compiled in the process instead of failing to import."""
    import subprocess
    import sys

    code = """
from numba.core import caching
impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")  # (renamed across numba versions)
impl._locator_classes = []  # as if no folder were writable
import numpy as np
from spikeprep.rates import jit as jitkernels
from spikeprep.rates.binning import Kernel, smooth_counts
assert jitkernels._CACHE is False
x = np.zeros((50, 2), np.uint8); x[10, 0] = 2; x[0, 1] = 1
r = smooth_counts(x, Kernel(), 0.005)
assert abs(r.sum() * 0.005 - 2.0 - (1.0 - np.exp(-np.arange(1, 6) ** 2 / 4).sum() / np.exp(-(np.arange(11) - 5) ** 2 / 4).sum())) < 1e-5
print("ok")
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_sigma_zero_is_no_smoothing(store) -> None:
    """σ = 0 is the counts / bin width (one tap, said in the attrs), never the default σ."""
    path = store[0]
    rates = lazy_rates(path, Kernel.make(sigma_bins=0))
    assert rates.attrs["sigma_bins"] == 0 and rates.attrs["taps"] == 1 and "none" in rates.attrs["smoothing"]
    counts = xr.open_zarr(path)["counts"].values
    np.testing.assert_array_equal(rates.values, (counts / 0.005).astype(np.float32))
    assert Kernel.make(sigma_ms=0, taps=11) == Kernel(0.0, 1)
    assert "smoothing" not in lazy_rates(path).attrs
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma must be 0"):
            Kernel.make(sigma_bins=bad)


@pytest.mark.parametrize("n_bins, bin_size, t_start, end", [(20198, 0.005, 0.0, 100.99), (3, 0.1, 0.0, 0.3),
                                                            (7, 0.005, 1.1, 1.135), (1920000, 0.005, 0.0, 9600.0)])
def test_grids_end_on_the_exact_decimal(n_bins: int, bin_size: float, t_start: float, end: float) -> None:
    """t_stop is t_start + n·bin as a decimal (100.99, not 100.99000000000001), and the
    grid keeps exactly n bins."""
    last = t_start + (n_bins - 1) * bin_size - 1.0 + bin_size / 2  # make_grid ends 1 s after the last spike
    s = SpikeTrains.from_dict({1: [t_start, max(t_start, last)]})
    g = make_grid(s, bin_size, t_start) if last > t_start else make_grid(s, bin_size, t_start, end)
    assert g.t_stop == end and repr(g.t_stop) == repr(end) and g.n_bins == n_bins


def test_store_widens_when_a_later_column_overflows(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    trains = {u: np.sort(rng.uniform(0, 20, 400)) for u in range(7)}
    trains[5] = np.sort(np.concatenate([trains[5], np.full(280, 13.0025)]))  # 280+ in one bin, in column 2
    s = SpikeTrains.from_dict(trains)
    grid = make_grid(s)
    info = write_counts(s, tmp_path / "b.zarr", grid, chunks=(900, 2))
    c = xr.open_zarr(tmp_path / "b.zarr")["counts"]
    assert info["dtype"] == "uint16" and c.dtype == np.uint16 and info["total"] == len(s.times)
    np.testing.assert_array_equal(c.values, bin_counts(s, grid))


@pytest.mark.parametrize("chunks", [(1000, 7), (333, 16), (24000, 64)])
def test_store_chunks_equal_zarr_pythons(store, tmp_path: Path, chunks: tuple[int, int]) -> None:
    """The chunks encoded by the writer decode to what zarr-python writes for the same counts."""
    import zarr

    from spikeprep.rates.writer import _codecs

    _, s, _ = store
    grid = make_grid(s.spikes)
    write_counts(s.spikes, tmp_path / "ours.zarr", grid, chunks=chunks)
    counts = bin_counts(s.spikes, grid, np.dtype(np.uint8))
    ref = zarr.open_group(str(tmp_path / "ref.zarr"), mode="w-", zarr_format=2)
    ref.create_array("counts", shape=counts.shape, dtype=counts.dtype,
                     chunks=(min(chunks[0], grid.n_bins), min(chunks[1], s.spikes.n_units)), **_codecs())
    ref["counts"][:] = counts
    ours = zarr.open_group(str(tmp_path / "ours.zarr"), mode="r")["counts"]
    assert ours.chunks == ref["counts"].chunks and ours.dtype == ref["counts"].dtype
    np.testing.assert_array_equal(ours[:], ref["counts"][:])
    n_chunks = -(-grid.n_bins // ours.chunks[0]) * -(-s.spikes.n_units // ours.chunks[1])
    assert len([p for p in (tmp_path / "ours.zarr" / "counts").iterdir() if not p.name.startswith(".")]) == n_chunks


def test_chunked_counting_equals_grid_bins_at_the_edges() -> None:
    from spikeprep.rates.binning import fill_chunk_counts

    rng = np.random.default_rng(3)
    g = Grid(0.005, 0.3, 9.7)
    edges = g.edges()
    trains = {u: np.concatenate([rng.uniform(-1, 11, 500), rng.choice(edges, 80),
                                 np.nextafter(rng.choice(edges, 80), -np.inf), [g.t_stop, g.t_start]])
              for u in range(5)}
    s = SpikeTrains.from_dict(trains)
    ref = np.zeros((5, g.n_bins), np.int64)
    for u in range(5):
        k = g.bins(s[u])
        np.add.at(ref[u], k[(k >= 0) & (k < g.n_bins)], 1)
    for rows in (g.n_bins, 97, 500):
        out = np.zeros((5, rows), np.uint8)
        got = []
        for lo in range(0, g.n_bins, rows):
            hi = min(g.n_bins, lo + rows)
            fill_chunk_counts(s, g, lo, hi, out)
            got.append(out[:, : hi - lo].copy())
            out.fill(0)
        np.testing.assert_array_equal(np.concatenate(got, axis=1), ref)
