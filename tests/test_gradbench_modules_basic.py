"""The GradBench modules hello, lse, det, llsq and ode answer correctly on
small inputs: primals against plain numpy references written differently,
derivatives against central finite differences of those references.  (The
real evals validate against GradBench's C++ tool; this needs no checkout.)"""
import copy
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks", "gradbench"))

from modules import det, hello, llsq, lse, ode  # noqa: E402


def central_differences(f, x, h=1e-6):
    """d f / d x for f: vector -> scalar."""
    grad = np.empty_like(x)
    for i in range(len(x)):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def run(function, input):
    """Through the same path as the tool: evaluate, then back and forth
    through JSON."""
    response = function.evaluate(input | {"min_runs": 2, "min_seconds": 0})
    assert len(response["timings"]) == 2
    return json.loads(json.dumps(response["output"]))


RNG = np.random.default_rng(5)


def test_hello():
    assert hello.square.evaluate(3)["output"] == 9.0
    assert hello.double.evaluate(-1.5)["output"] == -3.0


def lse_reference(x):
    return np.log(np.sum(np.exp(x)))


def test_lse():
    x = RNG.normal(size=7)
    assert run(lse.primal, {"x": x.tolist()}) == pytest.approx(lse_reference(x), rel=1e-13)
    np.testing.assert_allclose(run(lse.gradient, {"x": x.tolist()}),
                               central_differences(lse_reference, x), rtol=1e-7)


def test_lse_of_large_values_does_not_overflow():
    x = [1000.0, 1000.0]
    assert run(lse.primal, {"x": x}) == pytest.approx(1000 + np.log(2))
    assert run(lse.gradient, {"x": x}) == pytest.approx([0.5, 0.5])


def det_reference(A):
    ell = int(round(np.sqrt(len(A))))
    return np.linalg.det(A.reshape(ell, ell))


@pytest.mark.parametrize("ell", [1, 2, 4])
def test_det(ell):
    A = RNG.uniform(size=ell * ell)
    input = {"A": A.tolist(), "ell": ell}
    assert run(det.primal, input) == pytest.approx(det_reference(A), rel=1e-12)
    np.testing.assert_allclose(run(det.gradient, input), central_differences(det_reference, A),
                               rtol=1e-6, atol=1e-9)


def llsq_reference(x, n):
    """The objective as the C++ reference loops over it."""
    total = 0.0
    for i in range(n):
        t = -1 + i * 2 / (n - 1)
        residual = np.sign(t) - sum(x[j] * t ** j for j in range(len(x)))
        total += residual * residual
    return total / 2


@pytest.mark.parametrize("n", [2, 9])      # an odd n puts a point at t = 0, where sign is 0
def test_llsq(n):
    x = RNG.uniform(size=5)
    input = {"x": x.tolist(), "n": n}
    assert run(llsq.primal, input) == pytest.approx(llsq_reference(x, n), rel=1e-12)
    np.testing.assert_allclose(run(llsq.gradient, input),
                               central_differences(lambda x: llsq_reference(x, n), x),
                               rtol=1e-6)


def ode_reference(x, s):
    """Classical RK4 written out of place, one component at a time."""
    def rate(y):
        return np.array([x[0]] + [x[i] * y[i - 1] for i in range(1, len(x))])
    h, y = 2.0 / s, np.zeros(len(x))
    for _ in range(s):
        k1 = rate(y)
        k2 = rate(y + h / 2 * k1)
        k3 = rate(y + h / 2 * k2)
        k4 = rate(y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


@pytest.mark.parametrize("n, s", [(1, 2), (6, 3)])
def test_ode(n, s):
    x = RNG.uniform(size=n)
    input = {"x": x.tolist(), "s": s}
    np.testing.assert_allclose(run(ode.primal, input), ode_reference(x, s), rtol=1e-13)
    np.testing.assert_allclose(run(ode.gradient, input),
                               central_differences(lambda x: ode_reference(x, s)[-1], x),
                               rtol=1e-6, atol=1e-10)


def test_inputs_survive_the_runs():
    """compute runs again and again on the same prepared arguments: it must
    leave them alone."""
    for function, input in [(det.gradient, {"A": [1.0, 2.0, 3.0, 4.0], "ell": 2}),
                            (ode.gradient, {"x": [0.5, 0.25], "s": 2}),
                            (llsq.gradient, {"x": [0.5, 0.25], "n": 3}),
                            (lse.gradient, {"x": [0.5, 0.25]})]:
        args = function.prepare(input)
        before = copy.deepcopy(args)
        first = function.compute(args)
        np.testing.assert_array_equal(function.compute(args), first)
        assert repr(args) == repr(before)
