"""The gradient-descent solver of GradBench's ``particle`` and ``saddle``
evals, step for step as the reference tools run it (their shared
``gd.hpp``): the answers are validated against that solver's outputs, so its
step sizes and stopping rules are part of the specification.

Points are lists of scalars, so the same code runs on plain floats and on
values traced by an enclosing differentiation (``saddle`` differentiates
through an inner argmax); comparisons of traced values give plain booleans.
"""
import numpy as np


def magnitude(v):
    return np.sqrt(sum(x * x for x in v))


def distance(u, v):
    return np.sqrt(sum((a - b) * (a - b) for a, b in zip(u, v)))


def argmin(objective, gradient, start):
    """Gradient descent from ``start`` (a list of scalars): steps of eta,
    halved after a step that does not improve, doubled after ten steps that
    do; stops when the gradient or the step is at most 1e-5."""
    x = list(start)
    fx = objective(x)
    gx = gradient(x)
    i, eta = 0, 1e-5
    while True:
        if magnitude(gx) <= 1e-5:
            return x
        if i == 10:
            eta *= 2
            i = 0
            continue
        x_prime = [a - eta * g for a, g in zip(x, gx)]
        if distance(x, x_prime) <= 1e-5:
            return x
        fx_prime = objective(x_prime)
        if fx_prime < fx:
            x, fx = x_prime, fx_prime
            gx = gradient(x)
            i += 1
        else:
            eta /= 2
            i = 0


def argmax(objective, gradient, start):
    return argmin(lambda x: -objective(x), lambda x: [-g for g in gradient(x)], start)
