"""Reductions defined once: prod (also ``np.multiply.reduce``), cumsum (also
``np.add.accumulate``) and trace.

sum, mean and max/min still have engine-specific rules
(shadowad/engines/rules/reductions.py, shadowad/engines/nested/rules.py); see
docs/design-notes.md, "How to add a primitive", to move them here.
"""
import numpy as np

from ..support.products import times
from .core import Primitive, deflinear, implements
from .values import ndim, plain, prod_others, shape_of

try:
    from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import normalize_axis_index
    from numpy.core.numeric import normalize_axis_tuple

__all__ = ["prod", "cumsum", "trace", "options", "NOVALUE"]

NOVALUE = getattr(np, "_NoValue", None)  # numpy's "argument not given"


def options(fname, dtype=None, initial=NOVALUE, where=NOVALUE):
    """Refuse the arguments whose derivative the rules do not implement."""
    if dtype is not None and np.dtype(dtype) != np.float64:
        raise TypeError(f"shadowad: {fname}(..., dtype={np.dtype(dtype)}) is not supported "
                        "on traced values: traced results are float64")
    if initial is not NOVALUE:
        raise NotImplementedError(f"shadowad: {fname}(..., initial=...) is not supported "
                                  "on traced values; combine the initial value separately")
    if where is not NOVALUE and where is not True:
        raise NotImplementedError(f"shadowad: {fname}(..., where=...) is not supported on "
                                  "traced values; mask with np.where(mask, x, neutral)")


def _kept_shape(shape, axes):
    return tuple(1 if axes is None or d in axes else n for d, n in enumerate(shape))


# --------------------------------------------------------------------------
# prod: each entry's partial is the product of the other entries of its group

def _prod_weights(a, z, params):
    """d prod / d a, of a's shape.  On plain values the prefix and suffix
    products of each group (exact, zeros included); on values of an
    enclosing differentiation z / a, so that it is differentiable again
    (refused at a zero entry rather than dropped)."""
    axes, shape = params["axis"], shape_of(a)
    if axes is None:
        axes = tuple(range(len(shape)))
    pa = plain(a)
    if pa is a:
        keep = [d for d in range(pa.ndim) if d not in axes]
        perm = keep + list(axes)
        xt = pa.transpose(perm)
        n = 1
        for d in axes:
            n *= pa.shape[d]
        others = prod_others(xt.reshape(xt.shape[:len(keep)] + (n,))).reshape(xt.shape)
        return others.transpose(np.argsort(perm))
    if np.any(np.asarray(pa) == 0):
        raise NotImplementedError(
            "shadowad: the derivative of np.prod at an array with a zero entry cannot be "
            "differentiated again (inside a nested differentiation)")
    return np.reshape(z, _kept_shape(shape, axes)) / a


def _prod_jvp(ts, vals, z, params):
    w = _prod_weights(vals[0], z, params)
    return np.sum(times(w, ts[0], plain), axis=params["axis"], keepdims=params["keepdims"])


def _prod_vjp(k, g, vals, z, params):
    a = vals[0]
    gk = np.reshape(g, _kept_shape(shape_of(a), params["axis"]))
    return times(gk, _prod_weights(a, z, params), plain)


prod = Primitive("prod", lambda a, axis, keepdims: np.prod(a, axis=axis, keepdims=keepdims),
                 _prod_jvp, _prod_vjp, reads_out=True)


@implements(np.prod)
def prod_entry(bind, a, axis=None, dtype=None, out=None, keepdims=NOVALUE, initial=NOVALUE,
               where=NOVALUE):
    options("np.prod", dtype, initial, where)
    if axis is not None:
        axis = tuple(sorted(normalize_axis_tuple(axis, ndim(a))))
    keepdims = False if keepdims is NOVALUE else bool(keepdims)
    return bind(prod, (a,), {"axis": axis, "keepdims": keepdims}, out)


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
    options("np.cumsum", dtype)
    if axis is not None:
        axis = normalize_axis_index(axis, ndim(a))
    elif ndim(a) == 1:
        axis = 0
    return bind(cumsum, (a,), {"axis": axis}, out)


# --------------------------------------------------------------------------
# trace: the adjoint lands on the (offset) diagonal of the two axes

def _trace_transpose(g, a, p):
    shape = shape_of(a)
    ax1, ax2 = p["axis1"], p["axis2"]
    mask = np.eye(shape[ax1], shape[ax2], k=p["offset"])
    if ax1 > ax2:  # the mask's axes in the order they come in a
        mask = mask.T
    mshape = [1] * len(shape)
    mshape[ax1], mshape[ax2] = shape[ax1], shape[ax2]
    rest = iter(shape_of(g))
    gshape = tuple(1 if d in (ax1, ax2) else next(rest) for d in range(len(shape)))
    # off the diagonal 0, even against an infinite adjoint
    return times(np.reshape(g, gshape), mask.reshape(mshape), plain)


trace = deflinear(
    Primitive("trace", lambda a, offset, axis1, axis2: np.trace(a, offset, axis1, axis2)),
    _trace_transpose)


@implements(np.trace)
def trace_entry(bind, a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    options("np.trace", dtype)
    nd = ndim(a)
    ax1, ax2 = normalize_axis_index(axis1, nd), normalize_axis_index(axis2, nd)
    if ax1 == ax2:
        raise ValueError("axis1 and axis2 cannot be the same")
    return bind(trace, (a,), {"offset": int(offset), "axis1": ax1, "axis2": ax2}, out)
