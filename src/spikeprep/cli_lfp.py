"""``spikeprep lfp``: copy probes' LFP and CSD into an exported session folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from .cliutil import EXIT_FAILED, EXIT_OK, fail, usage

__all__ = ["cmd_lfp", "add_lfp_command"]


def cmd_lfp(a: argparse.Namespace) -> int:
    from .analysis.lfp_store import write_lfp_store
    from .analysis.session import open_session
    from .core.errors import SpikeprepError
    from .io.download import session_url
    from .io.lfp import lfp_file_name

    if a.window is not None and not a.window[1] > a.window[0]:
        raise SystemExit(usage(a, f"--window {a.window[0]:g} {a.window[1]:g}: the stop must come after the start"))
    try:
        session = open_session(a.out, a.session)
    except SpikeprepError as exc:
        fail(str(exc))
        return EXIT_FAILED
    if a.probe == "all":
        probes = [int(p) for p in session.probe_table.index[session.probe_table["has_lfp_data"].to_numpy(dtype=bool)]]
    elif a.probe.isdigit():
        probes = [int(a.probe)]
    else:
        raise SystemExit(usage(a, f"--probe {a.probe}: give a probe id or all"))
    if not probes:
        fail(f"session {a.session}: no probe has LFP data (has_lfp_data is False for each)")
        return EXIT_FAILED
    if a.stream:
        session.lfp_cache = Path(a.cache) if a.cache else None
        base = session_url(a.session, a.base_url).rsplit("/", 1)[0]
        for pid in probes:
            session.set_lfp_path(pid, f"{base}/{lfp_file_name(pid)}")
    status = EXIT_OK
    for pid in probes:
        try:
            r = write_lfp_store(session, pid, a.window, a.channels, force=a.force, progress=not a.quiet)
        except SpikeprepError as exc:
            fail(str(exc))
            status = EXIT_FAILED
            continue
        print(f"probe {pid}: {r['status']} {r['path']} ({r['shape'][0]:,} samples x {r['shape'][1]} channels)")
    return status


def add_lfp_command(add: Callable[[str, Callable[[argparse.Namespace], int], str], Any]) -> None:
    """Register the command and its options with the ``spikeprep`` parser."""
    p = add("lfp", cmd_lfp, "copy probes' LFP and CSD into an exported session (lfp/probe_<id>.zarr) for offline work")
    p.add_argument("out", metavar="OUT", help="output folder of spikeprep export")
    p.add_argument("--session", type=int, required=True, metavar="ID", help="the exported session")
    p.add_argument("--probe", default="all", metavar="PID|all",
                   help="a probe id, or all the probes with LFP (default all)")
    p.add_argument("--window", nargs=2, type=float, metavar=("START", "STOP"),
                   help="only samples from START (included) to STOP (excluded), in s on the session clock")
    p.add_argument("--channels", nargs="+", type=int, metavar="ID", help="only these LFP channels (electrode ids)")
    p.add_argument("--stream", action="store_true",
                   help="read the probe files from the bucket (--base-url) instead of beside the session file")
    p.add_argument("--base-url", metavar="URL", help="a mirror of the Allen bucket (with --stream)")
    p.add_argument("--cache", metavar="DIR", help="block cache of streamed files (default ~/.cache/spikeprep)")
    p.add_argument("--force", action="store_true", help="write a copy again even when it is complete")
