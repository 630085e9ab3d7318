"""Figures as PNG (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.anatomy import LAYER_NAMES
from ..core.options import ISI_THRESHOLD_MS

__all__ = ["isi_figure", "build_isi_figure", "session_figure"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def isi_figure(per_unit: pd.DataFrame, summary: pd.DataFrame, path: str | Path, *, threshold_ms: float = ISI_THRESHOLD_MS) -> Path:
    """Save :func:`build_isi_figure` as a PNG at ``path``."""
    fig = build_isi_figure(per_unit, summary, threshold_ms=threshold_ms)
    fig.savefig(path, dpi=110, format="png")
    _pyplot().close(fig)
    return Path(path)


def build_isi_figure(per_unit: pd.DataFrame, summary: pd.DataFrame, *, threshold_ms: float = ISI_THRESHOLD_MS):
    """Histogram of session means (with their mean) and per-unit distributions by layer.

    Parameters
    ----------
    per_unit : DataFrame
        ``session_id``, ``layer``, ``isi_5ms_pct``, ``selected``.
    summary : DataFrame
        ``session_id``, ``mean_pct``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    from matplotlib.ticker import MaxNLocator

    means = summary["mean_pct"].dropna()
    if len(means):
        lo, hi = float(means.min()), float(means.max())
        pad = max(0.5, 0.1 * (hi - lo))  # one session is one bar on an axis around it, not 0-1
        ax1.hist(means, bins=np.linspace(lo - pad, hi + pad, max(6, min(30, 2 * len(means))) + 1), color="0.6",
                 edgecolor="k")
        ax1.axvline(means.mean(), color="C3", lw=2, label=f"mean {means.mean():.2f} % ({len(means)} sessions)")
        ax1.legend()
    else:
        ax1.text(0.5, 0.5, "no session has selected units", transform=ax1.transAxes, ha="center", color="0.4")
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))  # sessions are counted in whole numbers
    ax1.set_xlabel(f"% of ISIs < {threshold_ms:g} ms (session mean over selected units)")
    ax1.set_ylabel("sessions")
    ax1.set_title("ISI violations per session")
    sel = per_unit[per_unit["selected"].astype(bool)]
    data = [sel.loc[sel["layer"] == name, "isi_5ms_pct"].dropna().to_numpy() for name in LAYER_NAMES]
    positions = [i for i, d in enumerate(data) if len(d)]
    if positions:
        ax2.boxplot([data[i] for i in positions], positions=positions, widths=0.6, showfliers=False)
        for i in positions:
            jitter = np.random.default_rng(i).uniform(-0.2, 0.2, len(data[i]))
            ax2.scatter(i + jitter, data[i], s=6, alpha=0.4, color="C0")
    else:
        ax2.text(0.5, 0.5, "no selected unit in a layer", transform=ax2.transAxes, ha="center", color="0.4")
    n_shown = sum(len(d) for d in data)
    ax2.set_xticks(range(len(LAYER_NAMES)), LAYER_NAMES)
    ax2.set_xlabel("cortical layer")
    ax2.set_ylabel(f"% of ISIs < {threshold_ms:g} ms (per unit)")
    ax2.set_title(f"selected units with ≥ 2 spikes, by layer (n = {n_shown})")
    fig.suptitle("selected units: regular-spiking, SNR > 2.5, in VISp, VISl, VISrl, VISal, VISpm, VISam",
                 fontsize=9)
    return fig


def session_figure(spikes: dict[int, np.ndarray], rates: pd.DataFrame, running: pd.DataFrame,
                   window: tuple[float, float], title: str, path: str | Path) -> Path:
    """Raster, smoothed rates and running speed of a few units over one time window.

    Parameters
    ----------
    spikes : dict
        ``{unit_id: times}`` of the units to show.
    rates : DataFrame
        Index time (s), one column per unit (Hz).
    running : DataFrame
        ``start_time``, ``velocity``.
    window : (float, float)
    title : str
    path : path
    """
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True, constrained_layout=True,
                             gridspec_kw={"height_ratios": [2, 2, 1]})
    a, b = window
    for row, t in enumerate(spikes.values()):
        t = t[(t >= a) & (t < b)]
        axes[0].vlines(t, row + 0.6, row + 1.4, color=f"C{row % 10}", lw=0.8)
    axes[0].set_yticks(range(1, len(spikes) + 1), [str(u) for u in spikes])
    axes[0].set_ylabel("unit")
    axes[0].set_title(title)
    for k, col in enumerate(rates.columns):
        axes[1].plot(rates.index, rates[col], lw=0.8, color=f"C{k % 10}")
    axes[1].set_ylabel("rate (Hz)")
    r = running[(running["start_time"] >= a) & (running["start_time"] < b)]
    axes[2].plot(r["start_time"], r["velocity"], color="k", lw=0.8)
    axes[2].set_ylabel("running (cm/s)")
    axes[2].set_xlabel("time (s)")
    axes[2].set_xlim(a, b)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
