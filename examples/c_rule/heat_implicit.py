"""An implicit heat-equation loop whose linear solves are a C rule.

Each step solves (I - r L) u_new = u in place with the C Thomas solver; the
gradient of the final energy with respect to the initial state and the
diffusion coefficients comes from the rule's C adjoint, checked against
finite differences and against the same loop written with np.linalg.solve.
Run `python examples/c_rule/build.py` first."""
import os
import sys

import numpy as np

import shadowad as sad

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tridiag import solve  # noqa: E402

M, STEPS = 64, 200


def heat(kappa, u):
    """kappa: diffusion per cell (active); u: the state, overwritten step by step."""
    sub = -kappa
    sup = -kappa
    diag = 1.0 + 2.0 * kappa
    for _ in range(STEPS):
        solve(sub, diag, sup, u)
    return np.sum(u * u)


def heat_numpy(kappa, u):
    n = len(u)
    lap = (np.eye(n, k=1) + np.eye(n, k=-1))
    a = np.eye(n) * (1.0 + 2.0 * kappa) - lap * kappa[:, None]
    for _ in range(STEPS):
        u = np.linalg.solve(a, u)
    return np.sum(u * u)


def main():
    x = np.linspace(0.0, 1.0, M)
    u0 = np.exp(-50.0 * (x - 0.5) ** 2)
    kappa = 0.3 + 0.1 * np.sin(3.0 * x)
    dk, du = np.zeros(M), np.zeros(M)
    u = u0.copy()
    sad.autodiff(heat, sad.Duplicated(kappa.copy(), dk), sad.Duplicated(u, du))
    gk, gu = sad.gradient(heat_numpy, kappa.copy(), u0.copy())
    print("C rule vs numpy: kappa", np.max(np.abs(dk - gk)), " u0", np.max(np.abs(du - gu)))
    assert np.allclose(dk, gk, rtol=1e-9, atol=1e-12) and np.allclose(du, gu, rtol=1e-9, atol=1e-12)
    e = np.zeros(M)
    e[M // 2] = 1e-6
    fd = (heat(kappa + e, u0.copy()) - heat(kappa - e, u0.copy())) / 2e-6
    print("finite differences:", fd, "adjoint:", dk[M // 2])
    assert np.isclose(fd, dk[M // 2], rtol=1e-5)


if __name__ == "__main__":
    main()
