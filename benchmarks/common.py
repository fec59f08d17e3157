"""What every workload module shares: the Problem and Method records, lazy
imports of the peers (so that the tests and the memory probes import only what
they use), and conversions of the peers' results to numpy.

A workload module (w1_scalar_loop.py, ...) exposes

    KEY, TITLE       "W1", a one-line description
    CASES            a list of dicts of sizes, smallest first
    label(case)      "n=1000"
    problem(case)    a Problem: the inputs to differentiate (``wrt``), the plain
                     numpy objective and shadowad's gradient as functions of them
    methods(P)       the Methods to time on that problem, in table order:
                     "numpy primal" first, then shadowad (the first shadowad
                     method is the reference every peer is checked against),
                     then the peers

and optionally ``closed_form(P)``: the exact gradient, asserted against
shadowad's.
"""
import numpy as np


class Problem:
    """One workload at one size.

    wrt        the arrays (or floats) the gradient is taken with respect to;
               never mutated (every method copies what it overwrites)
    objective  objective(*wrt) -> float, plain numpy (on copies)
    gradient   gradient(*wrt) -> tuple of arrays, one per wrt, by shadowad
    data       anything else the methods need
    """

    def __init__(self, wrt, objective, gradient, **data):
        self.wrt = tuple(wrt)
        self.objective = objective
        self.gradient = gradient
        self._data = data

    def __getattr__(self, name):
        try:
            return self.__dict__["_data"][name]
        except KeyError:
            raise AttributeError(name) from None


class Method:
    """A way of computing the workload.

    kind   "primal", "shadowad", "torch", "jax" or "autograd"
    build  build() -> fn; fn() computes one evaluation (the primal value, or
           the gradient as a tuple of arrays in the order of Problem.wrt) and
           returns it.  The first call of fn is the warm-up (for JAX: tracing
           and compilation).  An fn that cannot run raises: its error text is
           recorded.
    """

    def __init__(self, name, kind, build):
        self.name, self.kind, self.build = name, kind, build


def primal_method(P):
    return Method("numpy primal", "primal", lambda: (lambda: P.objective(*P.wrt)))


def shadowad_method(P, name="shadowad"):
    return Method(name, "shadowad", lambda: (lambda: P.gradient(*P.wrt)))


# --------------------------------------------------------------------------
# peers, imported on first use

def import_torch():
    import torch
    if torch.get_num_threads() != 1:    # one thread, like numpy and shadowad (see run.py)
        torch.set_num_threads(1)
    return torch


def peer_methods(P, torch_run, jax_run, autograd_run):
    """The PyTorch eager, JAX jit(grad) and autograd methods of problem P;
    each *_run(P) imports its library and returns the function to time."""
    return [Method("torch eager", "torch", lambda: torch_run(P)),
            Method("jax jit(grad)", "jax", lambda: jax_run(P)),
            Method("autograd", "autograd", lambda: autograd_run(P))]


def import_jax():
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    return jax, jnp


def import_autograd():
    import autograd
    import autograd.numpy as anp
    return autograd, anp


def torch_leaves(*arrays):
    """float64 leaf tensors that require grad (the tensors share nothing with
    the numpy inputs, so in-place code on clones of them is safe)."""
    torch = import_torch()
    return tuple(torch.tensor(np.array(a, dtype=np.float64), requires_grad=True)
                 for a in arrays)


def jax_block(out):
    """Wait for JAX's asynchronous dispatch: a timed call must finish."""
    jax, _ = import_jax()
    return jax.block_until_ready(out)


def to_numpy(value):
    """A method's result (tuple of tensors, jax arrays, floats) as numpy."""
    if isinstance(value, (tuple, list)):
        return tuple(to_numpy(v) for v in value)
    if hasattr(value, "detach"):                 # torch
        return value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def same_gradient(got, ref, rtol=1e-6):
    """np.allclose on every component, with atol scaled to the reference."""
    got, ref = to_numpy(got), to_numpy(ref)
    if not isinstance(ref, tuple):
        got, ref = (got,), (ref,)
    if len(got) != len(ref):
        return False
    for g, r in zip(got, ref):
        g, r = np.asarray(g), np.asarray(r)
        if g.shape != r.shape:
            return False
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        if not np.allclose(g, r, rtol=rtol, atol=1e-9 * max(scale, 1e-300)):
            return False
    return True
