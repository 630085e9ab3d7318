"""Read one Allen Visual Coding – Neuropixels session NWB file with h5py.

Handles the three layouts in circulation (Oct 2019, June 2020 release, AllenSDK ≥ 2.13
writer) and a few tolerated fallback names. Reads only what is needed: never
``spike_amplitudes`` nor ``waveform_mean``. Every problem with the file raises
:class:`~spikeprep.core.errors.NWBFormatError` naming the file.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np

from ..core.errors import NWBFormatError
from ..core.model import RaggedIndex, SelectedSpikes, Session, SpikeTrains, unit_blocks
from .nwb_tables import (ELECTRODES, join_channels, problems, read_channels, read_invalid_times, read_metadata,
                         read_probes, read_running, read_session_id, read_stimulus, read_units)
from .shared_blocks import SharedBlocks
from .nwb_optional import read_eye_tracking, read_optotagging, read_rig, read_subject
from .source import Source, as_local_source

__all__ = ["read_session", "streamed_session", "SpikeReader", "peek_session_id", "detect_layout", "Visitor"]

Visitor = Callable[[int, int, SpikeTrains], None]  # visit(a, b, trains of units a:b)

log = logging.getLogger(__name__)

_CHUNK = 1 << 23  # spikes checked per step: bounds the temporaries to ~64 MB


def read_session(path: str | Path | Source) -> Session:
    """Read one session NWB file into a :class:`~spikeprep.core.model.Session`.

    Parameters
    ----------
    path : str, Path or Source
        A session NWB file (any of the three Allen layouts).

    Returns
    -------
    Session

    Raises
    ------
    NWBFormatError
        The file is not HDF5, is truncated, lacks a required table, or holds
        inconsistent data. The message names the file and the problem.
    """
    source = as_local_source(path)
    with _open_h5(source) as f:
        return _read(f, source, streamed=False)


@contextmanager
def streamed_session(path: str | Path | Source, *, visit: Visitor | None = None) -> Iterator[Session]:
    """The session of a file with its spike times left in the file: ``spikes`` is a
    :class:`SpikeReader` that reads one block of units at a time, valid inside the
    ``with`` block. Everything else is as :func:`read_session` reads it.

    ``visit(a, b, trains)``, if given, sees every spike once while the file is checked
    (:class:`SpikeReader`'s ``visit``).

    Examples
    --------
    >>> with streamed_session("session_715093703.nwb") as session:  # doctest: +SKIP
    ...     write_counts(session.spikes, "binned.zarr", make_grid(session.spikes))
    """
    source = as_local_source(path)
    with _open_h5(source) as f:
        yield _read(f, source, streamed=True, visit=visit)


def _read(f: h5py.File, source: Source, streamed: bool, visit: Visitor | None = None) -> Session:
    path = source.location
    notes: list[str] = []
    with problems(path, "layout"):
        layout = detect_layout(f)
    with problems(path, "electrodes table"):
        probes = read_probes(f)
        channels = read_channels(f, path, probes)
    with problems(path, "units table"):
        units, index = read_units(f, path)
    if streamed:
        spikes, tables = _scan_beside_tables(f, source, units.index.to_numpy(), index, visit)
        notes += spikes.notes
    else:
        with problems(path, "units/spike_times"):
            spikes = _read_spikes(f, path, units.index.to_numpy(), index, notes)
        tables = _read_tables(f, source)
    units = join_channels(units, channels, path)
    meta = tables.pop("meta")
    meta.update(layout=layout, n_units=len(units), n_spikes=int(spikes.offsets[-1]), read_warnings=notes)
    return Session(
        session_id=meta["session_id"], units=units, spikes=spikes, channels=channels, probes=probes,
        metadata=meta, unit_columns=NwbUnitColumns(source, units.index.to_numpy(), f if streamed else None), **tables,
    )


def _scan_beside_tables(f: h5py.File, source: Source, ids: np.ndarray, index: np.ndarray,
                        visit: Visitor | None) -> tuple[SpikeReader, dict]:
    """The spike times' check (:class:`SpikeReader`) on a thread while this one reads the
    other tables, then joins the check for the blocks left: the check is mostly numpy
    and compiled loops that release the GIL, the tables mostly pandas, so the two share
    the cores (h5py serialises the file reads). Errors come in the file's order: the
    spike times' first."""
    from concurrent.futures import ThreadPoolExecutor

    share = SharedBlocks()
    with ThreadPoolExecutor(max_workers=1) as pool:
        scan = pool.submit(SpikeReader, source, visit=visit, _open=(f, ids, index), _share=share)
        try:
            tables = _read_tables(f, source)
        except BaseException:
            if scan.exception() is not None:
                scan.result()
            raise
        share.join()
        return scan.result(), tables


def _read_tables(f: h5py.File, source: Source) -> dict:
    """The session's tables other than units and channels, and its metadata (``meta``)."""
    path = source.location
    with problems(path, "invalid_times"):
        invalid = read_invalid_times(f)
    with problems(path, "stimulus tables"):
        stimulus = read_stimulus(f, path, invalid)
    with problems(path, "running speed"):
        running = read_running(f)
    with problems(path, "optotagging"):
        optotagging = read_optotagging(f)
    with problems(path, "eye tracking"):
        eye_tracking = read_eye_tracking(f)
    with problems(path, "session metadata"):
        meta = read_metadata(f, source)
        meta.update(allensdk=read_subject(f), rig=read_rig(f))
    return {"invalid_times": invalid, "stimulus": stimulus, "running": running, "optotagging": optotagging,
            "eye_tracking": eye_tracking, "meta": meta}


def peek_session_id(path: str | Path | Source) -> int:
    """The session id of a file, reading only its metadata (for locks and skips).

    Raises
    ------
    NWBFormatError
        The file cannot be opened or names no session id.
    """
    source = as_local_source(path)
    with _open_h5(source) as f, problems(source.location, "session id"):
        return read_session_id(f, source.location)


def _open_h5(source: Source) -> h5py.File:
    """Open a session file read-only; a missing or unreadable file is an NWBFormatError."""
    target = source.open()
    try:
        return h5py.File(target, "r")
    except OSError as exc:
        raise NWBFormatError(source.location, f"not a readable HDF5 file (truncated or corrupt?): "
                                              f"{str(exc).splitlines()[0]}") from exc


def detect_layout(f: h5py.File) -> str:
    """Name the layout variant: ``"2019"``, ``"2020"`` or ``"sdk"``.

    Parameters
    ----------
    f : h5py.File
        An open session file.
    """
    e = f[ELECTRODES]
    ts = f.get("processing/running/running_speed/timestamps")
    if "manual_structure_acronym" in e or (ts is not None and ts.ndim == 2):
        return "2019"
    if "probe_channel_number" in e:
        return "sdk"
    return "2020"


def _spike_index(f: h5py.File, path: str, n_units: int, index: np.ndarray) -> tuple[h5py.Dataset, np.ndarray]:
    """The ``spike_times`` dataset and its checked ragged offsets (length ``n_units + 1``)."""
    ds = f["units/spike_times"]
    n_total = ds.shape[0] if ds.ndim == 1 else -1
    if ds.ndim != 1 or ds.dtype.kind != "f":
        raise NWBFormatError(path, f"units/spike_times must be a 1-D float array, got {ds.dtype} {ds.shape}")
    if index.ndim != 1 or len(index) != n_units or index.dtype.kind not in "iu":
        raise NWBFormatError(path, f"units/spike_times_index has {index.shape} {index.dtype}, expected {n_units} integers")
    offsets = np.zeros(n_units + 1, dtype=np.int64)
    offsets[1:] = index
    if np.any(np.diff(offsets) < 0):
        raise NWBFormatError(path, "units/spike_times_index is not monotonic (corrupt index, cf. AllenSDK #2152)")
    if offsets[-1] != n_total:
        raise NWBFormatError(path, f"units/spike_times_index ends at {offsets[-1]} but units/spike_times holds {n_total} spikes")
    return ds, offsets


def _read_spikes(f: h5py.File, path: str, ids: np.ndarray, index: np.ndarray, notes: list[str]) -> SpikeTrains:
    ds, offsets = _spike_index(f, path, len(ids), index)
    times = np.empty(offsets[-1], dtype=np.float64)
    if len(times):
        ds.read_direct(times)
    trains, n_unsorted, n_dropped = _checked_trains(times, offsets, ids, path)
    _note_repairs(path, n_unsorted, n_dropped, notes)
    return trains


def _note_repairs(path: str, n_unsorted: int, n_dropped: int, notes: list[str]) -> None:
    """Record (and warn about) what :func:`_checked_trains` repaired."""
    for n, msg in ((n_unsorted, f"{n_unsorted} units had unsorted spike times; sorted"),
                   (n_dropped, f"dropped {n_dropped} negative spike times")):
        if n:
            notes.append(msg)
            warnings.warn(f"{path}: {msg}", stacklevel=3)


def _checked_trains(times: np.ndarray, offsets: np.ndarray, ids: np.ndarray, path: str) -> tuple[SpikeTrains, int, int]:
    """Reject NaN/inf; sort unsorted units and drop negative times.

    One pass in chunks: min/max reductions catch NaN, ±inf and negatives; one
    comparison into a reused buffer (unit boundaries masked) finds unsorted units.
    Sorts ``times`` in place. Returns the trains, the number of units sorted and the
    number of spikes dropped.
    """
    n = len(times)
    boundaries = offsets[1:-1]  # first spike of each unit after the first
    any_negative = False
    unsorted_units: set[int] = set()
    dec = np.empty(min(n, _CHUNK), dtype=bool)
    for a in range(0, n, _CHUNK):
        b = min(n, a + _CHUNK)
        lo, hi = times[a:b].min(), times[a:b].max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise NWBFormatError(path, "units/spike_times holds NaN or infinite spike times")
        any_negative |= bool(lo < 0)
        s = max(a, 1)
        d = dec[: b - s]
        np.less(times[s:b], times[s - 1 : b - 1], out=d)
        inside = boundaries[(boundaries >= s) & (boundaries < b)]
        d[inside - s] = False  # a new unit may start lower than the last one ended
        if d.any():
            pos = s + np.flatnonzero(d)
            unsorted_units.update((np.searchsorted(offsets, pos, side="right") - 1).tolist())
    for u in sorted(unsorted_units):
        times[offsets[u] : offsets[u + 1]].sort()
    dropped = 0
    if any_negative:
        keep = times >= 0
        dropped = int(n - keep.sum())
        kept = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])  # (reduceat fails on empty last units)
        times = times[keep]
        offsets = kept[offsets]
    return SpikeTrains(times, offsets, ids), len(unsorted_units), dropped


class SpikeReader(RaggedIndex):
    """A session file's spike times, read one block of units at a time.

    Implements :class:`~spikeprep.core.model.SpikeSource`, so
    :func:`spikeprep.rates.store.write_counts` streams from the file with bounded memory
    instead of holding every spike time (≈1 GB for a full session). Opening checks the
    whole file once, as :func:`read_session` does: NaN or infinite times raise
    :class:`NWBFormatError`; units with unsorted times are sorted, and negative times
    dropped, in each block read (``notes`` says so).

    Parameters
    ----------
    path : str, Path or Source
        A session NWB file.
    visit : callable, optional
        ``visit(a, b, trains)`` is called with each block of units ``a:b`` as the check
        reads it (repaired): work that needs every spike once, such as the ISI counts
        of :class:`spikeprep.export.qc.IsiCounter`, then costs no second read.

    Examples
    --------
    >>> with SpikeReader("session_715093703.nwb") as spikes:  # doctest: +SKIP
    ...     write_counts(spikes, "binned.zarr", make_grid(spikes))
    """

    def __init__(self, path: str | Path | Source, *, visit: Visitor | None = None,
                 _open: tuple[h5py.File, np.ndarray, np.ndarray] | None = None,
                 _share: SharedBlocks | None = None) -> None:
        source = as_local_source(path)
        self.path = source.location
        self._owns_file = _open is None
        self._file = _open_h5(source) if _open is None else _open[0]
        try:
            if _open is None:
                with problems(self.path, "units table"):
                    units, index = read_units(self._file, self.path)
                self.unit_ids = units.index.to_numpy(dtype=np.int64)
            else:
                self.unit_ids, index = np.asarray(_open[1], dtype=np.int64), _open[2]
            with problems(self.path, "units/spike_times"):
                self._ds, self._raw_offsets = _spike_index(self._file, self.path, len(self.unit_ids), index)
                self.notes: list[str] = []
                self._repair = np.zeros(len(self.unit_ids), dtype=bool)
                self.offsets = self._raw_offsets
                self.t_max, self.offsets = self._scan(visit, _share)
        except BaseException:
            self.close()
            raise
        finally:
            if _share is not None:
                _share.close()

    def _scan(self, visit: Visitor | None, share: SharedBlocks | None) -> tuple[float, np.ndarray]:
        """Check every spike once; mark the blocks that need repair. Returns the latest
        time and the offsets after repair (negative times dropped). With ``share``, the
        blocks are shared with the threads that join it."""
        raw = self._raw_offsets
        blocks = unit_blocks(raw, _CHUNK)
        counts = np.diff(raw)

        def check(k: int, scratch: dict) -> tuple[float, int, int]:
            a, b = blocks[k]
            lo, hi = raw[a], raw[b]
            if len(scratch.get("buf", ())) < hi - lo:  # (a unit of more than _CHUNK spikes is a block alone)
                scratch["buf"] = np.empty(max(int(hi - lo), min(int(raw[-1]), _CHUNK)), dtype=np.float64)
            times = scratch["buf"][: hi - lo]
            if len(times):
                self._ds.read_direct(times, np.s_[lo:hi])
            trains, unsorted, dropped = _checked_trains(times, raw[a : b + 1] - lo, self.unit_ids[a:b], self.path)
            if unsorted or dropped:
                self._repair[a:b] = True
                counts[a:b] = trains.n_spikes
            if visit is not None:
                visit(a, b, trains)
            return trains.t_max, unsorted, dropped

        work = share if share is not None else SharedBlocks()
        work.publish(len(blocks), check)
        work.run()
        done = work.results()
        t_max = float(np.fmax.reduce([r[0] for r in done])) if done else float("nan")
        _note_repairs(self.path, sum(r[1] for r in done), sum(r[2] for r in done), self.notes)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return t_max, offsets

    def block(self, a: int, b: int) -> SpikeTrains:
        """Units ``a:b`` read from the file (checked and repaired like :func:`read_session`)."""
        lo, hi = int(self._raw_offsets[a]), int(self._raw_offsets[b])
        with problems(self.path, "units/spike_times"):
            times = self._ds[lo:hi]
        trains = SpikeTrains(times, self._raw_offsets[a : b + 1] - lo, self.unit_ids[a:b])
        if self._repair[a:b].any():
            trains = _checked_trains(times, trains.offsets, trains.unit_ids, self.path)[0]
        return trains

    def select(self, positions: np.ndarray) -> "SelectedSpikes":
        """The units at ``positions``, read from the file on demand."""
        return SelectedSpikes(self, positions)

    def close(self) -> None:
        if self._owns_file:
            self._file.close()

    def __enter__(self) -> "SpikeReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NwbUnitColumns:
    """``units/spike_amplitudes`` and ``units/waveform_mean`` of a session file, read on
    request for some units (a :class:`~spikeprep.core.model.UnitColumns`). Uses the open
    file of a streamed session, or opens the source again for each read.

    Parameters
    ----------
    source : Source
    unit_ids : array of int
        Every unit of the file, in file order.
    file : h5py.File, optional
        The open file (valid while its session's ``with`` block is).
    """

    def __init__(self, source: Source, unit_ids: np.ndarray, file: h5py.File | None = None) -> None:
        self.source, self.unit_ids, self._file = source, np.asarray(unit_ids, dtype=np.int64), file

    @contextmanager
    def _open(self) -> Iterator[h5py.File]:
        if self._file is not None:
            yield self._file
        else:
            with _open_h5(self.source) as f:
                yield f

    def has(self, name: str) -> bool:
        with self._open() as f:
            return f"units/{name}" in f and f"units/{name}_index" in f

    def read(self, name: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``units/<name>`` for the units at ``positions`` and their offsets."""
        positions = np.asarray(positions, dtype=np.int64)
        with self._open() as f, problems(self.source.location, f"units/{name}"):
            ds, index = f[f"units/{name}"], f[f"units/{name}_index"][()]
            if len(index) != len(self.unit_ids):
                raise NWBFormatError(self.source.location, f"units/{name}_index has {len(index)} rows, "
                                                           f"units/id has {len(self.unit_ids)}")
            bounds = np.concatenate([[0], index.astype(np.int64)])
            lo, hi = bounds[positions], bounds[positions + 1]
            lengths = hi - lo
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            out = np.empty((int(offsets[-1]), *ds.shape[1:]), dtype=ds.dtype)
            if len(positions) and np.all(lo[1:] == hi[:-1]):  # consecutive units: one read
                if offsets[-1]:
                    ds.read_direct(out, np.s_[int(lo[0]) : int(hi[-1])])
            else:
                for k in range(len(positions)):
                    if lengths[k]:
                        out[offsets[k] : offsets[k + 1]] = ds[int(lo[k]) : int(hi[k])]
            return out, offsets
