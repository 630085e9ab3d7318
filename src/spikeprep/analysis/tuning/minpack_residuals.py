"""MINPACK's residual callbacks (numba ``cfunc``), for :mod:`.minpack`'s Fortran path:
the arithmetic of :mod:`.compiled`'s residuals, behind Fortran's calling convention.
A module of their own because a ``cfunc`` is compiled (or loaded from numba's cache,
≈0.15 s each) when it is defined, and only the Fortran path needs them.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from ...rates.jit import CAN_CACHE
from .compiled import contrast_into, gaussian_2d_into

__all__ = ["residual_cfunc"]

# MINPACK's Fortran residual, fcn(m, n, x, fvec, iflag), every argument by reference; ``m``
# points at the fit's buffer (see .minpack): int32 m and the model's integer, then its data
_FCN = numba.types.void(numba.types.voidptr, numba.types.CPointer(numba.types.int32),
                        numba.types.CPointer(numba.types.float64), numba.types.CPointer(numba.types.float64),
                        numba.types.CPointer(numba.types.int32))


@numba.cfunc(_FCN, cache=CAN_CACHE)
def _contrast_fcn(buffer, n, x, fvec, iflag):  # type: ignore[no-untyped-def]
    m = numba.carray(buffer, (2,), np.int32)[0]
    data = numba.carray(buffer, (1 + 2 * m,), np.float64)
    contrast_into(x, data[1:1 + m], data[1 + m:], fvec)


@numba.cfunc(_FCN, cache=CAN_CACHE)
def _gaussian_2d_fcn(buffer, n, x, fvec, iflag):  # type: ignore[no-untyped-def]
    head = numba.carray(buffer, (2,), np.int32)
    data = numba.carray(buffer, (1 + head[0],), np.float64)
    gaussian_2d_into(x, data[1:], head[1], fvec)


def residual_cfunc(model: str) -> Any:
    """The compiled MINPACK residual of ``model`` (its ``.address`` is the function pointer)."""
    return {"contrast": _contrast_fcn, "gaussian_2d": _gaussian_2d_fcn}[model]
