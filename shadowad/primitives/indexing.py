"""Indexing: reading entries (``take``: ``a[idx]`` as a copy), adding into
entries (``scatter_add``, take's transpose) and writing entries (``put``:
``a[idx] = v``) -- each defined once.

``idx`` is a static parameter (plain integers, slices, None, Ellipsis,
integer or boolean arrays); the engines hold index arrays as they were when
used (shadowad/engines/reverse/snapshots.py), since the sweeps index with them again.

take and scatter_add are linear and each other's transposes; a repeated
entry of a fancy index reads one value twice, so its adjoints add
(``np.add.at``, never ``z[idx] += g``, which keeps one of them).

put is the mutating primitive (``mutates=(0,)``): its value is ``a``'s new
content, which the engines store into ``a``.  In reverse mode the engine
saves ``a``'s bytes before the call and restores them before the reverse
(primitives/protocol.py); the adjoint of the written entries goes to ``v``
(the last write of a repeated entry wins, as in numpy) and those entries'
adjoint becomes zero, since their old values no longer reach the result.
"""
import numpy as np

from .core import Primitive, apply, deflinear, implements
from .elementwise import float_type
from .values import shape_of, unbroadcast, zeros_for

__all__ = ["take", "scatter_add", "put", "positions", "last_writes", "occurrences", "take_of"]

_PLAIN = (np.ndarray, float, int, np.generic)
_AxisError = getattr(np, "exceptions", np).AxisError  # numpy < 1.25: np.AxisError


def positions(shape, idx):
    """The flat positions that ``a[idx]`` names for an array of ``shape``,
    in a[idx]'s shape (plain integers)."""
    return np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)[idx]


def last_writes(shape, idx):
    """For ``a[idx] = v``: True where a position's write survives (numpy
    keeps the last write of a repeated entry), in a[idx]'s shape; None when
    every entry is written once (the common case)."""
    pos = positions(shape, idx)
    flat = np.reshape(pos, -1)
    if np.unique(flat).size == flat.size:
        return None
    _, first = np.unique(flat[::-1], return_index=True)
    last = np.zeros(flat.size, dtype=bool)
    last[flat.size - 1 - first] = True
    return np.reshape(last, np.shape(pos))


def _take(a, idx):
    z = a[idx]
    if type(a) is np.ndarray and type(z) is np.ndarray and np.may_share_memory(z, a):
        return z.copy()  # a basic index: numpy's view, but take's value is a copy
    return z


def occurrences(flat):
    """For each position of ``flat``, how many earlier positions name the
    same entry (0 for a first occurrence)."""
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    lengths = np.diff(np.r_[starts, flat.size])
    rank = np.arange(flat.size) - np.repeat(starts, lengths)
    occ = np.empty(flat.size, dtype=np.int64)
    occ[order] = rank
    return occ


def _scatter_add(g, idx, shape):
    """Zeros of ``shape`` with ``g`` added at ``idx`` (repeated entries sum)."""
    if isinstance(g, _PLAIN):
        z = np.zeros(shape)
        np.add.at(z, idx, g)
        return z
    # g carries an enclosing differentiation's derivative: only writes of
    # distinct entries into a buffer of its kind, one round per repetition,
    # so that every engine records what it computes
    pos = positions(shape, idx)
    if np.ndim(pos) == 0:
        z = np.zeros_like(g, shape=shape)
        z[idx] = g
        return z
    flat = np.reshape(pos, -1)
    gf = np.reshape(g, (-1,))
    occ = occurrences(flat)
    n = int(np.prod(shape, dtype=np.int64))
    total = None
    for r in range(int(occ.max()) + 1 if occ.size else 1):
        sel = np.flatnonzero(occ == r)
        z = np.zeros_like(g, shape=(n,))
        if sel.size == flat.size:
            z[flat] = gf
        elif sel.size:
            z[flat[sel]] = gf[sel]
        total = z if total is None else total + z
    return np.reshape(total, shape)


def take_of(g, idx):
    if np.ndim(g) == 0 and (idx is Ellipsis or (type(idx) is tuple and not idx)):
        return g  # a 0-d adjoint may be a scalar of an engine, which has no [...]
    return g[idx]


def scatter_add_of(g, idx, shape):
    return apply(scatter_add, (g,), {"idx": idx, "shape": shape})


take = deflinear(Primitive("take", _take),
                 lambda g, a, params: scatter_add_of(g, params["idx"], shape_of(a)))
scatter_add = Primitive(
    "scatter_add", _scatter_add,
    lambda ts, vals, out, params: scatter_add_of(ts[0], params["idx"], params["shape"]),
    lambda k, g, vals, out, params: take_of(g, params["idx"]))


# --------------------------------------------------------------------------
# put: a[idx] = v

def _put(a, v, idx):
    if isinstance(a, _PLAIN) and not isinstance(v, _PLAIN):
        # v carries an enclosing differentiation's derivative that plain
        # memory cannot hold: a's values in a buffer of v's kind
        z = np.zeros_like(v, shape=shape_of(a))
        z[...] = a
    elif isinstance(a, np.ndarray):  # float32 stays float32, other kinds become float64
        z = np.array(a, dtype=float_type((a,)))
    else:
        z = np.copy(a)
    z[idx] = v
    return z


def _put_jvp(ts, vals, out, params):
    ta, tv = ts
    a, v = vals
    idx = params["idx"]
    if ta is None:
        ta = zeros_for(a, shape_of(a))
    if tv is None:
        tv = 0.0
    return put_of(ta, tv, idx)


def _put_vjp(k, g, vals, out, params):
    idx = params["idx"]
    a, v = vals
    if k == 0:  # the written entries' old values no longer reach the result
        return put_of(g, 0.0, idx)
    gv = take_of(g, idx)
    last = last_writes(shape_of(a), idx)
    if last is not None:
        gv = np.where(last, gv, 0.0)
    return unbroadcast(gv, shape_of(v))


def put_of(a, v, idx):
    return apply(put, (a, v), {"idx": idx})


put = Primitive("put", _put, _put_jvp, _put_vjp, mutates=(0,))


# --------------------------------------------------------------------------
# np.take: a gather along an axis (or of the flattened array)

@implements(np.take)
def take_entry(bind, a, indices, axis=None, out=None, mode="raise"):
    if mode not in ("raise", "wrap", "clip"):
        raise ValueError(f"clipmode must be one of 'clip', 'raise', or 'wrap' (got {mode!r})")
    ind = np.asarray(indices)
    if ind.dtype.kind not in "iu":
        raise IndexError("shadowad: np.take's indices must be integers, got "
                         f"{ind.dtype}")
    flat = axis is None
    if flat:
        a = np.reshape(a, (-1,))
        axis = 0
    nd = len(shape_of(a))
    axis = int(axis)
    if not -nd <= axis < nd:
        raise _AxisError(axis, nd)
    if mode != "raise" and ind.size:  # the entries numpy reads
        n = shape_of(a)[axis]
        if not n:
            raise IndexError("cannot do a non-empty take from an empty axes.")
        ind = ind % n if mode == "wrap" else np.clip(ind, 0, n - 1)
    idx = ind if flat else (slice(None),) * (axis % nd) + (ind,)
    return bind(take, (a,), {"idx": idx}, out)
