"""shadowad in two examples: the DESIGN.md quickstart and Enzyme's documentation example.

Every argument of f carries an activity: Active (a value whose gradient is
returned), Duplicated (memory plus a shadow the gradient is *added* to), or
Const.  f itself is ordinary numpy code that mutates its arguments in place.
"""
import numpy as np

import shadowad as sad
from shadowad import Active, Const, Duplicated, autodiff


def f(a, x, c, y):
    sad.axpy(a, x, y)          # y += a*x, in place
    y[0] = x[1] * c[0]         # overwrite one entry (setindex)
    return np.sum(y * y)


def enzyme_example(x, y):
    y[0] = x[0] * x[0] + x[1] * x[0]


def main():
    # --- 1. the DESIGN.md example ---------------------------------------------
    a = 2.0
    x, dx = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    c = np.array([0.5])
    y, dy = np.array([1.0, 1.0, 1.0]), np.zeros(3)
    y0 = y.copy()

    grads = autodiff(f, Active(a), Duplicated(x, dx), Const(c), Duplicated(y, dy))
    print("grads (one per argument):", grads)
    print("dx =", dx, "  dy =", dy, "  y after the call =", y)

    # the same by hand: y1 = y0 + a*x with y1[0] = x[1]*c[0]; L = sum(y1**2)
    y1 = y0 + a * x
    y1[0] = x[1] * c[0]
    g = 2 * y1                                   # dL/dy1
    assert np.isclose(grads[0], g[1:] @ x[1:])   # y1[0] no longer depends on a
    want_dx = a * g
    want_dx[0] = 0.0
    want_dx[1] += g[0] * c[0]
    assert np.allclose(dx, want_dx)
    assert np.allclose(dy, np.r_[0.0, g[1:]])    # y[0] was overwritten: no gradient
    assert grads[1:] == (None, None, None)
    assert np.array_equal(y, y1)                 # y holds what f left in it

    # --- 2. Enzyme's documentation example --------------------------------------
    # Shadows are turned from "adjoint after the call" into "adjoint before the
    # call": dy = [1] seeds y[0]; y[0] is overwritten, so its shadow is consumed.
    x, dx = np.array([2.0, 2.0]), np.zeros(2)
    y, dy = np.array([0.0]), np.array([1.0])
    autodiff(enzyme_example, Duplicated(x, dx), Duplicated(y, dy))
    print("Enzyme example: dx =", dx, " dy =", dy, " y =", y)
    assert dx.tolist() == [6.0, 2.0] and dy.tolist() == [0.0] and y.tolist() == [8.0]
    print("ok")


if __name__ == "__main__":
    main()
