"""Where an ndarray's elements lie in memory, and whether two arrays meet.

A leaf module: it imports numpy and the compiled modules only (for an
array's data pointer without building ``__array_interface__``'s dict, and
memcmp), never the engine, so that activity.py's plain annotations can use it
too.  The extension takes the array objects themselves (no id()): the call
holds them while C reads their headers.
"""
import numpy as np

from .._c import fast

__all__ = ["data", "bounds", "element_addresses", "shares_memory", "same_bytes"]

_data = fast.data
_same_elements = fast.same_elements


def data(a):
    """The address of ndarray ``a``'s element 0."""
    return _data(a)


def bounds(a):
    """(lowest byte, one past the highest byte) that ndarray ``a``'s elements
    occupy: np.byte_bounds without its dict (a jacobian pass asks it of 64
    lanes), and (lo, lo) for an array with no elements."""
    lo = hi = _data(a)
    for n, st in zip(a.shape, a.strides):
        if n == 0:
            return lo, lo
        if st < 0:
            lo += (n - 1) * st
        else:
            hi += (n - 1) * st
    return lo, hi + a.itemsize


def element_addresses(a):
    """The byte address of every element of ndarray ``a``, in a's shape."""
    addr = np.full(a.shape, data(a), dtype=np.int64)
    for axis, (n, st) in enumerate(zip(a.shape, a.strides)):
        shape = [1] * a.ndim
        shape[axis] = n
        addr += (np.arange(n, dtype=np.int64) * st).reshape(shape)
    return addr


def shares_memory(a, b):
    """Do arrays a and b share an element?  Exactly, not by bounds: x[::2] and
    x[1::2] do not.  Where numpy finds the exact answer too hard, yes."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=1 << 20))
    except Exception:  # numpy's TooHardError
        return True


def same_bytes(a, b):
    """Do ndarrays a and b hold the same bytes, element for element?  Bytes,
    not values: a NaN equals itself, -0.0 differs from 0.0."""
    if a.dtype == b.dtype and a.dtype.itemsize in (1, 2, 4, 8):
        if a.shape != b.shape:
            return False
        if b.flags.c_contiguous and isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            # b's elements are one block in a's C order: memcmp, no temporaries
            return _same_elements(a, _data(b), a.itemsize)
        u = np.dtype(f"u{a.dtype.itemsize}")
        return np.array_equal(a.view(u), b.view(u))
    return a.tobytes() == b.tobytes()
