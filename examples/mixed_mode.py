"""Mixed mode with sad.fwddiff: the same gradient from fewer records.

Reverse mode records every operation of ``-log(x) - d/x`` (log, negative,
divide, subtract).  Wrapping the per-element function in ``sad.fwddiff``
records ONE record instead, whose partial derivatives come from running the
function once in forward mode (one tangent lane per active input), after
ForwardDiffPullbacks.  The function must be elementwise: it is applied to
arrays element by element, with broadcasting.
"""
import numpy as np

import shadowad as sad
from shadowad import Active, Const


def loglike(X, data):                         # plain: every operation is a record
    return np.sum(-np.log(X) - data / X)


logpdf = sad.fwddiff(lambda x, d: -np.log(x) - d / x)


def loglike_fwddiff(X, data):                 # mixed: one record for logpdf, one for sum
    return np.sum(logpdf(X, data))


# On traced scalars, fwddiff of one or two active scalars is a single C record:
step = sad.fwddiff(lambda y, x: y * np.cos(x) + x * x / (1.0 + y * y))


def recurrence(x, y, stepper):
    for i in range(1, x.shape[0]):
        y[i] = stepper(y[i - 1], x[i])
    return y[-1]


def main():
    rng = np.random.default_rng(1)
    X = 3 * rng.random(1000) + 0.1
    data = rng.random(1000) * 4

    _, tape_plain = sad.autodiff_split(loglike, Active(X), Const(data))
    _, tape_mixed = sad.autodiff_split(loglike_fwddiff, Active(X), Const(data))
    n_plain, n_mixed = len(tape_plain), len(tape_mixed)
    print(f"log-likelihood: {n_plain} records ({tape_plain.nbytes} bytes) plain, "
          f"{n_mixed} records ({tape_mixed.nbytes} bytes) with fwddiff")
    g_plain = tape_plain.reverse()[0]
    g_mixed = tape_mixed.reverse()[0]
    err = np.max(np.abs(g_mixed - g_plain) / np.abs(g_plain))
    print(f"relative difference of the gradients: {err:.1e}")
    assert (n_plain, n_mixed) == (5, 2)
    assert np.allclose(g_mixed, g_plain, rtol=1e-13, atol=0)
    assert np.allclose(g_mixed, -1 / X + data / X ** 2, rtol=1e-13, atol=0)

    # sad.gradient works the same way (bare arrays are Active)
    g, _ = sad.gradient(loglike_fwddiff, X, Const(data))
    assert np.array_equal(g, g_mixed)

    # a scalar recurrence: each step is one record instead of seven
    n = 50
    x = np.linspace(0.0, 1.0, n)
    counts, grads = [], []
    for stepper in (step.__wrapped__, step):             # the plain function, then fwddiff
        y, dx, dy = np.full(n, 0.5), np.zeros(n), np.zeros(n)
        _, tape = sad.autodiff_split(recurrence, sad.Duplicated(x, dx),
                                     sad.Duplicated(y, dy), stepper)
        counts.append(len(tape))
        tape.reverse()
        grads.append(dx)
    print(f"recurrence of {n} steps: {counts[0]} records plain, {counts[1]} with fwddiff")
    assert counts[1] < counts[0]
    assert np.allclose(grads[1], grads[0], rtol=1e-13, atol=1e-15)

    # outside autodiff the wrapper simply calls the function
    assert logpdf(2.0, 1.0) == -np.log(2.0) - 0.5
    print("ok")


if __name__ == "__main__":
    main()
