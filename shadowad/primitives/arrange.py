"""Rearrangements written as compositions of existing primitives: np.diag
(both directions), diagflat, tril, triu, roll, tile, repeat, pad, split,
array_split (also hsplit, vsplit, dsplit), append, delete, rot90, fliplr,
flipud and kron.

Each entry calls numpy on its operands, which dispatch again in whichever
engine is running (reverse, forward, nested), so each derivative is the one
of the primitives it is made of (concatenate, reshape, broadcast_to,
transpose, flip, take and the select np.where with a plain mask), defined
once in shape.py, indexing.py and selection.py.  Every one moves or copies
values, or multiplies once (kron), so the values are numpy's bit for bit.
"""
import operator

import numpy as np

from .core import implements
from .values import float_dtype, ndim, plain, shape_of

try:
    from numpy.lib.array_utils import normalize_axis_index, normalize_axis_tuple
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import normalize_axis_index
    from numpy.core.numeric import normalize_axis_tuple

__all__ = ["along"]


def along(axis, index):
    """The index that applies ``index`` to axis ``axis`` (all of the others)."""
    return (slice(None),) * axis + (index,)


# --------------------------------------------------------------------------
# diag, diagflat, tril, triu: selects of a plain mask

def _diag_matrix(v, k):
    """The square matrix with v on its k-th diagonal: v's entries laid out by
    row, broadcast along the rows and kept where the mask says (zeros
    elsewhere, as numpy's np.diag)."""
    n = shape_of(v)[0]
    m = n + abs(k)
    r0 = max(-k, 0)  # the first row that holds an entry of v
    parts = [v]
    if r0:
        parts.insert(0, np.zeros(r0, float_dtype(v)))
    if m - r0 - n:
        parts.append(np.zeros(m - r0 - n, float_dtype(v)))
    column = np.concatenate(parts) if len(parts) > 1 else v
    full = np.broadcast_to(np.reshape(column, (m, 1)), (m, m))
    on = np.arange(m)[None, :] - np.arange(m)[:, None] == k
    return np.where(on, full, 0.0)


@implements(np.diag)
def diag_entry(bind, v, k=0):
    k = operator.index(k)
    nd = ndim(v)
    if nd == 1:
        return _diag_matrix(v, k)
    if nd == 2:  # numpy's np.diag of a matrix is its diagonal (a read-only view)
        return np.diagonal(v, k)
    raise ValueError("Input must be 1- or 2-d.")


@implements(np.diagflat)
def diagflat_entry(bind, v, k=0):
    return _diag_matrix(np.ravel(v), operator.index(k))


@implements(np.tril)
def tril_entry(bind, m, k=0):
    mask = np.tri(*shape_of(m)[-2:], k=operator.index(k), dtype=bool)
    return np.where(mask, m, 0.0)


@implements(np.triu)
def triu_entry(bind, m, k=0):
    mask = np.tri(*shape_of(m)[-2:], k=operator.index(k) - 1, dtype=bool)
    return np.where(mask, 0.0, m)


# --------------------------------------------------------------------------
# roll: the two slices of each rolled axis, concatenated the other way round

@implements(np.roll)
def roll_entry(bind, a, shift, axis=None):
    if axis is None:
        return np.reshape(roll_entry(bind, np.ravel(a), shift, 0), shape_of(a))
    shape = shape_of(a)
    axes = normalize_axis_tuple(np.atleast_1d(axis).tolist(), len(shape),
                                allow_duplicate=True)
    shifts, axes = np.broadcast_arrays(np.asarray(plain(shift)), np.asarray(axes))
    if shifts.dtype.kind not in "iu":
        raise TypeError("shadowad: np.roll's shift must be integers, got "
                        f"{shifts.dtype}")
    total = {}
    for s, d in zip(shifts.ravel().tolist(), axes.ravel().tolist()):
        total[d] = total.get(d, 0) + s  # numpy adds the shifts of a repeated axis
    res = a
    for d, s in total.items():
        n = shape[d]
        s = s % n if n else 0
        if s:
            res = np.concatenate([res[along(d, slice(n - s, None))],
                                  res[along(d, slice(None, n - s))]], axis=d)
    return np.copy(res) if res is a else res  # a new array, as numpy's


# --------------------------------------------------------------------------
# tile and repeat: a broadcast (summed back), and a gather (added back)

@implements(np.tile)
def tile_entry(bind, A, reps):
    reps = tuple(map(operator.index, reps)) if np.iterable(reps) else (operator.index(reps),)
    shape = shape_of(A)
    if len(reps) < len(shape):
        reps = (1,) * (len(shape) - len(reps)) + reps
    shape = (1,) * (len(reps) - len(shape)) + shape
    if all(r == 1 for r in reps):
        return np.copy(np.reshape(A, shape))
    interleaved = np.reshape(A, tuple(x for n in shape for x in (1, n)))
    wide = np.broadcast_to(interleaved, tuple(x for r, n in zip(reps, shape) for x in (r, n)))
    # numpy's tile is a new array; the reshape of a broadcast may be a view
    return np.copy(np.reshape(wide, tuple(r * n for r, n in zip(reps, shape))))


@implements(np.repeat)
def repeat_entry(bind, a, repeats, axis=None):
    if axis is None:
        a, axis = np.ravel(a), 0
    else:
        axis = normalize_axis_index(operator.index(axis), ndim(a))
    reps = np.asarray(plain(repeats))
    if reps.dtype.kind not in "iub":
        raise TypeError(f"shadowad: np.repeat's repeats must be integers, got {reps.dtype}")
    idx = np.repeat(np.arange(shape_of(a)[axis]), reps)
    return np.take(a, idx, axis=axis)


# --------------------------------------------------------------------------
# pad: constant blocks concatenated; the other modes gather the entries
# numpy's pad of the positions names

_INDEX_MODES = ("edge", "reflect", "symmetric", "wrap")


def _pad_widths(pad_width, nd):
    pw = np.asarray(pad_width)
    if pw.dtype.kind not in "iu":
        raise TypeError("`pad_width` must be of integral type.")
    pw = np.broadcast_to(pw, (nd, 2))
    if (pw < 0).any():
        raise ValueError("index can't contain negative values")
    return pw.tolist()


@implements(np.pad)
def pad_entry(bind, array, pad_width, mode="constant", **kwargs):
    nd = ndim(array)
    if not isinstance(mode, str) or mode not in ("constant",) + _INDEX_MODES:
        raise NotImplementedError(
            f"shadowad: np.pad(..., mode={mode!r}) is not supported on traced values; "
            "supported modes: 'constant', 'edge', 'reflect', 'symmetric', 'wrap'")
    allowed = {"constant": {"constant_values"}, "reflect": {"reflect_type"},
               "symmetric": {"reflect_type"}}.get(mode, set())
    bad = set(kwargs) - allowed
    if bad:
        raise ValueError(f"unsupported keyword arguments for mode '{mode}': {bad}")
    if kwargs.get("reflect_type", "even") != "even":
        raise NotImplementedError("shadowad: np.pad(..., reflect_type='odd') is not "
                                  "supported on traced values")
    widths = _pad_widths(pad_width, nd)
    res = array
    if mode == "constant":
        cv = kwargs.get("constant_values", 0)
        if plain(cv) is not cv:
            raise NotImplementedError("shadowad: np.pad's constant_values must be plain "
                                      "numbers; pad with zeros and add the traced constant "
                                      "with np.where")
        cv = np.broadcast_to(np.asarray(cv, dtype=np.float64), (nd, 2))
        for d, (before, after) in enumerate(widths):
            if not before and not after:
                continue
            shape = list(shape_of(res))
            parts = []
            if before:
                shape[d] = before
                parts.append(np.full(shape, cv[d, 0], float_dtype(array)))  # numpy's cast
            parts.append(res)
            if after:
                shape[d] = after
                parts.append(np.full(shape, cv[d, 1], float_dtype(array)))
            res = np.concatenate(parts, axis=d)
    else:
        for d, (before, after) in enumerate(widths):
            if before or after:
                idx = np.pad(np.arange(shape_of(res)[d]), (before, after), mode=mode)
                res = np.take(res, idx, axis=d)
    return np.copy(res) if res is array else res


# --------------------------------------------------------------------------
# split and array_split: slices (views, as numpy's)

def _split(a, indices_or_sections, axis, equal):
    axis = normalize_axis_index(operator.index(axis), ndim(a))
    n = shape_of(a)[axis]
    if np.iterable(indices_or_sections):
        bounds = [0] + [operator.index(i) for i in indices_or_sections] + [n]
    else:
        sections = operator.index(indices_or_sections)
        if sections <= 0:
            raise ValueError("number sections must be larger than 0.")
        if equal and n % sections:
            raise ValueError("array split does not result in an equal division")
        each, extra = divmod(n, sections)
        sizes = [0] + [each + 1] * extra + [each] * (sections - extra)
        bounds = np.cumsum(sizes).tolist()
    return [a[along(axis, slice(lo, hi))] for lo, hi in zip(bounds[:-1], bounds[1:])]


@implements(np.split)
def split_entry(bind, ary, indices_or_sections, axis=0):
    return _split(ary, indices_or_sections, axis, True)


@implements(np.array_split)
def array_split_entry(bind, ary, indices_or_sections, axis=0):
    return _split(ary, indices_or_sections, axis, False)


def _split_along(name, ary, indices_or_sections, axis, least):
    if ndim(ary) < least:
        raise ValueError(f"{name} only works on arrays of {least} or more dimensions")
    return _split(ary, indices_or_sections, axis, True)


@implements(np.hsplit)
def hsplit_entry(bind, ary, indices_or_sections):
    return _split_along("hsplit", ary, indices_or_sections, 1 if ndim(ary) > 1 else 0, 1)


@implements(np.vsplit)
def vsplit_entry(bind, ary, indices_or_sections):
    return _split_along("vsplit", ary, indices_or_sections, 0, 2)


@implements(np.dsplit)
def dsplit_entry(bind, ary, indices_or_sections):
    return _split_along("dsplit", ary, indices_or_sections, 2, 3)


# --------------------------------------------------------------------------
# append (a concatenate) and delete (a gather of the entries kept)

@implements(np.append)
def append_entry(bind, arr, values, axis=None):
    if axis is None:
        if ndim(arr) != 1:
            arr = np.ravel(arr)
        values = np.ravel(values)
        axis = ndim(arr) - 1
    return np.concatenate((arr, values), axis=axis)


@implements(np.delete)
def delete_entry(bind, arr, obj, axis=None):
    if axis is None:
        arr, axis = np.ravel(arr), 0
    axis = normalize_axis_index(operator.index(axis), ndim(arr))
    keep = np.ones(shape_of(arr)[axis], dtype=bool)
    drop = obj if isinstance(obj, slice) else np.asarray(plain(obj))
    if not isinstance(drop, slice) and drop.dtype.kind not in "iub":
        if drop.size:
            raise IndexError("arrays used as indices must be of integer (or boolean) type")
        drop = drop.astype(np.intp)  # [] deletes nothing
    keep[drop] = False
    return np.take(arr, np.flatnonzero(keep), axis=axis)


# --------------------------------------------------------------------------
# rot90 (numpy's own composition of flip and transpose), fliplr, flipud, kron

@implements(np.fliplr)
def fliplr_entry(bind, m):
    if ndim(m) < 2:
        raise ValueError("Input must be >= 2-d.")
    return np.flip(m, 1)


@implements(np.flipud)
def flipud_entry(bind, m):
    if ndim(m) < 1:
        raise ValueError("Input must be >= 1-d.")
    return np.flip(m, 0)


@implements(np.rot90)
def rot90_entry(bind, m, k=1, axes=(0, 1)):
    axes = tuple(axes)
    nd = ndim(m)
    if len(axes) != 2:
        raise ValueError("len(axes) must be 2.")
    if axes[0] == axes[1] or abs(axes[0] - axes[1]) == nd:
        raise ValueError("Axes must be different.")
    if not (-nd <= axes[0] < nd and -nd <= axes[1] < nd):
        raise ValueError(f"Axes={axes} out of range for array of ndim={nd}.")
    k = operator.index(k) % 4
    if k == 0:
        return m[:]
    if k == 2:
        return np.flip(np.flip(m, axes[0]), axes[1])
    order = list(range(nd))
    order[axes[0]], order[axes[1]] = order[axes[1]], order[axes[0]]
    if k == 1:
        return np.transpose(np.flip(m, axes[1]), order)
    return np.flip(np.transpose(m, order), axes[1])


@implements(np.kron)
def kron_entry(bind, a, b):
    # numpy makes arrays of both: a Python number is a float64 (or int64) array then
    a, b = (np.asarray(v) if type(v) is float or type(v) is int else v for v in (a, b))
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return np.multiply(a, b)
    nd = max(len(sa), len(sb))
    sa = (1,) * (nd - len(sa)) + sa
    sb = (1,) * (nd - len(sb)) + sb
    wide_a = np.reshape(a, tuple(x for n in sa for x in (n, 1)))
    wide_b = np.reshape(b, tuple(x for n in sb for x in (1, n)))
    return np.reshape(wide_a * wide_b, tuple(m * n for m, n in zip(sa, sb)))
