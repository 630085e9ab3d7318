"""Write one session's analysis-ready folder atomically, and open it back.

``OUT/session_<id>/`` holds ``units.parquet``, ``spike_times.parquet``,
``stimulus.parquet``, ``running.parquet``, ``binned.zarr`` and, written last,
``session.json``. The folder is built under a temporary name inside ``OUT`` and renamed
into place, so a folder named ``session_<id>`` with ``"status": "complete"`` is always
whole.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from .errors import ExportError
from .rates import DEFAULT_BIN_SIZE, DEFAULT_SIGMA_BINS, DEFAULT_TAPS, Kernel, make_grid
from .ratestore import lazy_rates, write_counts
from .session import Session, SpikeTrains

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["ExportOptions", "atomic_write", "session_dir", "read_status", "is_complete", "write_outputs",
           "open_units", "open_spike_times", "open_spike_trains", "open_stimulus", "open_running",
           "open_counts", "open_rates", "open_sessions", "exported_sessions", "TMP_PREFIX"]

TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
_SPIKE_ROWS_PER_GROUP = 1 << 23


@dataclass(frozen=True)
class ExportOptions:
    """Every parameter that changes what an export writes (recorded in session.json).

    Parameters
    ----------
    bin_size : float
        Bin of the counts grid (s).
    store_rates : bool
        Also store materialised float32 rates in ``binned.zarr``.
    sigma_bins, taps : float, int
        Kernel of the stored rates.
    units_query : str, optional
        A pandas query on the units table; only matching units are exported.
    legacy_pickle : bool
        Also write the notebook's pickles under ``OUT/legacy``.
    isi_threshold_ms : float
        Threshold of ``isi_5ms_pct``.
    """

    bin_size: float = DEFAULT_BIN_SIZE
    store_rates: bool = False
    sigma_bins: float = DEFAULT_SIGMA_BINS
    taps: int = DEFAULT_TAPS
    units_query: str | None = None
    legacy_pickle: bool = False
    isi_threshold_ms: float = 5.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timer:
    """Wall time per named step."""

    seconds: dict[str, float] = field(default_factory=dict)

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t, 3)


def session_dir(out: str | Path, session_id: int) -> Path:
    """``OUT/session_<id>``."""
    return Path(out) / f"session_{int(session_id)}"


def read_status(out: str | Path, session_id: int) -> dict[str, Any] | None:
    """The session's ``session.json``, or None when absent or unreadable."""
    p = session_dir(out, session_id) / "session.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def is_complete(out: str | Path, session_id: int, options: ExportOptions, source_size: int | None) -> bool:
    """True when the session was exported completely with the same options and source size."""
    st = read_status(out, session_id)
    return bool(st and st.get("status") == "complete" and st.get("params") == options.as_dict()
                and (source_size is None or st.get("source_size") == source_size))


# ----------------------------------------------------------------------------- writing
def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write`` on a temporary name beside ``path`` (same suffix), then rename it into place."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_table(df: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def write_spike_times(spikes: SpikeTrains, path: Path) -> None:
    """Long table ``unit_id``, ``time``, grouped by unit, in row groups of ~8 M spikes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("unit_id", pa.int64()), ("time", pa.float64())])
    with pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=["unit_id"],
                          column_encoding={"time": "BYTE_STREAM_SPLIT"}) as w:
        for a, b in spikes.blocks(_SPIKE_ROWS_PER_GROUP):
            block = spikes.block(a, b)
            ids = np.repeat(block.unit_ids, block.n_spikes)
            w.write_table(pa.table({"unit_id": ids, "time": block.times}, schema=schema))


def _invalid_for_json(inv: pd.DataFrame) -> list[dict[str, Any]]:
    return [{"start_time": float(r.start_time), "stop_time": float(r.stop_time), "tags": list(r.tags)}
            for r in inv.itertuples(index=False)]


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def write_outputs(session: Session, out: str | Path, options: ExportOptions, *,
                  extra_timings: dict[str, float] | None = None,
                  legacy: Callable[[Session, Path], list[str]] | None = None,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write one session's folder under ``out`` atomically and return its ``session.json``.

    Parameters
    ----------
    session : Session
        Units already annotated (and filtered) by the pipeline.
    out : path
        The output root; ``session_<id>`` is created or replaced in it.
    options : ExportOptions
    extra_timings : dict, optional
        Timings of earlier stages to record.
    legacy : callable, optional
        Writes the legacy pickles (called before ``session.json`` is written).
    progress : callable, optional
        Called with a number of units after each block of counts.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sid = session.session_id
    tmp = out / f"{TMP_PREFIX}session_{sid}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    timer = Timer(dict(extra_timings or {}))
    try:
        units = session.units.reset_index()
        timer.step("units", lambda: _write_table(units, tmp / "units.parquet"))
        timer.step("spike_times", lambda: write_spike_times(session.spikes, tmp / "spike_times.parquet"))
        timer.step("stimulus", lambda: _write_table(session.stimulus, tmp / "stimulus.parquet"))
        timer.step("running", lambda: _write_table(session.running, tmp / "running.parquet"))
        grid = make_grid(session.spikes, options.bin_size)
        kernel = Kernel(options.sigma_bins, options.taps) if options.store_rates else None
        binned = timer.step("binned", lambda: write_counts(session.spikes, tmp / "binned.zarr", grid,
                                                            rates_kernel=kernel, progress=progress))
        legacy_files = timer.step("legacy", lambda: legacy(session, out)) if legacy else []
        status = {
            "session_id": sid,
            "session_type": session.metadata.get("session_type"),
            "status": "complete",
            "spikeprep_version": _version(),
            "source_file": Path(session.metadata.get("source_file", "")).name,
            "source_size": session.metadata.get("source_size"),
            "layout": session.metadata.get("layout"),
            "params": options.as_dict(),
            "counts": {"units": len(units), "units_in_file": session.metadata.get("n_units"),
                       "spikes": int(len(session.spikes.times)), "stimulus_rows": len(session.stimulus),
                       "running_rows": len(session.running), "binned_shape": binned["shape"],
                       "binned_dtype": binned["dtype"], "binned_total": binned["total"],
                       "binned_max_count": binned["max_count"]},
            "grid": {"bin_size_s": grid.bin_size, "t_start": grid.t_start, "t_stop": grid.t_stop},
            "subject": {k: session.metadata.get(k) for k in ("genotype", "sex", "age", "subject_id")},
            "invalid_times": _invalid_for_json(session.invalid_times),
            "read_warnings": session.metadata.get("read_warnings", []),
            "legacy_files": legacy_files,
            "timings_s": timer.seconds,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / "session.json").write_text(json.dumps(_json_safe(status), indent=1))
        _publish(tmp, session_dir(out, sid))
        return status
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(f"{out}: cannot write session {sid}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``, replacing an older folder (moved aside, then removed)."""
    trash = None
    if final.exists():
        trash = final.with_name(f"{TRASH_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}")
        final.rename(trash)
    tmp.rename(final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _version() -> str:
    from . import __version__

    return __version__


# ----------------------------------------------------------------------------- reading
def _require(out: str | Path, session_id: int, name: str) -> Path:
    p = session_dir(out, session_id) / name
    if not p.exists():
        raise FileNotFoundError(f"{p}: not found (is session {session_id} exported to {out}?)")
    return p


def open_units(out: str | Path, session_id: int) -> pd.DataFrame:
    """The units table, indexed by ``unit_id`` (NWB order)."""
    return pd.read_parquet(_require(out, session_id, "units.parquet")).set_index("unit_id")


def open_spike_trains(out: str | Path, session_id: int) -> SpikeTrains:
    """Every exported spike time as a :class:`SpikeTrains` (units in ``units.parquet`` order)."""
    import pyarrow.parquet as pq

    units = open_units(out, session_id)
    table = pq.read_table(_require(out, session_id, "spike_times.parquet"), columns=["time"])
    times = table.column("time").to_numpy()
    offsets = np.zeros(len(units) + 1, dtype=np.int64)
    np.cumsum(units["n_spikes"].to_numpy(dtype=np.int64), out=offsets[1:])
    return SpikeTrains(times, offsets, units.index.to_numpy(dtype=np.int64))


def open_spike_times(out: str | Path, session_id: int) -> dict[int, np.ndarray]:
    """``{unit_id: spike times}``, like the notebook's ``spike_times`` dict."""
    return open_spike_trains(out, session_id).to_dict()


def open_stimulus(out: str | Path, session_id: int) -> pd.DataFrame:
    """The stimulus table, indexed by ``stimulus_presentation_id``."""
    return pd.read_parquet(_require(out, session_id, "stimulus.parquet")).set_index("stimulus_presentation_id")


def open_running(out: str | Path, session_id: int) -> pd.DataFrame:
    """Running speed: ``start_time``, ``end_time``, ``velocity`` (cm/s)."""
    return pd.read_parquet(_require(out, session_id, "running.parquet"))


def open_counts(out: str | Path, session_id: int) -> "xr.Dataset":
    """The ``binned.zarr`` store as a lazy xarray Dataset (``counts``, maybe ``rates``)."""
    import xarray as xr

    return xr.open_zarr(_require(out, session_id, "binned.zarr"))


def open_rates(out: str | Path, session_id: int, *, sigma_bins: float = DEFAULT_SIGMA_BINS,
               taps: int = DEFAULT_TAPS, sigma_ms: float | None = None, bin_size: float | None = None,
               edge_correction: bool = False, chunks: tuple[int, int] | str | None = None) -> "xr.DataArray":
    """Smoothed firing rates (Hz), lazy float32 ``xarray.DataArray`` (``time`` × ``unit_id``).

    Computed from the exact counts on indexing, so any kernel can be chosen here and a
    window, or one unit's trace, reads and smooths only its own chunks (plus a halo).
    Pass ``chunks`` for a dask-backed array, for reductions over a whole session.

    Parameters
    ----------
    out : path
    session_id : int
    sigma_bins, taps : float, int
        The Gaussian in bins of the result (default: the notebook's, σ = √2 bins, 11 taps).
    sigma_ms : float, optional
        σ in milliseconds instead of bins.
    bin_size : float, optional
        A coarser bin (s), an integer multiple of the stored 5 ms.
    edge_correction : bool
        Divide by the kernel mass inside the grid near its ends.
    chunks : (time, unit) or "auto", optional
        Dask chunks of the result (``"auto"``: 120 s × all units).

    Examples
    --------
    >>> rates = spikeprep.open_rates("OUT", 715093703)
    >>> window = rates.sel(time=slice(3000, 3600)).values   # reads only those chunks
    >>> mean = spikeprep.open_rates("OUT", 715093703, chunks="auto").mean("time").compute()
    """
    store = _require(out, session_id, "binned.zarr")
    stored = float(json.loads((store / "zarr.json").read_text())["attributes"]["bin_size_s"])
    kernel = Kernel.make(sigma_bins=None if sigma_ms is not None else sigma_bins, sigma_ms=sigma_ms, taps=taps,
                         bin_size=bin_size or stored, edge_correction=edge_correction)
    return lazy_rates(store, kernel, bin_size=bin_size, chunks=chunks)


def exported_sessions(out: str | Path) -> list[int]:
    """Ids of the sessions in ``out`` whose ``session.json`` says complete."""
    ids = []
    for d in sorted(Path(out).glob("session_*")):
        try:
            sid = int(d.name.split("_", 1)[1])
        except ValueError:
            continue
        st = read_status(out, sid)
        if st and st.get("status") == "complete":
            ids.append(sid)
    return ids


def open_sessions(out: str | Path) -> pd.DataFrame:
    """One row per exported session: the catalog row when known, plus export counts."""
    rows = []
    for sid in exported_sessions(out):
        st = read_status(out, sid) or {}
        rows.append({"session_id": sid, "session_type": st.get("session_type"), **st.get("subject", {}),
                     "n_units": st.get("counts", {}).get("units"), "n_spikes": st.get("counts", {}).get("spikes"),
                     "source_file": st.get("source_file")})
    df = pd.DataFrame(rows, columns=["session_id", "session_type", "genotype", "sex", "age", "subject_id",
                                     "n_units", "n_spikes", "source_file"]).set_index("session_id")
    catalog = Path(out) / "sessions.parquet"
    if catalog.exists():
        cat = pd.read_parquet(catalog)
        df = df.join(cat.drop(columns=[c for c in cat.columns if c in df.columns]), how="left")
    return df
