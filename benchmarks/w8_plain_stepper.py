"""W8: T explicit steps of a driven recurrent system with a plain weight matrix
and a plain work buffer,

    buf[...] = F[k]                        # the step's forcing, into a reused buffer
    x = x + dt * (tanh(W @ x + b) - buf * x)

objective sum(x*x) at the end, gradient with respect to the initial x
(shadowad: Active x; W, b, F and buf are plain numpy arrays that the code
holds, as a model object would, not arguments).  Every step's records read
W and buf, and f writes buf again after reading it: shadowad snapshots the
plain arrays its records read, once per distinct content (W once, buf once
per step), and compares W's 8 MB with its snapshot at every step -- the
cost of reading plain memory that f may write unseen.  "shadowad, W Const"
passes W as a Const argument instead: traced memory, whose writes the tape
records, needs no snapshot.  PyTorch eager runs the same code on a clone (buf
is saved for the backward pass, then written in place); JAX gets a
fori_loop over the functional step, autograd a loop over it."""
import numpy as np

import shadowad as sad
from common import (Method, peer_methods, Problem, import_autograd, import_jax, import_torch,
                    jax_block, primal_method, shadowad_method, torch_leaves)

KEY = "W8"
TITLE = "driven recurrent stepper, plain W and a reused plain work buffer"
CASES = [{"n": 1000, "T": 20}, {"n": 1000, "T": 200}]
DT = 0.05


def label(case):
    return f"n={case['n']},T={case['T']}"


def stepper(x, W, b, F, buf, tanh=np.tanh):
    """The in-place code (numpy arrays, shadowad's traced x, torch tensors)."""
    for k in range(F.shape[0]):
        buf[...] = F[k]
        x = x + DT * (tanh(W @ x + b) - buf * x)
    return (x * x).sum()


def problem(case):
    n, T = case["n"], case["T"]
    rng = np.random.default_rng(8)
    W = 0.9 * rng.standard_normal((n, n)) / np.sqrt(n)
    b = 0.1 * rng.standard_normal(n)
    F = 1.0 + 0.5 * np.cos(0.3 * np.arange(T)[:, None] + rng.uniform(0, 2 * np.pi, n))
    x0 = rng.standard_normal(n)
    buf = np.empty(n)  # the work buffer the code reuses (plain, like W, b and F)

    def objective(x):
        return float(stepper(x.copy(), W, b, F, buf))

    def gradient(x):
        return sad.autodiff(lambda x: stepper(x, W, b, F, buf), sad.Active(x))[:1]

    def gradient_const(x):
        return sad.autodiff(lambda x, W: stepper(x, W, b, F, buf), sad.Active(x),
                            sad.Const(W))[:1]
    return Problem((x0,), objective, gradient, W=W, b=b, F=F, gradient_const=gradient_const)


def methods(P):
    return [primal_method(P), shadowad_method(P),
            Method("shadowad, W Const", "shadowad",
                   lambda: (lambda: P.gradient_const(*P.wrt)))] + \
        peer_methods(P, _torch, _jax, _autograd)


def _torch(P):
    torch = import_torch()
    x0, = torch_leaves(*P.wrt)
    W, b, F = (torch.tensor(a) for a in (P.W, P.b, P.F))
    buf = torch.empty(F.shape[1], dtype=torch.float64)

    def run():
        return torch.autograd.grad(stepper(x0.clone(), W, b, F, buf, tanh=torch.tanh), (x0,))
    return run


def _step(x, W, b, f, tanh):
    return x + DT * (tanh(W @ x + b) - f * x)


def _jax(P):
    jax, jnp = import_jax()
    W, b, F = (jnp.asarray(a) for a in (P.W, P.b, P.F))

    def f(x):
        x = jax.lax.fori_loop(0, F.shape[0], lambda k, x: _step(x, W, b, F[k], jnp.tanh), x)
        return jnp.sum(x * x)
    g = jax.jit(jax.grad(f, argnums=(0,)))
    x0 = jnp.asarray(P.wrt[0])
    return lambda: jax_block(g(x0))


def _autograd(P):
    autograd, anp = import_autograd()

    def f(x):
        for k in range(P.F.shape[0]):
            x = _step(x, P.W, P.b, P.F[k], anp.tanh)
        return anp.sum(x * x)
    g = autograd.grad(f, argnum=(0,))
    return lambda: g(P.wrt[0])
