"""``spikeprep.EcephysSession``: AllenSDK's class name, and its ``from_nwb_path``, over
spikeprep's exported folders.

``EcephysSession.from_nwb_path(path)`` exports the file on first use (a URL is streamed)
into a cache folder and opens the folder; a second call finds the export and opens it
at once. Its units are filtered as AllenSDK filters them by default (``api_kwargs``
change the filter); ``spikeprep.open_session`` shows every unit instead.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from .analysis.session import ExportedSession
from .analysis.unit_filter import UnitFilter
from .core.errors import SpikeprepError
from .io.source import is_url

__all__ = ["EcephysSession", "export_cache"]

_IGNORED_API_KWARGS = ("probe_lfp_paths", "additional_unit_metrics", "external_channel_columns")


def export_cache(path: str | Path, cache: str | Path | None = None) -> Path:
    """Where ``from_nwb_path`` keeps the export of ``path``: ``cache``, else
    ``$SPIKEPREP_CACHE``, else a ``spikeprep_exports`` folder beside a local file (when
    that folder can be written), else ``~/.cache/spikeprep/exports``."""
    chosen = cache or os.environ.get("SPIKEPREP_CACHE")
    if chosen:
        return Path(chosen)
    if not is_url(str(path)):
        beside = Path(path).resolve().parent
        if os.access(beside, os.W_OK):
            return beside / "spikeprep_exports"
    return Path.home() / ".cache" / "spikeprep" / "exports"


class EcephysSession(ExportedSession):
    """An exported session under AllenSDK's class name (see :class:`ExportedSession`)."""

    @classmethod
    def from_nwb_path(cls, path: str | Path, nwb_version: int = 2, api_kwargs: dict[str, Any] | None = None, *,
                      cache: str | Path | None = None, **kwargs: Any) -> "EcephysSession":
        """Export a session file (or URL) once, then open it as AllenSDK does.

        Parameters
        ----------
        path : str or Path
            A session NWB file, or its http(s) URL (only the byte ranges the export needs
            are fetched).
        nwb_version : int
            2 (the released files); NWB 1 files are not supported.
        api_kwargs : dict, optional
            AllenSDK's unit filter: ``filter_by_validity``, ``filter_out_of_brain_units``,
            ``amplitude_cutoff_maximum``, ``presence_ratio_minimum``,
            ``isi_violations_maximum`` (AllenSDK's defaults when absent).
        cache : path, optional
            Where the export is kept (see :func:`export_cache`).

        Raises
        ------
        SpikeprepError
            The file cannot be exported; the message names it and the problem.
        """
        from .pipeline import export_file

        if int(nwb_version) != 2:
            raise SpikeprepError(f"{path}: NWB {nwb_version} files are not supported (the released files are NWB 2)")
        api_kwargs = dict(api_kwargs or {})
        ignored = [k for k in _IGNORED_API_KWARGS if api_kwargs.pop(k, None) is not None] + sorted(kwargs)
        if ignored:
            warnings.warn(f"from_nwb_path ignores {', '.join(ignored)} (LFP comes from the probe files "
                          f"next to the session)", stacklevel=2)
        unit_filter = UnitFilter.from_kwargs(**api_kwargs)
        out = export_cache(path, cache)
        result = export_file(path, out, cache=out / ".blocks" if is_url(str(path)) else None)
        if not result.ok:
            raise SpikeprepError(result.message)
        return cls(out, result.session_id, unit_filter=unit_filter)
