"""W5: the Jacobian of seed 003's rs(d, xs) -- 21 outputs, one scalar input --
by forward mode and by reverse mode (shadowad's sad.jacobian with
mode=Forward / mode=Reverse, torch.func's jacfwd / jacrev, JAX's jitted
jacfwd / jacrev, autograd's jacobian, which is reverse mode)."""
import numpy as np

import shadowad as sad
from common import (Method, Problem, import_autograd, import_jax, import_torch,
                    jax_block, primal_method, torch_leaves)

KEY = "W5"
TITLE = "Jacobian of rs(d, xs): 21 outputs, 1 input"
CASES = [{"n": 21}]
GRID = np.arange(-10.0, 11.0)


def label(case):
    return f"{case['n']}x1"


def rs(xs, d):
    d0 = np.exp(-1.5 * (GRID - xs) ** 2)
    return d - np.sum(d * d0) / np.sum(d0 * d0) * d0


def problem(case):
    d = np.random.default_rng(3).random(case["n"])

    def objective(xs):
        return rs(xs, d)

    def jacobian(xs, mode=sad.Forward):
        return (sad.jacobian(rs, xs, sad.Const(d), mode=mode),)
    return Problem((0.3,), objective, jacobian, d=d)


def methods(P):
    xs = P.wrt[0]
    return [primal_method(P),
            Method("shadowad forward", "shadowad",
                   lambda: (lambda: P.gradient(xs, mode=sad.Forward))),
            Method("shadowad reverse", "shadowad",
                   lambda: (lambda: P.gradient(xs, mode=sad.Reverse))),
            Method("torch jacfwd", "torch", lambda: _torch(P, "jacfwd")),
            Method("torch jacrev", "torch", lambda: _torch(P, "jacrev")),
            Method("jax jit(jacfwd)", "jax", lambda: _jax(P, "jacfwd")),
            Method("jax jit(jacrev)", "jax", lambda: _jax(P, "jacrev")),
            Method("autograd jacobian", "autograd", lambda: _autograd(P))]


def _torch(P, which):
    torch = import_torch()
    import torch.func
    grid, dt = torch.tensor(GRID), torch.tensor(P.d)
    x, = torch_leaves(P.wrt[0])
    x = x.detach()

    def f(m):
        d0 = torch.exp(-1.5 * (grid - m) ** 2)
        return dt - torch.sum(dt * d0) / torch.sum(d0 * d0) * d0
    jac = getattr(torch.func, which)(f)
    return lambda: (jac(x),)


def _jax(P, which):
    jax, jnp = import_jax()
    grid, dj = jnp.asarray(GRID), jnp.asarray(P.d)

    def f(m):
        d0 = jnp.exp(-1.5 * (grid - m) ** 2)
        return dj - jnp.sum(dj * d0) / jnp.sum(d0 * d0) * d0
    jac = jax.jit(getattr(jax, which)(f))
    xs = P.wrt[0]
    return lambda: (jax_block(jac(xs)),)


def _autograd(P):
    autograd, anp = import_autograd()
    d = P.d

    def f(m):
        d0 = anp.exp(-1.5 * (GRID - m) ** 2)
        return d - anp.sum(d * d0) / anp.sum(d0 * d0) * d0
    jac = autograd.jacobian(f)
    xs = P.wrt[0]
    return lambda: (jac(xs),)
