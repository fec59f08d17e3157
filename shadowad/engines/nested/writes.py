"""In-place writes inside a nested differentiation, by rebinding.

A Box's value is never changed in place: the tapes of this and enclosing
differentiations hold the values they read.  A write ``y[idx] = v``
computes y's new value functionally with the ``put`` primitive
(shadowad.primitives.indexing, whose derivative every engine shares) and
rebinds the Box's value and derivative, so every Python reference to the Box
sees the new value, as every reference to an ndarray sees a write.

Views follow numpy.  A Box numpy would give as a view (basic indexing,
reshape when numpy views, transpose, flip, diagonal, broadcast_to) remembers
its root Box and the positions of its elements in the root's memory
(``Box.pos``: the same numpy operation applied to an array of positions laid
out like the root, so numpy itself says whether the result is a view and
whether it is writeable).  A write into a view is a ``put`` into the root at
those positions; then every live view of the root is read again (``take``),
so ``v = y[1:]; v *= 2`` changes ``y`` and the views beside ``v``.  A source
that overlaps the destination is read as numpy's assignment reads it
(shadowad.support.overlap); a ufunc's ``out=`` reads its inputs before
writing, as numpy buffers overlapping operands.
"""
import weakref

import numpy as np

from .box import Box, bind, plain, shape_of
from ...primitives import indexing, shape as shape_prims
from ...support.overlap import numpy_sources
from ..reverse.untraced import F64


def _layout(box):
    """The positions of box's elements, laid out as its memory is (so that
    numpy's reshape views or copies them as it would the memory)."""
    p = plain(box)
    pos = np.empty_like(p, dtype=F64) if isinstance(p, np.ndarray) else np.empty(())
    pos[...] = np.arange(pos.size, dtype=F64).reshape(pos.shape)
    return pos


def _root(box):
    """The Box whose memory box views (box itself when it views none)."""
    return box if box.root is None else box.root


def _positions(box):
    """box's element positions in its root's memory (made on first use)."""
    if box.pos is None:
        box.pos = _layout(box)
    return box.pos


def _track(out, operand, params, rule):
    """out = rule(operand): a view of operand's root when numpy's result of
    the same operation on the positions shares their memory."""
    if type(out) is not Box or type(operand) is not Box or out.level_trace is not \
            operand.level_trace:
        return
    root = _root(operand)
    src = _positions(operand)
    p = src[params["idx"]] if rule is indexing.take else rule.impl(src, **params)
    if type(p) is np.ndarray and p.size and np.may_share_memory(p, root.pos):
        out.root, out.pos = root, p
        views = root.views
        if views is None:
            views = root.views = []
        views.append(weakref.ref(out))
        if len(views) % 256 == 0:  # a loop taking views it drops: forget the dead ones
            views[:] = [r for r in views if r() is not None]


for _prim in (indexing.take, shape_prims.reshape, shape_prims.transpose, shape_prims.flip,
              shape_prims.diagonal, shape_prims.broadcast_to):
    # the view is the memory model (as the C engines' "view"), not a fast path
    _prim.specialise("nested view")(
        (lambda p: lambda out, operand, params: _track(out, operand, params, p))(_prim))


def overlapping(a, b):
    """Do Boxes a and b name common memory of one root (a view of the
    other, or two views that overlap)?"""
    if type(a) is not Box or type(b) is not Box:
        return False
    if _root(a) is not _root(b):
        return False
    return bool(np.intersect1d(np.ravel(_positions(a)), np.ravel(_positions(b))).size)


def _root_index(box, idx):
    """The index into box's root memory that ``box[idx]`` names."""
    sel = np.asarray(box.pos[idx]).astype(np.intp)
    return np.unravel_index(sel, shape_of(box.root.v))


def _source(box, idx, value):
    """value as numpy's ``box[idx] = value`` reads it: when value views the
    memory box[idx] names, the elements numpy ends up copying."""
    if type(value) is not Box or type(box) is not Box:
        return value
    if _root(value) is not _root(box):
        return value
    dst = _positions(box)
    that = numpy_sources(dst, idx, _positions(value))
    return value if that is None else value[that]


def inner_into_outer_error():
    return TypeError(
        "shadowad: writing a value of a nested differentiation in place into an array of "
        "an enclosing differentiation (or into a value from outside the nested call); the "
        "enclosing array cannot hold the inner derivative. Write into a buffer of the "
        "nested function (np.zeros_like(x), x.copy()) or compute out of place")


def rebind(box, new):
    """box takes new's value and derivative; its root's views are read again."""
    if type(new) is not Box or new.level_trace is not box.level_trace:
        raise inner_into_outer_error()
    box.v, box.d = new.v, new.d
    views = box.views
    if views:
        live = []
        shape = shape_of(box.v)
        for ref in views:
            view = ref()
            if view is None:
                continue
            live.append(ref)
            idx = np.unravel_index(view.pos.astype(np.intp), shape)
            got = bind(indexing.take, (box,), {"idx": idx})
            view.v, view.d = got.v, got.d
        box.views = live


def setitem(box, idx, value):
    """``box[idx] = value`` (idx already checked)."""
    if box.lock is not None:
        raise TypeError(box.lock)
    if not is_memory(box):
        raise TypeError("shadowad: a scalar does not support item assignment (as a numpy "
                        "scalar does not)")
    value = _source(box, idx, value)
    root = box.root
    if root is None:
        target, where = box, idx
    else:
        if not box.pos.flags.writeable:
            raise ValueError("assignment destination is read-only (numpy makes this "
                             "view read-only: diagonal, broadcast_to)")
        target, where = root, _root_index(box, idx)
        if target.lock is not None:
            raise TypeError(target.lock)
    rebind(target, bind(indexing.put, (target, value), {"idx": where}))


def is_memory(box):
    """Whether box holds an array (written in place by ``+=``), not a scalar
    (``s += 1`` makes a new scalar, as on numpy scalars)."""
    return shape_of(box.v) != () or type(plain(box)) is np.ndarray


def inplace(box, new):
    """``box <op>= ...`` with its result ``new`` computed: written into box
    (a scalar is not memory: ``s += 1`` gives the new value)."""
    if not is_memory(box):
        return new
    if shape_of(new) != shape_of(box.v):
        raise ValueError(f"non-broadcastable output operand with shape {shape_of(box.v)} "
                         f"doesn't match the broadcast shape {shape_of(new)}")
    setitem(box, Ellipsis, new)
    return box


def write_out(out, result):
    """An ``out=`` argument receives result; returns out, as numpy does."""
    if type(out) is Box:
        setitem(out, Ellipsis, result)
        return out
    if type(result) is Box:
        if type(out) is np.ndarray:
            raise TypeError(
                "shadowad: the destination (out=, np.copyto's dst) is a plain numpy array, "
                "which cannot hold a value of a nested differentiation (its derivative "
                "would be dropped); allocate it with np.zeros_like(x), x a value of the "
                "nested function")
        raise inner_into_outer_error()
    out[...] = result
    return out


def copyto(dst, src, casting="same_kind", where=True):
    """np.copyto: dst[...] = src, where ``where`` says (a select of src and dst)."""
    if where is not True:
        src = np.where(plain(where), src, dst)
    write_out(dst, src)


