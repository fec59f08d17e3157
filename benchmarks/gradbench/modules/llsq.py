"""GradBench ``llsq``: the least-squares objective of fitting sign(t) by a
polynomial with coefficients x on n points of [-1, 1] (cmpad's
``llsq_obj``), and its gradient by reverse mode."""
import numpy as np

import shadowad as sad
import timed


def objective(x, n):
    # -1 + i*2/(n-1) in the reference's order of operations: the midpoint of
    # an odd n is then exactly 0, whose sign is 0 (linspace may miss it).
    t = -1 + np.arange(n) * 2 / (n - 1)
    powers = np.vander(t, len(x), increasing=True)   # t_i ** j, constant
    residual = np.sign(t) - powers @ x
    return np.sum(residual * residual) / 2


def prepare(input):
    return timed.vector(input, "x"), timed.integer(input, "n", minimum=2)


@timed.function(prepare=prepare, finish=float)
def primal(args):
    x, n = args
    return objective(x, n)


@timed.function(prepare=prepare, finish=timed.to_list)
def gradient(args):
    x, n = args
    dx, _ = sad.autodiff(objective, sad.Active(x), sad.Const(n))
    return dx
