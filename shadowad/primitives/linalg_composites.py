"""np.tensordot, np.linalg.multi_dot, np.linalg.matrix_power and
np.linalg.norm (and numpy 2's vector_norm and matrix_norm) as compositions
of existing primitives.

Each entry runs numpy's own algorithm (numpy's Python source, the same
calls in the same order) on the traced operands, whose operations dispatch
again in whatever engine is running: the values are numpy's bit for bit and
the derivatives are those of the primitives they are made of (dot, matmul,
inv, transpose, reshape, abs, max, sqrt, the singular values), one
definition each.  Degenerate points follow from those (docs/conventions.md,
"Contractions and linear algebra"): the 2-norm of a zero vector has
gradient 0, not NaN (the zero-factor convention meets sqrt's infinite
derivative with 2x = 0), as PyTorch gives; ties of the max/min norms follow
max and min.
"""
import math
import operator

import numpy as np
from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple

from .core import implements
from .values import array_operand, float_dtype, ndim, shape_of

__all__ = ["tensordot_entry", "multi_dot_entry", "matrix_power_entry", "norm_entry"]


# --------------------------------------------------------------------------
# tensordot: transpose and reshape both operands to matrices, one dot

def _axes_list(axes):
    try:
        return list(axes), len(axes)
    except TypeError:
        return [axes], 1


@implements(np.tensordot)
def tensordot_entry(bind, a, b, axes=2):
    a, b = array_operand(a), array_operand(b)
    try:
        iter(axes)
    except TypeError:
        axes_a, axes_b = list(range(-axes, 0)), list(range(0, axes))
    else:
        axes_a, axes_b = axes
    axes_a, na = _axes_list(axes_a)
    axes_b, nb = _axes_list(axes_b)
    as_, bs = shape_of(a), shape_of(b)
    nda, ndb = len(as_), len(bs)
    if na != nb or any(as_[axes_a[k]] != bs[axes_b[k]] for k in range(na)):
        raise ValueError("shape-mismatch for sum")
    axes_a = [x + nda if x < 0 else x for x in axes_a]
    axes_b = [x + ndb if x < 0 else x for x in axes_b]
    notin_a = [k for k in range(nda) if k not in axes_a]
    notin_b = [k for k in range(ndb) if k not in axes_b]
    shape_a = (math.prod(as_[k] for k in notin_a), math.prod(as_[k] for k in axes_a))
    shape_b = (math.prod(bs[k] for k in axes_b), math.prod(bs[k] for k in notin_b))
    at = np.reshape(np.transpose(a, notin_a + axes_a), shape_a)
    bt = np.reshape(np.transpose(b, axes_b + notin_b), shape_b)
    return np.reshape(np.dot(at, bt), [as_[k] for k in notin_a] + [bs[k] for k in notin_b])


# --------------------------------------------------------------------------
# multi_dot: numpy's cheapest order of the chain of dots

def _chain_order(shapes):
    n = len(shapes)
    p = [s[0] for s in shapes] + [shapes[-1][1]]
    cost = [[0.0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for span in range(1, n):
        for i in range(n - span):
            j = i + span
            cost[i][j] = math.inf
            for k in range(i, j):
                q = cost[i][k] + cost[k + 1][j] + p[i] * p[k + 1] * p[j + 1]
                if q < cost[i][j]:
                    cost[i][j], split[i][j] = q, k
    return split


def _chain(arrays, split, i, j, out=None):
    if i == j:
        return arrays[i]
    return np.dot(_chain(arrays, split, i, split[i][j]),
                  _chain(arrays, split, split[i][j] + 1, j), out=out)


@implements(np.linalg.multi_dot)
def multi_dot_entry(bind, arrays, *, out=None):
    arrays = [array_operand(a) for a in arrays]
    n = len(arrays)
    if n < 2:
        raise ValueError("Expecting at least two arrays.")
    if n == 2:
        return np.dot(arrays[0], arrays[1], out=out)
    first, last = ndim(arrays[0]), ndim(arrays[-1])
    if first == 1:
        arrays[0] = np.reshape(arrays[0], (1, -1))
    if last == 1:
        arrays[-1] = np.reshape(arrays[-1], (-1, 1))
    for a in arrays:
        if ndim(a) != 2:
            raise np.linalg.LinAlgError(f"{ndim(a)}-dimensional array given. "
                                        "Array must be two-dimensional")
    shapes = [shape_of(a) for a in arrays]
    if n == 3:
        (a0, a1b0), (b1c0, c1) = shapes[0], shapes[2]
        if a0 * b1c0 * (a1b0 + c1) < a1b0 * c1 * (a0 + b1c0):
            result = np.dot(np.dot(arrays[0], arrays[1]), arrays[2], out=out)
        else:
            result = np.dot(arrays[0], np.dot(arrays[1], arrays[2]), out=out)
    else:
        result = _chain(arrays, _chain_order(shapes), 0, n - 1, out=out)
    if first == 1 and last == 1:
        return result[0, 0]
    if first == 1 or last == 1:
        return np.ravel(result)
    return result


# --------------------------------------------------------------------------
# matrix_power: repeated squaring (negative powers of the inverse)

@implements(np.linalg.matrix_power)
def matrix_power_entry(bind, a, n):
    a = array_operand(a)
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise np.linalg.LinAlgError("Last 2 dimensions of the array must be square")
    try:
        n = operator.index(n)
    except TypeError as e:
        raise TypeError("exponent must be an integer") from e
    if n == 0:  # the identity: a constant
        return np.broadcast_to(np.eye(s[-1], dtype=float_dtype(a)), s).copy()  # numpy's a.dtype
    if n < 0:
        a = np.linalg.inv(a)
        n = abs(n)
    if n == 1:
        return a
    if n == 2:
        return np.matmul(a, a)
    if n == 3:
        return np.matmul(np.matmul(a, a), a)
    z = result = None
    while n > 0:
        z = a if z is None else np.matmul(z, z)
        n, bit = divmod(n, 2)
        if bit:
            result = z if result is None else np.matmul(result, z)
    return result


# --------------------------------------------------------------------------
# norm: numpy's cases, each an expression of primitives

def _vector_norm(x, ord, axis, keepdims):
    if ord == np.inf:
        return np.max(np.abs(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return np.min(np.abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:  # a count: piecewise constant, no derivative
        return np.sum(x != 0, axis=axis, keepdims=keepdims).astype(float_dtype(x))  # numpy's
    if ord == 1:
        return np.sum(np.abs(x), axis=axis, keepdims=keepdims)
    if ord is None or ord == 2:
        return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order '{ord}' for vectors")
    p = float(ord)
    return np.sum(np.abs(x) ** p, axis=axis, keepdims=keepdims) ** (1.0 / p)


def _svd_norm(x, row, col, op):
    y = np.moveaxis(x, (row, col), (-2, -1))
    return op(np.linalg.svd(y, compute_uv=False), axis=-1)


def _matrix_norm(x, ord, row, col):
    if ord == 2:
        return _svd_norm(x, row, col, np.max)
    if ord == -2:
        return _svd_norm(x, row, col, np.min)
    if ord in (1, -1):
        if col > row:
            col -= 1
        sums = np.sum(np.abs(x), axis=row)
        return np.max(sums, axis=col) if ord == 1 else np.min(sums, axis=col)
    if ord in (np.inf, -np.inf):
        if row > col:
            row -= 1
        sums = np.sum(np.abs(x), axis=col)
        return np.max(sums, axis=row) if ord == np.inf else np.min(sums, axis=row)
    if ord in (None, "fro", "f"):
        return np.sqrt(np.sum(x * x, axis=(row, col)))
    if ord == "nuc":
        return _svd_norm(x, row, col, np.sum)
    raise ValueError("Invalid norm order for matrices.")


@implements(np.linalg.norm)
def norm_entry(bind, x, ord=None, axis=None, keepdims=False):
    x = array_operand(x)
    nd = ndim(x)
    if axis is None:
        if ord is None or (ord in ("f", "fro") and nd == 2) or (ord == 2 and nd == 1):
            flat = np.ravel(x, order="K")
            r = np.sqrt(np.dot(flat, flat))
            return np.reshape(r, (1,) * nd) if keepdims else r
        axis = tuple(range(nd))
    elif not isinstance(axis, tuple):
        try:
            axis = (operator.index(axis),)
        except TypeError as e:
            raise TypeError("'axis' must be None, an integer or a tuple of integers") from e
    if len(axis) == 1:
        return _vector_norm(x, ord, axis, keepdims)
    if len(axis) != 2:
        raise ValueError("Improper number of dimensions to norm.")
    row, col = normalize_axis_index(axis[0], nd), normalize_axis_index(axis[1], nd)
    if row == col:
        raise ValueError("Duplicate axes given.")
    r = _matrix_norm(x, ord, row, col)
    if keepdims:
        shape = list(shape_of(x))
        shape[row] = shape[col] = 1
        r = np.reshape(r, shape)
    return r


def _vector_norm_entry(bind, x, /, *, axis=None, keepdims=False, ord=2):
    x = array_operand(x)
    shape = list(shape_of(x))
    if axis is None:
        y, ax = np.ravel(x), 0
    elif isinstance(axis, tuple):
        axes = normalize_axis_tuple(axis, len(shape))
        rest = tuple(i for i in range(len(shape)) if i not in axes)
        y = np.reshape(np.transpose(x, axes + rest),
                       (math.prod(shape[i] for i in axes),) + tuple(shape[i] for i in rest))
        ax = 0
    else:
        y, ax = x, axis
    r = np.linalg.norm(y, axis=ax, ord=ord)
    if keepdims:
        for i in normalize_axis_tuple(range(len(shape)) if axis is None else axis, len(shape)):
            shape[i] = 1
        r = np.reshape(r, tuple(shape))
    return r


def _matrix_norm_entry(bind, x, /, *, keepdims=False, ord="fro"):
    return np.linalg.norm(array_operand(x), axis=(-2, -1), keepdims=keepdims, ord=ord)


if hasattr(np.linalg, "vector_norm"):  # numpy >= 2
    implements(np.linalg.vector_norm)(_vector_norm_entry)
    implements(np.linalg.matrix_norm)(_matrix_norm_entry)
