"""The exported output folder: names, lock, temporary folder, atomic publish, session.json.

``OUT/session_<id>/`` is built in a temporary folder inside ``OUT`` and renamed into
place, with ``session.json`` written last, so a folder whose record says complete (at
the current :data:`SCHEMA_VERSION`) is always whole. Which files a session folder
holds is declared in :mod:`spikeprep.export.outputs`; this module knows only the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..io.source import SourceInfo

__all__ = ["SCHEMA_VERSION", "SESSION_JSON", "TMP_PREFIX", "TRASH_PREFIX", "SessionRecord", "SessionFolder",
           "OutFolder", "atomic_write"]

# Bump whenever the output contract changes (a file, a column, a dtype, session.json):
# folders written with another version are never skipped as complete.
# 2: stimulus duration, condition ids, numeric parameters; conditions, probes, channels, invalid_times tables
# 3: exact bin membership at the edges; the counts grid ends on a bin edge
# 4: binned.zarr in Zarr format 2; session_id columns in units, stimulus and running
# 5: optotagging and eye_tracking tables; probes.location; channels.structure_id and filtering;
#    AllenSDK's session metadata and rig in session.json
SCHEMA_VERSION = 5
SESSION_JSON = "session.json"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write`` on a temporary name beside ``path`` (same suffix), then rename it into place."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


@dataclass
class SessionRecord:
    """``session.json``: what was exported, from what, with which parameters.

    Attributes
    ----------
    session_id : int
    schema_version : int
        The output contract the folder was written under (0 for folders from before
        versioning).
    status : str
        ``"complete"`` once every output is written.
    source : SourceInfo
        The NWB file or URL, its size, ETag/mtime and bytes fetched.
    params : dict
        :class:`~spikeprep.core.options.ExportOptions` as a dict.
    outputs : dict
        What each output's writer recorded about it (rows of a table; shape, dtype,
        total and grid of the counts store), by output name; ``verify`` checks them.
    counts : dict
        ``units`` (exported), ``units_in_file`` and ``spikes``.
    metadata : dict
        AllenSDK's session metadata (``specimen_name``, ``age_in_days``,
        ``full_genotype``, ``strain``, ``sex``, ``stimulus_name``, ``subject_id``,
        ``age``, ``species``, ``session_start_time``) and the eye-tracking ``rig``
        (``equipment``, ``geometry``: column → [x, y, z]; empty when the file has none).
    """

    session_id: int
    schema_version: int = SCHEMA_VERSION
    status: str = "complete"
    session_type: str | None = None
    spikeprep_version: str = ""
    source: SourceInfo | None = None
    layout: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    subject: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    invalid_times: list[dict[str, Any]] = field(default_factory=list)
    read_warnings: list[str] = field(default_factory=list)
    legacy_files: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    finished_at: str = ""

    @property
    def is_current(self) -> bool:
        """Complete, under this version's output contract."""
        return self.status == "complete" and self.schema_version == SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(_json_safe(asdict(self)), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "SessionRecord":
        """Parse ``session.json``; unknown keys are ignored, a missing ``schema_version`` is 0.

        Raises
        ------
        ValueError
            Not JSON, or no integer ``session_id``.
        """
        d = json.loads(text)
        if not isinstance(d, dict) or not isinstance(d.get("session_id"), int):
            raise ValueError("no integer session_id")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs.setdefault("schema_version", 0)
        if isinstance(kwargs.get("source"), dict):
            kwargs["source"] = SourceInfo.from_dict(kwargs["source"])
        return cls(**kwargs)


class SessionFolder:
    """``OUT/session_<id>``: its files, its lock, its record, and how it is (re)written.

    Parameters
    ----------
    out : path
        The output root.
    session_id : int
    """

    def __init__(self, out: str | Path, session_id: int) -> None:
        self.out = Path(out)
        self.session_id = int(session_id)
        self.path = self.out / f"session_{self.session_id}"

    def __repr__(self) -> str:
        return f"SessionFolder({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def lfp_store(self, probe_id: int) -> Path:
        """``lfp/probe_<pid>.zarr``: a probe's LFP copied by ``spikeprep lfp``."""
        return self.path / "lfp" / f"probe_{int(probe_id)}.zarr"

    def lfp_stores(self) -> list[Path]:
        return sorted((self.path / "lfp").glob("probe_*.zarr"))

    def file(self, name: str) -> Path:
        """The path of file ``name`` in the folder; FileNotFoundError names it when absent."""
        p = self.path / name
        if not p.exists():
            raise FileNotFoundError(f"{p}: not found (is session {self.session_id} exported to {self.out}?)")
        return p

    # ------------------------------------------------------------------ record
    def read_record(self) -> SessionRecord | None:
        """``session.json``, or None when absent or unreadable."""
        try:
            return SessionRecord.from_json((self.path / SESSION_JSON).read_text())
        except (OSError, ValueError, TypeError):
            return None

    def is_complete(self, params: dict[str, Any], source: SourceInfo | None) -> bool:
        """True when a current-schema export with these parameters of the same source is here."""
        rec = self.read_record()
        if rec is None or not rec.is_current or rec.params != params:
            return False
        return source is None or (rec.source is not None and rec.source.same_file(source))

    # ------------------------------------------------------------------ writing
    def lock(self, timeout: float = -1) -> Any:
        """A file lock for this session (``OUT/.locks/session_<id>.lock``)."""
        from filelock import FileLock

        locks = self.out / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{self.path.name}.lock"), timeout=timeout)

    def remove_stale_temporaries(self) -> None:
        """Leftovers of a killed run of this session (call with its lock held)."""
        for p in self.out.glob(f"{TMP_PREFIX}{self.path.name}-*"):
            shutil.rmtree(p, ignore_errors=True)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A temporary folder for a new version of this session; removed on any failure.

        The caller writes every output into it and then calls :meth:`publish`.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / f"{TMP_PREFIX}{self.path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone after publish; removed on failure

    def publish(self, staged: Path, record: SessionRecord) -> None:
        """Write ``session.json`` into ``staged`` (last), then move it into place,
        replacing an older folder (moved aside, then removed)."""
        record.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        (staged / SESSION_JSON).write_text(record.to_json())
        trash = None
        if self.path.exists():
            trash = self.path.with_name(f"{TRASH_PREFIX}{self.path.name}-{uuid.uuid4().hex[:8]}")
            self.path.rename(trash)
        staged.rename(self.path)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)


class OutFolder:
    """The output root ``OUT``: its sessions and its dataset-level files."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out)

    def session(self, session_id: int) -> SessionFolder:
        return SessionFolder(self.path, session_id)

    def session_folders(self) -> list[SessionFolder]:
        """Every ``session_<id>`` folder, complete or not, by id."""
        found = []
        for d in self.path.glob("session_*"):
            tail = d.name.split("_", 1)[1]
            if d.is_dir() and tail.isdigit():
                found.append(SessionFolder(self.path, int(tail)))
        return sorted(found, key=lambda s: s.session_id)

    def remove_orphan_temporaries(self) -> list[Path]:
        """Temporary folders of exports that died (a killed Dask worker): those whose
        session lock nobody holds. Returns what was removed."""
        from filelock import Timeout

        removed = []
        for tmp in self.path.glob(f"{TMP_PREFIX}session_*-*"):
            tail = tmp.name[len(TMP_PREFIX) + len("session_"):].split("-", 1)[0]
            if not tail.isdigit():
                continue
            try:
                with self.session(int(tail)).lock(timeout=0):
                    shutil.rmtree(tmp, ignore_errors=True)
                    removed.append(tmp)
            except Timeout:  # an export of that session is running: its folder is not an orphan
                continue
        return removed

    def exported(self) -> list[int]:
        """Ids of the sessions whose folder is complete under the current schema."""
        return [s.session_id for s in self.session_folders() if (r := s.read_record()) and r.is_current]

    @property
    def qc(self) -> Path:
        return self.path / "qc"

    @property
    def legacy(self) -> Path:
        return self.path / "legacy"

    @property
    def catalog(self) -> Path:
        return self.path / "sessions.parquet"
