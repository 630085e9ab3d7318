"""Lazy LFP and CSD as AllenSDK returns them, over an open probe LFP file.

``lfp_array`` gives AllenSDK's ``get_lfp`` DataArray (``LFP``, ``time`` × ``channel``,
float32) without reading it: the data is an xarray backend array over the HDF5 dataset,
and ``time`` carries a custom index (:class:`SortedTimeIndex`) that answers
``.sel(time=slice(a, b))`` by searching the timestamps in the file, so a window reads
its own rows and a few timestamps, never the whole file (a streamed probe file fetches
little more than the window). ``.isel`` and ``.sel(channel=…)`` read only what they
select. Invalid intervals are masked as AllenSDK masks them: NaN at every sample whose
time lies in a closed interval ``[start, stop]`` tagged ``all_probes`` or the probe's name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing
from xarray.core.indexes import Index, PandasIndex
from xarray.core.indexing import IndexSelResult, LazilyIndexedArray

from ..io.lfp import Csd, LfpFile, SortedTimes

__all__ = ["SortedTimeIndex", "lfp_array", "csd_array", "invalid_intervals", "in_intervals", "window_rows"]


class _TimesArray(BackendArray):
    def __init__(self, times: SortedTimes) -> None:
        self.times, self.shape, self.dtype = times, (len(times),), np.dtype(np.float64)

    def __deepcopy__(self, memo: dict) -> "_TimesArray":
        return self

    def __getitem__(self, key: Any) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._raw)

    def _raw(self, key: tuple) -> np.ndarray:
        k = key[0]
        if isinstance(k, slice):
            start, stop, step = k.indices(self.shape[0])
            return self.times.read(start, stop)[::step] if step > 0 else self.times.read(stop + 1, start + 1)[::step]
        return self.times.read(int(k), int(k) + 1)[0]


class _MaskedLfp(BackendArray):
    """The data, with NaN on the rows whose time is in an invalid interval."""

    def __init__(self, lfp: LfpFile, times: SortedTimes, intervals: np.ndarray) -> None:
        self.lfp, self.times, self.intervals = lfp, times, intervals
        self.shape, self.dtype = (len(times), lfp.data.shape[1]), lfp.data.dtype

    def __deepcopy__(self, memo: dict) -> "_MaskedLfp":
        return self

    def __getitem__(self, key: Any) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._raw)

    def _raw(self, key: tuple) -> np.ndarray:
        rows, columns = key
        start, stop, step = (rows.indices(self.shape[0]) if isinstance(rows, slice) else (int(rows), int(rows) + 1, 1))
        lo, hi = self.times.lo + start, self.times.lo + stop
        block = self.lfp.read(slice(lo, hi) if step == 1 or lo >= hi else slice(lo, hi, step), columns)
        if len(self.intervals) and block.size:
            bad = in_intervals(self.times.read(start, stop)[::step], self.intervals)
            if bad.any():
                block = block.astype(np.result_type(block.dtype, np.float32), copy=True)
                block[bad] = np.nan
        return block if isinstance(rows, slice) else block[0]


class SortedTimeIndex(Index):
    """An index over timestamps left in the file: ``sel`` by slice (closed, as pandas'
    label slices are), by value (exact) or by nearest value searches the file."""

    def __init__(self, times: SortedTimes, dim: str = "time") -> None:
        self.times, self.dim = times, dim

    @classmethod
    def from_variables(cls, variables: Any, *, options: Any) -> "SortedTimeIndex":
        raise TypeError("SortedTimeIndex is made by spikeprep.analysis.lfp, not from variables")

    def create_variables(self, variables: Any = None) -> dict[str, xr.Variable]:
        return {self.dim: xr.Variable((self.dim,), LazilyIndexedArray(_TimesArray(self.times)))}

    def _position(self, value: float, method: str | None) -> int:
        i = self.times.searchsorted(value, "left")
        if method == "nearest":
            near = self.times.read(max(i - 1, 0), i + 1)
            return max(i - 1, 0) + int(np.argmin(np.abs(near - value)))
        if method in ("pad", "ffill"):
            return i if i < len(self.times) and self.times.read(i, i + 1)[0] == value else i - 1
        if method in ("backfill", "bfill"):
            return i
        if i >= len(self.times) or self.times.read(i, i + 1)[0] != value:
            raise KeyError(value)
        return i

    def sel(self, labels: dict[Any, Any], method: str | None = None, tolerance: Any = None) -> IndexSelResult:
        key = labels[self.dim]
        if isinstance(key, slice):
            if key.step is not None:
                raise ValueError("time slices with a step are not supported; use .isel")
            i0 = 0 if key.start is None else self.times.searchsorted(float(key.start), "left")
            i1 = len(self.times) if key.stop is None else self.times.searchsorted(float(key.stop), "right")
            return IndexSelResult({self.dim: slice(i0, max(i0, i1))})
        values = np.asarray(key, dtype=np.float64)
        found = np.array([self._position(float(v), method) for v in values.ravel()], dtype=np.int64)
        return IndexSelResult({self.dim: int(found[0]) if values.ndim == 0 else found.reshape(values.shape)})

    def isel(self, indexers: dict[Any, Any]) -> "SortedTimeIndex | None":
        k = indexers[self.dim]
        if isinstance(k, slice) and k.step in (None, 1):
            start, stop, _ = k.indices(len(self.times))
            return SortedTimeIndex(self.times.view(start, stop), self.dim)
        return None  # any other selection: xarray keeps the values, without this index

    def equals(self, other: Any, **kwargs: Any) -> bool:
        return (isinstance(other, SortedTimeIndex) and other.times.ds == self.times.ds
                and (other.times.lo, other.times.hi) == (self.times.lo, self.times.hi))

    def to_pandas_index(self) -> pd.Index:
        return pd.Index(self.times.read(0, len(self.times)), name=self.dim)

    def _repr_inline_(self, max_width: int) -> str:
        return f"SortedTimeIndex ({len(self.times)} timestamps in the file)"


def in_intervals(times: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Which times lie in one of the closed intervals ``[start, stop]`` (AllenSDK's mask)."""
    bad = np.zeros(len(times), dtype=bool)
    for a, b in intervals:
        bad |= (times >= a) & (times <= b)
    return bad


def invalid_intervals(invalid_times: pd.DataFrame, probe_name: str) -> np.ndarray:
    """``[start, stop]`` of the intervals that make a probe's LFP invalid (tagged
    ``all_probes`` or with the probe's name), as AllenSDK selects them."""
    keep = [any(t in list(tags) for t in ("all_probes", probe_name)) for tags in invalid_times["tags"]]
    chosen = invalid_times[np.array(keep, dtype=bool)] if len(invalid_times) else invalid_times
    return chosen[["start_time", "stop_time"]].to_numpy(dtype=np.float64).reshape(-1, 2)


def lfp_array(lfp: LfpFile, intervals: np.ndarray | None = None) -> xr.DataArray:
    """AllenSDK's ``get_lfp`` DataArray, lazy (see the module docstring)."""
    index = SortedTimeIndex(lfp.times)
    channels = lfp.channel_ids()
    coords = xr.Coordinates(coords={**index.create_variables(), "channel": xr.Variable(("channel",), channels)},
                            indexes={"time": index, "channel": PandasIndex(channels, "channel")})
    data = _MaskedLfp(lfp, lfp.times, np.empty((0, 2)) if intervals is None else intervals)
    return xr.DataArray(LazilyIndexedArray(data), dims=("time", "channel"), coords=coords, name="LFP",
                        attrs={"units": lfp.unit, "probe_id": lfp.probe_id})


def csd_array(csd: Csd) -> xr.DataArray:
    """AllenSDK's ``get_current_source_density`` DataArray (``CSD``)."""
    n = csd.data.shape[0]
    return xr.DataArray(csd.data, name="CSD", dims=("virtual_channel_index", "time"),
                        coords={"virtual_channel_index": np.arange(n), "time": csd.time,
                                "vertical_position": (("virtual_channel_index",), csd.vertical_position),
                                "horizontal_position": (("virtual_channel_index",), csd.horizontal_position)})


def window_rows(times: SortedTimes, starts: np.ndarray, window: tuple[float, float],
                rate: float) -> tuple[np.ndarray, np.ndarray]:
    """For each onset, the rows of the samples nearest ``onset + window[0] + k / rate``
    (``k = 0 … n − 1``, ``n = round((window[1] − window[0]) · rate)``), and the nominal
    offsets (s). Rows outside the file are −1."""
    n = max(0, int(round((window[1] - window[0]) * rate)))
    offsets = window[0] + np.arange(n) / rate
    rows = np.full((len(starts), n), -1, dtype=np.int64)
    for i, onset in enumerate(np.asarray(starts, dtype=np.float64)):
        want = onset + offsets
        a = times.searchsorted(float(want[0]) - 2.0 / rate, "left")
        b = times.searchsorted(float(want[-1]) + 2.0 / rate, "right") if n else a
        t = times.read(a, b)
        if len(t) == 0:
            continue
        j = np.clip(np.searchsorted(t, want), 1, max(len(t) - 1, 1))
        j = np.where(np.abs(t[j - 1] - want) <= np.abs(t[np.minimum(j, len(t) - 1)] - want), j - 1, j)
        j = np.clip(j, 0, len(t) - 1)
        inside = np.abs(t[j] - want) <= 1.0 / rate
        rows[i] = np.where(inside, a + j, -1)
    return rows, offsets
