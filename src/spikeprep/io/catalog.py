"""The session table, built from the bucket's CSV files as AllenSDK's
``EcephysProjectCache.get_session_table()`` builds it.

Pure: takes a folder holding ``sessions.csv`` (and, when present, ``probes.csv``,
``channels.csv``, ``units.csv``); fetching them is the pipeline's job.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import SpikeprepError
from ..core.options import AMPLITUDE_CUTOFF_MAX, ISI_VIOLATIONS_MAX, PRESENCE_RATIO_MIN

__all__ = ["CATALOG_FILES", "build_session_table", "allen_default_filter", "allensdk_manifest", "MANIFEST"]

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


def allen_default_filter(units: pd.DataFrame) -> pd.Series:
    """AllenSDK's default unit filter on the units.csv columns (NaN fails)."""
    def col(name: str) -> pd.Series:
        return pd.to_numeric(units[name], errors="coerce") if name in units else pd.Series(np.nan, index=units.index)

    ok = (col("amplitude_cutoff").le(AMPLITUDE_CUTOFF_MAX) & col("presence_ratio").ge(PRESENCE_RATIO_MIN)
          & col("isi_violations").le(ISI_VIOLATIONS_MAX))
    if "quality" in units:
        ok &= units["quality"].eq("good")
    if "valid_data" in units:
        ok &= units["valid_data"].astype(bool)
    if "ecephys_structure_acronym" in units:
        ok &= units["ecephys_structure_acronym"].notna()
    return ok.fillna(False)


def build_session_table(folder: str | Path) -> pd.DataFrame:
    """The 58-session table, indexed by session id.

    Columns: ``published_at``, ``specimen_id``, ``session_type``, ``age_in_days``, ``sex``,
    ``full_genotype`` and, when the probe/channel/unit CSVs are there, ``unit_count``
    (units passing AllenSDK's default filter), ``channel_count``, ``probe_count``,
    ``ecephys_structure_acronyms`` and ``lfp_probe_ids`` (the probes with an LFP file).
    """
    folder = Path(folder)
    path = folder / "sessions.csv"
    try:
        sessions = pd.read_csv(path, index_col="id")
    except (OSError, ValueError, KeyError) as exc:
        raise SpikeprepError(f"{path}: cannot read the session table ({exc})") from exc
    sessions = sessions.rename(columns={"genotype": "full_genotype"}).drop(columns=[c for c in _HIDDEN if c in sessions])
    sessions.index.name = "id"
    if not all((folder / f).exists() for f in CATALOG_FILES[1:]):
        return sessions
    probes = pd.read_csv(folder / "probes.csv", index_col="id")
    channels = pd.read_csv(folder / "channels.csv", index_col="id")
    units = pd.read_csv(folder / "units.csv", index_col="id")
    channels["ecephys_session_id"] = probes["ecephys_session_id"].reindex(channels["ecephys_probe_id"]).to_numpy()
    ch_cols = ["ecephys_session_id", "ecephys_structure_acronym"] + (["valid_data"] if "valid_data" in channels else [])
    units = units.drop(columns=[c for c in ch_cols if c in units]).join(channels[ch_cols], on="ecephys_channel_id")
    per_session = sessions.index
    sessions["unit_count"] = units[allen_default_filter(units)].groupby("ecephys_session_id").size() \
        .reindex(per_session, fill_value=0).astype(int)
    sessions["channel_count"] = channels.groupby("ecephys_session_id").size().reindex(per_session, fill_value=0).astype(int)
    sessions["probe_count"] = probes.groupby("ecephys_session_id").size().reindex(per_session, fill_value=0).astype(int)
    if "has_lfp_data" in probes:  # which probes have an LFP file (probe_<id>_lfp.nwb beside the session)
        lfp = probes[probes["has_lfp_data"].astype(str).str.lower() == "true"]
        ids = lfp.groupby("ecephys_session_id").apply(lambda g: sorted(int(i) for i in g.index))
        sessions["lfp_probe_ids"] = [ids.get(i, []) for i in per_session]
    areas = channels.dropna(subset=["ecephys_structure_acronym"]).groupby("ecephys_session_id")["ecephys_structure_acronym"]
    acronyms = areas.agg(lambda s: sorted(set(s)))
    sessions["ecephys_structure_acronyms"] = [acronyms.get(i, []) for i in per_session]
    return sessions
