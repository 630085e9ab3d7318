"""``spikeprep.EcephysProjectCache``: AllenSDK's project cache on spikeprep's catalog,
downloads, streaming and exported folders.

A tutorial that begins ``cache = EcephysProjectCache.from_warehouse(manifest=path)``
runs after changing its import line: the tables are AllenSDK's (same joins, filters,
columns, index and dtypes; see :mod:`spikeprep.io.allensdk_tables`), read once per
process, and ``get_session_data`` exports a session on first use (downloaded, or
streamed with ``stream=True``) and opens the exported folder afterwards.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from .analysis.unit_filter import UnitFilter
from .core.errors import SpikeprepError
from .ecephys import EcephysSession
from .io.allensdk_tables import CatalogTables
from .io.bucket import fetch_catalog

if TYPE_CHECKING:
    import numpy as np

__all__ = ["EcephysProjectCache", "open_cache"]

_WAREHOUSE_ONLY = ("scheme", "host", "asynchronous", "fetch_tries", "timeout", "version", "cache")


class EcephysProjectCache:
    """AllenSDK's ``EcephysProjectCache`` over a cache folder (AllenSDK's layout:
    ``manifest.json``, the catalog CSVs, ``session_<id>/session_<id>.nwb``).

    Parameters
    ----------
    manifest : path, optional
        ``manifest.json`` (its folder is the cache) or the cache folder itself; default
        ``~/.cache/spikeprep``. An existing AllenSDK cache works as it is.
    base_url : str, optional
        The bucket or a mirror (default ``$SPIKEPREP_BASE_URL`` or Allen's bucket).
    stream : bool
        Export sessions straight from the bucket (byte ranges) instead of downloading them.
    out : path, optional
        Where exported folders go (default ``<cache>/spikeprep_out``).
    offline : bool
        Use the catalog already in the cache; never reach the bucket for it.
    """

    def __init__(self, manifest: str | Path | None = None, *, base_url: str | None = None, stream: bool = False,
                 out: str | Path | None = None, offline: bool = False) -> None:
        folder = Path(manifest) if manifest else Path.home() / ".cache" / "spikeprep"
        self.cache = folder.parent if folder.suffix == ".json" else folder
        self.base_url, self.stream, self.offline = base_url, stream, offline
        self.out = Path(out) if out else self.cache / "spikeprep_out"
        self._tables: CatalogTables | None = None

    @classmethod
    def from_warehouse(cls, manifest: str | Path | None = None, *, stream: bool = False, out: str | Path | None = None,
                       base_url: str | None = None, **warehouse: Any) -> "EcephysProjectCache":
        """AllenSDK's constructor. Its warehouse arguments (``scheme``, ``host``,
        ``fetch_tries``, ``timeout``, …) are accepted; those that do not apply are named in
        one warning."""
        _warn_ignored(warehouse)
        return cls(manifest, base_url=base_url, stream=stream, out=out)

    @classmethod
    def fixed(cls, manifest: str | Path | None = None, *, stream: bool = False, out: str | Path | None = None,
              **warehouse: Any) -> "EcephysProjectCache":
        """A cache that never reaches the bucket for its catalog (AllenSDK 2.16's ``fixed()``
        raises ``AttributeError``; this one works offline)."""
        _warn_ignored(warehouse)
        return cls(manifest, stream=stream, out=out, offline=True)

    def __repr__(self) -> str:
        return f"EcephysProjectCache({self.cache}, out={self.out}, stream={self.stream})"

    @property
    def tables(self) -> CatalogTables:
        """The catalog, fetched once (or found offline) and read once."""
        if self._tables is None:
            offline = self.offline or os.environ.get("SPIKEPREP_OFFLINE") == "1"
            if offline and not (self.cache / "sessions.csv").exists():
                raise SpikeprepError(f"{self.cache}: no catalog here (sessions.csv); download it once with "
                                     f"spikeprep sessions --cache {self.cache}")
            self._tables = CatalogTables(fetch_catalog(self.base_url, self.cache, offline=offline))
        return self._tables

    # ------------------------------------------------------------------ AllenSDK's tables
    def get_session_table(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        return self.tables.session_table(suppress)

    def get_probes(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        return self.tables.probes(suppress)

    def get_channels(self, suppress: Sequence[str] | None = None) -> pd.DataFrame:
        return self.tables.channels(suppress)

    def get_units(self, suppress: Sequence[str] | None = None, filter_by_validity: bool = True,
                  **unit_filter_kwargs: Any) -> pd.DataFrame:
        return self.tables.units(suppress, filter_by_validity, **unit_filter_kwargs)

    def get_all_session_types(self, **session_kwargs: Any) -> list[Any]:
        return self.get_session_table(**session_kwargs)["session_type"].unique().tolist()

    def get_all_full_genotypes(self, **session_kwargs: Any) -> list[Any]:
        return self.get_session_table(**session_kwargs)["full_genotype"].unique().tolist()

    def get_structure_acronyms(self, **channel_kwargs: Any) -> list[Any]:
        values = self.get_channels(**channel_kwargs)["ecephys_structure_acronym"].unique().tolist()
        return [None if isinstance(v, float) and v != v else v for v in values]

    def get_all_ages(self, **session_kwargs: Any) -> list[Any]:
        return self.get_session_table(**session_kwargs)["age_in_days"].unique().tolist()

    def get_all_sexes(self, **session_kwargs: Any) -> list[Any]:
        return self.get_session_table(**session_kwargs)["sex"].unique().tolist()

    # ------------------------------------------------------------------ stimulus templates
    def get_natural_scene_template(self, number: int) -> "np.ndarray":
        """Natural scene ``number`` (rows × columns, uint8), from the cache or the bucket."""
        from .io.templates import fetch_template, read_scene

        return read_scene(fetch_template(self.cache, "scene", number, self.base_url, offline=self.offline))

    def get_natural_movie_template(self, number: int) -> "np.ndarray":
        """Natural movie ``number`` (frames × rows × columns), from the cache or the bucket."""
        from .io.templates import fetch_template, read_movie

        return read_movie(fetch_template(self.cache, "movie", number, self.base_url, offline=self.offline))

    # ------------------------------------------------------------------ sessions
    def get_session_data(self, session_id: int, filter_by_validity: bool = True,
                         **unit_filter_kwargs: Any) -> EcephysSession:
        """The session, filtered as AllenSDK filters it. On first use it is downloaded (or
        streamed with ``stream=True``) and exported, with a progress bar; afterwards the
        exported folder opens at once. Two processes asking at once export it once (the
        session's lock).

        Raises
        ------
        SpikeprepError
            An unknown session id, or a download or export that failed (one line).
        """
        from .pipeline import run_sessions

        session_id = int(session_id)
        known = self.tables.session_ids()
        if session_id not in known:
            raise SpikeprepError(f"no session {session_id} in the catalog of {self.cache} "
                                 f"({len(known)} sessions, e.g. {', '.join(map(str, known[:3]))})")
        unit_filter = UnitFilter.from_kwargs(filter_by_validity=filter_by_validity, **unit_filter_kwargs)
        offline = self.offline or os.environ.get("SPIKEPREP_OFFLINE") == "1"
        results = run_sessions([session_id], self.cache, self.out, base_url=self.base_url, stream=self.stream,
                               progress=True, offline=offline)
        failed = [r for r in results if not r.ok]
        if failed:
            raise SpikeprepError(failed[0].message)
        return EcephysSession(self.out, session_id, unit_filter=unit_filter)

    # ------------------------------------------------------------------ unit analysis metrics
    def get_unit_analysis_metrics_for_session(self, session_id: int, annotate: bool = True,
                                              filter_by_validity: bool = True, **unit_filter_kwargs: Any
                                              ) -> pd.DataFrame:
        """AllenSDK's per-unit analysis metrics of one session (index ``ecephys_unit_id``).

        An AllenSDK cache's ``session_<id>/session_<id>_analysis_metrics.csv`` is used as
        it is; otherwise the session is exported (as :meth:`get_session_data` does) and
        its metrics computed once (``spikeprep metrics``) and kept. With ``annotate``,
        joined to :meth:`get_units` (filtered as there, inner join) as AllenSDK does.
        """
        metrics = self._session_metrics(int(session_id))
        if annotate:
            units = self.get_units(filter_by_validity=filter_by_validity, **unit_filter_kwargs)
            return self._annotated(units[units["ecephys_session_id"] == int(session_id)], metrics)
        return metrics

    def get_unit_analysis_metrics_by_session_type(self, session_type: str, annotate: bool = True,
                                                  filter_by_validity: bool = True, **unit_filter_kwargs: Any
                                                  ) -> pd.DataFrame:
        """The metrics of every session of ``session_type`` (AllenSDK's; an AllenSDK
        cache's ``<type>_analysis_metrics.csv`` is used as it is, otherwise each session is
        exported and analysed once).

        Raises
        ------
        ValueError
            An unknown session type (AllenSDK's error, with the known types).
        """
        table = self.get_session_table()
        known = table["session_type"].unique().tolist()  # get_all_session_types(), without a second table
        if session_type not in known:
            raise ValueError(f"unrecognized session type: {session_type}. Available types: {known}")
        cached = self.cache / f"{session_type}_analysis_metrics.csv"
        if cached.exists():
            metrics = pd.read_csv(cached, index_col="ecephys_unit_id")
        else:
            ids = table.index[table["session_type"] == session_type]
            metrics = pd.concat([self._session_metrics(int(i)) for i in ids])
        if annotate:
            return self._annotated(self.get_units(filter_by_validity=filter_by_validity, **unit_filter_kwargs), metrics)
        return metrics

    def _session_metrics(self, session_id: int) -> pd.DataFrame:
        from .analysis.tuning.outputs import UNIT_METRICS
        from .pipeline import metrics_one

        cached = self.cache / f"session_{session_id}" / f"session_{session_id}_analysis_metrics.csv"
        if cached.exists():
            return pd.read_csv(cached, index_col="ecephys_unit_id")
        self.get_session_data(session_id)
        result = metrics_one(session_id, self.out)
        if not result.ok:
            raise SpikeprepError(result.message)
        table = pd.read_parquet(self.out / f"session_{session_id}" / UNIT_METRICS)
        return table.set_index("unit_id").rename_axis("ecephys_unit_id")

    @staticmethod
    def _annotated(units: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
        merged = pd.merge(units, metrics, left_index=True, right_index=True, how="inner")
        return merged.rename_axis("ecephys_unit_id")


def open_cache(cache: str | Path, base_url: str | None = None, out: str | Path | None = None, *,
               stream: bool = False) -> EcephysProjectCache:
    """:class:`EcephysProjectCache` on a cache folder (spikeprep's spelling)."""
    return EcephysProjectCache(cache, base_url=base_url, out=out, stream=stream)


def _warn_ignored(arguments: dict[str, Any]) -> None:
    unknown = sorted(set(arguments) - set(_WAREHOUSE_ONLY))
    if unknown:
        raise TypeError(f"unexpected argument {unknown[0]!r} (AllenSDK's are {', '.join(_WAREHOUSE_ONLY)})")
    if arguments:
        warnings.warn(f"EcephysProjectCache ignores {', '.join(sorted(arguments))}: spikeprep reads the bucket with "
                      f"its own retries and timeouts", stacklevel=3)
