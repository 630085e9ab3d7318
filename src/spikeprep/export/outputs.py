"""The registry of what an export writes into ``OUT/session_<id>/``: one declaration per output.

Each :class:`Output` names its file and gives its writer (session → file, returning
the facts ``session.json`` records about it), its reader and its check (used by
``spikeprep verify``). Export, verify and the ``open_*`` readers all iterate
:data:`OUTPUTS`, so a new output is one :func:`declare` call plus its writer and reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..core.model import Session, SpikeSink, SpikeTrains, spike_pass
from ..core.options import ExportOptions
from ..core.stimulus import conditions_table
from ..rates.binning import Kernel, make_grid
from .columns import (CHANNEL_COLUMNS, EYE_TRACKING_COLUMNS, INVALID_COLUMNS, OPTOTAGGING_COLUMNS, PROBE_COLUMNS,
                      RUNNING_COLUMNS, STIMULUS_COLUMNS, UNIT_COLUMNS)
from .layout import SessionRecord
from .spike_pass import SpikeTimesWriter
from .tables import Column, read_table, table_rows, write_table
from .waveforms import AMPLITUDE_COLUMNS, check_waveforms, open_waveforms, write_amplitudes, write_waveforms

__all__ = ["Output", "OUTPUTS", "wanted_outputs", "declare", "table_output", "spike_output", "write_spike_times",
           "counts_sink", "check_output"]

Facts = dict[str, Any]


@dataclass(frozen=True)
class Output:
    """One file (or Zarr folder) of an exported session.

    Attributes
    ----------
    name : str
        Key of the output (``session.json``'s ``outputs`` use it).
    file : str
        Name inside ``session_<id>/``.
    write : callable
        ``write(session, path, options) -> facts``: writes ``path``; ``facts`` (a small
        dict, e.g. ``{"rows": n}``) go to ``session.json`` under ``outputs[name]``.
    read : callable
        ``read(path)`` opens the output (a DataFrame, an xarray Dataset, …).
    check : callable
        ``check(path, record) -> problems``: one line per problem, naming the file.
    columns : tuple of Column
        Declared columns of a table output.
    wanted : callable
        ``wanted(options)``: whether an export with these options writes it (the opt-in
        outputs); verify checks an output only where the record's options wanted it.
    sink : callable, optional
        For outputs made from the spike times: ``sink(session, path, options)`` opens a
        :class:`~spikeprep.core.model.SpikeSink`, so that the export feeds all of
        them from one read of the spikes (``write`` runs a pass of its own).
    """

    name: str
    file: str
    write: Callable[[Session, Path, ExportOptions], Facts]
    read: Callable[[Path], Any]
    check: Callable[[Path, SessionRecord], list[str]]
    columns: tuple[Column, ...] = ()
    wanted: Callable[[ExportOptions], bool] = lambda options: True
    sink: Callable[[Session, Path, ExportOptions], SpikeSink] | None = None


OUTPUTS: dict[str, Output] = {}


def wanted_outputs(options: ExportOptions | dict[str, Any]) -> list[Output]:
    """The outputs an export with ``options`` (or a record's ``params``) writes, in order."""
    if isinstance(options, dict):
        known = {k: v for k, v in options.items() if k in ExportOptions.__dataclass_fields__}
        options = ExportOptions(**known)
    return [o for o in OUTPUTS.values() if o.wanted(options)]


def declare(output: Output) -> Output:
    """Add ``output`` to the registry (in writing order)."""
    OUTPUTS[output.name] = output
    return output


def _check_rows(name: str) -> Callable[[Path, SessionRecord], list[str]]:
    def check(path: Path, record: SessionRecord) -> list[str]:
        expected = record.outputs.get(name, {}).get("rows")
        n = table_rows(path)
        return [] if n == expected else [f"{path}: {n} rows, session.json says {expected}"]
    return check


def table_output(name: str, file: str, frame: Callable[[Session], pd.DataFrame],
                 columns: Sequence[Column] = ()) -> Output:
    """A Parquet table output: ``frame(session)`` written with its declared columns,
    its row count recorded and checked."""
    def write(session: Session, path: Path, options: ExportOptions) -> Facts:
        return {"rows": write_table(frame(session), path, columns)}

    return Output(name, file, write, read_table, _check_rows(name), tuple(columns))


def check_output(output: Output, folder: Path, record: SessionRecord) -> list[str]:
    """Problems of one output of a session folder; missing or unreadable files are named."""
    path = folder / output.file
    if not path.exists():
        return [f"{path}: missing"]
    try:
        return output.check(path, record)
    except Exception as exc:  # an unreadable Parquet or Zarr: report it, don't crash
        first = str(exc).splitlines()[0] if str(exc) else ""
        return [f"{path}: unreadable ({type(exc).__name__}: {first})"]


# ----------------------------------------------------------------------------- spike times
def spike_output(name: str, file: str, sink: Callable[[Session, Path, ExportOptions], SpikeSink],
                 read: Callable[[Path], Any], check: Callable[[Path, SessionRecord], list[str]]) -> Output:
    """An output made from the spike times by a sink (see :func:`spikeprep.core.model.spike_pass`)."""
    def write(session: Session, path: Path, options: ExportOptions) -> Facts:
        return spike_pass(session.spikes, [sink(session, path, options)])[0]

    return Output(name, file, write, read, check, sink=sink)


def write_spike_times(spikes: SpikeTrains, path: Path) -> int:
    """Long table ``unit_id``, ``time``, grouped by unit (:class:`SpikeTimesWriter`)."""
    return spike_pass(spikes, [SpikeTimesWriter(path)])[0]["rows"]


def _check_spike_times(path: Path, record: SessionRecord) -> list[str]:
    import pyarrow.parquet as pq

    problems = _check_rows("spike_times")(path, record)
    units = path.with_name(OUTPUTS["units"].file)
    if units.exists():
        n_spikes = pq.read_table(units, columns=["n_spikes"]).column(0).to_numpy()
        if int(n_spikes.sum()) != table_rows(path):
            problems.append(f"{units}: n_spikes sum to {int(n_spikes.sum())}, {path.name} has {table_rows(path)} rows")
    return problems


# ----------------------------------------------------------------------------- counts store
def counts_sink(session: Session, path: Path, options: ExportOptions) -> SpikeSink:
    """The exact counts store (and, with ``store_rates``, float32 rates) on the export's
    grid; see :class:`spikeprep.rates.writer.CountsWriter`."""
    from ..rates.writer import CountsWriter

    kernel = Kernel(options.sigma_bins, options.taps) if options.store_rates else None
    return CountsWriter(path, make_grid(session.spikes, options.bin_size), session.spikes, rates_kernel=kernel)


def _open_binned(path: Path) -> Any:
    import xarray as xr

    return xr.open_zarr(path)


def _check_binned(path: Path, record: SessionRecord) -> list[str]:
    import zarr

    facts = record.outputs.get("binned", {})
    arr = zarr.open_group(str(path), mode="r")["counts"]
    if list(arr.shape) != list(facts.get("shape", [])):
        return [f"{path}: shape {list(arr.shape)}, session.json says {facts.get('shape')}"]
    per_unit = np.zeros(arr.shape[1], dtype=np.int64)
    step = arr.chunks[0] * 8
    for a in range(0, arr.shape[0], step):
        per_unit += arr[a : a + step].sum(axis=0, dtype=np.int64)
    problems = []
    if int(per_unit.sum()) != facts.get("total"):
        problems.append(f"{path}: counts sum to {int(per_unit.sum())}, session.json says {facts.get('total')}")
    units = path.with_name(OUTPUTS["units"].file)
    if units.exists():
        n_spikes = read_table(units)["n_spikes"].to_numpy()
        if len(n_spikes) == len(per_unit) and (per_unit > n_spikes).any():
            problems.append(f"{path}: some units have more counts than spikes")
    return problems


# ----------------------------------------------------------------------------- the declarations
def _with_session(table: pd.DataFrame, session: Session) -> pd.DataFrame:
    """``table`` with a ``session_id`` column (cross-session queries need no file names).
    spike_times.parquet has none: Allen unit ids are unique across sessions."""
    return table.assign(session_id=np.int64(session.session_id))


def _optional(table: pd.DataFrame | None, columns: Sequence[Column]) -> pd.DataFrame:
    """A part the file may lack, as a table (0 rows with the declared columns when absent)."""
    if table is not None:
        return table
    return pd.DataFrame({c.name: pd.Series(dtype=object if c.dtype == "string" else c.dtype) for c in columns
                         if c.name != "session_id"})


declare(table_output("units", "units.parquet", lambda s: s.units.reset_index(), UNIT_COLUMNS))
declare(spike_output("spike_times", "spike_times.parquet", lambda s, path, options: SpikeTimesWriter(path),
                     read_table, _check_spike_times))
declare(table_output("stimulus", "stimulus.parquet", lambda s: _with_session(s.stimulus, s), STIMULUS_COLUMNS))
declare(table_output("stimulus_conditions", "stimulus_conditions.parquet", lambda s: conditions_table(s.stimulus),
                     STIMULUS_COLUMNS))
declare(table_output("running", "running.parquet", lambda s: _with_session(s.running, s), RUNNING_COLUMNS))
declare(table_output("probes", "probes.parquet", lambda s: s.probes.reset_index(), PROBE_COLUMNS))
declare(table_output("channels", "channels.parquet", lambda s: s.channels.reset_index(), CHANNEL_COLUMNS))
declare(table_output("invalid_times", "invalid_times.parquet", lambda s: s.invalid_times, INVALID_COLUMNS))
declare(table_output("optotagging", "optotagging.parquet",
                     lambda s: _with_session(_optional(s.optotagging, OPTOTAGGING_COLUMNS).reset_index(), s),
                     OPTOTAGGING_COLUMNS))
declare(table_output("eye_tracking", "eye_tracking.parquet",
                     lambda s: _with_session(_optional(s.eye_tracking, EYE_TRACKING_COLUMNS).reset_index()
                                             .rename(columns={"Time (s)": "time"}), s),
                     EYE_TRACKING_COLUMNS))
declare(spike_output("binned", "binned.zarr", counts_sink, _open_binned, _check_binned))
declare(Output("spike_amplitudes", "spike_amplitudes.parquet", write_amplitudes, read_table,
               _check_rows("spike_amplitudes"), AMPLITUDE_COLUMNS, wanted=lambda options: options.amplitudes))
declare(Output("mean_waveforms", "mean_waveforms.zarr", write_waveforms, open_waveforms, check_waveforms,
               wanted=lambda options: options.waveforms))
