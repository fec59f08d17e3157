"""An outside tester's cases against the issue #14 redesign, through the public
API only: each class below is a defect found by probing (fixed on the tester
branch), tested in every engine it can reach."""
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, Forward, Reverse

INF, NAN = np.inf, np.nan


def bits(a):
    return np.asarray(a, dtype=np.float64).view(np.uint64)


# --------------------------------------------------------------------------
# np.where / np.clip with a traced scalar beside a low-precision constant array:
# numpy takes x[0] of a float64 array as a strong np.float64, so the result is
# float64; the engines took the traced scalar's primal as a weak Python float
# and computed in float32 (found by `tests/fuzz.py --seed 8`, program 643)

LOW = {"float32": np.float32, "float16": np.float16}
SELECTS = {
    "where-scalar-second": lambda x, c: np.where(c > 0.5, c, 2.0 * x[0]),
    "where-scalar-first": lambda x, c: np.where(c > 0.5, x[0] * 1.0, c),
    "where-both-scalars": lambda x, c: np.where(c > 0.5, x[0], x[1]) * c,
    "clip-traced-low": lambda x, c: np.clip(c, x[0], 5.0),
    "clip-traced-high": lambda x, c: np.clip(c, -5.0, x[1]),
    "clip-traced-both": lambda x, c: np.clip(c, x[1], x[0]),
}
X_SEL = np.array([1.1111111111111112, 0.3333333333333333])


def _select_program(op):
    seen = {}

    def f(x, c):
        r = op(x, c)
        seen["value"] = np.array(sad.primal(r), dtype=np.float64)
        return np.sum(r * r)
    return f, seen


@pytest.mark.parametrize("dtype", sorted(LOW))
@pytest.mark.parametrize("name", sorted(SELECTS))
@pytest.mark.parametrize("mode", [Reverse, Forward], ids=["reverse", "forward"])
def test_select_with_traced_scalar_keeps_float64(name, dtype, mode):
    op = SELECTS[name]
    c = np.array([0.1, 0.7, 3.3], dtype=LOW[dtype])
    expect = np.asarray(op(X_SEL.copy(), c))
    assert expect.dtype == np.float64
    f, seen = _select_program(op)
    dx = np.zeros(2) if mode is Reverse else np.array([1.0, -1.0])
    sad.autodiff(f, Duplicated(X_SEL.copy(), dx), Const(c), mode=mode)
    np.testing.assert_array_equal(bits(seen["value"]), bits(expect))


@pytest.mark.parametrize("name", sorted(SELECTS))
def test_select_with_traced_scalar_gradient(name):
    """The gradient agrees with central differences of the untraced program
    (whose values are float64 throughout)."""
    op = SELECTS[name]
    c = np.array([0.1, 0.7, 3.3], dtype=np.float32)
    plain = lambda x: float(np.sum(np.asarray(op(x, c)) ** 2))  # noqa: E731
    f, _ = _select_program(op)
    g = np.zeros(2)
    sad.autodiff(f, Duplicated(X_SEL.copy(), g), Const(c))
    h = 1e-6
    fd = [(plain(X_SEL + h * e) - plain(X_SEL - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_fuzz_seed8_program643_primal_bits():
    """The fuzz reproducer itself: the untraced call's primal, bit for bit."""
    rng = np.random.default_rng(51144)
    u, v = rng.uniform(-1, 1, 6), rng.uniform(-1, 1, 6)
    w, c = rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, 6).astype(np.float32)

    def f(u, v, w, c):
        u[5:6:3] = (v[1:0:-1] - np.multiply(np.hypot(w[1, 0::-1], 0.967),
                                            np.where(c[5:6] > w[1, 2], c[5:6], 2.0 * w[1, 2])))
        return u[0] * v[-1] + np.sin(w[1, 3]) * u[2]

    expect = u.copy()
    f(expect, v.copy(), w.copy(), c)
    for mode in (Reverse, Forward):
        got = u.copy()
        sad.autodiff(f, Duplicated(got, np.zeros(6)), Duplicated(v.copy(), np.zeros(6)),
                     Duplicated(w.copy(), np.zeros((3, 4))), Const(c), mode=mode)
        np.testing.assert_array_equal(bits(got), bits(expect))


# --------------------------------------------------------------------------
# the inner product of two vectors (the C record SAD_DOT): a zero adjoint times
# an infinite or NaN entry of the other operand added NaN to the gradient in
# reverse mode, while forward mode (and the generic path) gave 0

INNER = {"dot": np.dot, "vdot": np.vdot, "inner": np.inner, "matmul": np.matmul}
POISON = {"inf": INF, "-inf": -INF, "nan": NAN}


def _unused_inner(op, v, first):
    """The inner product is computed but never reaches the result."""
    def f(x):
        d = op(v, x) if first else op(x, v)
        return np.sum(np.stack([d, x[1] * x[2]])[1:])
    return f


@pytest.mark.parametrize("first", [True, False], ids=["const-first", "traced-first"])
@pytest.mark.parametrize("poison", sorted(POISON))
@pytest.mark.parametrize("op", sorted(INNER))
def test_unused_inner_product_contributes_nothing(op, poison, first):
    v = np.array([POISON[poison], 1.0, 2.0])
    x0 = np.array([1.0, 2.0, 3.0])
    f = _unused_inner(INNER[op], v, first)
    expect = np.array([0.0, 3.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's, on the primal
        g, = sad.autodiff(f, Active(x0.copy()))
        dx = np.zeros(3)
        sad.autodiff(f, Duplicated(x0.copy(), dx))
        tangents = [sad.autodiff(f, Duplicated(x0.copy(), e.copy()), mode=Forward)
                    for e in np.eye(3)]
        split_dx = np.zeros(3)
        _, tape = sad.autodiff_split(f, Duplicated(x0.copy(), split_dx))
        tape.reverse()
    np.testing.assert_array_equal(g, expect)
    np.testing.assert_array_equal(dx, expect)
    np.testing.assert_array_equal(split_dx, expect)
    np.testing.assert_array_equal(tangents, expect)


@pytest.mark.parametrize("op", sorted(INNER))
def test_unused_inner_product_of_two_traced_vectors(op):
    """Both operands traced, one holding inf: still nothing from a zero adjoint."""
    def f(x):
        a = x * np.array([1.0, 1.0, INF])
        d = INNER[op](a, x)
        return np.sum(np.stack([d, x[0] * x[1]])[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        g, = sad.autodiff(f, Active(np.array([1.0, 2.0, 3.0])))
    np.testing.assert_array_equal(g, [2.0, 1.0, 0.0])


# --------------------------------------------------------------------------
# forward mode of dot / inner / matmul: the one-call fast path formed 0 * inf
# terms (falling back to the convention's product, with the right value) but
# let numpy warn about them: a RuntimeWarning about a value never returned,
# which reverse mode does not give (and an error under -W error)

A_INF = np.array([[INF, 1.0], [2.0, 3.0]])
FORWARD_CONTRACTIONS = {
    "dot-matrix-vector": lambda x: np.sum(np.dot(A_INF, x)[1:]),
    "dot-vector-matrix": lambda x: np.dot(x, A_INF)[1],
    "inner": lambda x: np.inner(A_INF, x)[1],
    "matmul-matrix-vector": lambda x: np.sum(A_INF @ x),
    "matmul-vector-matrix": lambda x: (x @ A_INF)[1],
    "matmul-matrix-matrix": lambda x: np.sum(np.reshape(np.concatenate([x, x]), (2, 2)) @ A_INF),
}


def _no_runtime_warning(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return fn()


@pytest.mark.parametrize("name", sorted(FORWARD_CONTRACTIONS))
def test_forward_contraction_with_inf_does_not_warn(name):
    f = FORWARD_CONTRACTIONS[name]
    x0 = np.array([1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        primal_only = f(x0.copy())
        grad, = sad.autodiff(f, Active(x0.copy()))
    tangents = _no_runtime_warning(lambda: [
        sad.autodiff(f, Duplicated(x0.copy(), e.copy()), mode=Forward) for e in np.eye(2)])
    jac = _no_runtime_warning(lambda: sad.jacobian(lambda x: f(x) * np.ones(3), x0.copy(),
                                                   mode=Forward))
    assert np.isfinite(primal_only) or np.isinf(primal_only)
    np.testing.assert_array_equal(tangents, grad)
    np.testing.assert_array_equal(jac, np.tile(grad, (3, 1)))


@pytest.mark.parametrize("name", sorted(FORWARD_CONTRACTIONS))
def test_nested_forward_contraction_with_inf_does_not_warn(name):
    """jacobian of a gradient (forward over reverse): the outer forward pass
    runs the same fast path on the inner gradient's operations."""
    f = FORWARD_CONTRACTIONS[name]
    x0 = np.array([1.0, 2.0])
    hess = _no_runtime_warning(lambda: sad.jacobian(
        lambda w: sad.autodiff(f, Active(w))[0], x0.copy(), mode=Forward))
    np.testing.assert_array_equal(hess, np.zeros((2, 2)))  # f is linear in x


# --------------------------------------------------------------------------
# slogdet's derivative inv(A)^T where LAPACK's inverse is not finite: the
# rescaling factor 2^(900 - e) itself overflowed for matrices whose entries are
# all below 2^-124, so every entry came out NaN instead of inf only where the
# true inverse overflows

TINY_MATRICES = {
    "diag-subnormal-tiny": np.diag([1e-310, 1e-200]),
    "diag-smallest-subnormal": np.diag([5e-324, 1e-40]),
    "diag-3-subnormal": np.diag([1e-100, 3e-320, 1e-60]),
}


def _logabsdet(a):
    return np.linalg.slogdet(a)[1]


@pytest.mark.parametrize("name", sorted(TINY_MATRICES))
def test_slogdet_gradient_overflows_only_where_the_inverse_does(name):
    a = TINY_MATRICES[name]
    d = np.diag(a)
    with np.errstate(over="ignore", divide="ignore"):
        expect = np.diag(1.0 / d)  # the inverse of a diagonal matrix, transposed
    g, = sad.autodiff(_logabsdet, Active(a.copy()))
    jf = sad.jacobian(_logabsdet, a.copy(), mode=Forward)
    jr = sad.jacobian(_logabsdet, a.copy(), mode=Reverse)
    nested = sad.jacobian(lambda w: sad.autodiff(_logabsdet, Active(a * w[0]))[0],
                          np.array([1.0]), mode=Reverse)[..., 0]
    for got in (g, jf, jr):
        np.testing.assert_array_equal(got, expect)
    assert not np.isnan(nested).any()


# --------------------------------------------------------------------------
# nested differentiation: an in-place write into np.zeros_like(x) (a plain
# buffer there) was refused; it is now a buffer of the nested call, written
# and differentiated as the C engine does

def _empty_filled(x):
    y = np.empty_like(x)
    y.fill(0.25)  # what the partial writes leave is then defined
    return y


@pytest.mark.parametrize("alloc", [np.zeros_like, _empty_filled,
                                   lambda x: np.full_like(x, 2.0)],
                         ids=["zeros_like", "empty_like", "full_like"])
@pytest.mark.parametrize("write", ["slice", "ellipsis", "fancy"])
def test_nested_write_into_like_buffer(alloc, write):
    def inner(x):
        y = alloc(x)
        if write == "slice":
            y[1:] = x[:2] * x[1:]
        elif write == "ellipsis":
            y[...] = x * x * 2.0
        else:
            y[[0, 2]] = x[:2] ** 2
        return np.sum(y * x)

    def outer(w):
        g, = sad.autodiff(inner, Active(np.array([1.0, 2.0, 3.0]) * w))
        return np.sum(g * np.array([0.5, -1.0, 2.0]))

    got, = sad.autodiff(outer, Active(1.1))
    h = 1e-6
    np.testing.assert_allclose(got, (outer(1.1 + h) - outer(1.1 - h)) / (2 * h), rtol=1e-7)


# --------------------------------------------------------------------------
# a value of a nested autodiff call kept past its return: every use says so
# (np.asarray of it said "would silently drop its derivative" instead)

ESCAPED_USES = {
    "arithmetic": lambda v: v + 1.0,
    "np.sum": np.sum,
    "np.asarray": np.asarray,
    "np.array": np.array,
    "with-an-outer-traced-value": None,
}


@pytest.mark.parametrize("use", sorted(ESCAPED_USES))
@pytest.mark.parametrize("outer_mode", [Reverse, Forward], ids=["reverse", "forward"])
def test_escaped_nested_value_is_a_clear_error(use, outer_mode):
    kept = []

    def inner(x):
        kept.append(x * 2.0)
        return np.sum(x * x)

    def outer(w):
        g, = sad.autodiff(inner, Active(np.ones(2) * w))
        return np.sum(g)

    if outer_mode is Reverse:
        sad.autodiff(outer, Active(1.0))
    else:
        sad.autodiff(outer, Duplicated(1.0, 1.0), mode=Forward)
    fn = ESCAPED_USES[use]
    if fn is None:
        def fn(v):
            return sad.autodiff(lambda q: np.sum(q * v), Active(np.ones(2)))
    with pytest.raises(RuntimeError, match="used after that call returned"):
        fn(kept[0])


# --------------------------------------------------------------------------
# guard (passes): failure atomicity of the mutating put with NaN payloads,
# -0.0, subnormals and inf in the primals, in every driver

def _nan_with_payload():
    return np.frombuffer(np.uint64(0x7FF8DEAD00000001).tobytes(), dtype=np.float64)[0]


def _raising_writes(x, y, c):
    y[[1, 1, 2]] = x
    y[y > 1] = x[0]
    c[0:2] = x[1]
    y[::-1][0:3] += x
    np.multiply(y[:3], y[3:], out=y[1:4])
    raise KeyError("raised by f after its writes")


@pytest.mark.parametrize("driver", ["reverse", "reverse-restore", "split", "forward"])
def test_failure_after_puts_restores_bits_and_leaves_shadows(driver):
    y0 = np.array([1.0, -0.0, _nan_with_payload(), INF, 5e-324, 2.0])
    y, c = y0.copy(), y0.copy()
    dx, dy = np.arange(3.0), np.arange(6.0) + 0.5
    dx0, dy0 = dx.copy(), dy.copy()
    args = (Duplicated(np.array([0.5, 1.5, 2.5]), dx), Duplicated(y, dy), Const(c))
    with pytest.raises(KeyError):
        if driver == "split":
            sad.autodiff_split(_raising_writes, *args)
        elif driver == "forward":
            sad.autodiff(_raising_writes, *args, mode=Forward)
        else:
            sad.autodiff(_raising_writes, *args, restore=driver.endswith("restore"))
    for got, expect in ((y, y0), (c, y0), (dx, dx0), (dy, dy0)):
        np.testing.assert_array_equal(bits(got), bits(expect))
