"""W10: a nonlinear in-place time stepper (Fisher-KPP reaction-diffusion),

    for t in range(T):
        u[1:-1] += 0.1*(u[2:] - 2*u[1:-1] + u[:-2]) + 0.01*u[1:-1]*(1 - u[1:-1])

objective sum(u*u), gradient with respect to the initial u.  Every step reads
the state it overwrites, so a tape keeps a copy of the state per step
(about T copies).  "shadowad" runs the loop as sad.checkpoint_loop with s = 10
snapshots: the binomial (revolve) schedule stores at most 10 states and
recomputes steps (3 636 untaped runs for T = 1 000, each step taped once),
so the tape holds the snapshots and one step.  "shadowad, no checkpointing"
is the same loop taped whole.  PyTorch refuses the in-place loop (the step
reads u[1:-1] after writing it), so it runs the functional rewrite (one
concatenation per step) and keeps every step's tensors; JAX and autograd are
not run (a rewrite of the same kind)."""
import numpy as np

import shadowad as sad
from common import Method, Problem, import_torch, primal_method, shadowad_method, torch_leaves

KEY = "W10"
TITLE = "Fisher-KPP stepper, checkpoint_loop with 10 snapshots against the whole tape"
CASES = [{"m": 100_000, "T": 1000, "s": 10}]


def label(case):
    return f"m=1e5,T={case['T']},s={case['s']}"


def step(i, u):
    u[1:-1] += 0.1 * (u[2:] - 2 * u[1:-1] + u[:-2]) + 0.01 * u[1:-1] * (1 - u[1:-1])


def problem(case):
    m, T, s = case["m"], case["T"], case["s"]
    u0 = np.random.default_rng(10).random(m)

    def objective(u):
        u = u.copy()
        for i in range(T):
            step(i, u)
        return float(np.sum(u * u))

    def checkpointed(u):
        sad.checkpoint_loop(step, T, u, snapshots=s)
        return np.sum(u * u)

    def whole(u):
        for i in range(T):
            step(i, u)
        return np.sum(u * u)

    def gradient(u, f=checkpointed):
        du = np.zeros_like(u)
        sad.autodiff(f, sad.Duplicated(u.copy(), du))
        return (du,)
    return Problem((u0,), objective, gradient, T=T, gradient_whole=lambda u: gradient(u, whole))


def tape_peaks(case):
    """(the most the checkpointed gradient's tape held, the most the tape of
    one step held), each tape.stats()'s peak_nbytes over recording and the
    sweep, in bytes, and the state's bytes.  One step's tape: the same step
    recorded alone and swept."""
    m, T, s = case["m"], case["T"], case["s"]
    u = np.random.default_rng(10).random(m)

    def f(v):
        sad.checkpoint_loop(step, T, v, snapshots=s)
        return np.sum(v * v)

    def one(v):
        step(0, v)
        return np.sum(v * v)
    peaks = []
    for g in (f, one):
        _, tape = sad.autodiff_split(g, sad.Duplicated(u.copy(), np.zeros(m)))
        tape.reverse()
        peaks.append(tape.stats()["peak_nbytes"])
    return peaks[0], peaks[1], u.nbytes


def methods(P):
    return [primal_method(P), shadowad_method(P),
            Method("shadowad, no checkpointing", "shadowad",
                   lambda: (lambda: P.gradient_whole(*P.wrt))),
            Method("torch eager (functional rewrite)", "torch", lambda: _torch(P))]


def _torch(P):
    torch = import_torch()
    u0, = torch_leaves(*P.wrt)

    def run():
        u = u0
        for _ in range(P.T):
            c = u[1:-1]
            c = c + 0.1 * (u[2:] - 2 * c + u[:-2]) + 0.01 * c * (1 - c)
            u = torch.cat((u[:1], c, u[-1:]))
        return torch.autograd.grad((u * u).sum(), (u0,))
    return run
