"""An implicit heat-equation loop whose linear solves are a C rule.

Each step solves (I - r L) u_new = u in place with the C Thomas solver; the
gradient of the final energy with respect to the initial state and the
diffusion coefficients comes from the rule's C adjoint, checked against
finite differences and against the same loop written with np.linalg.solve.
Second derivatives: how the gradient in the initial state moves with the
weights of the energy runs the C tangent and adjoint again (the solves do
not depend on the weights); the Hessian in the diffusion coefficients,
which the matrix does depend on, differentiates the rule's numpy
definition (tridiag.solve_numpy, its nested=).
Run `python examples/c_rule/build.py` first."""
import os
import sys

import numpy as np

import shadowad as sad

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tridiag import solve  # noqa: E402

M, STEPS = 64, 200


def heat(kappa, u, steps=STEPS, w=1.0):
    """kappa: diffusion per cell (active); u: the state, overwritten step by
    step; w: the energy's weights."""
    sub = -kappa
    sup = -kappa
    diag = 1.0 + 2.0 * kappa
    for _ in range(steps):
        solve(sub, diag, sup, u)
    return np.sum(w * u * u)


def heat_numpy(kappa, u, steps=STEPS, w=1.0):
    n = len(u)
    lap = (np.eye(n, k=1) + np.eye(n, k=-1))
    a = np.eye(n) * (1.0 + 2.0 * kappa) - lap * kappa[:, None]
    for _ in range(steps):
        u = np.linalg.solve(a, u)
    return np.sum(w * u * u)


def weight_sensitivity(energy, kappa, u0, w, v):
    """d/dw (the gradient in u0) along v: forward mode over a reverse
    gradient; the solves' values do not depend on w."""
    def grad_u0(w):
        du = np.zeros_like(w)  # memory of the differentiation in w
        sad.autodiff(lambda u: energy(kappa, u, STEPS, w), sad.Duplicated(u0.copy(), du))
        return du
    return sad.autodiff(grad_u0, sad.Duplicated(w.copy(), v.copy()), mode=sad.Forward)


def kappa_hvp(energy, kappa, u0, v, steps):
    """The Hessian in kappa times v: here the solves' matrix depends on the
    outer differentiation."""
    def grad_kappa(k):
        dk = np.zeros_like(k)
        sad.autodiff(lambda k, u: energy(k, u, steps), sad.Duplicated(k, dk),
                     sad.Duplicated(np.zeros_like(k) + u0, np.zeros_like(k)))
        return dk
    return sad.autodiff(grad_kappa, sad.Duplicated(kappa.copy(), v.copy()), mode=sad.Forward)


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

    v = np.cos(5.0 * x)
    w = 1.0 + x
    for name, second in (("weights (C tangent and adjoint)",
                          lambda e: weight_sensitivity(e, kappa, u0, w, v)),
                         ("kappa (numpy definition)", lambda e: kappa_hvp(e, kappa, u0, v, 10))):
        got, want = second(heat), second(heat_numpy)
        print(f"second derivative in {name} vs numpy:", np.max(np.abs(got - want)))
        assert np.allclose(got, want, rtol=1e-8, atol=1e-10 * np.abs(want).max())


if __name__ == "__main__":
    main()
