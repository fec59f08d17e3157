"""ndarray methods that no numpy function of the same name gives:
``x.astype(dtype)`` (a float cast is the primitive of
shadowad/primitives/casting.py), shared by the traced types of every engine (reverse and
forward arrays, nested Boxes) so it is written once.  (The in-place
``x.sort()`` and ``x.put()`` are np.sort and np.put written into x:
interface.py.)"""
import numpy as np

from ...primitives import core
from ...primitives.casting import FLOATS, cast
from ...primitives.values import plain, shape_of

__all__ = ["astype"]


def astype(x, dtype, copy, what):
    """x.astype(dtype): the same float dtype keeps the derivative (a copy
    unless copy=False); the other float dtype of the two shadowad
    differentiates (float64, float32) is the cast primitive; integers and
    booleans are plain values without derivative, as numpy users take masks
    and indices; other dtypes are refused."""
    dt = np.dtype(dtype)
    own = getattr(plain(x), "dtype", np.dtype(np.float64))
    if dt == own:
        return np.copy(x) if copy and shape_of(x) != () else x
    if dt in FLOATS:
        return core.apply(cast, (x,), {"dtype": dt}, numpy_impl=False)
    if dt.kind in "biu":
        return np.asarray(plain(x)).astype(dt)
    raise TypeError(f"shadowad: x.astype({dt}) of {what}: shadowad differentiates float64 "
                    f"and float32 values, not {dt}; keep one of those, or take the values "
                    "without derivative on purpose with sad.primal(x).astype(...)")
