"""Figures of the visual report (matplotlib, Agg): each builder takes plain data and
returns a Figure; :func:`png` turns one into bytes for embedding."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from ..core.anatomy import LAYER_BOTTOMS_UM, LAYER_NAMES, OUTSIDE_BRAIN, VISUAL_AREAS
from .plots import _pyplot

__all__ = ["png", "probe_maps", "unit_yield", "qc_distributions", "raster", "population_rates", "psths",
           "yield_across_sessions", "area_colors", "QC_THRESHOLDS"]

# (metric, Allen's threshold, which side passes, label)
QC_THRESHOLDS = (("amplitude_cutoff", 0.1, "≤", "amplitude cutoff"), ("presence_ratio", 0.95, "≥", "presence ratio"),
                 ("isi_violations", 0.5, "≤", "ISI violations (Hill ratio)"), ("snr", None, "", "SNR"),
                 ("isi_5ms_pct", None, "", "% of ISIs < 5 ms"))


def png(fig: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (and the figure closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _pyplot().close(fig)
    return buf.getvalue()


def area_colors(areas: list[str]) -> dict[str, Any]:
    """A stable colour per area (visual areas first, in tab10; others in tab20b)."""
    plt = _pyplot()
    vis = [a for a in VISUAL_AREAS if a in areas]
    rest = sorted(a for a in areas if a not in vis)
    colors = {a: plt.get_cmap("tab10")(i % 10) for i, a in enumerate(vis)}
    colors.update({a: plt.get_cmap("tab20b")(i % 20) for i, a in enumerate(rest)})
    colors[OUTSIDE_BRAIN] = (0.85, 0.85, 0.85, 1.0)
    return colors


def _area_runs(ch: pd.DataFrame) -> list[tuple[str, float, float]]:
    """Contiguous runs of one area along a probe: (area, lowest, highest vertical position)."""
    ch = ch.sort_values("probe_vertical_position")
    area = ch["region"].astype(object).fillna(OUTSIDE_BRAIN).to_numpy()
    pos = ch["probe_vertical_position"].to_numpy(float)
    runs, start = [], 0
    for i in range(1, len(area) + 1):
        if i == len(area) or area[i] != area[start]:
            runs.append((str(area[start]), pos[start], pos[i - 1]))
            start = i
    return runs


def probe_maps(units: pd.DataFrame, channels: pd.DataFrame) -> Any:
    """One panel per probe: areas along the shank, approximate layer boundaries in the
    visual areas, units at their peak channel sized by firing rate, RS blue / FS red."""
    plt = _pyplot()
    probes = sorted(channels["probe_name"].astype(str).unique())
    colors = area_colors(list(channels["region"].dropna().astype(str).unique()))
    fig, axes = plt.subplots(1, len(probes), figsize=(2.3 * len(probes) + 1, 7.5), sharey=True, squeeze=False,
                             constrained_layout=True)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes[0], probes):
        ch = channels[channels["probe_name"].astype(str) == name]
        for area, lo, hi in _area_runs(ch):
            ax.axhspan(lo - 10, hi + 10, xmin=0, xmax=0.18, color=colors.get(area, "0.8"), lw=0)
            if hi - lo > 60:
                ax.text(-2, (lo + hi) / 2, area, fontsize=7, va="center", ha="right")
            if area in VISUAL_AREAS:  # layer boundaries: the layers method, at its normalised depths
                surface, span = hi, hi - lo + 20.0
                for bottom, layer in zip((0.0, *LAYER_BOTTOMS_UM[:-1]), LAYER_NAMES):
                    y = surface - bottom / LAYER_BOTTOMS_UM[-1] * span
                    ax.axhline(y, xmin=0.18, xmax=1, color="0.75", lw=0.5, ls=":")
                    ax.text(70, y - 8, layer, fontsize=6, color="0.4", va="top", ha="right")
        u = units[units["probe_name"].astype(str) == name]
        x = u["probe_horizontal_position"].to_numpy(float) + rng.uniform(-4, 4, len(u))
        size = 4 + 3 * np.sqrt(np.clip(u["firing_rate"].to_numpy(float), 0, None)) if "firing_rate" in u else 8
        rs = u["is_rs"].to_numpy(bool)
        ax.scatter(x[rs], u["probe_vertical_position"].to_numpy(float)[rs], s=np.broadcast_to(size, len(u))[rs],
                   color="C0", alpha=0.6, lw=0, label="RS")
        ax.scatter(x[~rs], u["probe_vertical_position"].to_numpy(float)[~rs], s=np.broadcast_to(size, len(u))[~rs],
                   color="C3", alpha=0.6, lw=0, label="FS")
        ax.set_xlim(-14, 72)
        ax.set_xticks([11, 27, 43, 59])
        ax.set_title(f"{name}\n{len(u)} units", fontsize=9)
        ax.set_xlabel("horizontal (µm)", fontsize=8)
    axes[0][0].set_ylabel("position along the shank from the tip (µm; larger = shallower)")
    axes[0][-1].legend(loc="lower right", fontsize=7, title="dot area ∝ √rate", title_fontsize=6)
    return fig


def unit_yield(units: pd.DataFrame) -> Any:
    """Units per area (and per layer in the visual areas): all units and those passing Allen's QC."""
    plt = _pyplot()
    region = units["region"].astype(object).fillna(OUTSIDE_BRAIN)
    label = np.where(units["layer"].notna(), region + " " + units["layer"].astype(object).fillna(""), region)
    table = pd.DataFrame({"group": label, "pass": units["passes_allen_qc"].to_numpy(bool)})
    order = sorted(table["group"].unique(), key=lambda g: (g.split(" ")[0] not in VISUAL_AREAS, g))
    counts = table.groupby("group")["pass"].agg(["size", "sum"]).reindex(order)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.32 * len(order) + 2), 4.2), constrained_layout=True)
    x = np.arange(len(order))
    ax.bar(x, counts["size"], color="0.75", label=f"all units ({len(units)})")
    ax.bar(x, counts["sum"], color="C2", label=f"passing Allen's QC ({int(table['pass'].sum())})")
    ax.set_xticks(x, order, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("units")
    ax.set_title("unit yield by area and layer")
    ax.legend(fontsize=8)
    return fig


def qc_distributions(units: pd.DataFrame, threshold_ms: float) -> Any:
    """Histograms of the QC metrics over every unit, with Allen's thresholds drawn."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(QC_THRESHOLDS), figsize=(16, 3.4), constrained_layout=True)
    for ax, (col, threshold, side, label) in zip(axes, QC_THRESHOLDS):
        if col == "isi_5ms_pct":
            label = f"% of ISIs < {threshold_ms:g} ms"
        values = units[col].astype(float).replace([np.inf, -np.inf], np.nan).dropna() if col in units else pd.Series([])
        if len(values):
            hi = np.nanpercentile(values, 99) if col != "presence_ratio" else 1.0
            ax.hist(np.clip(values, None, hi), bins=40, color="0.55")
        else:
            ax.text(0.5, 0.5, "not in this file", transform=ax.transAxes, ha="center", color="0.4")
        if threshold is not None:
            ax.axvline(threshold, color="C3", ls="--", lw=1.5)
            ax.text(0.98, 0.95, f"Allen: {side} {threshold:g}", transform=ax.transAxes, ha="right", va="top",
                    color="C3", fontsize=8)
        ax.set_xlabel(label)
        ax.set_title(f"n = {len(values)} units", fontsize=9)
    axes[0].set_ylabel("units")
    fig.suptitle("QC metrics over all units (dashed: AllenSDK's default filter; values above the 99th "
                 "percentile shown in the last bin)", fontsize=9)
    return fig


def raster(trains: list[np.ndarray], areas: list[str], window: tuple[float, float], running: pd.DataFrame,
           epochs: pd.DataFrame) -> Any:
    """Every unit's spikes over ``window`` (units sorted by probe and depth, area bands on
    the left), running speed and stimulus epochs underneath."""
    plt = _pyplot()
    a, b = window
    fig, (ax, ax_run, ax_stim) = plt.subplots(3, 1, figsize=(12, 9), sharex=True, constrained_layout=True,
                                              gridspec_kw={"height_ratios": [8, 1.2, 0.6]})
    colors = area_colors(sorted(set(areas)))
    xs, ys = [], []
    for row, t in enumerate(trains):
        t = t[(t >= a) & (t < b)]
        xs.append(t)
        ys.append(np.full(len(t), row))
    if xs:  # one tick per spike, as tall as a unit's row
        ax.plot(np.concatenate(xs), np.concatenate(ys), ls="none", marker="|", color="k", alpha=0.8,
                markersize=max(0.5, 560 / max(len(trains), 1)), markeredgewidth=0.4)
    start = 0
    for row in range(1, len(areas) + 1):
        if row == len(areas) or areas[row] != areas[start]:
            ax.axhspan(start - 0.5, row - 0.5, xmin=0, xmax=0.01, color=colors.get(areas[start], "0.8"))
            if row - start >= max(3, len(areas) // 60):
                ax.text(a - 0.002 * (b - a), (start + row) / 2, areas[start], fontsize=6, ha="right", va="center")
            start = row
    ax.set_ylim(len(trains) - 0.5, -0.5)
    ax.set_ylabel("units (by probe, deep to shallow)")
    ax.set_title(f"all {len(trains)} units, {a:.0f}–{b:.0f} s")
    r = running[(running["end_time"] > a) & (running["start_time"] < b)]
    ax_run.plot(r["start_time"], r["velocity"], color="k", lw=0.7)
    ax_run.set_ylabel("cm/s")
    _epochs(ax_stim, epochs, a, b, labels=True)
    ax_stim.set_yticks([])
    ax_stim.set_xlabel("time (s)")
    ax_stim.set_xlim(a, b)
    return fig


def _epoch_colors(epochs: pd.DataFrame) -> dict[str, Any]:
    plt = _pyplot()
    return {n: plt.get_cmap("Pastel1")(i % 9) for i, n in enumerate(sorted(epochs["stimulus_name"].unique()))}


def _epochs(ax: Any, epochs: pd.DataFrame, a: float, b: float, labels: bool = False, alpha: float = 0.35) -> None:
    cmap = _epoch_colors(epochs)
    for row in epochs.itertuples(index=False):
        if row.stop_time <= a or row.start_time >= b:
            continue
        ax.axvspan(max(row.start_time, a), min(row.stop_time, b), color=cmap[row.stimulus_name], alpha=alpha, lw=0)
        if labels:
            ax.text((max(row.start_time, a) + min(row.stop_time, b)) / 2, 0.5, row.stimulus_name, fontsize=7,
                    ha="center", va="center", transform=ax.get_xaxis_transform(), clip_on=True)


def population_rates(rates: pd.DataFrame, epochs: pd.DataFrame) -> Any:
    """Mean rate per unit in each area over the whole session (1 s bins), stimulus epochs shaded."""
    plt = _pyplot()
    n = max(1, rates.shape[1])
    fig, axes = plt.subplots(n, 1, figsize=(12, 0.9 * n + 1.4), sharex=True, squeeze=False, constrained_layout=True)
    colors = area_colors(list(rates.columns))
    t = rates.index.to_numpy(float)
    for ax, area in zip(axes[:, 0], rates.columns):
        _epochs(ax, epochs, t[0], t[-1] + 1, alpha=0.5)
        ax.plot(t, rates[area], color=colors.get(area, "k"), lw=0.6)
        ax.set_ylabel(area, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title("population rate per area (spikes/s per unit, 1 s bins); shading: stimulus epochs")
    from matplotlib.patches import Patch

    handles = [Patch(color=c, alpha=0.5, label=n) for n, c in _epoch_colors(epochs).items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(6, max(1, len(handles))), fontsize=7)
    return fig


def psths(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]], n_presentations: dict[str, int]) -> Any:
    """One panel per stimulus: rate per area (mean ± sem over units) around onset.

    ``curves[stimulus][area] = (time, mean, sem, n_units)``.
    """
    plt = _pyplot()
    stims = list(curves)
    fig, axes = plt.subplots(1, len(stims), figsize=(4.2 * len(stims), 3.6), squeeze=False, constrained_layout=True)
    colors = area_colors(sorted({a for c in curves.values() for a in c}))
    for ax, stim in zip(axes[0], stims):
        for area, (t, mean, sem, n) in curves[stim].items():
            ax.plot(t, mean, color=colors.get(area, "k"), lw=1, label=f"{area} ({n})")
            ax.fill_between(t, mean - sem, mean + sem, color=colors.get(area, "k"), alpha=0.25, lw=0)
        ax.axvline(0, color="0.3", lw=0.8, ls="--")
        ax.set_title(f"{stim} ({n_presentations[stim]} presentations)", fontsize=9)
        ax.set_xlabel("time from onset (s)")
    axes[0][0].set_ylabel("rate (Hz), mean ± sem over units")
    axes[0][-1].legend(fontsize=7, title="area (units)", title_fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def yield_across_sessions(counts: pd.DataFrame) -> Any:
    """Units passing Allen's QC per area, one bar group per session (``counts``: session × area)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(7.0, 0.5 * counts.shape[1] * max(1, len(counts)) ** 0.5 + 3), 4),
                           constrained_layout=True)
    counts.T.plot.bar(ax=ax, width=0.8)
    ax.set_ylabel("units passing Allen's QC")
    ax.set_xlabel("area")
    ax.legend(title="session", fontsize=7)
    ax.set_title("unit yield by area across sessions")
    return fig
