"""Statistics and the reductions built on the others: cumprod (a primitive),
and var, std, average, median, quantile, percentile, nansum, nanmean, ptp
and diff, each a composition of primitives that already have derivatives.

A composite's entry calls numpy on its operands, which dispatch again in
whatever engine is running, so its derivative is the chain rule through
those primitives (one definition each); the compositions follow numpy's own
algorithms so that values agree bit for bit (where not, the entry says so).
The conventions at degenerate points (constant input of std, ties and NaNs
of median and quantile, zeros of cumprod) are in docs/conventions.md.
"""
import warnings

import numpy as np

from ..support.products import times
from .core import Primitive, implements
from .reductions import NOVALUE, in_dtype, options
from .values import float_dtype, ndim, plain, shape_of

try:
    from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import normalize_axis_index
    from numpy.core.numeric import normalize_axis_tuple

__all__ = ["cumprod", "linear_scan"]


def _no_out(fname, out):
    if out is not None:
        raise NotImplementedError(f"shadowad: {fname}(..., out=...) is not supported on traced "
                                  "values; assign the result instead (out[...] = result)")


def _axes(a, axis):
    """axis as a sorted tuple of non-negative axes (all of them for None)."""
    nd = ndim(a)
    if axis is None:
        return tuple(range(nd))
    return tuple(sorted(normalize_axis_tuple(axis, nd)))


def _count(a, axes):
    shape = shape_of(a)
    n = 1
    for d in axes:
        n *= shape[d]
    return n


# --------------------------------------------------------------------------
# cumprod: a primitive whose tangent and adjoint are first-order linear
# recurrences, computed without dividing by the entries (zeros are exact)

def _shifted(x, d, fill):
    """x moved d places along its last axis: y[..., i] = x[..., i - d] (d > 0)
    or x[..., i - d] with i - d past the end (d < 0), ``fill`` where none."""
    n = shape_of(x)[-1]
    lead = shape_of(x)[:-1]
    k = min(abs(d), n)
    pad = np.full(lead + (k,), fill, float_dtype(x))
    if d > 0:
        return np.concatenate([pad, x[..., :n - k]], axis=-1)
    return np.concatenate([x[..., k:], pad], axis=-1)


def linear_scan(coef, b, reverse=False):
    """y along the last axis with y[i] = b[i] + coef[i] * y[i - 1] (y[-1] = 0),
    or with reverse: y[i] = b[i] + coef[i] * y[i + 1].  log2(n) doubling
    steps of generic numpy (a Hillis-Steele scan), so plain arrays and every
    engine's values alike; no division, so zeros in coef need nothing special."""
    n = shape_of(b)[-1]
    step = -1 if reverse else 1
    d = 1
    while d < n:
        # the zero-factor rule (0 * inf = 0 * nan = 0) in every product, as the
        # step-by-step recurrence would apply it: a zero coefficient cuts the
        # chain, and a product of coefficients that overflows reaches nothing
        # where it meets a zero
        b = b + times(coef, _shifted(b, step * d, 0.0), plain)
        coef = times(coef, _shifted(coef, step * d, 0.0), plain)
        d *= 2
    return b


def _exclusive(z):
    """The cumulative products before each entry (1 before the first)."""
    return _shifted(z, 1, 1.0)


def _to_last(x, axis):
    nd = ndim(x)
    if axis == nd - 1:
        return x
    return np.moveaxis(x, axis, -1)


def _from_last(x, axis):
    nd = ndim(x)
    if axis == nd - 1:
        return x
    return np.moveaxis(x, -1, axis)


def _cumprod_jvp(ts, vals, z, params):
    # dz[i] = a[i] dz[i-1] + z[i-1] t[i]: the product rule, step by step
    axis = params["axis"]
    a, t, z = (_to_last(v, axis) for v in (vals[0], ts[0], z))
    if shape_of(a)[-1] == 0:
        return ts[0]
    return _from_last(linear_scan(a, times(_exclusive(z), t, plain)), axis)


def _cumprod_vjp(k, g, vals, z, params):
    # adjoint of a[j] = z[j-1] * s[j], s[j] = g[j] + a[j+1] s[j+1]:
    # the transpose of the recurrence above
    axis = params["axis"]
    a, g, z = (_to_last(v, axis) for v in (vals[0], g, z))
    if shape_of(a)[-1] == 0:
        return _from_last(g, axis)
    s = linear_scan(_shifted(a, -1, 0.0), g, reverse=True)
    return _from_last(times(_exclusive(z), s, plain), axis)


cumprod = Primitive("cumprod", lambda a, axis: np.cumprod(a, axis=axis),
                    _cumprod_jvp, _cumprod_vjp, reads_out=True)


@implements(np.cumprod)
def cumprod_entry(bind, a, axis=None, dtype=None, out=None):
    a, dtype = in_dtype(a, dtype, out)
    options("np.cumprod", dtype)
    if axis is None:  # the cumulative product of the flattened array
        if ndim(a) != 1:
            a = np.ravel(a)
        axis = 0
    else:
        axis = normalize_axis_index(axis, ndim(a))
    return bind(cumprod, (a,), {"axis": axis}, out)


# --------------------------------------------------------------------------
# var and std: numpy's two-pass algorithm, written with mean, subtract,
# multiply and sum

def _var(fname, a, axis, dtype, out, ddof, keepdims, where, mean, correction):
    if dtype is not None and not (np.dtype(dtype) == np.float32 and float_dtype(a) == np.float64):
        # a float32 a in float64 is numpy's var of a widened a (a float64 a in
        # float32 is not a cast of a: numpy subtracts a float32 mean from it)
        a, dtype = in_dtype(a, dtype)
    options(fname, dtype, where=where)
    _no_out(fname, out)
    if mean is not NOVALUE:
        raise NotImplementedError(f"shadowad: {fname}(..., mean=...) is not supported on traced "
                                  "values; leave it out (the mean is computed again)")
    if correction is not NOVALUE:
        if ddof != 0:
            raise ValueError("ddof and correction can't be provided simultaneously.")
        ddof = correction
    keepdims = False if keepdims is NOVALUE else bool(keepdims)
    axes = _axes(a, axis)
    d = a - np.mean(a, axis=axes, keepdims=True)
    n = max(_count(a, axes) - ddof, 0)
    r = np.sum(d * d, axis=axes, keepdims=keepdims) / n
    if float_dtype(a) == np.float32 and float_dtype(r) == np.float64:
        r = r.astype(np.float32)  # an np.float64 ddof: numpy divides in float64 into a float32 out
    return r, n


@implements(np.var)
def var_entry(bind, a, axis=None, dtype=None, out=None, ddof=0, keepdims=NOVALUE, *,
              where=NOVALUE, mean=NOVALUE, correction=NOVALUE):
    return _var("np.var", a, axis, dtype, out, ddof, keepdims, where, mean, correction)[0]


@implements(np.std)
def std_entry(bind, a, axis=None, dtype=None, out=None, ddof=0, keepdims=NOVALUE, *,
              where=NOVALUE, mean=NOVALUE, correction=NOVALUE):
    # at a constant input sqrt's infinite partial meets deviations of 0:
    # the zero-factor rule gives 0 (JAX gives NaN there)
    return np.sqrt(_var("np.std", a, axis, dtype, out, ddof, keepdims, where, mean,
                        correction)[0])


# --------------------------------------------------------------------------
# average: a weighted mean, with respect to the data and the weights

@implements(np.average)
def average_entry(bind, a, axis=None, weights=None, returned=False, *, keepdims=NOVALUE):
    keepdims = False if keepdims is NOVALUE else bool(keepdims)
    if axis is not None:
        axis = normalize_axis_tuple(axis, ndim(a))
    if weights is None:
        avg = np.mean(a, axis=axis, keepdims=keepdims)
        if not returned:
            return avg
        # numpy's count: a.size / avg.size, spread over avg's shape
        scl = float_dtype(avg).type(int(np.prod(shape_of(a))) / int(np.prod(shape_of(avg))))
        return avg, (np.full(shape_of(avg), scl) if shape_of(avg) else scl)
    wshape, ashape = shape_of(weights), shape_of(a)
    if wshape != ashape:
        if axis is None:
            raise TypeError("Axis must be specified when shapes of a and weights differ.")
        axes = axis
        if wshape != tuple(ashape[d] for d in axes):
            raise ValueError("Shape of weights must be consistent with shape of a along "
                             "specified axis.")
        # weights along the axes, broadcast as numpy does (its axes kept in order)
        order = sorted(range(len(axes)), key=lambda i: axes[i])
        if order != list(range(len(axes))):
            weights = np.transpose(weights, order)
        weights = np.reshape(weights, tuple(n if d in axes else 1
                                            for d, n in enumerate(ashape)))
    scl = np.sum(weights, axis=axis, keepdims=keepdims)
    if np.any(plain(scl) == 0.0):
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    avg = np.sum(a * weights, axis=axis, keepdims=keepdims) / scl
    if returned:
        if shape_of(scl) != shape_of(avg):
            scl = np.broadcast_to(scl, shape_of(avg)) + 0.0  # numpy's copy
        return avg, scl
    return avg


# --------------------------------------------------------------------------
# median, quantile, percentile: entries of the sorted data (numpy's linear
# interpolation between two of them), gathered by the plain argsort
# permutation, so the derivative follows the permutation

def _grouped(a, axis):
    """(x, axes, kept shape): a with the reduced axes last, as a (m, n) array."""
    axes = _axes(a, axis)
    shape = shape_of(a)
    keep = [d for d in range(len(shape)) if d not in axes]
    kshape = tuple(shape[d] for d in keep)
    perm = tuple(keep) + axes
    x = a if perm == tuple(range(len(shape))) else np.transpose(a, perm)
    m = 1
    for n in kshape:
        m *= n
    return np.reshape(x, (m, _count(a, axes))), axes, kshape


def _result_shape(shape, axes, kshape, keepdims):
    if keepdims:
        return tuple(1 if d in axes else n for d, n in enumerate(shape))
    return kshape


def _order(x):
    """The plain argsort permutation of each row (NaNs last), and the sorted
    position of the first NaN in each row (n where there is none)."""
    p = np.asarray(plain(x))
    order = np.argsort(p, axis=-1, kind="stable")
    first_nan = p.shape[-1] - np.isnan(p).sum(axis=-1)
    return order, first_nan


def _pick(x, order, positions, first_nan):
    """Row r's entry at sorted position positions[r]; a row holding a NaN
    gives its first NaN instead (numpy's result there is NaN: the NaN takes
    the derivative, as it does for max)."""
    rows = np.arange(shape_of(x)[0])
    has_nan = first_nan < shape_of(x)[-1]
    pos = np.where(has_nan, first_nan, positions)
    return x[rows, order[rows, pos]]


@implements(np.median)
def median_entry(bind, a, axis=None, out=None, overwrite_input=False, keepdims=False):
    _no_out("np.median", out)
    x, axes, kshape = _grouped(a, axis)
    m, n = shape_of(x)
    shape = _result_shape(shape_of(a), axes, kshape, keepdims)
    if n == 0 or m == 0:  # numpy's mean of nothing: NaN (with its warning)
        return np.reshape(np.mean(x, axis=-1), shape)
    order, first_nan = _order(x)
    lo = _pick(x, order, np.full(m, (n - 1) // 2), first_nan)
    if n % 2:
        r = lo
    else:  # numpy's mean of the two middle entries
        r = (lo + _pick(x, order, np.full(m, n // 2), first_nan)) / 2.0
    return np.reshape(r, shape)


def _quantile(fname, a, q, axis, out, method, keepdims, weights, interpolation, weak):
    """``weak``: q was a Python number, whose interpolation weight numpy
    applies as a Python float (a float32 a gives a float32 result)."""
    _no_out(fname, out)
    if plain(q) is not q:
        raise TypeError(f"shadowad: {fname} with a traced q: its derivative with respect to "
                        "q is not supported; pass the plain value sad.primal(q)")
    if interpolation is not None:
        raise TypeError(f"shadowad: {fname}(..., interpolation=...) is deprecated in numpy; "
                        "pass method='linear'")
    if method != "linear":
        raise NotImplementedError(f"shadowad: {fname}(..., method={method!r}) has no "
                                  "derivative rule; only method='linear' (the default) is "
                                  "supported on traced values")
    if weights is not None:
        raise NotImplementedError(f"shadowad: {fname}(..., weights=...) is not supported on "
                                  "traced values")
    x, axes, kshape = _grouped(a, axis)
    m, n = shape_of(x)
    qa = np.asarray(q)  # a float32 q computes (and gives) float32, as numpy's
    qa = qa if qa.dtype == np.float32 else qa.astype(np.float64)
    if n == 0:
        np.quantile(np.zeros(shape_of(a)), qa, axis=axis)  # numpy's own error
    shape = _result_shape(shape_of(a), axes, kshape, keepdims)
    order, first_nan = _order(x)
    results = []
    for qk in qa.ravel():
        # numpy's virtual index, neighbours and gamma (_get_indexes, _get_gamma)
        v = (n - 1) * qk
        below = np.floor(v)
        above = below + 1
        if v >= n - 1:
            below = above = -1.0
        t = float(v - below) if weak else v - below
        lo = _pick(x, order, np.full(m, int(below) % n), first_nan)
        hi = _pick(x, order, np.full(m, int(above) % n), first_nan)
        diff = hi - lo
        # numpy's _lerp: from the nearer end
        r = hi - diff * (1.0 - t) if t >= 0.5 else lo + diff * t
        results.append(np.reshape(r, shape))
    if qa.ndim == 0:
        return results[0]
    return np.reshape(np.stack(results), qa.shape + shape)


@implements(np.quantile)
def quantile_entry(bind, a, q, axis=None, out=None, overwrite_input=False, method="linear",
                   keepdims=False, *, weights=None, interpolation=None):
    qa = np.asarray(plain(q), dtype=np.float64)
    if not (np.all(qa >= 0) and np.all(qa <= 1)):
        raise ValueError("Quantiles must be in the range [0, 1]")
    return _quantile("np.quantile", a, q, axis, out, method, keepdims, weights, interpolation,
                     type(q) is int or type(q) is float)


@implements(np.percentile)
def percentile_entry(bind, a, q, axis=None, out=None, overwrite_input=False, method="linear",
                     keepdims=False, *, weights=None, interpolation=None):
    if plain(q) is not q:
        return _quantile("np.percentile", a, q, axis, out, method, keepdims, weights,
                         interpolation, False)
    qa = np.true_divide(np.asarray(q, dtype=np.float64), 100)  # numpy's q / 100
    if not (np.all(qa >= 0) and np.all(qa <= 1)):
        raise ValueError("Percentiles must be in the range [0, 100]")
    return _quantile("np.percentile", a, qa if qa.ndim else float(qa), axis, out, method,
                     keepdims, weights, interpolation, type(q) is int or type(q) is float)


# --------------------------------------------------------------------------
# nansum, nanmean: the NaN entries replaced by zero (np.where with a plain
# mask, so they get a zero derivative), as numpy replaces them

def _without_nans(a):
    mask = np.isnan(plain(a))
    return (np.where(mask, 0.0, a) if np.any(mask) else a), mask


@implements(np.nansum)
def nansum_entry(bind, a, axis=None, dtype=None, out=None, keepdims=NOVALUE,
                 initial=NOVALUE, where=NOVALUE):
    a, dtype = in_dtype(a, dtype)
    options("np.nansum", dtype, initial, where)
    _no_out("np.nansum", out)
    return np.sum(_without_nans(a)[0], axis=axis,
                  keepdims=False if keepdims is NOVALUE else keepdims)


@implements(np.nanmean)
def nanmean_entry(bind, a, axis=None, dtype=None, out=None, keepdims=NOVALUE, *,
                  where=NOVALUE):
    a, dtype = in_dtype(a, dtype)
    options("np.nanmean", dtype, where=where)
    _no_out("np.nanmean", out)
    keepdims = False if keepdims is NOVALUE else keepdims
    x, mask = _without_nans(a)
    if x is a:  # numpy's nanmean of an array without NaN is its mean
        return np.mean(a, axis=axis, keepdims=keepdims)
    cnt = np.sum(~mask, axis=axis, dtype=np.intp, keepdims=keepdims)
    if np.any(cnt == 0):
        warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=3)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(x, axis=axis, keepdims=keepdims) / cnt.astype(float_dtype(x))


# --------------------------------------------------------------------------
# ptp, diff

@implements(np.ptp)
def ptp_entry(bind, a, axis=None, out=None, keepdims=NOVALUE):
    _no_out("np.ptp", out)
    keepdims = False if keepdims is NOVALUE else keepdims
    return np.max(a, axis=axis, keepdims=keepdims) - np.min(a, axis=axis, keepdims=keepdims)


def _edge(v, shape, axis):
    """prepend/append as numpy takes them: a scalar broadcast to one slice."""
    if ndim(v) == 0:
        s = list(shape)
        s[axis] = 1
        return np.broadcast_to(v, tuple(s))
    return v


@implements(np.diff)
def diff_entry(bind, a, n=1, axis=-1, prepend=NOVALUE, append=NOVALUE):
    if n == 0:
        return a
    if n < 0:
        raise ValueError("order must be non-negative but got " + repr(n))
    nd = ndim(a)
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    axis = normalize_axis_index(axis, nd)
    parts = []
    if prepend is not NOVALUE:
        parts.append(_edge(prepend, shape_of(a), axis))
    parts.append(a)
    if append is not NOVALUE:
        parts.append(_edge(append, shape_of(a), axis))
    if len(parts) > 1:
        a = np.concatenate(parts, axis=axis)
    lead = (slice(None),) * axis
    for _ in range(n):
        a = a[lead + (slice(1, None),)] - a[lead + (slice(None, -1),)]
    return a
