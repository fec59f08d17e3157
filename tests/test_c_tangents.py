"""Tangent variants of the C kernels axpy, sum and dot: checked against the
reverse sweep by the dot-product test <J xdot, ybar> = <xdot, J^T ybar>."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Duplicated
from shadowad._c import lib

rng = np.random.default_rng(7)


def _rel(a, b):
    return abs(a - b) / max(1.0, abs(a), abs(b))


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2)])
def test_axpy_tangent_adjoint(shape):
    a, da = 1.7, rng.standard_normal()
    x, dx = rng.standard_normal(shape), rng.standard_normal(shape)
    y0, dy0 = rng.standard_normal(shape), rng.standard_normal(shape)
    y, dy = y0.copy(), dy0.copy()
    assert lib.sad_axpy_tangent(a, da, id(x), id(dx), id(y), id(dy)) == lib.SAD_OK
    assert np.array_equal(y, y0 + a * x)  # the primal, bit for bit as numpy
    ybar = rng.standard_normal(shape)
    forward = np.vdot(dy, ybar)  # <J (da, dx, dy0), ybar>

    def f(a, x, y):
        sad.axpy(a, x, y)

    xbar, shadow = np.zeros(shape), ybar.copy()
    abar, _, _ = sad.autodiff(f, Active(a), Duplicated(x, xbar), Duplicated(y0.copy(), shadow))
    reverse = da * abar + np.vdot(dx, xbar) + np.vdot(dy0, shadow)
    assert _rel(forward, reverse) < 1e-12


@pytest.mark.parametrize("op", ["sum", "dot"])
def test_reduce_tangent_adjoint(op):
    x, dx = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    y, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    if op == "sum":
        dz = lib.sad_reduce_tangent(lib.SAD_SUM, id(x), id(dx), 0, 0)
        xbar = np.zeros_like(x)

        def f(x):
            return np.sum(x)
        sad.autodiff(f, Duplicated(x, xbar))
        assert _rel(dz * 1.0, np.vdot(dx, xbar)) < 1e-12
    else:
        dz = lib.sad_reduce_tangent(lib.SAD_DOT, id(x), id(dx), id(y), id(dy))
        xbar, ybar = np.zeros_like(x), np.zeros_like(y)

        def f(x, y):
            return np.vdot(x, y)
        sad.autodiff(f, Duplicated(x, xbar), Duplicated(y, ybar))
        assert _rel(dz, np.vdot(dx, xbar) + np.vdot(dy, ybar)) < 1e-12


def test_axpy_tangent_refuses_partial_alias():
    y, dy = np.arange(6.0), np.zeros(6)
    x, yv, dyv = y[:-1], y[1:], dy[1:]
    rc = lib.sad_axpy_tangent(2.0, 0.0, id(x), 0, id(yv), id(dyv))
    assert rc == lib.SAD_TOO_MANY_DIMS
    assert np.array_equal(y, np.arange(6.0))  # nothing written
