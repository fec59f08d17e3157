"""Functions of 1-D sequences: np.polyval, np.interp and np.trapezoid as
compositions of existing primitives, np.correlate and np.convolve as one
bilinear primitive.

polyval and trapezoid run numpy's own Python algorithm on the traced
operands (the values are numpy's bit for bit).  interp is differentiated
with respect to the values ``fp`` and the query points ``x``; the knots
``xp`` are constant (a traced ``xp`` is refused).  Its value is numpy's
formula slope * (x - xp[j]) + fp[j] on the interval xp[j] <= x < xp[j+1],
so the derivative at a knot is the slope of the interval to its right (at
the last knot, of the interval to its left), as in JAX; outside [xp[0],
xp[-1]] the value is ``left``/``right`` (default fp[0]/fp[-1]) and the
derivative in x is 0.  correlate's tangent and adjoints are correlations
again, under the zero-factor convention term by term
(primitives/contractions.py).
"""
import numpy as np
from numpy.lib.array_utils import normalize_axis_index

from ..support.products import times
from .core import Primitive, defbilinear, implements
from .values import array_operand, ndim, plain, shape_of, zeros_for

__all__ = ["correlate", "polyval_entry", "interp_entry", "trapezoid_entry"]


def _traced(x):
    return plain(x) is not x


# --------------------------------------------------------------------------
# polyval: Horner's scheme, numpy's loop

@implements(np.polyval)
def polyval_entry(bind, p, x):
    p, x = array_operand(p), array_operand(x)
    if isinstance(x, np.poly1d) or isinstance(p, np.poly1d):
        raise TypeError("shadowad: np.polyval of traced values takes arrays, not np.poly1d; "
                        "pass the coefficients as an array")
    y = np.zeros_like(x) if _traced(x) else zeros_for(x, shape_of(x))  # x's float type
    for i in range(shape_of(p)[0]):
        y = y * x + p[i]
    return y


# --------------------------------------------------------------------------
# interp: the interval of each query point is found on plain values

def _interp_refuse(period, xp):
    if period is not None:
        raise NotImplementedError("shadowad: np.interp(..., period=...) of traced values is not "
                                  "supported; reduce x modulo the period first")
    if _traced(xp):
        raise TypeError("shadowad: np.interp differentiates with respect to x and fp; the knots "
                        "xp must be constant (pass sad.primal(xp) to use their value)")


@implements(np.interp)
def interp_entry(bind, x, xp, fp, left=None, right=None, period=None):
    x, xp, fp = array_operand(x), array_operand(xp), array_operand(fp)
    _interp_refuse(period, xp)
    xp = np.asarray(xp, dtype=np.float64)
    if xp.ndim != 1 or ndim(fp) != 1 or xp.shape[0] != shape_of(fp)[0]:
        raise ValueError("fp and xp are not of the same length.")
    n = xp.shape[0]
    if n == 0:
        raise ValueError("array of sample points is empty")
    px = np.asarray(plain(x), dtype=np.float64)
    first = fp[0] if left is None else left
    last = fp[n - 1] if right is None else right
    if n == 1:
        inside = fp[0] + 0.0 * x
    else:
        j = np.searchsorted(xp, px, side="right") - 1
        jc = np.clip(j, 0, n - 2)
        at_end = (j == n - 1) & (px == xp[n - 1])
        anchor = np.where(at_end, jc + 1, jc)  # the knot the formula starts from
        fj, fk = fp[jc], fp[jc + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = (fk - fj) / (xp[jc + 1] - xp[jc])
            res = slope * (x - xp[anchor]) + fp[anchor]
        # numpy's C: the knot's value at a knot where the slope is not
        # finite, and other forms where the formula gives NaN
        knot = (px == xp[anchor]) & ~np.isfinite(np.asarray(plain(slope)))
        retry = np.isnan(np.asarray(plain(res))) & ~knot
        if np.any(retry):
            with np.errstate(invalid="ignore"):
                other = slope * (x - xp[jc + 1]) + fk
            same = retry & np.isnan(np.asarray(plain(other))) & (
                np.asarray(plain(fj)) == np.asarray(plain(fk)))
            res = np.where(same, fj, np.where(retry, other, res))
        inside = np.where(knot, fp[anchor], res) if np.any(knot) else res
    below, above = px < xp[0], px > xp[n - 1]
    if np.any(below) or np.any(above):
        inside = np.where(below, first, np.where(above, last, inside))
    return inside


# --------------------------------------------------------------------------
# trapezoid: numpy's sum of interval widths times mean heights

def _trapezoid(bind, y, x=None, dx=1.0, axis=-1):
    y = array_operand(y)
    nd = ndim(y)
    axis = normalize_axis_index(axis, nd)
    hi = tuple(slice(1, None) if d == axis else slice(None) for d in range(nd))
    lo = tuple(slice(None, -1) if d == axis else slice(None) for d in range(nd))
    if x is None:
        d = dx
    else:
        x = array_operand(x)
        if ndim(x) == 1:
            d = x[1:] - x[:-1]
            shape = [1] * nd
            shape[axis] = shape_of(d)[0]
            d = np.reshape(d, shape)
        else:
            d = x[hi] - x[lo]
    return np.sum(d * (y[hi] + y[lo]) / 2.0, axis=axis)


if hasattr(np, "trapezoid"):
    trapezoid_entry = implements(np.trapezoid)(_trapezoid)
if hasattr(np, "trapz"):
    trapezoid_entry = implements(np.trapz)(_trapezoid)


# --------------------------------------------------------------------------
# correlate: z_full[k] = sum_n a[n + k - (M - 1)] v[n] (N = len a, M = len v),
# each mode a slice of it; convolve(a, v) = correlate(a, v[::-1]) with the
# longer operand first, as numpy does

def _mode_slice(na, nv, mode):
    """(start, length) of numpy's correlate mode in the full correlation."""
    if mode == "full":
        return 0, na + nv - 1
    if mode == "valid":
        return min(na, nv) - 1, abs(na - nv) + 1
    return ((nv - 1) // 2 if na >= nv else na // 2), max(na, nv)


def _correlate_terms(a, v, mode):
    na, nv = shape_of(a)[0], shape_of(v)[0]
    pad = np.zeros(nv - 1)
    apad = np.concatenate([pad, a, pad]) if nv > 1 else a
    k = np.arange(na + nv - 1)[:, None] + np.arange(nv)[None, :]
    full = np.sum(times(apad[k], np.reshape(v, (1, nv)), plain), axis=1)
    s, n = _mode_slice(na, nv, mode)
    return full[s:s + n]


def correlate_times(a, v, mode):
    """np.correlate on engine values under the zero-factor convention."""
    with np.errstate(invalid="ignore"):
        r = np.correlate(a, v, mode)
        nan = np.isnan(plain(r))
        if not np.any(nan):
            return r
        terms = _correlate_terms(a, v, mode)
    return np.where(nan, terms, r)


def _full_adjoint(g, na, nv, mode):
    """g of a mode's result placed in the full correlation's adjoint."""
    s, n = _mode_slice(na, nv, mode)
    total = na + nv - 1
    rest = total - s - n
    parts = ([np.zeros(s)] if s else []) + [g] + ([np.zeros(rest)] if rest else [])
    return np.concatenate(parts) if len(parts) > 1 else g


def _correlate_left(g, a, v, p):
    gf = _full_adjoint(g, shape_of(a)[0], shape_of(v)[0], p["mode"])
    return correlate_times(gf, v[::-1], "valid")


def _correlate_right(g, a, v, p):
    gf = _full_adjoint(g, shape_of(a)[0], shape_of(v)[0], p["mode"])
    return correlate_times(gf, a, "valid")[::-1]


correlate = defbilinear(Primitive("correlate", lambda a, v, mode: np.correlate(a, v, mode)),
                        _correlate_left, _correlate_right, product=correlate_times)


def _vectors(name, a, v, mode):
    a, v = array_operand(a), array_operand(v)
    if mode not in ("full", "same", "valid"):
        raise ValueError(f"{name}: mode must be 'full', 'same' or 'valid', not {mode!r}")
    if ndim(a) == 0:
        a = np.reshape(a, (1,))
    if ndim(v) == 0:
        v = np.reshape(v, (1,))
    if ndim(a) != 1 or ndim(v) != 1:
        raise ValueError(f"{name}: object too deep for desired array (1-D operands only)")
    if shape_of(a)[0] == 0 or shape_of(v)[0] == 0:
        raise ValueError(f"{name}: {'a' if shape_of(a)[0] == 0 else 'v'} cannot be empty")
    return a, v


@implements(np.correlate)
def correlate_entry(bind, a, v, mode="valid"):
    a, v = _vectors("np.correlate", a, v, mode)
    return bind(correlate, (a, v), {"mode": mode}, None)


@implements(np.convolve)
def convolve_entry(bind, a, v, mode="full"):
    a, v = _vectors("np.convolve", a, v, mode)
    if shape_of(v)[0] > shape_of(a)[0]:
        a, v = v, a
    return bind(correlate, (a, v[::-1]), {"mode": mode}, None)
