"""Writes allensdk_fits.npz: AllenSDK 2.16.2's own least-squares fits (drifting gratings'
``c50``, receptive fields' ``fit_2d_gaussian``) on seeded inputs, many of them
ill-conditioned, for tests/test_minpack.py. Run with AllenSDK's Python:

    $SPIKEPREP_ALLENSDK_PYTHON tests/data/make_allensdk_fits.py
"""

import pathlib
import warnings

import numpy as np
from allensdk.brain_observatory.ecephys.stimulus_analysis.drifting_gratings import c50
from allensdk.brain_observatory.ecephys.stimulus_analysis.receptive_field_mapping import fit_2d_gaussian

CONTRASTS = np.array([0.01, 0.02, 0.04, 0.08, 0.13, 0.2, 0.35, 0.6, 1.0])


def responses(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mean spike counts per contrast: noisy sigmoids, flat and granular ones, noise."""
    out = []
    for k in range(n):
        scale = rng.choice([0.1, 1.0, 5.0])
        y = rng.gamma(2, 1, CONTRASTS.size) * scale
        if k % 3 == 0:
            y = y + np.arange(CONTRASTS.size) * rng.normal(0, 1)
        if k % 5 == 0:
            y = np.round(y * 4) / 4
        out.append(y)
    return np.array(out)


def maps(rng: np.random.Generator, n: int) -> np.ndarray:
    """9 × 9 spike-count maps: Gaussian fields of several sizes (some inverted), and noise."""
    y, x = np.indices((9, 9))
    out = []
    for k in range(n):
        cy, cx = rng.uniform(-1, 9, 2)
        wy, wx = rng.uniform(0.5, 3, 2)
        field = np.exp(-(((y - cy) / wy) ** 2 + ((x - cx) / wx) ** 2) / 2) * rng.uniform(0, 40)
        if k % 4 == 0:
            field = field.max() - field
        out.append(rng.poisson(field + rng.uniform(0.1, 5)).astype(np.float64))
    return np.array(out)


def main() -> None:
    rng = np.random.default_rng(20261207)
    ys, rfs = responses(rng, 600), maps(rng, 300)
    warnings.simplefilter("ignore")
    c50s = np.array([c50(CONTRASTS, y) for y in ys])
    fits = [fit_2d_gaussian(m) for m in rfs]
    np.savez_compressed(pathlib.Path(__file__).with_name("allensdk_fits.npz"), contrasts=CONTRASTS, responses=ys,
                        c50=c50s, maps=rfs, gaussian=np.array([f[0] for f in fits], dtype=np.float64),
                        success=np.array([f[1] for f in fits]))


if __name__ == "__main__":
    main()
