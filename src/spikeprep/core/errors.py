"""Error types. Every message names the file and the problem in one line."""

from __future__ import annotations

from os import PathLike


class SpikeprepError(Exception):
    """Base class of the errors spikeprep raises on bad input or failed I/O."""


class NWBFormatError(SpikeprepError):
    """A session NWB file that cannot be read as an Allen session.

    Parameters
    ----------
    path : path-like
        The file.
    problem : str
        What is wrong, in a few words.
    """

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DownloadError(SpikeprepError):
    """A download that failed after its retries."""


class ExportError(SpikeprepError):
    """An export that could not be completed (disk full, bad output folder, …)."""


class AlignmentError(SpikeprepError, ValueError):
    """A bad stimulus name, window, bin size or id list for a session view; the message
    lists the valid choices."""
