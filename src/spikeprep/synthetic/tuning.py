"""Planted visual tuning (ground truth for the stimulus analyses).

With ``SynthSpec(tuned=True)``, each good unit in a visual area or the thalamus (LGd,
LP) gets, from its own seeded stream:

- a preferred drift direction (von Mises, κ 1–4, plus a null-direction share) and
  temporal frequency (Gaussian in octaves) for drifting gratings;
- a preferred orientation (von Mises in 2θ) and spatial frequency for static gratings;
- a preferred natural scene (and a few weaker ones);
- an ON or OFF preference for flashes;
- a Gaussian receptive field on the gabors' 9 × 9 grid (σ 8–15°);
- a latency of 30–80 ms, a peak evoked rate (lognormal, median ~15 Hz), and for a third
  of the units a running modulation (gain × (1 + m) while the mouse runs ≥ 1 cm/s).

Optotagged units (a sixth of the cortical units in a Cre line) fire one spike 2–8 ms
after most light pulses. Evoked spikes are Poisson in each presentation's response
window and are added to the unit's background train. The truth is returned per unit
(and written beside the file as ``<name>.truth.json``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .behaviour import opto_times
from .spec import VISUAL_AREAS, SynthSpec

__all__ = ["plant", "evoked_spikes", "stimulus_columns", "running_trace", "TUNED_AREAS", "GRID_DEG"]

TUNED_AREAS = (*VISUAL_AREAS, "LGd", "LP")
GRID_DEG = np.arange(-40.0, 41.0, 10.0)  # gabor centres (deg), the grid of x_position and y_position
_DG_DIRS = np.arange(8) * 45.0
_DG_TFS = np.array([1.0, 2.0, 4.0, 8.0, 15.0])
_SG_ORIS = np.arange(6) * 30.0
_SG_SFS = np.array([0.02, 0.04, 0.08, 0.16, 0.32])


def running_trace(spec: SynthSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The session's running samples: start and end times (s) and velocity (cm/s)."""
    rng = np.random.default_rng([spec.seed, 4])
    n = max(2, int(spec.duration * 60))
    start = np.arange(n) / 60.0 + 1.0 / 120
    end = np.append(start[1:], start[-1] + 1 / 60)
    running = np.convolve(rng.normal(0, 1, n), np.ones(90) / 9.0, "same")
    return start, end, np.clip(5 + 8 * running + rng.normal(0, 1.5, n), -5, 80)


def plant(spec: SynthSpec, u: int, area: str, good: bool) -> dict[str, Any] | None:
    """Unit ``u``'s planted tuning, or None for an untuned unit."""
    if not spec.tuned or area not in TUNED_AREAS or not good or u < 2:
        return None
    rng = np.random.default_rng([spec.seed, 11, u])
    cre_line = spec.seed % 4 != 0
    return {
        "latency_s": float(rng.uniform(0.03, 0.08)),
        "peak_rate_hz": float(np.clip(rng.lognormal(np.log(15.0), 0.5), 3.0, 80.0)),
        "dg_pref_dir": float(rng.choice(_DG_DIRS)), "dg_pref_tf": float(rng.choice(_DG_TFS)),
        "dg_kappa": float(rng.uniform(1.0, 4.0)), "dg_null_frac": float(rng.uniform(0.1, 0.5)),
        "sg_pref_ori": float(rng.choice(_SG_ORIS)), "sg_pref_sf": float(rng.choice(_SG_SFS)),
        "sg_kappa": float(rng.uniform(1.0, 4.0)),
        "ns_pref_frame": int(rng.integers(0, 118)), "ns_other_frames": rng.choice(118, 4, replace=False).tolist(),
        "flash_pref_color": float(rng.choice([-1.0, 1.0])),
        "rf_x_deg": float(rng.choice(GRID_DEG[1:-1])), "rf_y_deg": float(rng.choice(GRID_DEG[1:-1])),
        "rf_sigma_deg": float(rng.uniform(8.0, 15.0)),
        "run_gain": float(rng.uniform(0.5, 1.5)) if rng.random() < 1 / 3 else 0.0,
        "optotagged": bool(cre_line and area in VISUAL_AREAS and rng.random() < 1 / 6),
    }


def _response(name: str, p: dict[str, Any], col: dict[str, np.ndarray]) -> np.ndarray:
    """Relative response (0–1) of a unit with tuning ``p`` to each presentation of
    ``name`` (``col``: the stimulus's parameters as float arrays)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "drifting_gratings":
            d, tf = col["orientation"], col["temporal_frequency"]
            direction = np.exp(p["dg_kappa"] * (np.cos(np.radians(d - p["dg_pref_dir"])) - 1))
            opposite = p["dg_null_frac"] * np.exp(p["dg_kappa"] * (np.cos(np.radians(d - p["dg_pref_dir"] - 180)) - 1))
            r = np.maximum(direction, opposite) * np.exp(-np.log2(tf / p["dg_pref_tf"]) ** 2 / 2)
        elif name == "static_gratings":
            o, sf = col["orientation"], col["spatial_frequency"]
            ori = np.exp(p["sg_kappa"] * (np.cos(np.radians(2 * (o - p["sg_pref_ori"]))) - 1))
            r = ori * np.exp(-np.log2(sf / p["sg_pref_sf"]) ** 2 / 2)
        elif name == "natural_scenes":
            frame = col["frame"]
            r = np.where(frame == p["ns_pref_frame"], 1.0, np.where(np.isin(frame, p["ns_other_frames"]), 0.3, 0.0))
        elif name == "flashes":
            r = np.where(col["color"] == p["flash_pref_color"], 1.0, 0.1)
        elif name == "gabors":
            dx, dy = col["x_position"] - p["rf_x_deg"], col["y_position"] - p["rf_y_deg"]
            r = np.exp(-(dx**2 + dy**2) / (2 * p["rf_sigma_deg"] ** 2))
        else:
            r = np.zeros(len(next(iter(col.values()))))
    return np.nan_to_num(r, nan=0.0)


def stimulus_columns(tables: dict[str, dict[str, list]]) -> dict[str, dict[str, np.ndarray]]:
    """Each tuned stimulus's onsets and parameters as float arrays (NaN where not a number)."""
    def numbers(values: list) -> np.ndarray:
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                pass
        return out

    return {name: {k: numbers(v) for k, v in tables[name].items() if k != "stimulus_name"}
            for name in _WINDOW if name in tables}


_WINDOW = {"drifting_gratings": 1.9, "static_gratings": 0.15, "natural_scenes": 0.15, "flashes": 0.12,
           "gabors": 0.15}


def evoked_spikes(spec: SynthSpec, u: int, p: dict[str, Any], columns: dict[str, dict[str, np.ndarray]],
                  running: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Unit ``u``'s evoked spike times (s, unsorted): Poisson in each presentation's
    response window, at ``peak_rate_hz`` × its relative response (× the running gain
    while running), plus the optotagged spikes. ``columns``: :func:`stimulus_columns`."""
    rng = np.random.default_rng([spec.seed, 12, u])
    start, _, velocity = running
    out = []
    for name, col in columns.items():
        window = _WINDOW[name]
        onsets = col["start_time"]
        speed = velocity[np.clip(np.searchsorted(start, onsets) - 1, 0, len(velocity) - 1)]
        gain = 1.0 + p["run_gain"] * (speed >= 1.0)
        counts = rng.poisson(p["peak_rate_hz"] * window * _response(name, p, col) * gain)
        t0 = np.repeat(onsets + p["latency_s"], counts)
        out.append(t0 + rng.uniform(0.0, window, len(t0)))
    if p["optotagged"] and spec.optotagging:
        pulses = opto_times(spec)
        fire = pulses[rng.random(len(pulses)) < 0.8]
        out.append(fire + rng.uniform(0.002, 0.008, len(fire)))
    return np.concatenate(out) if out else np.empty(0)
