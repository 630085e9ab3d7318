"""Check exported session folders against their ``session.json`` (``spikeprep verify``).

Every output declared in :mod:`spikeprep.export.outputs` is checked by its own check; a
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
    for output in registry.wanted_outputs(record.params):
        problems += registry.check_output(output, folder.path, record)
    return problems + _check_aligned(folder) + _check_lfp(folder)


def _check_aligned(folder: SessionFolder) -> list[str]:
    """``aligned/<stimulus>.zarr`` (when any) open, hold counts of their coordinates'
    shape, and have their conditions table beside them."""
    import zarr

    problems = []
    for store in sorted((folder / "aligned").glob("*.zarr")):
        table = store.with_name(f"{store.stem}_conditions.parquet")
        if not table.exists():
            problems.append(f"{table}: missing")
        try:
            root = zarr.open_group(str(store), mode="r")
            shape = tuple(root[d].shape[0] for d in root["spike_counts"].attrs["_ARRAY_DIMENSIONS"])
            if root["spike_counts"].shape != shape:
                problems.append(f"{store}: counts of shape {root['spike_counts'].shape}, coordinates {shape}")
        except Exception as exc:  # unreadable: report it, don't crash
            problems.append(f"{store}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    return problems


def _check_lfp(folder: SessionFolder) -> list[str]:
    """``lfp/probe_<pid>.zarr`` (when any, from ``spikeprep lfp``) open, hold LFP of their
    coordinates' shape and were finished."""
    import zarr

    problems = []
    for store in folder.lfp_stores():
        try:
            root = zarr.open_group(str(store), mode="r")
            shape, coords = root["lfp"].shape, (root["time"].shape[0], root["channel"].shape[0])
            if shape != coords:
                problems.append(f"{store}: LFP of shape {shape}, coordinates {coords}")
            if "request" not in root.attrs:
                problems.append(f"{store}: unfinished (no request in its attributes)")
        except Exception as exc:  # unreadable: report it, don't crash
            problems.append(f"{store}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
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
