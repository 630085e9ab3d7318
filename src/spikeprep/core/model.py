"""The in-memory model every stage shares: :class:`SpikeTrains` and :class:`Session`.

This module sits at the bottom of the import graph; it imports nothing from spikeprep
except the error types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
import pandas as pd

from .errors import NWBFormatError, SpikeprepError

__all__ = ["SpikeTrains", "SpikeSource", "SpikeSink", "spike_pass", "SelectedSpikes", "RaggedIndex", "Session",
           "unit_blocks", "NWBFormatError", "SpikeprepError"]

DEFAULT_BLOCK_SPIKES = 1 << 23  # 64 MB of float64 times: bounds the temporaries of vectorised work


def unit_blocks(offsets: np.ndarray, max_spikes: int = DEFAULT_BLOCK_SPIKES) -> list[tuple[int, int]]:
    """Consecutive unit ranges ``(a, b)`` of a ragged index holding at most ``max_spikes``
    spikes each (a unit with more is a block of its own)."""
    n_units = len(offsets) - 1
    out, a = [], 0
    while a < n_units:
        b = int(np.searchsorted(offsets, offsets[a] + max_spikes, side="right")) - 1
        b = min(max(b, a + 1), n_units)
        out.append((a, b))
        a = b
    return out


class RaggedIndex:
    """Unit counts and blocks from ``offsets`` and ``unit_ids`` (the NWB ragged index);
    shared by :class:`SpikeTrains` and readers that load spikes block by block."""

    unit_ids: np.ndarray
    offsets: np.ndarray

    @property
    def n_units(self) -> int:
        return len(self.unit_ids)

    @property
    def n_spikes(self) -> np.ndarray:
        """Spike count of every unit (int64)."""
        return np.diff(self.offsets)

    def blocks(self, max_spikes: int = DEFAULT_BLOCK_SPIKES) -> list[tuple[int, int]]:
        """Consecutive unit ranges ``(a, b)`` holding at most ``max_spikes`` spikes each
        (a unit with more is a block of its own): bounds the temporaries of vectorised work."""
        return unit_blocks(self.offsets, max_spikes)


@dataclass(frozen=True)
class SpikeTrains(RaggedIndex):
    """All units' spike times in the NWB ragged layout.

    Parameters
    ----------
    times : numpy.ndarray
        float64 seconds, every unit's spikes concatenated, sorted within each unit.
    offsets : numpy.ndarray
        int64, length ``n_units + 1``; unit ``i`` owns ``times[offsets[i]:offsets[i+1]]``.
    unit_ids : numpy.ndarray
        int64 unit ids, in the same order.
    """

    times: np.ndarray
    offsets: np.ndarray
    unit_ids: np.ndarray

    def __post_init__(self) -> None:
        if len(self.offsets) != len(self.unit_ids) + 1:
            raise ValueError("offsets must have length n_units + 1")
        if len(self.offsets) and (self.offsets[0] != 0 or self.offsets[-1] != len(self.times)):
            raise ValueError("offsets must start at 0 and end at len(times)")

    @classmethod
    def from_dict(cls, trains: dict[int, np.ndarray]) -> "SpikeTrains":
        """Build from ``{unit_id: times}`` (each train is sorted here)."""
        ids = np.fromiter(trains.keys(), dtype=np.int64, count=len(trains))
        arrays = [np.sort(np.asarray(t, dtype=np.float64)) for t in trains.values()]
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        times = np.concatenate(arrays) if arrays else np.empty(0, np.float64)
        return cls(times, offsets, ids)

    def __len__(self) -> int:
        return self.n_units

    def __getitem__(self, i: int) -> np.ndarray:
        """Spike times of the unit at position ``i`` (a zero-copy view)."""
        return self.times[self.offsets[i] : self.offsets[i + 1]]

    def unit(self, unit_id: int) -> np.ndarray:
        """Spike times of the unit with id ``unit_id`` (a zero-copy view)."""
        pos = np.flatnonzero(self.unit_ids == unit_id)
        if len(pos) == 0:
            raise KeyError(unit_id)
        return self[int(pos[0])]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(self.n_units))

    def block_owner(self, a: int, b: int) -> np.ndarray:
        """For each spike of units ``a:b``, its unit's position within the block (int64)."""
        return np.repeat(np.arange(b - a, dtype=np.int64), self.n_spikes[a:b])

    def select(self, positions: np.ndarray) -> "SpikeTrains":
        """A new SpikeTrains holding the units at ``positions`` (copies their spikes)."""
        positions = np.asarray(positions, dtype=np.int64)
        counts = self.n_spikes[positions]
        offsets = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        times = np.empty(offsets[-1], dtype=np.float64)
        for k, p in enumerate(positions):
            times[offsets[k] : offsets[k + 1]] = self[int(p)]
        return SpikeTrains(times, offsets, self.unit_ids[positions].copy())

    def block(self, a: int, b: int) -> "SpikeTrains":
        """Units ``a:b`` as a SpikeTrains of their own (zero-copy views)."""
        lo = self.offsets[a]
        return SpikeTrains(self.times[lo : self.offsets[b]], self.offsets[a : b + 1] - lo, self.unit_ids[a:b])

    def to_dict(self) -> dict[int, np.ndarray]:
        """``{unit_id: times}``, the shape the notebook used (views, no copies)."""
        return {int(u): self[i] for i, u in enumerate(self.unit_ids)}

    @property
    def t_max(self) -> float:
        """Latest spike time of any unit (NaN when there are no spikes)."""
        return float(self.times.max()) if len(self.times) else float("nan")


class SpikeSource(Protocol):
    """What the block-wise kernels need: a :class:`SpikeTrains` in memory, or a reader
    that loads one block of units at a time (``spikeprep.io.nwb.SpikeReader``)."""

    unit_ids: np.ndarray
    offsets: np.ndarray

    @property
    def n_units(self) -> int: ...

    @property
    def t_max(self) -> float: ...

    def blocks(self, max_spikes: int = DEFAULT_BLOCK_SPIKES) -> list[tuple[int, int]]: ...

    def block(self, a: int, b: int) -> SpikeTrains: ...

    def select(self, positions: np.ndarray) -> "SpikeSource": ...


class SpikeSink(Protocol):
    """An output made from the spike times, fed block of units by block, in order.

    ``width``: the block size (units) the sink needs, or None for any.
    """

    width: int | None

    def add(self, a: int, b: int, block: SpikeTrains) -> None: ...

    def close(self) -> dict[str, Any]: ...

    def abort(self) -> None: ...


def spike_pass(spikes: SpikeSource, sinks: Sequence[SpikeSink]) -> list[dict[str, Any]]:
    """Read every block of units once and give it to each sink (the export's one pass
    over the spike times); return each sink's facts.

    The blocks are the sinks' ``width`` (they must agree), or bounded-memory blocks of
    :meth:`~spikeprep.core.model.RaggedIndex.blocks`. On any error every sink is aborted
    (each removes what it wrote) and the error is raised.
    """
    widths = {s.width for s in sinks if s.width}
    if len(widths) > 1:
        raise ValueError(f"sinks need different blocks: {sorted(widths)}")
    n = spikes.n_units
    blocks = [(a, min(n, a + w)) for w in widths for a in range(0, n, w)] if widths else spikes.blocks()
    try:
        for a, b in blocks:
            block = spikes.block(a, b)
            for sink in sinks:
                sink.add(a, b, block)
        return [sink.close() for sink in sinks]
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise


class UnitColumns(Protocol):
    """The per-spike and per-channel columns of ``/units`` that an export reads only on
    request (``spike_amplitudes``, ``waveform_mean``), one block of units at a time."""

    unit_ids: np.ndarray

    def has(self, name: str) -> bool: ...

    def read(self, name: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of units at ``positions`` (file order) and their offsets (length + 1)."""
        ...


class SelectedSpikes(RaggedIndex):
    """Some units of a :class:`SpikeSource` (e.g. a file reader), read on demand.

    Parameters
    ----------
    source : SpikeSource
    positions : array of int
        Positions of the units to keep, in the order to keep them.
    """

    def __init__(self, source: SpikeSource, positions: np.ndarray) -> None:
        self._source = source
        self._positions = np.asarray(positions, dtype=np.int64)
        self.unit_ids = np.asarray(source.unit_ids)[self._positions]
        self.offsets = np.zeros(len(self._positions) + 1, dtype=np.int64)
        np.cumsum(np.diff(source.offsets)[self._positions], out=self.offsets[1:])
        self._t_max: float | None = None

    @property
    def t_max(self) -> float:
        """Latest spike time of the selected units (one pass over them, then kept)."""
        if self._t_max is None:
            t = float("nan")
            for a, b in self.blocks():
                t = float(np.fmax(t, self.block(a, b).t_max))
            self._t_max = t
        return self._t_max

    def block(self, a: int, b: int) -> SpikeTrains:
        """Selected units ``a:b``: each run of neighbouring source units read at once."""
        p = self._positions[a:b]
        if len(p) == 0:
            return SpikeTrains(np.empty(0), np.zeros(1, np.int64), self.unit_ids[a:b])
        order = np.argsort(p, kind="stable")
        sp = p[order]
        cuts = np.flatnonzero(np.diff(sp) > 8) + 1  # read small gaps rather than split the run
        parts = []
        for run in np.split(sp, cuts):
            lo = int(run[0])
            parts.append(self._source.block(lo, int(run[-1]) + 1).select(run - lo))
        runs = SpikeTrains(np.concatenate([x.times for x in parts]),
                           np.concatenate([[0], np.cumsum(np.concatenate([x.n_spikes for x in parts]))]),
                           np.concatenate([x.unit_ids for x in parts]))
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return runs.select(back)

    def select(self, positions: np.ndarray) -> "SelectedSpikes":
        return SelectedSpikes(self._source, self._positions[np.asarray(positions, dtype=np.int64)])


@dataclass
class Session:
    """One recording session, as read from its NWB file.

    Attributes
    ----------
    session_id : int
    units : pandas.DataFrame
        Indexed by ``unit_id`` in NWB order; every scalar ``/units`` column under its
        NWB name, joined to the peak channel's electrode row.
    spikes : SpikeTrains or SpikeSource
        Same unit order as ``units``; in memory, or a reader of the open file
        (:func:`spikeprep.io.nwb.streamed_session`).
    channels, probes, stimulus, running, invalid_times : pandas.DataFrame
    metadata : dict
        Session type, genotype, sex, age, source file, layout variant, read warnings;
        ``allensdk`` (AllenSDK's subject and session metadata) and ``rig`` (equipment
        and geometry of the eye-tracking rig; empty when the file has none).
    optotagging : DataFrame, optional
        The light pulses, indexed by ``id`` (empty when the session was not optotagged).
    eye_tracking : DataFrame, optional
        Ellipse fits and gaze mapping per eye-tracking frame (empty when none).
    unit_columns : UnitColumns, optional
        Reader of the file's spike amplitudes and mean waveforms, for the opt-in outputs.
    """

    session_id: int
    units: pd.DataFrame
    spikes: SpikeSource
    channels: pd.DataFrame
    probes: pd.DataFrame
    stimulus: pd.DataFrame
    running: pd.DataFrame
    invalid_times: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)
    optotagging: pd.DataFrame | None = None
    eye_tracking: pd.DataFrame | None = None
    unit_columns: UnitColumns | None = None

    @property
    def n_units(self) -> int:
        return len(self.units)

    def __repr__(self) -> str:
        return (
            f"Session({self.session_id}, {self.metadata.get('session_type', '?')}, "
            f"{self.n_units} units, {int(self.spikes.offsets[-1])} spikes, "
            f"{len(self.stimulus)} presentations)"
        )
