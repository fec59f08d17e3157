"""W2: T steps of the explicit heat equation, in place,

    u[1:-1] += r*(u[2:] - 2*u[1:-1] + u[:-2])

objective sum(u*u) at the end, gradient with respect to the initial u
(shadowad: Duplicated u).  PyTorch eager runs the same code on a clone; JAX
gets a fori_loop over u.at[1:-1].add(...), autograd a loop that rebuilds u
with concatenate.

The float32 cases run the same code on float32 arrays: the numpy primal in
float32, shadowad on a Duplicated float32 u with a float32 shadow, PyTorch on
float32 tensors, JAX and autograd on float32 arrays (r is a Python float, so it
stays weak and every step stays float32).  shadowad's float32 steps run the C
kernels' float instance (docs/float32.md), its final sum the generic numpy
rule; the rows are informational, without a target."""
import numpy as np

import shadowad as sad
from common import (case_dtype, dtype_label, peer_methods, Problem, import_autograd, import_jax,
                    import_torch, jax_block, primal_method, shadowad_method, torch_leaves)

KEY = "W2"
TITLE = "explicit heat equation u[1:-1] += r*(u[2:] - 2*u[1:-1] + u[:-2]), in place"
CASES = [{"m": 1000, "T": 100}, {"m": 100000, "T": 100},
         {"m": 1000, "T": 100, "dtype": "float32"}, {"m": 100000, "T": 100, "dtype": "float32"}]
R = 0.25


def label(case):
    return f"m={case['m']:.0e},T={case['T']}".replace("e+0", "e") + dtype_label(case)


def heat(u, r, steps):
    """The in-place code: numpy arrays, shadowad's traced arrays, torch tensors."""
    for _ in range(steps):
        u[1:-1] += r * (u[2:] - 2 * u[1:-1] + u[:-2])
    return (u * u).sum()


def problem(case):
    m, T = case["m"], case["T"]
    s = np.linspace(0.0, 1.0, m)
    u0 = np.exp(-100 * (s - 0.3) ** 2) + 0.1 * np.random.default_rng(2).random(m)
    dtype = case_dtype(case)
    u0 = u0.astype(dtype)

    def objective(u):
        return float(heat(u.copy(), R, T))

    def gradient(u):
        du = np.zeros_like(u)
        sad.autodiff(heat, sad.Duplicated(u.copy(), du), R, T)
        return (du,)
    return Problem((u0,), objective, gradient, dtype=dtype, T=T)


def methods(P):
    return [primal_method(P), shadowad_method(P)] + peer_methods(P, _torch, _jax, _autograd)


def _torch(P):
    torch = import_torch()
    u0, = torch_leaves(*P.wrt, dtype=P.dtype)

    def run():
        return torch.autograd.grad(heat(u0.clone(), R, P.T), (u0,))
    return run


def _jax(P):
    jax, jnp = import_jax()
    T = P.T

    def f(u):
        def step(_, u):
            return u.at[1:-1].add(R * (u[2:] - 2 * u[1:-1] + u[:-2]))
        u = jax.lax.fori_loop(0, T, step, u)
        return jnp.sum(u * u)
    g = jax.jit(jax.grad(f, argnums=(0,)))
    u0 = jnp.asarray(P.wrt[0])
    return lambda: jax_block(g(u0))


def _autograd(P):
    autograd, anp = import_autograd()
    T = P.T

    def f(u):
        for _ in range(T):
            u = anp.concatenate([u[:1], u[1:-1] + R * (u[2:] - 2 * u[1:-1] + u[:-2]), u[-1:]])
        return anp.sum(u * u)
    g = autograd.grad(f, argnum=(0,))
    u0 = P.wrt[0]
    return lambda: g(u0)
