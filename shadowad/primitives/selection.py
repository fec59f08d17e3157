"""The selects np.where and np.clip as primitives: each output entry is one
of the operands' entries, chosen by plain masks (the partials table's
``where_sources`` and ``clip_sources``, shadowad/primitives/elementwise.py,
which hold the conventions at ties, boundaries and NaNs).

The reverse and forward engines keep their own records for these two (C
records reading the primal inputs at sweep time, engines/rules/shape.py),
registered over the derived rules; the nested engine derives from these.
"""
import numpy as np

from .core import Primitive, implements
from .elementwise import clip_sources, where_sources
from .values import plain, shape_of, unbroadcast, zeros_for

__all__ = ["where", "clip"]


def _fit(t, shape):
    """Tangent ``t`` broadcast to the output's shape (a scalar operand's
    tangent beside an array one)."""
    if t is None or shape_of(t) == shape:
        return t
    return zeros_for(t, shape) + t


# --------------------------------------------------------------------------
# where: the condition is a static plain mask (comparisons of traced values
# give booleans)

def _where_jvp(ts, vals, out, params):
    ta, tb = (0.0 if t is None else t for t in ts)
    return _fit(np.where(params["cond"], ta, tb), shape_of(out))


def _where_vjp(k, g, vals, out, params):
    picked = np.where(where_sources(params["cond"])[k], g, 0.0)
    return unbroadcast(picked, shape_of(vals[k]))


where = Primitive("where", lambda a, b, cond: np.where(cond, a, b), _where_jvp, _where_vjp)


@implements(np.where)
def where_entry(bind, condition, x=None, y=None):
    if x is None and y is None:  # the indices of the true entries: no derivative
        return np.nonzero(plain(condition))
    if x is None or y is None:
        raise ValueError("either both or neither of x and y should be given")
    return bind(where, (x, y), {"cond": np.asarray(plain(condition), dtype=bool)}, None)


# --------------------------------------------------------------------------
# clip: operands (a, lo, hi) with an absent bound left out

def _operands(vals, p):
    """(a, lo, hi) from the operands (None: that bound is absent)."""
    vals = list(vals)
    a = vals.pop(0)
    lo = vals.pop(0) if p["lo"] else None
    hi = vals.pop(0) if p["hi"] else None
    return a, lo, hi


def _masks(vals, p):
    """One mask per operand: where the result comes from it."""
    a, lo, hi = _operands(vals, p)
    from_lo, from_hi = clip_sources(plain(a), None if lo is None else plain(lo),
                                    None if hi is None else plain(hi))
    masks = [np.logical_not(np.logical_or(from_lo, from_hi))]
    if p["lo"]:
        masks.append(from_lo)
    if p["hi"]:
        masks.append(from_hi)
    return masks


def _clip_jvp(ts, vals, out, p):
    t = None
    for mask, tk in zip(_masks(vals, p), ts):
        if tk is not None:
            picked = np.where(mask, tk, 0.0)
            t = picked if t is None else t + picked
    return _fit(t, shape_of(out))


def _clip_vjp(k, g, vals, out, p):
    return unbroadcast(np.where(_masks(vals, p)[k], g, 0.0), shape_of(vals[k]))


clip = Primitive("clip", lambda *vals, lo, hi: np.clip(*_operands(vals, {"lo": lo, "hi": hi})),
                 _clip_jvp, _clip_vjp)

_NOVALUE = object()


@implements(np.clip)
def clip_entry(bind, a, a_min=_NOVALUE, a_max=_NOVALUE, out=None, *, min=_NOVALUE,
               max=_NOVALUE, **kwargs):
    for k, v in kwargs.items():
        if not (k == "dtype" and v is not None and np.dtype(v) == np.float64) and k not in (
                "casting", "order", "subok"):
            raise TypeError(f"shadowad: np.clip(..., {k}=...) is not supported on traced "
                            "values")
    lo = a_min if min is _NOVALUE else min
    hi = a_max if max is _NOVALUE else max
    lo = None if lo is _NOVALUE else lo
    hi = None if hi is _NOVALUE else hi
    operands = [a] + [v for v in (lo, hi) if v is not None]
    return bind(clip, tuple(operands), {"lo": lo is not None, "hi": hi is not None}, out)
