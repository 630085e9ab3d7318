"""AllenSDK's stimulus analyses of gratings, natural scenes, flashes, natural movies and
dot motion, over a spikeprep session. ``DriftingGratings(session).metrics`` is
AllenSDK's table (see :mod:`.columns` for each column)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from . import columns, kernels
from .base import StimulusAnalysis, scalar

__all__ = ["DriftingGratings", "StaticGratings", "NaturalScenes", "Flashes", "NaturalMovies", "DotMotion"]


class DriftingGratings(StimulusAnalysis):
    """Drifting gratings (2 s): preferred orientation and temporal frequency, OSI/DSI,
    F1/F0, modulation index, and C50 when the session has ``drifting_gratings_contrast``."""

    KNOWN_KEYS = ("drifting_gratings", "drifting_gratings_75_repeats")
    METRICS = columns.DG
    TRIAL_DURATION = 2.0
    PARAMS_KEY = "drifting_gratings"

    def __init__(self, ecephys_session: Any, col_ori: str = "orientation", col_tf: str = "temporal_frequency",
                 col_contrast: str = "contrast", trial_duration: float = 2.0, **kwargs: Any) -> None:
        super().__init__(ecephys_session, trial_duration=trial_duration, **kwargs)
        self._col_ori, self._col_tf, self._col_contrast = col_ori, col_tf, col_contrast

    @property
    def name(self) -> str:
        return "Drifting Gratings"

    @property
    def null_condition(self) -> pd.Index:
        tf = self._values(self._col_tf)
        return tf.index[tf.isna()]

    @cached_property
    def orivals(self) -> np.ndarray:
        return self._sorted_values(self._col_ori)

    @cached_property
    def tfvals(self) -> np.ndarray:
        return self._sorted_values(self._col_tf)

    @property
    def number_ori(self) -> int:
        return len(self.orivals)

    @property
    def number_tf(self) -> int:
        return len(self.tfvals)

    @cached_property
    def stim_table_contrast(self) -> pd.DataFrame:
        table = self.ecephys_session.stimulus_presentations
        return table[table["stimulus_name"] == "drifting_gratings_contrast"]

    def _compute(self) -> dict[str, np.ndarray]:
        pref_ori = self._preferred_value(self._col_ori, self.orivals)
        pref_tf = self._preferred_value(self._col_tf, self.tfvals)
        f1f0, mod = self._phase_locking()
        run_p, run_mod = self._run_modulation()
        return {"pref_ori_dg": pref_ori, "pref_ori_multi_dg": self._multiple_preferred(self._col_ori, self.orivals),
                "pref_tf_dg": pref_tf, "pref_tf_multi_dg": self._multiple_preferred(self._col_tf, self.tfvals),
                "c50_dg": self._c50(pref_ori), "f1_f0_dg": f1f0, "mod_idx_dg": mod,
                "g_osi_dg": self._selectivity(pref_tf, kernels.osi), "g_dsi_dg": self._selectivity(pref_tf, kernels.dsi),
                "firing_rate_dg": self._firing_rate(), "fano_dg": self._fano(),
                "lifetime_sparseness_dg": self._lifetime_sparseness(), "run_pval_dg": run_p, "run_mod_dg": run_mod}

    def _selectivity(self, pref_tf: np.ndarray, index: Any) -> np.ndarray:
        tfs = self._values(self._col_tf)
        return _selectivity(self, self._values(self._col_ori), self.orivals, pref_tf, lambda tf: tfs == tf, index)

    def _phase_locking(self) -> tuple[np.ndarray, np.ndarray]:
        """F1/F0 (from each trial) and the modulation index (from the mean PSTH) at the
        preferred condition, in 1 ms bins over the trial."""
        edges = self.psth_edges
        times = edges[:-1] + np.diff(edges) / 2
        rate = 1 / np.mean(np.diff(times))
        tfs = self._values(self._col_tf)
        f1f0, mod = np.full(self.unit_count, np.nan), np.full(self.unit_count, np.nan)
        for units, counts in self.psth_groups(self.preferred_condition, edges):
            tf = float(tfs.loc[self.preferred_condition[units[0]]])  # the condition's (AllenSDK: its first trial's)
            for k, j in enumerate(units):
                f1f0[j] = kernels.f1_f0(counts[:, :, k], tf, float(times.max()))
                mod[j] = kernels.modulation_index(counts[:, :, k].mean(axis=0), tf, rate)
        return f1f0, mod

    def _c50(self, pref_ori: np.ndarray) -> np.ndarray:
        contrast = self.stim_table_contrast
        if not len(contrast):
            return np.full(self.unit_count, np.nan)
        session = self.ecephys_session
        stats = session.conditionwise_spike_statistics(contrast.index.to_numpy(), self.unit_ids)
        conditions = session.stimulus_conditions
        ori = contrast[self._col_ori].map(scalar).to_numpy()
        condition = contrast["stimulus_condition_id"].to_numpy()
        out = np.full(self.unit_count, np.nan)
        for o in np.unique(pref_ori[np.isfinite(pref_ori)]):
            ids = pd.unique(condition[ori == o])  # in order of first presentation, as AllenSDK's
            if not len(ids):
                continue
            values = conditions.loc[ids, self._col_contrast].map(scalar).to_numpy(np.float64)
            for j in np.flatnonzero(pref_ori == o):
                responses = stats.loc[self.unit_ids[j]].loc[ids, "spike_mean"].to_numpy(np.float64)
                out[j] = kernels.c50(values, responses)
        return out


class StaticGratings(StimulusAnalysis):
    """Static gratings (0.25 s): preferred spatial frequency, orientation and phase, OSI."""

    KNOWN_KEYS = ("static_gratings",)
    METRICS = columns.SG
    TRIAL_DURATION = 0.25
    PARAMS_KEY = "static_gratings"

    def __init__(self, ecephys_session: Any, col_ori: str = "orientation", col_sf: str = "spatial_frequency",
                 col_phase: str = "phase", trial_duration: float = 0.25, **kwargs: Any) -> None:
        super().__init__(ecephys_session, trial_duration=trial_duration, **kwargs)
        self._col_ori, self._col_sf, self._col_phase = col_ori, col_sf, col_phase

    @property
    def name(self) -> str:
        return "Static Gratings"

    @property
    def null_condition(self) -> pd.Index:
        sf = self._values(self._col_sf)
        return sf.index[sf.isna()]

    @cached_property
    def orivals(self) -> np.ndarray:
        return self._sorted_values(self._col_ori)

    @cached_property
    def sfvals(self) -> np.ndarray:
        return self._sorted_values(self._col_sf)

    @cached_property
    def phasevals(self) -> np.ndarray:
        return self._sorted_values(self._col_phase)

    def _compute(self) -> dict[str, np.ndarray]:
        sf = self._preferred_value(self._col_sf, self.sfvals)
        phase = self._preferred_value(self._col_phase, self.phasevals)
        sfs, phases = self._values(self._col_sf), self._values(self._col_phase)

        def at(key: tuple[float, float]) -> pd.Series:
            return (sfs == key[0]) & (phases == key[1])

        osi = _selectivity(self, self._values(self._col_ori), self.orivals, list(zip(sf, phase)), at, kernels.osi)
        run_p, run_mod = self._run_modulation()
        return {"pref_sf_sg": sf, "pref_sf_multi_sg": self._multiple_preferred(self._col_sf, self.sfvals),
                "pref_ori_sg": self._preferred_value(self._col_ori, self.orivals),
                "pref_ori_multi_sg": self._multiple_preferred(self._col_ori, self.orivals),
                "pref_phase_sg": phase, "pref_phase_multi_sg": self._multiple_preferred(self._col_phase, self.phasevals),
                "g_osi_sg": osi, "time_to_peak_sg": self._time_to_peak(), "firing_rate_sg": self._firing_rate(),
                "fano_sg": self._fano(), "lifetime_sparseness_sg": self._lifetime_sparseness(),
                "run_pval_sg": run_p, "run_mod_sg": run_mod}


class NaturalScenes(StimulusAnalysis):
    """Natural scenes (0.25 s): preferred image (a ``stimulus_condition_id``), image selectivity."""

    KNOWN_KEYS = ("natural_scenes", "Natural_Images", "Natural Images")
    METRICS = columns.NS
    TRIAL_DURATION = 0.25
    PARAMS_KEY = "natural_scenes"

    def __init__(self, ecephys_session: Any, col_image: str = "frame", trial_duration: float = 0.25,
                 **kwargs: Any) -> None:
        super().__init__(ecephys_session, trial_duration=trial_duration, **kwargs)
        self._col_image = col_image

    @property
    def name(self) -> str:
        return "Natural Scenes"

    @property
    def null_condition(self) -> pd.Index:
        frame = self._values(self._col_image)
        return frame.index[frame == -1]

    @cached_property
    def images(self) -> np.ndarray:
        return self._sorted_values(self._col_image).astype(np.int64)

    @property
    def images_nonblank(self) -> np.ndarray:
        return self.images[self.images >= 0]

    def _compute(self) -> dict[str, np.ndarray]:
        run_p, run_mod = self._run_modulation()
        return {"pref_image_ns": self.preferred_condition,
                "pref_images_multi_ns": self._multiple_preferred(self._col_image, self.images_nonblank),
                "image_selectivity_ns": np.array([kernels.image_selectivity(row)
                                                  for row in self._means[:, self._not_null]]),
                "firing_rate_ns": self._firing_rate(), "fano_ns": self._fano(), "time_to_peak_ns": self._time_to_peak(),
                "lifetime_sparseness_ns": self._lifetime_sparseness(), "run_pval_ns": run_p, "run_mod_ns": run_mod}


class Flashes(StimulusAnalysis):
    """Full-field flashes (0.25 s): ON/OFF ratio, sustained index."""

    KNOWN_KEYS = ("flash", "flashes")
    PREFIX_MATCH = True
    METRICS = columns.FL
    TRIAL_DURATION = 0.25
    PARAMS_KEY = "flashes"

    def __init__(self, ecephys_session: Any, col_color: str = "color", trial_duration: float = 0.25,
                 **kwargs: Any) -> None:
        super().__init__(ecephys_session, trial_duration=trial_duration, **kwargs)
        self._col_color = col_color

    @property
    def name(self) -> str:
        return "Flashes"

    @cached_property
    def colors(self) -> np.ndarray:
        return self._sorted_values(self._col_color)

    def _compute(self) -> dict[str, np.ndarray]:
        psth = self.preferred_psth
        with np.errstate(invalid="ignore", divide="ignore"):
            sustained = psth.mean(axis=1) / psth.max(axis=1)
        run_p, run_mod = self._run_modulation()
        return {"on_off_ratio_fl": self._on_off(), "sustained_idx_fl": sustained,
                "firing_rate_fl": self._firing_rate(), "time_to_peak_fl": self._time_to_peak(), "fano_fl": self._fano(),
                "lifetime_sparseness_fl": self._lifetime_sparseness(), "run_pval_fl": run_p, "run_mod_fl": run_mod}

    def _on_off(self) -> np.ndarray:
        color = self._values(self._col_color)
        on, off = color.index[color == 1.0], color.index[color == -1.0]
        if not len(on) or not len(off):
            return np.full(self.unit_count, np.nan)
        on_m, off_m = (self._means[:, k] for k in self._columns([on[0], off[0]]))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(off_m > 0, on_m / np.where(off_m > 0, off_m, 1.0), np.nan)


class NaturalMovies(StimulusAnalysis):
    """Natural movies, one frame per trial: Fano factor, firing rate, sparseness and
    running modulation. ``stimulus_key`` defaults to the first natural movie of the
    session and ``trial_duration`` to its median frame duration (AllenSDK requires both)."""

    KNOWN_KEYS = ("natural_movies", "natural_movie_1", "natural_movie_3", "natural_movie_one", "natural_movie_three")
    METRICS = columns.NM
    PARAMS_KEY = "natural_movies"

    @property
    def name(self) -> str:
        return "Natural Movies"

    @property
    def trial_duration(self) -> float:
        if self._trial_duration is None and self.has_stimulus:
            self._trial_duration = float(np.median(self.stim_table["duration"].to_numpy(np.float64)))
        return super().trial_duration

    def _compute(self) -> dict[str, np.ndarray]:
        run_p, run_mod = self._run_modulation()
        return {"fano_nm": self._fano(), "firing_rate_nm": self._firing_rate(),
                "lifetime_sparseness_nm": self._lifetime_sparseness(), "run_pval_nm": run_p, "run_mod_nm": run_mod}


class DotMotion(StimulusAnalysis):
    """Dot motion (functional-connectivity sessions, 1 s): preferred speed and direction."""

    KNOWN_KEYS = ("motion_stimulus", "dot_motion")
    METRICS = columns.DM
    TRIAL_DURATION = 1.0
    PARAMS_KEY = "dot_motion"

    def __init__(self, ecephys_session: Any, col_dir: str = "Dir", col_speeds: str = "Speed",
                 trial_duration: float = 1.0, **kwargs: Any) -> None:
        super().__init__(ecephys_session, trial_duration=trial_duration, **kwargs)
        self._col_dir, self._col_speed = col_dir, col_speeds

    @property
    def name(self) -> str:
        return "Dot Motion"

    @cached_property
    def directions(self) -> np.ndarray:
        return self._sorted_values(self._col_dir)

    @cached_property
    def speeds(self) -> np.ndarray:
        return self._sorted_values(self._col_speed)

    def _compute(self) -> dict[str, np.ndarray]:
        run_p, run_mod = self._run_modulation()
        return {"pref_speed_dm": self._preferred_value(self._col_speed, self.speeds),
                "pref_speed_multi_dm": self._multiple_preferred(self._col_speed, self.speeds),
                "pref_dir_dm": self._preferred_value(self._col_dir, self.directions),
                "pref_dir_multi_dm": self._multiple_preferred(self._col_dir, self.directions),
                "firing_rate_dm": self._firing_rate(), "fano_dm": self._fano(), "time_to_peak_dm": self._time_to_peak(),
                "lifetime_sparseness_dm": self._lifetime_sparseness(), "run_mod_dm": run_mod, "run_pval_dm": run_p}


def _selectivity(analysis: StimulusAnalysis, ori: pd.Series, orivals: np.ndarray, keys: Any, where: Any,
                 index: Any) -> np.ndarray:
    """OSI or DSI of each unit over the conditions ``where(key)`` selects (its preferred
    frequency, or frequency and phase), responses in order of orientation (``ori``: each
    condition's)."""
    columns: dict[Any, np.ndarray] = {}
    out = np.full(analysis.unit_count, np.nan)
    for j, key in enumerate(keys):
        if key not in columns:
            ids = ori.index[where(key).to_numpy()]
            columns[key] = analysis._columns(ids[np.argsort(ori.loc[ids].to_numpy(), kind="stable")])
        out[j] = index(orivals, analysis._means[j, columns[key]])
    return out
