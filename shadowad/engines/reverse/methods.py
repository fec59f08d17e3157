"""ndarray methods that no numpy function of the same name gives: the in-place
``x.sort()`` and ``x.astype(dtype)``, shared by the traced types of every
engine (reverse and forward arrays, nested Boxes) so each is written once."""
import numpy as np

from ...primitives.core import registered
from ...primitives.values import plain

__all__ = ["sort_in_place", "astype"]


def _has_rule(func):
    return any(f is func for f, _ in registered())


def sort_in_place(x, axis=-1, kind=None, order=None):
    """x.sort(): x's entries put in sorted order in x's own memory, as a write
    of the sorted values, so the derivative follows the permutation (ties:
    the permutation np.argsort gives with the same ``kind``)."""
    if order is not None:
        raise ValueError("Cannot specify order when the array has no fields.")
    if axis is None:
        raise TypeError("'NoneType' object cannot be interpreted as an integer")
    if _has_rule(np.sort):
        x[...] = np.sort(x, axis=axis, kind=kind)
        return
    p = np.asarray(plain(x))
    perm = np.argsort(p, axis=axis, kind=kind)  # plain integers: no derivative of its own
    axis = axis % p.ndim
    index = list(np.meshgrid(*[np.arange(n) for n in p.shape], indexing="ij", sparse=True))
    index[axis] = perm
    x[...] = x[tuple(index)]


def astype(x, dtype, copy, what):
    """x.astype(dtype): float64 keeps the derivative (a copy unless
    copy=False); integers and booleans are plain values without derivative,
    as numpy users take masks and indices; other float dtypes are refused
    (traced values are float64)."""
    dt = np.dtype(dtype)
    if dt == np.float64:
        return np.copy(x) if copy else x
    if dt.kind in "biu":
        return np.asarray(plain(x)).astype(dt)
    raise TypeError(f"shadowad: x.astype({dt}) of {what}: traced values are float64, and "
                    f"{dt} is not supported yet; keep float64, or take the values without "
                    "derivative on purpose with sad.primal(x).astype(...)")
