"""The chain rule's product, with the convention every engine follows
(DESIGN.md section 3, docs/design-notes.md): a zero factor gives exactly zero,
even against an infinite or NaN one.  A partial times an adjoint in reverse
mode, a partial times a tangent in forward mode: 0 * inf = 0 and 0 * nan = 0,
so a value that never reaches the result (a zero adjoint) cannot poison a
gradient, nor a zero partial (sqrt(x)**2 at 0) a tangent.  Everywhere else the
product is IEEE's, bit for bit.  The C kernels apply the same selects
(csrc/core/sad.h: sad_contributes, sad_chain; csrc/ops/ew_forward.c: tangent_first).
"""
import numpy as np


def times(a, b, plain=None):
    """a * b with the zero-factor convention.  a and b are floats or arrays
    (broadcast as numpy does); with ``plain`` (a function giving the plain
    value of a traced one) they may be traced values of an enclosing
    differentiation, and the zeros are found on their plain values."""
    if type(a) is float and type(b) is float:
        r = a * b
        return 0.0 if r != r and (a == 0.0 or b == 0.0) else r
    with np.errstate(invalid="ignore"):
        r = a * b
    pr, pa, pb = (r, a, b) if plain is None else (plain(r), plain(a), plain(b))
    nan = np.isnan(pr)
    if not np.any(nan):
        return r
    zero = nan & ((np.asarray(pa) == 0.0) | (np.asarray(pb) == 0.0))
    if not np.any(zero):
        return r
    if np.ndim(zero) == 0:
        return 0.0
    return np.where(zero, 0.0, r)


def finite_nonzero(v):
    """Is the float v finite and not zero?  Then v times anything is IEEE's
    product under the convention, and the scalar fast paths need no select."""
    return v != 0.0 and v - v == 0.0


__all__ = ["times", "finite_nonzero"]
