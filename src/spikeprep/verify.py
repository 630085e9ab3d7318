"""Check exported session folders against their ``session.json`` (``spikeprep verify``).

Every output declared in :mod:`spikeprep.outputs` is checked by its own check; a
missing or unreadable file is named; a folder written under another schema version
is flagged, since export will not skip it.
"""

from __future__ import annotations

from pathlib import Path

from . import outputs as registry
from .layout import SCHEMA_VERSION, SESSION_JSON, OutFolder, SessionFolder

__all__ = ["verify_session", "verify_out"]


def verify_session(folder: SessionFolder) -> list[str]:
    """Problems of one ``session_<id>`` folder, one line each (empty when it is whole)."""
    record = folder.read_record()
    if record is None:
        return [f"{folder / SESSION_JSON}: missing or unreadable"]
    problems = []
    if record.status != "complete":
        problems.append(f"{folder / SESSION_JSON}: status is {record.status!r}")
    if record.schema_version != SCHEMA_VERSION:  # its facts follow another contract: nothing more to compare
        return problems + [f"{folder / SESSION_JSON}: schema_version {record.schema_version}, this spikeprep "
                           f"writes {SCHEMA_VERSION}: export it again (it will not be skipped)"]
    for output in registry.OUTPUTS.values():
        problems += registry.check_output(output, folder.path, record)
    return problems


def verify_out(out: str | Path) -> tuple[list[str], int]:
    """Problems of every ``session_<id>`` folder in ``out``, and how many were checked."""
    folders = OutFolder(out).session_folders()
    problems: list[str] = []
    for f in folders:
        problems += verify_session(f)
    if not folders:
        problems.append(f"{out}: no session_<id> folders")
    return problems, len(folders)
