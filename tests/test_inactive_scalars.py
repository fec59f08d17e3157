"""Scalars of inactive memory are numpy's scalars, as outside f.

An element or a reduction of a Const array is an np.float64 inside f, as it
is in plain numpy, not a Python float: under NEP 50 a Python float combined
with an np.float32 (or a float32 array) computes in float32, an np.float64
in float64, so a Python float would change the primal values and dtypes the
untraced call computes.  And ``np.float64(k) op t`` with a traced scalar t
(numpy calls the ufunc rather than t's reflected operator) must give what
``float(k) op t`` gives, derivative included.
"""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated

C = np.linspace(0.1, 0.9, 5)
M = np.linspace(0.1, 0.9, 12).reshape(3, 4)
INACTIVE = {
    "c[1]": lambda c, m: c[1], "c[-1]": lambda c, m: c[-1], "c[np.int64(2)]": lambda c, m: c[np.int64(2)],
    "m[1, 2]": lambda c, m: m[1, 2], "m[1][2]": lambda c, m: m[1][2], "m[(2, 3)]": lambda c, m: m[(2, 3)],
    "np.sum(c)": lambda c, m: np.sum(c), "c.sum()": lambda c, m: c.sum(), "np.max(c)": lambda c, m: np.max(c),
    "c.mean()": lambda c, m: c.mean(), "np.prod(c)": lambda c, m: np.prod(c),
    "np.dot(c, c)": lambda c, m: np.dot(c, c), "c @ c": lambda c, m: c @ c,
    "c[1] * 2.0": lambda c, m: c[1] * 2.0, "np.sin(c[1])": lambda c, m: np.sin(c[1]),
    "c[0] + c[1]": lambda c, m: c[0] + c[1], "np.trace(m)": lambda c, m: np.trace(m),
}
OTHERS = {
    "np.float32": lambda: np.float32(1.1),
    "np.float16": lambda: np.float16(0.3),
    "float32 array": lambda: np.array([1.1, 2.2], np.float32),
}
MODES = {"reverse": sad.Reverse, "forward": sad.Forward}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("other", OTHERS)
@pytest.mark.parametrize("expr", INACTIVE)
def test_inactive_scalars_compute_as_numpys(expr, other, mode):
    e, o = INACTIVE[expr], OTHERS[other]
    want = e(C, M) + o()
    got = []

    def f(u, c, m):
        r = e(c, m) + o()
        got.append(r)
        return u[0] * 1.0

    sad.autodiff(f, Duplicated(np.ones(2), np.ones(2)), Const(C.copy()), Const(M.copy()),
                 mode=MODES[mode])
    assert np.asarray(got[0]).dtype == np.asarray(want).dtype
    assert np.asarray(got[0]).tobytes() == np.asarray(want).tobytes()


@pytest.mark.parametrize("mode", MODES)
def test_written_back_as_numpy_does(mode):
    """The fuzz finding: w[0] += np.float32(1.1) with Const(w) wrote a float32 sum."""
    def f(u, w):
        w[0] += np.float32(1.1)
        w[1] = w[1] + np.float32(1.1)
        w[2] = np.sum(w[3:]) + np.float32(1.1)
        return u[0] * 1.0
    w, want = np.full(5, 0.1), np.full(5, 0.1)
    want[0] += np.float32(1.1)
    want[1] = want[1] + np.float32(1.1)
    want[2] = np.sum(want[3:]) + np.float32(1.1)
    sad.autodiff(f, Duplicated(np.ones(2), np.ones(2)), Const(w), mode=MODES[mode])
    assert w.tobytes() == want.tobytes()


OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
       "/": lambda a, b: a / b, "**": lambda a, b: a ** b}


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("k", [0.7, -0.0, 2.0])
def test_numpy_scalar_on_the_left_of_a_traced_scalar(op, k):
    """np.float64(k) op t is float(k) op t: value, type and derivative, in
    reverse and forward mode (numpy's scalar calls the ufunc here)."""
    fn = OPS[op]

    def f(x, kk):
        return fn(kk, x[0] * 1.5)

    x = np.array([0.8, 0.3])
    ref = sad.autodiff(f, Active(x), float(k), mode=sad.ReverseWithPrimal)
    got = sad.autodiff(f, Active(x), Const(np.float64(k)), mode=sad.ReverseWithPrimal)
    assert got[1] == ref[1] or (np.isnan(got[1]) and np.isnan(ref[1]))
    np.testing.assert_array_equal(got[0][0], ref[0][0])
    fwd_ref = sad.autodiff(f, Duplicated(x.copy(), np.array([1.0, 0.0])), float(k),
                           mode=sad.Forward)
    fwd = sad.autodiff(f, Duplicated(x.copy(), np.array([1.0, 0.0])), Const(np.float64(k)),
                       mode=sad.Forward)
    np.testing.assert_array_equal(fwd, fwd_ref)
    np.testing.assert_array_equal(fwd, got[0][0][0])


def test_element_of_a_const_times_an_active_element():
    """c[i] (an np.float64) on the left of an active scalar: the common
    scalar-loop pattern, against finite differences."""
    c, x = np.linspace(0.5, 1.5, 6), np.linspace(1.0, 2.0, 6)

    def f(x, c):
        s = 0.0
        for i in range(6):
            s = s + c[i] * x[i] * x[i] - c[i] / x[i]
        return s
    g = sad.autodiff(f, Active(x), Const(c))[0]
    np.testing.assert_allclose(g, 2 * c * x + c / x ** 2, rtol=1e-14)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", ["+", "*", "-", "/"])
@pytest.mark.parametrize("make", [np.float32, np.float16, np.int64, np.float64])
def test_numpy_scalars_on_either_side_agree(make, op, mode):
    """A traced scalar computes as an np.float64: k op t and t op k with a
    numpy scalar k of any real type take the same path (value and derivative),
    as float(k) does."""
    k = make(1.1) if make is not np.int64 else make(3)
    fn = OPS[op]

    arg = Active(1.3) if mode == "reverse" else Duplicated(1.3, 1.0)
    how = sad.ReverseWithPrimal if mode == "reverse" else sad.ForwardWithPrimal
    for side in (lambda kk, a: fn(kk, a), lambda kk, a: fn(a, kk)):
        got = sad.autodiff(lambda a: side(k, a), arg, mode=how)
        want = sad.autodiff(lambda a: side(float(k), a), arg, mode=how)
        assert got == want
