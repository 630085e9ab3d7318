"""What every ``spikeprep`` command shares: exit codes, one-line failures and usage errors."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "fail", "usage", "where"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def fail(message: str) -> None:
    """One line on stderr: ``spikeprep: <message>``."""
    sys.stderr.write(f"spikeprep: {message}\n")


def usage(a: argparse.Namespace, message: str) -> int:
    """The usage-error line of command ``a.command``; returns the exit code (2)."""
    sys.stderr.write(f"spikeprep {a.command}: error: {message} (see 'spikeprep {a.command} --help')\n")
    return EXIT_USAGE


def where(a: argparse.Namespace, table: Any) -> Any:
    """``table`` filtered by ``--where`` (when given); a bad query is a usage error."""
    if not a.where:
        return table
    try:
        return table.query(a.where)
    except Exception as exc:  # pandas raises many kinds for a bad query
        raise SystemExit(usage(a, f"--where {a.where!r}: {str(exc).splitlines()[0] if str(exc) else exc}"))
