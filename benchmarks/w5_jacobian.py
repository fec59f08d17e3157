"""W5: the Jacobian of seed 003's rs(d, xs) -- 21 outputs, one scalar input --
by forward mode and by reverse mode (shadowad and, where installed, the
peers' jacfwd/jacrev)."""
import numpy as np

import shadowad as sad

GRID = np.arange(-10.0, 11.0)


def rs(xs, d):
    d0 = np.exp(-1.5 * (GRID - xs) ** 2)
    return d - np.sum(d * d0) / np.sum(d0 * d0) * d0


def cases():
    d = np.random.default_rng(3).random(21)
    xs = 0.3
    yield "numpy primal", lambda: rs(xs, d)
    yield "shadowad forward", lambda: sad.jacobian(rs, xs, sad.Const(d), mode=sad.Forward)
    yield "shadowad reverse", lambda: sad.jacobian(rs, xs, sad.Const(d), mode=sad.Reverse)
    yield from _torch(xs, d)
    yield from _jax(xs, d)


def _torch(xs, d):
    try:
        import torch
        from torch.func import jacfwd, jacrev
    except ImportError:
        return
    grid, dt = torch.tensor(GRID, dtype=torch.float64), torch.tensor(d)
    x = torch.tensor(xs, dtype=torch.float64)

    def f(m):
        d0 = torch.exp(-1.5 * (grid - m) ** 2)
        return dt - torch.sum(dt * d0) / torch.sum(d0 * d0) * d0
    yield "torch jacfwd", lambda: jacfwd(f)(x)
    yield "torch jacrev", lambda: jacrev(f)(x)


def _jax(xs, d):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return
    jax.config.update("jax_enable_x64", True)
    grid, dj = jnp.asarray(GRID), jnp.asarray(d)

    def f(m):
        d0 = jnp.exp(-1.5 * (grid - m) ** 2)
        return dj - jnp.sum(dj * d0) / jnp.sum(d0 * d0) * d0
    fwd, rev = jax.jit(jax.jacfwd(f)), jax.jit(jax.jacrev(f))
    yield "jax jit(jacfwd)", lambda: fwd(xs).block_until_ready()
    yield "jax jit(jacrev)", lambda: rev(xs).block_until_ready()
