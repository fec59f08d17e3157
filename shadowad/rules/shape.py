"""Shape functions: views, copies, array creation and combinations.

* Views (reshape, transpose, diagonal, broadcast_to, ...) apply the same numpy
  function to the primal and to the shadow, and share the Buffer of their base:
  writes through a view reach the base, and adjoints accumulated into the view's
  shadow land in the base's shadow.  A broadcast view's shadow has stride 0, so
  accumulating through it sums over the broadcast axes (un-broadcasts).
* Copies are one C COPY record (the reverse adds the copy's adjoint back).
* ``*_like`` return inactive traced buffers: a later write of an active value
  promotes them, so ``out = np.zeros_like(x); out[i] = t`` keeps the gradient.
* Combinations (concatenate, stack, where, clip) are Python records whose
  pullbacks read their primal inputs from memory at sweep time.
"""
import numpy as np

from .._c import lib
from ..traced import (F64, Buffer, TArray, TScalar, _num, detach_error, is_traced,
                      mixed_tapes_error, new_array, primal, shadow_of)
from .elementwise import _KPAIR, _operand, _record
from .indexing import accumulate, setindex
from .registry import implements

_NOVALUE = object()


def _tape_of(items):
    tape = None
    for x in items:
        t = type(x)
        if t is TArray:
            tp = x.buf.tape
        elif t is TScalar:
            tp = x.tape
        else:
            continue
        if tape is None:
            tape = tp
        elif tp is not tape:
            raise mixed_tapes_error()
    return tape


def _is_active(x):
    t = type(x)
    return t is TScalar or (t is TArray and shadow_of(x) is not None)


def _f64(z, name):
    z = np.asarray(z)
    if z.dtype != F64:
        if z.dtype.kind not in "biuf":
            raise TypeError(f"shadowad: {name} of traced values gives dtype {z.dtype}; "
                            "traced arrays are float64")
        z = z.astype(F64)
    return z


def _scalarlike(v):
    return type(v) is TScalar or _num(v) is not None


def _check_dtype(name, dtype):
    if dtype is not None and np.dtype(dtype) != F64:
        raise detach_error(f"{name}(..., dtype={np.dtype(dtype)}) of traced values")


def _deliver(name, res, out):
    """Return res, or copy it into ``out`` (a recorded write) and return out."""
    if out is None:
        return res
    if type(out) is TArray:
        setindex(out, Ellipsis, res)
        return out
    if is_traced(res):
        raise detach_error(f"{name}(..., out=<plain ndarray>)")
    out[...] = primal(res)
    return out


# --------------------------------------------------------------------------
# copies

def _fresh(tape, like, order="C"):
    """An active temporary shaped like primal ``like`` whose shadow has the same
    memory layout, so later views of it (reshape, ravel) view both alike."""
    z = np.empty_like(like, dtype=F64, order=order)
    zs = np.zeros_like(z)
    return TArray(z, zs, Buffer(tape, z, zs))


def _copy(a, order="C"):
    """A differentiable copy of TArray or TScalar ``a``: one C COPY record."""
    if type(a) is TScalar:
        tape = a.tape
        res = _fresh(tape, np.empty(()))
        _record(tape, lib.SAD_COPY, [(_KPAIR, a.g, True, a.v)], res.p, res._s,
                lib.SAD_F_PRIMAL)
        return res
    tape = a.buf.tape
    if shadow_of(a) is None:  # constant now: a plain copy
        z = np.empty_like(a.p, order=order)
        z[...] = a.p
        return new_array(tape, z, False)
    res = _fresh(tape, a.p, order)
    _record(tape, lib.SAD_COPY, [_operand(a, tape)], res.p, res._s, lib.SAD_F_PRIMAL)
    return res


@implements(np.copy)
def copy(a, order="K", subok=False):
    if type(a) is not TArray and type(a) is not TScalar:
        return np.copy(a, order=order)
    return _copy(a, order)


def _like(name, a, fill, dtype, order, shape, kwargs):
    p = primal(a)
    if dtype is not None and np.dtype(dtype) != F64:
        if is_traced(fill):
            raise detach_error(f"{name}(..., dtype={np.dtype(dtype)}) with a traced fill value")
        if fill is None:
            return np.empty_like(p, dtype=dtype, order=order, shape=shape, **kwargs)
        return np.full_like(p, fill, dtype=dtype, order=order, shape=shape, **kwargs)
    z = np.empty_like(p, dtype=F64, order=order, shape=shape, **kwargs)
    tape = _tape_of([a, fill])
    res = new_array(tape, z, False)
    if is_traced(fill):
        res[...] = fill  # promotes the new buffer: its values carry a derivative
    elif fill is not None:
        z[...] = fill
    return res


@implements(np.zeros_like)
def zeros_like(a, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return _like("np.zeros_like", a, 0.0, dtype, order, shape, kwargs)


@implements(np.ones_like)
def ones_like(a, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return _like("np.ones_like", a, 1.0, dtype, order, shape, kwargs)


@implements(np.empty_like)
def empty_like(prototype, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return _like("np.empty_like", prototype, None, dtype, order, shape, kwargs)


@implements(np.full_like)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return _like("np.full_like", a, fill_value, dtype, order, shape, kwargs)


# --------------------------------------------------------------------------
# views

def _as_tarray(a):
    """A traced scalar becomes a 0-d array (a copy); arrays pass through."""
    return _copy(a) if type(a) is TScalar else a


def _writable(v):
    # numpy marks diagonal and broadcast views read-only; the primal view stays
    # so, but adjoints must be accumulated through the shadow view.
    if not v.flags.writeable:
        v.flags.writeable = True
    return v


def _view_rule(fn, readonly=False):
    def rule(a, *args, **kwargs):
        if type(a) is not TArray and type(a) is not TScalar:
            return fn(a, *args, **kwargs)
        a = _as_tarray(a)
        p = fn(a.p, *args, **kwargs)
        s = shadow_of(a)
        if s is not None:
            s = fn(s, *args, **kwargs)
            if readonly:
                s = _writable(s)
        return TArray(p, s, a.buf)
    rule.__name__ = fn.__name__
    return rule


for _fn in (np.transpose, np.swapaxes, np.moveaxis, np.squeeze, np.expand_dims, np.flip):
    implements(_fn)(_view_rule(_fn))
implements(np.diagonal)(_view_rule(np.diagonal, readonly=True))
implements(np.broadcast_to)(_view_rule(np.broadcast_to, readonly=True))


def _shares(v, base):
    return v.size == 0 or np.may_share_memory(v, base)


def _reshaped(name, a, fn, order, copy=None):
    """fn(a) for a reshape-like fn reading in ``order``: a view of primal and
    shadow when numpy views the primal, else fn of a differentiable copy made
    in that order (which fn views)."""
    if not copy:
        p = fn(a.p)
        if _shares(p, a.p):
            s = shadow_of(a)
            if s is None:
                return TArray(p, None, a.buf)
            sv = fn(s)
            if not _shares(sv, s):
                raise ValueError(f"shadowad: {name} of {a.buf.label} views its primal but "
                                 "would copy its shadow, whose memory layout differs; pass "
                                 "a shadow with the primal's layout (np.zeros_like(x))")
            return TArray(p, sv, a.buf)
        if copy is False:
            raise ValueError("Unable to avoid creating a copy while reshaping.")
    c = _copy(a, order)
    return TArray(fn(c.p), None if c._s is None else fn(c._s), c.buf)


@implements(np.reshape)
def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if shape is None:
        shape = newshape
    if type(a) is not TArray and type(a) is not TScalar:
        return np.reshape(a, shape, order=order, copy=copy)
    return _reshaped("np.reshape", _as_tarray(a),
                     lambda v: np.reshape(v, shape, order=order), order, copy)


@implements(np.ravel)
def ravel(a, order="C"):
    if type(a) is not TArray and type(a) is not TScalar:
        return np.ravel(a, order=order)
    return _reshaped("np.ravel", _as_tarray(a), lambda v: np.ravel(v, order), order)


def _atleast(fn, arys):
    res = []
    for a in arys:
        if type(a) is TScalar:
            a = _copy(a)
        if type(a) is TArray:
            p = fn(a.p)
            if p is not a.p:
                s = shadow_of(a)
                a = TArray(p, None if s is None else fn(s), a.buf)
            res.append(a)
        else:
            res.append(fn(a))
    return res[0] if len(res) == 1 else tuple(res)


@implements(np.atleast_1d)
def atleast_1d(*arys):
    return _atleast(np.atleast_1d, arys)


@implements(np.atleast_2d)
def atleast_2d(*arys):
    return _atleast(np.atleast_2d, arys)


# --------------------------------------------------------------------------
# combinations

def _join(name, items, shapes, axis, out, dtype):
    """Concatenate ``items`` (reshaped to ``shapes``) along ``axis``; the
    pullback hands each item its slice of the result's adjoint."""
    _check_dtype(name, dtype)
    tape = _tape_of(items + [out])
    prims = [np.reshape(primal(x), sh) for x, sh in zip(items, shapes)]
    z = _f64(np.concatenate(prims, axis=axis), name)
    active = {k for k, x in enumerate(items) if _is_active(x)}
    if not active:
        return _deliver(name, new_array(tape, z, False), out)
    res = new_array(tape, z, True)
    zs = res._s
    ax = axis % z.ndim
    pieces, off = [], 0
    for k, sh in enumerate(shapes):
        n = sh[ax]
        if k in active:
            x = items[k]
            idx = (slice(None),) * ax + (slice(off, off + n),)
            pieces.append((x, idx, np.shape(primal(x))))
        off += n

    def pullback():
        for x, idx, shape in pieces:
            accumulate(x, zs[idx].reshape(shape))
    tape.record_py(pullback)
    return _deliver(name, res, out)


def _items(name, arrays):
    if isinstance(arrays, (TArray, TScalar, np.ndarray)):
        raise TypeError(f"shadowad: {name} takes a sequence of arrays")
    return list(arrays)


@implements(np.concatenate)
def concatenate(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    items = _items("np.concatenate", arrays)
    if axis is None:
        shapes = [(np.size(primal(x)),) for x in items]
        return _join("np.concatenate", items, shapes, 0, out, dtype)
    shapes = [np.shape(primal(x)) for x in items]
    if any(len(sh) == 0 for sh in shapes):
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    return _join("np.concatenate", items, shapes, axis, out, dtype)


@implements(np.hstack)
def hstack(tup, *, dtype=None, casting="same_kind"):
    items = _items("np.hstack", tup)
    shapes = [np.atleast_1d(primal(x)).shape for x in items]
    axis = 0 if shapes and len(shapes[0]) == 1 else 1
    return _join("np.hstack", items, shapes, axis, None, dtype)


@implements(np.vstack)
def vstack(tup, *, dtype=None, casting="same_kind"):
    items = _items("np.vstack", tup)
    shapes = [np.atleast_2d(primal(x)).shape for x in items]
    return _join("np.vstack", items, shapes, 0, None, dtype)


def _stack_scalars(items):
    """np.stack of traced scalars and floats (the scalar loop's way to build a
    vector) in one pass; None when some item is anything else."""
    tape = None
    vals, pairs = [], []
    for k, x in enumerate(items):
        t = type(x)
        if t is TScalar:
            if tape is None:
                tape = x.tape
            elif x.tape is not tape:
                raise mixed_tapes_error()
            vals.append(x.v)
            pairs.append((k, x.g))
        elif t is float:
            vals.append(x)
        else:
            return None
    if tape is None:
        return None
    res = new_array(tape, np.array(vals, dtype=F64), True)
    zs = res._s
    add = lib.sad_pair_add

    def pullback():
        g = zs.tolist()
        for k, pair in pairs:
            add(pair, g[k])
    tape.record_py(pullback)
    return res


@implements(np.stack)
def stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """np.stack, also the way to build an array from traced scalars."""
    name = "np.stack"
    _check_dtype(name, dtype)
    items = _items(name, arrays)
    if out is None and (axis == 0 or axis == -1):
        res = _stack_scalars(items)
        if res is not None:
            return res
    tape = _tape_of(items + [out])
    z = _f64(np.stack([primal(x) for x in items], axis=axis), name)
    active = [k for k, x in enumerate(items) if _is_active(x)]
    if not active:
        return _deliver(name, new_array(tape, z, False), out)
    res = new_array(tape, z, True)
    zs = res._s
    ax = axis % z.ndim
    pieces = [(items[k], (slice(None),) * ax + (k,)) for k in active]

    def pullback():
        for x, idx in pieces:
            accumulate(x, zs[idx])
    tape.record_py(pullback)
    return _deliver(name, res, out)


@implements(np.where)
def where(condition, x=_NOVALUE, y=_NOVALUE):
    if x is _NOVALUE and y is _NOVALUE:  # the indices of the true entries
        return np.nonzero(primal(condition))
    if x is _NOVALUE or y is _NOVALUE:
        raise ValueError("either both or neither of x and y should be given")
    c = primal(condition)
    if np.ndim(c) == 0 and _scalarlike(x) and _scalarlike(y):
        return x if c else y  # scalars: no record, the chosen value itself
    tape = _tape_of([condition, x, y])
    z = _f64(np.where(c, primal(x), primal(y)), "np.where")
    xa, ya = _is_active(x), _is_active(y)
    if not (xa or ya):
        return new_array(tape, z, False)
    res = new_array(tape, z, True)
    zs = res._s
    mask = np.array(c, dtype=bool)  # a copy: the caller may reuse its mask array

    def pullback():
        if xa:
            accumulate(x, np.where(mask, zs, 0.0))
        if ya:
            accumulate(y, np.where(mask, 0.0, zs))
    tape.record_py(pullback)
    return res


# np.clip(a, lo, hi) = minimum(maximum(a, lo), hi).  At the boundaries the
# gradient goes to ``a`` (a == lo or a == hi passes through, as torch.clamp
# does); it goes to lo where a < lo and to hi where maximum(a, lo) > hi (so to
# hi everywhere when lo > hi, where numpy's result is hi).

def _clip_sources(av, lov, hiv):
    """Masks (from_lo, from_hi) of the entries the result takes from lo, hi."""
    from_lo = False if lov is None else np.less(av, lov)
    m = av if lov is None else np.maximum(av, lov)
    from_hi = False if hiv is None else np.greater(m, hiv)
    return np.logical_and(from_lo, np.logical_not(from_hi)), from_hi


def _clip_scalar(a, lo, hi):
    lov, hiv = primal(lo), primal(hi)
    v = primal(a)
    if lov is not None and (v < lov or lov != lov):  # np.maximum propagates nan
        v, a = lov, lo
    if hiv is not None and (v > hiv or hiv != hiv):
        a = hi
    return float(a) if not is_traced(a) else a


@implements(np.clip)
def clip(a, a_min=_NOVALUE, a_max=_NOVALUE, out=None, *, min=_NOVALUE, max=_NOVALUE,
         **kwargs):
    for k, v in kwargs.items():
        if k == "dtype" and v is not None and np.dtype(v) == F64:
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
    tape = _tape_of([a, lo, hi, out])
    z = _f64(np.clip(primal(a), primal(lo), primal(hi)), "np.clip")
    act = [(v, r) for v, r in ((a, 0), (lo, 1), (hi, 2)) if v is not None and _is_active(v)]
    if not act:
        return _deliver("np.clip", new_array(tape, z, False), out)
    res = new_array(tape, z, True)
    zs = res._s

    def pullback():
        from_lo, from_hi = _clip_sources(primal(a), primal(lo), primal(hi))
        for v, role in act:
            if role == 0:
                g = np.where(np.logical_or(from_lo, from_hi), 0.0, zs)
            else:
                g = np.where(from_lo if role == 1 else from_hi, zs, 0.0)
            accumulate(v, g)
    tape.record_py(pullback)
    return _deliver("np.clip", res, out)
