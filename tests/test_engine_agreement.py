"""Every engine gives the same derivative at edge values (0, -0.0, inf, -inf,
NaN, ties), NaN positions included: the C reverse sweep, the nested engine
(autodiff inside a differentiated function), forward mode one unit direction
at a time, BatchDuplicated lanes, sad.jacobian both ways, sad.fwddiff, and
the traced-scalar paths.  The convention they share (docs/design-notes.md):
in every chain-rule product a zero factor gives exactly zero, even against an
infinite or NaN one; maximum/minimum give the derivative of a NaN operand to
that NaN, fmax/fmin to the number, and split ties evenly."""
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, BatchDuplicated, Duplicated

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

inf, nan = np.inf, np.nan
EDGES = [0.0, -0.0, inf, -inf, nan, 1.0, 4.0, -2.5]


def pairs(*ps):
    """x = (first operands, second operands) of the pairs, flattened."""
    a, b = zip(*ps)
    return np.array(a + b, dtype=float)


PAIRS = pairs((nan, 1.0), (1.0, nan), (nan, nan), (2.0, 2.0), (0.0, -0.0), (-0.0, 0.0),
              (inf, 1.0), (-inf, -inf), (3.0, 1.0), (inf, inf), (1.0, 0.0), (0.0, inf))


def halves(op):
    def f(x):
        k = x.shape[0] // 2
        return np.sum(op(x[:k], x[k:]))
    return f


def unused_log(x):
    np.log(x)
    return np.sum(x * 2.0)


def where_kink(x):
    return np.sum(np.where(x >= 0.0, np.sqrt(x), -x))


def unused_sqrt(x):
    np.sqrt(x)
    return np.sum(x)


# name -> (f of one vector, inputs, g of scalars for fwddiff or None)
PROGRAMS = {
    "unused_log": (unused_log, [EDGES], lambda a: (np.log(a), a * 2.0)[1]),
    "log_times_zero": (lambda x: np.sum(x) + 0.0 * np.sum(np.log(x)), [EDGES],
                       lambda a: a + 0.0 * np.log(a)),
    "where_kink": (where_kink, [EDGES], lambda a: np.where(a >= 0.0, np.sqrt(a), -a)),
    "exp_overflow_times_zero": (lambda x: np.sum(np.exp(x) * 0.0),
                                [[800.0, 0.0, -800.0, inf, -inf, nan]], lambda a: np.exp(a) * 0.0),
    "sqrt_times_zero": (lambda x: np.sum(np.sqrt(x) * 0.0), [EDGES], lambda a: np.sqrt(a) * 0.0),
    "sqrt_pow_2": (lambda x: np.sum(np.sqrt(x) ** 2), [EDGES], lambda a: np.sqrt(a) ** 2),
    "square_sqrt": (lambda x: np.sum(np.square(np.sqrt(x))), [EDGES],
                    lambda a: np.square(np.sqrt(a))),
    "sqrt_used": (lambda x: np.sum(np.sqrt(x)), [EDGES], lambda a: np.sqrt(a)),
    "sqrt_unused": (unused_sqrt, [EDGES], lambda a: (np.sqrt(a), a)[1]),
    "sqrt_index": (lambda x: np.sqrt(x)[0], [[4.0, 0.0], [4.0, -1.0], [0.0, 4.0]], None),
    "log_index": (lambda x: np.log(x)[1], [[0.0, 2.0], [-1.0, 0.0]], None),
    "max": (np.max, [[1.0, nan, 3.0], [3.0, 1.0, 3.0], [nan, nan, 1.0], [inf, inf, -inf],
                     [-0.0, 0.0, -1.0]], None),
    "min": (np.min, [[1.0, nan, -3.0], [-3.0, 1.0, -3.0], [nan, 1.0, nan], [-inf, 2.0, -inf],
                     [-0.0, 0.0, 1.0]], None),
    "maximum": (halves(np.maximum), [PAIRS], np.maximum),
    "minimum": (halves(np.minimum), [PAIRS], np.minimum),
    "fmax": (halves(np.fmax), [PAIRS], np.fmax),
    "fmin": (halves(np.fmin), [PAIRS], np.fmin),
    "abs": (lambda x: np.sum(np.abs(x)), [EDGES], np.abs),
    "maximum_zero": (lambda x: np.sum(np.maximum(x, 0.0)), [EDGES], lambda a: np.maximum(a, 0.0)),
    "maximum_neg": (lambda x: np.sum(np.maximum(x, -x)), [EDGES], lambda a: np.maximum(a, -a)),
    "divide_by_inf": (lambda x: np.sum(x / inf), [EDGES], lambda a: a / inf),
    "reciprocal": (lambda x: np.sum(1.0 / x), [EDGES], lambda a: 1.0 / a),
    "divide": (halves(np.divide), [PAIRS], lambda a, b: a / b),
    "multiply": (halves(np.multiply), [PAIRS], lambda a, b: a * b),
    "hypot": (halves(np.hypot), [PAIRS], np.hypot),
    "arctan2": (halves(np.arctan2), [PAIRS], np.arctan2),
    "tanh_exp": (lambda x: np.sum(np.tanh(np.exp(x))), [EDGES], lambda a: np.tanh(np.exp(a))),
    "log1p_expm1": (lambda x: np.sum(np.log1p(x) + np.expm1(x)), [EDGES + [-1.0]], None),
    "prod": (np.prod, [[0.0, 2.0, 3.0], [0.0, inf, 1.0], [0.0, 0.0, 2.0], [nan, 0.0, 1.0]],
             None),
    "mean_sqrt": (lambda x: np.mean(np.sqrt(x) * x), [EDGES], None),
    "where_log": (lambda x: np.sum(np.where(x > 0.0, np.log(x), x * x)), [EDGES], None),
    "power": (halves(np.power), [pairs((0.0, 2.0), (0.0, 0.0), (0.0, 0.5), (2.0, 0.0),
                                       (-1.0, 0.5), (inf, 0.0), (0.0, -1.0))], None),
}

# programs the nested engine has no rules for (it refuses them with a clear error)
NOT_NESTED = {"prod"}
# programs whose partials read exp/tanh/log1p/expm1 values: the forward tangent kernel
# computes them with C's libm, the reverse sweep reads numpy's result, and the two may
# differ in the last bit; specials (NaN, inf, zero) must still agree exactly
LIBM = {"tanh_exp", "log1p_expm1"}

CASES = [(name, k) for name, (_, xs, _) in PROGRAMS.items() for k in range(len(xs))]


def _input(name, k):
    return np.array(PROGRAMS[name][1][k], dtype=float)


def reverse(f, x):
    return sad.gradient(f, x.copy())[0]


def forward_columns(f, x):
    """One forward call per unit direction."""
    out = np.empty(x.shape)
    for j in range(x.size):
        e = np.zeros(x.shape)
        e[j] = 1.0
        out[j] = sad.autodiff(f, Duplicated(x.copy(), e), mode=sad.Forward)
    return out


def forward_batch(f, x):
    """All unit directions as BatchDuplicated lanes of one call."""
    eye = np.eye(x.size)
    return np.array(sad.autodiff(f, BatchDuplicated(x.copy(), tuple(eye)), mode=sad.Forward))


def split_reverse(f, x):
    _, tape = sad.autodiff_split(f, Active(x.copy()))
    return tape.reverse(seed=1.0)[0]


def nested(run):
    """run() while an outer differentiation is running (the nested engine)."""
    box = {}

    def outer(s):
        box["v"] = run()
        return s * 2.0
    sad.gradient(outer, 1.0)
    return box["v"]


def _arity(g):
    return g.nin if isinstance(g, np.ufunc) else g.__code__.co_argcount


def fwddiff_reverse(g, x):
    """The gradient of sum(g(...)) with g recorded as one fwddiff record."""
    h = sad.fwddiff(g)
    if _arity(g) == 2:
        def f(x):
            k = x.shape[0] // 2
            return np.sum(h(x[:k], x[k:]))
    else:
        def f(x):
            return np.sum(h(x))
    return reverse(f, x)


def scalar_grads(g, x):
    """Traced scalars (TScalar in reverse mode, FScalar in forward mode): the
    gradient of g at each element (pair) of x, both ways."""
    if _arity(g) == 2:
        k = x.size // 2
        args = [(float(a), float(b)) for a, b in zip(x[:k], x[k:])]
    else:
        args = [(float(a),) for a in x]
    rev, fwd = [], []
    for a in args:
        rev.append(sad.gradient(g, *a))
        cols = []
        for j in range(len(a)):
            ann = [Duplicated(v, 1.0 if i == j else 0.0) for i, v in enumerate(a)]
            cols.append(sad.autodiff(g, *ann, mode=sad.Forward))
        fwd.append(tuple(cols))
    unzip = (lambda r: np.array([t[0] for t in r]) if len(args[0]) == 1 else
             np.concatenate([[t[0] for t in r], [t[1] for t in r]]))
    return unzip(rev), unzip(fwd)


def _same_specials(a, b):
    """NaN, inf and zero at the same places (finite values: to rounding, since
    forward and reverse mode multiply a chain's partials in opposite orders)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return (np.array_equal(np.isnan(a), np.isnan(b)) and
            np.array_equal(np.where(np.isinf(a), a, 0.0), np.where(np.isinf(b), b, 0.0)) and
            np.array_equal(a == 0.0, b == 0.0) and
            np.allclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True))


def same(a, b):
    return np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                          equal_nan=True)


@pytest.mark.parametrize("name,k", CASES)
def test_engines_agree(name, k):
    f, _, g = PROGRAMS[name]
    x = _input(name, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's, on the primal values
        want = reverse(f, x)
        got = {
            "forward": forward_columns(f, x),
            "batch": forward_batch(f, x),
            "jacobian(Forward)": sad.jacobian(f, x.copy(), mode=sad.Forward),
            "jacobian(Reverse)": sad.jacobian(f, x.copy(), mode=sad.Reverse),
            "autodiff_split": split_reverse(f, x),
        }
        if name not in NOT_NESTED:
            got["nested reverse"] = nested(lambda: reverse(f, x))
            got["nested forward"] = nested(lambda: forward_columns(f, x))
            got["nested jacobian"] = nested(lambda: sad.jacobian(f, x.copy()))
            got["nested batch"] = nested(lambda: forward_batch(f, x))
        if g is not None:
            got["fwddiff"] = fwddiff_reverse(g, x)
            got["scalar reverse"], got["scalar forward"] = scalar_grads(g, x)
    agree = _same_specials if name in LIBM else same
    for engine, v in got.items():
        assert agree(v, want), f"{name} at {x}: {engine} gives {v}, reverse mode {want}"


# the derivatives themselves, as the convention defines them
EXPECTED = {
    ("sqrt_index", 0): [0.25, 0.0],
    ("max", 0): [0.0, 1.0, 0.0],
    ("max", 1): [0.5, 0.0, 0.5],
    ("sqrt_times_zero", 0): [0.0] * len(EDGES),
    ("exp_overflow_times_zero", 0): [0.0] * 6,
    ("unused_log", 0): [2.0] * len(EDGES),
    ("log_times_zero", 0): [1.0] * len(EDGES),
    ("sqrt_unused", 0): [1.0] * len(EDGES),
    ("divide_by_inf", 0): [0.0] * len(EDGES),
}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_documented_values(case):
    f = PROGRAMS[case[0]][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert same(reverse(f, _input(*case)), EXPECTED[case])


@pytest.mark.parametrize("op", ["maximum", "minimum", "fmax", "fmin"])
def test_select_with_nan(op):
    """maximum/minimum: a NaN operand is the value and takes the derivative;
    fmax/fmin: the number is the value and takes it; two NaNs or a tie split."""
    fn = getattr(np, op)
    to_nan = op in ("maximum", "minimum")
    for a, b, want in [(nan, 1.0, (1.0, 0.0) if to_nan else (0.0, 1.0)),
                       (1.0, nan, (0.0, 1.0) if to_nan else (1.0, 0.0)),
                       (nan, nan, (0.5, 0.5)), (2.0, 2.0, (0.5, 0.5))]:
        assert sad.gradient(fn, a, b) == want
        assert same(sad.gradient(lambda x, y: np.sum(fn(x, y)), np.array([a]), np.array([b])),
                    [[want[0]], [want[1]]])
        t = sad.autodiff(fn, Duplicated(a, 1.0), Duplicated(b, 0.0), mode=sad.Forward)
        assert t == want[0]
        assert nested(lambda: sad.gradient(fn, a, b)) == want


def test_reverse_linear_records_with_an_infinite_adjoint():
    """x * 0 and x / inf are linear records: an infinite adjoint through their
    zero coefficient gives x nothing, as forward mode's zero tangent does."""
    for f in (lambda x: np.sum(np.sqrt(x * 0.0)), lambda x: np.sum(np.sqrt(x / inf)),
              lambda x: np.sum(np.sqrt(0.0 * x + 0.0))):
        x = np.array([1.0, 2.0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert same(reverse(f, x), [0.0, 0.0])
            assert same(forward_columns(f, x), [0.0, 0.0])
            assert same(nested(lambda: reverse(f, x)), [0.0, 0.0])


def test_reverse_scalar_records_with_an_infinite_adjoint():
    """The scalar sweep (TScalar records) follows the same rule."""
    def g(x):
        return np.sqrt(x * 0.0)
    assert sad.gradient(g, 1.0) == (0.0,)
    assert sad.autodiff(g, Duplicated(1.0, 1.0), mode=sad.Forward) == 0.0


EDGE = st.sampled_from([0.0, -0.0, inf, -inf, nan, 1.0, -1.0, 2.0, 0.5])
# (no tanh: its partial 1 - z*z cancels where z is near 1, and forward mode
# takes z from C's libm, reverse mode from numpy's, which may differ in the
# last bit -- see LIBM)
UNARY = [np.sqrt, np.exp, np.log, np.abs, np.square, np.reciprocal, np.sin, np.arctan]
BINARY = [np.add, np.subtract, np.multiply, np.divide, np.maximum, np.minimum, np.fmax,
          np.fmin, np.power]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(UNARY), st.sampled_from(BINARY), st.booleans()),
                min_size=1, max_size=4),
       st.lists(EDGE, min_size=3, max_size=3), st.lists(EDGE, min_size=3, max_size=3))
def test_random_chains_agree(ops, xs, cs):
    """Random chains of unary and binary operations with constants (on the
    left or the right) at edge values: every derivative is a product of
    partials, so reverse, forward and nested reverse mode give NaN, inf and
    zero at the same places.  (Where x reaches the result along two paths,
    inf - inf may be NaN in one order and not the other: IEEE, not a
    convention; the table above covers those programs.)"""
    c = np.array(cs)

    def f(x):
        v = x
        for u, b, left in ops:
            v = b(c, u(v)) if left else b(u(v), c)
        return np.sum(v)
    x = np.array(xs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = reverse(f, x)
        for engine, v in (("forward", forward_columns(f, x)),
                          ("nested", nested(lambda: reverse(f, x))),
                          ("nested forward", nested(lambda: forward_columns(f, x)))):
            assert _same_specials(v, want), f"{engine} gives {v}, reverse mode {want}"


@pytest.mark.parametrize("f,hess", [
    (lambda x: np.sum(x * x), lambda x: 2.0 * np.eye(x.size)),
    (lambda x: np.sum(np.square(x)), lambda x: 2.0 * np.eye(x.size)),
    (lambda x: np.sum(x ** 3), lambda x: np.diag(6.0 * x)),
    (lambda x: np.sum(np.fmax(x, 0.5) ** 2), lambda x: np.diag(np.where(x > 0.5, 2.0, 0.0))),
    (lambda x: np.sum(np.fmin(x * x, np.nan)), lambda x: 2.0 * np.eye(x.size)),
])
def test_second_derivatives_at_zero(f, hess):
    """The zero-factor rule drops only products that would be NaN: a zero
    partial times a finite adjoint stays a product, so second derivatives
    through it (Hessians by the nested engine, both orders) are right at 0."""
    x = np.array([0.0, -0.0, 1.0, -2.0])
    grad = lambda x: sad.gradient(f, x)[0]  # noqa: E731
    assert same(sad.jacobian(grad, x.copy()), hess(x))
    assert same(sad.jacobian(grad, x.copy(), mode=sad.Reverse), hess(x))


def _axpy(a, x, y):
    sad.axpy(a, x, y)
    return np.sum(np.sqrt(y))


def _inplace(a, x, y):
    y += a * x
    return np.sum(np.sqrt(y))


@pytest.mark.parametrize("a,x", [(0.0, [1.0, 2.0]), (1.0, [0.0, inf]), (0.0, [inf, 1.0]),
                                 (2.0, [0.0, nan]), (0.0, [0.0, 0.0])])
def test_axpy_is_its_elementwise_form(a, x):
    """sad.axpy(a, x, y) follows the convention as y += a * x does: the same
    gradients and tangents, in both modes, where y's adjoint is infinite
    (sqrt at 0) or a factor is zero against an infinite or NaN one."""
    x = np.array(x)
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for f in (_axpy, _inplace):
            dx = np.zeros(2)
            ga = sad.autodiff(f, Active(a), Duplicated(x.copy(), dx),
                              Duplicated(np.zeros(2), np.zeros(2)))[0]
            ta = sad.autodiff(f, Duplicated(a, 1.0), Duplicated(x.copy(), np.zeros(2)),
                              Duplicated(np.zeros(2), np.zeros(2)), mode=sad.Forward)
            tx = [sad.autodiff(f, Duplicated(a, 0.0), Duplicated(x.copy(), e),
                               Duplicated(np.zeros(2), np.zeros(2)), mode=sad.Forward)
                  for e in np.eye(2)]
            assert same(ga, ta) and same(dx, tx)
            results.append((ga, dx))
    assert same(results[0][0], results[1][0]) and same(results[0][1], results[1][1])
