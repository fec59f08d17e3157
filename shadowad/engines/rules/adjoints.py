"""Adding into adjoint memory at sweep time: un-broadcast to the target's
shape, stored into memory no record has touched yet, summed correctly into
broadcast views.  Every rule family uses these."""
import numpy as np

from ..reverse.buffers import LazyView, adjoint_for_pullback
from ..reverse.scalar import TScalar, adjoint_view
from ..reverse.traced import TArray

__all__ = ["accumulate", "add_into", "unbroadcast"]


def unbroadcast(g, shape):
    """Sum g over the axes that broadcasting to g.shape added to ``shape``."""
    if type(g) is not np.ndarray:  # a number (a scalar result's adjoint, broadcast)
        return g
    if g.shape == tuple(shape) or g.ndim < len(shape):  # the latter broadcasts in +=
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(d for d, n in enumerate(shape) if n == 1 and g.shape[d] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


def _distinct(s, g):
    """The shadow of a broadcast view (stride 0) names each element many times,
    and numpy's ``s += g`` would keep one term of each sum: sum g over those
    axes and keep one index of s along them."""
    axes = tuple(d for d, (n, st) in enumerate(zip(s.shape, s.strides)) if st == 0 and n > 1)
    if not axes:
        return s, g
    g = np.broadcast_to(g, s.shape).sum(axis=axes, keepdims=True)
    return s[tuple(slice(0, 1) if d in axes else slice(None) for d in range(s.ndim))], g


def accumulate(dst, g):
    """dst (a TArray, TScalar or constant) += g, un-broadcast to its shape."""
    t = type(dst)
    if t is TArray or t is LazyView:
        s, fresh = adjoint_for_pullback(dst)
        if s is not None:
            add_into(s, g, fresh)
    elif t is TScalar:
        adjoint_view(dst.g)[...] += np.sum(g)


def add_into(s, g, fresh=False):
    """Adjoint view s += g, un-broadcast to s's shape; ``fresh``: s is new
    memory (see buffers.adjoint_for_pullback), stored into instead."""
    g = unbroadcast(g, s.shape)
    if fresh:
        np.add(0.0, g, out=s)  # as adding into +0.0 would: -0.0 becomes +0.0
        return
    if 0 in s.strides:
        s, g = _distinct(s, g)
    s += g
