"""The Allen bucket (or a mirror): the session table and session files in a local cache.

Built on :mod:`spikeprep.io.download` (resumable, verified HTTP downloads) and
:mod:`spikeprep.io.catalog` (the table from the bucket's CSVs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..core.errors import DownloadError
from .catalog import CATALOG_FILES, build_session_table

__all__ = ["session_table", "fetch_catalog", "Download", "download_sessions", "default_cache"]

log = logging.getLogger(__name__)


def default_cache() -> Path:
    """``~/.cache/spikeprep``: where the catalog CSVs go when no cache folder is given."""
    return Path.home() / ".cache" / "spikeprep"


def session_table(base_url: str | None = None, cache: str | Path | None = None, *, offline: bool = False) -> pd.DataFrame:
    """The session table (AllenSDK's ``get_session_table()`` columns), cached in ``cache``.

    Parameters
    ----------
    base_url : str, optional
        Bucket or mirror (default ``$SPIKEPREP_BASE_URL`` or Allen's bucket).
    cache : path, optional
        Folder holding (or receiving) the catalog CSVs; default ``~/.cache/spikeprep``.
    offline : bool
        Use the cached CSVs only.
    """
    return build_session_table(fetch_catalog(base_url, cache, offline=offline))


def fetch_catalog(base_url: str | None = None, cache: str | Path | None = None, *, offline: bool = False) -> Path:
    """Bring the catalog CSVs into ``cache`` (each verified, resumed, kept when the bucket
    cannot be reached and a copy is there); returns the folder."""
    import httpx

    from .download import base_url as resolve
    from .download import download_file

    folder = Path(cache) if cache else default_cache()
    if not offline:
        url = resolve(base_url)
        with httpx.Client(timeout=30.0, follow_redirects=True) as client:
            for name in CATALOG_FILES:
                try:
                    download_file(url + name, folder / name, client=client, attempts=4, max_wait=5.0)
                except DownloadError as exc:
                    if (folder / name).exists():
                        log.warning("%s; using the cached copy", exc)
                    elif name == "sessions.csv":
                        raise
    return folder


@dataclass
class Download:
    """One session file's download outcome."""

    session_id: int
    path: Path
    error: str = ""


def download_sessions(ids: Sequence[int], cache: str | Path, *, base_url: str | None = None,
                      progress: bool = True, offline_ok: bool = True, attempts: int = 8,
                      max_wait: float = 30.0) -> list[Download]:
    """Download session NWB files into ``cache`` (AllenSDK layout); failures don't stop others.

    A file already in the cache is verified against the server's size (resumed or
    re-fetched when it differs); when the server cannot be reached, files already in
    the cache are used as they are, with a warning.
    """
    import httpx

    from .download import download_file, session_nwb_path, session_url

    out = []
    with httpx.Client(timeout=30.0, follow_redirects=True) as client:
        for sid in ids:
            dest = session_nwb_path(cache, sid)
            try:
                download_file(session_url(sid, base_url), dest, client=client, progress=progress,
                              attempts=attempts, max_wait=max_wait)
                out.append(Download(sid, dest))
            except DownloadError as exc:
                if offline_ok and dest.exists() and _unreachable(exc):
                    log.warning("%s; using %s as it is", exc, dest)
                    out.append(Download(sid, dest))
                else:
                    out.append(Download(sid, dest, str(exc)))
    return out


def _unreachable(exc: DownloadError) -> bool:
    import httpx

    cause = exc.__cause__
    return isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout))
