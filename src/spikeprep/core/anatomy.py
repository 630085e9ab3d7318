"""Approximate cortical depth and layer of units in the six visual areas.

Per probe and area, the surface is the shallowest channel of that probe in the area
(largest ``probe_vertical_position``) and the bottom the deepest. A unit whose peak
channel lies in the area gets ``cortical_depth_um = surface − vpos`` and
``cortical_depth_norm = depth / (surface − bottom + 20)``; the layer follows from the
normalised depth scaled to 850 µm and the notebook's cumulative layer thicknesses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["VISUAL_AREAS", "LAYER_NAMES", "LAYER_BOTTOMS_UM", "OUTSIDE_BRAIN", "add_layers", "layer_of_depth"]

VISUAL_AREAS = ("VISp", "VISl", "VISrl", "VISal", "VISpm", "VISam")
LAYER_NAMES = ("L1", "L2/3", "L4", "L5", "L6")
LAYER_BOTTOMS_UM = (100.0, 310.0, 430.0, 650.0, 850.0)  # L1 100, L2/3 210, L4 120, L5 220, L6 200
CHANNEL_PITCH_UM = 20.0
OUTSIDE_BRAIN = "(outside the brain)"  # how a null region is shown in text


def layer_of_depth(depth_norm: np.ndarray) -> np.ndarray:
    """Layer name for each normalised depth (0 = surface, 1 = 850 µm); None where NaN."""
    scaled = np.asarray(depth_norm, dtype=float) * LAYER_BOTTOMS_UM[-1]
    idx = np.searchsorted(np.asarray(LAYER_BOTTOMS_UM[:-1]), scaled, side="right")
    names = np.array(LAYER_NAMES, dtype=object)[np.minimum(idx, len(LAYER_NAMES) - 1)]
    names[~np.isfinite(scaled)] = None
    return names


def add_layers(units: pd.DataFrame, channels: pd.DataFrame, areas: tuple[str, ...] = VISUAL_AREAS) -> pd.DataFrame:
    """Return ``units`` with ``cortical_depth_um``, ``cortical_depth_norm`` and ``layer``.

    Parameters
    ----------
    units : DataFrame
        Needs ``probe_id``, ``region``, ``probe_vertical_position``.
    channels : DataFrame
        The session's channels: ``probe_id``, ``region``, ``probe_vertical_position``.
    areas : tuple of str
        Areas to annotate; units elsewhere get nulls.
    """
    ch = channels[channels["region"].isin(areas)]
    span = ch.groupby(["probe_id", "region"], observed=True)["probe_vertical_position"].agg(["max", "min"])
    key = pd.MultiIndex.from_arrays([units["probe_id"], units["region"].astype(object)])
    surface = span["max"].reindex(key).to_numpy(dtype=float)
    bottom = span["min"].reindex(key).to_numpy(dtype=float)
    in_area = units["region"].isin(areas).to_numpy()
    vpos = units["probe_vertical_position"].to_numpy(dtype=float)
    depth = np.where(in_area, surface - vpos, np.nan)
    norm = depth / (surface - bottom + CHANNEL_PITCH_UM)
    out = units.copy()
    out["cortical_depth_um"] = depth
    out["cortical_depth_norm"] = norm
    out["layer"] = pd.Series(layer_of_depth(norm), index=out.index, dtype=object)
    return out
