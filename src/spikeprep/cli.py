"""The ``spikeprep`` command: parses, calls, prints. Heavy modules load lazily.

Exit codes: 0 when everything asked for succeeded, 1 when something failed (one line
per failure on stderr, naming the file and the problem), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["main", "console"]

from .cli_lfp import add_lfp_command
from .cli_metrics import add_metrics_command
from .cli_units import add_units_command
from .cliutil import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from .cliutil import where as _where
from .cliutil import fail as _fail
from .cliutil import usage as _usage


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


# ----------------------------------------------------------------------------- commands
def cmd_synth(a: argparse.Namespace) -> int:
    import zlib

    from .synthetic.writer import SynthSpec, check_spec, write_session

    out = Path(a.output)
    if out.exists() and not a.force:
        raise SystemExit(_usage(a, f"{out} exists; pass --force to replace it"))
    if not out.parent.is_dir():
        raise SystemExit(_usage(a, f"{out.parent}: no such folder"))
    # a different session id per file unless given: two synthetic files never collide in one OUT
    sid = a.session_id if a.session_id is not None else 800_000_000 + zlib.crc32(str(out.resolve()).encode()) % 10**8
    spec = SynthSpec(n_units=a.units, duration=a.duration, n_probes=a.probes, seed=a.seed, layout=a.layout,
                     session_id=sid, waveforms=a.waveforms, tuned=a.tuned)
    try:
        check_spec(spec)
    except ValueError as exc:
        raise SystemExit(_usage(a, str(exc)))
    path = write_session(out, spec)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): session {spec.sid}, {spec.n_units} units, "
          f"{spec.duration:g} s, {spec.n_probes} probes, layout {spec.layout}")
    return EXIT_OK


def cmd_inspect(a: argparse.Namespace) -> int:
    from .io.nwb import read_session
    from .io.resolve import open_source
    from .report.inspect import describe

    status = EXIT_OK
    for p in a.files:
        try:
            print(describe(read_session(open_source(p))))
        except Exception as exc:
            if a.verbose:
                traceback.print_exc()
            _fail(str(exc))
            status = EXIT_FAILED
    return status


def _options(a: argparse.Namespace):
    """The ExportOptions the flags ask for; a bad value is a usage error naming its flag."""
    from .core.options import ExportOptions, option_fields

    flags = {f.name: f.flag for f in option_fields()}
    try:
        return ExportOptions(**{name: getattr(a, name) for name in flags})
    except ValueError as exc:
        name = str(exc).split(" ", 1)[0]
        raise SystemExit(_usage(a, f"{flags.get(name, name)}: {exc}"))


def _report(results: list, out: Path) -> int:
    from .pipeline import Result

    rows = [r for r in results if isinstance(r, Result)]
    if rows:
        width = max(7, *(len(str(r.session_id)) for r in rows))
        print(f"\n{'session':>{width}}  {'status':8}  {'units':>6}  {'spikes':>11}  {'seconds':>8}  note")
        for r in rows:
            units = "" if r.n_units is None else r.n_units
            spikes = "" if r.n_spikes is None else f"{r.n_spikes:,}"
            sid = "?" if r.session_id is None else r.session_id
            note = _short(r.message.replace(r.path + ": ", "")) if r.message else ""
            print(f"{sid!s:>{width}}  {r.status:8}  {units:>6}  {spikes:>11}  {r.seconds:8.1f}  {note}")
    failed = [r for r in rows if not r.ok]
    for r in failed:
        _fail(r.message)
    print(f"{len(rows) - len(failed)} of {len(rows)} sessions ready in {out}")
    return EXIT_FAILED if failed else EXIT_OK


def _short(text: str, n: int = 70) -> str:
    text = text.splitlines()[0] if text else ""
    return text if len(text) <= n else text[: n - 1] + "…"


def _check_out(a: argparse.Namespace, out: str) -> None:
    """A usage error when OUT is an existing file rather than a folder."""
    if Path(out).exists() and not Path(out).is_dir():
        raise SystemExit(_usage(a, f"--out {out}: is a file, not a folder"))


def _outcome(outcome: Any, out: str) -> int:
    status = _report(outcome.results, Path(out))
    if outcome.qc_error:
        _fail(outcome.qc_error)
        status = EXIT_FAILED
    return status


def cmd_export(a: argparse.Namespace) -> int:
    options = _options(a)
    _check_out(a, a.out)
    from .pipeline import export_then_qc, find_session_files

    files = find_session_files(a.inputs)
    if not files:
        _fail(f"no session NWB files in {' '.join(a.inputs)}")
        return EXIT_FAILED
    status = _outcome(export_then_qc(files, a.out, options, qc=not a.no_qc, workers=a.workers,
                                     scheduler=a.scheduler, force=a.force, progress=not a.quiet, verbose=a.verbose,
                                     cache=a.cache, keep_cache=a.keep_cache), a.out)
    if a.metrics and status != EXIT_USAGE:
        from .cli_metrics import run_metrics

        status = max(status, run_metrics(a.out, None, workers=a.workers, scheduler=a.scheduler, force=a.force,
                                         seed=0, quiet=a.quiet, verbose=a.verbose))
    if a.report and status != EXIT_USAGE:
        try:
            status = max(status, cmd_report(argparse.Namespace(out=a.out, session=None, quiet=a.quiet)))
        except Exception as exc:  # the exports stand; say why the report did not
            _fail(f"report: {exc}")
            status = EXIT_FAILED
    return status


def cmd_qc(a: argparse.Namespace) -> int:
    if not a.threshold_ms > 0:
        raise SystemExit(_usage(a, f"--threshold-ms must be a positive number, got {a.threshold_ms:g}"))
    from .report.qc import run_qc

    try:
        run_qc(a.out, select=a.select, threshold_ms=a.threshold_ms, progress=not a.quiet)
        print(f"QC written to {Path(a.out) / 'qc'}")
        return EXIT_OK
    except Exception as exc:
        if a.verbose:
            traceback.print_exc()
        _fail(f"qc: {exc}")
        return EXIT_FAILED


def cmd_align(a: argparse.Namespace) -> int:
    from .analysis.aligned_store import window_edges
    from .analysis.session import AlignmentError

    try:
        window_edges(tuple(a.window), a.bin_size)
    except AlignmentError as exc:
        raise SystemExit(_usage(a, str(exc)))
    from .pipeline import align_many

    results = align_many(a.out, a.stimulus, tuple(a.window), a.bin_size, session_ids=a.session or None,
                         workers=a.workers, scheduler=a.scheduler, force=a.force, progress=not a.quiet,
                         verbose=a.verbose)
    if not results:
        _fail(f"{a.out}: no exported session to align (run spikeprep export first)")
        return EXIT_FAILED
    return _report(results, Path(a.out))


def cmd_report(a: argparse.Namespace) -> int:
    from .report.pages import write_reports

    skipped = []

    def skip(sid: int, problems: list[str]) -> None:
        skipped.append(sid)
        for p in problems:
            _fail(f"session {sid} not reported: {p}")

    pages = write_reports(a.out, a.session or None, progress=not a.quiet, on_skip=skip)
    print(f"{len(pages) - 1} session reports and the index: {pages[-1]}"
          + (f" ({len(skipped)} sessions not reported: see above)" if skipped else ""))
    return EXIT_FAILED if skipped else EXIT_OK


def cmd_verify(a: argparse.Namespace) -> int:
    from .export.verify import verify_out

    problems, checked = verify_out(a.out)
    for p in problems:
        _fail(p)
    print(f"{checked} sessions checked, {len(problems)} problems")
    return EXIT_FAILED if problems or not checked else EXIT_OK


def cmd_demo(a: argparse.Namespace) -> int:
    _check_out(a, a.out)
    from .demo import run_demo
    from .synthetic.writer import SynthSpec, check_spec

    try:
        check_spec(SynthSpec(n_units=a.units, duration=a.duration, n_probes=a.probes, seed=a.seed))
    except ValueError as exc:
        raise SystemExit(_usage(a, str(exc)))
    return run_demo(Path(a.out), n_units=a.units, duration=a.duration, n_probes=a.probes, seed=a.seed)


def _catalog_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    return {"base_url": a.base_url, "cache": a.cache}


def cmd_sessions(a: argparse.Namespace) -> int:
    from .io.bucket import session_table

    table = session_table(**_catalog_kwargs(a), offline=a.offline)
    table = _where(a, table)
    if a.csv:
        sys.stdout.write(table.to_csv())
    elif a.json:
        sys.stdout.write(table.reset_index().to_json(orient="records", indent=1) + "\n")
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 100, "display.width", 200, "display.max_colwidth", 40):
            print(table)
        print(f"{len(table)} sessions")
    return EXIT_OK


def _selected_ids(a: argparse.Namespace) -> list[int]:
    """The session ids asked for, checked against the session table when it can be had."""
    if sum(bool(x) for x in (a.ids, a.all, a.where)) > 1:
        raise SystemExit(_usage(a, "give session ids, --all or --where, not several"))
    if not (a.ids or a.all or a.where):
        raise SystemExit(_usage(a, "give session ids, --all or --where QUERY"))
    from .core.errors import SpikeprepError
    from .io.bucket import session_table

    try:
        table = session_table(**_catalog_kwargs(a))
    except SpikeprepError:
        if a.ids:  # no table to check against (offline, nothing cached): the downloads will say
            return list(a.ids)
        raise
    if a.ids:
        unknown = [i for i in a.ids if i not in table.index]
        if unknown:
            raise SystemExit(_usage(a, f"session {unknown[0]} is not in the session table ({len(table)} sessions, "
                                       f"e.g. {', '.join(map(str, table.index[:3]))}; see spikeprep sessions)"))
        return list(a.ids)
    table = _where(a, table)
    return [int(i) for i in table.index]


def cmd_download(a: argparse.Namespace) -> int:
    ids = _selected_ids(a)
    from .io.bucket import download_sessions

    results = download_sessions(ids, a.cache, base_url=a.base_url, progress=not a.quiet)
    failed = [r for r in results if r.error]
    for r in failed:
        _fail(r.error)
    print(f"{len(results) - len(failed)} of {len(results)} session files in {a.cache}")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_run(a: argparse.Namespace) -> int:
    options = _options(a)
    _check_out(a, a.out)
    ids = _selected_ids(a)
    from .pipeline import run_then_qc

    return _outcome(run_then_qc(ids, a.cache, a.out, options, qc=not a.no_qc, base_url=a.base_url,
                                workers=a.workers, scheduler=a.scheduler, force=a.force, progress=not a.quiet,
                                verbose=a.verbose, stream=a.stream, keep_cache=a.keep_cache), a.out)


# ----------------------------------------------------------------------------- parser
def _export_flags(p: argparse.ArgumentParser) -> None:
    from .core.options import option_fields

    p.add_argument("--out", required=True, help="output folder (one session_<id>/ per session)")
    p.add_argument("--force", action="store_true", help="re-export sessions already complete")
    p.add_argument("--workers", type=int, metavar="N", help="run on a local Dask cluster of N worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster")
    for f in option_fields():  # one flag per ExportOptions field, its default and help from there
        if f.type is bool:
            p.add_argument(f.flag, dest=f.name, action="store_true", help=f.help)
        else:
            p.add_argument(f.flag, dest=f.name, type=f.type, default=f.default, metavar=f.metavar, help=f.help)


def _catalog_flags(p: argparse.ArgumentParser, cache_required: bool) -> None:
    p.add_argument("--cache", required=cache_required, metavar="DIR",
                   help="download folder (an AllenSDK cache folder works as is)")
    p.add_argument("--base-url", metavar="URL", default=None,
                   help="mirror of the Allen bucket (default: $SPIKEPREP_BASE_URL or the Allen bucket)")


def _keep_cache_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-cache", action="store_true", help="keep the block cache of streamed files after a "
                                                             "successful export (it is removed by default)")


def _selection_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="*", type=int, metavar="ID", help="session ids (see spikeprep sessions)")
    p.add_argument("--all", action="store_true", help="every session of the catalog")
    p.add_argument("--where", metavar="QUERY", help="sessions matching a pandas query on the catalog")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .core.options import BIN_SIZE_S, ISI_THRESHOLD_MS

    parser = _Parser(prog="spikeprep", description="Allen Visual Coding - Neuropixels sessions to analysis-ready data.")
    parser.add_argument("--version", action="version", version=f"spikeprep {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", help="show tracebacks (for bug reports)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(func=fn)
        return p

    p = add("demo", cmd_demo, "generate a synthetic session, export it, QC it and plot it")
    p.add_argument("--out", default="demo_out", help="demo folder (default demo_out)")
    p.add_argument("--units", type=int, default=300, metavar="N", help="clusters in the synthetic session (default 300)")
    p.add_argument("--duration", type=float, default=900.0, metavar="S", help="session length in s (default 900)")
    p.add_argument("--probes", type=int, default=3, metavar="N", help="probes, 1-6 (default 3)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic session (default 0)")

    p = add("sessions", cmd_sessions, "print the session table (58 sessions)")
    _catalog_flags(p, cache_required=False)
    p.add_argument("--where", metavar="QUERY", help="pandas query, e.g. \"session_type == 'brain_observatory_1.1'\"")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print the table as CSV")
    fmt.add_argument("--json", action="store_true", help="print the table as JSON records")
    p.add_argument("--offline", action="store_true", help="use the cached table only")

    p = add("download", cmd_download, "download session NWB files (resumable, verified)")
    _selection_flags(p)
    _catalog_flags(p, cache_required=True)

    p = add("export", cmd_export, "export session NWB files, folders of them, or their http(s) URLs to OUT")
    p.add_argument("inputs", nargs="+", metavar="NWB|DIR|URL",
                   help="session files, folders holding them (an AllenSDK cache works), or URLs to stream from")
    _export_flags(p)
    p.add_argument("--no-qc", action="store_true", help="skip the QC at the end")
    p.add_argument("--report", action="store_true", help="also write the visual report (OUT/report.html)")
    p.add_argument("--metrics", action="store_true", help="also compute the tuning and receptive-field metrics "
                                                          "(as spikeprep metrics does)")
    p.add_argument("--cache", metavar="DIR", help="for URLs: folder of the block cache that lets an interrupted "
                                                  "export resume (default ~/.cache/spikeprep)")
    _keep_cache_flag(p)

    p = add("run", cmd_run, "download, export and QC sessions")
    _selection_flags(p)
    _catalog_flags(p, cache_required=True)
    _export_flags(p)
    p.add_argument("--stream", action="store_true", help="read only the byte ranges each export needs from the "
                                                         "bucket instead of downloading whole files (a file "
                                                         "already in --cache is used first)")
    _keep_cache_flag(p)
    p.add_argument("--no-qc", action="store_true", help="skip the QC at the end")

    p = add("qc", cmd_qc, "ISI-violation QC of the exported sessions in OUT")
    p.add_argument("out", metavar="OUT", help="output folder of spikeprep export")
    p.add_argument("--select", metavar="QUERY", help="units to summarise (default: is_rs, snr > 2.5, visual cortex)")
    p.add_argument("--threshold-ms", type=float, default=ISI_THRESHOLD_MS, metavar="MS",
                   help=f"ISI threshold in ms (default {ISI_THRESHOLD_MS:g})")

    p = add("align", cmd_align, "stimulus-aligned spike counts and condition statistics of exported sessions")
    p.add_argument("out", metavar="OUT", help="output folder of spikeprep export")
    p.add_argument("--stimulus", required=True, metavar="NAME", help="stimulus name, e.g. natural_scenes")
    p.add_argument("--window", required=True, nargs=2, type=float, metavar=("START", "STOP"),
                   help="window around each onset in s, e.g. -0.05 0.3")
    p.add_argument("--bin-size", type=float, default=BIN_SIZE_S, metavar="S",
                   help=f"bin size in s (default {BIN_SIZE_S}); the window must hold a whole number of bins")
    p.add_argument("--session", type=int, nargs="+", metavar="ID", help="only these sessions (default: all in OUT)")
    p.add_argument("--force", action="store_true", help="recompute outputs that are already there")
    p.add_argument("--workers", type=int, metavar="N", help="run on a local Dask cluster of N worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster")

    add_lfp_command(add)
    add_metrics_command(add)

    p = add("report", cmd_report, "visual report per session and an index (self-contained HTML)")
    p.add_argument("out", metavar="OUT", help="output folder of spikeprep export")
    p.add_argument("--session", type=int, nargs="+", metavar="ID", help="only these sessions (default: all in OUT)")

    add_units_command(add)

    p = add("inspect", cmd_inspect, "summarise session NWB files")
    p.add_argument("files", nargs="+", metavar="FILE.nwb", help="session NWB files")

    p = add("synth", cmd_synth, "write a synthetic session NWB file in the Allen layout")
    p.add_argument("output", metavar="OUT.nwb", help="file to write (refused if it exists, unless --force)")
    p.add_argument("--units", type=int, default=300, metavar="N", help="clusters, noise included (default 300)")
    p.add_argument("--duration", type=float, default=900.0, metavar="S", help="session length in s (default 900)")
    p.add_argument("--probes", type=int, default=3, metavar="N", help="probes, 1-6 (default 3)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the content is a function of it (default 0)")
    p.add_argument("--layout", choices=["2020", "sdk", "2019"], default="2020",
                   help="NWB layout variant: 2020 release, AllenSDK writer, Oct 2019 (default 2020)")
    p.add_argument("--session-id", type=int, default=None, metavar="ID",
                   help="session id (default: derived from the file's path, so files never share one)")
    p.add_argument("--waveforms", action="store_true", help="also write waveform_mean at real size (0.7 GB per "
                                                            "2,800 units)")
    p.add_argument("--tuned", action="store_true", help="plant visual tuning (orientation, direction, receptive "
                                                        "fields, ...) and write the truth beside the file")
    p.add_argument("--force", action="store_true", help="replace an existing file")

    p = add("verify", cmd_verify, "check exported sessions against their session.json")
    p.add_argument("out", metavar="OUT", help="output folder of spikeprep export")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spikeprep`` command."""
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "command", None):
        parser.print_help()
        return EXIT_USAGE
    import logging

    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, format="spikeprep: %(message)s")
    try:
        return a.func(a)
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except SystemExit:
        raise
    except Exception as exc:
        if a.verbose:
            traceback.print_exc()
        _fail(f"{a.command}: {exc}" if str(exc) else f"{a.command}: {type(exc).__name__}")
        return EXIT_FAILED


def console() -> int:
    """The ``spikeprep`` executable: :func:`main`, then the cycle collector frozen, so that
    the interpreter's exit skips its last walk over every object the imports made
    (0.3–0.7 s after an export; nothing is left to collect in a process that ends)."""
    status = main()
    import gc

    gc.freeze()
    return status


if __name__ == "__main__":
    raise SystemExit(console())
