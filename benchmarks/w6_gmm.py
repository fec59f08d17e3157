"""W6: the Gaussian mixture model objective of ADBench / GradBench,

    sum_i logsumexp_k(alpha_k + sum(log diag Q_k) - 0.5*||Q_k (x_i - mu_k)||^2)
        - n*logsumexp(alphas) + wishart prior (gamma = 1, m = 0)

with Q_k lower triangular, built from icf[k] = (log of the diagonal, then the
entries below it column by column).  The constant terms (-n*d/2*log(2*pi) and
the Wishart normaliser) are omitted everywhere.  Written as a user would in
numpy, vectorised over the points; gradient with respect to alphas, means and
icf (shadowad: Active arrays, x Const).  The code is functional, so it runs
unchanged in numpy, shadowad, JAX (jax.numpy) and autograd (autograd.numpy);
PyTorch gets the same code with torch's names."""
import numpy as np

import shadowad as sad
from common import (peer_methods, Problem, import_autograd, import_jax, import_torch,
                    jax_block, primal_method, shadowad_method, torch_leaves)

KEY = "W6"
TITLE = "GMM objective (ADBench/GradBench)"
CASES = [{"d": 2, "K": 5, "n": 1000}, {"d": 10, "K": 25, "n": 1000}]


def label(case):
    return f"d={case['d']},K={case['K']},n={case['n']}"


def tri_index(d):
    """(d, d) positions into [log-diagonal (d), below-diagonal entries, a zero]:
    Q_k = concatenate([exp(icf[k, :d]), icf[k, d:], 0])[tri_index(d)]."""
    idx = np.full((d, d), d * (d + 1) // 2, dtype=np.intp)
    pos = d
    for j in range(d):
        idx[j, j] = j
        for i in range(j + 1, d):
            idx[i, j] = pos
            pos += 1
    return idx


def gmm_objective(alphas, means, icf, x, idx, xp=np):
    """xp is numpy (and shadowad), jax.numpy or autograd.numpy."""
    n, d = x.shape
    logdiag = icf[:, :d]
    Qdiag = xp.exp(logdiag)
    sum_qs = xp.sum(logdiag, axis=1)
    full = xp.concatenate([Qdiag, icf[:, d:], xp.zeros_like(icf[:, :1])], axis=1)
    Q = full[:, idx]                                            # (K, d, d)
    xc = x[np.newaxis, :, :] - means[:, np.newaxis, :]           # (K, n, d)
    Qxc = xp.matmul(Q, xp.swapaxes(xc, 1, 2))                    # (K, d, n)
    main = alphas[:, None] + sum_qs[:, None] - 0.5 * xp.sum(Qxc * Qxc, axis=1)   # (K, n)
    mx = xp.max(main, axis=0)
    lse = xp.log(xp.sum(xp.exp(main - mx), axis=0)) + mx
    ma = xp.max(alphas)
    lse_alphas = xp.log(xp.sum(xp.exp(alphas - ma))) + ma
    wishart = 0.5 * (xp.sum(Qdiag * Qdiag) + xp.sum(icf[:, d:] * icf[:, d:]))
    return xp.sum(lse) - n * lse_alphas + wishart


def gmm_objective_torch(alphas, means, icf, x, idx):
    import torch
    n, d = x.shape
    logdiag = icf[:, :d]
    Qdiag = torch.exp(logdiag)
    sum_qs = torch.sum(logdiag, dim=1)
    full = torch.cat([Qdiag, icf[:, d:], torch.zeros_like(icf[:, :1])], dim=1)
    Q = full[:, idx]
    xc = x[None, :, :] - means[:, None, :]
    Qxc = torch.matmul(Q, torch.transpose(xc, 1, 2))
    main = alphas[:, None] + sum_qs[:, None] - 0.5 * torch.sum(Qxc * Qxc, dim=1)
    mx = torch.amax(main, dim=0)
    lse = torch.log(torch.sum(torch.exp(main - mx), dim=0)) + mx
    ma = torch.amax(alphas)
    lse_alphas = torch.log(torch.sum(torch.exp(alphas - ma))) + ma
    wishart = 0.5 * (torch.sum(Qdiag * Qdiag) + torch.sum(icf[:, d:] * icf[:, d:]))
    return torch.sum(lse) - n * lse_alphas + wishart


def problem(case):
    d, K, n = case["d"], case["K"], case["n"]
    rng = np.random.default_rng(6)
    x = rng.standard_normal((n, d))
    alphas = rng.standard_normal(K)
    means = rng.random((K, d))
    icf = 0.5 * rng.standard_normal((K, d * (d + 1) // 2))
    idx = tri_index(d)

    def objective(alphas, means, icf):
        return float(gmm_objective(alphas, means, icf, x, idx))

    def gradient(alphas, means, icf):
        return sad.autodiff(gmm_objective, sad.Active(alphas), sad.Active(means),
                            sad.Active(icf), sad.Const(x), sad.Const(idx))[:3]
    return Problem((alphas, means, icf), objective, gradient, x=x, idx=idx)


def methods(P):
    return [primal_method(P), shadowad_method(P)] + peer_methods(P, _torch, _jax, _autograd)


def _torch(P):
    torch = import_torch()
    leaves = torch_leaves(*P.wrt)
    x, idx = torch.tensor(P.x), torch.tensor(P.idx)

    def run():
        return torch.autograd.grad(gmm_objective_torch(*leaves, x, idx), leaves)
    return run


def _jax(P):
    jax, jnp = import_jax()
    idx = P.idx
    g = jax.jit(jax.grad(lambda a, m, i, x: gmm_objective(a, m, i, x, idx, xp=jnp),
                         argnums=(0, 1, 2)))
    args = [jnp.asarray(a) for a in P.wrt + (P.x,)]
    return lambda: jax_block(g(*args))


def _autograd(P):
    autograd, anp = import_autograd()
    x, idx = P.x, P.idx
    g = autograd.grad(lambda a, m, i: gmm_objective(a, m, i, x, idx, xp=anp), argnum=(0, 1, 2))
    return lambda: g(*P.wrt)
