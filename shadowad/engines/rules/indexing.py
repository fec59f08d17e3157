"""Indexing in the reverse and forward engines.  The derivatives are defined
once in shadowad/primitives/indexing.py (``take``: a[idx] as a copy; ``put``:
a[idx] = v, a mutating primitive); here are the entries that route a traced
value's indexing to them, and their fast paths, each a registered
specialisation tested bit for bit against the generic derivation
(tests/test_primitives.py):

* reverse: an element read or write of an active array is one C record
  (shadowad/engines/reverse/traced.py's element loads, ``sad_store``); a basic index is a view, and
  a write into one a C copy record with the overwritten bytes saved; an
  advanced read adds the adjoint into the entries it read (no scatter into a
  zero array of the input's size); an advanced write saves only the entries
  it overwrites;
* forward: an element read gives a dual scalar; an advanced read or write
  indexes every tangent lane in one numpy call.
"""
import numpy as np

from ..forward import dual
from ..._c import fast, lib
from ...primitives import indexing as defs
from ...primitives.core import generic_only_active
from ..reverse.buffers import check_writable, promote, shadow_of
from ..reverse.errors import detach_error
from ..reverse.scalar import TScalar, real_value
from ..reverse.traced import TArray, is_basic_index, new_array
from ..reverse.untraced import F64
from ..reverse.values import primal, takes_generic
from ...support.overlap import numpy_sources
from ..reverse.snapshots import held
from . import elementwise, registry
from .adjoints import accumulate  # also imported from here by shadowad/engines/rules/reductions.py and shape.py
from .derived import forward_bind, reverse_bind
from .elementwise import ufunc_operand, record_ufunc


def _plain_index(idx):
    items = idx if type(idx) is tuple else (idx,)
    for i in items:
        if type(i) is TArray or type(i) is TScalar:
            raise detach_error("indexing with a traced value")
    return idx


def element_index(p, idx):
    """The normalised element index when idx names one element, else None."""
    if type(idx) is int or isinstance(idx, np.integer):
        if p.ndim != 1:
            return None
        idx = (idx,)
    elif not (type(idx) is tuple and len(idx) == p.ndim):  # () on a 0-d array
        return None
    out = []
    for d, i in enumerate(idx):
        if not (type(i) is int or isinstance(i, np.integer)):
            return None
        n = p.shape[d]
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"index {i} is out of bounds for axis {d} with size {n}")
        out.append(j)
    return out


def offset(strides, index):
    off = 0
    for i, st in zip(index, strides):
        off += i * st
    return off


def _held_index(tape, idx):
    """Advanced index idx as the record keeps it: the sweeps index with it
    again (the pullback, and the swaps of a write), and f may change an index
    array after using it, unseen.  Arrays become their snapshots
    (shadowad/engines/reverse/snapshots.py), lists of numbers arrays (numpy reads a list
    index so), other lists copies."""
    if type(idx) is tuple:
        return tuple(_held_item(tape, i) for i in idx)
    return _held_item(tape, idx)


def _held_item(tape, i):
    if type(i) is list:
        p = np.asarray(i)
        p = p if p.size and p.dtype.kind in "biu" else list(i)
    else:
        p = np.asarray(i) if isinstance(i, np.ndarray) else i
    return held(tape, i, p)


def gather(a, idx):
    """a[idx] with an advanced index: np.take's primitive."""
    idx = _plain_index(idx)
    if a._s is not None or a.buf.slot is not None or shadow_of(a) is not None:
        idx = _held_index(a.buf.tape, idx)  # the sweep indexes with it again
    return reverse_bind(defs.take, (a,), {"idx": idx})


@defs.take.specialise("reverse")
def take_reverse(tape, operands, prims, actives, params):
    """An advanced read of an active array: the pullback adds the result's
    adjoint into the entries read (the sum of a repeated entry's adjoints
    first, in order, as the generic scatter_add computes it)."""
    a, = operands
    idx = params["idx"]
    if actives[0] is None or element_index(prims[0], idx) is not None:
        return None
    s = shadow_of(a)
    if s is None or 0 in s.strides:  # a broadcast view's entries share adjoint memory
        return None
    z = np.array(prims[0][idx], dtype=F64)
    if z.ndim == 0:
        return None
    res = new_array(tape, z, True)
    zs = res._s
    if _names_entries_once(prims[0].shape, idx):
        def pullback():  # each entry once: a plain +=
            s[idx] += zs
        tape.record_py(pullback)
        return res
    flat = defs.positions(prims[0].shape, idx).reshape(-1)
    unique, inverse = np.unique(flat, return_inverse=True)
    if unique.size == flat.size:
        def pullback():
            s[idx] += zs
    else:
        where = np.unravel_index(unique, s.shape)
        inverse = inverse.reshape(-1)

        def pullback():  # repeated entries: every term added, in order
            sums = np.full(unique.size, -0.0)
            np.add.at(sums, inverse, zs.reshape(-1))
            s[where] += sums
    tape.record_py(pullback)
    return res


def _names_entries_once(shape, idx):
    """Does ``idx`` name each entry at most once?  Decided from the index
    alone (not the input's size) when its items are slices, integers and
    integer arrays, one per axis, or one boolean mask; False: not known."""
    items = idx if type(idx) is tuple else (idx,)
    if len(items) == 1 and type(items[0]) is np.ndarray and items[0].dtype == bool:
        return True
    if len(items) > len(shape):
        return False
    arrays, dims = [], []
    for d, i in enumerate(items):
        if type(i) is slice or type(i) is int or isinstance(i, np.integer):
            continue
        if type(i) is not np.ndarray or i.dtype.kind not in "iu":
            return False  # None, Ellipsis, masks beside other items, lists
        arrays.append(i)
        dims.append(d)
    if not arrays:
        return True
    try:
        arrays = np.broadcast_arrays(*arrays)
        flat = np.ravel_multi_index(tuple(a % shape[d] for a, d in zip(arrays, dims)),
                                    tuple(shape[d] for d in dims)).reshape(-1)
    except ValueError:
        return False
    return np.unique(flat).size == flat.size


def setindex(a, idx, value):
    """a[idx] = value, recorded so the reverse sweep restores the old value
    and moves the adjoint of the new one into value's shadow."""
    if type(a) is not TArray:
        if type(value) is TArray or type(value) is TScalar:
            raise detach_error("writing a traced value into an untraced numpy array")
        a[idx] = value
        return
    check_writable(a)
    idx = _plain_index(idx)
    tape = a.buf.tape
    if generic_only_active() or takes_generic((a, value)):
        return _put(a, idx, value, tape)
    el = element_index(a.p, idx)
    if el is not None:
        s = shadow_of(a)
        if type(value) is TScalar:
            if value.tape is not tape:
                from ..reverse.errors import mixed_tapes_error
                raise mixed_tapes_error()
            if s is None:
                s = promote(a)
            tape.check(fast.store_at(tape, a.p, s, offset(a.p.strides, el),
                                     offset(s.strides, el), value.g, value.v), "a store")
            return
        v = real_value(value)
        if v is not None:  # a constant; into inactive memory only the old value is kept
            tape.check(fast.store_at(tape, a.p, s, offset(a.p.strides, el),
                                     0 if s is None else offset(s.strides, el), 0, v), "a store")
            return
    if is_basic_index(idx):
        copy_into(basic_view(a, idx, el), value)
        return
    _put(a, idx, value, tape)


def _put(a, idx, value, tape):
    """a[idx] = value by the put primitive."""
    if type(value) is TArray:
        if value.buf.tape is not tape:
            from ..reverse.errors import mixed_tapes_error
            raise mixed_tapes_error()
        src = numpy_sources(a.p, idx, value.p)
        if src is not None:  # numpy does not buffer an overlapping source here
            value = gather(value, src)
    reverse_bind(defs.put, (a, value), {"idx": _held_index(tape, idx)})


def basic_view(a, idx, el=None):
    """The TArray view a[idx] for a basic index; an index naming one element
    gives a 0-d view (a[idx] would read the element)."""
    if el is not None:
        idx = tuple(el) + (Ellipsis,)
    s = shadow_of(a)
    return TArray(a.p[idx], None if s is None else s[idx], a.buf)


def _check_fits(shape, target):
    """numpy's error for writing a value of this shape into a view of target's."""
    try:
        if np.broadcast_shapes(shape, target) != target:
            raise ValueError
    except ValueError:
        raise ValueError(f"could not broadcast input array from shape {shape} "
                         f"into shape {target}") from None


def copy_into(view, value):
    """view[...] = value, the copy computed in C with the old bytes saved."""
    tape = view.buf.tape
    if type(value) is TArray:
        if value.buf.tape is not tape:
            from ..reverse.errors import mixed_tapes_error
            raise mixed_tapes_error()
    # the C copy is as-if-copied; where numpy is not, copy what numpy leaves
    src = numpy_sources(view.p, Ellipsis, primal(value))
    if src is not None:
        value = gather(value, src) if type(value) is TArray else value[src]
    o = ufunc_operand(value, tape)
    if o[0] == elementwise._KARR:
        _check_fits(o[1].shape, view.shape)
    zs = shadow_of(view)
    if zs is None and o[2] is not None:
        zs = promote(view)
    # zs None: inactive memory, the record only keeps the overwritten bytes
    record_ufunc(tape, lib.SAD_COPY, [o], view.p, zs, lib.SAD_F_SAVE | lib.SAD_F_PRIMAL)


@defs.put.specialise("reverse")
def put_reverse(tape, operands, prims, actives, params):
    """An advanced write: only the overwritten entries are saved, and the
    pullback moves their adjoint into the value's in place."""
    a, value = operands
    p, vp = prims
    idx = params["idx"]
    vactive = actives[1] is not None
    s = shadow_of(a)  # the engine gave a a shadow if value is active
    saved = [np.array(p[idx], dtype=F64)]
    p[idx] = vp
    last = defs.last_writes(p.shape, idx) if vactive else None

    def swap():
        cur = np.array(p[idx], dtype=F64)
        p[idx] = saved[0]
        saved[0] = cur

    def pullback():
        if s is None:  # inactive memory: the swap restored it, no adjoint moves
            return
        g = np.array(s[idx], dtype=F64)
        s[idx] = 0.0
        if vactive:
            if last is not None:
                g = np.where(last, g, 0.0)
            accumulate(value, g)
    tape.record_py(pullback, swap=swap, saved=saved, writes=(p, idx))
    return True


# --------------------------------------------------------------------------
# forward mode: the same index applied to the primal and to every tangent lane

def _lane_index(idx):
    """The index of the tangent lanes for primal index idx (a tuple with a
    leading full slice), or None when numpy would move the lanes axis: advanced
    indices separated by a slice put their dimensions first."""
    items = idx if type(idx) is tuple else (idx,)
    adv = [k for k, i in enumerate(items)
           if not (type(i) is slice or i is None or i is Ellipsis)]
    arrays = [k for k in adv if not (type(items[k]) is int or isinstance(items[k], np.integer))]
    if arrays and adv != list(range(adv[0], adv[-1] + 1)):
        return None
    return (slice(None),) + items


def forward_getitem(a, idx):
    """a[idx] of an FArray (the 1-D x[i] fast path is in FArray itself).  An
    element of a float32 array is the take primitive's 0-d float32 array (a
    dual scalar is float64)."""
    idx = _plain_index(idx)
    p = a.p
    el = element_index(p, idx)
    if el is not None and p.dtype is F64:
        registry.check_elementwise("indexing")
        v = p.item(*el)
        t = shadow_of(a)
        if t is None:
            return np.float64(v)  # numpy's scalar type (scalar.SCALAR_UFUNCS)
        d = t[(slice(None),) + tuple(el)]
        return dual.FScalar(v, float(d[0]) if d.shape[0] == 1 else d.copy(), a.buf.tape)
    registry.check_elementwise("indexing")
    if is_basic_index(idx) and el is None:
        return dual.FArray(p[idx], None, a.buf)
    return forward_bind(defs.take, (a,), {"idx": idx})


@defs.take.specialise("forward")
def take_forward(tangents, prims, z, params):
    """Every lane's a[idx] in one numpy call, unless numpy would move the
    lanes axis (advanced indices separated by a slice)."""
    tidx = _lane_index(params["idx"])
    if tidx is None:
        return None
    return np.array(tangents[0][tidx], dtype=F64)


def forward_setindex(a, idx, value):
    """a[idx] = value in forward mode: primal and tangent lanes written alike."""
    if type(a) is not dual.FArray:
        if dual.is_dual(value):
            raise detach_error("writing a traced value into an untraced numpy array")
        a[idx] = value
        return
    dual.writable(a)
    if idx is not Ellipsis:  # a[...] = v writes every element: still elementwise
        registry.check_elementwise("indexing")
    idx = _plain_index(idx)
    ctx = a.buf.tape
    p = a.p
    vt = None
    if type(value) is dual.FScalar:
        vp, vt = value.v, value.d
        if value.ctx is not ctx:
            from ..reverse.errors import mixed_tapes_error
            raise mixed_tapes_error()
    elif type(value) is dual.FArray:
        vp, vt = value.p, shadow_of(value)
        if value.buf.tape is not ctx:
            from ..reverse.errors import mixed_tapes_error
            raise mixed_tapes_error()
    elif type(value) is TArray or type(value) is TScalar:
        from ..reverse.errors import mixed_tapes_error
        raise mixed_tapes_error()
    else:
        vp = value
    t = shadow_of(a)
    if t is None and vt is not None:
        t = promote(a)
    el = element_index(p, idx)
    if el is not None:
        p[tuple(el)] = vp
        if t is not None:
            t[(slice(None),) + tuple(el)] = 0.0 if vt is None else vt
        return
    if is_basic_index(idx):
        view = dual.FArray(p[idx], None, a.buf)
        zt = shadow_of(view)
        _check_fits(np.shape(vp), view.shape)
        src = numpy_sources(view.p, Ellipsis, vp) if type(value) is dual.FArray else None
        if src is not None:  # the tangent kernel is as-if-copied; numpy is not here
            value = forward_getitem(value, src)
            vp = value.p
        if zt is None:
            pass
        elif takes_generic((view, value)):  # float32: numpy copies the lanes, in their dtype
            zt[...] = _value_lanes(value, vt, view.ndim)
        else:
            operand = elementwise.ufunc_forward_operand(value, ctx.lanes)
            elementwise.tangent_kernel(lib.SAD_COPY, view.p, zt, [operand])
        view.p[...] = vp
        return
    # advanced: the put primitive
    if type(value) is dual.FArray:
        src = numpy_sources(p, idx, vp)
        if src is not None:  # numpy does not buffer an overlapping source here
            value = forward_getitem(value, src)
    forward_bind(defs.put, (a, value), {"idx": idx})


def _value_lanes(value, vt, ndim):
    """The tangent lanes of a value written into a view of ``ndim`` axes,
    shaped to broadcast against the view's lanes (lanes axis first); 0.0 for
    a constant."""
    if type(value) is dual.FArray:
        vt = shadow_of(value)  # (the overlap copy above may have replaced value)
    if vt is None:
        return 0.0
    if type(vt) is not np.ndarray:  # a dual scalar's tangent of one lane
        return vt
    extra = ndim + 1 - vt.ndim
    return vt.reshape(vt.shape[:1] + (1,) * extra + vt.shape[1:]) if extra > 0 else vt


@defs.put.specialise("forward")
def put_forward(operands, prims, tangents, params):
    """numpy's assignment on the primal and on every tangent lane at once
    (per lane where numpy would move the lanes axis, or for a dual scalar's
    per-lane tangents)."""
    a, value = operands
    p, vp = prims
    ta, vt = tangents
    idx = params["idx"]
    t = ta if ta is not None else promote(a)
    p[idx] = vp
    tidx = _lane_index(idx)
    if type(value) is not dual.FScalar and tidx is not None:
        if vt is None:  # an inactive value's zero tangent
            t[tidx] = 0.0
            return True
        extra = np.ndim(p[idx]) + 1 - vt.ndim  # a value broadcast: its lanes axis kept first
        t[tidx] = vt.reshape(vt.shape[:1] + (1,) * extra + vt.shape[1:]) if extra > 0 else vt
        return True
    for lane in range(t.shape[0]):
        t[lane][idx] = 0.0 if vt is None else vt[lane]
    return True


@registry.implements_both(np.copyto, elementwise=True)
def copyto(dst, src, casting="same_kind", where=True):
    """np.copyto(dst, src) is dst[...] = src, so it takes setindex's rules in
    either mode; with a mask, the entries left alone keep their own values."""
    sdt = np.result_type(primal(src))
    ddt = primal(dst).dtype if isinstance(dst, (TArray, dual.FArray)) else F64
    if not np.can_cast(sdt, ddt, casting=casting):
        raise TypeError(f"Cannot cast array data from {sdt!r} to {ddt!r} according to the "
                        f"rule {casting!r}")
    if not isinstance(dst, (TArray, dual.FArray)):
        raise detach_error("np.copyto into an untraced numpy array")
    where = primal(where)
    if where is not True:
        src = np.where(where, src, dst)
    dst[...] = src
