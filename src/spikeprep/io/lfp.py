"""A probe's LFP file (``probe_<probe_id>_lfp.nwb``), opened from any source and read a
window at a time.

The file holds ``acquisition/probe_<pid>_lfp/probe_<pid>_lfp_data`` (``data``: time ×
channel, ``timestamps``), its own electrodes table (the LFP channels), and the probe's
current source density (``processing/current_source_density/ecephys_csd``). Nothing is
read whole: a time window is found by searching the timestamps (an interpolation guess,
then a few values), and only its rows are read, so a streamed source fetches little more
than the window.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import h5py
import numpy as np

from ..core.errors import NWBFormatError, SpikeprepError
from .nwb_tables import attr_text
from .source import Source

__all__ = ["LfpFile", "SortedTimes", "Csd", "lfp_file_name"]

_CSD = "processing/current_source_density/ecephys_csd"
_NEIGHBOURHOOD = 2048  # timestamps read around a guess (16 KiB)


@contextmanager
def _one_line(location: str, what: str) -> Iterator[None]:
    """A failed read (a truncated file, or a streamed file that changed or could not be
    fetched) as one NWBFormatError naming the file and what was read."""
    try:
        yield
    except (OSError, SpikeprepError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NWBFormatError(location, f"{what}: {first.removeprefix(location + ': ')}") from exc


def lfp_file_name(probe_id: int) -> str:
    """The probe file's name in the bucket and in AllenSDK's cache."""
    return f"probe_{int(probe_id)}_lfp.nwb"


class SortedTimes:
    """Rows ``lo:hi`` of a sorted 1-D timestamps dataset, searched without reading it whole."""

    def __init__(self, ds: h5py.Dataset, lo: int = 0, hi: int | None = None, location: str = "") -> None:
        self.ds, self.lo, self.hi = ds, int(lo), int(ds.shape[0] if hi is None else hi)
        self.location = location  # the file, for errors

    def __len__(self) -> int:
        return self.hi - self.lo

    def __deepcopy__(self, memo: dict) -> "SortedTimes":
        return self  # a read-only view of an open file

    def view(self, start: int, stop: int) -> "SortedTimes":
        return SortedTimes(self.ds, self.lo + start, self.lo + max(start, stop), self.location)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Values ``start:stop`` of this view (float64)."""
        start, stop = max(0, start), min(len(self), stop)
        if stop <= start:
            return np.empty(0)
        with _one_line(self.location, "LFP timestamps"):
            return self.ds[self.lo + start : self.lo + stop].astype(np.float64, copy=False)

    def searchsorted(self, x: float, side: str = "left") -> int:
        """Position of ``x`` as ``numpy.searchsorted`` gives it on the whole view."""
        n = len(self)
        if n == 0:
            return 0
        ends = self.read(0, 1)[0], self.read(n - 1, n)[0]
        if n > 1 and ends[1] > ends[0]:  # guess from the mean rate, then look around the guess
            guess = int((x - ends[0]) / (ends[1] - ends[0]) * (n - 1))
            a, b = guess - _NEIGHBOURHOOD // 2, guess + _NEIGHBOURHOOD // 2
            block = self.read(a, b)
            a = max(0, a)
            if len(block) and (block[0] < x or a == 0) and (block[-1] > x or a + len(block) == n):
                return a + int(np.searchsorted(block, x, side=side))
        a, b = 0, n
        while b - a > _NEIGHBOURHOOD:
            m = (a + b) // 2
            v = self.read(m, m + 1)[0]
            if v < x or (side == "right" and v == x):
                a = m + 1
            else:
                b = m
        return a + int(np.searchsorted(self.read(a, b), x, side=side))


@dataclass(frozen=True)
class Csd:
    """A probe's current source density (V/cm², as the file says): ``data`` is virtual
    channel × time, float64; positions in µm."""

    data: np.ndarray
    time: np.ndarray
    vertical_position: np.ndarray
    horizontal_position: np.ndarray
    unit: str


class LfpFile:
    """An open probe LFP file.

    Parameters
    ----------
    source : Source
        The file (a local path or a streamed URL: anything h5py can open through it).
    probe_id : int

    Raises
    ------
    NWBFormatError
        Not an LFP file of that probe; the message names the file and what is missing.
    """

    def __init__(self, source: Source, probe_id: int) -> None:
        self.source, self.probe_id = source, int(probe_id)
        try:
            self.file = h5py.File(source.open(), "r")
        except OSError as exc:
            raise NWBFormatError(source.location, f"not a readable HDF5 file: {str(exc).splitlines()[0]}") from exc
        name = f"acquisition/probe_{self.probe_id}_lfp/probe_{self.probe_id}_lfp_data"
        if name not in self.file:
            self.file.close()
            raise NWBFormatError(source.location, f"no /{name}: not the LFP file of probe {self.probe_id}")
        series = self.file[name]
        self.data: h5py.Dataset = series["data"]
        self.times = SortedTimes(series["timestamps"], location=source.location)
        if self.data.ndim != 2 or self.data.shape[0] != len(self.times):
            self.file.close()
            raise NWBFormatError(source.location, f"LFP data {self.data.shape} does not match its "
                                                  f"{len(self.times)} timestamps")
        self.unit = attr_text(self.data.attrs.get("unit", "volts"))
        self.conversion = float(self.data.attrs.get("conversion", 1.0))

    def channel_ids(self) -> np.ndarray:
        """The LFP channels' electrode ids, in the data's column order."""
        return self.file["general/extracellular_ephys/electrodes/id"][()].astype(np.int64)

    def read(self, rows: slice, columns: Any = slice(None)) -> np.ndarray:
        """``data[rows, columns]`` as stored (float32 in the released files).

        Raises
        ------
        NWBFormatError
            The read failed (a truncated file, or a streamed file that changed or could
            not be fetched); one line naming the file.
        """
        with _one_line(self.source.location, "LFP data"):
            return self.data[rows, columns]

    def csd(self) -> Csd:
        """The CSD, read whole (it is small: channels × ~1 s of trial-averaged response)."""
        if _CSD not in self.file:
            raise NWBFormatError(self.source.location, f"no /{_CSD}")
        g = self.file[_CSD]
        ts = g["current_source_density"]
        return Csd(ts["data"][()].T.astype(np.float64, copy=False), ts["timestamps"][()].astype(np.float64),
                   g["virtual_electrode_y_positions"][()], g["virtual_electrode_x_positions"][()],
                   attr_text(ts["data"].attrs.get("unit", "")))

    def close(self) -> None:
        self.file.close()
