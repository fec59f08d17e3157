"""W9: an implicit heat-equation loop whose linear solves are a C rule
(examples/c_rule: the Thomas algorithm with its C adjoint),

    for _ in range(T):
        solve(-kappa, 1 + 2 kappa, -kappa, u)       # (I - kappa L) u_new = u, in place

objective sum(u*u), gradient with respect to kappa and the initial u.  The
primal is the same loop calling the C solver outside autodiff.  "shadowad,
numpy solver" differentiates the same computation written in numpy, which
has no banded solver: the matrix is assembled and inverted once
(np.linalg.inv) and each step is a matrix-vector product -- the fastest way
numpy offers, O(m^2) per step against the C rule's O(m).  The peers would
need the C solver's derivative rules of their own: not run."""
import os
import subprocess
import sys

import numpy as np

import shadowad as sad
from common import Method, Problem, primal_method, shadowad_method

KEY = "W9"
TITLE = "implicit heat loop, tridiagonal solves by a C rule"
CASES = [{"m": 1000, "T": 1000}]

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "examples", "c_rule")


def label(case):
    return f"m={case['m']},T={case['T']}"


def _solver():
    """The example's rule, built first if needed (the .so is not in git)."""
    sys.path.insert(0, EXAMPLE)
    try:
        import tridiag  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, os.path.join(EXAMPLE, "build.py")], check=True)
    import tridiag
    return tridiag.solve


def heat(kappa, u, T, solve):
    sub = -kappa
    diag = 1.0 + 2.0 * kappa
    for _ in range(T):
        solve(sub, diag, sub, u)
    return np.sum(u * u)


def heat_numpy(kappa, u, T):
    m = len(u)
    a = (np.eye(m) * (1.0 + 2.0 * kappa)[:, None] - np.eye(m, k=1) * kappa[:, None]
         - np.eye(m, k=-1) * kappa[:, None])
    inv = np.linalg.inv(a)
    for _ in range(T):
        u = inv @ u
    return np.sum(u * u)


def problem(case):
    m, T = case["m"], case["T"]
    solve = _solver()
    x = np.linspace(0.0, 1.0, m)
    u0 = np.exp(-50.0 * (x - 0.5) ** 2)
    kappa = 0.3 + 0.1 * np.sin(3.0 * x)

    def objective(kappa, u0):
        return float(heat(kappa, u0.copy(), T, solve))

    def gradient(kappa, u0):
        dk, du = np.zeros(m), np.zeros(m)
        sad.autodiff(lambda k, u: heat(k, u, T, solve), sad.Duplicated(kappa.copy(), dk),
                     sad.Duplicated(u0.copy(), du))
        return dk, du

    def gradient_numpy(kappa, u0):
        return sad.autodiff(lambda k, u: heat_numpy(k, u, T), sad.Active(kappa),
                            sad.Active(u0))
    return Problem((kappa, u0), objective, gradient, gradient_numpy=gradient_numpy)


def methods(P):
    return [primal_method(P), shadowad_method(P),
            Method("shadowad, numpy solver", "shadowad",
                   lambda: (lambda: P.gradient_numpy(*P.wrt)))]
