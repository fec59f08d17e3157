"""Reductions defined once: sum and mean (linear), max and min (a weighted
selection), prod, cumsum and trace.  The ufuncs' reduce and accumulate
methods (``np.add.reduce``, ``np.maximum.reduce``, ``np.multiply.reduce``,
``np.add.accumulate``) and the array methods (``x.sum()``, ...) reach the
same entries.
"""
from types import MappingProxyType

import numpy as np

from ..support.products import times
from .core import Primitive, deflinear, implements
from .values import float_dtype, ndim, plain, prod_others, shape_of

try:
    from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import normalize_axis_index
    from numpy.core.numeric import normalize_axis_tuple

__all__ = ["in_dtype", "reduce_sum", "mean", "reduce_max", "reduce_min", "prod", "cumsum", "trace",
           "extreme_entries", "extreme_weights", "reduced_count", "kept", "REDUCE_OF",
           "reduce_call", "options", "NOVALUE"]

NOVALUE = getattr(np, "_NoValue", None)  # numpy's "argument not given"
_add_reduce = np.add.reduce


def in_dtype(a, dtype, out=None):
    """(a, dtype) for numpy's ``f(a, dtype=dtype, out=out)``: a float64 or
    float32 dtype is applied to ``a`` (a cast of a traced value is the astype
    primitive, whose adjoint is cast back) and dropped; any other is left
    for options() to refuse.  Without dtype, a float64 ``out`` makes numpy
    accumulate a float32 ``a`` in float64: ``a`` is cast so too."""
    if dtype is None:
        if out is not None and getattr(plain(out), "dtype", None) == _F64 and \
                getattr(plain(a), "dtype", None) == _F32:
            return in_dtype(a, _F64)
        return a, None
    dt, own = np.dtype(dtype), getattr(plain(a), "dtype", _F64)
    if dt != _F32 and dt != _F64:
        return a, dtype
    if dt != own:
        try:
            a = a.astype(dt) if hasattr(a, "astype") else np.asarray(a, dt)
        except TypeError:  # an engine that holds float64 only: options() refuses
            return a, dtype
    return a, None


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def options(fname, dtype=None, initial=NOVALUE, where=NOVALUE):
    """Refuse the arguments whose derivative the rules do not implement."""
    if dtype is not None and np.dtype(dtype) != np.float64:
        raise TypeError(f"shadowad: {fname}(..., dtype={np.dtype(dtype)}) is not supported "
                        "on traced values: traced results are float64 or float32")
    if initial is not NOVALUE:
        raise NotImplementedError(f"shadowad: {fname}(..., initial=...) is not supported "
                                  "on traced values; combine the initial value separately")
    if where is not NOVALUE and where is not True:
        raise NotImplementedError(f"shadowad: {fname}(..., where=...) is not supported on "
                                  "traced values; mask with np.where(mask, x, neutral)")


# ufunc.reduce(a, axis=0, ...) is the numpy function of its ufunc
REDUCE_OF = {np.add: np.sum, np.multiply: np.prod, np.maximum: np.max, np.minimum: np.min}
_REDUCE_KW = {"axis", "dtype", "keepdims", "initial", "where"}


def reduce_call(ufunc, kwargs):
    """(numpy function, axis, its other keyword arguments) of
    ``ufunc.reduce(a, **kwargs)`` (out= taken out first): every engine
    differentiates the method as that function."""
    name = f"np.{ufunc.__name__}.reduce"
    kwargs = dict(kwargs)
    bad = set(kwargs) - _REDUCE_KW
    if bad:
        raise TypeError(f"shadowad: {name}(..., {bad.pop()}=...) is not supported")
    options(name, kwargs.pop("dtype", None), kwargs.pop("initial", NOVALUE),
            kwargs.pop("where", NOVALUE))
    axis = kwargs.pop("axis", 0)
    return REDUCE_OF[ufunc], axis, kwargs


def _kept_shape(shape, axes):
    return tuple(1 if axes is None or d in axes else n for d, n in enumerate(shape))


def _reduction_params(a, axis, keepdims):
    """axis as a sorted tuple of non-negative axes (None: all), keepdims a bool."""
    if type(axis) is int:  # the common case, without numpy's general parsing
        nd = ndim(a)
        axis = (normalize_axis_index(axis, nd) if not 0 <= axis < nd else axis,)
    elif axis is not None:
        axis = tuple(sorted(normalize_axis_tuple(axis, ndim(a))))
    return {"axis": axis, "keepdims": False if keepdims is NOVALUE else bool(keepdims)}


_ALL = MappingProxyType({"axis": None, "keepdims": False})  # the full reduction's params


def reduced_count(shape, axes):
    """How many entries of an array of ``shape`` each result of a reduction
    over ``axes`` (None: all) combines."""
    n = 1
    for d, m in enumerate(shape):
        if axes is None or d in axes:
            n *= m
    return n


def kept(g, a, params):
    """A reduction's result (or its adjoint) ``g`` with the reduced axes of
    ``a`` kept, of length 1, so that it broadcasts against ``a``."""
    if params["keepdims"] or params["axis"] is None:
        return g  # already laid out so, or one value for all
    kd = _kept_shape(shape_of(a), params["axis"])
    return g.reshape(kd) if type(g) is np.ndarray else np.reshape(g, kd)


def _spread(g, a):
    """``g`` (broadcastable against ``a``) spread over a's shape: a read-only
    broadcast of plain values, else a sum an enclosing differentiation
    records."""
    shape = shape_of(a)
    if type(g) is float or isinstance(g, np.generic):
        g = np.asarray(g)  # a float is float64, a numpy scalar keeps its type
    if type(g) is not np.ndarray:
        return np.zeros(shape, float_dtype(g)) + g
    # np.broadcast_to's view, built directly: it costs a tenth (sum is on every hot path)
    if g.ndim == 0:
        strides = (0,) * len(shape)
    elif g.ndim == len(shape) and g.flags.c_contiguous:
        strides = tuple(0 if m == 1 and n != 1 else st
                        for m, n, st in zip(g.shape, shape, g.strides))
    else:
        return np.broadcast_to(g, shape)
    view = np.ndarray(shape, g.dtype, g, 0, strides)
    view.flags.writeable = False
    return view


# --------------------------------------------------------------------------
# sum and mean: linear; the adjoint is spread evenly over the reduced entries

def _sum_transpose(g, a, params):
    return _spread(kept(g, a, params), a)


def _sum(a, axis, keepdims):
    if type(a) is np.ndarray:  # what np.sum runs, without its Python layers
        return _add_reduce(a, axis=axis, keepdims=keepdims)
    return np.sum(a, axis=axis, keepdims=keepdims)


reduce_sum = deflinear(Primitive("sum", _sum), _sum_transpose)


@implements(np.sum)
def sum_entry(bind, a, axis=None, dtype=None, out=None, keepdims=NOVALUE, initial=NOVALUE,
              where=NOVALUE):
    if where is not NOVALUE and where is not True:  # the masked-out entries count as 0
        a = np.where(plain(where), a, 0.0)
        where = NOVALUE
    a, dtype = in_dtype(a, dtype, out)
    if dtype is not None or initial is not NOVALUE:
        options("np.sum", dtype, initial, where)
    if axis is None and (keepdims is NOVALUE or keepdims is False):  # np.sum(x), x.sum()
        return bind(reduce_sum, (a,), _ALL, out)
    return bind(reduce_sum, (a,), _reduction_params(a, axis, keepdims), out)


def _mean_transpose(g, a, params):
    n = reduced_count(shape_of(a), params["axis"])
    g = kept(g, a, params)
    return _spread(g / n if n else g, a)


def _mean(a, axis, keepdims):
    return np.mean(a, axis=axis, keepdims=keepdims)


mean = deflinear(Primitive("mean", _mean), _mean_transpose)


@implements(np.mean)
def mean_entry(bind, a, axis=None, dtype=None, out=None, keepdims=NOVALUE, *, where=NOVALUE):
    if where is not NOVALUE and where is not True:
        # the sum of the entries kept over their count (numpy's nan, with its
        # warning, where none is kept)
        a, dtype = in_dtype(a, dtype, out)
        options("np.mean", dtype)
        mask = np.broadcast_to(plain(where), shape_of(a))
        params = _reduction_params(a, axis, keepdims)
        total = np.sum(np.where(mask, a, 0.0), axis=params["axis"], keepdims=params["keepdims"])
        count = np.sum(mask, axis=params["axis"], keepdims=params["keepdims"])
        with np.errstate(invalid="warn", divide="warn"):  # (a float32 mean stays float32)
            res = total / count.astype(float_dtype(total))
        if out is None:
            return res
        out[...] = res
        return out
    a, dtype = in_dtype(a, dtype, out)
    options("np.mean", dtype, where=where)
    return bind(mean, (a,), _reduction_params(a, axis, keepdims), out)


# --------------------------------------------------------------------------
# max and min: the entries that attain the result share its derivative
# evenly (ties split, as JAX does); a NaN result goes to the NaNs

def extreme_entries(p, axes, zk):
    """(mask, count) on plain values: the entries of p equal to the max/min zk
    (the reduced axes kept) and how many share each result.  A NaN result:
    numpy propagates NaN, so the NaNs win."""
    mask = p == zk
    count = mask.sum(axis=axes, keepdims=True)
    if not count.all():
        mask |= np.isnan(p) & np.isnan(zk)
        count = mask.sum(axis=axes, keepdims=True)
    return mask, count


def _extremes(a, z, params):
    pa = np.asarray(plain(a), dtype=float)
    zk = np.reshape(plain(z), _kept_shape(pa.shape, params["axis"]))
    return extreme_entries(pa, params["axis"], zk)


def extreme_weights(a, z, params):
    """d max / d a (d min / d a), of a's shape, on plain values: 1/count at the
    entries that attain the result, 0 elsewhere."""
    mask, count = _extremes(a, z, params)
    return times(mask, 1.0 / count.astype(float_dtype(a)))


def _extreme_jvp(ts, vals, z, params):
    w = extreme_weights(vals[0], z, params)
    return np.sum(times(w, ts[0], plain), axis=params["axis"], keepdims=params["keepdims"])


def _extreme_vjp(k, g, vals, z, params):
    a = vals[0]
    mask, count = _extremes(a, z, params)
    # an entry that is not extreme gets 0, even of an infinite adjoint
    return times(mask, kept(g, a, params) / count.astype(float_dtype(g)), plain)


def _extreme(name, reduce, ufunc_reduce):
    def impl(a, axis, keepdims):
        if type(a) is np.ndarray:  # what np.max/np.min run, without their Python layers
            return ufunc_reduce(a, axis=axis, keepdims=keepdims)
        return reduce(a, axis=axis, keepdims=keepdims)
    return Primitive(name, impl, _extreme_jvp, _extreme_vjp, reads_out=True)


reduce_max = _extreme("max", np.max, np.maximum.reduce)
reduce_min = _extreme("min", np.min, np.minimum.reduce)


def _extreme_entry(fname, prim):
    def entry(bind, a, axis=None, out=None, keepdims=NOVALUE, initial=NOVALUE, where=NOVALUE):
        options(fname, None, initial, where)
        return bind(prim, (a,), _reduction_params(a, axis, keepdims), out)
    return entry


implements(np.max)(_extreme_entry("np.max", reduce_max))
implements(np.amax)(_extreme_entry("np.amax", reduce_max))
implements(np.min)(_extreme_entry("np.min", reduce_min))
implements(np.amin)(_extreme_entry("np.amin", reduce_min))


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
        return _others_by_prod(a, shape, axes)
    return np.reshape(z, _kept_shape(shape, axes)) / a


def _others_by_prod(a, shape, axes):
    """The product of the other entries of each group, written with np.prod
    itself (entry i's row of the group with a 1 in place of entry i), so that
    a value of an enclosing differentiation gets its derivative at zero
    entries, where z / a cannot be used.  It costs a group's size times the
    memory, which only arrays with a zero entry pay."""
    keep = [d for d in range(len(shape)) if d not in axes]
    perm = keep + list(axes)
    n = 1
    for d in axes:
        n *= shape[d]
    kept = tuple(shape[d] for d in keep)
    groups = np.reshape(np.transpose(a, perm), kept + (1, n))
    others = np.prod(np.where(np.eye(n, dtype=bool), 1.0, groups), axis=-1)
    return np.transpose(np.reshape(others, tuple(shape[d] for d in perm)),
                        tuple(np.argsort(perm)))


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
    a, dtype = in_dtype(a, dtype, out)
    options("np.prod", dtype, initial, where)
    return bind(prod, (a,), _reduction_params(a, axis, keepdims), out)


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
    a, dtype = in_dtype(a, dtype, out)
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
    mask = np.eye(shape[ax1], shape[ax2], k=p["offset"], dtype=float_dtype(g))
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
    a, dtype = in_dtype(a, dtype, out)
    options("np.trace", dtype)
    nd = ndim(a)
    ax1, ax2 = normalize_axis_index(axis1, nd), normalize_axis_index(axis2, nd)
    if ax1 == ax2:
        raise ValueError("axis1 and axis2 cannot be the same")
    return bind(trace, (a,), {"offset": int(offset), "axis1": ax1, "axis2": ax2}, out)
