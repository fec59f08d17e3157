"""GradBench ``particle`` (Pearlmutter and Siskind): a charged particle starts
at (0, 8) with velocity (0.75, 0), pushed by the field of two charges at
(10, 10 - w) and (10, 0); find by gradient descent the w that makes it cross
the x axis at the origin.

Nested differentiation: every Euler step takes the gradient of the potential
with respect to the particle's position (the *inner* differentiation), and
the descent takes the derivative of the crossing point with respect to w
through the whole simulation, inner gradients included (the *outer* one).
The four functions are the four combinations of modes, named outer then
inner: ``fr`` = forward mode over reverse mode.  No derivative is written by
hand.
"""
import numpy as np

import shadowad as sad
import timed

from .descent import argmin

DT = 0.1  # the Euler step


def potential(charges, x0, x1):
    """sum over the charges of 1 / |charge - x|."""
    p = 0.0
    for c0, c1 in charges:
        p = p + 1.0 / np.sqrt((c0 - x0) * (c0 - x0) + (c1 - x1) * (c1 - x1))
    return p


def grad_reverse(charges, x0, x1):
    """d potential / d (x0, x1) by one reverse sweep."""
    _, g0, g1 = sad.autodiff(potential, sad.Const(charges), sad.Active(x0), sad.Active(x1))
    return g0, g1


def grad_forward(charges, x0, x1):
    """d potential / d (x0, x1) by two forward passes (one per direction)."""
    g0 = sad.autodiff(potential, sad.Const(charges), sad.Duplicated(x0, 1.0),
                      sad.Duplicated(x1, 0.0), mode=sad.Forward)
    g1 = sad.autodiff(potential, sad.Const(charges), sad.Duplicated(x0, 0.0),
                      sad.Duplicated(x1, 1.0), mode=sad.Forward)
    return g0, g1


def crossing(w, grad):
    """x0(t_f)^2, where the naive Euler path (force = -grad potential, taken by
    ``grad``) crosses the x axis, interpolating linearly inside the last step."""
    charges = [(10.0, 10.0 - w), (10.0, 0.0)]
    x0, x1 = 0.0, 8.0
    v0, v1 = 0.75, 0.0
    while True:
        g0, g1 = grad(charges, x0, x1)
        a0, a1 = -1.0 * g0, -1.0 * g1
        x0, x1 = x0 + DT * v0, x1 + DT * v1
        if x1 <= 0:
            dt_f = -x1 / v1
            x_f = x0 + dt_f * v0
            return x_f * x_f
        v0, v1 = v0 + DT * a0, v1 + DT * a1


def derivative_reverse(objective):
    return lambda w: [sad.autodiff(objective, sad.Active(w[0]))[0]]


def derivative_forward(objective):
    return lambda w: [sad.autodiff(objective, sad.Duplicated(w[0], 1.0), mode=sad.Forward)]


def solve(outer, inner, w0):
    """The argmin over w, its derivative by mode ``outer`` and the potential's
    gradient inside the simulation by ``inner``."""
    def objective(w):
        return crossing(w, inner)
    return argmin(lambda w: objective(w[0]), outer(objective), [w0])[0]


def start(input):
    w = timed.field(input, "w")
    if isinstance(w, bool) or not isinstance(w, (int, float)):
        raise timed.InputError(f"input field 'w' must be a number, got {w!r:.60}")
    return float(w)


def variant(outer, inner):
    @timed.function(prepare=start, finish=float)
    def compute(w0):
        return solve(outer, inner, w0)
    return compute


ff = variant(derivative_forward, grad_forward)
fr = variant(derivative_forward, grad_reverse)
rf = variant(derivative_reverse, grad_forward)
rr = variant(derivative_reverse, grad_reverse)
