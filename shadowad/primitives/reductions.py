"""Reductions defined once: cumsum (also ``np.add.accumulate``).

sum, mean, prod, max/min and trace still have engine-specific rules
(shadowad/rules/reductions.py, shadowad/nested_rules.py); see
docs/design-notes.md, "How to add a primitive", to move them here.
"""
import numpy as np

from .core import Primitive, deflinear, implements
from .values import ndim, shape_of

try:
    from numpy.lib.array_utils import normalize_axis_index
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import normalize_axis_index

__all__ = ["cumsum"]


def check_dtype(fname, dtype):
    if dtype is not None and np.dtype(dtype) != np.float64:
        raise TypeError(f"shadowad: {fname}(..., dtype={np.dtype(dtype)}) is not supported "
                        "on traced values: traced results are float64")


# --------------------------------------------------------------------------
# cumsum: the adjoint of x is the reversed cumulative sum of the adjoint of z

def _reversed_along(axis):
    return (slice(None),) * axis + (slice(None, None, -1),)


def _cumsum_transpose(g, a, params):
    axis = params["axis"]
    if axis is None:  # the cumulative sum of the flattened array
        return np.reshape(np.cumsum(g[::-1])[::-1], shape_of(a))
    rev = _reversed_along(axis)
    return np.cumsum(g[rev], axis=axis)[rev]


cumsum = deflinear(Primitive("cumsum", lambda a, axis: np.cumsum(a, axis=axis)),
                   _cumsum_transpose)


@implements(np.cumsum)
def cumsum_entry(bind, a, axis=None, dtype=None, out=None):
    check_dtype("np.cumsum", dtype)
    if axis is not None:
        axis = normalize_axis_index(axis, ndim(a))
    elif ndim(a) == 1:
        axis = 0
    return bind(cumsum, (a,), {"axis": axis}, out)
