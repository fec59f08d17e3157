"""The benchmark workloads (benchmarks/w*.py) stay correct: on the smallest
size of each, shadowad's gradient matches a closed form where the module has
one, and central finite differences along random directions otherwise (and
always, as a check of the objective itself).  No peer is imported."""
import importlib
import os
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

MODULES = ["w1_scalar_loop", "w2_heat", "w3_loglike", "w4_lu", "w5_jacobian",
           "w6_gmm", "w7_rk4", "w8_plain_stepper"]


def directional_fd(f, wrt, directions, h=1e-6):
    plus = f(*[w + h * v for w, v in zip(wrt, directions)])
    minus = f(*[w - h * v for w, v in zip(wrt, directions)])
    return (np.asarray(plus) - np.asarray(minus)) / (2 * h)


@pytest.mark.parametrize("name", MODULES)
def test_workload_gradient(name):
    mod = importlib.import_module(name)
    P = mod.problem(mod.CASES[0])
    wrt = [np.asarray(w, dtype=float) if np.ndim(w) else float(w) for w in P.wrt]
    before = [np.copy(w) for w in wrt]
    grads = P.gradient(*P.wrt)
    assert len(grads) == len(wrt)
    for w, b in zip(P.wrt, before):                 # the inputs are never overwritten
        assert np.array_equal(w, b)

    if hasattr(mod, "closed_form"):
        for g, c in zip(grads, mod.closed_form(P)):
            np.testing.assert_allclose(g, c, rtol=1e-9, atol=1e-12 * np.max(np.abs(c)))

    rng = np.random.default_rng(0)
    for _ in range(2):
        vs = [rng.standard_normal(np.shape(w)) if np.ndim(w) else float(rng.standard_normal())
              for w in wrt]
        fd = directional_fd(P.objective, wrt, vs)
        if name == "w5_jacobian":                   # a Jacobian: J @ v
            ad = sum(np.asarray(g) * v for g, v in zip(grads, vs))
        else:
            ad = sum(float(np.sum(np.asarray(g) * v)) for g, v in zip(grads, vs))
        np.testing.assert_allclose(ad, fd, rtol=1e-6, atol=1e-7 * (1 + np.max(np.abs(fd))))


@pytest.mark.parametrize("name", MODULES)
def test_workload_lists_methods(name):
    """Every case builds, and its methods start with the numpy primal, then shadowad."""
    mod = importlib.import_module(name)
    for case in mod.CASES:
        assert isinstance(mod.label(case), str)
    P = mod.problem(mod.CASES[0])
    kinds = [m.kind for m in mod.methods(P)]
    assert kinds[:2] == ["primal", "shadowad"]
    assert set(kinds) <= {"primal", "shadowad", "torch", "jax", "autograd"}


def test_primal_matches_objective():
    """The numpy primal method computes the objective (and leaves the inputs alone)."""
    mod = importlib.import_module("w4_lu")
    P = mod.problem(mod.CASES[0])
    A = P.wrt[0].copy()
    primal = mod.methods(P)[0].build()
    assert np.isclose(primal(), np.linalg.slogdet(A)[1], rtol=1e-12)
    assert np.array_equal(P.wrt[0], A)
