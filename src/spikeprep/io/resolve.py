"""One place that turns what a user names (a path, a URL) into a :class:`Source`.

The entry points (the command, the pipeline, the public API) call :func:`open_source`
once; the reader only ever sees the source. A new kind of source (DANDI, S3) is one
more branch here and one more module in ``io/``.
"""

from __future__ import annotations

from pathlib import Path

from .source import LocalFile, Source, is_url

__all__ = ["open_source"]


def open_source(location: "str | Path | Source", cache: str | Path | None = None) -> Source:
    """A :class:`~spikeprep.io.source.Source` for a session file.

    Parameters
    ----------
    location : str, Path or Source
        A local NWB file, an http(s) URL (read by byte ranges), or a source (returned as
        it is).
    cache : str or Path, optional
        Folder for a URL's block cache (default ``~/.cache/spikeprep``).

    Returns
    -------
    Source
    """
    if isinstance(location, (str, Path)):
        text = str(location)
        if not is_url(text):
            return LocalFile(Path(location))
        from .remote import HttpSource  # (httpx loads only for URLs)

        return HttpSource(text, cache)
    return location
