"""Where a session comes from: a local NWB file or an http(s) URL (:mod:`spikeprep.io.remote`).

A :class:`Source` is what the reader opens and what the skip check identifies: its
:class:`SourceInfo` (location, size, and an ETag or mtime where known) is recorded in
``session.json``, so a rerun knows whether the same file was exported. Every stage
above the reader sees the same :class:`~spikeprep.core.model.Session` whatever the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..core.errors import NWBFormatError

__all__ = ["SourceInfo", "Source", "LocalFile", "is_url", "as_local_source"]


@dataclass(frozen=True)
class SourceInfo:
    """The identity of a session source, as recorded in ``session.json``.

    Attributes
    ----------
    location : str
        Absolute path or URL.
    name : str
        File name (``session_<id>.nwb``).
    size : int or None
        Bytes.
    etag, last_modified : str or None
        HTTP validators, where the server gave them.
    mtime : float or None
        Modification time of a local file (s since the epoch).
    bytes_fetched : int or None
        Bytes read over the network (None for a local file).
    note : str or None
        How it was read when that is worth saying (e.g. a server that ignored Range).
    """

    location: str
    name: str
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    mtime: float | None = None
    bytes_fetched: int | None = None
    note: str | None = None

    def same_file(self, other: "SourceInfo") -> bool:
        """True when ``other`` is the same content as far as both can tell: equal sizes,
        and equal ETags where both have one (mtime changes with a re-download, so it is
        recorded but not compared)."""
        if self.size is None or other.size is None or self.size != other.size:
            return False
        return self.etag is None or other.etag is None or self.etag == other.etag

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SourceInfo":
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})


class Source(Protocol):
    """A session file the reader can open with h5py."""

    @property
    def location(self) -> str: ...

    @property
    def name(self) -> str: ...

    def info(self) -> SourceInfo: ...

    def open(self) -> Any:
        """A path or a binary file-like object for ``h5py.File``."""


@dataclass(frozen=True)
class LocalFile:
    """A session NWB file on a local disk."""

    path: Path

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def info(self) -> SourceInfo:
        st = self.path.stat()
        return SourceInfo(str(self.path.resolve()), self.path.name, st.st_size, mtime=st.st_mtime)

    def open(self) -> Path:
        if not self.path.exists():
            raise NWBFormatError(self.path, "no such file")
        if self.path.is_dir():
            raise NWBFormatError(self.path, "is a folder, not an NWB file")
        return self.path


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def as_local_source(source: "str | Path | Source") -> "Source":
    """A source as given, or a local path as a :class:`LocalFile`.

    The reader calls this, so it takes any :class:`Source` but opens only local paths
    itself: a URL must come as a source (``spikeprep.open_source(url)``), made at the
    entry points, so that the reader never knows about HTTP.
    """
    if isinstance(source, (str, Path)):
        if is_url(str(source)):
            raise NWBFormatError(str(source), "a URL: open it with spikeprep.open_source(url) and pass the source")
        return LocalFile(Path(source))
    return source
