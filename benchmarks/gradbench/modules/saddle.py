"""GradBench ``saddle`` (Pearlmutter and Siskind): the saddle point of
f(p1, p2) = (p1x^2 + p1y^2) - (p2x^2 + p2y^2) as min over p1 of max over p2,
both by gradient descent from the input's starting point.

Nested differentiation: the outer descent takes the derivative of
max_p2 f(p1, p2) with respect to p1 *through the inner descent*, whose steps
take gradients of f with respect to p2.  The four functions are the four
combinations of modes, named outer then inner (``fr`` = forward mode over
reverse mode); as in the reference Enzyme tool, the final argmax over p2
uses the inner mode.  No derivative is written by hand.
"""
import shadowad as sad
import timed

from .descent import argmax, argmin


def f(p1x, p1y, p2x, p2y):
    return (p1x * p1x + p1y * p1y) - (p2x * p2x + p2y * p2y)


def inner_reverse(p1):
    """grad_p2 f(p1, .) by one reverse sweep."""
    def gradient(p2):
        return list(sad.autodiff(f, sad.Const(p1[0]), sad.Const(p1[1]),
                                 sad.Active(p2[0]), sad.Active(p2[1]))[2:])
    return gradient


def inner_forward(p1):
    """grad_p2 f(p1, .) by two forward passes."""
    def gradient(p2):
        return [sad.autodiff(f, sad.Const(p1[0]), sad.Const(p1[1]), sad.Duplicated(p2[0], dx),
                             sad.Duplicated(p2[1], dy), mode=sad.Forward)
                for dx, dy in ((1.0, 0.0), (0.0, 1.0))]
    return gradient


def max_over_p2(p1x, p1y, start, inner):
    """max_p2 f(p1, p2), the argmax found by descent from ``start``."""
    p1 = [p1x, p1y]
    objective = lambda p2: f(p1x, p1y, p2[0], p2[1])  # noqa: E731
    return objective(argmax(objective, inner(p1), start))


def outer_reverse(objective):
    def gradient(p1):
        return list(sad.autodiff(objective, sad.Active(p1[0]), sad.Active(p1[1])))
    return gradient


def outer_forward(objective):
    def gradient(p1):
        return [sad.autodiff(objective, sad.Duplicated(p1[0], dx), sad.Duplicated(p1[1], dy),
                             mode=sad.Forward)
                for dx, dy in ((1.0, 0.0), (0.0, 1.0))]
    return gradient


def solve(outer, inner, start):
    def objective(p1x, p1y):
        return max_over_p2(p1x, p1y, start, inner)
    r1 = argmin(lambda p1: objective(*p1), outer(objective), start)
    r2 = argmax(lambda p2: f(r1[0], r1[1], p2[0], p2[1]), inner(r1), start)
    return [float(v) for v in r1 + r2]


def starting_point(input):
    start = timed.vector(input, "start", min_length=2)
    if len(start) != 2:
        raise timed.InputError(f"input field 'start' must be a point of 2 numbers, got "
                               f"{len(start)}")
    return [float(v) for v in start]


def variant(outer, inner):
    @timed.function(prepare=starting_point)
    def compute(start):
        return solve(outer, inner, start)
    return compute


ff = variant(outer_forward, inner_forward)
fr = variant(outer_forward, inner_reverse)
rf = variant(outer_reverse, inner_forward)
rr = variant(outer_reverse, inner_reverse)
