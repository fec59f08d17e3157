"""The GradBench modules that need nested differentiation -- kmeans (forward
over reverse for the Hessian's diagonal), particle and saddle (an argmin
whose objective takes gradients, in all four combinations of modes) --
against plain numpy references and central finite differences on small
inputs.  The full descents run in the GradBench evals themselves (tens of
seconds each); here their pieces are checked."""
import os
import sys

import numpy as np
import pytest

GRADBENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "benchmarks", "gradbench")
sys.path.insert(0, GRADBENCH)

import timed  # noqa: E402
from modules import descent, kmeans, particle, saddle  # noqa: E402


def central(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


# --------------------------------------------------------------------------
# kmeans

def kmeans_input(n=40, k=4, d=3, seed=0):
    points = np.random.default_rng(seed).random((n, d))
    return {"points": points.tolist(), "centroids": points[-k:].tolist()}


def test_kmeans_cost_and_direction_match_numpy():
    inp = kmeans_input()
    P, C = np.array(inp["points"]), np.array(inp["centroids"])
    D = ((P[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(kmeans.cost(inp), D.min(axis=1).sum(), rtol=1e-12)
    near = D.argmin(axis=1)
    # Newton's direction: J / diag(H) = c_j - (mean of the points nearest c_j)
    expect = np.array([C[j] - P[near == j].mean(axis=0) for j in range(len(C))])
    np.testing.assert_allclose(kmeans.dir(inp), expect, rtol=1e-10, atol=1e-12)


def test_kmeans_gradient_is_reverse_mode_and_hessian_forward_over_reverse():
    P, C = np.array(kmeans_input()["points"]), np.array(kmeans_input()["centroids"])
    g = kmeans.gradient(C, P)
    E = np.zeros_like(C)
    E[1, 2] = 1.0
    fd = central(lambda h: kmeans.objective(C + h * E, P), 0.0)
    np.testing.assert_allclose(g[1, 2], fd, rtol=1e-6)
    direction = kmeans.newton_direction(C, P)
    hd = g / direction                             # diag(H) = 2 * cluster sizes
    near = ((P[:, None, :] - C[None]) ** 2).sum(axis=2).argmin(axis=1)
    np.testing.assert_allclose(hd, 2 * np.bincount(near, minlength=len(C))[:, None]
                               * np.ones(C.shape[1]), rtol=1e-10)


def test_kmeans_compute_leaves_its_arguments_alone():
    args = kmeans.dir.prepare(kmeans_input())
    before = [a.copy() for a in args]
    first = kmeans.dir.compute(args)
    second = kmeans.dir.compute(args)
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("bad", [{"points": [[1.0, 2.0]]}, {"points": [[1.0]], "centroids": [[1.0, 2.0]]},
                                 {"points": "x", "centroids": [[1.0]]}, [1, 2]])
def test_kmeans_bad_input(bad):
    with pytest.raises(timed.InputError):
        kmeans.cost.prepare(bad)


# --------------------------------------------------------------------------
# the descent both Pearlmutter-Siskind evals use

def test_descent_finds_a_minimum_and_a_maximum():
    x = descent.argmin(lambda v: (v[0] - 0.3) ** 2 + (v[1] + 0.2) ** 2,
                       lambda v: [2 * (v[0] - 0.3), 2 * (v[1] + 0.2)], [1.0, 1.0])
    np.testing.assert_allclose(x, [0.3, -0.2], atol=1e-5)
    y = descent.argmax(lambda v: -10 * (v[0] - 0.5) ** 2, lambda v: [-20 * (v[0] - 0.5)], [1.0])
    np.testing.assert_allclose(y, [0.5], atol=1e-5)


def test_descent_stops_at_once_when_the_gradient_is_small():
    calls = []
    x = descent.argmin(lambda v: calls.append(v) or 0.0, lambda v: [1e-6], [2.0])
    assert x == [2.0] and len(calls) == 1


# --------------------------------------------------------------------------
# particle

def potential_gradient(w, x0, x1):
    g = np.zeros(2)
    for c in ((10.0, 10.0 - w), (10.0, 0.0)):
        d = np.array([x0 - c[0], x1 - c[1]])
        g -= d / np.linalg.norm(d) ** 3
    return g


@pytest.mark.parametrize("inner", [particle.grad_reverse, particle.grad_forward])
def test_particle_inner_gradient(inner):
    charges = [(10.0, 10.0 - 0.1), (10.0, 0.0)]
    np.testing.assert_allclose(inner(charges, 1.5, 6.0), potential_gradient(0.1, 1.5, 6.0),
                               rtol=1e-12)


def plain_crossing(w):
    """The simulation with the closed-form force: the reference."""
    return particle.crossing(w, lambda charges, x0, x1: tuple(
        potential_gradient(w, x0, x1)))


@pytest.mark.parametrize("outer", ["forward", "reverse"])
@pytest.mark.parametrize("inner", ["forward", "reverse"])
def test_particle_derivative_through_the_simulation(outer, inner):
    grad = {"forward": particle.grad_forward, "reverse": particle.grad_reverse}[inner]
    derivative = {"forward": particle.derivative_forward,
                  "reverse": particle.derivative_reverse}[outer]
    w = 0.15
    assert particle.crossing(w, grad) == pytest.approx(plain_crossing(w), rel=1e-12)
    got, = derivative(lambda w: particle.crossing(w, grad))([w])
    np.testing.assert_allclose(got, central(plain_crossing, w), rtol=1e-6)


def test_particle_variants_are_the_four_combinations():
    for name in ("ff", "fr", "rf", "rr"):
        fn = getattr(particle, name)
        assert isinstance(fn, timed.Function)
        assert fn.prepare({"w": 0}) == 0.0
    with pytest.raises(timed.InputError):
        particle.rr.prepare({"w": "zero"})


# --------------------------------------------------------------------------
# saddle

@pytest.mark.parametrize("inner", [saddle.inner_forward, saddle.inner_reverse])
def test_saddle_inner_gradient(inner):
    p1 = [0.4, -0.7]
    np.testing.assert_allclose(inner(p1)([1.5, 2.5]), [-3.0, -5.0])


@pytest.mark.parametrize("outer", [saddle.outer_forward, saddle.outer_reverse])
@pytest.mark.parametrize("inner", [saddle.inner_forward, saddle.inner_reverse])
def test_saddle_derivative_through_the_inner_argmax(outer, inner):
    start = [0.5, 0.5]                      # the inner descent takes a few steps from here

    def objective(p1x, p1y):
        return saddle.max_over_p2(p1x, p1y, start, inner)

    p1 = [0.3, -0.4]
    got = outer(objective)(p1)
    fd = [central(lambda h: objective(p1[0] + h, p1[1]), 0.0),
          central(lambda h: objective(p1[0], p1[1] + h), 0.0)]
    np.testing.assert_allclose(got, fd, rtol=1e-6)
    np.testing.assert_allclose(got, [2 * p1[0], 2 * p1[1]], rtol=1e-9)  # the envelope


def test_saddle_solve_and_input():
    out = saddle.rr({"start": [0.05, 0.05]})  # a step from here is below the tolerance
    assert out == [0.05, 0.05, 0.05, 0.05]
    for bad in ({"start": [1.0]}, {"start": [1.0, 2.0, 3.0]}, {"begin": [1.0, 1.0]}):
        with pytest.raises(timed.InputError):
            saddle.ff.prepare(bad)
