"""The statistics family (issue #16): cumprod, diff, var, std, average, median,
quantile, percentile, nansum, nanmean, ptp and the array methods x.std(),
x.var(), x.cumprod(), x.round(), x.sort(), x.clip(), x.max/min/argmax/argmin,
x.dot, x.astype.

Each function: ``check_rule`` (finite differences, restore, accumulate-once,
dot product) on every keyword form, its value bit for bit numpy's, the
conventions of docs/conventions.md ("Statistics") in every engine, third
derivatives through the nested engine, and the refusals' messages."""
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Duplicated
from shadowad.testing import check_rule

RNG = np.random.default_rng(16)
X = np.round(RNG.standard_normal((3, 4)), 3) + 0.05
W4 = np.array([1.0, 2.0, 0.5, 3.0])


def weighted(r):
    """sum(r * w) with a fixed non-uniform w: a misplaced adjoint shows."""
    r_shape = np.shape(sad.primal(r))
    w = np.arange(1.0, np.prod(r_shape) + 1.0).reshape(r_shape) / 3.0 + 0.25
    return np.sum(r * w)


# numpy function -> its keyword forms (each a function of x giving an array)
FORMS = {
    "cumprod": [lambda x: np.cumprod(x), lambda x: np.cumprod(x, axis=0),
                lambda x: np.cumprod(x, -1), lambda x: x.cumprod(1),
                lambda x: np.cumprod(x, axis=1, dtype=np.float64)],
    "diff": [lambda x: np.diff(x), lambda x: np.diff(x, n=2), lambda x: np.diff(x, axis=0),
             lambda x: np.diff(x, n=0), lambda x: np.diff(x, prepend=0.5),
             lambda x: np.diff(x, axis=0, append=x[:1] * 2.0),
             lambda x: np.diff(x, n=3, axis=1, prepend=x[:, :2], append=1.0),
             lambda x: np.diff(x, n=5)],
    "var": [lambda x: np.var(x), lambda x: np.var(x, axis=0), lambda x: np.var(x, 1, ddof=1),
            lambda x: np.var(x, axis=(0, 1), keepdims=True), lambda x: x.var(axis=-1),
            lambda x: np.var(x, axis=0, correction=1), lambda x: x.var(0, None, None, 1, True)],
    "std": [lambda x: np.std(x), lambda x: np.std(x, axis=0, ddof=1),
            lambda x: np.std(x, axis=1, keepdims=True), lambda x: x.std(),
            lambda x: x.std(axis=(1, 0), ddof=2), lambda x: np.std(x, dtype=np.float64)],
    "average": [lambda x: np.average(x), lambda x: np.average(x, axis=0),
                lambda x: np.average(x, axis=1, weights=W4),
                lambda x: np.average(x, weights=np.abs(X) + 0.5),
                lambda x: np.average(x, axis=1, weights=W4, keepdims=True),
                lambda x: np.average(x, axis=(1, 0), weights=W4[None, :] * np.ones((3, 1))),
                lambda x: np.average(x[0], weights=x[1] * x[1] + 0.5),
                lambda x: np.average(x, axis=0, weights=x[:, 0] * x[:, 0] + 0.5),
                lambda x: np.average(x, axis=1, weights=W4, returned=True)[0],
                lambda x: np.average(x, axis=0, weights=x[:, 1] * x[:, 1] + 1.0, returned=True)[1]],
    "median": [lambda x: np.median(x), lambda x: np.median(x, axis=0),
               lambda x: np.median(x, axis=1), lambda x: np.median(x[:, :3], axis=1),
               lambda x: np.median(x, axis=(0, 1), keepdims=True),
               lambda x: np.median(x * 1.0, axis=-1, overwrite_input=True)],
    "quantile": [lambda x: np.quantile(x, 0.3), lambda x: np.quantile(x, [0.0, 0.25, 1.0], axis=1),
                 lambda x: np.quantile(x, np.array([[0.5], [0.9]]), axis=0),
                 lambda x: np.quantile(x, 0.75, axis=1, keepdims=True),
                 lambda x: np.quantile(x, 0.6, axis=(0, 1), method="linear")],
    "percentile": [lambda x: np.percentile(x, 30.0), lambda x: np.percentile(x, [5, 50, 95], axis=0),
                   lambda x: np.percentile(x, 100, axis=1, keepdims=True)],
    "nansum": [lambda x: np.nansum(x), lambda x: np.nansum(x, axis=0),
               lambda x: np.nansum(x, axis=1, keepdims=True),
               lambda x: np.nansum(np.where(x > 0.5, np.nan, x), axis=1)],
    "nanmean": [lambda x: np.nanmean(x), lambda x: np.nanmean(x, axis=0),
                lambda x: np.nanmean(x, axis=1, keepdims=True),
                lambda x: np.nanmean(np.where(x > 0.5, np.nan, x), axis=0)],
    "ptp": [lambda x: np.ptp(x), lambda x: np.ptp(x, axis=0), lambda x: np.ptp(x, 1, keepdims=True)],
    "methods": [lambda x: x.round(1) * x, lambda x: x.clip(-0.5, 0.5), lambda x: x.max(axis=0),
                lambda x: x.min(1) + x[0, x[0].argmax()] + x[1, x[1].argmin()],
                lambda x: x.dot(x.T), lambda x: x.astype(np.float64) * 2.0,
                lambda x: x * x.astype(bool) + x.astype(np.int64)],
}
ALL_FORMS = [pytest.param(name, k, id=f"{name}-{k}") for name, fs in FORMS.items()
             for k in range(len(fs))]


@pytest.mark.parametrize("name,k", ALL_FORMS)
def test_check_rule_on_every_form(name, k):
    form = FORMS[name][k]
    check_rule(lambda x: weighted(form(x)), Duplicated(X.copy(), np.zeros_like(X)))


@pytest.mark.parametrize("name,k", [p for p in ALL_FORMS if p.values[0] != "methods"])
def test_value_is_numpys_bit_for_bit(name, k):
    form = FORMS[name][k]
    got = {}

    def f(x):
        r = form(x)
        got["v"] = np.array(sad.primal(r), dtype=float)
        return weighted(r)
    sad.autodiff(f, Duplicated(X.copy(), np.zeros_like(X)))
    want = np.asarray(form(X.copy()), dtype=float)
    assert got["v"].shape == want.shape and got["v"].tobytes() == want.tobytes()


def test_average_returned_gives_numpys_count():
    def f(x):
        avg, scl = np.average(x, axis=1, returned=True)
        assert type(scl) is np.ndarray and np.array_equal(scl, np.full(3, 4.0))
        avg, scl = np.average(x, returned=True)
        assert scl == 12.0
        avg, scl = np.average(x, axis=1, weights=W4, returned=True)
        assert np.array_equal(sad.primal(scl), np.full(3, W4.sum()))
        return avg[0]
    sad.gradient(f, X.copy())


# --------------------------------------------------------------------------
# conventions at degenerate points, in every engine

def engines(f, x):
    """f's gradient at x in reverse, forward (per direction), jacobian(F),
    and nested reverse and forward."""
    out = {}
    dx = np.zeros_like(x)
    sad.autodiff(f, Duplicated(x.copy(), dx))
    out["reverse"] = dx
    fwd = np.zeros(x.shape)
    for j in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[j] = 1.0
        fwd[j] = sad.autodiff(f, Duplicated(x.copy(), e), mode=sad.Forward)
    out["forward"] = fwd
    out["jacobian(F)"] = sad.jacobian(f, x.copy(), mode=sad.Forward)
    box = {}

    def outer(s):
        d = np.zeros_like(x)
        sad.autodiff(f, Duplicated(x.copy(), d))
        box["reverse"] = d
        box["forward"] = sad.jacobian(f, x.copy(), mode=sad.Forward)
        return s * 2.0
    sad.gradient(outer, 1.0)
    out["nested reverse"], out["nested forward"] = box["reverse"], box["forward"]
    return out


def same(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-13, atol=0, equal_nan=True) and \
        np.array_equal(np.isnan(a), np.isnan(b))


CONVENTIONS = {
    # std at constant data: sqrt's infinite partial meets zero deviations: 0 (JAX: NaN)
    "std at constant data: 0": (np.std, [2.0, 2.0, 2.0], [0.0, 0.0, 0.0]),
    "std of one entry: 0": (np.std, [5.0], [0.0]),
    "std at constant rows, per row": (lambda x: np.sum(np.std(x, axis=1)),
                                      [[1.0, 1.0], [0.0, 2.0]], [[0.0, 0.0], [-0.5, 0.5]]),
    "var at constant data: 0": (np.var, [3.0, 3.0], [0.0, 0.0]),
    "std with ddof = n: numpy's inf (or 0 / 0 = NaN at constant data), derivative 0": (
        lambda x: np.std(x, ddof=2) + np.std(x[:1] * 0.0 + 1.0, ddof=1), [1.0, 2.0], [0.0, 0.0]),
    "cumprod with one zero: the product of the others": (
        lambda x: np.sum(np.cumprod(x)), [2.0, 0.0, 3.0], [1.0, 2.0 + 2.0 * 3.0, 0.0]),
    "cumprod with two zeros": (lambda x: np.sum(np.cumprod(x)), [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]),
    "cumprod, zero first": (lambda x: np.cumprod(x)[-1], [0.0, 2.0, 3.0], [6.0, 0.0, 0.0]),
    "cumprod with inf: no 0 * inf where a zero cuts the chain": (
        lambda x: np.cumprod(x)[1], [np.inf, 0.0, 5.0], [0.0, np.inf, 0.0]),
    "median, odd: the middle entry": (np.median, [3.0, 1.0, 2.0], [0.0, 0.0, 1.0]),
    "median, even: half to each middle entry": (np.median, [4.0, 1.0, 3.0, 2.0],
                                                [0.0, 0.0, 0.5, 0.5]),
    "median ties: argsort's stable order": (np.median, [2.0, 1.0, 2.0, 2.0], [0.5, 0.0, 0.5, 0.0]),
    "median with NaN: the first NaN takes it": (np.median, [1.0, np.nan, 3.0, np.nan],
                                                [0.0, 1.0, 0.0, 0.0]),
    "quantile between two entries: the linear weights": (
        lambda x: np.quantile(x, 0.25), [0.0, 10.0, 20.0, 30.0, 40.0], [0.0, 1.0, 0.0, 0.0, 0.0]),
    "quantile at 0.3: 0.8 and 0.2": (lambda x: np.quantile(x, 0.3), [5.0, 1.0, 3.0],
                                     [0.0, 0.4, 0.6]),
    "quantile at 1: the max": (lambda x: np.quantile(x, 1.0), [1.0, 5.0, 3.0], [0.0, 1.0, 0.0]),
    "percentile with NaN: the NaN": (lambda x: np.percentile(x, 40.0), [1.0, np.nan, 2.0],
                                     [0.0, 1.0, 0.0]),
    "nansum: NaN entries get 0": (np.nansum, [1.0, np.nan, 2.0], [1.0, 0.0, 1.0]),
    "nanmean: 1 / count, NaN entries 0": (np.nanmean, [1.0, np.nan, 2.0], [0.5, 0.0, 0.5]),
    "nanmean of an all-NaN slice: 0": (lambda x: np.nansum(np.nanmean(x, axis=1)),
                                       [[np.nan, np.nan], [1.0, 3.0]], [[0.0, 0.0], [0.5, 0.5]]),
    "ptp of constant data: 0": (np.ptp, [2.0, 2.0, 2.0], [0.0, 0.0, 0.0]),
    "ptp ties: split as max and min split": (np.ptp, [3.0, 1.0, 3.0, 1.0],
                                             [0.5, -0.5, 0.5, -0.5]),
    "x.round(): derivative 0": (lambda x: np.sum(x.round()), [1.4, 2.6], [0.0, 0.0]),
    "x.sort(): the gradient follows the permutation": (
        lambda x: (x.sort(), np.sum(x * np.array([1.0, 2.0, 3.0])))[1], [3.0, 1.0, 2.0],
        [3.0, 1.0, 2.0]),
    "x.sort() with ties: argsort's order for the kind": (
        lambda x: (x.sort(kind="stable"), np.sum(x * np.array([1.0, 2.0, 3.0])))[1],
        [2.0, 1.0, 2.0], [2.0, 1.0, 3.0]),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_conventions_in_every_engine(name):
    f, x, want = CONVENTIONS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = engines(f, np.array(x, dtype=float))
    for engine, g in got.items():
        assert same(g, want), f"{name}: {engine} gives {np.asarray(g).tolist()}, want {want}"


def test_std_zero_adjoint_never_nan():
    """A std whose result does not reach the output gets 0, never 0 * inf."""
    g = sad.gradient(lambda x: np.std(x) * 0.0 + x[0], np.ones(3))[0]
    assert np.array_equal(g, [1.0, 0.0, 0.0])


def test_cumprod_with_zeros_against_the_product_of_the_others():
    """The adjoint of cumprod, with zeros anywhere, is sum_i g_i * prod_{k<=i, k!=j} x_k."""
    for x in ([0.0, 2.0, 0.0, 3.0, 4.0], [1.5, -2.0, 0.0, 0.0, 0.5], [0.0] * 5,
              [2.0, 3.0, 0.5, 0.0, 0.0]):
        x = np.array(x)
        g = np.arange(1.0, 6.0)
        want = np.zeros(5)
        for j in range(5):
            for i in range(j, 5):
                want[j] += g[i] * np.prod(np.delete(x[:i + 1], j))
        got = sad.gradient(lambda t: np.sum(np.cumprod(t) * g), x.copy())[0]
        assert np.allclose(got, want, rtol=1e-14, atol=0), (x, got, want)
        fwd = sad.jacobian(lambda t: np.cumprod(t), x.copy(), mode=sad.Forward)
        assert np.allclose(g @ fwd, want, rtol=1e-14, atol=0)


def test_cumprod_long_rows_against_the_sequential_product_rule():
    """The doubling scan over 37 entries (not a power of two) along every axis."""
    x = 1.0 + RNG.standard_normal((2, 37, 3)) * 0.05
    x[0, 5, 1] = 0.0
    for axis in (0, 1, 2):
        check_rule(lambda t: weighted(np.cumprod(t, axis=axis)), Duplicated(x.copy(), np.zeros_like(x)))


# --------------------------------------------------------------------------
# higher derivatives through the nested engine

def _second(f, x, v):
    """s -> v^T H(x + s v) v: two nested reverse gradients along v."""
    def d1(s):
        return sad.gradient(lambda u: f(x + u * v), s)[0]
    return lambda s: sad.gradient(d1, s)[0]


def _third(f, x, v):
    """v^T D^3 f(x)[v, v, v]: three levels, the outer two run by the nested engine."""
    return sad.gradient(_second(f, x, v), 0.0)[0]


def _third_fd(f, x, v, h=1e-4):
    d2 = _second(f, x, v)
    return (d2(h) - d2(-h)) / (2 * h)


THIRD = {
    "std": lambda x: np.std(x) ** 2 * np.std(x[:3]),
    "var": lambda x: np.var(x, ddof=1) * np.sum(x),
    "cumprod": lambda x: np.sum(np.cumprod(x) * x),
    "cumprod with a zero": lambda x: np.sum(np.cumprod(x * np.array([1.0, 0.0, 1.0, 1.0, 1.0])) + x ** 3),
    "average": lambda x: np.average(x * x, weights=x * x + 1.0),
    "quantile": lambda x: np.quantile(x * x * x, 0.3) + np.median(x ** 3),
    "nanmean": lambda x: np.nanmean(np.where(x > 10.0, np.nan, x) ** 3),
}


@pytest.mark.parametrize("name", list(THIRD))
def test_third_derivative_through_nested(name):
    f = THIRD[name]
    x = np.array([0.7, -1.3, 2.1, 0.4, 1.6])
    v = np.array([0.3, -0.2, 0.5, 0.1, -0.4])
    got = _third(f, x, v)
    want = _third_fd(f, x, v)
    assert np.isclose(got, want, rtol=2e-4, atol=1e-5), (got, want)


# --------------------------------------------------------------------------
# refusals name the problem and the fix

REFUSALS = [
    (lambda x: np.quantile(x, 0.5, method="nearest"), NotImplementedError, "method='nearest'"),
    (lambda x: np.percentile(x, 50, method="midpoint"), NotImplementedError, "method='linear'"),
    (lambda x: np.quantile(x, x[0] * 0.0 + 0.5), TypeError, "q"),
    (lambda x: np.var(x, out=np.zeros(())), NotImplementedError, "out="),
    (lambda x: np.std(x, mean=np.mean(x)), NotImplementedError, "mean="),
    (lambda x: np.var(x, where=np.array([True, False, True])), NotImplementedError, "where="),
    (lambda x: np.var(x, dtype=np.float32), TypeError, "dtype=float32"),
    (lambda x: np.median(x, out=np.zeros(())), NotImplementedError, "out="),
    (lambda x: np.nansum(x, initial=1.0), NotImplementedError, "initial="),
    (lambda x: np.average(x, weights=x * 0.0), ZeroDivisionError, "Weights sum to zero"),
    (lambda x: np.average(x, weights=np.ones(2)), TypeError, "Axis must be specified"),
    (lambda x: np.average(x, axis=0, weights=np.ones(2)), ValueError, "consistent"),
    (lambda x: np.quantile(x, 1.5), ValueError, "range"),
    (lambda x: np.diff(x, n=-1), ValueError, "non-negative"),
    (lambda x: x.astype(np.float16), TypeError, "not float16"),
    (lambda x: x[0].astype(np.float16), TypeError, "float16"),
    (lambda x: x.sort(order="a"), ValueError, "order"),
]


@pytest.mark.parametrize("mode", ["reverse", "forward", "nested"])
def test_astype_float32_casts_in_every_mode(mode):
    """x.astype(np.float32) is the cast primitive (its adjoint cast back to
    float64) in every engine."""
    def g(x):
        return np.sum(x.astype(np.float32) * 2.0)
    x = np.array([1.0, 2.0, 3.0])
    if mode == "reverse":
        grad, v = sad.autodiff(g, Duplicated(x, np.zeros(3)), mode=sad.ReverseWithPrimal)
        assert type(v) is np.float32 and v == 12.0
        got = sad.gradient(g, x)[0]
        assert got.dtype == np.float64 and got.tolist() == [2.0, 2.0, 2.0]
    elif mode == "forward":
        t = sad.autodiff(g, Duplicated(x, np.array([1.0, 0.5, 0.25])), mode=sad.Forward)
        assert t == pytest.approx(3.5)
    else:
        seen = {}

        def outer(s):
            seen["g"] = sad.primal(sad.gradient(g, x * s)[0])
            return s
        sad.gradient(outer, 1.0)
        assert seen["g"].tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("k", range(len(REFUSALS)))
@pytest.mark.parametrize("mode", ["reverse", "forward", "nested"])
def test_refusals_are_clear(k, mode):
    f, exc, match = REFUSALS[k]

    def g(x):
        r = f(x)
        return np.sum(r)
    x = np.array([1.0, 2.0, 3.0])
    with pytest.raises(exc, match=match if "|" in match else __import__("re").escape(match)):
        if mode == "reverse":
            sad.gradient(g, x)
        elif mode == "forward":
            sad.autodiff(g, Duplicated(x, np.ones(3)), mode=sad.Forward)
        else:
            sad.gradient(lambda s: (sad.gradient(g, x * s), s)[1], 1.0)


def test_astype_to_integers_and_booleans_gives_plain_values():
    def f(x):
        i = x.astype(np.int64)
        b = x.astype(bool)
        assert type(i) is np.ndarray and i.dtype == np.int64 and i.tolist() == [1, 0, -2]
        assert type(b) is np.ndarray and b.tolist() == [True, False, True]
        s = x[0].astype(np.float64) * 2.0 + np.sum(np.where(b, x, 0.0))
        return s + float(x[2].astype(np.int32)) * 0.0 + np.sum(x.astype(np.float64, copy=False))
    for mode in (sad.Reverse, sad.Forward):
        dx = np.zeros(3)
        if mode is sad.Reverse:
            sad.autodiff(f, Duplicated(np.array([1.5, 0.0, -2.5]), dx))
            assert np.array_equal(dx, [4.0, 1.0, 2.0])
        else:
            t = sad.autodiff(f, Duplicated(np.array([1.5, 0.0, -2.5]), np.ones(3)), mode=mode)
            assert t == 7.0


def test_astype_float64_is_a_copy():
    def f(x):
        y = x.astype(np.float64)
        y[0] = 10.0 * x[1]  # x is not written
        return np.sum(y) + np.sum(x)
    assert np.array_equal(sad.gradient(f, np.ones(3))[0], [1.0, 12.0, 2.0])


def test_sort_in_place_is_seen_by_views_and_later_reads():
    """x.sort() writes x's memory: a view taken before sees the sorted values,
    and the gradient is with respect to x before the sort."""
    def f(x):
        v = x[1:]
        x.sort()
        return np.sum(v * np.array([1.0, 10.0])) + 100.0 * x[0]
    # sorted: [1, 2, 3]; v = [2, 3]: d/dx = [10 (3), 100 (1), 1 (2)]
    for engine, g in engines(f, np.array([3.0, 1.0, 2.0])).items():
        assert np.array_equal(g, [10.0, 100.0, 1.0]), (engine, g)


def test_sort_many_calls_in_a_row_and_axes():
    x = RNG.standard_normal((4, 3))
    for axis in (0, 1, -1):
        def f(t):
            y = t * 1.0
            y.sort(axis=axis)
            y.sort(axis=axis)  # sorting sorted values again changes nothing
            return weighted(y)
        check_rule(f, Duplicated(x.copy(), np.zeros_like(x)))


def test_average_with_respect_to_the_weights_alone():
    a = np.array([1.0, 2.0, 4.0])
    w = np.array([0.3, 1.2, -0.5])
    check_rule(lambda t: np.average(a, weights=t * t + 1.0), Duplicated(w.copy(), np.zeros(3)))
    check_rule(lambda t: weighted(np.average(np.stack([a, a * 2.0]), axis=1, weights=t + 2.0)),
               Duplicated(w.copy(), np.zeros(3)))
    # d/dw of sum(a w) / sum(w) = (a - avg) / sum(w)
    g = sad.gradient(lambda t: np.average(a, weights=t), np.ones(3))[0]
    assert np.allclose(g, (a - a.mean()) / 3.0, rtol=1e-15)
