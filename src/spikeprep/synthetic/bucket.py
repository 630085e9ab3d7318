"""A folder in the Allen bucket's layout, with its catalog CSVs, for download and streaming tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.catalog import MANIFEST, allensdk_manifest
from ..io.nwb import read_session
from .spec import SynthSpec
from .writer import write_session

__all__ = ["write_bucket", "CCF_IDS"]

# the Allen CCF structure ids of the areas the generator places (the catalog's ecephys_structure_id)
CCF_IDS = {"VISp": 385.0, "VISl": 409.0, "VISal": 402.0, "VISam": 394.0, "VISpm": 533.0, "VISrl": 417.0,
           "CA1": 382.0, "CA3": 463.0, "DG": 726.0, "LP": 218.0, "LGd": 170.0, "APN": 215.0, "grey": 8.0}
_SUBSAMPLING = 2  # the released catalog lists the LFP rate before 2x temporal subsampling
_CCF = ("anterior_posterior_ccf_coordinate", "dorsal_ventral_ccf_coordinate", "left_right_ccf_coordinate")
# the metric columns of the released units.csv (every scalar column of the NWB units table)
_UNIT_METRICS = ("quality", "snr", "amplitude_cutoff", "presence_ratio", "isi_violations", "firing_rate", "PT_ratio",
                 "amplitude", "l_ratio", "cluster_id", "cumulative_drift", "d_prime", "isolation_distance",
                 "local_index", "max_drift", "nn_hit_rate", "nn_miss_rate", "recovery_slope", "repolarization_slope",
                 "silhouette_score", "spread", "velocity_above", "velocity_below", "waveform_duration",
                 "waveform_halfwidth")


def write_bucket(folder: str | Path, specs: list[SynthSpec]) -> Path:
    """A folder in the Allen bucket / AllenSDK cache layout, for download tests and demos.

    ``manifest.json``, ``sessions.csv``, ``probes.csv``, ``channels.csv``, ``units.csv``
    (with the released catalog's columns: every unit metric, structure ids and CCF
    coordinates, the LFP subsampling factor and air and surface channels) and
    ``session_<id>/session_<id>.nwb`` (and its probe LFP files) for every spec.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sessions, probes, channels, units = [], [], [], []
    for spec in specs:
        nwb = folder / f"session_{spec.sid}" / f"session_{spec.sid}.nwb"
        nwb.parent.mkdir(exist_ok=True)
        s = read_session(write_session(nwb, spec))
        m = s.metadata
        sessions.append({"id": spec.sid, "published_at": "2019-10-03T00:00:00Z", "specimen_id": 700_000 + spec.seed,
                         "session_type": m["session_type"], "age_in_days": float(m["age"].strip("PD") or 0),
                         "sex": m["sex"], "genotype": m["genotype"], "date_of_acquisition": "2019-01-19",
                         "isi_experiment_id": 1, "has_nwb": True})
        probes += [{"id": pid, "ecephys_session_id": spec.sid, "name": row["name"], "sampling_rate": row["sampling_rate"],
                    "lfp_sampling_rate": row["lfp_sampling_rate"] * _SUBSAMPLING, "phase": "3a",
                    "has_lfp_data": row["has_lfp_data"], "lfp_temporal_subsampling_factor": float(_SUBSAMPLING),
                    "air_channel_index": 384, "surface_channel_index": 360}
                   for pid, row in s.probes.iterrows()]
        ch = s.channels.reset_index()
        region = ch["region"].astype(object)
        channels.append(pd.DataFrame({"id": ch["channel_id"], "ecephys_probe_id": ch["probe_id"],
                                      "local_index": ch["local_index"],
                                      "probe_horizontal_position": ch["probe_horizontal_position"],
                                      "probe_vertical_position": ch["probe_vertical_position"],
                                      "valid_data": ch["valid_data"], "ecephys_structure_acronym": region,
                                      "ecephys_structure_id": [CCF_IDS.get(r, np.nan) for r in region],
                                      **{c: ch[c] for c in _CCF}}))
        u = s.units.reset_index().rename(columns={"unit_id": "id", "peak_channel_id": "ecephys_channel_id"})
        metrics = [c for c in _UNIT_METRICS if c in u.columns]
        units.append(u[["id", "ecephys_channel_id", *metrics]].astype({"quality": object}))
    pd.DataFrame(sessions).to_csv(folder / "sessions.csv", index=False)
    pd.DataFrame(probes).to_csv(folder / "probes.csv", index=False)
    pd.concat(channels).to_csv(folder / "channels.csv", index=False)
    pd.concat(units).to_csv(folder / "units.csv", index=False)
    _write_templates(folder)
    (folder / MANIFEST).write_text(json.dumps(allensdk_manifest(), indent=2))
    return folder


def _write_templates(folder: Path, scenes: int = 3, movies: tuple[int, ...] = (1, 3)) -> None:
    """Small stimulus templates in the bucket's layout (AllenSDK's cache names): scenes as
    8-bit TIFF images, movies as NumPy arrays (frames × rows × columns, uint8)."""
    from PIL import Image

    from ..io.templates import template_path

    rng = np.random.default_rng(7)
    for n in range(scenes):
        path = template_path(folder, "scene", n)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 64), dtype=np.uint8)).save(path, format="TIFF")
    for n in movies:
        path = template_path(folder, "movie", n)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.save(f, rng.integers(0, 256, (30, 24, 32), dtype=np.uint8))
