"""Every Zarr store spikeprep writes is Zarr format 2, readable without zarr-python 3:
decoded here from its .zarray/.zattrs and chunk files alone (numcodecs + numpy), as
zarr-python 2.18 and xarray 2024.11 would read it, and compared with xarray's view."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import xarray as xr

from spikeprep.analysis.aligned_store import align_session, aligned_paths
from spikeprep.export.layout import SessionFolder
from spikeprep.pipeline import export_file
from spikeprep.synthetic import SynthSpec, write_session


def read_v2_array(path: Path) -> np.ndarray:
    """A Zarr format-2 array from its metadata and chunks, with no zarr library."""
    meta = json.loads((path / ".zarray").read_text())
    assert meta["zarr_format"] == 2 and meta["filters"] is None
    codec = numcodecs.get_codec(meta["compressor"]) if meta["compressor"] else None
    shape, chunks, dtype = meta["shape"], meta["chunks"], np.dtype(meta["dtype"])
    out = np.zeros(shape, dtype=dtype)
    sep = meta.get("dimension_separator", ".")
    for idx in itertools.product(*(range(-(-s // c)) for s, c in zip(shape, chunks))):
        raw = (path / sep.join(map(str, idx))).read_bytes()
        data = codec.decode(raw) if codec else raw
        block = np.frombuffer(data, dtype=dtype).reshape(chunks, order=meta["order"])
        sl = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunks, shape))
        out[sl] = block[tuple(slice(0, x.stop - x.start) for x in sl)]
    return out


def check_store(store: Path) -> None:
    assert json.loads((store / ".zgroup").read_text())["zarr_format"] == 2
    assert (store / ".zmetadata").exists()  # consolidated: one read for xarray
    ds = xr.open_zarr(store)
    for name in list(ds.data_vars) + list(ds.coords):
        meta = json.loads((store / name / ".zarray").read_text())
        attrs = json.loads((store / name / ".zattrs").read_text())
        assert meta["fill_value"] is None, name  # else xarray would mask zeros as missing
        assert attrs["_ARRAY_DIMENSIONS"] == list(ds[name].dims), name
        np.testing.assert_array_equal(read_v2_array(store / name), ds[name].values, err_msg=name)
        assert ds[name].dtype == np.dtype(meta["dtype"]), name


@pytest.fixture(scope="module")
def exported(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    nwb = write_session(synth_dir / "zarr2.nwb", SynthSpec(n_units=70, duration=150.0, n_probes=2, seed=55))
    out = tmp_path_factory.mktemp("zarr2")
    r = export_file(nwb, out)
    assert r.ok, r.message
    return out, r.session_id


def test_counts_store_is_zarr_format_2(exported) -> None:
    out, sid = exported
    store = SessionFolder(out, sid) / "binned.zarr"
    check_store(store)
    counts = read_v2_array(store / "counts")
    assert counts.dtype == np.uint8 and counts.shape[1] == 70
    assert json.loads((store / "counts" / ".zarray").read_text())["order"] == "F"  # unit-major chunks


def test_aligned_store_is_zarr_format_2(exported) -> None:
    out, sid = exported
    align_session(out, sid, "flashes", (-0.1, 0.4), 0.01)
    check_store(aligned_paths(SessionFolder(out, sid), "flashes")[0])
