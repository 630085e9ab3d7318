"""Run the stages over many sessions: skip done ones, serial or on Dask, QC at the end.

One session is one task. A task never raises: it returns a :class:`Result` whose
``message`` is the one-line reason when it failed, so one bad file never stops others.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .catalog import CATALOG_FILES, build_session_table
from .errors import DownloadError, SpikeprepError
from .export import (TMP_PREFIX, ExportOptions, atomic_write, exported_sessions, is_complete, open_spike_trains,
                     open_units, read_status, write_outputs)
from .layers import add_layers
from .legacy import write_legacy
from .nwb import peek_session_id, read_session
from .qc import is_rs, isi_metrics, notebook_selection, passes_allen_qc, session_summary
from .session import Session

__all__ = ["Result", "find_session_files", "annotate", "export_file", "export_many", "run_qc", "QC_COLUMNS",
           "session_table", "download_sessions", "run_sessions", "Download"]

log = logging.getLogger(__name__)

FRONT_COLUMNS = ["unit_id", "probe_id", "probe_name", "peak_channel_id", "region", "probe_vertical_position",
                 "probe_horizontal_position", "anterior_posterior_ccf_coordinate", "dorsal_ventral_ccf_coordinate",
                 "left_right_ccf_coordinate", "valid_data", "quality"]
DERIVED_COLUMNS = ["n_spikes", "is_rs", "cortical_depth_um", "cortical_depth_norm", "layer", "isi_5ms_pct",
                   "isi_violations_recomputed", "rp_contamination", "passes_allen_qc"]
QC_COLUMNS = ["session_id", "unit_id", "region", "layer", "is_rs", "snr", "isi_5ms_pct", "isi_violations",
              "isi_violations_recomputed", "rp_contamination", "selected"]


@dataclass
class Result:
    """What happened to one input file."""

    path: str
    session_id: int | None
    status: str  # "exported", "skipped" or "failed"
    message: str = ""
    seconds: float = 0.0
    n_units: int | None = None
    n_spikes: int | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def find_session_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders into session NWB files.

    A folder may be an AllenSDK cache (``session_<id>/session_<id>.nwb``) or hold
    ``.nwb`` files directly; probe LFP files are left out.
    """
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(item.glob("session_*/session_*.nwb")) or sorted(item.glob("*.nwb"))
            files.extend(p for p in found if "_lfp" not in p.name)
        else:
            files.append(item)
    return list(dict.fromkeys(files))


def annotate(session: Session, options: ExportOptions) -> Session:
    """Add the derived unit columns; keep only the units matching ``options.units_query``."""
    units = session.units
    units = _with_isi(units, isi_metrics(session.spikes, threshold_ms=options.isi_threshold_ms))
    units["is_rs"] = is_rs(units["waveform_duration"]) if "waveform_duration" in units else False
    units = add_layers(units, session.channels)
    units["passes_allen_qc"] = passes_allen_qc(units)
    spikes = session.spikes
    if options.units_query:
        try:
            keep = units.eval(options.units_query)
        except Exception as exc:  # pandas raises many kinds for a bad query
            raise SpikeprepError(f"bad --units query {options.units_query!r}: {exc}") from exc
        positions = np.flatnonzero(np.asarray(keep, dtype=bool))
        units = units.iloc[positions]
        spikes = spikes.select(positions)
    flat = units.reset_index()
    front = [c for c in FRONT_COLUMNS if c in flat]
    tail = [c for c in DERIVED_COLUMNS if c in flat]
    flat = flat[front + [c for c in flat.columns if c not in front + tail] + tail]
    return Session(session.session_id, flat.set_index("unit_id"), spikes, session.channels, session.probes,
                   session.stimulus, session.running, session.invalid_times, dict(session.metadata))


def _with_isi(units: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """``units`` with the columns of :func:`~spikeprep.qc.isi_metrics` (same unit order)."""
    return units.assign(**{c: metrics[c].to_numpy() for c in metrics.columns})


def _lock(out: Path, session_id: int):
    from filelock import FileLock

    locks = out / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(str(locks / f"session_{session_id}.lock"))


def _remove_stale_temporaries(out: Path, session_id: int) -> None:
    """Leftovers of a killed run of this session (safe: we hold its lock)."""
    for p in out.glob(f"{TMP_PREFIX}session_{session_id}-*"):
        shutil.rmtree(p, ignore_errors=True)


def export_file(path: str | Path, out: str | Path, options: ExportOptions = ExportOptions(), *,
                force: bool = False, verbose: bool = False) -> Result:
    """Read, annotate and export one session file; never raises for a bad file.

    Parameters
    ----------
    path : path
        A session NWB file.
    out : path
        The output root.
    options : ExportOptions
    force : bool
        Re-export even when a complete export with the same options exists.
    verbose : bool
        Put the traceback of an unexpected error in the message.
    """
    path, out = Path(path), Path(out)
    t0 = time.perf_counter()
    sid = None
    try:
        sid = peek_session_id(path)
        size = path.stat().st_size
        out.mkdir(parents=True, exist_ok=True)
        with _lock(out, sid):
            if not force and is_complete(out, sid, options, size):
                return Result(str(path), sid, "skipped", "already exported", time.perf_counter() - t0)
            _remove_stale_temporaries(out, sid)
            t_read = time.perf_counter()
            session = read_session(path)
            t_annotate = time.perf_counter()
            session = annotate(session, options)
            timings = {"read": round(t_annotate - t_read, 3), "annotate": round(time.perf_counter() - t_annotate, 3)}
            status = write_outputs(session, out, options, extra_timings=timings,
                                   legacy=write_legacy if options.legacy_pickle else None)
        return Result(str(path), sid, "exported", "", time.perf_counter() - t0,
                      status["counts"]["units"], status["counts"]["spikes"])
    except SpikeprepError as exc:
        return Result(str(path), sid, "failed", str(exc), time.perf_counter() - t0)
    except MemoryError:
        return Result(str(path), sid, "failed", f"{path}: out of memory", time.perf_counter() - t0)
    except Exception as exc:  # a bug or an unforeseen fault: still one line, the traceback on request
        detail = traceback.format_exc() if verbose else f"{type(exc).__name__}: {exc}"
        return Result(str(path), sid, "failed", f"{path}: unexpected error: {detail}", time.perf_counter() - t0)


def export_many(paths: Sequence[str | Path], out: str | Path, options: ExportOptions = ExportOptions(), *,
                workers: int | None = None, scheduler: str | None = None, force: bool = False,
                progress: bool = True, verbose: bool = False,
                on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Export many session files: serially, on a local Dask cluster, or on an existing one.

    Parameters
    ----------
    paths : sequence of path
    out : path
    options : ExportOptions
    workers : int, optional
        Start a ``LocalCluster`` with this many single-threaded worker processes.
    scheduler : str, optional
        Address of an existing Dask scheduler (workers must see the same paths).
    force, progress, verbose : bool
    on_result : callable, optional
        Called with each Result as it arrives.
    """
    from tqdm.auto import tqdm

    results: list[Result] = []
    bar = tqdm(total=len(paths), unit="session", disable=not progress, desc="export")

    def done(r: Result) -> None:
        results.append(r)
        bar.update(1)
        bar.set_postfix_str(f"{r.session_id}: {r.status}")
        if on_result:
            on_result(r)

    try:
        if workers is None and scheduler is None:
            for p in paths:
                done(export_file(p, out, options, force=force, verbose=verbose))
        else:
            _run_on_dask(paths, out, options, workers, scheduler, force, verbose, done)
    finally:
        bar.close()
    order = {str(p): i for i, p in enumerate(paths)}
    return sorted(results, key=lambda r: order.get(r.path, len(order)))


def _run_on_dask(paths: Sequence[str | Path], out: str | Path, options: ExportOptions, workers: int | None,
                 scheduler: str | None, force: bool, verbose: bool, done: Callable[[Result], None]) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(export_file, str(p), str(out), options, force=force, verbose=verbose, pure=False): p
                   for p in paths}
        for fut in as_completed(futures):
            p = futures[fut]
            try:
                done(fut.result())
            except Exception as exc:  # the worker died (killed, out of memory): the others go on
                done(Result(str(p), None, "failed", f"{p}: worker failed: {type(exc).__name__}: {exc}"))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ----------------------------------------------------------------------------- QC
_ISI_COLUMNS = ("isi_5ms_pct", "isi_violations_recomputed", "rp_contamination")


def qc_table(out: str | Path, session_id: int, *, select: str | None = None, threshold_ms: float = 5.0) -> pd.DataFrame:
    """Per-unit ISI QC of one exported session.

    Uses the metrics the export stored in ``units.parquet`` when they were computed
    with the same threshold; otherwise recomputes them from ``spike_times.parquet``.
    """
    units = open_units(out, session_id)
    exported_with = (read_status(out, session_id) or {}).get("params", {}).get("isi_threshold_ms")
    if exported_with != threshold_ms or not set(_ISI_COLUMNS) <= set(units.columns):
        units = _with_isi(units, isi_metrics(open_spike_trains(out, session_id), threshold_ms=threshold_ms))
    selected = units.eval(select) if select else notebook_selection(units)
    df = units.reset_index().assign(session_id=session_id, selected=np.asarray(selected, dtype=bool))
    for c in QC_COLUMNS:
        if c not in df:
            df[c] = np.nan
    return df[QC_COLUMNS]


def run_qc(out: str | Path, *, select: str | None = None, threshold_ms: float = 5.0,
           echo: Callable[[str], None] = print) -> pd.DataFrame:
    """ISI QC over every exported session in ``out``; writes ``OUT/qc/``.

    Writes ``isi_violations.parquet`` (per unit), ``isi_summary.csv`` (per session mean
    and std over the selected units) and ``isi_violations.png``; prints the notebook's
    lines. Returns the summary.
    """
    from .plots import isi_figure

    out = Path(out)
    ids = exported_sessions(out)
    if not ids:
        raise SpikeprepError(f"{out}: no exported session to check")
    per_unit = pd.concat([qc_table(out, sid, select=select, threshold_ms=threshold_ms) for sid in ids],
                         ignore_index=True)
    summary = session_summary(per_unit)
    qc = out / "qc"
    qc.mkdir(exist_ok=True)
    atomic_write(qc / "isi_violations.parquet", lambda p: per_unit.to_parquet(p, index=False))
    atomic_write(qc / "isi_summary.csv", lambda p: summary.to_csv(p, index=False))
    atomic_write(qc / "isi_violations.png", lambda p: isi_figure(per_unit, summary, p, threshold_ms=threshold_ms))
    for row in summary.itertuples(index=False):
        echo(f"session {row.session_id} ({row.n_units} units): {row.mean_pct:.2f} +- {row.std_pct:.2f} "
             f"% of spikes per neuron violate {threshold_ms:g} ms condition.")
    means = summary["mean_pct"].dropna()
    echo(f"all {len(means)} sessions: {means.mean():.2f} +- {means.std(ddof=0):.2f} "
         f"% of spikes per neuron violate {threshold_ms:g} ms condition.")
    return summary


# ----------------------------------------------------------------------------- catalog and downloads
def session_table(base_url: str | None = None, cache: str | Path | None = None, *, offline: bool = False) -> pd.DataFrame:
    """The session table (AllenSDK's ``get_session_table()`` columns), cached in ``cache``.

    Parameters
    ----------
    base_url : str, optional
        Bucket or mirror (default ``$SPIKEPREP_BASE_URL`` or Allen's bucket).
    cache : path, optional
        Folder holding (or receiving) the catalog CSVs; default ``~/.cache/spikeprep``.
    offline : bool
        Use the cached CSVs only.
    """
    import httpx

    from .fetch import base_url as resolve, download_file

    folder = Path(cache) if cache else Path.home() / ".cache" / "spikeprep"
    if not offline:
        url = resolve(base_url)
        with httpx.Client(timeout=30.0, follow_redirects=True) as client:
            for name in CATALOG_FILES:
                try:
                    download_file(url + name, folder / name, client=client, attempts=4, max_wait=5.0)
                except DownloadError as exc:
                    if (folder / name).exists():
                        log.warning("%s; using the cached copy", exc)
                    elif name == "sessions.csv":
                        raise
    return build_session_table(folder)


@dataclass
class Download:
    """One session file's download outcome."""

    session_id: int
    path: Path
    error: str = ""


def download_sessions(ids: Sequence[int], cache: str | Path, *, base_url: str | None = None,
                      progress: bool = True, offline_ok: bool = True, attempts: int = 8,
                      max_wait: float = 30.0) -> list[Download]:
    """Download session NWB files into ``cache`` (AllenSDK layout); failures don't stop others.

    A file already in the cache is verified against the server's size (resumed or
    re-fetched when it differs); when the server cannot be reached, files already in
    the cache are used as they are, with a warning.
    """
    import httpx

    from .fetch import download_file, session_nwb_path, session_url

    out = []
    with httpx.Client(timeout=30.0, follow_redirects=True) as client:
        for sid in ids:
            dest = session_nwb_path(cache, sid)
            try:
                download_file(session_url(sid, base_url), dest, client=client, progress=progress,
                              attempts=attempts, max_wait=max_wait)
                out.append(Download(sid, dest))
            except DownloadError as exc:
                if offline_ok and dest.exists() and _unreachable(exc):
                    log.warning("%s; using %s as it is", exc, dest)
                    out.append(Download(sid, dest))
                else:
                    out.append(Download(sid, dest, str(exc)))
    return out


def _unreachable(exc: DownloadError) -> bool:
    import httpx

    cause = exc.__cause__
    return isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout))


def run_sessions(ids: Sequence[int], cache: str | Path, out: str | Path, options: ExportOptions = ExportOptions(), *,
                 base_url: str | None = None, workers: int | None = None, scheduler: str | None = None,
                 force: bool = False, progress: bool = True, verbose: bool = False) -> list[Result]:
    """Download and export sessions; each is exported as soon as its file is there.

    Sessions already exported with the same options are skipped without downloading.
    """
    from .fetch import session_nwb_path

    results: list[Result] = []
    todo = []
    for sid in ids:
        local = session_nwb_path(cache, sid)
        size = local.stat().st_size if local.exists() else None
        if not force and size is not None and is_complete(out, sid, options, size):
            results.append(Result(str(local), sid, "skipped", "already exported"))
        else:
            todo.append(sid)
    on_cluster = workers is not None or scheduler is not None
    ready: list[Path] = []
    for sid in todo:
        d = download_sessions([sid], cache, base_url=base_url, progress=progress)[0]
        if d.error:
            results.append(Result(str(d.path), sid, "failed", d.error))
        elif on_cluster:
            ready.append(d.path)  # exported together on the cluster below
        else:
            results.append(export_file(d.path, out, options, force=force, verbose=verbose))
    if ready:
        results += export_many(ready, out, options, workers=workers, scheduler=scheduler, force=force,
                               progress=progress, verbose=verbose)
    try:
        session_table(base_url, cache).to_parquet(Path(out) / "sessions.parquet")
    except (SpikeprepError, OSError, ValueError) as exc:
        log.warning("no session table written to %s: %s", out, exc)
    return results
