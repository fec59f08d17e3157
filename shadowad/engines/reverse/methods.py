"""ndarray methods that no numpy function of the same name gives:
``x.astype(dtype)``, shared by the traced types of every engine (reverse and
forward arrays, nested Boxes) so it is written once.  (The in-place
``x.sort()`` and ``x.put()`` are np.sort and np.put written into x:
interface.py.)"""
import numpy as np

from ...primitives.values import plain

__all__ = ["astype"]


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
