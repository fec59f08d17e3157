"""Indexing: element reads and writes (scalar records in C), basic slices
(views, and a C copy record with the overwritten bytes saved), and advanced
indexing (Python records using numpy's gather/scatter)."""
import numpy as np

from .. import dual
from .._c import lib
from ..traced import (F64, TArray, TScalar, _basic_index, _num, adjoint_for_pullback,
                      adjoint_view, check_writable, detach_error, new_array, primal,
                      promote, shadow_of)
from ..overlap import numpy_sources
from ..snapshots import held
from . import elementwise, registry
from .elementwise import _operand, _record


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


def unbroadcast(g, shape):
    """Sum g over the axes that broadcasting to g.shape added to ``shape``."""
    if g.shape == tuple(shape) or g.ndim < len(shape):  # the latter broadcasts in +=
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(d for d, n in enumerate(shape) if n == 1 and g.shape[d] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


def _distinct(s, g):
    """The shadow of a broadcast view (stride 0) names each element many times,
    and numpy's ``s += g`` would keep one term of each sum: sum g over those
    axes and keep one index of s along them."""
    axes = tuple(d for d, (n, st) in enumerate(zip(s.shape, s.strides)) if st == 0 and n > 1)
    if not axes:
        return s, g
    g = np.broadcast_to(g, s.shape).sum(axis=axes, keepdims=True)
    return s[tuple(slice(0, 1) if d in axes else slice(None) for d in range(s.ndim))], g


def accumulate(dst, g):
    """dst (a TArray, TScalar or constant) += g, un-broadcast to its shape."""
    t = type(dst)
    if t is TArray:
        s, fresh = adjoint_for_pullback(dst)
        if s is not None:
            add_into(s, g, fresh)
    elif t is TScalar:
        adjoint_view(dst.g)[...] += np.sum(g)


def add_into(s, g, fresh=False):
    """Adjoint view s += g, un-broadcast to s's shape; ``fresh``: s is new
    memory (see traced.adjoint_for_pullback), stored into instead."""
    g = unbroadcast(g, s.shape)
    if fresh:
        np.add(0.0, g, out=s)  # as adding into +0.0 would: -0.0 becomes +0.0
        return
    if 0 in s.strides:
        s, g = _distinct(s, g)
    s += g


def _held_index(tape, idx):
    """Advanced index idx as the record keeps it: the sweeps index with it
    again (the pullback, and the swaps of a write), and f may change an index
    array after using it, unseen.  Arrays become their snapshots
    (shadowad/snapshots.py), lists of numbers arrays (numpy reads a list
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
    """a[idx] with advanced indexing: a copy."""
    idx = _plain_index(idx)
    tape = a.buf.tape
    z = np.array(a.p[idx], dtype=F64)
    s = shadow_of(a)
    if s is None:
        return new_array(tape, z, False) if z.ndim else float(z)
    if z.ndim == 0:
        z = np.asarray(z)
    res = new_array(tape, z, True)
    zs = res._s
    distinct = _distinct_entries(idx)
    idx = _held_index(tape, idx)
    if distinct:
        def pullback():  # each entry of a once: a plain += (np.add.at is ~5x slower)
            s[idx] += zs
    else:
        def pullback():  # repeated entries: every term must be added
            np.add.at(s, idx, zs)
    tape.record_py(pullback)
    if z.ndim == 0:
        return res[()]
    return res


def _distinct_entries(idx):
    """Does the advanced index idx name every entry at most once?  Checked
    for the common small case (one short list of non-negative positions, e.g.
    a column permutation ``a[:, [2, 0, 1]]``); otherwise no."""
    items = idx if type(idx) is tuple else (idx,)
    arrays = [np.asarray(i) for i in items if type(i) is np.ndarray or type(i) is list]
    if len(arrays) != 1 or sum(type(i) is slice for i in items) != len(items) - 1:
        return False
    arr = arrays[0]
    return (arr.ndim == 1 and arr.dtype.kind in "iu" and arr.size <= 64
            and (arr.size == 0 or arr.min() >= 0) and np.unique(arr).size == arr.size)


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
    el = element_index(a.p, idx)
    if el is not None:
        s = shadow_of(a)
        if type(value) is TScalar:
            if value.tape is not tape:
                from ..traced import mixed_tapes_error
                raise mixed_tapes_error()
            if s is None:
                s = promote(a)
            tape.check(lib.sad_store(tape.c, id(a.p), id(s), offset(a.p.strides, el),
                                     offset(s.strides, el), value.g, value.v), "a store")
            return
        v = _num(value)
        if v is not None:  # a constant; into inactive memory only the old value is kept
            tape.check(lib.sad_store(tape.c, id(a.p), 0 if s is None else id(s),
                                     offset(a.p.strides, el),
                                     0 if s is None else offset(s.strides, el), 0, v), "a store")
            return
    if _basic_index(idx):
        copy_into(basic_view(a, idx, el), value)
        return
    _set_advanced(a, idx, value, tape)


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
            from ..traced import mixed_tapes_error
            raise mixed_tapes_error()
    # the C copy is as-if-copied; where numpy is not, copy what numpy leaves
    src = numpy_sources(view.p, Ellipsis, primal(value))
    if src is not None:
        value = gather(value, src) if type(value) is TArray else value[src]
    o = _operand(value, tape)
    if o[0] == elementwise._KARR:
        _check_fits(o[1].shape, view.shape)
    zs = shadow_of(view)
    if zs is None and o[2] is not None:
        zs = promote(view)
    # zs None: inactive memory, the record only keeps the overwritten bytes
    _record(tape, lib.SAD_COPY, [o], view.p, zs, lib.SAD_F_SAVE | lib.SAD_F_PRIMAL)


def _set_advanced(a, idx, value, tape):
    p = a.p
    if type(value) is TArray:
        src = numpy_sources(p, idx, value.p)
        if src is not None:  # numpy does not buffer an overlapping source here
            value = gather(value, src)
    vp = primal(value)
    vactive = (type(value) is TScalar) or (type(value) is TArray and shadow_of(value) is not None)
    s = shadow_of(a)
    if s is None and vactive:
        s = promote(a)
    idx = _held_index(tape, idx)
    saved = [np.array(p[idx], dtype=F64)]
    p[idx] = vp
    last = None
    if vactive:
        pos = np.arange(p.size).reshape(p.shape)[idx].ravel()
        if np.unique(pos).size != pos.size:  # repeated targets: the last write wins
            _, first = np.unique(pos[::-1], return_index=True)
            last = np.zeros(pos.size, dtype=bool)
            last[pos.size - 1 - first] = True
            last = last.reshape(saved[0].shape)

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
                g *= last
            accumulate(value, g)
    tape.record_py(pullback, swap=swap, saved=saved, writes=(p, idx))


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
    """a[idx] of an FArray (the 1-D x[i] fast path is in FArray itself)."""
    idx = _plain_index(idx)
    p = a.p
    el = element_index(p, idx)
    if el is not None:
        registry.check_elementwise("indexing")
        v = p.item(*el)
        t = shadow_of(a)
        if t is None:
            return np.float64(v)  # numpy's scalar type (traced.SCALAR_UFUNCS)
        d = t[(slice(None),) + tuple(el)]
        return dual.FScalar(v, float(d[0]) if d.shape[0] == 1 else d.copy(), a.buf.tape)
    registry.check_elementwise("indexing")
    if _basic_index(idx):
        return dual.FArray(p[idx], None, a.buf)
    z = np.array(p[idx], dtype=F64)
    t = shadow_of(a)
    if t is None:
        return dual.new_array(a.buf.tape, z, False) if z.ndim else float(z)
    res = dual.new_array(a.buf.tape, np.asarray(z), True)
    tidx = _lane_index(idx)
    if tidx is not None:
        res._s[...] = t[tidx]
    else:
        for lane in range(t.shape[0]):
            res._s[lane] = t[lane][idx]
    if z.ndim == 0:
        return res[()]
    return res


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
            from ..traced import mixed_tapes_error
            raise mixed_tapes_error()
    elif type(value) is dual.FArray:
        vp, vt = value.p, shadow_of(value)
        if value.buf.tape is not ctx:
            from ..traced import mixed_tapes_error
            raise mixed_tapes_error()
    elif type(value) is TArray or type(value) is TScalar:
        from ..traced import mixed_tapes_error
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
    if _basic_index(idx):
        view = dual.FArray(p[idx], None, a.buf)
        zt = shadow_of(view)
        _check_fits(np.shape(vp), view.shape)
        src = numpy_sources(view.p, Ellipsis, vp) if type(value) is dual.FArray else None
        if src is not None:  # the tangent kernel is as-if-copied; numpy is not here
            value = forward_getitem(value, src)
            vp = value.p
        if zt is not None:
            operand = elementwise._forward_operand(value, ctx.lanes)
            elementwise.tangent_kernel(lib.SAD_COPY, view.p, zt, [operand])
        view.p[...] = vp
        return
    # advanced: numpy's assignment on the primal and on each lane alike
    if type(value) is dual.FArray:
        src = numpy_sources(p, idx, vp)
        if src is not None:  # numpy does not buffer an overlapping source here
            value = forward_getitem(value, src)
            vp, vt = value.p, shadow_of(value)
    p[idx] = vp
    if t is None:
        return
    tidx = _lane_index(idx)
    if type(value) is dual.FArray and tidx is not None:
        t[tidx] = 0.0 if vt is None else vt  # None: an inactive value's zero tangent
        return
    for lane in range(t.shape[0]):  # per-lane scalars, or lanes numpy would move
        if vt is None:
            t[lane][idx] = 0.0
        elif type(value) is dual.FScalar:
            t[lane][idx] = vt if np.ndim(vt) == 0 else vt[lane]
        else:
            t[lane][idx] = vt[lane]


@registry.implements_both(np.copyto, elementwise=True)
def copyto(dst, src, casting="same_kind", where=True):
    """np.copyto(dst, src) is dst[...] = src, so it takes setindex's rules in
    either mode; with a mask, the entries left alone keep their own values."""
    sdt = np.result_type(primal(src))
    if not np.can_cast(sdt, F64, casting=casting):
        raise TypeError(f"Cannot cast array data from {sdt!r} to {F64!r} according to the "
                        f"rule {casting!r}")
    if not isinstance(dst, (TArray, dual.FArray)):
        raise detach_error("np.copyto into an untraced numpy array")
    where = primal(where)
    if where is not True:
        src = np.where(where, src, dst)
    dst[...] = src
