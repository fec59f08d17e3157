"""Shape functions, each defined once: reshape (also ravel, squeeze,
expand_dims, atleast_1d/2d), transpose (also swapaxes, moveaxis, ``.T``),
flip, diagonal, broadcast_to, copy, concatenate (also hstack, vstack) and
stack.

Every one is linear, so its tangent is the function of the tangent
(``deflinear``) and only its transpose is written.  The numpy functions that
are another one in disguise (ravel is a reshape, swapaxes a transpose, hstack
a concatenate) are entries that bind the primitive with its parameters
spelled out, so that each derivative exists once.

The reverse and forward engines take most of these as *views* of their
operand instead of binding a record (shadowad/engines/rules/shape.py says why); the
definitions here are what the nested engine runs, and what the other engines
record when no view can be taken (a reshape that must copy, the shape of a
traced scalar).
"""
import numpy as np

from .core import Primitive, deflinear, implements
from .values import float_dtype, ndim, plain, shape_of, unbroadcast

try:
    from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import normalize_axis_index
    from numpy.core.numeric import normalize_axis_tuple

__all__ = ["reshape", "transpose", "flip", "diagonal", "broadcast_to", "copy", "concatenate",
           "stack"]


def check_dtype(fname, dtype):
    if dtype is not None and np.dtype(dtype) != np.float64:
        raise TypeError(f"shadowad: {fname}(..., dtype={np.dtype(dtype)}) of traced values "
                        "would silently drop their derivative (traced results are float64); "
                        "leave dtype out, or take the values without derivative on purpose "
                        "with sad.primal(x)")


def _shape_tuple(shape):
    if isinstance(shape, (tuple, list)):
        return tuple(map(int, shape))
    return (int(shape),)


# --------------------------------------------------------------------------
# reshape, and the functions that only add, remove or regroup axes

reshape = deflinear(
    Primitive("reshape", lambda a, shape, order: np.reshape(a, shape, order=order)),
    lambda g, a, p: np.reshape(g, shape_of(a), order=p["order"]))


def _reshape(bind, a, shape, order="C"):
    if plain(a) is a:  # a plain operand beside traced ones (np.concatenate's list)
        return np.reshape(a, shape, order=order)
    return bind(reshape, (a,), {"shape": _shape_tuple(shape), "order": order}, None)


@implements(np.reshape)
def reshape_entry(bind, a, shape=None, order="C", *, newshape=None, copy=None):
    if shape is None:
        shape = newshape
    if order not in ("C", "F"):
        if order != "A":
            raise ValueError(f"np.reshape: order must be 'C', 'F' or 'A', not {order!r}")
        order = _order_a(a)
    if copy:
        a = copy_entry(bind, a, order=order)
    elif copy is False:  # numpy says whether it can view; then the engines view too
        np.reshape(plain(a), shape, order=order, copy=False)
    return _reshape(bind, a, shape, order)


def _order_a(a):
    """Order 'A' as 'C' or 'F': Fortran only for a Fortran-contiguous array."""
    p = np.asarray(plain(a))
    return "F" if p.flags.f_contiguous and not p.flags.c_contiguous else "C"


@implements(np.ravel)
def ravel_entry(bind, a, order="C"):
    p = plain(a)
    if type(p) is np.ndarray and not np.may_share_memory(np.ravel(p, order=order), p):
        # numpy copies here (the result must be contiguous, where a reshape
        # could view): a view would let a write through the result reach a
        return np.copy(_ravel(bind, a, order))
    return _ravel(bind, a, order)


def _ravel(bind, a, order):
    if order == "A":
        order = _order_a(a)
    elif order == "K":
        # memory order: numpy reads the axes by decreasing stride (a negative
        # stride read as positive), so the ravel of the axes so ordered
        p = np.asarray(plain(a))
        perm = tuple(sorted(range(p.ndim), key=lambda d: -abs(p.strides[d])))
        if perm != tuple(range(p.ndim)):
            a = bind(transpose, (a,), {"axes": perm}, None)
        order = "C"
    return _reshape(bind, a, (-1,), order)


@implements(np.squeeze)
def squeeze_entry(bind, a, axis=None):
    shape = shape_of(a)
    if axis is None:
        axes = tuple(d for d, n in enumerate(shape) if n == 1)
    else:
        axes = normalize_axis_tuple(axis, len(shape))
        if any(shape[d] != 1 for d in axes):
            raise ValueError("cannot select an axis to squeeze out which has size not "
                             "equal to one")
    return _reshape(bind, a, tuple(n for d, n in enumerate(shape) if d not in axes))


@implements(np.expand_dims)
def expand_dims_entry(bind, a, axis):
    shape = shape_of(a)
    axis = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    axes = normalize_axis_tuple(axis, len(shape) + len(axis))
    rest = iter(shape)
    return _reshape(bind, a, tuple(1 if d in axes else next(rest)
                                   for d in range(len(shape) + len(axes))))


def _atleast(bind, arys, nd, fn):
    res = []
    for a in arys:
        shape = shape_of(a)
        if plain(a) is a:  # not traced: numpy's own
            a = fn(a)
        elif len(shape) < nd:
            a = _reshape(bind, a, (1,) * (nd - len(shape)) + shape)
        res.append(a)
    return res[0] if len(res) == 1 else tuple(res)


@implements(np.atleast_1d)
def atleast_1d_entry(bind, *arys):
    return _atleast(bind, arys, 1, np.atleast_1d)


@implements(np.atleast_2d)
def atleast_2d_entry(bind, *arys):
    return _atleast(bind, arys, 2, np.atleast_2d)


# --------------------------------------------------------------------------
# transpose: a permutation of the axes; the adjoint goes back by the inverse

def _inverse(axes):
    return tuple(int(i) for i in np.argsort(axes))


transpose = deflinear(
    Primitive("transpose", lambda a, axes: np.transpose(a, axes)),
    lambda g, a, p: np.transpose(g, _inverse(p["axes"])))


def _transpose(bind, a, axes):
    return bind(transpose, (a,), {"axes": tuple(axes)}, None)


@implements(np.transpose)
def transpose_entry(bind, a, axes=None):
    nd = ndim(a)
    if axes is None:
        axes = tuple(range(nd - 1, -1, -1))
    else:
        axes = normalize_axis_tuple(axes, nd, allow_duplicate=False) if nd else tuple(axes)
        if len(axes) != nd:
            raise ValueError("axes don't match array")
    return _transpose(bind, a, axes)


@implements(np.swapaxes)
def swapaxes_entry(bind, a, axis1, axis2):
    nd = ndim(a)
    i, j = normalize_axis_index(axis1, nd), normalize_axis_index(axis2, nd)
    axes = list(range(nd))
    axes[i], axes[j] = axes[j], axes[i]
    return _transpose(bind, a, axes)


@implements(np.moveaxis)
def moveaxis_entry(bind, a, source, destination):
    nd = ndim(a)
    src = normalize_axis_tuple(source, nd, "source")
    dst = normalize_axis_tuple(destination, nd, "destination")
    if len(src) != len(dst):
        raise ValueError("`source` and `destination` arguments must have the same number "
                         "of elements")
    order = [d for d in range(nd) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return _transpose(bind, a, order)


# --------------------------------------------------------------------------
# flip: its own transpose

flip = deflinear(Primitive("flip", lambda a, axes: np.flip(a, axes)),
                 lambda g, a, p: np.flip(g, p["axes"]))


@implements(np.flip)
def flip_entry(bind, m, axis=None):
    nd = ndim(m)
    if nd == 0:  # nothing to flip (numpy returns the scalar)
        return m
    axes = tuple(range(nd)) if axis is None else normalize_axis_tuple(axis, nd)
    return bind(flip, (m,), {"axes": axes}, None)


# --------------------------------------------------------------------------
# broadcast_to: the adjoint is summed over the broadcast axes

broadcast_to = deflinear(
    Primitive("broadcast_to", lambda a, shape: np.broadcast_to(a, shape)),
    lambda g, a, p: unbroadcast(g, shape_of(a)))


@implements(np.broadcast_to)
def broadcast_to_entry(bind, array, shape, subok=False):
    return bind(broadcast_to, (array,), {"shape": _shape_tuple(shape)}, None)


# --------------------------------------------------------------------------
# diagonal: the adjoint lands on the diagonal of zeros.  It is written with
# concatenate, reshape, broadcast_to and np.where of a plain mask, which
# every engine differentiates (a write into zeros would not be, inside a
# nested differentiation).

def _undiagonal(g, a, p):
    offset, a1, a2 = p["offset"], p["axis1"], p["axis2"]
    shape = shape_of(a)
    n1, n2 = shape[a1], shape[a2]
    gs = shape_of(g)
    lead, k = gs[:-1], gs[-1]
    if k == 0:  # an offset past the matrix: an empty diagonal
        return np.zeros(shape, float_dtype(g))
    r0 = max(-offset, 0)
    parts = [g]
    if r0:
        parts.insert(0, np.zeros(lead + (r0,), float_dtype(g)))
    if n1 - r0 - k:
        parts.append(np.zeros(lead + (n1 - r0 - k,), float_dtype(g)))
    column = np.concatenate(parts, axis=-1) if len(parts) > 1 else g  # g at its rows
    full = np.broadcast_to(np.reshape(column, lead + (n1, 1)), lead + (n1, n2))
    on = np.arange(n2)[None, :] - np.arange(n1)[:, None] == offset
    m = np.where(on, full, 0.0)
    order = [d for d in range(len(shape)) if d != a1 and d != a2] + [a1, a2]
    return np.transpose(m, _inverse(order))


diagonal = deflinear(
    Primitive("diagonal",
              lambda a, offset, axis1, axis2: np.diagonal(a, offset, axis1, axis2)),
    _undiagonal)


@implements(np.diagonal)
def diagonal_entry(bind, a, offset=0, axis1=0, axis2=1):
    nd = ndim(a)
    a1, a2 = normalize_axis_index(axis1, nd), normalize_axis_index(axis2, nd)
    if a1 == a2:
        raise ValueError("axis1 and axis2 cannot be the same")
    return bind(diagonal, (a,), {"offset": int(offset), "axis1": a1, "axis2": a2}, None)


# --------------------------------------------------------------------------
# copy: the identity, on new memory

copy = deflinear(Primitive("copy", lambda a, order: np.copy(a, order=order)),
                 lambda g, a, p: g)


@implements(np.copy)
def copy_entry(bind, a, order="K", subok=False):
    return bind(copy, (a,), {"order": order}, None)


# --------------------------------------------------------------------------
# concatenate and stack: each operand's adjoint is its slice of the result's

def _filled(ts, vals):
    """The tangents of all operands, zeros for the constant ones."""
    return [np.zeros(shape_of(v), float_dtype(v)) if t is None else t for t, v in zip(ts, vals)]


def _concatenate_vjp(k, g, vals, out, p):
    axis = p["axis"]
    start = sum(shape_of(v)[axis] for v in vals[:k])
    n = shape_of(vals[k])[axis]
    return g[(slice(None),) * axis + (slice(start, start + n),)]


concatenate = Primitive(
    "concatenate", lambda *arrays, axis: np.concatenate(arrays, axis=axis),
    lambda ts, vals, out, p: np.concatenate(_filled(ts, vals), axis=p["axis"]),
    _concatenate_vjp)


def _items(name, arrays):
    if isinstance(arrays, np.ndarray) or hasattr(arrays, "shape"):
        raise TypeError(f"shadowad: {name} takes a sequence of arrays")
    return list(arrays)


def _concatenate(bind, items, axis, out):
    shapes = [shape_of(x) for x in items]
    if any(len(s) == 0 for s in shapes):
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    axis = normalize_axis_index(axis, len(shapes[0]))
    return bind(concatenate, tuple(items), {"axis": axis}, out)


@implements(np.concatenate)
def concatenate_entry(bind, arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    check_dtype("np.concatenate", dtype)
    items = _items("np.concatenate", arrays)
    if axis is None:
        items = [_reshape(bind, x, (-1,)) for x in items]
        axis = 0
    return _concatenate(bind, items, axis, out)


@implements(np.hstack)
def hstack_entry(bind, tup, *, dtype=None, casting="same_kind"):
    check_dtype("np.hstack", dtype)
    items = _items("np.hstack", tup)
    items = [atleast_1d_entry(bind, x) for x in items]
    axis = 0 if items and ndim(items[0]) == 1 else 1
    return _concatenate(bind, items, axis, None)


@implements(np.vstack)
def vstack_entry(bind, tup, *, dtype=None, casting="same_kind"):
    check_dtype("np.vstack", dtype)
    items = [atleast_2d_entry(bind, x) for x in _items("np.vstack", tup)]
    return _concatenate(bind, items, 0, None)


def _stack_vjp(k, g, vals, out, p):
    return g[(slice(None),) * p["axis"] + (k,)]


stack = Primitive(
    "stack", lambda *arrays, axis: np.stack(arrays, axis=axis),
    lambda ts, vals, out, p: np.stack(_filled(ts, vals), axis=p["axis"]),
    _stack_vjp)


@implements(np.stack)
def stack_entry(bind, arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """np.stack, also the way to build an array from traced scalars."""
    check_dtype("np.stack", dtype)
    items = _items("np.stack", arrays)
    if not items:
        raise ValueError("need at least one array to stack")
    axis = normalize_axis_index(axis, ndim(items[0]) + 1)
    return bind(stack, tuple(items), {"axis": axis}, out)
