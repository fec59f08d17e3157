"""GradBench ``lse``: log-sum-exp with the max shift, and its gradient by
reverse mode through the max, the exponentials and the sum."""
import numpy as np

import shadowad as sad
import timed


def logsumexp(x):
    a = np.max(x)
    return a + np.log(np.sum(np.exp(x - a)))


def prepare(input):
    return timed.vector(input, "x")


@timed.function(prepare=prepare, finish=float)
def primal(x):
    return logsumexp(x)


@timed.function(prepare=prepare, finish=timed.to_list)
def gradient(x):
    (dx,) = sad.autodiff(logsumexp, sad.Active(x))
    return dx
