"""Receptive-field mapping on the gabor stimulus: AllenSDK's ``ReceptiveFieldMapping``.

The map of a unit is its spike count in the first 0.249 s after each gabor onset, summed
per grid position: rows are elevations from the top of the screen down (AllenSDK's
``40 − y_position``), columns azimuths from left to right. Unlike AllenSDK, the
session's stimulus table is never rewritten (AllenSDK flips ``y_position`` in place, so
a later call sees another table).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..alignment import aligned_counts
from . import columns
from .base import StimulusAnalysis

__all__ = ["ReceptiveFieldMapping", "rf_stats", "oriented", "chi_square_p", "threshold_rf", "fit_2d_gaussian"]

_RF_EDGES = np.linspace(0, 0.249, 3)


class ReceptiveFieldMapping(StimulusAnalysis):
    """Receptive fields from gabors: position, size and significance of each unit's RF,
    and the 9 × 9 map (``get_receptive_field``).

    Parameters
    ----------
    minimum_spike_count : float
        Units with fewer spikes in all trials get NaN RF metrics.
    mask_threshold : float
        The RF mask keeps smoothed values above ``max − mask_threshold · std``.
    seed : int
        Seed of the chi-square bootstrap (1,000 draws per unit, from
        ``numpy.random.default_rng([seed, unit_id])``: the same p-value on every run and
        whatever other units are analysed).
    """

    KNOWN_KEYS = ("receptive_field_mapping", "gabor", "gabors")
    PREFIX_MATCH = True
    METRICS = columns.RF
    TRIAL_DURATION = 0.25
    PARAMS_KEY = "receptive_field_mapping"

    def __init__(self, ecephys_session: Any, col_pos_x: str = "x_position", col_pos_y: str = "y_position",
                 trial_duration: float = 0.25, minimum_spike_count: float = 10.0, mask_threshold: float = 0.5,
                 seed: int = 0, **kwargs: Any) -> None:
        super().__init__(ecephys_session, trial_duration=trial_duration, **kwargs)
        self._col_x, self._col_y = col_pos_x, col_pos_y
        self._minimum_spike_count, self._mask_threshold, self.seed = minimum_spike_count, mask_threshold, seed

    @property
    def name(self) -> str:
        return "Receptive Field Mapping"

    @cached_property
    def _flipped_y(self) -> np.ndarray:
        return 40.0 - self.stim_table[self._col_y].to_numpy(np.float64)

    @cached_property
    def elevations(self) -> np.ndarray:
        """Rows of the maps: AllenSDK's flipped ``40 − y_position`` (deg), ascending."""
        return np.unique(self._flipped_y[np.isfinite(self._flipped_y)])

    @cached_property
    def azimuths(self) -> np.ndarray:
        x = self.stim_table[self._col_x].to_numpy(np.float64)
        return np.unique(x[np.isfinite(x)])

    @property
    def number_elevations(self) -> int:
        return len(self.elevations)

    @property
    def number_azimuths(self) -> int:
        return len(self.azimuths)

    @cached_property
    def receptive_fields(self) -> np.ndarray:
        """Units × elevations × azimuths: spike counts summed per gabor position."""
        counts = np.asarray(self._rf_counts())
        rows = np.searchsorted(self.elevations, self._flipped_y)
        cols = np.searchsorted(self.azimuths, self.stim_table[self._col_x].to_numpy(np.float64))
        cell = rows * self.number_azimuths + cols
        n_cells = self.number_elevations * self.number_azimuths
        out = np.zeros((self.unit_count, n_cells), dtype=np.int64)
        for j in range(self.unit_count):
            out[j] = np.bincount(cell, weights=counts[:, j], minlength=n_cells)[:n_cells]
        kind = np.uint16 if out.max(initial=0) <= np.iinfo(np.uint16).max else np.uint64
        return out.reshape(self.unit_count, self.number_elevations, self.number_azimuths).astype(kind)

    def _rf_counts(self) -> np.ndarray:
        return aligned_counts(self._trains, self._starts, _RF_EDGES).sum(axis=1, dtype=np.int64)

    def get_receptive_field(self, unit_id: int) -> np.ndarray:
        """The unit's map (elevations × azimuths, spike counts; row 0 is the top of the grid)."""
        where = np.flatnonzero(self.unit_ids == unit_id)
        if not len(where):
            raise KeyError(f"unit {unit_id} is not among the {self.unit_count} units analysed")
        return self.receptive_fields[where[0]]

    def _compute(self) -> dict[str, np.ndarray]:
        cats = _categories(self.stim_table, [self._col_x, self._col_y])
        stats = np.array([rf_stats(self.receptive_fields[j], self._trial_counts[:, j], cats,
                                   self._minimum_spike_count, self._mask_threshold,
                                   np.random.default_rng([self.seed, int(u)]))
                          for j, u in enumerate(self.unit_ids)], dtype=object).reshape(-1, 7)
        run_p, run_mod = self._run_modulation()
        names = ("azimuth_rf", "elevation_rf", "width_rf", "height_rf", "area_rf", "p_value_rf", "on_screen_rf")
        out = {n: stats[:, k].astype(bool if n == "on_screen_rf" else np.float64) for k, n in enumerate(names)}
        out.update({"firing_rate_rf": self._firing_rate(), "fano_rf": self._fano(), "time_to_peak_rf": self._time_to_peak(),
                    "lifetime_sparseness_rf": self._lifetime_sparseness(), "run_mod_rf": run_mod, "run_pval_rf": run_p})
        return out


def _categories(table: pd.DataFrame, names: list[str]) -> np.ndarray:
    """Category of each sweep: one per combination of the columns' values, -1 where a
    value is missing (AllenSDK's ``stim_table_to_categories`` partition)."""
    values = table[names].to_numpy(np.float64)
    ok = np.isfinite(values).all(axis=1)
    out = np.full(len(table), -1, dtype=np.int64)
    if ok.any():
        _, out[ok] = np.unique(values[ok], axis=0, return_inverse=True)
    return out


def chi_square_p(events: np.ndarray, categories: np.ndarray, rng: np.random.Generator, shuffles: int = 1000) -> float:
    """AllenSDK's chi-square test of tuning to the categories, by bootstrap: the share of
    ``shuffles`` resamplings (sweeps drawn with replacement) whose chi-square exceeds the
    data's.

    A resampling draws every sweep independently, so the responses summed in a category
    of ``n`` sweeps are a sum of ``n`` independent draws from the unit's response
    distribution. For spike counts (non-negative integers) each category's sum is drawn
    straight from that distribution's ``n``-fold convolution: the same statistic with
    the same distribution, in ``shuffles × categories`` draws instead of ``shuffles ×
    sweeps`` (45× fewer on a full session's gabors).
    """
    events = np.asarray(events, dtype=np.float64)
    _, cat = np.unique(categories, return_inverse=True)
    n, n_cat = len(events), int(cat.max()) + 1 if len(cat) else 0
    sweeps = np.bincount(cat, minlength=n_cat).astype(np.float64)
    observed = np.bincount(cat, weights=events, minlength=n_cat)
    counts = events.astype(np.int64)
    if len(events) and (events >= 0).all() and np.array_equal(counts, events):
        from .compiled import bootstrap_p

        distinct = np.unique(sweeps).astype(np.int64)
        return float(bootstrap_p(np.bincount(counts) / n, distinct, np.searchsorted(distinct, sweeps), sweeps,
                                 observed, rng.random((shuffles, n_cat))))
    # other responses: the resampling itself

    def chi(observed: np.ndarray, mean: np.ndarray) -> np.ndarray:
        expected = sweeps[None, :] * mean[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = (observed - expected) ** 2 / expected
        return np.sum(np.where(expected > 0, terms, 0.0), axis=1)

    actual = chi(observed[None, :], np.array([events.mean()]))[0]
    draws = events[rng.integers(0, n, size=(shuffles, n))]
    flat = (np.arange(shuffles)[:, None] * n_cat + cat[None, :]).ravel()
    shuffled = np.bincount(flat, weights=draws.ravel(), minlength=shuffles * n_cat).reshape(shuffles, n_cat)
    return float(np.mean(actual < chi(shuffled, shuffled.sum(axis=1) / n)))


def threshold_rf(rf: np.ndarray, threshold: float) -> tuple[np.ndarray, float, float, float]:
    """The RF's mask: smoothed (σ = 1 bin, in the map's own integer type, as AllenSDK),
    above ``max − threshold·std``, the connected region holding the maximum. Returns the
    mask, its centre of mass (x, y, in bins, rounded to 4 places) and its area (bins)."""
    import scipy.ndimage as ndi

    smooth = ndi.gaussian_filter(rf, 1)
    mask = np.zeros(rf.shape, dtype=bool)
    mask[smooth > np.max(smooth) - np.std(smooth) * threshold] = True
    labels, _ = ndi.label(mask)
    best = np.argmax(ndi.maximum(smooth, labels=labels, index=np.unique(labels)))
    labels[labels != best] = 0
    labels[labels > 0] = 1
    with np.errstate(invalid="ignore", divide="ignore"):
        cy, cx = ndi.center_of_mass(labels)
    return labels, float(np.around(cx, 4)), float(np.around(cy, 4)), float(np.sum(labels))


def fit_2d_gaussian(rf: np.ndarray) -> tuple[np.ndarray, bool]:
    """AllenSDK's 2-D Gaussian fit (``leastsq`` from the moments, :func:`.minpack.leastsq`):
    (height, centre y, centre x, width y, width x) in bins, and whether it converged.
    Where MINPACK stops at ``maxfev``, the last iterate, as AllenSDK keeps it."""
    from .minpack import leastsq

    params = _moments(rf)
    if params is None:
        return np.full(5, np.nan), False
    data = np.ascontiguousarray(rf, dtype=np.float64)
    with np.errstate(all="ignore"):
        fit, info = leastsq("gaussian_2d", np.asarray(params, dtype=np.float64), data.ravel(), width=data.shape[1])
    return fit, 1 <= info <= 4


def _moments(data: np.ndarray) -> tuple[float, ...] | None:
    total = data.sum()
    Y, X = np.indices(data.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy, cx = (Y * data).sum() / total, (X * data).sum() / total
    if not (np.isfinite(cy) and np.isfinite(cx)):
        return None
    col, row = data[:, int(cx)], data[int(cy), :]
    # AllenSDK's: the y width from the row through the centre, the x width from the column
    with np.errstate(invalid="ignore", divide="ignore"):
        wy = np.sqrt(np.abs((np.arange(row.size) - cy) ** 2 * row).sum() / row.sum())
        wx = np.sqrt(np.abs((np.arange(col.size) - cx) ** 2 * col).sum() / col.sum())
    return data.max(), cy, cx, wy, wx


def oriented(rf: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The map the Gaussian is fitted to: its complement when the mask
    (:func:`threshold_rf`) covers more than half the grid's edge (an inverted RF,
    AllenSDK's ``is_rf_inverted``)."""
    edge = np.zeros(mask.shape)
    edge[:, 0] = edge[:, -1] = edge[0, :] = edge[-1, :] = 1
    return np.max(rf) - rf if np.sum(mask * edge) > np.sum(edge) / 2 else rf


def rf_stats(rf: np.ndarray, trial_counts: np.ndarray, categories: np.ndarray, minimum_spike_count: float,
             mask_threshold: float, rng: np.random.Generator) -> tuple:
    """One unit's (azimuth, elevation, width, height, area in degrees, p value, on screen)."""
    if np.sum(trial_counts) < minimum_spike_count:
        return np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, False
    p = chi_square_p(trial_counts, categories, rng)
    mask, azimuth, elevation, area = threshold_rf(rf, mask_threshold)
    rf = oriented(rf, mask)
    (_, cy, cx, wy, wx), _ = fit_2d_gaussian(rf)
    on_screen = bool(0 < cy < rf.shape[0] and 0 < cx < rf.shape[1])
    return azimuth * 10 + 10, (8 - elevation) * 10 - 30, wx * 10, wy * 10, area * 100, p, on_screen
