"""Which values numpy's ``dst[idx] = src`` really leaves when src and dst
share memory.

The C copy record, the tangent kernels and the ufuncs' ``out=`` all compute
as if src had been copied before dst is written, and so does numpy almost
everywhere.  Two exceptions: numpy copies a one-dimensional overlapping
assignment whose strides point the same way without a buffer (forwards or
backwards, by which array starts first), which is right for equal strides
only: ``a[2:6] = a[1:8:2]`` on ``arange(8.) + 1`` leaves
``[1, 2, 2, 4, 8, 8, 7, 8]``, an element copied twice.  And a boolean-mask
assignment never buffers its source.  shadowad must leave the bits numpy
leaves and differentiate them, so the write paths ask ``numpy_sources``
first, and where numpy departs from as-if-copied they write a gather of the
source elements numpy ends up with, which then overlaps nothing.

The answer is numpy's own: the same assignment is run on labels, float64
memory laid out as the shared memory (same relative offsets and strides) and
holding each element's position, so numpy takes the same path.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from .memory import bounds, data
from ..engines.reverse.untraced import F32, F64


def numpy_sources(dst, idx, src):
    """None when numpy's ``dst[idx] = src`` (float64 or float32 arrays of one
    dtype) leaves in dst
    what copying src first would, which is always the case when they share no
    memory.  Otherwise the advanced index into src (a tuple of integer
    arrays of the shape of ``dst[idx]``) of the element whose value numpy
    leaves in each element of ``dst[idx]``: ``dst[idx] = src[that]`` then
    writes the same bits with no overlap."""
    if type(src) is not np.ndarray or not np.may_share_memory(dst, src):
        return None  # the common case: one bounds check
    if src.dtype != dst.dtype or src.dtype not in (F64, F32) or src.ndim == 0:
        return None
    if idx is Ellipsis and src.shape == dst.shape and src.strides == dst.strides:
        # equal steps (the write-back after ``a[i:j] += x`` in forward mode
        # among them): numpy copies in the safe direction or buffers
        return None
    size = dst.itemsize
    dlo, dhi = bounds(dst)
    slo, shi = bounds(src)
    lo, hi = min(dlo, slo), max(dhi, shi)
    if (dlo - lo) % size or (slo - lo) % size:  # not whole elements apart
        return None

    def lay(mem, a):
        return as_strided(mem[(data(a) - lo) // size:], a.shape, a.strides)

    # labels of the elements' own type (float32 counts exactly to 2**24; past
    # that, int32 labels of the same size move as float32 ones do)
    n = (hi - lo) // size
    labels = np.arange(n, dtype=dst.dtype if size == 8 or n < 2 ** 24 else np.int32)
    copied = labels.copy()
    before = np.array(lay(labels, src))
    lay(labels, dst)[idx] = lay(labels, src)  # numpy's way
    lay(copied, dst)[idx] = before            # as if src were copied first
    if np.array_equal(labels, copied):
        return None
    got = np.array(lay(labels, dst)[idx])
    flat = before.ravel()
    order = np.argsort(flat, kind="stable")
    k = order[np.searchsorted(flat[order], got)]
    return np.unravel_index(k, src.shape)
