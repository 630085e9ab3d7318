"""Counts counted into Blosc's bit planes (rates/planes.py): the frames are byte for byte
Blosc's own, the counts those of the dense counting, at every edge."""

from __future__ import annotations

from pathlib import Path

import numcodecs
import numcodecs.blosc
import numpy as np
import pytest

from spikeprep.core.model import SpikeTrains
from spikeprep.io.nwb import read_session
from spikeprep.rates import planes
from spikeprep.rates.binning import Grid, bin_counts, fill_chunk_counts, make_grid
from spikeprep.rates.writer import _codecs, write_counts

CODEC = _codecs()["compressors"]


@pytest.fixture(autouse=True)
def one_blosc_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blosc's frames are deterministic on one thread (the writer's threads each use one);
    with Blosc's own threads, its block sizes and so its bytes vary from run to run."""
    monkeypatch.setattr(numcodecs.blosc, "use_threads", False)


@pytest.mark.parametrize("n", [16, 100, 4096, 262143, 262144, 262145, 262151, 300001, 524296, 1536000, 1536003])
@pytest.mark.parametrize("density", [0.02, 0.7])
def test_frames_are_blosc_bitshuffle_frames_byte_for_byte(n: int, density: float) -> None:
    rng = np.random.default_rng(n)
    counts = rng.poisson(density, n).astype(np.uint8)
    counts[rng.integers(0, n, 5)] = [255, 128, 3, 7, 200]
    bs = planes.block_size(CODEC, n)
    laid = planes.planes_of_counts(counts, bs)
    np.testing.assert_array_equal(planes.counts_of_planes(laid, bs), counts)
    frame = planes.encode_planes(planes.plane_codec(CODEC), laid, bs)
    blosc = CODEC.encode(counts)
    if frame is None:  # refused only where Blosc stores the counts raw
        assert blosc[2] & 0x2 and n < 4096
        return
    assert frame == blosc
    np.testing.assert_array_equal(np.frombuffer(CODEC.decode(frame), np.uint8), counts)


def test_a_frame_blosc_would_store_raw_is_refused() -> None:
    counts = np.arange(9, dtype=np.uint8)  # too short to compress: Blosc copies it
    bs = planes.block_size(CODEC, len(counts))
    assert planes.encode_planes(planes.plane_codec(CODEC), planes.planes_of_counts(counts, bs), bs) is None
    assert planes.plane_codec(numcodecs.Blosc("lz4", 1, numcodecs.Blosc.SHUFFLE)) is None
    assert planes.plane_codec(numcodecs.Zstd(1)) is None


def _trains(rng: np.random.Generator, grid: Grid, n_units: int, lo: int, hi: int) -> SpikeTrains:
    edges = grid.edges()
    trains = {}
    for u in range(n_units):
        t = [rng.uniform(grid.t_start - 1, grid.t_stop + 1, int(rng.integers(0, 2000))),
             rng.choice(edges, 40), np.nextafter(rng.choice(edges, 40), -np.inf), [grid.t_stop, grid.t_start]]
        if u % 3 == 0:  # a burst in one bin, at the chunk's first and last bins
            t += [np.full(int(rng.integers(1, 250)), edges[min(lo, len(edges) - 1)]),
                  np.full(int(rng.integers(1, 5)), edges[max(lo, hi - 1)] + grid.bin_size / 2)]
        trains[u] = np.concatenate(t)
    return SpikeTrains.from_dict(trains)


@pytest.mark.parametrize("seed", range(12))
def test_planes_hold_the_dense_counts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    grid = Grid(0.005, 0.3, 20.3)
    rows = int(rng.integers(1, 1500))
    lo = int(rng.integers(0, grid.n_bins - 1))
    hi = min(grid.n_bins, lo + int(rng.integers(0, rows + 1)))
    n_units = int(rng.integers(1, 40))
    s = _trains(rng, grid, n_units, lo, hi)
    width = n_units + int(rng.integers(0, 4))  # the last column of a store is partly empty
    dense = np.zeros((width, rows), np.uint8)
    expected = fill_chunk_counts(s, grid, lo, hi, dense[:n_units])
    for bs in (8, 24, 1000, 1001, 1 << 18):
        flat = np.zeros(width * rows, np.uint8)
        assert planes.fill_chunk_planes(s, grid, lo, hi, rows, flat, bs) == expected
        np.testing.assert_array_equal(planes.counts_of_planes(flat, bs), dense.ravel())


def test_a_count_over_255_is_an_overflow() -> None:
    grid = Grid(0.005, 0.0, 1.0)
    s = SpikeTrains.from_dict({1: np.full(256, 0.5), 2: np.full(255, 0.5)})
    out = np.zeros(2 * grid.n_bins, np.uint8)
    with pytest.raises(OverflowError):
        planes.fill_chunk_planes(s, grid, 0, grid.n_bins, grid.n_bins, out, 1 << 18)
    assert planes.fill_chunk_planes(s.block(1, 2), grid, 0, grid.n_bins, grid.n_bins, out[: grid.n_bins],
                                    1 << 18) == (255, 255)


def _assert_chunk_files_are_frames_of_the_counts(spikes: SpikeTrains, store: Path, chunks: tuple[int, int]) -> None:
    grid = make_grid(spikes)
    write_counts(spikes, store, grid, chunks=chunks)
    counts = bin_counts(spikes, grid, np.dtype(np.uint8))
    tc, w = min(chunks[0], grid.n_bins), min(chunks[1], spikes.n_units)
    for i in range(-(-grid.n_bins // tc)):
        for j in range(-(-spikes.n_units // w)):
            chunk = np.zeros((tc, w), np.uint8, order="F")  # the last chunks padded, as zarr-python pads them
            part = counts[i * tc : (i + 1) * tc, j * w : (j + 1) * w]
            chunk[: part.shape[0], : part.shape[1]] = part
            assert (store / "counts" / f"{i}.{j}").read_bytes() == CODEC.encode(chunk.ravel(order="F")), (i, j)


@pytest.mark.parametrize("chunks", [(24000, 64), (1000, 7), (333, 16), (1001, 3)])
def test_store_chunk_files_are_blosc_frames_of_the_counts(small_nwb: Path, tmp_path: Path,
                                                           chunks: tuple[int, int]) -> None:
    """Every chunk file the writer makes is the frame Blosc makes from that chunk's counts."""
    _assert_chunk_files_are_frames_of_the_counts(read_session(small_nwb).spikes, tmp_path / "b.zarr", chunks)


def test_chunks_too_small_to_compress_are_blosc_frames_too(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    spikes = SpikeTrains.from_dict({u: np.sort(rng.uniform(0, 2, 30)) for u in range(3)})
    _assert_chunk_files_are_frames_of_the_counts(spikes, tmp_path / "b.zarr", (3, 1))
