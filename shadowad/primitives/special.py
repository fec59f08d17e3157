"""numpy's elementwise functions that are not ufuncs: ``np.sinc``.

sinc(x) = sin(pi x) / (pi x), 1 at 0.  Its derivative is written once,
(cos(pi x) - sinc(x)) / x, in generic numpy, so an enclosing differentiation
differentiates it again.  At x = 0 the formula is 0 / 0; there the
derivative is written as the line ``x * (-pi**2 / 3)``: its value is
sinc'(0) = 0 and its own derivative sinc''(0) = -pi**2 / 3, so first, second
and third derivatives are exact at 0 (a fourth derivative there gives 0
instead of pi**4 / 5).  The value is numpy's own, bit for bit.
"""
import numpy as np

from ..support.products import times
from .core import Primitive, implements
from .elementwise_rules import ELEMENTWISE_CALLS
from .values import plain, shape_of, unbroadcast

__all__ = ["sinc", "sinc_derivative"]

_SINC2 = -np.pi ** 2 / 3.0  # sinc''(0)


def sinc_derivative(x):
    """sinc'(x) on any engine's values (0 at x = 0, with sinc''(0) as its slope)."""
    zero = plain(x) == 0
    if not np.any(zero):
        return (np.cos(np.pi * x) - np.sinc(x)) / x
    safe = np.where(zero, 1.0, x)
    # (+ 0.0: the value there is +0.0 at x = ±0 in every engine, not -0.0)
    return np.where(zero, x * _SINC2 + 0.0, (np.cos(np.pi * safe) - np.sinc(safe)) / safe)


def _jvp(ts, vals, out, params):
    with np.errstate(all="ignore"):
        return times(ts[0], sinc_derivative(vals[0]), plain)


def _vjp(k, g, vals, out, params):
    with np.errstate(all="ignore"):
        return unbroadcast(times(g, sinc_derivative(vals[0]), plain), shape_of(vals[0]))


sinc = Primitive("sinc", np.sinc, _jvp, _vjp)


@implements(np.sinc)
def _sinc_entry(bind, x):
    return bind(sinc, (x,), {}, None)


ELEMENTWISE_CALLS.add(np.sinc)
