"""W3: seed 001's log-likelihood sum(-log(X) - data/X), gradient with respect
to X (shadowad: Active X, Const data), plain and with the per-element function
wrapped in sad.fwddiff (one record instead of five).  The code is already
functional, so every peer runs it as written.

The float32 cases take the same X and data rounded to float32: the numpy
primal in float32, shadowad with Active X and Const data in float32 (its
elementwise operations run the C kernels' float instance, its sum the generic
numpy rule; docs/float32.md), the fwddiff variant,
PyTorch, JAX and autograd on float32.  Their closed form is evaluated in
float64 from the float32 inputs.  The float32 rows are informational, without
a target."""
import numpy as np

import shadowad as sad
from common import (case_dtype, dtype_label, Method, peer_methods, Problem, import_autograd,
                    import_jax, import_torch, jax_block, primal_method, shadowad_method,
                    torch_leaves)

KEY = "W3"
TITLE = "log-likelihood sum(-log(X) - data/X)"
CASES = [{"n": 1000}, {"n": 1000000}, {"n": 1000, "dtype": "float32"},
         {"n": 1000000, "dtype": "float32"}]


def label(case):
    n = case["n"]
    return (f"n={n:.0e}".replace("e+0", "e") if n >= 10**5 else f"n={n}") + dtype_label(case)


def loglike(X, data):
    return np.sum(-np.log(X) - data / X)


logpdf = sad.fwddiff(lambda x, d: -np.log(x) - d / x)


def loglike_fwddiff(X, data):
    return np.sum(logpdf(X, data))


def problem(case):
    rng = np.random.default_rng(1)
    n = case["n"]
    dtype = case_dtype(case)
    X = (3 * rng.random(n) + 0.1).astype(dtype)
    data = (4 * rng.random(n)).astype(dtype)

    def objective(X):
        return float(loglike(X, data))

    def gradient(X):
        return sad.autodiff(loglike, sad.Active(X), sad.Const(data))[:1]

    def gradient_fwddiff(X):
        return sad.autodiff(loglike_fwddiff, sad.Active(X), sad.Const(data))[:1]
    return Problem((X,), objective, gradient, dtype=dtype, data=data,
                   gradient_fwddiff=gradient_fwddiff)


def closed_form(P):
    """In float64 whatever the case's dtype: the exact gradient at its inputs."""
    X, data = P.wrt[0].astype(np.float64), P.data.astype(np.float64)
    return (-1 / X + data / X ** 2,)


def methods(P):
    fwddiff = [
        Method("shadowad fwddiff", "shadowad", lambda: (lambda: P.gradient_fwddiff(*P.wrt)))]
    return [primal_method(P), shadowad_method(P)] + fwddiff + \
        peer_methods(P, _torch, _jax, _autograd)


def _torch(P):
    torch = import_torch()
    X, = torch_leaves(*P.wrt, dtype=P.dtype)
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
