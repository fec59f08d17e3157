"""W1: a Python scalar loop that overwrites y in place,

    for i in range(1, n):
        y[i] = x[i]*x[i] + 0.5*y[i-1]

objective sum(y), gradient with respect to x and to y as it was before the
loop (shadowad: Duplicated x and y; y[1:] is overwritten, so its gradient is 0
and only y[0] gets one).  PyTorch eager runs the same code on a clone of y;
JAX gets lax.scan, autograd a loop that keeps the previous value in a Python
variable (neither can write into an array)."""
import numpy as np

import shadowad as sad
from common import (peer_methods, Problem, import_autograd, import_jax, import_torch,
                    jax_block, primal_method, shadowad_method, torch_leaves)

KEY = "W1"
TITLE = "scalar loop y[i] = x[i]*x[i] + 0.5*y[i-1], in place"
CASES = [{"n": 1000}, {"n": 10000}]


def label(case):
    return f"n={case['n']}"


def loop(x, y):
    """The in-place code: numpy arrays, shadowad's traced arrays, torch tensors."""
    for i in range(1, x.shape[0]):
        y[i] = x[i] * x[i] + 0.5 * y[i - 1]
    return y.sum()


def objective(x, y):
    return float(loop(x, y.copy()))


def gradient(x, y):
    dx, dy = np.zeros_like(x), np.zeros_like(y)
    sad.autodiff(loop, sad.Duplicated(x, dx), sad.Duplicated(y.copy(), dy))
    return dx, dy


def problem(case):
    rng = np.random.default_rng(1)
    n = case["n"]
    return Problem((rng.random(n), rng.random(n)), objective, gradient)


def closed_form(P):
    """d sum(y)/d x[i] = 2 x[i] (1 + 0.5 + ... + 0.5**(n-1-i)), and y[0] the
    same geometric sum with i = 0 (times 1 instead of 2 x[0])."""
    x, y = P.wrt
    n = x.shape[0]
    geo = (1 - 0.5 ** (n - np.arange(n))) / 0.5
    dx = 2 * x * geo
    dx[0] = 0.0
    dy = np.zeros(n)
    dy[0] = geo[0]
    return dx, dy


def methods(P):
    return [primal_method(P), shadowad_method(P)] + peer_methods(P, _torch, _jax, _autograd)


def _torch(P):
    torch = import_torch()
    x, y0 = torch_leaves(*P.wrt)

    def run():
        out = loop(x, y0.clone())
        return torch.autograd.grad(out, (x, y0))
    return run


def _jax(P):
    jax, jnp = import_jax()

    def f(x, y):
        def step(prev, xi):
            new = xi * xi + 0.5 * prev
            return new, new
        _, ys = jax.lax.scan(step, y[0], x[1:])
        return y[0] + jnp.sum(ys)
    g = jax.jit(jax.grad(f, argnums=(0, 1)))
    x, y = (jnp.asarray(a) for a in P.wrt)
    return lambda: jax_block(g(x, y))


def _autograd(P):
    autograd, _ = import_autograd()

    def f(x, y):
        prev = y[0]
        total = prev
        for i in range(1, x.shape[0]):
            prev = x[i] * x[i] + 0.5 * prev
            total = total + prev
        return total
    g = autograd.grad(f, argnum=(0, 1))
    x, y = P.wrt
    return lambda: g(x, y)
