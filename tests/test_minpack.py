"""The least-squares fits (``c50``, the receptive field's Gaussian): MINPACK's Fortran
with a compiled residual reproduces AllenSDK 2.16.2's own fits bit for bit, also the
ill-conditioned ones; scipy's path is the fallback."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from spikeprep.analysis.tuning import kernels, minpack
from spikeprep.analysis.tuning.rf import fit_2d_gaussian

FITS = np.load(pathlib.Path(__file__).with_name("data") / "allensdk_fits.npz")
needs_fortran = pytest.mark.skipif(minpack.fortran_minpack() is None,
                                   reason="no Fortran MINPACK here (Debian: apt install libminpack1)")


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


@needs_fortran
def test_c50_is_allensdks_bit_for_bit() -> None:
    got = np.array([kernels.c50(FITS["contrasts"], y) for y in FITS["responses"]])
    assert np.isnan(FITS["c50"]).any() and _same(got, FITS["c50"]).all()


@needs_fortran
def test_gaussian_fit_is_allensdks_bit_for_bit() -> None:
    got = [fit_2d_gaussian(m) for m in FITS["maps"]]
    assert np.array_equal(np.array([ok for _, ok in got]), FITS["success"]) and not FITS["success"].all()
    assert _same(np.array([p for p, _ in got]), FITS["gaussian"]).all()


def test_scipy_path_agrees_where_the_fit_is_well_posed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the library, scipy's leastsq runs the same residual: the same fit where
    the problem is well posed (ill-posed fits part on rounding, scipy ≥ 1.15's MINPACK
    being a C translation)."""
    y, x = np.indices((9, 9))
    field = 20 * np.exp(-(((y - 3.2) / 1.5) ** 2 + ((x - 5.6) / 2.0) ** 2) / 2)
    fortran = minpack.leastsq("gaussian_2d", np.array([15.0, 4, 4, 1, 1]), field.ravel(), width=9)
    monkeypatch.setenv("SPIKEPREP_MINPACK", "scipy")
    minpack.fortran_minpack.cache_clear()
    try:
        assert minpack.fortran_minpack() is None
        scipy = minpack.leastsq("gaussian_2d", np.array([15.0, 4, 4, 1, 1]), field.ravel(), width=9)
    finally:
        monkeypatch.delenv("SPIKEPREP_MINPACK")
        minpack.fortran_minpack.cache_clear()
    assert scipy[1] in (1, 2, 3, 4) and fortran[1] in (1, 2, 3, 4)
    np.testing.assert_allclose(scipy[0], [20, 3.2, 5.6, 1.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(fortran[0], scipy[0], rtol=1e-9)


@pytest.mark.parametrize("backend", ["fortran", "scipy"])
def test_limits_and_improper_input(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "scipy":
        monkeypatch.setattr(minpack, "fortran_minpack", lambda: None)
    elif minpack.fortran_minpack() is None:
        pytest.skip("no Fortran MINPACK here (Debian: apt install libminpack1)")
    log_x = np.log(FITS["contrasts"])
    noisy = np.concatenate([log_x, FITS["responses"][1]])
    x, info = minpack.leastsq("contrast", np.ones(4), noisy, maxfev=3)
    assert info == 5 and x.shape == (4,)  # stopped at maxfev: the last iterate
    x, info = minpack.leastsq("contrast", np.ones(4), np.concatenate([log_x[:3], [1.0, 2, 3]]))
    assert info == 0 and np.array_equal(x, np.ones(4))  # fewer data than parameters
    assert np.isnan(kernels.c50(FITS["contrasts"][:3], np.array([1.0, 2, 3])))  # AllenSDK raises here
