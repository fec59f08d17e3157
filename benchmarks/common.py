"""What every workload module shares: the Problem and Method records, lazy
imports of the peers (so that the tests and the memory probes import only what
they use), and conversions of the peers' results to numpy.

A workload module (w1_scalar_loop.py, ...) exposes

    KEY, TITLE       "W1", a one-line description
    CASES            a list of dicts of sizes, smallest first; float32 variants
                     (a "dtype": "float32" entry) come after the float64 cases
    label(case)      "n=1000" (",float32" appended for a float32 case)
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
    dtype      the floating dtype every method computes in (float64, or
               float32 for the float32 cases); sets the tolerance of the
               comparisons of gradients (see tolerance())
    data       anything else the methods need
    """

    def __init__(self, wrt, objective, gradient, dtype=np.float64, **data):
        self.wrt = tuple(wrt)
        self.objective = objective
        self.gradient = gradient
        self.dtype = np.dtype(dtype)
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


def case_dtype(case):
    """The dtype of a workload case: float64 unless it says "float32"."""
    return np.dtype(case.get("dtype", "float64"))


def dtype_label(case):
    """What a case's label ends with: nothing for float64."""
    return "" if case_dtype(case) == np.float64 else f",{case_dtype(case).name}"


def torch_leaves(*arrays, dtype=np.float64):
    """Leaf tensors of `dtype` that require grad (the tensors share nothing
    with the numpy inputs, so in-place code on clones of them is safe)."""
    torch = import_torch()
    return tuple(torch.tensor(np.array(a, dtype=dtype), requires_grad=True)
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


def tolerance(dtype, closed_form=False):
    """(rtol, atol as a fraction of the reference's largest magnitude) for
    comparing two gradients computed in `dtype`.  float64: rtol 1e-6 between
    methods (their sums run in different orders), 1e-8 against a closed form.
    float32 (eps 1.2e-7): 1e-5 for both, about 80 ulps; a closed form is
    evaluated in float64 from the float32 inputs, so it is the exact answer
    and the tolerance covers the float32 rounding of the method alone."""
    if np.dtype(dtype) == np.float32:
        return 1e-5, 1e-5
    return (1e-8 if closed_form else 1e-6), 1e-9


def same_gradient(got, ref, tol=(1e-6, 1e-9)):
    """np.allclose on every component; tol = (rtol, atol as a fraction of the
    reference's largest magnitude), see tolerance()."""
    rtol, atol = tol
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
        if not np.allclose(g, r, rtol=rtol, atol=atol * max(scale, 1e-300)):
            return False
    return True
