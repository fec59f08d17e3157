"""Products of arrays as the chain rule forms them: the zero-factor convention
(shadowad/support/products.py, docs/design-notes.md) applied to each term of a matrix
product, a contraction, an outer or a cross product.

A term ``x[i, l] * y[l, k]`` with a zero factor is exactly 0, even against an
infinite or NaN one; every other term, and every sum, is IEEE's.  The tangent
of a product (a tangent times the other operand) and its transposes (an
adjoint times the other operand) are such products, so with the same
convention in both, forward and reverse mode agree on inf/NaN operands: a
zero entry of a one-hot tangent and a zero entry of an adjoint both
contribute nothing (docs/conventions-nonelementwise.md).

BLAS forms its terms where no select can reach, but a term 0 * inf or 0 * nan
is NaN and a NaN term makes its sum NaN: so a product without NaN entries is
already the convention's, bit for bit, and only the NaN entries of one that
has some are recomputed term by term.  Every function takes engine values
(plain, traced, Boxes of a nested differentiation): the zeros are found on
the plain values.
"""
import numpy as np

from ..support.products import times
from .values import moveaxis, ndim, plain, shape_of

__all__ = ["matmul_times", "dot_times", "inner_times", "vdot_times", "outer_times",
           "cross_times", "scaled_times"]


def _convention(product, termwise):
    """product(x, y, **params) under the convention: its value where it holds
    no NaN; else termwise(x, y, **params) at the NaN entries."""
    def convention(x, y, **params):
        with np.errstate(invalid="ignore"):
            r = product(x, y, **params)
            nan = np.isnan(plain(r))
            if not nan.any():
                return r
            terms = termwise(x, y, **params)
        if np.ndim(nan) == 0:
            return terms
        return np.where(nan, terms, r)
    return convention


def _stacked_terms(x, y):
    """x @ y term by term, for stacks of matrices: one outer product of a
    column of x and a row of y per step along the contracted axis."""
    r = None
    for l in range(shape_of(x)[-1]):
        term = times(x[..., :, l:l + 1], y[..., l:l + 1, :], plain)
        r = term if r is None else r + term
    return r


def _matmul_terms(x, y):
    sx, sy = shape_of(x), shape_of(y)
    x2 = np.reshape(x, (1,) + sx) if len(sx) == 1 else x
    y2 = np.reshape(y, sy + (1,)) if len(sy) == 1 else y
    r = _stacked_terms(x2, y2)
    rs = shape_of(r)
    if len(sx) == 1:
        rs = rs[:-2] + rs[-1:]
    if len(sy) == 1:
        rs = rs[:-1]
    return np.reshape(r, rs)


def _contraction_terms(ib_of):
    """a's last axis contracted with axis ib_of(b.ndim) of b, as one matrix
    product (np.dot: b's second-to-last axis, np.inner: its last)."""
    def terms(a, b):
        sa, sb = shape_of(a), shape_of(b)
        ib = ib_of(len(sb))
        k = sa[-1]
        bm = np.reshape(moveaxis(b, ib, 0), (k, -1))
        r = _stacked_terms(np.reshape(a, (-1, k)), bm)
        return np.reshape(r, sa[:-1] + sb[:ib] + sb[ib + 1:])
    return terms


def _vdot_terms(a, b):
    return np.sum(times(np.reshape(a, (-1,)), np.reshape(b, (-1,)), plain))


def _outer_terms(a, b):
    return times(np.reshape(a, (-1, 1)), np.reshape(b, (1, -1)), plain)


def _cross_terms(a, b, axisa=-1, axisb=-1, axisc=-1):
    a, b = moveaxis(a, axisa % ndim(a), ndim(a) - 1), moveaxis(b, axisb % ndim(b), ndim(b) - 1)

    def component(i, j):
        return times(a[..., i], b[..., j], plain) - times(a[..., j], b[..., i], plain)
    c = np.stack([component(1, 2), component(2, 0), component(0, 1)], axis=-1)
    return moveaxis(c, ndim(c) - 1, axisc % ndim(c))


def _dot_axis(nb):
    return max(nb - 2, 0)


def _inner_axis(nb):
    return nb - 1


matmul_times = _convention(np.matmul, _matmul_terms)
dot_times = _convention(np.dot, _contraction_terms(_dot_axis))
inner_times = _convention(np.inner, _contraction_terms(_inner_axis))
vdot_times = _convention(np.vdot, _vdot_terms)
outer_times = _convention(np.outer, _outer_terms)
cross_times = _convention(np.cross, _cross_terms)


def scaled_times(g, x):
    """g * x, a scalar adjoint or tangent times an array, under the convention."""
    return times(g, x, plain)
