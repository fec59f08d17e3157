"""Jacobians by forward lanes and by reverse sweeps, and BatchDuplicated.

Forward mode gives one *column* of the Jacobian per tangent direction, and
carries many directions at once as lanes; reverse mode gives one *row* per
sweep, and sweeps one recorded tape once per output.  So forward mode suits
tall Jacobians (few inputs, many outputs) and reverse mode wide ones.
``sad.jacobian`` picks for you, or takes ``mode=sad.Forward / sad.Reverse``.
"""
import numpy as np

import shadowad as sad
from shadowad import BatchDuplicated, Const, Forward, Reverse


def fd_jacobian(f, x, *consts, h=1e-6):
    """Central finite differences, column by column (on plain copies)."""
    x = np.asarray(x, dtype=float)
    cols = []
    for e in np.eye(x.size):
        xp, xm = x + h * e.reshape(x.shape), x - h * e.reshape(x.shape)
        cols.append((np.asarray(f(xp, *map(np.copy, consts)))
                     - np.asarray(f(xm, *map(np.copy, consts)))) / (2 * h))
    return np.stack(cols, axis=-1)


# --- a tall function R^1 -> R^21: the residual of a Gaussian fit -------------------
XG = np.arange(-10.0, 11.0)


def rs(xs, d):
    """d minus its projection onto a Gaussian bump centred at xs."""
    d0 = np.exp(-1.5 * (XG - xs) ** 2)
    return d - np.sum(d * d0) / np.sum(d0 * d0) * d0


# --- a wide function R^7 -> R^2 that works in place on a scratch copy ---------------
W = np.random.default_rng(0).standard_normal((2, 7))


def smooth_then_project(x):
    b = x * 1.0                       # a scratch buffer, then updated in place
    for i in range(1, b.shape[0]):
        b[i] += 0.5 * b[i - 1] * b[i]
    return W @ np.tanh(b)


def issue_f(x):
    return np.sin(x) * x[::-1] + np.cumsum(x)


def main():
    # 1. tall: one scalar input, 21 outputs -> forward mode (one pass)
    d = np.random.default_rng(1).standard_normal(21)
    J_fwd = sad.jacobian(rs, 0.3, Const(d))                  # automatic: Forward
    J_rev = sad.jacobian(rs, 0.3, Const(d), mode=Reverse)    # 21 sweeps over one tape
    h = 1e-6
    J_fd = (rs(0.3 + h, d) - rs(0.3 - h, d)) / (2 * h)
    print("tall  rs: J shape", J_fwd.shape, " |fwd - rev| =", np.abs(J_fwd - J_rev).max(),
          " |fwd - fd| =", np.abs(J_fwd - J_fd).max())
    assert J_fwd.shape == (21,)
    assert np.allclose(J_fwd, J_rev, rtol=1e-12, atol=1e-13)
    assert np.allclose(J_fwd, J_fd, rtol=1e-6, atol=1e-8)

    # 2. wide: 7 inputs, 2 outputs -> reverse mode (two sweeps over one tape)
    x = np.linspace(-0.9, 0.9, 7)
    x_before = x.copy()
    J_rev = sad.jacobian(smooth_then_project, x)             # automatic: Reverse
    J_fwd = sad.jacobian(smooth_then_project, x, mode=Forward)
    J_fd = fd_jacobian(smooth_then_project, x)
    print("wide  W tanh(smooth(x)): J shape", J_rev.shape,
          " |fwd - rev| =", np.abs(J_fwd - J_rev).max(), " |rev - fd| =",
          np.abs(J_rev - J_fd).max())
    assert J_rev.shape == (2, 7)
    assert np.allclose(J_fwd, J_rev, rtol=1e-12, atol=1e-13)
    assert np.allclose(J_rev, J_fd, rtol=1e-6, atol=1e-8)
    assert np.array_equal(x, x_before)                       # x is never modified

    # 3. BatchDuplicated in forward mode: identity lanes give every column in one run
    n = 5
    x = np.linspace(-1.0, 1.0, n)
    cols = sad.autodiff(issue_f, BatchDuplicated(x, tuple(np.eye(n))), mode=Forward)
    J_cols = np.column_stack(cols)                           # cols[j] = column j

    # 4. BatchDuplicated in reverse mode: k seeds swept over ONE tape.  f writes its
    #    result into y; seeding y's shadow with e_i pulls back row i into x's shadow.
    def g(x, y):
        y[...] = np.sin(x) * x[::-1] + np.cumsum(x)

    y = np.zeros(n)
    dxs = tuple(np.zeros(n) for _ in range(n))
    dys = tuple(np.eye(n).copy())                            # seed i: d y_i
    sad.autodiff(g, BatchDuplicated(x, dxs), BatchDuplicated(y, dys))
    J_rows = np.vstack(dxs)                                  # dxs[i] = row i

    J_fd = fd_jacobian(issue_f, x)
    print("batch sin(x)*x[::-1] + cumsum(x): |fwd lanes - rev seeds| =",
          np.abs(J_cols - J_rows).max(), " |fwd - fd| =", np.abs(J_cols - J_fd).max())
    assert np.allclose(J_cols, J_rows, rtol=1e-13, atol=1e-14)
    assert np.allclose(J_cols, J_fd, rtol=1e-6, atol=1e-8)
    assert np.allclose(y, issue_f(x))                        # y holds what g wrote
    print("ok")


if __name__ == "__main__":
    main()
