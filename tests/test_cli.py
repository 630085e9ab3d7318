"""The command line: help, usage errors, one-line failures, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spikeprep.cli import main

COMMANDS = ["demo", "sessions", "download", "export", "run", "qc", "align", "units", "report", "inspect", "synth", "verify"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spikeprep.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: spikeprep " + command in capsys.readouterr().out


@pytest.mark.parametrize("args", [["export"], ["nosuchcommand"], ["synth", "x.nwb", "--layout", "1999"],
                                  ["download", "--cache", "/tmp/x"], ["export", "a.nwb", "--out", "o", "--workers", "two"]])
def test_usage_errors_exit_2_with_one_line(args: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--help" in err


def test_synth_inspect_export_verify(tmp_path: Path) -> None:
    nwb = tmp_path / "s.nwb"
    assert run("synth", str(nwb), "--units", "40", "--duration", "60", "--probes", "2", "--seed", "3",
               "--session-id", "700003027").returncode == 0
    r = run("inspect", str(nwb))
    assert r.returncode == 0
    for word in ("session 700003027", "layout 2020", "probeA", "units per area and quality", "drifting_gratings",
                 "running", "invalid"):
        assert word in r.stdout, word
    out = tmp_path / "out"
    r = run("export", str(nwb), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "1 of 1 sessions ready" in r.stdout and "violate 5 ms condition" in r.stdout
    assert run("verify", str(out)).returncode == 0
    assert run("qc", str(out), "--threshold-ms", "3").returncode == 0


def test_failures_are_one_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "session_5.nwb"
    bad.write_text("not hdf5")
    r = run("export", str(bad), "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 1
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in r.stderr
    r = run("inspect", str(bad))
    assert r.returncode == 1 and str(bad) in r.stderr and "Traceback" not in r.stderr
    assert run("verify", str(tmp_path / "empty")).returncode == 1
    assert run("qc", str(tmp_path / "empty")).returncode == 1


def test_help_is_fast() -> None:
    import time

    t = time.perf_counter()
    assert run("--help").returncode == 0
    assert time.perf_counter() - t < 5  # generous for CI; ~0.1 s locally (heavy imports are lazy)


def test_every_public_name_resolves() -> None:
    import spikeprep

    for name in spikeprep.__all__:
        assert getattr(spikeprep, name) is not None, name
    with pytest.raises(AttributeError):
        spikeprep.no_such_name  # noqa: B018


def test_every_option_has_help_text() -> None:
    import argparse

    from spikeprep.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings or action.dest not in ("help",):
                assert action.help, f"spikeprep {name} {action.option_strings or action.dest}: no help text"


def test_progress_only_on_a_terminal(tmp_path: Path) -> None:
    """Bars go to a terminal; a log or CI (stderr not a terminal) gets none."""
    import os
    import pty

    from spikeprep.synthetic import SynthSpec, write_session

    nwb = write_session(tmp_path / "p.nwb", SynthSpec(n_units=30, duration=60.0, n_probes=1, seed=8))
    piped = run("export", str(nwb), "--out", str(tmp_path / "a"))
    assert piped.returncode == 0 and "%|" not in piped.stderr and "it/s" not in piped.stderr
    pid, fd = pty.fork()
    if pid == 0:  # the child: spikeprep on a pseudo-terminal of 120 columns
        import fcntl
        import struct
        import termios

        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.execv(sys.executable, [sys.executable, "-m", "spikeprep.cli", "export", str(nwb), "--out",
                                  str(tmp_path / "b")])
    chunks = []
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "export" in text and "%|" in text and "qc" in text  # the session bar and the QC bar


def test_a_local_export_loads_no_http_and_the_executable_freezes_the_collector(small_nwb: Path,
                                                                               tmp_path: Path) -> None:
    """httpx is imported only for URLs; ``console`` (the ``spikeprep`` executable) returns
    main's exit status and leaves the collector frozen for the interpreter's exit."""
    code = (
        "import gc, sys\n"
        "from spikeprep.cli import console\n"
        f"sys.argv = ['spikeprep', 'export', {str(small_nwb)!r}, '--out', {str(tmp_path / 'out')!r}, '--quiet',"
        " '--no-qc']\n"
        "status = console()\n"
        "print(status, 'httpx' in sys.modules, gc.get_freeze_count() > 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "0 False True"
