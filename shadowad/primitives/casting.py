"""Casting between the float dtypes shadowad differentiates (float64 and
float32): ``x.astype(np.float32)`` and back.  A cast is linear: its tangent
is the tangent cast the same way, and the adjoint goes back to the operand's
dtype (a float64 adjoint of a float32 value is rounded once, where it
reaches the float32 memory, as numpy's cast of the value rounded it).

There is no numpy function of this name to register: the traced types'
``astype`` methods (engines/reverse/methods.py) bind it.
"""
import numpy as np

from ..activity import FLOAT_DTYPES
from .core import Primitive, deflinear
from .values import plain

__all__ = ["cast", "FLOATS"]

FLOATS = FLOAT_DTYPES  # the dtypes shadowad differentiates


def _cast(x, dtype):
    if isinstance(x, (np.ndarray, np.generic, float)):
        z = np.array(x, dtype=dtype)
        return z[()] if z.ndim == 0 else z  # numpy's scalar, as numpy's astype of a scalar
    return x.astype(dtype)  # a traced value one level down: its engine casts it


def _transpose(g, x, params):
    dt = getattr(plain(x), "dtype", None)
    return _cast(g, np.float64 if dt is None else dt)


cast = deflinear(Primitive("astype", _cast), _transpose)
