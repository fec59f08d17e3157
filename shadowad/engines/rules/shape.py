"""The reverse and forward engines' side of the shape functions
(shadowad/primitives/shape.py defines them and their derivatives once); the
``*_like`` buffers, which are memory and have no derivative of their own; and
np.where and np.clip as these engines' own records (the primitives of
shadowad/primitives/selection.py, with the partials table's sources, are
what the nested engine derives from; these records replace the derived rules).

* Views.  In these two engines reshape, transpose, flip, diagonal and
  broadcast_to of a traced array bind no record: they return a view that
  shares its base's Buffer (primal and shadow, or tangent lanes), as numpy's
  views share memory.  This is the engines' memory model, not a shortcut
  for a derivative: a write through the view must reach the base, and an
  adjoint accumulated into the view's shadow lands in the base's (a broadcast
  view's shadow has stride 0, so accumulating through it sums over the
  broadcast axes).  So the view is registered on the primitive as ``"view"``,
  which shadowad/engines/rules/derived.py takes before anything else, also under
  ``generic_only``.  In forward mode the tangent memory of a Buffer is laid
  out like the primal's bytes, so a view finds its tangent lanes by offset.
* Where no view exists (a reshape that must copy, the shape of a traced
  scalar) the primitive is recorded; the ``"reverse"`` specialisation does it
  as one C COPY record (the copy's adjoint added back) and a view of the
  copy.  np.copy is that C record too, np.stack of traced scalars and floats
  one pass over them, and the forward tangents of concatenate and stack one
  numpy call over all lanes.  Each is tested bit for bit against the generic
  derivation (tests/test_shape_primitives.py).
* ``*_like`` return inactive traced buffers: a later write of an active value
  promotes them, so ``out = np.zeros_like(x); out[i] = t`` keeps the gradient.
* np.where and np.clip are Python records whose pullbacks read their primal
  inputs from memory at sweep time; in forward mode they select tangent lanes.
"""
import numpy as np

from ..forward import dual
from ..._c import lib
from ...primitives import shape as defs
from ...primitives.elementwise import clip_sources, where_sources
from ..reverse.snapshots import held
from ..reverse.tape import current_tape
from ..reverse.buffers import TEMPORARY, shadow_of
from ..reverse.errors import detach_error, mixed_tapes_error
from ..reverse.scalar import TScalar, real_value
from ..reverse.traced import TArray, new_array, new_temporary
from ..reverse.untraced import F32, F64
from ..reverse.values import ARRAY_TYPES, SCALAR_TYPES, is_traced, primal, takes_generic
from ...primitives import selection
from .derived import forward_bind, reverse_bind
from .elementwise import KPAIR, ufunc_operand, record_ufunc
from .adjoints import accumulate
from .reductions import forward_result
from .registry import ELEMENTWISE, implements_both

_NOVALUE = object()


def _bind_of(tape):
    """The binder of the primitives in the mode of ``tape``."""
    return forward_bind if type(tape) is dual.Context else reverse_bind


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


def _traced_dtype(z, name):
    """numpy's result z as a traced array holds it: float64 and float32 as
    they are (numpy's promotion chose), integers and booleans as float64."""
    z = np.asarray(z)
    if z.dtype != F64 and z.dtype != F32:
        if z.dtype.kind not in "biuf":
            raise TypeError(f"shadowad: {name} of traced values gives dtype {z.dtype}; "
                            "traced arrays are float64 or float32")
        z = z.astype(F64)
    return z


def _scalarlike(v):
    return type(v) in SCALAR_TYPES or real_value(v) is not None


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
# copies: one C COPY record

def _fresh(tape, like, order="C"):
    """An active temporary shaped like primal ``like`` whose shadow has the same
    memory layout, so later views of it (reshape, ravel) view both alike."""
    z = np.empty_like(like, dtype=F64, order=order)
    return new_temporary(tape, z, np.zeros_like(z))


def _copy(a, order="K"):
    """The differentiable copy of active ``a`` (a TArray or TScalar; a scalar
    gives a 0-d array) as one C COPY record."""
    if type(a) is TScalar:
        tape = a.tape
        res = _fresh(tape, np.empty(()))
        record_ufunc(tape, lib.SAD_COPY, [(KPAIR, a.g, True, a.v)], res.p, res._s,
                lib.SAD_F_PRIMAL | lib.SAD_F_FRESH)
        return res
    tape = a.buf.tape
    res = _fresh(tape, a.p, order)
    record_ufunc(tape, lib.SAD_COPY, [ufunc_operand(a, tape)], res.p, res._s,
            lib.SAD_F_PRIMAL | lib.SAD_F_FRESH)
    return res


ELEMENTWISE.add(np.copy)  # sad.fwddiff may copy: the identity is elementwise


@defs.copy.specialise("reverse")
def copy_record(tape, operands, prims, actives, params):
    return _copy(operands[0], params["order"])


def _like(name, a, fill, dtype, order, shape, kwargs):
    p = primal(a)
    own = getattr(p, "dtype", F64)
    dt = np.dtype(dtype) if dtype is not None else own if own == F32 else F64
    if dt != F64 and dt != F32:
        if is_traced(fill):
            raise detach_error(f"{name}(..., dtype={np.dtype(dtype)}) with a traced fill value")
        if fill is None:
            return np.empty_like(p, dtype=dtype, order=order, shape=shape, **kwargs)
        return np.full_like(p, fill, dtype=dtype, order=order, shape=shape, **kwargs)
    z = np.empty_like(p, dtype=dt, order=order, shape=shape, **kwargs)
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

def _writable(v):
    # numpy marks diagonal and broadcast views read-only; the primal view stays
    # so, but adjoints must be accumulated through the shadow view.
    if not v.flags.writeable:
        v.flags.writeable = True
    return v


def _view(a, fn, params, readonly=False):
    """The view fn(a, params) of traced array ``a``, sharing its Buffer.  In
    forward mode the tangent view is found by offset when first needed."""
    p = fn(a.p, params)
    if type(a) is dual.FArray:
        return dual.FArray(p, None, a.buf)
    if a._s is None and a.buf.slot is not None and not readonly:
        return TArray(p, None, a.buf)  # a lazy shadow: the view's is found by offset
    s = shadow_of(a)
    if s is not None:
        s = fn(s, params)
        if readonly:
            s = _writable(s)
    return TArray(p, s, a.buf)


def _shares(v, base):
    return v.size == 0 or np.may_share_memory(v, base)


def _reshaped(v, p):
    return v.reshape(p["shape"], order=p["order"])


def _reshape_view(a, params):
    """The reshape of ``a`` as a view of primal and shadow, when numpy views
    the primal; else None (the primitive is recorded: a copy)."""
    p = _reshaped(a.p, params)
    if not _shares(p, a.p):
        return None
    if a._s is None and a.buf.slot is not None:  # lazy: laid out as the primal
        return TArray(p, None, a.buf)
    s = shadow_of(a)
    if s is None or type(a) is dual.FArray:
        return type(a)(p, None, a.buf)
    sv = _reshaped(s, params)
    if not _shares(sv, s):
        if a.buf.label is TEMPORARY:
            # the engine laid this temporary's shadow out unlike its primal (an
            # elementwise result of a strided operand): no view of both exists.
            # The copy record, read-only, so that no write meant for the
            # temporary is lost silently.
            res = _view(_copy(a, params["order"]), _reshaped, params)
            res.p.flags.writeable = False
            return res
        raise ValueError(f"shadowad: np.reshape of {a.buf.label} views its primal but "
                         "would copy its shadow, whose memory layout differs; pass "
                         "a shadow with the primal's layout (np.zeros_like(x))")
    return TArray(p, sv, a.buf)


def _viewer(prim, fn, readonly=False):
    """Register prim's view (see the module's docstring) and, for operands it
    cannot view, its C record: a copy, viewed.  ``fn(v, params)`` is the
    primitive's value on an ndarray, by its ndarray method where there is one
    (numpy's function of the same name only calls it)."""
    is_reshape = prim is defs.reshape

    @prim.specialise("view")
    def view(a, params):
        t = type(a)
        if t is not TArray and t is not dual.FArray:
            return None  # a traced scalar: no memory to view
        if is_reshape:
            return _reshape_view(a, params)
        return _view(a, fn, params, readonly)

    @prim.specialise("reverse")
    def copied(tape, operands, prims, actives, params):
        order = params["order"] if is_reshape else "K"
        return _view(_copy(operands[0], order), fn, params, readonly)


_viewer(defs.reshape, _reshaped)
_viewer(defs.transpose, lambda v, p: v.transpose(p["axes"]))
_viewer(defs.flip, lambda v, p: np.flip(v, p["axes"]))
_viewer(defs.diagonal, lambda v, p: v.diagonal(p["offset"], p["axis1"], p["axis2"]),
        readonly=True)
_viewer(defs.broadcast_to, lambda v, p: np.broadcast_to(v, p["shape"]), readonly=True)


# --------------------------------------------------------------------------
# combinations

def _join_lanes(join):
    """Forward mode: the tangent lanes of a join (np.concatenate, np.stack)
    are the same join of the operands' lanes along the axis after the lanes."""
    def forward(tangents, prims, z, params):
        lanes = next(t for t in tangents if t is not None).shape[0]
        lanes_of = [np.broadcast_to(0.0, (lanes,) + p.shape) if t is None
                    else t.reshape((lanes,) + p.shape) for t, p in zip(tangents, prims)]
        dz = np.empty((lanes,) + z.shape)
        join(lanes_of, axis=params["axis"] + 1, out=dz)
        return dz
    return forward


defs.concatenate.specialise("forward")(_join_lanes(np.concatenate))
defs.stack.specialise("forward")(_join_lanes(np.stack))


@defs.stack.specialise("reverse")
def stack_scalars(tape, operands, prims, actives, params):
    """np.stack of traced scalars and floats (the scalar loop's way to build a
    vector) in one pass; None when some item is anything else."""
    vals, pairs = [], []
    for k, x in enumerate(operands):
        t = type(x)
        if t is TScalar:
            vals.append(x.v)
            pairs.append((k, x.g))
        elif t is float:
            vals.append(x)
        else:
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


# --------------------------------------------------------------------------
# where and clip

def _value(v):
    """The primal of v for numpy to combine: a traced scalar stands for an
    np.float64 (what indexing a float64 array gives), which numpy's promotion
    treats as strong, while its primal is a Python float, which numpy treats as
    weak (a float32 operand would round it to float32)."""
    p = primal(v)
    return np.float64(p) if type(p) is float and is_traced(v) else p


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
    if takes_generic((x, y)):  # float32: the primitive's rule, in numpy's dtype
        return selection.where_entry(_bind_of(tape), condition, x, y)
    z = _traced_dtype(np.where(c, _value(x), _value(y)), "np.where")
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
            if getattr(a, "dtype", None) == F32:  # numpy's clip in float64: of a widened a
                a = a.astype(F64)
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
    if takes_generic((a, lo, hi), out):  # float32: the primitive's rule, in numpy's dtype
        return selection.clip_entry(_bind_of(tape), a, lo, hi, out, **kwargs)
    z = _traced_dtype(np.clip(_value(a), _value(lo), _value(hi)), "np.clip")
    act = [(v, r) for v, r in ((a, 0), (lo, 1), (hi, 2)) if v is not None and _is_active(v)]
    if not act:
        return _deliver("np.clip", _new(tape, z, False), out)
    if type(tape) is dual.Context:
        from_lo, from_hi = clip_sources(_value(a), _value(lo), _value(hi))
        da, dlo, dhi = _broadcast_lanes(tape, z, a, lo, hi)
        dz = np.where(from_hi, dhi, np.where(from_lo, dlo, da))
        return _deliver("np.clip", forward_result(tape, z, dz), out)
    res = new_array(tape, z, True)
    zs = res._s
    a, lo, hi = (_held(tape, v) for v in (a, lo, hi))

    def pullback():
        from_lo, from_hi = clip_sources(_value(a), _value(lo), _value(hi))
        for v, role in act:
            if role == 0:
                g = np.where(np.logical_or(from_lo, from_hi), 0.0, zs)
            else:
                g = np.where(from_lo if role == 1 else from_hi, zs, 0.0)
            accumulate(v, g)
    tape.record_py(pullback)
    return _deliver("np.clip", res, out)
