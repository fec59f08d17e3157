"""Selection, each defined once: np.where(cond, x, y) and np.clip(a, lo, hi).

Both pick every entry of the result from one operand, so the tangent of an
entry is the picked operand's and the adjoint goes to the picked operand
alone (np.where of the adjoint and 0, never a product: a zero adjoint
contributes nothing).  Which operand is picked is decided on the plain
values (a comparison has no derivative): ``cond`` is a parameter, a copy
taken at the call, since the caller may reuse its mask array.
"""
import numpy as np

from .core import Primitive, implements
from .values import ndim, plain, shape_of, unbroadcast

__all__ = ["where", "clip"]

_NOVALUE = object()


def _fit(t, out):
    """Tangent ``t`` of the result's shape (a picked constant adds none)."""
    shape = shape_of(out)
    return t if shape_of(t) == shape else np.zeros(shape) + t


def _scalarlike(v):
    """A number or a traced scalar (not an array, not a 0-d array)."""
    return ndim(v) == 0 and not isinstance(plain(v), np.ndarray)


# --------------------------------------------------------------------------
# where

def _where_jvp(ts, vals, out, p):
    tx, ty = (0.0 if t is None else t for t in ts)
    return _fit(np.where(p["cond"], tx, ty), out)


def _where_vjp(k, g, vals, out, p):
    picked = np.where(p["cond"], g, 0.0) if k == 0 else np.where(p["cond"], 0.0, g)
    return unbroadcast(picked, shape_of(vals[k]))


where = Primitive("where", lambda x, y, cond: np.where(cond, x, y), _where_jvp, _where_vjp)


@implements(np.where)
def where_entry(bind, condition, x=_NOVALUE, y=_NOVALUE):
    if x is _NOVALUE and y is _NOVALUE:  # the indices of the true entries
        return np.nonzero(plain(condition))
    if x is _NOVALUE or y is _NOVALUE:
        raise ValueError("either both or neither of x and y should be given")
    c = plain(condition)
    if np.ndim(c) == 0 and _scalarlike(x) and _scalarlike(y):
        return x if c else y  # scalars: no record, the chosen value itself
    return bind(where, (x, y), {"cond": np.array(c, dtype=bool)}, None)


# --------------------------------------------------------------------------
# clip(a, lo, hi) = minimum(maximum(a, lo), hi).  At the boundaries the
# gradient goes to ``a`` (a == lo or a == hi passes through, as torch.clamp
# does); it goes to lo where a < lo and to hi where maximum(a, lo) > hi (so to
# hi everywhere when lo > hi, where numpy's result is hi).  The operands are a
# and the bounds that are given (``lo``, ``hi``: which).

def _bounds(vals, p):
    """(a, lo or None, hi or None) of a clip's operands."""
    rest = iter(vals[1:])
    return vals[0], next(rest) if p["lo"] else None, next(rest) if p["hi"] else None


def _clip_impl(a, *bounds, lo, hi):
    b = iter(bounds)
    return np.clip(a, next(b) if lo else None, next(b) if hi else None)


def clip_sources(a, lo, hi):
    """Masks (from_lo, from_hi) of the entries the result takes from lo, hi
    (plain values; a bound that is None is not given)."""
    with np.errstate(invalid="ignore"):
        from_lo = False if lo is None else np.less(a, lo)
        m = a if lo is None else np.maximum(a, lo)
        from_hi = False if hi is None else np.greater(m, hi)
    return np.logical_and(from_lo, np.logical_not(from_hi)), from_hi


def _sources(vals, p):
    a, lo, hi = (None if v is None else plain(v) for v in _bounds(vals, p))
    return clip_sources(a, lo, hi)


def _clip_jvp(ts, vals, out, p):
    from_lo, from_hi = _sources(vals, p)
    da, dlo, dhi = (0.0 if t is None else t for t in _bounds(ts, p))
    return _fit(np.where(from_hi, dhi, np.where(from_lo, dlo, da)), out)


def _clip_vjp(k, g, vals, out, p):
    from_lo, from_hi = _sources(vals, p)
    if k == 0:
        picked = np.where(np.logical_or(from_lo, from_hi), 0.0, g)
    else:
        role = "lo" if k == 1 and p["lo"] else "hi"
        picked = np.where(from_lo if role == "lo" else from_hi, g, 0.0)
    return unbroadcast(picked, shape_of(vals[k]))


clip = Primitive("clip", _clip_impl, _clip_jvp, _clip_vjp)


def _clip_scalar(a, lo, hi):
    """The clip of numbers and traced scalars: the chosen value itself."""
    lov = None if lo is None else plain(lo)
    hiv = None if hi is None else plain(hi)
    v = plain(a)
    if lov is not None and (v < lov or lov != lov):  # np.maximum propagates nan
        v, a = lov, lo
    if hiv is not None and (v > hiv or hiv != hiv):
        a = hi
    return float(a) if plain(a) is a else a


@implements(np.clip)
def clip_entry(bind, a, a_min=_NOVALUE, a_max=_NOVALUE, out=None, *, min=_NOVALUE,
               max=_NOVALUE, **kwargs):
    for k, v in kwargs.items():
        if k == "dtype" and v is not None and np.dtype(v) == np.float64:
            continue
        if k not in ("casting", "order", "subok"):
            raise TypeError(f"shadowad: np.clip(..., {k}=...) is not supported on traced "
                            "values")
    if a_min is not _NOVALUE and min is not _NOVALUE:
        raise TypeError("np.clip: pass a_min or min, not both")
    if a_max is not _NOVALUE and max is not _NOVALUE:
        raise TypeError("np.clip: pass a_max or max, not both")
    lo = None if a_min is _NOVALUE and min is _NOVALUE else (min if a_min is _NOVALUE else a_min)
    hi = None if a_max is _NOVALUE and max is _NOVALUE else (max if a_max is _NOVALUE else a_max)
    if out is None and all(_scalarlike(v) for v in (a, lo, hi) if v is not None):
        return _clip_scalar(a, lo, hi)
    operands = tuple(v for v in (a, lo, hi) if v is not None)
    return bind(clip, operands, {"lo": lo is not None, "hi": hi is not None}, out)
