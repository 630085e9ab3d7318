"""Open exported sessions back: ``open_units``, ``open_spike_times``, ``open_rates``, …

Every reader goes through the output registry (:mod:`spikeprep.export.outputs`) and the
folder object (:class:`~spikeprep.export.layout.SessionFolder`), so file names live in one
place. A missing file raises FileNotFoundError naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import SpikeprepError
from ..core.model import SpikeTrains
from ..core.options import SIGMA_BINS, TAPS
from ..rates.binning import Kernel
from . import outputs as registry
from .layout import OutFolder, SessionFolder, SessionRecord

if TYPE_CHECKING:
    import pyarrow.dataset as pads
    import xarray as xr

__all__ = ["open_output", "open_record", "open_units", "units_dataset", "open_spike_times", "open_spike_trains", "open_stimulus",
           "open_running", "open_counts", "open_rates", "rates_kernel", "open_sessions", "exported_sessions"]


def _path(out: str | Path, session_id: int, name: str) -> Path:
    return SessionFolder(out, session_id).file(registry.OUTPUTS[name].file)


def open_output(out: str | Path, session_id: int, name: str) -> Any:
    """Output ``name`` of :data:`spikeprep.export.outputs.OUTPUTS` as its reader opens it."""
    return registry.OUTPUTS[name].read(_path(out, session_id, name))


def open_record(out: str | Path, session_id: int) -> SessionRecord | None:
    """The session's ``session.json`` as a :class:`~spikeprep.export.layout.SessionRecord` (None when absent)."""
    return SessionFolder(out, session_id).read_record()


def open_units(out: str | Path, session_id: int | None = None, *,
               columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The units table, indexed by ``unit_id`` (NWB order); columns as in the README.

    Parameters
    ----------
    out : path
    session_id : int, optional
        Without it, every exported session's units in one table (read through
        :func:`units_dataset`; ``session_id`` tells them apart).
    columns : list of str, optional
        Read only these columns (and ``unit_id``, ``session_id``).
    """
    names = None if columns is None else list(dict.fromkeys(["unit_id", "session_id", *columns]))
    if session_id is None:
        return units_dataset(out).to_table(columns=names).to_pandas().set_index("unit_id")
    units = open_output(out, session_id, "units")
    return (units if names is None else units[[c for c in names if c in units]]).set_index("unit_id")


def units_dataset(out: str | Path) -> "pads.Dataset":
    """Every exported session's ``units.parquet`` as one lazy pyarrow Dataset (columns
    and filters are pushed down; sessions with extra metric columns are unified, missing
    values null)."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    root = OutFolder(out)
    files = [str(root.session(sid) / registry.OUTPUTS["units"].file) for sid in root.exported()]
    if not files:
        raise SpikeprepError(f"{out}: no exported session")
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    return ds.dataset(files, schema=schema, format="parquet")


def open_spike_trains(out: str | Path, session_id: int) -> SpikeTrains:
    """Every exported spike time as a :class:`SpikeTrains` (units in ``units.parquet`` order).

    Reads row group by row group (two threads) into one preallocated array, so the peak
    is the spike times plus one row group.
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    units = open_units(out, session_id)
    path = _path(out, session_id, "spike_times")
    meta = pq.ParquetFile(path).metadata
    starts = np.zeros(meta.num_row_groups + 1, dtype=np.int64)
    np.cumsum([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], out=starts[1:])
    times = np.empty(int(starts[-1]), dtype=np.float64)

    def read(i: int) -> None:
        column = pq.ParquetFile(path).read_row_group(i, columns=["time"], use_threads=False).column(0)
        pos = int(starts[i])
        for chunk in column.chunks:
            times[pos : pos + len(chunk)] = chunk.to_numpy()
            pos += len(chunk)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(read, range(meta.num_row_groups)))
    offsets = np.zeros(len(units) + 1, dtype=np.int64)
    np.cumsum(units["n_spikes"].to_numpy(dtype=np.int64), out=offsets[1:])
    return SpikeTrains(times, offsets, units.index.to_numpy(dtype=np.int64))


def open_spike_times(out: str | Path, session_id: int) -> dict[int, np.ndarray]:
    """``{unit_id: spike times (s)}``, like the notebook's ``spike_times`` dict."""
    return open_spike_trains(out, session_id).to_dict()


def open_stimulus(out: str | Path, session_id: int) -> pd.DataFrame:
    """The stimulus table (times in s), indexed by ``stimulus_presentation_id``."""
    return open_output(out, session_id, "stimulus").set_index("stimulus_presentation_id")


def open_running(out: str | Path, session_id: int) -> pd.DataFrame:
    """Running speed: ``start_time``, ``end_time`` (s), ``velocity`` (cm/s)."""
    return open_output(out, session_id, "running")


def open_counts(out: str | Path, session_id: int) -> "xr.Dataset":
    """The ``binned.zarr`` store as a lazy xarray Dataset (``counts``, maybe ``rates``)."""
    return open_output(out, session_id, "binned")


def open_rates(out: str | Path, session_id: int, *, sigma_bins: float = SIGMA_BINS, taps: int = TAPS,
               sigma_ms: float | None = None, bin_size: float | None = None, edge_correction: bool = False,
               chunks: tuple[int, int] | str | None = None) -> "xr.DataArray":
    """Smoothed firing rates (Hz), lazy float32 ``xarray.DataArray`` (``time`` × ``unit_id``).

    Computed from the exact counts on indexing, so any kernel can be chosen here and a
    window, or one unit's trace, reads and smooths only its own chunks (plus a halo),
    at about the cost of reading those counts. Pass ``chunks`` for a dask-backed array;
    for reductions over a whole session, :func:`spikeprep.rates_mean` (exact, no
    convolution), :func:`spikeprep.rates_summary` and
    :func:`spikeprep.rates_correlation` are faster and hold less.

    Parameters
    ----------
    out : path
    session_id : int
    sigma_bins, taps : float, int
        The Gaussian in bins of the result (default: the notebook's, σ = √2 bins, 11 taps).
    sigma_ms : float, optional
        σ in milliseconds instead of bins.
    bin_size : float, optional
        A coarser bin (s), an integer multiple of the store's bin (5 ms by default).
    edge_correction : bool
        Divide by the kernel mass inside the grid near its ends.
    chunks : (time, unit) or "auto", optional
        Dask chunks of the result (``"auto"``: 120 s × all units).

    Examples
    --------
    >>> rates = spikeprep.open_rates("OUT", 715093703)
    >>> window = rates.sel(time=slice(3000, 3600)).values   # reads only those chunks
    >>> trace = rates.sel(unit_id=950930145).values            # one unit, whole session
    >>> stats = spikeprep.rates_summary("OUT", 715093703)        # mean, std, max per unit
    """
    from ..rates.store import lazy_rates

    store, kernel = rates_kernel(out, session_id, sigma_bins=sigma_bins, taps=taps, sigma_ms=sigma_ms,
                                 bin_size=bin_size, edge_correction=edge_correction)
    return lazy_rates(store, kernel, bin_size=bin_size, chunks=chunks)


def rates_kernel(out: str | Path, session_id: int, *, sigma_bins: float = SIGMA_BINS, taps: int = TAPS,
                 sigma_ms: float | None = None, bin_size: float | None = None,
                 edge_correction: bool = False) -> tuple[Path, Kernel]:
    """The session's counts store and the :class:`~spikeprep.rates.binning.Kernel` that
    :func:`open_rates`'s arguments describe (σ in bins of the result, or in ms)."""
    from ..rates.store import store_bin_size

    store = _path(out, session_id, "binned")
    kernel = Kernel.make(sigma_bins=None if sigma_ms is not None else sigma_bins, sigma_ms=sigma_ms, taps=taps,
                         bin_size=bin_size or store_bin_size(store), edge_correction=edge_correction)
    return store, kernel


def exported_sessions(out: str | Path) -> list[int]:
    """Ids of the sessions in ``out`` whose export is complete under the current schema."""
    return OutFolder(out).exported()


def open_sessions(out: str | Path) -> pd.DataFrame:
    """One row per exported session: the catalog row when known, plus export counts."""
    root = OutFolder(out)
    rows = []
    for sid in root.exported():
        rec = root.session(sid).read_record()
        assert rec is not None
        rows.append({"session_id": sid, "session_type": rec.session_type, **rec.subject,
                     "n_units": rec.counts.get("units"), "n_spikes": rec.counts.get("spikes"),
                     "source_file": rec.source.name if rec.source else None})
    df = pd.DataFrame(rows, columns=["session_id", "session_type", "genotype", "sex", "age", "subject_id",
                                     "n_units", "n_spikes", "source_file"]).set_index("session_id")
    if root.catalog.exists():
        cat = pd.read_parquet(root.catalog)
        df = df.join(cat.drop(columns=[c for c in cat.columns if c in df.columns]), how="left")
    return df
