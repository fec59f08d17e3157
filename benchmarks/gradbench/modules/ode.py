"""GradBench ``ode``: s steps of classical Runge-Kutta on
y0' = x0, yi' = xi * y(i-1) from y = 0 over [0, 2] (cmpad's ``an_ode``), and
the gradient of the last component of y by reverse mode.

The stepper works in place as the C++ reference does: the stages and the
state are buffers allocated once and overwritten every step, and the tape
saves only what each step overwrites.
"""
import numpy as np

import shadowad as sad
import timed


def rate(x, y, out):
    """out = y'(y): x0 for the first component, x_i * y_(i-1) after it."""
    out[0] = x[0]
    np.multiply(x[1:], y[:-1], out=out[1:])


def runge_kutta(x, steps):
    h = 2.0 / steps
    y = np.zeros_like(x)
    k1, k2, k3, k4, stage = (np.empty_like(x) for _ in range(5))
    for _ in range(steps):
        rate(x, y, k1)
        np.add(y, h / 2 * k1, out=stage)
        rate(x, stage, k2)
        np.add(y, h / 2 * k2, out=stage)
        rate(x, stage, k3)
        np.add(y, h * k3, out=stage)
        rate(x, stage, k4)
        y += h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


def last_component(x, steps):
    return runge_kutta(x, steps)[-1]


def prepare(input):
    return timed.vector(input, "x"), timed.integer(input, "s", minimum=1)


@timed.function(prepare=prepare, finish=timed.to_list)
def primal(args):
    x, steps = args
    return runge_kutta(x, steps)


@timed.function(prepare=prepare, finish=timed.to_list)
def gradient(args):
    x, steps = args
    # Everything f writes is its own scratch memory, so there is nothing to
    # put back afterwards: restore=True skips the redo sweep.
    dx, _ = sad.autodiff(last_component, sad.Active(x), sad.Const(steps), restore=True)
    return dx
