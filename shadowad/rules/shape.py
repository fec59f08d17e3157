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

Each rule serves both modes (it dispatches on the types of its values).  In
forward mode a view needs no tangent work: the tangent memory of a Buffer is
laid out like the primal's bytes, so any view of the primal finds its tangent
lanes by offset.  Copies and combinations compute the tangents of all lanes
in one numpy call, along the leading lanes axis.
"""
import numpy as np

from .. import dual
from .._c import lib
from ..primitives.elementwise import clip_sources, where_sources
from ..snapshots import held
from ..tape import current_tape
from ..traced import (ARRAY_TYPES, F64, SCALAR_TYPES, TArray, TScalar, _num, detach_error,
                      is_traced, mixed_tapes_error, new_array, new_temporary, primal, shadow_of)
from .elementwise import _KPAIR, _operand, _record
from .adjoints import accumulate
from .reductions import forward_result
from .registry import implements_both

_NOVALUE = object()


def _tape_of(items):
    """The tape, or forward-mode Context, of the traced items."""
    tape = None
    for x in items:
        t = type(x)
        if t is TArray or t is dual.FArray:
            tp = x.buf.tape
        elif t is TScalar:
            tp = x.tape
        elif t is dual.FScalar:  # a dual scalar does not know its Context
            tp = current_tape()
        else:
            continue
        if tape is None:
            tape = tp
        elif tp is not tape:
            raise mixed_tapes_error()
    return tape


def _is_active(x):
    t = type(x)
    return t in SCALAR_TYPES or (t in ARRAY_TYPES and shadow_of(x) is not None)


def _new(tape, z, active):
    """A fresh traced array of the mode of ``tape``."""
    if type(tape) is dual.Context:
        return dual.new_array(tape, z, active)
    return new_array(tape, z, active)


def _lanes(x, shape, lanes):
    """The tangent lanes of x reshaped to (lanes,) + shape (x's own shape with
    axes added or split); zeros when x is inactive."""
    t = type(x)
    if t is dual.FScalar:
        return np.broadcast_to(x.d, (lanes,)).reshape((lanes,) + shape)
    s = shadow_of(x) if t is dual.FArray else None
    if s is None:
        return np.broadcast_to(0.0, (lanes,) + shape)
    return s.reshape((lanes,) + shape)


def _broadcast_lanes(ctx, z, *xs):
    """The tangent lanes of each of xs, shaped to broadcast against
    (lanes,) + z.shape (leading 1s added to x's shape, as numpy pads it)."""
    out = []
    for x in xs:
        shape = np.shape(primal(x))
        out.append(_lanes(x, (1,) * (z.ndim - len(shape)) + shape, ctx.lanes))
    return out


def _f64(z, name):
    z = np.asarray(z)
    if z.dtype != F64:
        if z.dtype.kind not in "biuf":
            raise TypeError(f"shadowad: {name} of traced values gives dtype {z.dtype}; "
                            "traced arrays are float64")
        z = z.astype(F64)
    return z


def _scalarlike(v):
    return type(v) in SCALAR_TYPES or _num(v) is not None


def _check_dtype(name, dtype):
    if dtype is not None and np.dtype(dtype) != F64:
        raise detach_error(f"{name}(..., dtype={np.dtype(dtype)}) of traced values")


def _deliver(name, res, out):
    """Return res, or copy it into ``out`` (a recorded write, or in forward
    mode a write of the tangent lanes too) and return out."""
    if out is None:
        return res
    if type(out) in ARRAY_TYPES:
        out[...] = res
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
    return new_temporary(tape, z, np.zeros_like(z))


def _copy(a, order="C"):
    """A differentiable copy of traced ``a`` (a scalar gives a 0-d array): one
    C COPY record, or in forward mode a copy of the tangent lanes."""
    t = type(a)
    if t is TScalar:
        tape = a.tape
        res = _fresh(tape, np.empty(()))
        _record(tape, lib.SAD_COPY, [(_KPAIR, a.g, True, a.v)], res.p, res._s,
                lib.SAD_F_PRIMAL | lib.SAD_F_FRESH)
        return res
    if t is dual.FScalar:
        ctx = current_tape()
        return forward_result(ctx, np.array(a.v), np.broadcast_to(a.d, (ctx.lanes,)))
    tape = a.buf.tape
    s = shadow_of(a)
    if s is None or t is dual.FArray:  # constant now, or forward mode: numpy copies
        z = np.empty_like(a.p, order=order)
        z[...] = a.p
        return _new(tape, z, False) if s is None else forward_result(tape, z, s)
    res = _fresh(tape, a.p, order)
    _record(tape, lib.SAD_COPY, [_operand(a, tape)], res.p, res._s,
            lib.SAD_F_PRIMAL | lib.SAD_F_FRESH)
    return res


@implements_both(np.copy, elementwise=True)
def copy(a, order="K", subok=False):
    if not is_traced(a):
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
    res = _new(tape, z, False)
    if is_traced(fill):
        res[...] = fill  # promotes the new buffer: its values carry a derivative
    elif fill is not None:
        z[...] = fill
    return res


@implements_both(np.zeros_like, elementwise=True)
def zeros_like(a, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return _like("np.zeros_like", a, 0.0, dtype, order, shape, kwargs)


@implements_both(np.ones_like, elementwise=True)
def ones_like(a, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return _like("np.ones_like", a, 1.0, dtype, order, shape, kwargs)


@implements_both(np.empty_like, elementwise=True)
def empty_like(prototype, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return _like("np.empty_like", prototype, None, dtype, order, shape, kwargs)


@implements_both(np.full_like, elementwise=True)
def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, **kwargs):
    return _like("np.full_like", a, fill_value, dtype, order, shape, kwargs)


# --------------------------------------------------------------------------
# views

def _as_array(a):
    """A traced scalar becomes a 0-d array (a copy); arrays pass through."""
    return _copy(a) if type(a) in SCALAR_TYPES else a


def _writable(v):
    # numpy marks diagonal and broadcast views read-only; the primal view stays
    # so, but adjoints must be accumulated through the shadow view.
    if not v.flags.writeable:
        v.flags.writeable = True
    return v


def _view(a, fn, readonly=False):
    """The view fn(a) of traced array ``a``, sharing its Buffer.  In forward
    mode the tangent view is found by offset when first needed."""
    p = fn(a.p)
    if type(a) is dual.FArray:
        return dual.FArray(p, None, a.buf)
    if a._s is None and a.buf.slot is not None and not readonly:
        return TArray(p, None, a.buf)  # a lazy shadow: the view's is found by offset
    s = shadow_of(a)
    if s is not None:
        s = fn(s)
        if readonly:
            s = _writable(s)
    return TArray(p, s, a.buf)


def _view_rule(fn, readonly=False):
    def rule(a, *args, **kwargs):
        if not is_traced(a):
            return fn(a, *args, **kwargs)
        return _view(_as_array(a), lambda v: fn(v, *args, **kwargs), readonly)
    rule.__name__ = fn.__name__
    return rule


for _fn in (np.transpose, np.swapaxes, np.moveaxis, np.squeeze, np.expand_dims, np.flip):
    implements_both(_fn)(_view_rule(_fn))
implements_both(np.diagonal)(_view_rule(np.diagonal, readonly=True))
implements_both(np.broadcast_to)(_view_rule(np.broadcast_to, readonly=True))


def _shares(v, base):
    return v.size == 0 or np.may_share_memory(v, base)


def _reshaped(name, a, fn, order, copy=None):
    """fn(a) for a reshape-like fn reading in ``order``: a view of primal and
    shadow when numpy views the primal, else fn of a differentiable copy made
    in that order (which fn views).  In forward mode the copy's tangent lanes
    are laid out like its primal, so fn views them alike too."""
    if not copy:
        p = fn(a.p)
        if _shares(p, a.p):
            if a._s is None and a.buf.slot is not None:  # lazy: laid out as the primal
                return TArray(p, None, a.buf)
            s = shadow_of(a)
            if s is None or type(a) is dual.FArray:
                return type(a)(p, None, a.buf)
            sv = fn(s)
            if not _shares(sv, s):
                raise ValueError(f"shadowad: {name} of {a.buf.label} views its primal but "
                                 "would copy its shadow, whose memory layout differs; pass "
                                 "a shadow with the primal's layout (np.zeros_like(x))")
            return TArray(p, sv, a.buf)
        if copy is False:
            raise ValueError("Unable to avoid creating a copy while reshaping.")
    return _view(_copy(a, order), fn)


@implements_both(np.reshape)
def reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if shape is None:
        shape = newshape
    if not is_traced(a):
        return np.reshape(a, shape, order=order, copy=copy)
    return _reshaped("np.reshape", _as_array(a),
                     lambda v: np.reshape(v, shape, order=order), order, copy)


@implements_both(np.ravel)
def ravel(a, order="C"):
    if not is_traced(a):
        return np.ravel(a, order=order)
    return _reshaped("np.ravel", _as_array(a), lambda v: np.ravel(v, order), order)


def _atleast(fn, arys):
    res = []
    for a in arys:
        if is_traced(a):
            a = _as_array(a)
            if fn(a.p) is not a.p:
                a = _view(a, fn)
            res.append(a)
        else:
            res.append(fn(a))
    return res[0] if len(res) == 1 else tuple(res)


@implements_both(np.atleast_1d)
def atleast_1d(*arys):
    return _atleast(np.atleast_1d, arys)


@implements_both(np.atleast_2d)
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
        return _deliver(name, _new(tape, z, False), out)
    ax = axis % z.ndim
    if type(tape) is dual.Context:
        return _deliver(name, _join_lanes(tape, z, np.concatenate, items, shapes, ax), out)
    res = new_array(tape, z, True)
    zs = res._s
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


def _join_lanes(ctx, z, join, items, shapes, ax):
    """Forward mode: the tangent lanes of z = join(items) (np.concatenate or
    np.stack of the items reshaped to ``shapes`` along ax) are the same join of
    the items' lanes along ax + 1."""
    res = dual.new_array(ctx, z, True)
    join([_lanes(x, sh, ctx.lanes) for x, sh in zip(items, shapes)], axis=ax + 1, out=res._s)
    return res


def _items(name, arrays):
    if is_traced(arrays) or isinstance(arrays, np.ndarray):
        raise TypeError(f"shadowad: {name} takes a sequence of arrays")
    return list(arrays)


@implements_both(np.concatenate)
def concatenate(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    items = _items("np.concatenate", arrays)
    if axis is None:
        shapes = [(np.size(primal(x)),) for x in items]
        return _join("np.concatenate", items, shapes, 0, out, dtype)
    shapes = [np.shape(primal(x)) for x in items]
    if any(len(sh) == 0 for sh in shapes):
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    return _join("np.concatenate", items, shapes, axis, out, dtype)


@implements_both(np.hstack)
def hstack(tup, *, dtype=None, casting="same_kind"):
    items = _items("np.hstack", tup)
    shapes = [np.atleast_1d(primal(x)).shape for x in items]
    axis = 0 if shapes and len(shapes[0]) == 1 else 1
    return _join("np.hstack", items, shapes, axis, None, dtype)


@implements_both(np.vstack)
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


@implements_both(np.stack)
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
        return _deliver(name, _new(tape, z, False), out)
    ax = axis % z.ndim
    if type(tape) is dual.Context:
        shapes = [np.shape(primal(x)) for x in items]
        return _deliver(name, _join_lanes(tape, z, np.stack, items, shapes, ax), out)
    res = new_array(tape, z, True)
    zs = res._s
    pieces = [(items[k], (slice(None),) * ax + (k,)) for k in active]

    def pullback():
        for x, idx in pieces:
            accumulate(x, zs[idx])
    tape.record_py(pullback)
    return _deliver(name, res, out)


@implements_both(np.where, elementwise=True)
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
        return _new(tape, z, False)
    if type(tape) is dual.Context:
        return forward_result(tape, z, np.where(c, *_broadcast_lanes(tape, z, x, y)))
    res = new_array(tape, z, True)
    zs = res._s
    mask = np.array(c, dtype=bool)  # a copy: the caller may reuse its mask array

    def pullback():
        from_x, from_y = where_sources(mask)  # the partials table's convention
        if xa:
            accumulate(x, np.where(from_x, zs, 0.0))
        if ya:
            accumulate(y, np.where(from_y, zs, 0.0))
    tape.record_py(pullback)
    return res


def _held(tape, v):
    """v as a record that reads it at sweep time keeps it (snapshots.held);
    a list or tuple read as a new array of floats."""
    if type(v) is list or type(v) is tuple:
        p = np.array(v, dtype=F64)
    else:
        p = np.asarray(v) if isinstance(v, np.ndarray) else v
    return held(tape, v, p)


def _clip_scalar(a, lo, hi):
    lov, hiv = primal(lo), primal(hi)
    v = primal(a)
    if lov is not None and (v < lov or lov != lov):  # np.maximum propagates nan
        v, a = lov, lo
    if hiv is not None and (v > hiv or hiv != hiv):
        a = hi
    return float(a) if not is_traced(a) else a


@implements_both(np.clip, elementwise=True)
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
        return _deliver("np.clip", _new(tape, z, False), out)
    if type(tape) is dual.Context:
        from_lo, from_hi = clip_sources(primal(a), primal(lo), primal(hi))
        da, dlo, dhi = _broadcast_lanes(tape, z, a, lo, hi)
        dz = np.where(from_hi, dhi, np.where(from_lo, dlo, da))
        return _deliver("np.clip", forward_result(tape, z, dz), out)
    res = new_array(tape, z, True)
    zs = res._s
    a, lo, hi = (_held(tape, v) for v in (a, lo, hi))

    def pullback():
        from_lo, from_hi = clip_sources(primal(a), primal(lo), primal(hi))
        for v, role in act:
            if role == 0:
                g = np.where(np.logical_or(from_lo, from_hi), 0.0, zs)
            else:
                g = np.where(from_lo if role == 1 else from_hi, zs, 0.0)
            accumulate(v, g)
    tape.record_py(pullback)
    return _deliver("np.clip", res, out)
