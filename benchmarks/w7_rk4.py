"""W7: 1000 steps of classical RK4 on the Lotka-Volterra equations

    x' = a x - b x z,    z' = d x z - c z

written with in-place updates: the right-hand side writes into k1..k4
element by element, the stage state goes through a tmp buffer and the state
y is updated with +=.  Objective sum(y*y) at the end, gradient with respect
to the initial state y and the parameters p = (a, b, c, d) (shadowad:
Duplicated y, Active p).  PyTorch eager runs the same code on a clone of y;
JAX gets a fori_loop over a functional step, autograd a Python loop over the
same functional step."""
import numpy as np

import shadowad as sad
from common import (peer_methods, Problem, import_autograd, import_jax, import_torch,
                    jax_block, primal_method, shadowad_method, torch_leaves)

KEY = "W7"
TITLE = "RK4, Lotka-Volterra, in-place buffers"
CASES = [{"steps": 1000}]
H = 0.01


def label(case):
    return f"2 states,{case['steps']} steps"


def lotka_volterra(y, p, out):
    out[0] = p[0] * y[0] - p[1] * y[0] * y[1]
    out[1] = p[3] * y[0] * y[1] - p[2] * y[1]


def rk4(y, p, h, steps, empty_like=np.empty_like):
    """The in-place code (numpy's empty_like by default, torch's for torch)."""
    k1, k2, k3, k4, tmp = (empty_like(y) for _ in range(5))
    for _ in range(steps):
        lotka_volterra(y, p, k1)
        tmp[:] = y + (0.5 * h) * k1
        lotka_volterra(tmp, p, k2)
        tmp[:] = y + (0.5 * h) * k2
        lotka_volterra(tmp, p, k3)
        tmp[:] = y + h * k3
        lotka_volterra(tmp, p, k4)
        y += (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return (y * y).sum()


def lv_functional(y, p, xp):
    return xp.stack([p[0] * y[0] - p[1] * y[0] * y[1], p[3] * y[0] * y[1] - p[2] * y[1]])


def rk4_step_functional(y, p, h, xp):
    k1 = lv_functional(y, p, xp)
    k2 = lv_functional(y + (0.5 * h) * k1, p, xp)
    k3 = lv_functional(y + (0.5 * h) * k2, p, xp)
    k4 = lv_functional(y + h * k3, p, xp)
    return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)


def problem(case):
    steps = case["steps"]
    y0 = np.array([1.0, 0.8])
    p = np.array([1.5, 1.0, 3.0, 1.0])

    def objective(y, p):
        return float(rk4(y.copy(), p, H, steps))

    def gradient(y, p):
        dy = np.zeros_like(y)
        grads = sad.autodiff(rk4, sad.Duplicated(y.copy(), dy), sad.Active(p), H, steps)
        return dy, grads[1]
    return Problem((y0, p), objective, gradient, steps=steps)


def methods(P):
    return [primal_method(P), shadowad_method(P)] + peer_methods(P, _torch, _jax, _autograd)


def _torch(P):
    torch = import_torch()
    y0, p = torch_leaves(*P.wrt)

    def run():
        out = rk4(y0.clone(), p, H, P.steps, empty_like=torch.empty_like)
        return torch.autograd.grad(out, (y0, p))
    return run


def _jax(P):
    jax, jnp = import_jax()
    steps = P.steps

    def f(y, p):
        y = jax.lax.fori_loop(0, steps, lambda _, y: rk4_step_functional(y, p, H, jnp), y)
        return jnp.sum(y * y)
    g = jax.jit(jax.grad(f, argnums=(0, 1)))
    y0, p = (jnp.asarray(a) for a in P.wrt)
    return lambda: jax_block(g(y0, p))


def _autograd(P):
    autograd, anp = import_autograd()
    steps = P.steps

    def f(y, p):
        for _ in range(steps):
            y = rk4_step_functional(y, p, H, anp)
        return anp.sum(y * y)
    g = autograd.grad(f, argnum=(0, 1))
    return lambda: g(*P.wrt)
