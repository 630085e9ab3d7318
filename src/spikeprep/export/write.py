"""Write one annotated session's folder ``OUT/session_<id>/`` atomically.

Every output declared in :mod:`spikeprep.export.outputs` is written into a temporary folder,
then ``session.json`` (a :class:`~spikeprep.export.layout.SessionRecord`), then the folder is
renamed into place (:class:`~spikeprep.export.layout.SessionFolder`). A folder whose record
says complete is therefore always whole.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from ..core.errors import ExportError
from ..core.model import Session, SpikeSink, spike_pass
from ..core.options import ExportOptions
from ..io.source import Source, SourceInfo
from . import outputs as registry
from .layout import SessionFolder, SessionRecord
from .legacy import write_legacy

__all__ = ["write_outputs", "Timer"]

log = logging.getLogger(__name__)


class Timer:
    """Wall time per named step (s, rounded to ms)."""

    def __init__(self, seconds: dict[str, float] | None = None) -> None:
        self.seconds = dict(seconds or {})

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t, 3)


def _invalid_for_json(session: Session) -> list[dict[str, Any]]:
    return [{"start_time": float(r.start_time), "stop_time": float(r.stop_time), "tags": list(r.tags)}
            for r in session.invalid_times.itertuples(index=False)]


def _version() -> str:
    from .. import __version__

    return __version__


def _from_spikes(session: Session, folder: Path, options: ExportOptions,
                 outputs: list[registry.Output]) -> dict[str, dict[str, Any]]:
    """The outputs made from the spike times, all fed by one read of each block of units."""
    sinks: list[SpikeSink] = []
    try:
        for o in outputs:
            sinks.append(o.sink(session, folder / o.file, options))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return dict(zip((o.name for o in outputs), spike_pass(session.spikes, sinks)))


def _write_all(session: Session, folder: Path, options: ExportOptions, wanted: list[registry.Output],
               timer: Timer, bar: Any) -> dict[str, dict[str, Any]]:
    """Every wanted output into ``folder``: the tables on a thread of their own while
    this one runs the pass over the spikes (both mostly in code that releases the GIL);
    their facts in ``wanted``'s order."""
    from concurrent.futures import ThreadPoolExecutor

    from_spikes = [o for o in wanted if o.sink is not None]
    facts: dict[str, dict[str, Any]] = {}

    def table(o: registry.Output) -> None:
        facts[o.name] = timer.step(o.name, lambda: o.write(session, folder / o.file, options))
        log.info("session %s: %s written in %.2f s", session.session_id, o.file, timer.seconds[o.name])

    with ThreadPoolExecutor(max_workers=1) as tables:
        pending = [tables.submit(table, o) for o in wanted if o.sink is None]
        if from_spikes:
            bar.set_postfix_str(" + ".join(o.file for o in from_spikes))
            facts.update(timer.step("spike_pass", lambda: _from_spikes(session, folder, options, from_spikes)))
            log.info("session %s: spike pass in %.2f s", session.session_id, timer.seconds["spike_pass"])
            bar.update(len(from_spikes))
        for f in pending:
            f.result()
            bar.update(1)
    return {o.name: facts[o.name] for o in wanted}


def write_outputs(session: Session, out: str | Path, options: ExportOptions, *,
                  source: Source | None = None, timings: dict[str, float] | None = None,
                  progress: bool = False) -> SessionRecord:
    """Write one session's folder under ``out`` atomically and return its record.

    Parameters
    ----------
    session : Session
        Units already annotated (and filtered) by :func:`spikeprep.export.annotate.annotate`.
    out : path
        The output root; ``session_<id>`` is created or replaced in it.
    options : ExportOptions
    source : Source, optional
        What the session was read from; its identity (and bytes fetched, read after
        every output is written) goes to ``session.json`` (default: from the metadata).
    timings : dict, optional
        Timings of earlier stages to record (s).
    progress : bool
        A bar over the outputs, named as each is written (shown on a terminal only);
        each output is also logged at INFO with its time.

    Raises
    ------
    ExportError
        The output folder cannot be written (disk full, not a folder, …); nothing is
        left behind and an earlier export of the session is untouched.
    """
    folder = SessionFolder(out, session.session_id)
    meta = session.metadata
    timer = Timer(timings)
    try:
        wanted = registry.wanted_outputs(options)
        with folder.staging() as staged, tqdm(total=len(wanted), unit="file", leave=False,
                                              desc=f"session {session.session_id}",
                                              disable=None if progress else True) as bar:
            facts = _write_all(session, staged, options, wanted, timer, bar)
            legacy = timer.step("legacy", lambda: write_legacy(session, folder.out)) if options.legacy_pickle else []
            record = SessionRecord(
                session_id=session.session_id,
                session_type=meta.get("session_type"),
                spikeprep_version=_version(),
                source=source.info() if source is not None else SourceInfo(
                    str(meta.get("source_file", "")), Path(meta.get("source_file", "")).name, meta.get("source_size")),
                layout=meta.get("layout"),
                params=options.as_dict(),
                outputs=facts,
                counts={"units": len(session.units), "units_in_file": meta.get("n_units"),
                        "spikes": int(session.spikes.offsets[-1])},
                subject={k: meta.get(k) for k in ("genotype", "sex", "age", "subject_id")},
                metadata={**meta.get("allensdk", {}), "rig": meta.get("rig", {})},
                invalid_times=_invalid_for_json(session),
                read_warnings=list(meta.get("read_warnings", [])),
                legacy_files=legacy,
                timings_s=timer.seconds,
            )
            folder.publish(staged, record)
        return record
    except OSError as exc:
        raise ExportError(f"{folder.out}: cannot write session {session.session_id}: {exc.strerror or exc}") from exc
