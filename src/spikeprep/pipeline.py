"""Run the stages over many sessions: skip done ones, serial or on Dask, QC at the end.

One session is one task. A task never raises: it returns a :class:`Result` whose
``message`` is the one-line reason when it failed, so one bad file never stops others.
This module schedules; the stages (read, annotate, write, QC) live in their own modules.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .core.errors import SpikeprepError
from .core.options import ExportOptions
from .core.runtime import paused_gc
from .export.annotate import annotate
from .export.layout import OutFolder, SessionFolder
from .export.qc import IsiCounter
from .export.write import write_outputs
from .io.bucket import download_sessions, session_table
from .io.nwb import peek_session_id, streamed_session
from .io.resolve import open_source
from .io.source import Source, is_url
from .report.qc import run_qc

__all__ = ["Result", "Outcome", "find_session_files", "export_file", "export_many", "run_sessions", "export_then_qc",
           "run_then_qc", "align_one", "align_many", "metrics_one", "metrics_many"]

log = logging.getLogger(__name__)


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


@dataclass
class Outcome:
    """Results of a many-session job and of the QC that followed it.

    Attributes
    ----------
    results : list of Result
    qc_error : str
        The one-line reason the QC failed ("" when it ran or was not asked for).
    """

    results: list[Result]
    qc_error: str = ""


def find_session_files(inputs: Iterable[str | Path]) -> list[Path | str]:
    """Expand files and folders into session NWB files; http(s) URLs are kept.

    A folder may be an AllenSDK cache (``session_<id>/session_<id>.nwb``) or hold
    ``.nwb`` files directly; probe LFP files are left out.
    """
    files: list[Path | str] = []
    for text in map(str, inputs):
        if is_url(text):  # streamed: kept as it is
            files.append(text)
            continue
        item = Path(text)
        if item.is_dir():
            found = sorted(item.glob("session_*/session_*.nwb")) or sorted(item.glob("*.nwb"))
            files.extend(p for p in found if "_lfp" not in p.name)
        else:
            files.append(item)
    return list(dict.fromkeys(files))


def export_file(path: str | Path | Source, out: str | Path, options: ExportOptions = ExportOptions(), *,
                force: bool = False, verbose: bool = False, cache: str | Path | None = None,
                keep_cache: bool = False, progress: bool = False) -> Result:
    """Read, annotate and export one session file or URL; never raises for a bad input.

    Parameters
    ----------
    path : path, URL or Source
        A session NWB file, or its http(s) URL: then only the byte ranges the export
        needs are fetched (:class:`spikeprep.io.remote.HttpSource`).
    out : path
        The output root.
    options : ExportOptions
    force : bool
        Re-export even when a complete export with the same options exists.
    verbose : bool
        Put the traceback of an unexpected error in the message.
    cache : path, optional
        For a URL: where the block cache lives (a rerun after a failure fetches nothing
        twice); default ``~/.cache/spikeprep``.
    keep_cache : bool
        For a URL: keep the block cache after a successful export.
    progress : bool
        A bar over the session's outputs (on a terminal).
    """
    source = open_source(path, cache)
    path = source.location
    t0 = time.perf_counter()
    sid = None
    finished = False  # a streamed source's block cache goes once the session is exported or skipped
    try:
        sid = peek_session_id(source)
        folder = SessionFolder(out, sid)
        try:
            folder.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpikeprepError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from exc
        with folder.lock():
            if not force and folder.is_complete(options.as_dict(), source.info()):
                finished = True
                return Result(path, sid, "skipped", "already exported", time.perf_counter() - t0)
            folder.remove_stale_temporaries()
            t_read = time.perf_counter()
            isi = IsiCounter(threshold_ms=options.isi_threshold_ms)  # counted while the file is checked
            with paused_gc(), streamed_session(source, visit=isi.add) as session:  # spike times stay in the file
                t_annotate = time.perf_counter()
                session = annotate(session, options, isi=isi.metrics(session.spikes.unit_ids))
                timings = {"read": round(t_annotate - t_read, 3),
                           "annotate": round(time.perf_counter() - t_annotate, 3)}
                record = write_outputs(session, out, options, source=source, timings=timings, progress=progress)
        finished = True
        return Result(path, sid, "exported", "", time.perf_counter() - t0, record.counts["units"],
                      record.counts["spikes"])
    except SpikeprepError as exc:
        return Result(path, sid, "failed", str(exc), time.perf_counter() - t0)
    except MemoryError:
        return Result(path, sid, "failed", f"{path}: out of memory", time.perf_counter() - t0)
    except Exception as exc:  # a bug or an unforeseen fault: still one line, the traceback on request
        detail = traceback.format_exc() if verbose else f"{type(exc).__name__}: {exc}"
        return Result(path, sid, "failed", f"{path}: unexpected error: {detail}", time.perf_counter() - t0)
    finally:
        _release(source, finished, keep_cache)


def _release(source: Source, finished: bool, keep_cache: bool) -> None:
    """A streamed source's block cache goes once its session is exported or skipped; a
    failed export keeps it, so that the rerun resumes from it. (httpx, 0.15 s to import,
    is loaded only for URLs.)"""
    if not is_url(source.location):
        return
    from .io.remote import HttpSource

    if isinstance(source, HttpSource) and finished:
        source.finish(keep_cache)
    elif isinstance(source, HttpSource):
        source.close()


def _schedule(task: Callable[..., Result], items: Sequence[Any], *, desc: str, workers: int | None,
              scheduler: str | None, show_bar: bool, on_result: Callable[[Result], None] | None = None,
              on_interrupt: Callable[[], None] | None = None, **kwargs: Any) -> list[Result]:
    """``task(item, **kwargs)`` for every item: serially, on a local Dask cluster of
    ``workers`` single-threaded processes, or on the cluster at ``scheduler``. Results
    come back in the order of ``items``; a task never raises, and a dead worker is a
    failed result, so one bad session never stops the others."""
    from tqdm.auto import tqdm

    results: dict[int, Result] = {}
    bar = tqdm(total=len(items), unit="session", disable=None if show_bar else True, desc=desc)

    def done(k: int, r: Result) -> None:
        results[k] = r
        bar.update(1)
        bar.set_postfix_str(f"{r.session_id}: {r.status}")
        if on_result:
            on_result(r)

    try:
        if workers is None and scheduler is None:
            for k, item in enumerate(items):
                done(k, task(item, **kwargs))
        else:
            _run_on_dask(task, items, workers, scheduler, done, kwargs)
    except KeyboardInterrupt:
        if on_interrupt is not None:
            on_interrupt()  # what killed workers left behind
        raise
    finally:
        bar.close()
    return [results[k] for k in sorted(results)]


def _run_on_dask(task: Callable[..., Result], items: Sequence[Any], workers: int | None, scheduler: str | None,
                 done: Callable[[int, Result], None], kwargs: dict[str, Any]) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(task, item, **kwargs, pure=False): k for k, item in enumerate(items)}
        for fut in as_completed(futures):
            k = futures[fut]
            try:
                done(k, fut.result())
            except Exception as exc:  # the worker died (killed, out of memory): the others go on
                item = items[k]
                done(k, Result(str(item), None, "failed", f"{item}: worker failed: {type(exc).__name__}: {exc}"))
    except KeyboardInterrupt:
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # no shutdown warnings after Ctrl-C
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def export_many(paths: Sequence[str | Path], out: str | Path, options: ExportOptions = ExportOptions(), *,
                workers: int | None = None, scheduler: str | None = None, force: bool = False,
                progress: bool = True, verbose: bool = False, cache: str | Path | None = None,
                keep_cache: bool = False, on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Export many session files or URLs: serially, on a local Dask cluster, or on an existing one.

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
    cache, keep_cache : path, bool
        For URLs: the block cache's folder, and whether to keep it (see :func:`export_file`).
    on_result : callable, optional
        Called with each Result as it arrives.
    """
    paths = [str(p) for p in paths]
    clashes = _shared_session_ids(paths)
    todo = [p for p in paths if p not in clashes]
    results = {r.path: r for r in _schedule(
        export_file, todo, desc="export", workers=workers, scheduler=scheduler, show_bar=progress,
        on_result=on_result, on_interrupt=lambda: OutFolder(out).remove_orphan_temporaries(), out=str(out),
        options=options, force=force, verbose=verbose, cache=None if cache is None else str(cache),
        keep_cache=keep_cache, progress=progress and workers is None and scheduler is None)}
    results.update(clashes)
    return [results[p] for p in paths]


def _shared_session_ids(paths: Sequence[str]) -> dict[str, Result]:
    """Failed results for local files that hold the same session as another input: the
    second would silently replace the first's folder."""
    owners: dict[int, list[str]] = {}
    for p in paths:
        if is_url(p):
            continue
        try:
            owners.setdefault(peek_session_id(p), []).append(p)
        except SpikeprepError:
            continue  # export_file reports it
    clashes = {}
    for sid, files in owners.items():
        for p in files if len(files) > 1 else []:
            others = ", ".join(f for f in files if f != p)
            clashes[p] = Result(p, sid, "failed", f"{p}: session {sid} is also in {others}; export them to "
                                                  f"different --out folders")
    return clashes


def _on_session(session_id: int, out: str | Path, work: Callable[[], tuple[str, str, int | None]],
                verbose: bool) -> Result:
    """``work()`` (status, note, units) on one exported session as a Result; never raises:
    an error is one line naming the session's folder (the traceback with ``verbose``)."""
    t0 = time.perf_counter()
    where = str(SessionFolder(out, session_id).path)
    try:
        status, note, units = work()
        return Result(where, session_id, status, note, time.perf_counter() - t0, units, None)
    except SpikeprepError as exc:
        return Result(where, session_id, "failed", str(exc), time.perf_counter() - t0)
    except Exception as exc:  # a bug or an unforeseen fault: still one line, the traceback on request
        detail = traceback.format_exc() if verbose else f"{type(exc).__name__}: {exc}"
        return Result(where, session_id, "failed", f"{where}: unexpected error: {detail}", time.perf_counter() - t0)


def align_one(session_id: int, out: str | Path, stimulus: str, window: tuple[float, float], bin_size: float, *,
              force: bool = False, unit_progress: bool = False, verbose: bool = False) -> Result:
    """:func:`spikeprep.analysis.aligned_store.align_session` for one session; never raises."""
    from .analysis.aligned_store import align_session

    def work() -> tuple[str, str, int | None]:
        r = align_session(out, session_id, stimulus, window, bin_size, force=force, progress=unit_progress)
        return r["status"], "" if r["status"] == "aligned" else "already aligned", r["units"]

    return _on_session(session_id, out, work, verbose)


def align_many(out: str | Path, stimulus: str, window: tuple[float, float], bin_size: float, *,
               session_ids: Sequence[int] | None = None, workers: int | None = None, scheduler: str | None = None,
               force: bool = False, progress: bool = True, verbose: bool = False) -> list[Result]:
    """Aligned counts and condition statistics of ``stimulus`` for many exported sessions
    (default: every complete export in ``out``), serially or on Dask."""
    ids = list(session_ids) if session_ids is not None else OutFolder(out).exported()
    return _schedule(align_one, ids, desc="align", workers=workers, scheduler=scheduler, show_bar=progress,
                     out=str(out), stimulus=stimulus, window=tuple(window), bin_size=bin_size, force=force,
                     unit_progress=progress and workers is None and scheduler is None, verbose=verbose)


def metrics_one(session_id: int, out: str | Path, *, force: bool = False, seed: int = 0,
                verbose: bool = False) -> Result:
    """:func:`spikeprep.analysis.tuning.outputs.write_metrics` for one session; never raises."""
    from .analysis.tuning.outputs import write_metrics

    def work() -> tuple[str, str, int | None]:
        r = write_metrics(out, session_id, force=force, seed=seed)
        return r["status"], "already computed" if r["status"] == "skipped" else "; ".join(r["notes"]), r["units"]

    return _on_session(session_id, out, work, verbose)


def metrics_many(out: str | Path, *, session_ids: Sequence[int] | None = None, workers: int | None = None,
                 scheduler: str | None = None, force: bool = False, seed: int = 0, progress: bool = True,
                 verbose: bool = False) -> list[Result]:
    """Every stimulus analysis of many exported sessions (default: every complete export
    in ``out``), serially or on Dask, then ``OUT/unit_metrics.parquet`` across them."""
    from .analysis.tuning.outputs import collect_metrics

    ids = list(session_ids) if session_ids is not None else OutFolder(out).exported()
    results = _schedule(metrics_one, ids, desc="metrics", workers=workers, scheduler=scheduler, show_bar=progress,
                        out=str(out), force=force, seed=seed, verbose=verbose)
    if any(r.ok for r in results):
        collect_metrics(out)
    return results


def run_sessions(ids: Sequence[int], cache: str | Path, out: str | Path, options: ExportOptions = ExportOptions(), *,
                 base_url: str | None = None, workers: int | None = None, scheduler: str | None = None,
                 force: bool = False, progress: bool = True, verbose: bool = False, stream: bool = False,
                 keep_cache: bool = False, offline: bool = False) -> list[Result]:
    """Download and export sessions; each is exported as soon as its file is there.

    Sessions already exported with the same options are skipped without downloading.
    With ``stream``, a session is exported straight from its URL (only the byte ranges
    it needs), unless ``cache`` already holds the whole file, which goes first. With
    ``offline``, the server is never asked: files in ``cache`` are exported as they are.
    """
    from .io.download import session_nwb_path, session_url

    results: list[Result] = []
    todo = []
    for sid in ids:
        local = open_source(session_nwb_path(cache, sid))
        if not force and Path(local.location).exists() and SessionFolder(out, sid).is_complete(options.as_dict(),
                                                                                                local.info()):
            results.append(Result(local.location, sid, "skipped", "already exported"))
        else:
            todo.append(sid)
    on_cluster = workers is not None or scheduler is not None
    if offline:
        for sid in todo:
            path = session_nwb_path(cache, sid)
            results.append(export_file(path, out, options, force=force, verbose=verbose) if path.exists() else
                           Result(str(path), sid, "failed", f"{path}: not in the cache (offline: nothing is downloaded)"))
        todo = []
    if stream:
        inputs = [_local_copy(session_nwb_path(cache, sid), session_url(sid, base_url)) for sid in todo]
        results += export_many(inputs, out, options, workers=workers, scheduler=scheduler, force=force,
                               progress=progress, verbose=verbose, cache=cache, keep_cache=keep_cache)
        todo = []
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
    if any(r.status == "exported" for r in results):  # beside the exported sessions, when some are new
        try:
            session_table(base_url, cache, offline=offline).to_parquet(OutFolder(out).catalog)
        except (SpikeprepError, OSError, ValueError) as exc:
            log.warning("no session table written to %s: %s", out, exc)
    return results


def _local_copy(local: Path, url: str) -> str:
    """``local`` when it is the whole file the server has (or the server cannot be
    reached and it is there), else ``url``."""
    if not local.exists():
        return url
    import httpx

    from .io.download import remote_info

    try:
        with httpx.Client(timeout=10.0, follow_redirects=True) as client:
            same = remote_info(client, url, attempts=2, max_wait=1.0).size == local.stat().st_size
    except (SpikeprepError, httpx.HTTPError) as exc:
        log.warning("%s; using %s as it is", exc, local)
        return str(local)
    return str(local) if same else url


def _then_qc(results: list[Result], out: str | Path, options: ExportOptions, qc: bool, verbose: bool,
             echo: Callable[[str], None], progress: bool = False) -> Outcome:
    """QC every exported session of ``out`` once at least one session is ready."""
    if not qc or not any(r.ok for r in results):
        return Outcome(results)
    try:
        run_qc(out, threshold_ms=options.isi_threshold_ms, echo=echo, progress=progress)
        echo(f"QC written to {OutFolder(out).qc}")
        return Outcome(results)
    except Exception as exc:  # QC of sessions that were exported must not hide their results
        detail = traceback.format_exc() if verbose else str(exc) or type(exc).__name__
        return Outcome(results, f"qc: {detail}")


def export_then_qc(paths: Sequence[str | Path], out: str | Path, options: ExportOptions = ExportOptions(), *,
                   qc: bool = True, verbose: bool = False, echo: Callable[[str], None] = print, **kwargs) -> Outcome:
    """:func:`export_many` (``kwargs`` are its own), then the ISI QC of ``out`` (``spikeprep export``)."""
    results = export_many(paths, out, options, verbose=verbose, **kwargs)
    return _then_qc(results, out, options, qc, verbose, echo, kwargs.get("progress", True))


def run_then_qc(ids: Sequence[int], cache: str | Path, out: str | Path, options: ExportOptions = ExportOptions(), *,
                qc: bool = True, verbose: bool = False, echo: Callable[[str], None] = print, **kwargs) -> Outcome:
    """:func:`run_sessions` (``kwargs`` are its own), then, with ``qc``, the ISI QC of
    ``out`` (``spikeprep run``)."""
    results = run_sessions(ids, cache, out, options, verbose=verbose, **kwargs)
    return _then_qc(results, out, options, qc, verbose, echo, kwargs.get("progress", True))
