"""Nested differentiation: sad.autodiff / sad.jacobian called inside a function
that shadowad is differentiating, in all four combinations of modes (and
deeper), against closed-form second derivatives and central finite
differences of first derivatives (taken by the non-nested C engine)."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, Forward, Reverse
from shadowad.primitives import core

F, R = Forward, Reverse
PAIRS = [(F, F), (F, R), (R, F), (R, R)]
IDS = [f"{a}-over-{b}" for a, b in PAIRS]


def derivative(g, mode):
    """x -> g'(x) for scalar x, by ``mode``."""
    if mode is R:
        return lambda x, *c: sad.autodiff(g, Active(x), *map(Const, c))[0]
    return lambda x, *c: sad.autodiff(g, Duplicated(x, 1.0), *map(Const, c), mode=F)


# --------------------------------------------------------------------------
# scalars

def f(x):
    return x ** 3 * np.sin(x) + np.exp(-x * x) / (1.0 + x)


def f1(x):
    return (3 * x ** 2 * np.sin(x) + x ** 3 * np.cos(x)
            + np.exp(-x * x) * (-2 * x / (1 + x) - 1 / (1 + x) ** 2))


def f2(x):
    e = np.exp(-x * x)
    return (6 * x * np.sin(x) + 6 * x ** 2 * np.cos(x) - x ** 3 * np.sin(x)
            + e * (4 * x * x / (1 + x) + 4 * x / (1 + x) ** 2 - 2 / (1 + x)
                   + 2 / (1 + x) ** 3))


@pytest.mark.parametrize("outer,inner", PAIRS, ids=IDS)
def test_scalar_second_derivative(outer, inner):
    x, h = 0.7, 1e-5
    got = derivative(derivative(f, inner), outer)(x)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, f2(x), rtol=1e-12)
    np.testing.assert_allclose(got, (f1(x + h) - f1(x - h)) / (2 * h), rtol=1e-7)


def test_the_issue_example():
    def p(x):
        return 1 / np.sqrt(np.sum((x - np.array([10., 0.])) ** 2))

    def outer(w):
        x = np.array([0., 8.]) * w
        g, = sad.autodiff(p, Active(x))
        return np.sum(g)

    def plain(w):
        d = np.array([0., 8.]) * w - np.array([10., 0.])
        return np.sum(-d / np.sqrt(np.sum(d * d)) ** 3)

    h = 1e-6
    fd = (plain(1 + h) - plain(1 - h)) / (2 * h)
    g, = sad.autodiff(outer, Active(1.0))
    np.testing.assert_allclose(g, fd, rtol=1e-7)
    np.testing.assert_allclose(sad.autodiff(outer, Duplicated(1.0, 1.0), mode=F), g,
                               rtol=1e-13)


@pytest.mark.parametrize("m1", [F, R])
@pytest.mark.parametrize("m2", [F, R])
@pytest.mark.parametrize("m3", [F, R])
def test_third_derivative_any_depth(m1, m2, m3):
    g = lambda x: x ** 4 * np.sin(x)  # noqa: E731
    x = 0.7
    d3 = (24 * x * np.sin(x) + 36 * x ** 2 * np.cos(x) - 12 * x ** 3 * np.sin(x)
          - x ** 4 * np.cos(x))
    got = derivative(derivative(derivative(g, m1), m2), m3)(x)
    np.testing.assert_allclose(got, d3, rtol=1e-12)


# --------------------------------------------------------------------------
# arrays: u^T H v by every combination, against the closed form and finite
# differences of the C engine's gradient

rng = np.random.default_rng(7)
A = rng.standard_normal((4, 4))
B = rng.standard_normal((2, 2))
Y = rng.random(4) + 0.5

PROGRAMS = {
    "quadratic+exp": lambda x: 0.5 * x @ (A @ x) + np.sum(np.exp(x) + np.sin(x) * x),
    "tanh-matmul": lambda x: np.sum(np.tanh(A @ x) ** 2),
    "max-min": lambda x: np.sum(np.maximum(x, 0.3) * np.minimum(x, 0.5) * x),
    "stack-max": lambda x: np.sum(np.max(np.stack([x, x ** 2 + 0.1, -x]), axis=0) * x),
    "concat-slices": lambda x: np.sum(np.concatenate([x[:2], x[1:] * 3.0]) ** 3),
    "reshape-T": lambda x: np.sum((x.reshape(2, 2).T @ x.reshape(2, 2)) * B),
    "outer-None": lambda x: np.sum(x[None, :] * x[:, None] / (1.0 + x ** 2)),
    "mean-sqrt-abs-log": lambda x: np.mean(np.sqrt(np.abs(x) + 1) * np.log(1 + x * x))
    + np.dot(x, x),
    "where": lambda x: np.sum(np.where(x > 0.2, x ** 3, -x * Y)),
    "pow-traced-exponent": lambda x: np.sum(Y ** x + (x * x + 1.0) ** (0.5 * x)),
    "scalar-loop": lambda x: x[0] * x[1] / x[2] - x[3] ** 2.5 + np.cos(x[1] * x[3]),
    "2d-sum-axis": lambda x: np.sum(np.sum(np.outer(x, x) ** 2, axis=1) * x)
    + np.min(np.reshape(x, (2, 2)) ** 2, axis=0).sum(),
}

# the primitives of shadowad/primitives (bound as they are defined)
prim_rng = np.random.default_rng(2026)
M = prim_rng.standard_normal((2, 2)) + 3 * np.eye(2)
B3 = prim_rng.standard_normal((2, 3, 2))


def _mat(x):
    return np.reshape(x, (2, 2)) + 2.0 * np.eye(2)


# every program is a scalar function of a 4-vector x
PRIMITIVE_PROGRAMS = {
    "inner": lambda x: np.sum(np.inner(_mat(x), _mat(x)) * M) + np.inner(x, x * x),
    "vdot": lambda x: np.vdot(_mat(x), M @ _mat(x)),
    "outer": lambda x: np.sum(np.outer(x, x * x) ** 2),
    "cross": lambda x: np.sum(np.cross(x[:3], x[1:] * x[:3]) ** 2),
    "dot-nd": lambda x: np.sum(np.dot(B3 * x[0], _mat(x)) ** 2),
    "matmul-batch": lambda x: np.sum(np.tanh(np.matmul(B3, _mat(x)))),
    "matmul-vector": lambda x: np.sum((x @ np.reshape(x * x, (4, 1))) ** 2)
    + np.sum((_mat(x) @ x[:2]) ** 3),
    "solve": lambda x: np.sum(np.linalg.solve(_mat(x), x[:2]) ** 2),
    "solve-matrix": lambda x: np.sum(np.linalg.solve(_mat(x), M * x[3]) ** 2),
    "inv": lambda x: np.sum(np.linalg.inv(_mat(x)) * M),
    "det": lambda x: np.linalg.det(_mat(x)) ** 2,
    "slogdet": lambda x: np.linalg.slogdet(_mat(x) * x[0])[1] * x[1],
    "cumsum": lambda x: np.sum(np.cumsum(x * x) ** 2) + np.sum(np.cumsum(_mat(x), axis=1) ** 3)
    + np.sum(np.cumsum(_mat(x), axis=-2) * M) + np.sum(np.cumsum(_mat(x)) ** 2),
    "prod": lambda x: np.prod(x + 2.0) + np.sum(np.prod(_mat(x), axis=0) ** 2)
    + np.sum(np.prod(_mat(x), axis=1, keepdims=True) * M),
    "sum-mean": lambda x: np.sum(np.sum(_mat(x) ** 2, axis=0, keepdims=True) * M)
    + np.mean(x ** 3) + np.sum(np.mean(_mat(x), axis=1) ** 2) + x.sum(dtype=np.float64) ** 2
    + np.sum(_mat(x).mean(-1, None, None, True) ** 3 * M),
    "max-min": lambda x: np.max(x ** 2) + np.sum(np.amin(_mat(x) ** 2, axis=1, keepdims=True) * M)
    + np.sum(_mat(x).max(axis=0) ** 3) + np.amax(x * x[0]) * np.min(x ** 3),
    "ufunc-reduce": lambda x: np.add.reduce(x ** 3) + np.multiply.reduce(x + 2.0)
    + np.sum(np.add.reduce(_mat(x), axis=1, keepdims=True) ** 2 * M)
    + np.sum(np.maximum.reduce(_mat(x) * M) ** 2) + np.minimum.reduce(x, axis=0) * x[0],
    "trace": lambda x: np.trace(_mat(x) @ _mat(x)) + np.sum(np.trace(B3 * x[1], 0, 0, 2) ** 2)
    + np.trace(_mat(x) * x[0], 1) * x[3] + np.sum(np.trace(B3 * x[2], 1, 2, 0) ** 3),
}
PROGRAMS.update(PRIMITIVE_PROGRAMS)

X0 = np.array([0.9, 0.45, 1.3, 0.7])
U = rng.standard_normal(4)
V = rng.standard_normal(4)


def c_gradient(f, x):
    g, = sad.autodiff(f, Active(x.copy()))
    return g


def nested_gradient(f, x):
    """The nested engine's gradient of f at x: autodiff inside a function that
    an outer autodiff differentiates (its value, taken out with sad.primal)."""
    seen = []

    def outer(w):
        g, = sad.autodiff(f, Active(x * w))
        seen.append(np.array(sad.primal(g)))
        return np.sum(g * U)
    sad.autodiff(outer, Active(1.0))
    return seen[0]


def hessian_fd(f, x, v, h=1e-6):
    return (c_gradient(f, x + h * v) - c_gradient(f, x - h * v)) / (2 * h)


def uHv(f, outer, inner, x):
    """u^T H v with the outer differentiation in mode ``outer`` over an inner
    one in mode ``inner`` (inner reverse: the gradient; inner forward: the
    directional derivative along v)."""
    if inner is R:
        def inner_fn(x):
            g, = sad.autodiff(f, Active(x))
            return np.sum(g * U)            # u . grad f = (H u) under the outer
        direction = V
    else:
        def inner_fn(x):
            return sad.autodiff(f, Duplicated(x, V), mode=F)   # grad f . v
        direction = U
    if outer is R:
        g, = sad.autodiff(inner_fn, Active(x.copy()))
        return float(np.dot(g, direction))
    return sad.autodiff(inner_fn, Duplicated(x.copy(), direction.copy()), mode=F)


@pytest.mark.parametrize("outer,inner", PAIRS, ids=IDS)
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_array_second_derivatives(name, outer, inner):
    f = PROGRAMS[name]
    expect = float(np.dot(U, hessian_fd(f, X0, V)))
    got = uHv(f, outer, inner, X0)
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-7)


def test_hessian_vector_product_closed_form():
    """jvp(grad f) as in JAX: forward over reverse, the whole vector H v, and
    the primal of the forward pass is the gradient."""
    f = PROGRAMS["quadratic+exp"]
    x = X0.copy()

    def grad(x):
        g, = sad.autodiff(f, Active(x))
        return g

    hv, g = sad.autodiff(grad, Duplicated(x, V.copy()), mode=sad.ForwardWithPrimal)
    H = 0.5 * (A + A.T) + np.diag(np.exp(x) + 2 * np.cos(x) - x * np.sin(x))
    np.testing.assert_allclose(hv, H @ V, rtol=1e-12)
    np.testing.assert_allclose(g, 0.5 * (A + A.T) @ x + np.exp(x) + np.sin(x)
                               + x * np.cos(x), rtol=1e-12)


def test_kmeans_like_hessian_diagonal():
    """min over an axis, broadcasting with None: forward over reverse gives
    twice the cluster sizes."""
    P = rng.random((9, 2))
    C = P[:3].copy()

    def cost(C, P):
        return np.sum(np.min(np.sum((P[:, None, :] - C[None, :, :]) ** 2, axis=2), axis=1))

    def grad(C, P):
        g, _ = sad.autodiff(cost, Active(C), Const(P))
        return g

    hd = sad.autodiff(grad, Duplicated(C.copy(), np.ones_like(C)), Const(P), mode=F)
    near = np.argmin(((P[:, None, :] - C[None]) ** 2).sum(2), axis=1)
    np.testing.assert_allclose(hd, 2 * np.bincount(near, minlength=3)[:, None] * np.ones(2))


# --------------------------------------------------------------------------
# activities

@pytest.mark.parametrize("outer", [F, R])
def test_const_arguments(outer):
    """d/dw of grad_x sum(w * x^2 + c * x) = 2 x, with w traced by the outer call
    (Const) and c a plain Const array."""
    x = np.array([1.0, -2.0, 0.5])
    c = np.array([3.0, 1.0, 2.0])

    def inner(x, w, c):
        return np.sum(w * x ** 2 + c * x)

    def outer_fn(w):
        g, _, _ = sad.autodiff(inner, Active(x), Const(w), Const(c))
        return np.sum(g)            # = sum(2 w x + c)

    got = derivative(outer_fn, outer)(1.5)
    np.testing.assert_allclose(got, np.sum(2 * x))


def test_closure_with_the_inner_value_first():
    x = np.array([1.0, 2.0])

    def outer_fn(w):
        g, = sad.autodiff(lambda x: np.sum(x ** 2 * w), Active(x))
        return np.sum(g)

    np.testing.assert_allclose(sad.autodiff(outer_fn, Active(np.array([1.0, 1.0])))[0],
                               2 * x)


@pytest.mark.parametrize("outer", [F, R])
def test_closure_with_the_outer_array_first(outer):
    # w (a traced array of the outer call) on the left: its operation defers
    # to the inner value (NotImplemented), operators and numpy functions alike
    x0 = np.array([1.0, 2.0])

    def outer_fn(w):
        g, = sad.autodiff(lambda x: np.sum(w * x * x) + np.dot(w, x) + np.sum(np.add(w, x)),
                          Active(x0.copy()))
        return np.sum(g * g)

    w0 = np.array([0.5, -1.5])
    # g = 2 w x + w + 1, so d/dw sum(g^2) = 2 g (2 x + 1)
    want = 2 * (2 * w0 * x0 + w0 + 1) * (2 * x0 + 1)
    if outer is R:
        got = sad.autodiff(outer_fn, Active(w0.copy()))[0]
    else:  # the full gradient, one forward pass per direction
        got = np.array([sad.autodiff(outer_fn, Duplicated(w0.copy(), e), mode=F)
                        for e in np.eye(2)])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_in_place_write_of_an_inner_value_into_an_outer_array_is_an_error():
    def outer_fn(w):
        def inner(x):
            w[0] += x[0]          # in place: must write w or fail, never rebind
            return np.sum(x)
        sad.autodiff(inner, Active(np.ones(2)))
        return np.sum(w)

    with pytest.raises(TypeError, match="nested differentiation"):
        sad.autodiff(outer_fn, Duplicated(np.ones(2), np.zeros(2)))


@pytest.mark.parametrize("outer", [F, R])
def test_duplicated_accumulates_into_a_traced_shadow(outer):
    """The inner gradient is added to dx; dx from np.zeros_like is traced."""
    def outer_fn(w):
        x = np.array([1.0, 2.0]) * w
        dx = np.zeros_like(x) + 1.0        # a prefilled shadow: the gradient is added
        r = sad.autodiff(lambda x: np.sum(x ** 3), Duplicated(x, dx))
        assert r == (None,)
        return np.sum(dx)                  # 2 + 3 w^2 (1 + 4)

    got = derivative(outer_fn, outer)(2.0)
    np.testing.assert_allclose(got, 6 * 2.0 * 5)


def test_duplicated_plain_shadow_is_refused_when_the_gradient_is_traced():
    def outer_fn(w):
        x = np.array([1.0, 2.0]) * w
        sad.autodiff(lambda x: np.sum(x ** 3), Duplicated(x, np.zeros(2)))
        return 0.0

    with pytest.raises(TypeError, match=r"np\.zeros_like\(x\)"):
        sad.autodiff(outer_fn, Active(1.0))


def test_duplicated_plain_shadow_is_fine_when_the_gradient_is_plain():
    seen = {}

    def outer_fn(w):
        dx = np.zeros(2)                   # the gradient does not depend on w
        sad.autodiff(lambda x, w: np.sum(x * x) + w, Duplicated(np.array([1.0, 3.0]), dx),
                     Const(w))
        seen["dx"] = dx
        return w * 2.0

    assert sad.autodiff(outer_fn, Active(1.0)) == (2.0,)
    np.testing.assert_array_equal(seen["dx"], [2.0, 6.0])


def test_with_primal_modes_and_none_for_other_arguments():
    def outer_fn(w):
        (g, c), v = sad.autodiff(lambda x, c: x * x * c, Active(w), Const(2.0),
                                 mode=sad.ReverseWithPrimal)
        assert c is None
        t, p = sad.autodiff(lambda x: x * x * x, Duplicated(w, 1.0), mode=sad.ForwardWithPrimal)
        return g + v + t + p               # 4w + 2w^2 + 3w^2 + w^3

    w = 1.5
    got, = sad.autodiff(outer_fn, Active(w))
    np.testing.assert_allclose(got, 4 + 10 * w + 3 * w * w)


def test_batch_duplicated_in_forward_mode():
    def outer_fn(w):
        x = np.array([1.0, 2.0]) * w
        t = sad.autodiff(lambda x: np.sum(x ** 3), sad.BatchDuplicated(x, (np.array([1.0, 0.0]),
                                                                          np.array([0.0, 1.0]))),
                         mode=F)
        return t[0] + t[1]                 # 3 w^2 (1 + 4)

    np.testing.assert_allclose(sad.autodiff(outer_fn, Active(2.0))[0], 6 * 2.0 * 5)


@pytest.mark.parametrize("jmode", [None, F, R])
@pytest.mark.parametrize("outer", [F, R])
def test_jacobian_nested(outer, jmode):
    M = np.array([[1.0, 2.0], [3.0, 4.0], [0.5, -1.0]])

    def outer_fn(w):
        x = np.array([1.0, -0.5]) * w
        J = sad.jacobian(lambda x: np.tanh(M @ x), x, mode=jmode)
        return np.sum(J * J)

    def plain(w):
        z = M @ (np.array([1.0, -0.5]) * w)
        return np.sum(((1 - np.tanh(z) ** 2)[:, None] * M) ** 2)

    h = 1e-6
    got = derivative(outer_fn, outer)(1.3)
    np.testing.assert_allclose(got, (plain(1.3 + h) - plain(1.3 - h)) / (2 * h), rtol=1e-7)


# --------------------------------------------------------------------------
# errors

def nested_in(g, x=np.array([0.5, 1.5])):
    def outer_fn(w):
        r, = sad.autodiff(g, Active(x * w))
        return np.sum(r)
    return lambda: sad.autodiff(outer_fn, Active(1.0))


@pytest.mark.parametrize("g,match", [
    (lambda x: np.sum(np.fft.rfft(x).real), r"np\.fft\.rfft is not supported inside a nested"),
    (lambda x: np.linalg.eigvals(np.outer(x, x)), r"np\.linalg\.eigvals"),
    (lambda x: np.multiply.accumulate(x), r"np\.multiply\.accumulate"),
])
def test_unsupported_operations_name_themselves(g, match):
    with pytest.raises(TypeError, match=match):
        nested_in(g)()


def test_reductions_refuse_the_options_every_engine_refuses():
    """The primitives' entries check the arguments for the nested engine too."""
    with pytest.raises(NotImplementedError, match=r"np\.add\.reduce\(\.\.\., initial"):
        nested_in(lambda x: np.add.reduce(x, initial=1.0))()
    with pytest.raises(NotImplementedError, match=r"np\.sum\(\.\.\., initial"):
        nested_in(lambda x: np.sum(x, initial=1.0))()
    with pytest.raises(TypeError, match=r"dtype=float16"):
        nested_in(lambda x: np.mean(x, dtype=np.float16))()
    # out= a plain buffer cannot hold a value of the nested differentiation
    with pytest.raises(TypeError, match=r"plain numpy array"):
        nested_in(lambda x: np.max(x, out=np.zeros(())))()
    with pytest.raises(TypeError, match=r"plain numpy array"):
        nested_in(lambda x: np.add.reduce(x, out=np.zeros(())))()


def set_item(x):
    x[0] = 1.0
    return np.sum(x)


@pytest.mark.parametrize("g", [set_item, lambda x: np.sum(np.multiply(x, x, out=x)),
                               lambda x: np.sum(x.reshape(2, 1).__iadd__(1.0))])
def test_writes_into_an_active_argument_are_refused(g):
    """An Active array is read-only inside f (its gradient is returned, not
    the adjoint before a write): writing it, or a view of it, names the fix."""
    with pytest.raises(TypeError, match="Active array is read-only.*Duplicated"):
        nested_in(g)()


def test_array_result_in_reverse_mode():
    with pytest.raises(TypeError, match="scalar result"):
        nested_in(lambda x: x * 2)()


def test_active_in_forward_mode():
    def outer_fn(w):
        return sad.autodiff(lambda x: x * x, Active(w), mode=F)

    with pytest.raises(TypeError, match="Active is not allowed"):
        sad.autodiff(outer_fn, Active(1.0))


def test_autodiff_split_is_refused_inside():
    def outer_fn(w):
        sad.autodiff_split(lambda x: x * x, Active(w))

    with pytest.raises(TypeError, match="autodiff_split"):
        sad.autodiff(outer_fn, Active(1.0))


def test_escaped_values_are_refused():
    kept = {}

    def inner(x):
        kept["box"] = x
        return x * x

    def outer_fn(w):
        sad.autodiff(inner, Active(w))
        return kept["box"] * 2.0           # a Box of the finished inner call

    with pytest.raises(RuntimeError, match="after that call returned"):
        sad.autodiff(outer_fn, Active(1.0))

    def leak(w):
        kept["traced"] = w * 1.0
        return w

    sad.autodiff(leak, Active(1.0))
    with pytest.raises(RuntimeError, match="after the differentiation"):
        sad.autodiff(lambda x: x * x, Active(kept["traced"]))


def test_detaching_a_nested_value_is_refused():
    def outer_fn(w):
        def inner(x):
            out = np.zeros(2)
            out[0] = x                     # numpy would call float(x)
            return np.sum(out)
        return sad.autodiff(inner, Active(w))[0]

    with pytest.raises(TypeError, match="drop its derivative"):
        sad.autodiff(outer_fn, Active(1.0))


def test_non_nested_calls_take_the_c_engine():
    """No differentiation running: the C engine, its tape and record count."""
    _, tape = sad.autodiff_split(lambda x: np.sum(x * x), Active(np.ones(3)))
    assert len(tape) > 0
    tape.reverse()


def test_plain_scalars_follow_numpy_ieee_rules():
    """1/x at 0 and a negative base to a fractional power give inf and nan,
    not ZeroDivisionError or a complex number, as elsewhere in shadowad."""
    seen = []

    def outer_fn(w):
        seen.append(sad.autodiff(lambda x: 1 / x, Duplicated(0.0, 1.0), mode=F))
        seen.append(sad.autodiff(lambda x: (-8.0) ** x * w, Active(0.5))[0])
        return w * w

    with np.errstate(all="ignore"):
        assert sad.autodiff(outer_fn, Active(1.0)) == (2.0,)
    assert seen[0] == -np.inf and type(seen[0]) is float
    assert np.isnan(sad.primal(seen[1]))


# --------------------------------------------------------------------------
# the primitives of shadowad/primitives (bound as they are defined): second
# derivatives in the four pairs of modes, third derivatives in all eight,
# against finite differences of the C engine's derivatives

D0, D1 = prim_rng.standard_normal((2, 3, 3))
D0 += 3 * np.eye(3)
RHS = prim_rng.standard_normal(3)

SCALAR_PROGRAMS = {
    "det": lambda t: np.linalg.det(D0 + t * D1),
    "inv": lambda t: np.sum(np.linalg.inv(D0 + t * D1) * D1),
    "solve": lambda t: np.dot(np.linalg.solve(D0 + t * D1, RHS * t), RHS),
    "slogdet": lambda t: np.linalg.slogdet(D0 + t * D1)[1],
}


def _plain_derivative(g, t, h):
    return (g(t + h) - g(t - h)) / (2 * h)


@pytest.mark.parametrize("m1", [F, R])
@pytest.mark.parametrize("m2", [F, R])
@pytest.mark.parametrize("m3", [F, R])
@pytest.mark.parametrize("name", sorted(SCALAR_PROGRAMS))
def test_primitive_third_derivatives(name, m1, m2, m3):
    g, t = SCALAR_PROGRAMS[name], 0.3
    second = derivative(derivative(g, R), R)  # the C engine under one nested level
    fd = _plain_derivative(second, t, 1e-5)
    got = derivative(derivative(derivative(g, m1), m2), m3)(t)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("outer", [F, R])
def test_second_derivatives_of_solve_inv_det_against_finite_differences(outer):
    """d^2/dt^2 of each, nested in mode ``outer`` over reverse, against
    central second differences of the plain function."""
    for name, g in SCALAR_PROGRAMS.items():
        t, h = 0.3, 1e-4
        fd = (g(t + h) - 2 * g(t) + g(t - h)) / h ** 2
        got = derivative(derivative(g, R), outer)(t)
        np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-6, err_msg=name)


def test_det_at_a_singular_matrix_is_differentiated_or_refused_not_dropped():
    """det(outer(y, y)) is 0 for every y: its gradient's derivative is 0 up to
    8x8 (the minors); beyond, where the SVD takes plain values, a clear error."""
    def f(x):
        return sad.autodiff(lambda y: np.linalg.det(np.outer(y, y)), Active(x))[0][0]
    g, = sad.autodiff(f, Active(np.array([0.5, 1.5])))
    assert g.tolist() == [0.0, 0.0]
    with pytest.raises(NotImplementedError, match="singular matrix"):
        sad.autodiff(f, Active(np.linspace(0.5, 1.5, 9)))


def test_prod_at_a_zero_is_differentiated_again_not_dropped():
    def f(x):
        return np.sum(sad.autodiff(lambda y: np.prod(y), Active(x * 1.0))[0])
    g, = sad.autodiff(f, Active(np.array([0.0, 1.5])))
    assert g.tolist() == [1.0, 1.0]  # d/dx (x1 + x0) at any point
    # the first derivative alone is exact at a zero (no division)
    g, = sad.autodiff(lambda y: np.prod(y), Active(np.array([0.0, 1.5, 2.0])))
    assert g.tolist() == [3.0, 0.0, 0.0]


def test_primitive_first_derivatives_match_the_c_engine():
    """One definition: the nested engine's first derivative of a primitive is
    the C engine's generic one."""
    for name in ("solve", "solve-matrix", "inv", "det", "slogdet", "cross", "matmul-batch",
                 "dot-nd", "inner"):
        f = PRIMITIVE_PROGRAMS[name]
        with core.generic_only():
            c = c_gradient(f, X0)
        np.testing.assert_allclose(nested_gradient(f, X0), c, rtol=1e-14, atol=1e-15,
                                   err_msg=name)


def test_one_argument_where_gives_the_indices():
    """np.where(cond) inside a nested call: the indices of the true entries,
    as numpy gives them (no derivative of their own)."""
    def g(x):
        return np.sum(x[np.where(x > 1.0)] ** 2)
    x = np.array([0.5, 1.5, 2.0, -1.0])
    np.testing.assert_array_equal(nested_gradient(g, x), np.where(x > 1.0, 2 * x, 0.0))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("a", [np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]]),
                               np.zeros((3, 3)), np.diag([2.5e-310, 1.0, 2.0]),
                               np.array([[1e200, 1.0], [2.0, 1e200]]), np.array([[5.0]])],
                         ids=["rank 2", "zero", "tiny det", "huge det", "1x1"])
@pytest.mark.parametrize("outer", [Forward, Reverse])
def test_hessian_of_det_where_its_gradient_takes_the_minors(a, outer):
    """det's cofactors at singular matrices and at determinants that under- or
    overflow are the minors' determinants, differentiable again: the Hessian
    is the derivative of the C engine's gradient (central differences on the
    polynomial, exact up to rounding)."""
    grad = lambda m: sad.gradient(np.linalg.det, m)[0]
    H = sad.jacobian(grad, a.copy(), mode=outer)
    n = a.shape[0]
    scale = np.max(np.abs(a)) or 1.0
    h = 1e-3 * scale
    want = np.zeros((n, n, n, n))
    for i in range(n):
        for j in range(n):
            e = np.zeros((n, n))
            e[i, j] = h
            want[:, :, i, j] = (grad(a + e) - grad(a - e)) / (2 * h)
    assert not np.isnan(H).any()
    np.testing.assert_allclose(H, want, rtol=1e-6, atol=1e-9 * max(1.0, scale ** (n - 2)))


@pytest.mark.parametrize("x", [np.array([2.0, 0.0, 3.0, 0.0]), np.array([0.0, 1.5, -2.0, 4.0]),
                               np.zeros(4)], ids=["two zeros", "one zero", "all zero"])
@pytest.mark.parametrize("outer", [Forward, Reverse])
def test_hessian_of_prod_at_zero_entries(x, outer):
    """prod's Hessian is d2/dxi dxj = prod of the entries other than i and j
    (0 on the diagonal), also where entries are zero."""
    H = sad.jacobian(lambda v: sad.gradient(np.prod, v)[0], x.copy(), mode=outer)
    n = x.size
    want = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                want[i, j] = np.prod(np.delete(x, [i, j]))
    np.testing.assert_array_equal(H, want)


@pytest.mark.parametrize("a", [np.array([[1.0, 2.0], [2.0, 4.0]]), np.zeros((2, 2)),
                               np.outer([1.0, 2.0, 3.0], [1.0, -1.0, 0.5])])
def test_slogdet_second_derivative_at_a_singular_matrix_is_nan(a):
    with np.errstate(all="ignore"):
        H = sad.jacobian(lambda m: sad.gradient(lambda v: np.linalg.slogdet(v)[1], m)[0],
                         a.copy())
    assert np.isnan(H).all()  # undefined, and so is its derivative in every direction


def test_a_vector_of_the_outer_call_as_a_nested_argument_says_what_to_do():
    def outer(x):
        v = sad.Vector()
        v.push(x[0])
        return sad.autodiff(lambda w: w.pop(), Duplicated(v, sad.Vector([0.0])))[0]
    with pytest.raises(TypeError, match=r"cannot be an argument of a nested autodiff call"):
        sad.autodiff(outer, Active(np.ones(2)))
