"""Selections and writes at index arrays: np.take_along_axis, np.sort,
np.put, np.put_along_axis, and the ufunc method ``at`` (np.add.at,
np.subtract.at, np.multiply.at).

The reads are the take primitive (indexing.py) at a plain index; the
writes are ``a[idx] = v`` on the operands, which every engine already
differentiates as the mutating put primitive (the reverse engine restoring
a's bytes and turning its shadow, the forward engine writing tangents, the
nested engine rebinding), so nothing here is a new mutating derivative.

np.add.at / np.subtract.at add the values of a repeated index one after the
other, in index order: that is ``add_at`` below, a linear primitive whose
value is numpy's own ufunc.at (so bit for bit), applied to a copy of only
the entries the indices name and written back.  np.multiply.at is one
product per repetition round (an index's first occurrences, then its
second, ...), each written back: numpy's order of products, and a
derivative made of products alone, exact where a factor is zero.
"""
import operator

import numpy as np

from .core import Primitive, apply, implements
from .indexing import occurrences, positions, take_of
from .values import float_dtype, ndim, plain, shape_of, unbroadcast

try:
    from numpy.lib.array_utils import normalize_axis_index
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import normalize_axis_index

__all__ = ["add_at", "ufunc_at", "AT_UFUNCS"]

_PLAIN = (np.ndarray, float, int, np.generic)


def _integers(name, indices):
    ind = np.asarray(plain(indices))
    if ind.size == 0:  # [] is float64 to numpy, and names no entry
        return ind.astype(np.intp)
    if ind.dtype.kind not in "iu":
        raise IndexError(f"shadowad: {name}'s indices must be integers, got {ind.dtype}")
    return ind


def _check_target(name, a, v):
    """A plain numpy array cannot hold a traced value (its derivative would be
    dropped): say so in the function's words before numpy's conversion does."""
    if isinstance(a, np.ndarray) and plain(v) is not v:
        raise TypeError(
            f"shadowad: {name} writes traced values into a plain numpy array, which "
            "cannot hold their derivative; allocate the target with np.zeros_like(x) / "
            "x.copy() (x a traced value) so that it is traced too")


# --------------------------------------------------------------------------
# take_along_axis, put_along_axis and sort

def along_axis_index(shape, indices, axis, name):
    """numpy's fancy index for ``*_along_axis`` (its _make_along_axis_idx)."""
    ind = _integers(name, indices)
    if ind.ndim != len(shape):
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    ones = (1,) * ind.ndim
    index = []
    for d, n in enumerate(shape):
        if d == axis:
            index.append(ind)
        else:
            index.append(np.arange(n).reshape(ones[:d] + (-1,) + ones[d + 1:]))
    return tuple(index)


@implements(np.take_along_axis)
def take_along_axis_entry(bind, arr, indices, axis=-1):
    if axis is None:
        arr, axis = np.ravel(arr), 0
    axis = normalize_axis_index(operator.index(axis), ndim(arr))
    return arr[along_axis_index(shape_of(arr), indices, axis, "np.take_along_axis")]


@implements(np.put_along_axis)
def put_along_axis_entry(bind, arr, indices, values, axis):
    _check_target("np.put_along_axis", arr, values)
    shape = shape_of(arr)
    if axis is None:
        ind = _integers("np.put_along_axis", indices)
        if ind.ndim != 1:
            raise ValueError("when axis=None, `indices` must have a single dimension.")
        n = int(np.prod(shape, dtype=np.int64))
        arr[np.unravel_index(ind % n if n else ind, shape)] = values
        return None
    axis = normalize_axis_index(operator.index(axis), len(shape))
    arr[along_axis_index(shape, indices, axis, "np.put_along_axis")] = values
    return None


@implements(np.sort)
def sort_entry(bind, a, axis=-1, kind=None, order=None, *, stable=None):
    """The values in sorted order: a gather at numpy's stable permutation
    (ties keep their order, so each value's derivative goes to the entry it
    came from)."""
    if order is not None:
        raise ValueError("Cannot specify order when the array has no fields.")  # numpy's
    if axis is None:
        a, axis = np.ravel(a), 0
    axis = normalize_axis_index(operator.index(axis), ndim(a))
    perm = np.argsort(np.asarray(plain(a)), axis=axis, kind="stable")
    return a[along_axis_index(shape_of(a), perm, axis, "np.sort")]


# --------------------------------------------------------------------------
# put: a.flat[ind] = v, v repeated as needed

@implements(np.put)
def put_entry(bind, a, ind, v, mode="raise"):
    _check_target("np.put", a, v)
    shape = shape_of(a)
    n = int(np.prod(shape, dtype=np.int64))
    flat = _integers("np.put", ind).ravel()
    if not flat.size or not np.size(v):
        return None  # numpy writes nothing
    if mode == "raise":
        bad = flat[(flat >= n) | (flat < -n)]
        if bad.size:
            raise IndexError(f"index {bad[0]} is out of bounds for axis 0 with size {n}")
        flat = flat % n
    elif mode == "wrap":
        flat = flat % n
    elif mode == "clip":
        flat = np.clip(flat, 0, n - 1)
    else:
        raise ValueError(f"clipmode must be one of 'clip', 'raise', or 'wrap' (got {mode!r})")
    values = np.ravel(v) if ndim(v) != 1 else v
    m = shape_of(values)[0]
    if m != flat.size:
        values = values[np.arange(flat.size) % m]
    a[np.unravel_index(flat, shape)] = values
    return None


# --------------------------------------------------------------------------
# ufunc.at

def _add_at(a, b, idx, negate):
    if not isinstance(a, _PLAIN):
        z = np.copy(a)  # ufunc.at on a value of an enclosing differentiation dispatches
    elif not isinstance(b, _PLAIN):
        # b carries an enclosing differentiation's derivative: a's values in a
        # buffer of b's kind
        z = np.zeros_like(b, shape=shape_of(a))
        z[...] = a
    else:
        z = np.array(a, dtype=float_dtype(a))  # a's type, as numpy's ufunc.at keeps
    (np.subtract if negate else np.add).at(z, idx, b)
    return z


def _add_at_jvp(ts, vals, out, params):
    ta, tb = ts
    if ta is None:
        ta = np.zeros(shape_of(vals[0]), float_dtype(vals[0]))
    return apply(add_at, (ta, 0.0 if tb is None else tb), params, numpy_impl=False)


def _add_at_vjp(k, g, vals, out, params):
    if k == 0:  # every entry of a reaches the result once
        return g
    gb = take_of(g, params["idx"])
    return unbroadcast(-gb if params["negate"] else gb, shape_of(vals[1]))


add_at = Primitive("add_at", _add_at, _add_at_jvp, _add_at_vjp)

AT_UFUNCS = (np.add, np.subtract, np.multiply)


def ufunc_at(ufunc, inputs, kwargs):
    """``ufunc.at(a, indices, b)`` on any engine's values: the entries the
    indices name are read (a copy), updated, and written back into a."""
    name = f"np.{ufunc.__name__}.at"
    if ufunc not in AT_UFUNCS:
        raise NotImplementedError(
            f"shadowad: {name} has no derivative rule in shadowad; supported: np.add.at, "
            "np.subtract.at, np.multiply.at")
    if kwargs:
        raise TypeError(f"shadowad: {name}(..., {next(iter(kwargs))}=...) is not supported")
    if len(inputs) != 3:
        raise TypeError(f"shadowad: {name} takes (a, indices, b)")
    a, indices, b = inputs
    _check_target(name, a, b)
    if plain(indices) is not indices:
        raise TypeError(f"shadowad: {name}'s indices must be plain integers, not traced "
                        "values")
    shape = shape_of(a)
    pos = positions(shape, indices)
    flat = np.reshape(pos, -1)
    if not flat.size:
        np.broadcast_shapes(shape_of(b), np.shape(pos))  # numpy's error for a bad b
        return None
    uniq, inverse = np.unique(flat, return_inverse=True)
    where = np.unravel_index(uniq, shape)
    if type(b) is float or type(b) is int:  # numpy's ufunc.at takes a Python number as float64
        b = np.asarray(b, dtype=np.float64)
    values = np.reshape(np.broadcast_to(b, np.shape(pos)), (-1,))
    touched = a[where]
    if ufunc is np.multiply:
        occ = occurrences(flat)
        for r in range(int(occ.max()) + 1):
            sel = np.flatnonzero(occ == r)
            i = inverse[sel]
            touched[i] = touched[i] * values[sel]
    else:
        touched = apply(add_at, (touched, values),
                        {"idx": inverse, "negate": ufunc is np.subtract}, numpy_impl=False)
    a[where] = touched
    return None
