"""``spikeprep metrics``: AllenSDK's stimulus analyses of exported sessions."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from .cliutil import EXIT_FAILED, EXIT_OK, fail

__all__ = ["cmd_metrics", "add_metrics_command", "run_metrics"]


def run_metrics(out: str | Path, session_ids: list[int] | None, *, workers: int | None, scheduler: str | None,
                force: bool, seed: int, quiet: bool, verbose: bool) -> int:
    """Compute the metrics and print one line per session; the exit code."""
    from .pipeline import metrics_many

    results = metrics_many(out, session_ids=session_ids, workers=workers, scheduler=scheduler, force=force,
                           seed=seed, progress=not quiet, verbose=verbose)
    if not results:
        fail(f"{out}: no exported session (run spikeprep export first)")
        return EXIT_FAILED
    for r in results:
        units = "" if r.n_units is None else f"{r.n_units} units, "
        note = f" ({r.message})" if r.message and r.ok else ""
        if r.ok:
            print(f"{r.session_id}: {r.status}, {units}{r.seconds:.1f} s{note}")
    failed = [r for r in results if not r.ok]
    for r in failed:
        fail(r.message)
    print(f"{len(results) - len(failed)} of {len(results)} sessions have unit_metrics.parquet and "
          f"receptive_fields.zarr; all units: {Path(out) / 'unit_metrics.parquet'}")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_metrics(a: argparse.Namespace) -> int:
    if not Path(a.out).is_dir():
        fail(f"{a.out}: no such folder (run spikeprep export first)")
        return EXIT_FAILED
    return run_metrics(a.out, a.session or None, workers=a.workers, scheduler=a.scheduler, force=a.force,
                       seed=a.seed, quiet=a.quiet, verbose=a.verbose)


def add_metrics_command(add: Callable[..., Any]) -> None:
    p = add("metrics", cmd_metrics, "per-unit tuning and receptive-field metrics of exported sessions "
                                    "(AllenSDK's stimulus analyses)")
    p.add_argument("out", metavar="OUT", help="output folder of spikeprep export")
    p.add_argument("--session", type=int, nargs="+", metavar="ID", help="only these sessions (default: all in OUT)")
    p.add_argument("--force", action="store_true", help="recompute metrics that are already there")
    p.add_argument("--seed", type=int, default=0, help="seed of the receptive fields' bootstrap p-values (default 0)")
    p.add_argument("--workers", type=int, metavar="N", help="run on a local Dask cluster of N worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster")
