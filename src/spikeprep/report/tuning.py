"""The report's tuning panels, from ``unit_metrics.parquet`` and ``receptive_fields.zarr``
(``spikeprep metrics``): receptive fields of the best units per area, orientation and
direction selectivity, preferred directions, image selectivity and ON/OFF preference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core.anatomy import OUTSIDE_BRAIN
from .figures import area_colors
from .plots import _pyplot

__all__ = ["rf_grid", "selectivity", "scenes_and_flashes", "per_area_across_sessions", "tuned_units"]

_PER_AREA = 4
_MAX_AREAS = 6


def tuned_units(metrics: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """The metrics of units passing Allen's QC in a brain area, with their ``area``."""
    table = metrics.join(units[["region", "passes_allen_qc"]], how="inner")
    table = table[table["passes_allen_qc"].astype(bool)]
    table = table.assign(area=table["region"].astype(object).fillna(OUTSIDE_BRAIN).astype(str))
    return table[table["area"] != OUTSIDE_BRAIN]


def rf_grid(table: pd.DataFrame, maps: Any) -> Any:
    """Up to four receptive fields per area (the most significant on-screen ones with
    p < 0.05), each a 9 × 9 map on the screen's coordinates (deg), scaled to its peak."""
    plt = _pyplot()
    good = table[table["on_screen_rf"].astype(bool) & (table["p_value_rf"] < 0.05)]
    areas = sorted(good["area"].unique(), key=lambda a: good.loc[good["area"] == a, "p_value_rf"].min())[:_MAX_AREAS]
    areas = sorted(areas)
    fig, axes = plt.subplots(max(1, len(areas)), _PER_AREA, figsize=(2.1 * _PER_AREA, 2.1 * max(1, len(areas))),
                             squeeze=False)
    x, y = maps["x_position"].values, maps["y_position"].values
    extent = (x.min() - 5, x.max() + 5, y.min() - 5, y.max() + 5) if len(x) else None
    for ax in axes.ravel():
        ax.set_axis_off()
    for r, area in enumerate(areas):
        best = good[good["area"] == area].sort_values(["p_value_rf", "firing_rate_rf"], ascending=[True, False])
        for c, unit in enumerate(best.index[:_PER_AREA]):
            ax = axes[r, c]
            m = maps.sel(unit_id=unit).values.astype(float)
            ax.imshow(m / max(m.max(), 1), cmap="magma", extent=extent, origin="upper", vmin=0, vmax=1)
            ax.set_axis_on()
            ax.set_xticks([-40, 0, 40])
            ax.set_yticks([-40, 0, 40])
            ax.tick_params(labelsize=7)
            ax.set_title(f"{area} {unit}\np={best.loc[unit, 'p_value_rf']:.3f}", fontsize=7)
            if c == 0:
                ax.set_ylabel("elevation (deg)", fontsize=7)
            if r == len(areas) - 1:
                ax.set_xlabel("azimuth (deg)", fontsize=7)
    if not areas:
        axes[0, 0].text(0.5, 0.5, "no unit with a significant on-screen receptive field (p < 0.05)",
                        ha="center", va="center")
    fig.tight_layout()
    return fig


def _box(ax: Any, table: pd.DataFrame, column: str, areas: list[str], colors: dict[str, Any], label: str) -> None:
    data = [table.loc[table["area"] == a, column].dropna().to_numpy() for a in areas]
    keep = [i for i, d in enumerate(data) if len(d)]
    if keep:
        parts = ax.boxplot([data[i] for i in keep], patch_artist=True, showfliers=False, widths=0.6)
        for patch, i in zip(parts["boxes"], keep):
            patch.set_facecolor(colors[areas[i]])
            patch.set_alpha(0.7)
        ax.set_xticks(range(1, len(keep) + 1), [f"{areas[i]}\n(n={len(data[i])})" for i in keep], fontsize=7)
    ax.set_ylabel(label)
    ax.spines[["top", "right"]].set_visible(False)


def _panels(table: pd.DataFrame, n: int, width: float) -> tuple[Any, Any, list[str], dict[str, Any]]:
    """A figure of ``n`` panels in a row, the areas with at least 3 units, their colours."""
    counts = table["area"].value_counts()
    areas = sorted(counts.index[counts >= 3])
    fig, axes = _pyplot().subplots(1, n, figsize=(width, 3.6))
    return fig, axes, areas, area_colors(areas)


def selectivity(table: pd.DataFrame) -> Any:
    """Drifting gratings per area: global OSI and DSI (at the preferred temporal
    frequency), and the preferred directions."""
    fig, axes, areas, colors = _panels(table, 3, 13)
    _box(axes[0], table, "g_osi_dg", areas, colors, "global OSI (drifting gratings)")
    _box(axes[1], table, "g_dsi_dg", areas, colors, "global DSI (drifting gratings)")
    directions = np.arange(0, 360, 45)
    bottom = np.zeros(len(directions))
    for area in areas:
        pref = table.loc[table["area"] == area, "pref_ori_dg"].dropna().to_numpy()
        n = np.array([np.sum(pref == d) for d in directions])
        axes[2].bar(directions, n, width=30, bottom=bottom, color=colors[area], label=area)
        bottom += n
    axes[2].set_xticks(directions)
    axes[2].set_xlabel("preferred direction (deg)")
    axes[2].set_ylabel("units")
    axes[2].spines[["top", "right"]].set_visible(False)
    if areas:
        axes[2].legend(fontsize=7, frameon=False, ncol=2)
    fig.tight_layout()
    return fig


def scenes_and_flashes(table: pd.DataFrame) -> Any:
    """Image selectivity per area, and each area's ON/OFF preference (log2 of the ON/OFF
    ratio of responses to white and black flashes)."""
    fig, axes, areas, colors = _panels(table, 2, 11)
    _box(axes[0], table, "image_selectivity_ns", areas, colors, "image selectivity (natural scenes)")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log2(table["on_off_ratio_fl"].astype(float))
    flash = table.assign(log_ratio=ratio.where(np.isfinite(ratio)))
    _box(axes[1], flash, "log_ratio", areas, colors, "log2 ON/OFF ratio (flashes)")
    axes[1].axhline(0, color="0.5", lw=0.8, ls=":")
    fig.tight_layout()
    return fig


def per_area_across_sessions(table: pd.DataFrame) -> Any:
    """The dataset's metric distributions per area: OSI, DSI, image selectivity,
    receptive-field area and the share of units with a significant RF (p < 0.01)."""
    fig, axes, areas, colors = _panels(table, 4, 16)
    _box(axes[0], table, "g_osi_dg", areas, colors, "global OSI")
    _box(axes[1], table, "g_dsi_dg", areas, colors, "global DSI")
    _box(axes[2], table, "image_selectivity_ns", areas, colors, "image selectivity")
    share = [np.mean(table.loc[table["area"] == a, "p_value_rf"].dropna() < 0.01) for a in areas]
    axes[3].bar(range(len(areas)), share, color=[colors[a] for a in areas])
    axes[3].set_xticks(range(len(areas)), areas, fontsize=7)
    axes[3].set_ylabel("share with an RF (p < 0.01)")
    axes[3].set_ylim(0, 1)
    axes[3].spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
