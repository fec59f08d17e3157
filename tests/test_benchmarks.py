"""The benchmark workloads (benchmarks/w*.py) stay correct: on the smallest
size of each, shadowad's gradient matches a closed form where the module has
one, and central finite differences along random directions otherwise (and
always, as a check of the objective itself).  The float32 cases of W2 and W3
agree with their float64 twins to float32 accuracy.  No peer is imported."""
import importlib
import os
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

from common import case_dtype, same_gradient, tolerance  # noqa: E402

MODULES = ["w1_scalar_loop", "w2_heat", "w3_loglike", "w4_lu", "w5_jacobian",
           "w6_gmm", "w7_rk4", "w8_plain_stepper"]
FLOAT32 = ["w2_heat", "w3_loglike"]          # the modules with float32 cases


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
    assert len({mod.label(case) for case in mod.CASES}) == len(mod.CASES)
    assert mod.CASES[0].get("dtype", "float64") == "float64"
    P = mod.problem(mod.CASES[0])
    kinds = [m.kind for m in mod.methods(P)]
    assert kinds[:2] == ["primal", "shadowad"]
    assert set(kinds) <= {"primal", "shadowad", "torch", "jax", "autograd"}


@pytest.mark.parametrize("name", FLOAT32)
def test_float32_case(name):
    """The smallest float32 case: float32 inputs (its float64 twin's, rounded),
    a float32 gradient from shadowad that agrees with the twin's to the float32
    tolerance run.py checks with, and the closed form where there is one."""
    mod = importlib.import_module(name)
    cases = [c for c in mod.CASES if case_dtype(c) == np.float32]
    assert cases
    case = cases[0]
    twin = {k: v for k, v in case.items() if k != "dtype"}
    assert twin in mod.CASES
    assert mod.label(case) == mod.label(twin) + ",float32"
    P, P64 = mod.problem(case), mod.problem(twin)
    assert P.dtype == np.float32
    for w, w64 in zip(P.wrt, P64.wrt):
        assert w.dtype == np.float32
        np.testing.assert_array_equal(w, w64.astype(np.float32))
    grads = P.gradient(*P.wrt)
    assert all(np.asarray(g).dtype == np.float32 for g in grads)
    assert same_gradient(grads, P64.gradient(*P64.wrt), tol=tolerance(np.float32))
    if hasattr(mod, "closed_form"):
        assert same_gradient(grads, mod.closed_form(P), tol=tolerance(np.float32, True))
    kinds = [m.kind for m in mod.methods(P)]
    assert kinds[:2] == ["primal", "shadowad"]
    if hasattr(P, "gradient_fwddiff"):  # W3's fwddiff row runs in float32 too
        fw = P.gradient_fwddiff(*P.wrt)
        assert all(np.asarray(g).dtype == np.float32 for g in fw)
        assert same_gradient(fw, grads, tol=tolerance(np.float32))


def test_primal_matches_objective():
    """The numpy primal method computes the objective (and leaves the inputs alone)."""
    mod = importlib.import_module("w4_lu")
    P = mod.problem(mod.CASES[0])
    A = P.wrt[0].copy()
    primal = mod.methods(P)[0].build()
    assert np.isclose(primal(), np.linalg.slogdet(A)[1], rtol=1e-12)
    assert np.array_equal(P.wrt[0], A)
