"""The elementwise family of issue #16: numpy's log10, log2, exp2, arcsinh,
arccosh, arctanh, deg2rad/radians, rad2deg/degrees, cbrt, copysign,
heaviside, logaddexp, logaddexp2 (C table entries), float_power (power's
entry), np.sinc (a primitive), and scipy.special's expit, logit, erf, erfc,
ndtr, log_ndtr, gammaln, digamma, xlogy, xlog1py, softplus (generic table
entries, no C kernel), logsumexp and softmax.

Each gets check_rule (finite differences, restore, accumulate-once, dot
product), its degenerate points in every mode, its keyword forms, and a few
third derivatives through the nested engine.  The generic path (an entry
without a C kernel) is compared with the C kernels on the C entries, and
shadowad is checked to import and work without scipy."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, BatchDuplicated, Const, Duplicated, Forward, Reverse
from shadowad.primitives import core
from shadowad.primitives.elementwise import BY_OP, TABLE
from shadowad.primitives.elementwise_rules import generic_rule
from shadowad.testing import check_rule

from test_elementwise_table import LIBM, agree

special = pytest.importorskip("scipy.special")

inf, nan = np.inf, np.nan
F, R = Forward, Reverse
RNG = np.random.default_rng(16)
X = RNG.standard_normal(5)
POS = np.abs(X) + 0.5
UNIT = RNG.uniform(0.1, 0.9, 5)
W = np.arange(1.0, 6.0) / 3.0


def dup(x):
    return Duplicated(np.array(x, dtype=float), np.zeros(np.shape(x)))


# --------------------------------------------------------------------------
# check_rule on every function, on ordinary inputs in its domain

UNARY = {
    "log10": (np.log10, POS), "log2": (np.log2, POS), "exp2": (np.exp2, X),
    "arcsinh": (np.arcsinh, X), "arccosh": (np.arccosh, POS + 1.0),
    "arctanh": (np.arctanh, UNIT - 0.5), "deg2rad": (np.deg2rad, X),
    "radians": (np.radians, X), "rad2deg": (np.rad2deg, X), "degrees": (np.degrees, X),
    "cbrt": (np.cbrt, X), "sinc": (np.sinc, X),
    "expit": (special.expit, X), "logit": (special.logit, UNIT), "erf": (special.erf, X),
    "erfc": (special.erfc, X), "ndtr": (special.ndtr, X), "log_ndtr": (special.log_ndtr, X),
    "gammaln": (special.gammaln, POS), "digamma": (special.digamma, POS),
    "psi": (special.psi, POS), "softplus": (special.softplus, X),
}

BINARY = {
    "copysign": (np.copysign, X, -X[::-1]), "heaviside": (np.heaviside, X, UNIT),
    "logaddexp": (np.logaddexp, X, X[::-1] * 2), "logaddexp2": (np.logaddexp2, X, X[::-1]),
    "float_power": (np.float_power, POS, X), "xlogy": (special.xlogy, X, POS),
    "xlog1py": (special.xlog1py, X, UNIT),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_check_rule_unary(name):
    fn, x = UNARY[name]
    check_rule(lambda x: np.sum(fn(x) * W), dup(x))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_check_rule_binary(name):
    fn, x, y = BINARY[name]
    check_rule(lambda x, y: np.sum(fn(x, y) * W), dup(x), dup(y))


@pytest.mark.parametrize("name", sorted(set(UNARY) - {"sinc"}))  # (np.sinc takes no out=)
def test_out_into_an_operand_and_a_buffer(name):
    """fn(x, out=x) overwrites its operand (the record saves what it
    destroys), fn(x, out=buf) a traced buffer: the same gradient as the
    out-of-place call, also on scalars of a loop."""
    fn, x = UNARY[name]

    def in_place(x):
        y = x * 1.0
        fn(y, out=y)
        return np.sum(y * W)

    def into(x):
        r = np.zeros_like(x)
        fn(x, out=r)
        return np.sum(r * W)

    want = sad.gradient(lambda x: np.sum(fn(x) * W), x.copy())[0]
    for g in (in_place, into):
        check_rule(g, dup(x))
        np.testing.assert_allclose(sad.gradient(g, x.copy())[0], want, rtol=1e-14)
    scalar = sad.gradient(lambda x: sum(fn(x[i]) * W[i] for i in range(x.size)), x.copy())[0]
    np.testing.assert_allclose(scalar, want, rtol=1e-14)


def test_an_operand_twice_and_broadcasting():
    """The same array as both operands, and a row against a column: each
    operand's adjoint summed over what it reached."""
    for fn in (np.logaddexp, np.logaddexp2, np.copysign, special.xlogy, np.heaviside):
        check_rule(lambda x: np.sum(fn(x, x) * W), dup(POS))
        check_rule(lambda x, y: np.sum(fn(x[:, None], y[None, :]) ** 2), dup(POS[:3]),
                   dup(POS[::-1] + 0.25))


@pytest.mark.parametrize("fn", [special.logsumexp, special.softmax])
def test_logsumexp_and_softmax_keyword_forms(fn):
    x = RNG.standard_normal((3, 4))
    w3 = np.arange(1.0, 13.0).reshape(3, 4)
    if fn is special.logsumexp:
        forms = [lambda x: fn(x), lambda x: np.sum(fn(x, axis=0) * w3[0]),
                 lambda x: np.sum(fn(x, axis=1, keepdims=True) * w3[:, :1]),
                 lambda x: np.sum(fn(x, axis=(0, 1), keepdims=True)),
                 lambda x: np.sum(fn(x, axis=-1) ** 2),
                 lambda x: fn(x, b=w3), lambda x: np.sum(fn(x, axis=0, b=w3[0] ** 0.5))]
    else:
        forms = [lambda x: np.sum(fn(x) * w3), lambda x: np.sum(fn(x, axis=0) * w3),
                 lambda x: np.sum(fn(x, axis=1) * w3), lambda x: np.sum(fn(x, axis=(0, 1)) * w3)]
    for g in forms:
        check_rule(g, dup(x))


def test_logsumexp_b_is_differentiated():
    x, b = RNG.standard_normal(4), RNG.uniform(0.5, 2.0, 4)
    check_rule(lambda x, b: special.logsumexp(x, b=b), dup(x), dup(b))
    got = sad.gradient(lambda x, b: special.logsumexp(x, b=b), x, b)
    s = np.sum(b * np.exp(x))
    np.testing.assert_allclose(got[0], b * np.exp(x) / s, rtol=1e-14)
    np.testing.assert_allclose(got[1], np.exp(x) / s, rtol=1e-14)


def test_values_are_scipys_and_numpys_bit_for_bit():
    x = RNG.standard_normal((3, 4)) * 10
    for fn in (lambda v: special.logsumexp(v, axis=1), lambda v: special.softmax(v, axis=0),
               np.sinc, special.expit, special.log_ndtr, np.cbrt):
        _, value = sad.autodiff(lambda v: fn(v), Duplicated(x.copy(), np.ones_like(x)),
                                mode=sad.ForwardWithPrimal)
        assert np.array_equal(np.asarray(value).view(np.uint64),
                              np.asarray(fn(x)).view(np.uint64))


def test_logsumexp_refuses_return_sign_by_name():
    with pytest.raises(TypeError, match=r"logsumexp\(\.\.\., return_sign=True\)"):
        sad.gradient(lambda x: special.logsumexp(x, return_sign=True)[0], X.copy())


def test_scipy_functions_outside_f_are_scipys():
    from shadowad.support.library_dispatch import dispatched
    x = RNG.standard_normal(6)
    assert special.logsumexp.__wrapped__ is dispatched(special.logsumexp)
    assert special.logsumexp(x) == dispatched(special.logsumexp)(x)
    assert np.array_equal(special.softmax(x), dispatched(special.softmax)(x))
    # scipy's own function, bound before shadowad put the dispatch in front,
    # names itself in the error rather than failing obscurely
    with pytest.raises(TypeError, match="scipy.special.logsumexp has a derivative rule, but "
                       "f calls the library's own function, bound before shadowad was imported"):
        sad.gradient(lambda v: dispatched(special.logsumexp)(v), x)
    with pytest.raises(TypeError, match="scipy.special.logsumexp has a derivative rule"):
        sad.autodiff(lambda v: dispatched(special.logsumexp)(v),
                     Duplicated(x, np.ones(6)), mode=F)


# --------------------------------------------------------------------------
# degenerate points, in every mode

def engines(f, x):
    """d sum(f(x)) / dx in reverse, forward, batched forward, jacobian both
    ways and the nested engine (under an outer reverse)."""
    n = x.size

    def rev(v):
        return sad.gradient(lambda u: np.sum(f(u)), v)[0]

    def fwd(v):
        return np.array([np.sum(sad.autodiff(f, Duplicated(v.copy(), np.eye(n)[i]), mode=F))
                         for i in range(n)])

    out = {"reverse": rev(x.copy()), "forward": fwd(x),
           "batch": np.array([np.sum(t) for t in sad.autodiff(
               f, BatchDuplicated(x.copy(), tuple(np.eye(n))), mode=F)]),
           "jacobian": np.sum(sad.jacobian(f, x.copy(), mode=R).reshape(-1, n), axis=0)}
    seen = {}

    def outer(s):
        seen["g"] = sad.primal(rev(x.copy() + 0.0 * s))
        return s
    sad.autodiff(outer, Active(1.0))
    out["nested"] = seen["g"]
    return out


def assert_engines(f, x, want):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for engine, got in engines(f, np.asarray(x, dtype=float)).items():
            assert np.array_equal(np.asarray(got, dtype=float), np.asarray(want, dtype=float),
                                  equal_nan=True), (engine, got, want)


def test_sinc_at_zero():
    assert_engines(np.sinc, [0.0, -0.0, 1.0, 0.5],
                   [0.0, 0.0, -1.0, float((np.cos(np.pi * 0.5) - np.sinc(0.5)) / 0.5)])
    for x in (0.0, -0.0):  # +0.0 in every engine, not -0.0 in some
        t = sad.autodiff(np.sinc, Duplicated(x, 1.0), mode=F)
        g = sad.autodiff(np.sinc, Active(x))[0]
        assert not np.signbit(t) and not np.signbit(g) and t == g == 0.0


@pytest.mark.parametrize("m1", [F, R])
@pytest.mark.parametrize("m2", [F, R])
def test_sinc_second_derivative_at_zero(m1, m2):
    d2 = derivative(derivative(np.sinc, m1), m2)
    assert d2(0.0) == pytest.approx(-np.pi ** 2 / 3, rel=1e-15)
    t, h = 0.3, 1e-5
    fd = (derivative(np.sinc, R)(t + h) - derivative(np.sinc, R)(t - h)) / (2 * h)
    assert d2(t) == pytest.approx(fd, rel=1e-8)


def test_heaviside_derivative_is_zero_in_x_and_h_where_x_is_zero():
    x = np.array([0.0, -0.0, 1.0, -1.0, nan, inf])
    h = np.array([0.5, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert_engines(lambda v: np.heaviside(v, h), x, np.zeros(6))
    assert_engines(lambda v: np.heaviside(x, v), h, [1.0, 1.0, 0.0, 0.0, 0.0, 0.0])


def test_copysign_takes_abs_convention_and_the_sign_of_y():
    x = np.array([0.0, -0.0, 2.0, -2.0, nan, 3.0, inf])
    y = np.array([1.0, -1.0, -0.0, 0.0, 1.0, -nan, -1.0])
    assert_engines(lambda v: np.copysign(v, y), x, [0.0, 0.0, -1.0, -1.0, 0.0, -1.0, -1.0])
    assert_engines(lambda v: np.copysign(x, v), y, np.zeros(7))


def test_cbrt_at_zero_is_inf_and_a_zero_adjoint_gives_zero():
    assert_engines(np.cbrt, [0.0, -0.0, 8.0, inf], [inf, inf, 1.0 / 12.0, 0.0])
    assert_engines(lambda v: np.cbrt(v) * 0.0, [0.0, -0.0], [0.0, 0.0])


@pytest.mark.parametrize("fn", [np.logaddexp, np.logaddexp2])
def test_logaddexp_at_infinities(fn):
    x = np.array([-inf, inf, inf, -inf, 1.0, nan])
    y = np.array([-inf, inf, 1.0, 2.0, -inf, 1.0])
    e = (lambda d: np.exp2(d)) if fn is np.logaddexp2 else np.exp
    with np.errstate(all="ignore"):
        z = fn(x, y)
        dy4 = e(2.0 - z[3])
    assert_engines(lambda v: fn(v, y), x, [0.5, 0.5, 1.0, 0.0, 1.0, nan])
    assert_engines(lambda v: fn(x, v), y, [0.5, 0.5, 0.0, dy4, 0.0, nan])
    # a zero adjoint contributes nothing, also at -inf/-inf and NaN
    assert_engines(lambda v: fn(v, y) * 0.0, x, np.zeros(6))


def test_float_power_has_powers_conventions():
    """float_power is power's table entry: the same partials at every edge
    (float64 operands: float_power computes in float64, as power does here)."""
    edges = [0.0, -0.0, 1.0, -2.0, 0.5, inf, -inf, nan]
    x = np.array([a for a in edges for b in edges])
    y = np.array([b for a in edges for b in edges])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in (0, 1):
            args = [x.copy(), y.copy()]
            f = lambda a, b: np.sum(np.float_power(a, b))  # noqa: E731
            g = lambda a, b: np.sum(np.power(a, b))  # noqa: E731
            assert np.array_equal(sad.gradient(f, *args)[k], sad.gradient(g, *args)[k],
                                  equal_nan=True)
    # integer exponents compute in float64 as well
    check_rule(lambda a: np.sum(np.float_power(a, 3) + np.float_power(2, a)), dup(X))


def test_xlogy_and_xlog1py_at_x_zero():
    y = np.array([0.0, 1.0, 2.0, -1.0, 0.5])
    x = np.zeros(5)
    with np.errstate(all="ignore"):
        assert_engines(lambda v: special.xlogy(v, y), x, np.log(y))
        assert_engines(lambda v: special.xlogy(x, v), y, np.zeros(5))
        assert_engines(lambda v: special.xlog1py(v, y), x, np.log1p(y))
        assert_engines(lambda v: special.xlog1py(x, v), y, np.zeros(5))


def test_log_ndtr_far_in_the_tails():
    assert_engines(special.log_ndtr, np.array([-1e200, -inf, inf]), [1e200, inf, 0.0])
    # at -40 the rule's formula and this one round differently (exp's last bit differs
    # between libm builds): every engine gives one value, within an ulp or two of it
    with np.errstate(all="ignore"):
        want40 = np.exp(-800.0 - special.log_ndtr(-40.0)) / np.sqrt(2 * np.pi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = engines(special.log_ndtr, np.array([-40.0]))
    values = {float(np.asarray(g, dtype=float)[0]) for g in got.values()}
    assert len(values) == 1, got
    assert values.pop() == pytest.approx(want40, rel=1e-15, abs=0)
    assert want40 == pytest.approx(40.0, rel=1e-3)


def test_logsumexp_edges():
    assert_engines(lambda v: special.logsumexp(v), [-inf, -inf, -inf], [0.0, 0.0, 0.0])
    assert_engines(lambda v: special.logsumexp(v), [inf, 1.0, inf], [0.5, 0.0, 0.5])
    tie = np.exp(2.0 - special.logsumexp([2.0, 2.0]))  # 0.5 to rounding: a tie shares
    assert tie == pytest.approx(0.5, rel=1e-15)
    assert_engines(lambda v: special.logsumexp(v), [2.0, 2.0], [tie, tie])
    assert_engines(lambda v: special.logsumexp(v), [800.0, -800.0], [1.0, 0.0])
    assert_engines(lambda v: special.logsumexp(v, axis=0) * 0.0, [nan, 1.0], [0.0, 0.0])


def test_softmax_edges():
    x = np.array([-inf, 0.0, 0.0])
    assert_engines(lambda v: special.softmax(v) * np.array([1.0, 2.0, 3.0]), x,
                   [0.0, -0.25, 0.25])
    assert_engines(lambda v: special.softmax(v), [1e300, -1e300, 0.0], [0.0, 0.0, 0.0])


# --------------------------------------------------------------------------
# third derivatives through the nested engine

def derivative(g, mode):
    if mode is R:
        return lambda x: sad.autodiff(g, Active(x))[0]
    return lambda x: sad.autodiff(g, Duplicated(x, 1.0), mode=F)


THIRD = {
    "sinc": (np.sinc, 0.4), "log10": (np.log10, 1.3), "arccosh": (np.arccosh, 1.7),
    "cbrt": (np.cbrt, 0.8), "logaddexp": (lambda t: np.logaddexp(t, 0.3 * t * t), 0.6),
    "erf": (special.erf, 0.7), "digamma": (special.digamma, 1.6),
    "gammaln": (special.gammaln, 2.2), "log_ndtr": (special.log_ndtr, -1.5),
    "xlogy": (lambda t: special.xlogy(t, t + 1.0), 0.9),
    "logsumexp": (lambda t: special.logsumexp(np.stack([t, 2.0 * t, -t * t])), 0.3),
}


@pytest.mark.parametrize("m1,m2,m3", [(R, R, R), (F, R, F), (R, F, F)])
@pytest.mark.parametrize("name", sorted(THIRD))
def test_third_derivatives(name, m1, m2, m3):
    g, t = THIRD[name]
    second = derivative(derivative(g, R), R)
    h = 1e-5
    fd = (second(t + h) - second(t - h)) / (2 * h)
    got = derivative(derivative(derivative(g, m1), m2), m3)(t)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


def test_sinc_third_derivative_at_zero_is_zero():
    d3 = derivative(derivative(derivative(np.sinc, R), R), R)
    assert d3(0.0) == 0.0


def test_digamma_derivatives_are_polygammas():
    t = 1.6
    d = derivative(special.digamma, F)
    assert d(t) == pytest.approx(special.polygamma(1, t), rel=1e-15)
    assert derivative(d, R)(t) == pytest.approx(special.polygamma(2, t), rel=1e-15)


# --------------------------------------------------------------------------
# the generic path (entries without a C kernel) against the C kernels

GRID = np.array([0.0, -0.0, inf, -inf, nan, 5e-324, 1.0, -1.0, 0.5, -2.5, 2.0, 1e308])
GX, GY = np.meshgrid(GRID, GRID)
GX, GY = GX.ravel(), GY.ravel()


def _same(name, a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return all(agree(name, p, q, LIBM) for p, q in zip(a, b))


@pytest.mark.parametrize("name", sorted(e.name for e in BY_OP.values()))
def test_generic_rule_gives_the_c_kernels_derivatives(name):
    """Every C entry bound through its generic rule (the path of an entry
    without a C kernel) gives the C kernels' gradients and tangents at edge
    values, in reverse and forward mode."""
    entry = TABLE[name]
    prim = generic_rule(entry)
    xs = [GX, GY][:entry.arity] if entry.arity == 2 else [GRID]

    def by_c(*a):
        return entry.ufunc(*a)

    def by_generic(*a):
        return core.apply(prim, a, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in range(entry.arity):
            c = sad.gradient(lambda *a: np.sum(by_c(*a)), *[x.copy() for x in xs])[k]
            g = sad.gradient(lambda *a: np.sum(by_generic(*a)), *[x.copy() for x in xs])[k]
            assert _same(name, c, g), (name, k, "reverse")
            args = [Const(x.copy()) for x in xs]
            args[k] = Duplicated(xs[k].copy(), np.ones(xs[k].size))
            tc = sad.autodiff(by_c, *args, mode=F)
            args = [Const(x.copy()) for x in xs]
            args[k] = Duplicated(xs[k].copy(), np.ones(xs[k].size))
            tg = sad.autodiff(by_generic, *args, mode=F)
            assert _same(name, tc, tg), (name, k, "forward")


def test_scipy_entries_have_no_c_kernel_and_run_the_generic_rule():
    from shadowad.engines.rules.elementwise import EW_OPS
    for name in ("expit", "logit", "erf", "erfc", "ndtr", "log_ndtr", "gammaln", "digamma",
                 "xlogy", "xlog1py"):
        entry = TABLE[name]
        assert entry.op is None and entry.c_name is None and entry.convention, name
        assert all(u not in EW_OPS for u in entry.ufuncs), name


def test_many_calls_in_a_row_and_inside_fwddiff():
    x = RNG.standard_normal(50)
    want = sad.gradient(lambda v: np.sum(special.expit(v) * special.erf(v)), x)[0]
    for _ in range(20):
        got = sad.gradient(lambda v: np.sum(special.expit(v) * special.erf(v)), x)[0]
        assert np.array_equal(got, want)
    g = sad.fwddiff(lambda a, b: special.xlogy(a, b) + np.sinc(a) * special.expit(b))
    check_rule(lambda a, b: np.sum(g(a, b)), dup(X), dup(POS))


# --------------------------------------------------------------------------
# scipy is optional

def test_shadowad_imports_and_works_without_scipy():
    code = (
        "import sys\n"
        "sys.modules['scipy'] = None  # import scipy now raises ImportError\n"
        "import numpy as np, shadowad as sad\n"
        "from shadowad.primitives import scipy_special\n"
        "assert not scipy_special.AVAILABLE\n"
        "from shadowad.primitives.elementwise import TABLE\n"
        "assert 'expit' not in TABLE and 'logaddexp' in TABLE\n"
        "g = sad.gradient(lambda x: np.sum(np.logaddexp(x, 0.0) + np.sinc(x)), np.zeros(3))[0]\n"
        "assert np.allclose(g, 0.5), g\n"
        "assert 'scipy' not in [m.split('.')[0] for m in sys.modules if sys.modules[m]]\n"
        "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
