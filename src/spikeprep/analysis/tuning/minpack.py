"""Least-squares fits on MINPACK's own ``lmdif``, with the residual compiled.

AllenSDK fits with ``scipy.optimize.leastsq`` (its ``curve_fit``), which runs MINPACK's
Fortran ``lmdif`` and calls a Python residual for every evaluation: up to 100,000 per
unit for ``c50``. Where the machine has the Fortran MINPACK library (Debian and Ubuntu:
``apt install libminpack1``), :func:`leastsq` calls its
``lmdif_`` directly with a numba ``cfunc`` residual, so a fit runs with no interpreter in
the loop. That is the same Fortran scipy 1.10 built for AllenSDK 2.16's environment;
scipy ≥ 1.15 runs a C translation whose rounding differs, so on ill-conditioned fits
its path parts from AllenSDK's, which the Fortran library follows (tested). Without the
library, the fit falls back on scipy's ``leastsq`` with the same compiled residual.

Fortran passes every argument by reference, and ``lmdif`` hands the residual the very
``m`` it was given. That ``m`` is the start of a float64 buffer: its first slot holds
``m`` (int32) and a model's integer (int32), the rest the model's data, so a residual
needs no global state. Set ``SPIKEPREP_MINPACK=scipy`` to use scipy's path regardless.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import warnings
from typing import Literal

import numpy as np

__all__ = ["leastsq", "fortran_minpack", "Model"]

Model = Literal["contrast", "gaussian_2d"]
# scipy.optimize.leastsq's defaults, which AllenSDK keeps
_TOL = 1.49012e-08
_FACTOR = 100.0


@functools.cache
def fortran_minpack() -> ctypes.CDLL | None:
    """The Fortran MINPACK library, or None where it is absent or turned off."""
    if os.environ.get("SPIKEPREP_MINPACK", "").lower() == "scipy":
        return None
    name = ctypes.util.find_library("minpack")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.lmdif_.restype = None
    except (OSError, AttributeError):
        return None
    return lib


def leastsq(model: Model, x0: np.ndarray, data: np.ndarray, width: int = 0,
            maxfev: int = 0) -> tuple[np.ndarray, int]:
    """Fit ``model`` from ``x0`` as ``scipy.optimize.leastsq`` would with its defaults.

    Parameters
    ----------
    model : {"contrast", "gaussian_2d"}
        ``"contrast"``: ``data`` is (log contrasts, responses) concatenated, parameters
        (b, c, d, e) of AllenSDK's ``_contrast_curve``. ``"gaussian_2d"``: ``data`` is a map
        raveled row by row, ``width`` its number of columns, parameters (height, centre y,
        centre x, width y, width x).
    x0 : numpy.ndarray
        Starting parameters.
    data : numpy.ndarray
        The model's data, float64.
    width : int
        The model's integer (the map's columns for ``"gaussian_2d"``).
    maxfev : int
        Most residual evaluations; 0 means scipy's default, 200 · (n + 1).

    Returns
    -------
    (numpy.ndarray, int)
        The last iterate and MINPACK's ``info`` (1–4 converged, 5 ``maxfev`` reached,
        0 fewer data than parameters).
    """
    x = np.array(x0, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64)
    m = data.size // 2 if model == "contrast" else data.size
    maxfev = maxfev or 200 * (x.size + 1)
    if m < x.size:  # MINPACK's "improper input" (scipy raises)
        return x, 0
    lib = fortran_minpack()
    if lib is None:
        return _scipy(model, x, data, width, maxfev)
    return _fortran(lib, model, x, data, m, width, maxfev)


def _fortran(lib: ctypes.CDLL, model: Model, x: np.ndarray, data: np.ndarray, m: int, width: int,
             maxfev: int) -> tuple[np.ndarray, int]:
    from .minpack_residuals import residual_cfunc

    n = x.size
    buffer = np.empty(1 + data.size)
    buffer[:1].view(np.int32)[:] = (m, width)
    buffer[1:] = data
    fvec, diag, fjac = np.empty(m), np.empty(n), np.empty((n, m))
    ipvt, qtf = np.empty(n, dtype=np.int32), np.empty(n)
    work = [np.empty(n), np.empty(n), np.empty(n), np.empty(m)]
    info, nfev = ctypes.c_int(0), ctypes.c_int(0)

    def ref(value: float | int) -> ctypes._CArgObject:  # type: ignore[name-defined]
        return ctypes.byref(ctypes.c_double(value) if isinstance(value, float) else ctypes.c_int(value))

    def ptr(array: np.ndarray) -> ctypes.c_void_p:
        return array.ctypes.data_as(ctypes.c_void_p)

    lib.lmdif_(ctypes.c_void_p(residual_cfunc(model).address), ptr(buffer), ref(n), ptr(x), ptr(fvec), ref(_TOL),
               ref(_TOL), ref(0.0), ref(maxfev), ref(float(np.finfo(np.float64).eps)), ptr(diag), ref(1),
               ref(_FACTOR), ref(0), ctypes.byref(info), ctypes.byref(nfev), ptr(fjac), ref(m), ptr(ipvt), ptr(qtf),
               *map(ptr, work))
    return x, info.value


def _scipy(model: Model, x: np.ndarray, data: np.ndarray, width: int, maxfev: int) -> tuple[np.ndarray, int]:
    from scipy.optimize import leastsq as scipy_leastsq

    from .compiled import contrast_residual, gaussian_2d_residual

    if model == "contrast":
        half = data.size // 2
        residual, args = contrast_residual, (data[:half], data[half:])
    else:
        residual, args = gaussian_2d_residual, (data.reshape(-1, width),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # maxfev reached: the caller reads info
        fit, _, _, _, info = scipy_leastsq(residual, x, args=args, full_output=True, maxfev=maxfev)
    return fit, int(info)
