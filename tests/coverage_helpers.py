"""Helpers shared by the coverage tests of the numpy families
(tests/test_*_coverage.py): annotated arguments, a fixed cotangent, and a
function's value as computed on traced arguments."""
import numpy as np

import shadowad as sad
from shadowad import Active, Duplicated


def dup(a):
    a = np.array(a, dtype=float)
    return Duplicated(a, np.zeros_like(a))


def weights(shape):
    """A fixed, non-uniform cotangent, so a transposed or misplaced adjoint shows."""
    n = int(np.prod(shape))
    return (np.arange(1.0, n + 1.0) / 7.0 + (np.arange(n) % 3 == 1)).reshape(shape)


def wsum(r):
    """sum(r * w): a scalar whose gradient with respect to r is w."""
    return np.sum(r * weights(np.shape(r)))


def value(f, *xs):
    """f's value on traced arguments, as plain numpy (each item of a tuple)."""
    seen = []
    sad.autodiff(lambda *a: seen.append(f(*a)) or 0.0,
                 *[Active(np.array(x, dtype=float)) for x in xs])
    r = seen[0]
    return tuple(_plain(v) for v in r) if isinstance(r, tuple) else _plain(r)


def _plain(v):
    p = sad.primal(v)
    return np.asarray(p) if isinstance(p, (float, np.floating, np.ndarray)) else p


def _derivative(g, mode):
    if mode is sad.Reverse:
        return lambda t: sad.autodiff(g, Active(t))[0]
    return lambda t: sad.autodiff(g, Duplicated(t, 1.0), mode=sad.Forward)


def check_third_derivative(program, modes):
    """The third derivative of ``program`` along a line, through two nested
    differentiations in ``modes`` (outer to inner), against a central
    difference of its values."""
    x0, d = np.array([0.9, 0.45, 1.3, 0.7]), np.array([0.3, -0.7, 0.5, 0.2])

    def line(t):
        return program(x0 + t * d)
    h = 1e-3
    g = lambda t: float(line(t))  # noqa: E731
    expect = (g(2 * h) - 2 * g(h) + 2 * g(-h) - g(-2 * h)) / (2 * h ** 3)
    got = _derivative(_derivative(_derivative(line, modes[0]), modes[1]), modes[2])(0.0)
    np.testing.assert_allclose(got, expect, rtol=2e-4, atol=1e-6)
