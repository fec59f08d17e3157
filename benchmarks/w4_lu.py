"""W4: log|det A| through an in-place Doolittle LU (no pivoting) that
overwrites A with its factors,

    for k in range(n):
        A[k+1:, k] /= A[k, k]
        A[k+1:, k+1:] -= np.outer(A[k+1:, k], A[k, k+1:])
    return sum(log(abs(diagonal(A))))

gradient with respect to A (shadowad: Duplicated A); it equals inv(A).T.
PyTorch eager refuses the same code (the division saved A[k, k], which later
steps overwrite); JAX gets a fori_loop of masked rank-1 updates (slices of
size n-k-1 are not static), autograd the Schur-complement recursion
A <- A[1:, 1:] - outer(A[1:, 0]/A[0, 0], A[0, 1:]) (it cannot write into
arrays)."""
import numpy as np

import shadowad as sad
from common import (peer_methods, Problem, import_autograd, import_jax, import_torch,
                    jax_block, primal_method, shadowad_method, torch_leaves)

KEY = "W4"
TITLE = "log|det A| by in-place Doolittle LU"
CASES = [{"n": 32}, {"n": 64}, {"n": 128}]


def label(case):
    return f"n={case['n']}"


def lu_logabsdet(A, outer=np.outer, log=np.log, abs=np.abs, diagonal=np.diagonal):
    """The in-place code (numpy functions by default; torch's for torch)."""
    n = A.shape[0]
    for k in range(n):
        A[k + 1:, k] /= A[k, k]
        A[k + 1:, k + 1:] -= outer(A[k + 1:, k], A[k, k + 1:])
    return log(abs(diagonal(A))).sum()


def objective(A):
    return float(lu_logabsdet(A.copy()))


def gradient(A):
    dA = np.zeros_like(A)
    sad.autodiff(lu_logabsdet, sad.Duplicated(A.copy(), dA))
    return (dA,)


def problem(case):
    n = case["n"]
    A = np.random.default_rng(4).standard_normal((n, n)) + n * np.eye(n)  # no pivoting needed
    return Problem((A,), objective, gradient)


def closed_form(P):
    return (np.linalg.inv(P.wrt[0]).T,)


def methods(P):
    return [primal_method(P), shadowad_method(P)] + peer_methods(P, _torch, _jax, _autograd)


def _torch(P):
    torch = import_torch()
    A0, = torch_leaves(*P.wrt)

    def run():
        out = lu_logabsdet(A0.clone(), outer=torch.outer, log=torch.log, abs=torch.abs,
                           diagonal=torch.diagonal)
        return torch.autograd.grad(out, (A0,))
    return run


def _jax(P):
    jax, jnp = import_jax()
    n = P.wrt[0].shape[0]
    idx = jnp.arange(n)

    def f(A):
        def step(k, A):
            below = idx > k
            l = jnp.where(below, A[:, k] / A[k, k], 0.0)
            u = jnp.where(below, A[k, :], 0.0)
            A = A - jnp.outer(l, u)
            return A.at[:, k].set(jnp.where(below, l, A[:, k]))
        A = jax.lax.fori_loop(0, n, step, A)
        return jnp.sum(jnp.log(jnp.abs(jnp.diagonal(A))))
    g = jax.jit(jax.grad(f, argnums=(0,)))
    A = jnp.asarray(P.wrt[0])
    return lambda: jax_block(g(A))


def _autograd(P):
    autograd, anp = import_autograd()

    def f(A):
        logdet = 0.0
        for _ in range(A.shape[0]):
            p = A[0, 0]
            logdet = logdet + anp.log(anp.abs(p))
            A = A[1:, 1:] - anp.outer(A[1:, 0] / p, A[0, 1:])
        return logdet
    g = autograd.grad(f, argnum=(0,))
    A = P.wrt[0]
    return lambda: g(A)
