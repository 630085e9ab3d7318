"""The session table, built from the bucket's CSV files as AllenSDK's
``EcephysProjectCache.get_session_table()`` builds it.

Pure: takes a folder holding ``sessions.csv`` (and, when present, ``probes.csv``,
``channels.csv``, ``units.csv``); fetching them is the pipeline's job.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..core.errors import SpikeprepError

__all__ = ["CATALOG_FILES", "build_session_table", "allensdk_manifest", "MANIFEST"]

CATALOG_FILES = ("sessions.csv", "probes.csv", "channels.csv", "units.csv")
MANIFEST = "manifest.json"
# AllenSDK 2.16's EcephysProjectCache manifest (MANIFEST_VERSION 0.3.0): key, type, spec, parent
_MANIFEST_PATHS = (
    ("BASEDIR", "dir", ".", None), ("sessions", "file", "sessions.csv", "BASEDIR"),
    ("probes", "file", "probes.csv", "BASEDIR"), ("channels", "file", "channels.csv", "BASEDIR"),
    ("units", "file", "units.csv", "BASEDIR"), ("session_data", "dir", "session_%d", "BASEDIR"),
    ("session_nwb", "file", "session_%d.nwb", "session_data"),
    ("session_analysis_metrics", "file", "session_%d_analysis_metrics.csv", "session_data"),
    ("probe_lfp_nwb", "file", "probe_%d_lfp.nwb", "session_data"),
    ("movie_dir", "dir", "natural_movie_templates", "BASEDIR"),
    ("typewise_analysis_metrics", "file", "%s_analysis_metrics.csv", "BASEDIR"),
    ("natural_movie", "file", "natural_movie_%d.h5", "movie_dir"),
    ("natural_scene_dir", "dir", "natural_scene_templates", "BASEDIR"),
    ("natural_scene", "file", "natural_scene_%d.tiff", "natural_scene_dir"),
)
_HIDDEN = ("date_of_acquisition", "isi_experiment_id", "has_nwb")


def allensdk_manifest() -> dict:
    """The ``manifest.json`` AllenSDK's ``EcephysProjectCache`` writes into a cache folder
    (and accepts there): the layout of the catalog, sessions and templates."""
    paths = [{"key": k, "type": t, "spec": spec, **({"parent_key": parent} if parent else {})}
             for k, t, spec, parent in _MANIFEST_PATHS]
    return {"manifest": [{"type": "manifest_version", "value": "0.3.0"}, *paths]}


def build_session_table(folder: str | Path) -> pd.DataFrame:
    """The session table, indexed by session id: AllenSDK's ``get_session_table()`` (see
    :class:`spikeprep.io.allensdk_tables.CatalogTables`), and ``lfp_probe_ids`` (the
    probes with an LFP file). With ``sessions.csv`` alone, its own columns."""
    from .allensdk_tables import CatalogTables

    folder = Path(folder)
    path = folder / "sessions.csv"
    if not all((folder / f).exists() for f in CATALOG_FILES[1:]):
        try:
            sessions = pd.read_csv(path, index_col="id")
        except (OSError, ValueError, KeyError) as exc:
            raise SpikeprepError(f"{path}: cannot read the session table ({exc})") from exc
        return sessions.rename(columns={"genotype": "full_genotype"}).drop(columns=[c for c in _HIDDEN if c in sessions])
    tables = CatalogTables(folder)
    sessions = tables.session_table()
    probes = tables.probes(suppress=[])
    if "has_lfp_data" in probes:  # which probes have an LFP file (probe_<id>_lfp.nwb beside the session)
        lfp = probes[probes["has_lfp_data"].astype(str).str.lower() == "true"]
        ids = {sid: sorted(int(i) for i in g.index) for sid, g in lfp.groupby("ecephys_session_id")}
        sessions.insert(len(sessions.columns) - 1, "lfp_probe_ids", [ids.get(i, []) for i in sessions.index])
    return sessions
