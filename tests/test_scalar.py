"""Traced scalars (TScalar): plain-boolean comparisons, no silent detaching,
numpy's IEEE semantics, sad.primal, and a long scalar loop against its
analytic gradient."""
import math
import operator
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, autodiff
from shadowad.testing import check_accumulate_once, check_gradient, check_restore, same_bits


def run(body, x=(1.5, -2.0, 0.0), **kw):
    """Run body(x) inside f with x Duplicated; return what body returned,
    plus the gradient."""
    out = []

    def f(x):
        out.append(body(x))
    dx = np.zeros(len(x))
    autodiff(f, Duplicated(np.array(x, dtype=float), dx), **kw)
    return out[0], dx


# --------------------------------------------------------------------------
# comparisons and control flow

CMP = [operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]


@pytest.mark.parametrize("cmp", CMP, ids=lambda c: c.__name__)
def test_comparisons_give_plain_bools(cmp):
    def body(x):
        res = []
        for a, b in [(x[0], 0.0), (x[0], 1.5), (0, x[1]), (x[0], x[1]), (x[1], x[1]),
                     (x[2], -0.0), (2, x[0]), (x[0], True)]:
            r = cmp(a, b)
            assert type(r) is bool, (a, b, type(r))
            res.append(r)
        return res
    got, _ = run(body)
    plain = [(1.5, 0.0), (1.5, 1.5), (0, -2.0), (1.5, -2.0), (-2.0, -2.0), (0.0, -0.0),
             (2, 1.5), (1.5, True)]
    assert got == [cmp(a, b) for a, b in plain]


def test_comparison_with_numpy_scalars_is_a_boolean():
    def body(x):
        r = [x[0] > np.float64(1.0), np.float64(1.0) < x[0], x[0] == np.int64(2)]
        for v in r:
            assert isinstance(v, (bool, np.bool_))
        return [bool(v) for v in r]
    assert run(body)[0] == [True, True, False]


def test_branching_on_traced_values():
    def f(x, y):
        for i in range(len(x)):
            if x[i] > 0:
                y[i] = x[i] * x[i]
            elif x[i] < -1:
                y[i] = -x[i]
            else:
                y[i] = 3.0 * x[i]
        if y[0] == y[0] and not (y[1] != y[1]):  # eq/ne on traced values
            y[2] = y[2] + 1.0
    x = np.array([0.5, -2.0, -0.5, 1.5])
    dx, dy = np.zeros(4), np.ones(4)
    autodiff(f, Duplicated(x, dx), Duplicated(np.zeros(4), dy))
    assert dx.tolist() == [1.0, -1.0, 3.0, 3.0]
    check_gradient(f, Duplicated(x, np.zeros(4)), Duplicated(np.zeros(4), np.zeros(4)))


def test_bool_and_truthiness():
    got, _ = run(lambda x: (bool(x[0]), bool(x[2]), bool(x[0] * 0.0), not x[2]))
    assert got == (True, False, False, True)


def test_hash_is_refused():
    def body(x):
        with pytest.raises(TypeError):
            hash(x[0])
        return True
    assert run(body)[0]


# --------------------------------------------------------------------------
# no silent detaching

DETACH = {
    "float": float, "int": int, "np.asarray": np.asarray, "np.array": np.array,
    "np.array_list": lambda t: np.array([t, t]), "math.exp": math.exp, "math.sqrt": math.sqrt,
    "index": lambda t: [1, 2, 3][t], "range": range,
    "np.float64": np.float64, "complex": complex, "round": lambda t: "{:d}".format(t),
    "into_zeros": lambda t: np.zeros(3).__setitem__(0, t),
    "into_zeros_slice": lambda t: np.zeros(3).__setitem__(slice(0, 2), t),
    "into_list_of_array": lambda t: np.zeros(2).__setitem__(Ellipsis, [t, 1.0]),
}


@pytest.mark.parametrize("name", list(DETACH))
def test_detaching_is_a_type_error(name):
    fn = DETACH[name]

    def body(x):
        with pytest.raises(TypeError) as err:
            fn(x[0] * x[1])
        return str(err.value)
    msg, _ = run(body)
    if name not in ("round", "complex"):  # these fail in Python before reaching us
        assert "np.zeros_like" in msg and "np.stack" in msg and "sad.primal" in msg, msg


def test_detach_message_names_the_fix_for_plain_buffers():
    def f(x):
        out = np.zeros(3)
        out[0] = x[0]
    with pytest.raises(TypeError, match=r"np\.zeros_like.*np\.stack.*sad\.primal"):
        autodiff(f, Duplicated(np.ones(2), np.zeros(2)))


def test_indexing_with_a_traced_scalar_is_refused():
    def f(x):
        return x[x[2]]
    with pytest.raises(TypeError, match="sad.primal"):
        autodiff(f, Duplicated(np.array([1.0, 2.0, 0.0]), np.zeros(3)))

    def g(x):  # on purpose, through sad.primal: fine
        return x[int(sad.primal(x[2]))] * 2.0
    dx = np.zeros(3)
    autodiff(g, Duplicated(np.array([1.0, 2.0, 0.0]), dx))
    assert dx.tolist() == [2.0, 0.0, 0.0]


def test_primal_returns_the_float():
    def body(x):
        t = x[0] * x[1] + 1.0
        p = sad.primal(t)
        assert type(p) is float
        assert sad.primal(3.5) == 3.5 and sad.primal("s") == "s"
        a = sad.primal(x)
        assert type(a) is np.ndarray
        return p, a.tolist()
    (p, a), dx = run(body)
    assert p == 1.5 * -2.0 + 1.0
    assert a == [1.5, -2.0, 0.0]


def test_primal_value_does_not_carry_derivative():
    def f(x):
        return x[0] * sad.primal(x[0]) + math.exp(sad.primal(x[1]))
    dx = np.zeros(2)
    autodiff(f, Duplicated(np.array([3.0, 0.5]), dx))
    assert dx.tolist() == [3.0, 0.0]


def test_traced_scalar_attributes():
    def body(x):
        t = x[0]
        return (type(t) is sad.TScalar, t.shape, t.ndim, t.size, t.dtype, repr(t))
    got, _ = run(body)
    assert got == (True, (), 0, 1, np.dtype(np.float64), "TScalar(1.5)")


def test_scalars_of_another_call_are_refused():
    kept = []

    def f(x):
        kept.append(x[0])
        return x[0]
    autodiff(f, Duplicated(np.ones(1), np.zeros(1)))

    for h in (lambda x: x[0] + kept[0], lambda x: kept[0] * x[0], lambda x: x[0] ** kept[0],
              lambda x: np.arctan2(x[0], kept[0]), lambda x: x.__setitem__(0, kept[0])):
        with pytest.raises(RuntimeError, match="two different autodiff calls"):
            autodiff(h, Duplicated(np.ones(1), np.zeros(1)))


LEAKED = {
    "ufunc": lambda t, a: np.exp(t), "mul": lambda t, a: t * 2.0, "rsub": lambda t, a: 1.0 - t,
    "neg": lambda t, a: -t, "abs": lambda t, a: abs(t), "pow": lambda t, a: t ** 2,
    "load": lambda t, a: a[0], "array_op": lambda t, a: a * 2.0,
    "store": lambda t, a: a.__setitem__(0, 3.0), "inplace": lambda t, a: a.__iadd__(1.0),
    "axpy": lambda t, a: sad.axpy(t, a, a),
}


@pytest.mark.parametrize("name", list(LEAKED))
def test_traced_values_used_after_the_call_are_a_clear_error(name):
    """Not a crash: the tape's C memory is gone once autodiff returns."""
    kept = []

    def f(x):
        kept.extend([x[0] * 1.0, x])
    x = np.array([2.0, 3.0])
    autodiff(f, Duplicated(x, np.zeros(2)))
    with pytest.raises(RuntimeError, match="after its autodiff call finished"):
        LEAKED[name](*kept)
    assert x.tolist() == [2.0, 3.0]
    assert kept[0] > 1.0 and sad.primal(kept[0]) == 2.0  # values stay readable


# --------------------------------------------------------------------------
# numpy's IEEE semantics: inf and nan, never ZeroDivisionError

def test_division_by_zero_gives_inf_like_numpy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)

        def body(x):  # x = (1.5, -2.0, 0.0)
            return [sad.primal(v) for v in (
                x[0] / 0.0, x[1] / 0, x[0] / x[2], 1.0 / x[2], x[2] / x[2], 0.0 / x[2],
                x[2] ** -1, x[2] ** -1.0, np.divide(x[0], 0.0), np.reciprocal(x[2]),
                x[1] ** 0.5, (-8.0) ** (x[0] * 0 + 1 / 3), x[0] ** 2000.0, 10.0 ** (x[0] * 300),
                np.log(x[2]), np.sqrt(x[1]))]
        got, _ = run(body)
        with np.errstate(all="ignore"):
            x = np.array([1.5, -2.0, 0.0])
            want = [x[0] / 0.0, x[1] / 0, x[0] / x[2], 1.0 / x[2], x[2] / x[2], 0.0 / x[2],
                    x[2] ** -1, x[2] ** -1.0, np.divide(x[0], 0.0), np.reciprocal(x[2]),
                    x[1] ** 0.5, np.float64(-8.0) ** (1 / 3), x[0] ** 2000.0,
                    np.float64(10.0) ** (x[0] * 300), np.log(x[2]), np.sqrt(x[1])]
        assert all(type(v) is float for v in got)
        assert same_bits(np.array(got), np.array(want, dtype=float)), (got, want)


def test_gradient_through_inf_is_not_an_exception():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)

        def f(x):
            return 1.0 / x[0]
        dx = np.zeros(1)
        autodiff(f, Duplicated(np.array([0.0]), dx))
        assert np.isinf(dx[0]) or np.isnan(dx[0])


# --------------------------------------------------------------------------
# arithmetic on traced scalars

SCALAR_FUNCS = {
    "poly": lambda a, b: a * a * b - 3.0 * a + b / 2 - 1,
    "rational": lambda a, b: (a + 1.0) / (b * b + 1.0) - 2 / (a * a + 3),
    "powers": lambda a, b: a ** 3 + 2 ** b + abs(b) ** 1.5 + (a * a + 1) ** b,
    "neg_pos": lambda a, b: -a * +b - (-b),
    "numpy": lambda a, b: np.sin(a) * np.exp(b) + np.arctan2(a, b) + np.hypot(a, b),
    "mixed": lambda a, b: np.tanh(a * b) ** 2 + np.log1p(a * a) * np.sqrt(b * b + 1),
    "int_consts": lambda a, b: 3 * a + b * 2 - 1 + 4 - a,
}


@pytest.mark.parametrize("name", list(SCALAR_FUNCS))
def test_active_scalar_arguments(name):
    fn = SCALAR_FUNCS[name]
    a, b = 0.7, -1.3
    ga, gb = autodiff(fn, Active(a), Active(b))
    assert type(ga) is float and type(gb) is float
    h = 1e-6
    assert ga == pytest.approx((fn(a + h, b) - fn(a - h, b)) / (2 * h), rel=1e-6, abs=1e-8)
    assert gb == pytest.approx((fn(a, b + h) - fn(a, b - h)) / (2 * h), rel=1e-6, abs=1e-8)
    (_, _), v = autodiff(fn, Active(a), Active(b), mode=sad.ReverseWithPrimal)
    assert v == fn(a, b)  # the primal is plain float arithmetic, bit for bit


def test_identity_and_constant_results():
    assert autodiff(lambda a: a, Active(2.0)) == (1.0,)
    assert autodiff(lambda a: 5.0, Active(2.0)) == (0.0,)
    assert autodiff(lambda a, c: a * c, Active(2.0), Const(4.0)) == (4.0, None)
    assert autodiff(lambda a, c: a * c, Active(2.0), 4.0) == (4.0, None)


def test_scalar_reuse_accumulates():
    def f(x):
        t = x[0]
        return t * t + t + np.sin(t) * t
    x = np.array([0.4])
    dx = np.array([10.0])  # the gradient is added
    autodiff(f, Duplicated(x, dx))
    assert dx[0] == pytest.approx(10.0 + 2 * 0.4 + 1 + np.cos(0.4) * 0.4 + np.sin(0.4))


def test_store_and_reload():
    def f(x, y):
        y[0] = x[0] * x[1]
        y[1] = y[0] * y[0]          # reads the stored value back
        y[0] = y[1] - x[0]          # overwrites: the old adjoint is consumed
        y[-1] = -y[-1]              # negative indices on the fast path
    x = np.array([1.5, -0.5])
    check_gradient(f, Duplicated(x, np.zeros(2)), Duplicated(np.ones(3), np.zeros(3)))
    check_restore(f, Duplicated(x, np.zeros(2)), Duplicated(np.ones(3), np.zeros(3)))
    check_accumulate_once(f, Duplicated(x, np.zeros(2)), Duplicated(np.ones(3), np.zeros(3)))


def test_store_into_const_promotes():
    def f(x, c):
        c[1] = x[0] * 2.0
        return c[1] * c[0] + c[2]
    c = np.array([3.0, 0.0, 1.0])
    dx = np.zeros(1)
    assert autodiff(f, Duplicated(np.array([1.0]), dx), Const(c)) == (None, None)
    assert dx.tolist() == [6.0]
    assert c.tolist() == [3.0, 2.0, 1.0]


# --------------------------------------------------------------------------
# a long scalar loop against its analytic gradient

def loop(x, y):
    for i in range(1, len(x)):
        y[i] = x[i] * x[i] + 0.5 * y[i - 1]


def test_scalar_loop_1000_steps():
    n = 1000
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, n)
    y0 = rng.uniform(-1, 1, n)
    ybar = rng.standard_normal(n)
    dx, dy = np.zeros(n), ybar.copy()
    y = y0.copy()
    _, tape = sad.autodiff_split(loop, Duplicated(x, dx), Duplicated(y, dy))
    assert len(tape) == 7 * (n - 1)  # 3 loads, 2 products, a sum and a store per step
    tape.reverse()

    plain = y0.copy()
    loop(x, plain)
    assert same_bits(y, plain)  # the primal effect, bit for bit

    # reverse by hand: g_i = ybar_i + 0.5 g_{i+1}; xbar_i = 2 x_i g_i
    g = np.zeros(n)
    g[n - 1] = ybar[n - 1]
    for i in range(n - 2, 0, -1):
        g[i] = ybar[i] + 0.5 * g[i + 1]
    want_dx = 2 * x * g
    want_dx[0] = 0.0
    want_dy = np.zeros(n)
    want_dy[0] = ybar[0] + 0.5 * g[1]
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(dy, want_dy, rtol=1e-12, atol=0)


def test_scalar_loop_restore_and_checks():
    n = 40
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    check_gradient(loop, Duplicated(x, np.zeros(n)), Duplicated(y, np.zeros(n)))
    check_restore(loop, Duplicated(x, np.zeros(n)), Duplicated(y, np.zeros(n)))
    check_accumulate_once(loop, Duplicated(x, np.zeros(n)), Duplicated(y, np.zeros(n)))


def test_scalar_accumulator_loop():
    def f(x):
        s = 0.0
        for i in range(len(x)):
            s = s + x[i] * x[i] if x[i] > 0 else s - x[i]
        return s
    x = np.linspace(-1, 1, 101)
    dx = np.zeros(101)
    (_,), v = autodiff(f, Duplicated(x, dx), mode=sad.ReverseWithPrimal)
    assert v == f(x)
    assert dx.tolist() == np.where(x > 0, 2 * x, -1.0).tolist()


def test_c_arithmetic_follows_numpy_at_the_edges():
    """The C fast path (two traced scalars, or one and a float or int) gives
    numpy's values where Python's floats would raise, and its derivatives."""
    def f(a, b):
        with np.errstate(all="ignore"):
            want = [np.float64(1.0) / 0.0, np.float64(-8.0) ** (1 / 3), np.float64(a.v) ** 2]
        got = [a / 0.0, (a - 11.0) ** (1 / 3), a ** 2]
        for g, w in zip(got, want[:2]):
            assert (np.isnan(g.v) and np.isnan(w)) or g.v == w
        return got[2] * b + 2 ** a + 3 * a + True * b
    grads = sad.autodiff(f, Active(3.0), Active(0.5))
    assert grads[0] == pytest.approx(2 * 3.0 * 0.5 + np.log(2) * 2 ** 3.0 + 3)
    assert grads[1] == pytest.approx(9.0 + 1.0)


def test_c_load_and_store_check_bounds_and_lifetime():
    kept = []

    def f(x, y):
        with pytest.raises(IndexError):
            x[3]
        with pytest.raises(IndexError):
            y[-4] = x[0]
        y[-1] = x[-1] * 2.0
        kept.append((x, x[0]))
        return y[2]
    x, y = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    dx = np.zeros(3)
    sad.autodiff(f, Duplicated(x, dx), Duplicated(y, np.zeros(3)))
    assert dx.tolist() == [0.0, 0.0, 2.0]
    arr, t = kept[0]
    with pytest.raises(RuntimeError, match="after its autodiff call"):
        arr[1]
    with pytest.raises(RuntimeError, match="after its autodiff call"):
        t * 2.0
