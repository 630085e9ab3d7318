"""The notebook's pickles, so existing analysis code keeps working (``--legacy-pickle``).

``OUT/legacy/{units,running,stimulus,fr}_<id>.pkl`` in the notebook's shapes. Values
differ from the notebook's where it was wrong: ``fr`` holds floor(exact rate) clipped
to 0…255, whereas the notebook counted two spikes in one 5 ms bin as one and wrapped
rates above 255 Hz to small numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.model import Session
from ..core.options import BIN_SIZE_S
from ..rates.binning import Kernel, fill_counts, make_grid, smooth_counts
from .layout import OutFolder, atomic_write

__all__ = ["write_legacy", "legacy_units", "legacy_running", "legacy_stimulus", "legacy_rates"]


def legacy_units(session: Session) -> pd.DataFrame:
    """Units with the notebook's columns on a 0…n−1 index."""
    u = session.units
    return pd.DataFrame({
        "channel": u["peak_channel_id"].to_numpy(), "id": u.index.to_numpy(),
        "snr": u["snr"].to_numpy(dtype=float), "d_prime": u["d_prime"].to_numpy(dtype=float),
        "isi_viol": u["isi_violations"].to_numpy(dtype=float), "region": u["region"].astype(object).to_numpy(),
        "probe": u["probe_name"].astype(object).to_numpy(), "hpos": u["probe_horizontal_position"].to_numpy(),
        "vpos": u["probe_vertical_position"].to_numpy(), "RS": u["is_rs"].to_numpy(dtype=bool),
        "layer": u["layer"].astype(object).to_numpy(),
    })


def legacy_running(session: Session) -> pd.DataFrame:
    """Running speed with the notebook's ``times`` (interval end times) and ``running_speed``."""
    return pd.DataFrame({"times": session.running["end_time"].to_numpy(),
                         "running_speed": session.running["velocity"].to_numpy()})


def legacy_stimulus(session: Session) -> pd.DataFrame:
    """Stimulus onsets: ``time``, ``stimulus_name``, ``block`` (−1 where absent)."""
    s = session.stimulus
    return pd.DataFrame({"time": s["start_time"].to_numpy(), "stimulus_name": s["stimulus_name"].astype(object).to_numpy(),
                         "block": s["stimulus_block"].fillna(-1).to_numpy(dtype=np.int64)})


def legacy_rates(session: Session, bin_size: float = BIN_SIZE_S, block: int = 64) -> pd.DataFrame:
    """A time × unit uint8 DataFrame of floor(exact rate in Hz) clipped to 0…255.

    Dense, as the notebook's was (≈5 GB for a full session): only for ``--legacy-pickle``.
    """
    spikes = session.spikes
    grid = make_grid(spikes, bin_size)
    out = np.zeros((grid.n_bins, spikes.n_units), dtype=np.uint8)
    counts = np.zeros((min(block, max(spikes.n_units, 1)), grid.n_bins), dtype=np.uint32)  # unit-major
    for a in range(0, spikes.n_units, block):
        b = min(spikes.n_units, a + block)
        view = counts[: b - a].T
        view.fill(0)
        fill_counts(spikes, grid, a, b, view)
        rates = smooth_counts(view, Kernel(), grid.bin_size, dtype=np.float64)
        out[:, a:b] = np.clip(np.floor(rates), 0, 255)
    return pd.DataFrame(out, index=pd.Index(grid.edges(), name="time"), columns=pd.RangeIndex(spikes.n_units))


def write_legacy(session: Session, out: str | Path) -> list[str]:
    """Write the four pickles under ``out/legacy`` (each atomically); return their names."""
    folder = OutFolder(out).legacy
    folder.mkdir(parents=True, exist_ok=True)
    sid = session.session_id
    names = []
    for kind, make in (("units", legacy_units), ("running", legacy_running), ("stimulus", legacy_stimulus),
                       ("fr", legacy_rates)):
        path = folder / f"{kind}_{sid}.pkl"
        atomic_write(path, make(session).to_pickle)
        names.append(str(path.relative_to(out)))
    return names
