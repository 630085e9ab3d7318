"""A folder in the Allen bucket's layout, with its catalog CSVs, for download and streaming tests."""

from __future__ import annotations

from pathlib import Path

from ..io.nwb import read_session
from .spec import SynthSpec
from .writer import write_session

__all__ = ["write_bucket"]


def write_bucket(folder: str | Path, specs: list[SynthSpec]) -> Path:
    """A folder in the Allen bucket / AllenSDK cache layout, for download tests and demos.

    ``manifest.json``, ``sessions.csv``, ``probes.csv``, ``channels.csv``, ``units.csv``
    and ``session_<id>/session_<id>.nwb`` for every spec.
    """
    import json

    import pandas as pd

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
                    "lfp_sampling_rate": row["lfp_sampling_rate"], "phase": "3a", "has_lfp_data": row["has_lfp_data"]}
                   for pid, row in s.probes.iterrows()]
        ch = s.channels.reset_index()
        channels.append(pd.DataFrame({"id": ch["channel_id"], "ecephys_probe_id": ch["probe_id"],
                                      "local_index": ch["local_index"],
                                      "probe_horizontal_position": ch["probe_horizontal_position"],
                                      "probe_vertical_position": ch["probe_vertical_position"],
                                      "valid_data": ch["valid_data"],
                                      "ecephys_structure_acronym": ch["region"].astype(object)}))
        u = s.units.reset_index()
        units.append(pd.DataFrame({"id": u["unit_id"], "ecephys_channel_id": u["peak_channel_id"],
                                   "quality": u["quality"].astype(object), "snr": u["snr"],
                                   "amplitude_cutoff": u["amplitude_cutoff"], "presence_ratio": u["presence_ratio"],
                                   "isi_violations": u["isi_violations"]}))
    pd.DataFrame(sessions).to_csv(folder / "sessions.csv", index=False)
    pd.DataFrame(probes).to_csv(folder / "probes.csv", index=False)
    pd.concat(channels).to_csv(folder / "channels.csv", index=False)
    pd.concat(units).to_csv(folder / "units.csv", index=False)
    (folder / "manifest.json").write_text(json.dumps({"manifest_version": "0.3.0", "spikeprep_synthetic": True}))
    return folder
