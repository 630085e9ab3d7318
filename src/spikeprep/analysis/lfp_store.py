"""A probe's LFP copied into the session folder for offline work (``spikeprep lfp``):
``session_<id>/lfp/probe_<pid>.zarr``.

Zarr format 2, one group: ``lfp`` (time × channel, float32, chunks of 10 s × all
channels, zstd), ``time`` (s) and ``channel`` (electrode ids) as its coordinates, and
the probe's CSD (``csd``: virtual channel × ``csd_time``, with ``vertical_position`` and
``horizontal_position``). Written block by block into a temporary folder and renamed
into place, with the request (window, channels) in its attributes, so a rerun with the
same request skips it and a killed run leaves nothing behind. The session view reads
this copy when it exists.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..export.layout import SCHEMA_VERSION

if TYPE_CHECKING:
    import xarray as xr

    from .session import ExportedSession

__all__ = ["write_lfp_store", "open_lfp_store"]

_BLOCK_S = 10.0


def _request(probe_id: int, window: Sequence[float] | None, channels: Sequence[int] | None) -> dict[str, Any]:
    return {"probe_id": int(probe_id), "window": None if window is None else [float(w) for w in window],
            "channels": None if channels is None else [int(c) for c in channels], "schema_version": SCHEMA_VERSION}


def _done(path: Path, request: dict[str, Any]) -> bool:
    import zarr

    try:
        return path.exists() and dict(zarr.open_group(str(path), mode="r").attrs).get("request") == request
    except Exception:  # an unreadable store is not done
        return False


def write_lfp_store(session: "ExportedSession", probe_id: int, window: Sequence[float] | None = None,
                    channels: Sequence[int] | None = None, *, force: bool = False,
                    progress: bool = False) -> dict[str, Any]:
    """Copy a probe's LFP (a time window and some channels, or all of it) and its CSD
    into the session folder. Returns ``{"status": "written" | "skipped", "path", "shape"}``.

    Raises
    ------
    SpikeprepError
        No such probe, no LFP file, a bad window or channel (one line).
    """
    import zarr
    from numcodecs import Blosc
    from tqdm.auto import tqdm

    path = session.folder.lfp_store(probe_id)
    request = _request(probe_id, window, channels)
    if not force and _done(path, request):
        return {"status": "skipped", "path": str(path), "shape": list(zarr.open_group(str(path))["lfp"].shape)}
    lfp = session.lfp_file(probe_id)
    ids = lfp.channel_ids()
    columns = np.arange(len(ids)) if channels is None else session._lfp_columns(ids, channels, probe_id)
    lo, hi = 0, len(lfp.times)
    if window is not None:
        lo, hi = lfp.times.searchsorted(float(window[0]), "left"), lfp.times.searchsorted(float(window[1]), "left")
    rate = float(session.probe_table.loc[int(probe_id), "lfp_sampling_rate"])
    step = max(1, int(_BLOCK_S * rate))
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        data = root.create_array("lfp", shape=(hi - lo, len(columns)), dtype=lfp.data.dtype,
                                 chunks=(step, max(len(columns), 1)), compressors=Blosc("zstd", 3), fill_value=None,
                                 attributes={"_ARRAY_DIMENSIONS": ["time", "channel"], "units": lfp.unit})
        times = root.create_array("time", shape=(hi - lo,), dtype="float64", chunks=(step * 8,), fill_value=None,
                                  attributes={"_ARRAY_DIMENSIONS": ["time"], "units": "s"})
        root.create_array("channel", data=ids[columns], fill_value=None, attributes={"_ARRAY_DIMENSIONS": ["channel"]})
        with tqdm(total=hi - lo, unit="sample", unit_scale=True, desc=f"probe {probe_id}",
                  disable=None if progress else True) as bar:
            for a in range(lo, hi, step):
                b = min(hi, a + step)
                block = lfp.read(slice(a, b))
                data[a - lo : b - lo] = block if channels is None else block[:, columns]
                times[a - lo : b - lo] = lfp.times.read(a, b)
                bar.update(b - a)
        csd = lfp.csd()
        dims = {"csd": ["virtual_channel_index", "csd_time"], "csd_time": ["csd_time"],
                "vertical_position": ["virtual_channel_index"], "horizontal_position": ["virtual_channel_index"]}
        for name, values in (("csd", csd.data), ("csd_time", csd.time), ("vertical_position", csd.vertical_position),
                             ("horizontal_position", csd.horizontal_position)):
            root.create_array(name, data=np.asarray(values), fill_value=None,
                              attributes={"_ARRAY_DIMENSIONS": dims[name]})
        root.attrs.update({"request": request, "source": lfp.source.location, "lfp_sampling_rate_hz": rate})
        zarr.consolidate_metadata(str(tmp), zarr_format=2)
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"status": "written", "path": str(path), "shape": [hi - lo, len(columns)]}


def open_lfp_store(path: Path) -> tuple["xr.DataArray", "xr.DataArray"]:
    """The copy's LFP (``LFP``, time × channel; lazy, dask-backed) and CSD DataArrays."""
    import xarray as xr

    ds = xr.open_zarr(path, consolidated=True)
    lfp = ds["lfp"].rename("LFP")
    lfp.attrs = {"units": ds["lfp"].attrs.get("units", "volts"), "probe_id": ds.attrs["request"]["probe_id"]}
    csd = xr.DataArray(ds["csd"].values, name="CSD", dims=("virtual_channel_index", "time"),
                       coords={"virtual_channel_index": np.arange(ds.sizes["virtual_channel_index"]),
                               "time": ds["csd_time"].values,
                               "vertical_position": (("virtual_channel_index",), ds["vertical_position"].values),
                               "horizontal_position": (("virtual_channel_index",), ds["horizontal_position"].values)})
    return lfp.drop_vars([c for c in lfp.coords if c not in ("time", "channel")]), csd
