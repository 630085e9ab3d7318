"""The metric columns of each stimulus analysis, declared once: name, dtype, unit of
measure and meaning (AllenSDK's names; its dtypes, except that preferred parameters are
numbers where AllenSDK keeps the stimulus table's text)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...export.tables import Column as Metric

__all__ = ["Metric", "metrics_frame", "RF", "DG", "SG", "NS", "FL", "NM", "DM", "ALL"]

def _common(s: str, what: str) -> tuple[Metric, ...]:
    return (
        Metric(f"firing_rate_{s}", "float64", "Hz", f"mean rate over the blocks of {what} presentations"),
        Metric(f"fano_{s}", "float64", "", "Fano factor (variance/mean, ddof 0) of trial spike counts at the "
                                          "preferred condition"),
        Metric(f"time_to_peak_{s}", "float64", "s", "bin centre of the peak of the 1 ms PSTH at the preferred "
                                                    "condition"),
        Metric(f"lifetime_sparseness_{s}", "float64", "", "lifetime sparseness of the spike counts per condition "
                                                          "(Olsen & Wilson 2008)"),
    )


def _running(s: str) -> tuple[Metric, Metric]:
    return (Metric(f"run_pval_{s}", "float64", "", "Welch t-test p, running (≥ 1 cm/s) vs stationary trials at the "
                                                   "preferred condition; NaN unless each side has ≥ 2 trials"),
            Metric(f"run_mod_{s}", "float64", "", "relative difference of running and stationary mean counts"))


def _pick(metrics: tuple[Metric, ...], *names: str) -> tuple[Metric, ...]:
    by = {m.name: m for m in metrics}
    return tuple(by[n] for n in names)


_RF_ALL = (
    Metric("azimuth_rf", "float64", "deg", "azimuth of the thresholded RF's centre of mass"),
    Metric("elevation_rf", "float64", "deg", "elevation of the thresholded RF's centre of mass"),
    Metric("width_rf", "float64", "deg", "horizontal width (σ·10) of the 2-D Gaussian fit"),
    Metric("height_rf", "float64", "deg", "vertical height (σ·10) of the 2-D Gaussian fit"),
    Metric("area_rf", "float64", "deg²", "area of the thresholded RF"),
    Metric("p_value_rf", "float64", "", "chi-square bootstrap p of position tuning (1,000 draws, seeded per unit)"),
    Metric("on_screen_rf", "bool", "", "the Gaussian fit's centre lies on the gabor grid"),
    *_common("rf", "gabor"), *_running("rf"),
)
RF = _pick(_RF_ALL, "azimuth_rf", "elevation_rf", "width_rf", "height_rf", "area_rf", "p_value_rf", "on_screen_rf",
           "firing_rate_rf", "fano_rf", "time_to_peak_rf", "lifetime_sparseness_rf", "run_mod_rf", "run_pval_rf")

DG = (
    Metric("pref_ori_dg", "float64", "deg", "orientation with the highest mean response"),
    Metric("pref_ori_multi_dg", "bool", "", "more than one orientation gives that response"),
    Metric("pref_tf_dg", "float64", "Hz", "temporal frequency with the highest mean response"),
    Metric("pref_tf_multi_dg", "bool", "", "more than one temporal frequency gives that response"),
    Metric("c50_dg", "float64", "", "contrast at half the fitted contrast response (drifting_gratings_contrast)"),
    Metric("f1_f0_dg", "float64", "", "F1/F0 of the response at the preferred condition"),
    Metric("mod_idx_dg", "float64", "", "modulation index at the preferred temporal frequency"),
    Metric("g_osi_dg", "float64", "", "global orientation selectivity at the preferred temporal frequency"),
    Metric("g_dsi_dg", "float64", "", "global direction selectivity at the preferred temporal frequency"),
    *_pick(_common("dg", "drifting-grating"), "firing_rate_dg", "fano_dg", "lifetime_sparseness_dg"),
    *_running("dg"),
)

SG = (
    Metric("pref_sf_sg", "float64", "cycles/deg", "spatial frequency with the highest mean response"),
    Metric("pref_sf_multi_sg", "bool", "", "more than one spatial frequency gives that response"),
    Metric("pref_ori_sg", "float64", "deg", "orientation with the highest mean response"),
    Metric("pref_ori_multi_sg", "bool", "", "more than one orientation gives that response"),
    Metric("pref_phase_sg", "float64", "cycles", "phase with the highest mean response"),
    Metric("pref_phase_multi_sg", "bool", "", "more than one phase gives that response"),
    Metric("g_osi_sg", "float64", "", "global orientation selectivity at the preferred frequency and phase"),
    *_pick(_common("sg", "static-grating"), "time_to_peak_sg", "firing_rate_sg", "fano_sg", "lifetime_sparseness_sg"),
    *_running("sg"),
)

NS = (
    Metric("pref_image_ns", "int64", "", "stimulus_condition_id (not frame) of the image with the highest mean "
                                         "response"),
    Metric("image_selectivity_ns", "float64", "", "image selectivity over the non-blank images"),
    *_pick(_common("ns", "natural-scene"), "firing_rate_ns", "fano_ns", "time_to_peak_ns", "lifetime_sparseness_ns"),
    *_running("ns"),
    Metric("pref_images_multi_ns", "bool", "", "more than one image gives the highest response"),
)

FL = (
    Metric("on_off_ratio_fl", "float64", "", "mean response to white over black flashes"),
    Metric("sustained_idx_fl", "float64", "", "mean over peak of the PSTH at the preferred colour"),
    *_pick(_common("fl", "flash"), "firing_rate_fl", "time_to_peak_fl", "fano_fl", "lifetime_sparseness_fl"),
    *_running("fl"),
)

NM = (
    *_pick(_common("nm", "natural-movie"), "fano_nm", "firing_rate_nm", "lifetime_sparseness_nm"),
    Metric("run_pval_ns", "float64", "", "AllenSDK's column kept as it is: always NaN (see run_pval_nm)"),
    Metric("run_mod_ns", "float64", "", "AllenSDK's column kept as it is: always NaN (see run_mod_nm)"),
    Metric("run_pval_nm", "float64", "", "Welch t-test p, running vs stationary trials at the preferred frame"),
    Metric("run_mod_nm", "float64", "", "relative difference of running and stationary mean counts"),
)

DM = (
    Metric("pref_speed_dm", "float64", "deg/s", "dot speed with the highest mean response"),
    Metric("pref_speed_multi_dm", "bool", "", "more than one speed gives that response"),
    Metric("pref_dir_dm", "float64", "deg", "dot direction with the highest mean response"),
    Metric("pref_dir_multi_dm", "bool", "", "more than one direction gives that response"),
    *_pick(_common("dm", "dot-motion"), "firing_rate_dm", "fano_dm", "time_to_peak_dm", "lifetime_sparseness_dm"),
    Metric("run_mod_dm", "float64", "", "relative difference of running and stationary mean counts"),
    Metric("run_pval_dm", "float64", "", "Welch t-test p, running vs stationary trials at the preferred condition"),
)


def metrics_frame(metrics: tuple[Metric, ...], unit_ids: np.ndarray, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """The metrics table: index ``unit_id``, the declared columns in order and dtypes;
    columns without values are NaN (False for flags)."""
    n = len(unit_ids)
    data = {}
    for m in metrics:
        v = values.get(m.name)
        if m.dtype == "bool":
            data[m.name] = np.zeros(n, dtype=bool) if v is None else np.asarray(v, dtype=bool)
        elif m.dtype == "int64" and v is not None:
            data[m.name] = np.asarray(v, dtype=np.int64)
        else:
            data[m.name] = np.full(n, np.nan) if v is None else np.asarray(v, dtype=np.float64)
    return pd.DataFrame(data, index=pd.Index(np.asarray(unit_ids, dtype=np.int64), name="unit_id"))


ALL = {"receptive_field_mapping": RF, "drifting_gratings": DG, "static_gratings": SG, "natural_scenes": NS,
       "flashes": FL, "dot_motion": DM, "natural_movies": NM}
