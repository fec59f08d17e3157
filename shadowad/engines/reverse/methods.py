"""ndarray methods that no numpy function of the same name gives:
``x.astype(dtype)``, shared by the traced types of every engine (reverse and
forward arrays, nested Boxes) so it is written once.  (The in-place
``x.sort()`` and ``x.put()`` are np.sort and np.put written into x:
interface.py.)"""
import numpy as np

from ...primitives import core, shape
from ...primitives.values import plain

__all__ = ["astype", "CASTING"]

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)

# the traced types whose engine holds float32 values (the reverse engine's
# rules add theirs): astype casts them between float64 and float32
CASTING = set()


def astype(x, dtype, copy, what):
    """x.astype(dtype): its own float type keeps the derivative (a copy unless
    copy=False), and so does float64 <-> float32 (the cast primitive: its
    adjoint is cast back); integers and booleans are plain values without
    derivative, as numpy users take masks and indices; other float dtypes are
    refused."""
    dt = np.dtype(dtype)
    own = getattr(x, "dtype", _F64)  # (a traced scalar is a float64)
    if dt == own:
        return np.copy(x) if copy else x
    if dt in (_F32, _F64) and own in (_F32, _F64) and type(x) in CASTING:
        return core.apply(shape.astype, (x,), {"dtype": dt}, numpy_impl=False)
    if dt.kind in "biu":
        return np.asarray(plain(x)).astype(dt)
    raise TypeError(f"shadowad: x.astype({dt}) of {what}: traced values are float64, and "
                    f"{dt} is not supported yet; keep float64, or take the values without "
                    "derivative on purpose with sad.primal(x).astype(...)")
