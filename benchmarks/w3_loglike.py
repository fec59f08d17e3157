"""W3: seed 001's log-likelihood sum(-log(X) - data/X), gradient with respect
to X (shadowad: Active X, Const data), plain and with the per-element function
wrapped in sad.fwddiff (one record instead of five).  The code is already
functional, so every peer runs it as written."""
import numpy as np

import shadowad as sad
from common import (Method, peer_methods, Problem, import_autograd, import_jax, import_torch,
                    jax_block, primal_method, shadowad_method, torch_leaves)

KEY = "W3"
TITLE = "log-likelihood sum(-log(X) - data/X)"
CASES = [{"n": 1000}, {"n": 1000000}]


def label(case):
    return f"n={case['n']:.0e}".replace("e+0", "e") if case["n"] >= 10**5 else f"n={case['n']}"


def loglike(X, data):
    return np.sum(-np.log(X) - data / X)


logpdf = sad.fwddiff(lambda x, d: -np.log(x) - d / x)


def loglike_fwddiff(X, data):
    return np.sum(logpdf(X, data))


def problem(case):
    rng = np.random.default_rng(1)
    n = case["n"]
    X = 3 * rng.random(n) + 0.1
    data = 4 * rng.random(n)

    def objective(X):
        return float(loglike(X, data))

    def gradient(X):
        return sad.autodiff(loglike, sad.Active(X), sad.Const(data))[:1]

    def gradient_fwddiff(X):
        return sad.autodiff(loglike_fwddiff, sad.Active(X), sad.Const(data))[:1]
    return Problem((X,), objective, gradient, data=data, gradient_fwddiff=gradient_fwddiff)


def closed_form(P):
    X, = P.wrt
    return (-1 / X + P.data / X ** 2,)


def methods(P):
    return [primal_method(P), shadowad_method(P),
            Method("shadowad fwddiff", "shadowad", lambda: (lambda: P.gradient_fwddiff(*P.wrt)))] + \
        peer_methods(P, _torch, _jax, _autograd)


def _torch(P):
    torch = import_torch()
    X, = torch_leaves(*P.wrt)
    data = torch.tensor(P.data)

    def run():
        return torch.autograd.grad(torch.sum(-torch.log(X) - data / X), (X,))
    return run


def _jax(P):
    jax, jnp = import_jax()
    g = jax.jit(jax.grad(lambda X, data: jnp.sum(-jnp.log(X) - data / X), argnums=(0,)))
    X, data = jnp.asarray(P.wrt[0]), jnp.asarray(P.data)
    return lambda: jax_block(g(X, data))


def _autograd(P):
    autograd, anp = import_autograd()
    g = autograd.grad(lambda X, data: anp.sum(-anp.log(X) - data / X), argnum=(0,))
    X, data = P.wrt[0], P.data
    return lambda: g(X, data)
