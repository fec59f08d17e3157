"""In-place writes inside a nested differentiation (an autodiff or jacobian
call running inside a function being differentiated): every write form, in
all four nestings of modes and under sad.jacobian, against the C engine's
derivative of the same program (central differences of its gradient, or of
the whole outer function evaluated with the C engine inside); views and
write-through, sibling views, overlapping self-writes, writes in loops,
exceptions half-way, mutated arguments of the inner call and their shadows,
and edge values bit for bit against the C engine."""
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, Forward, Reverse
from test_nested import IDS, PAIRS, U, V, X0, c_gradient, hessian_fd, nested_gradient, uHv

F, R = Forward, Reverse
W4 = np.array([0.7, -1.3, 0.4, 2.1])


def _setitem(x):
    y = x * 1.0
    y[0] = x[1] * x[2]
    y[1:3] = x[:2] ** 2
    y[::-1][0] = 5.0 * x[0]
    return np.sum(y * y * x)


def _fancy(x):
    y = x * 1.0
    y[[0, 2, 0]] = x[1:] ** 3          # repeated index: the last write wins
    y[[3]] += x[0]
    return np.sum(y * x)


def _mask(x):
    y = x * 2.0
    y[x > 1.0] = x[x > 1.0] ** 2
    y[np.array([True, False, False, True])] = x[1:3] * x[1:3]
    return np.sum(y * y * W4)


def _operators(x):
    y = x * 1.0
    y *= x
    y /= 2.0 + x
    y **= 2.0
    y -= x
    y += 1.0
    return np.sum(y * W4)


def _view_write_through(x):
    y = x * 1.0
    v = y[1:]
    v *= y[0]                          # writes y through the view
    w = y.reshape(2, 2)
    w[0, :] = w[1, :] * x[0]
    t = y.reshape(2, 2).T
    t[1] += x[3]                       # through a transposed view
    return np.sum(y * x) + np.sum(v * W4[1:])


def _siblings(x):
    y = x ** 2
    a = y[1:]
    b = y[:3]
    r = y[::-1]
    a *= x[0]                          # b and r see the write
    return np.sum(b * b) + np.sum(r * W4) + np.sum(a * x[1:])


def _overlapping(x):
    y = x * 1.0
    y[1:] += y[:-1]                    # numpy reads the source as it was
    y[:-1] = y[1:] * 2.0
    y[::-1] -= y
    z = np.concatenate([x, x * x])
    z[2:6] = z[1:8:2]                  # numpy copies without a buffer here
    return np.sum(y * y * x) + np.sum(z * z * np.arange(1.0, 9.0))


def _outs(x):
    y = np.zeros_like(x)
    np.multiply(x, x, out=y)
    np.add(y, x, out=y)
    np.sin(y, out=y)
    m = x.reshape(2, 2)
    t = np.empty_like(x[:2])
    np.sum(m * m, axis=0, out=t)
    s = np.sum(t * x[:2])
    np.mean(m ** 3, axis=1, out=t)
    s = s + np.sum(t * t)
    np.cumsum(x * x, out=y[::-1])
    return np.sum(y * W4) + s


def _products(x):
    a = x.reshape(2, 2)
    m = np.zeros_like(a)
    np.matmul(a, a, out=m)
    m @= a
    d = np.ones_like(a)
    np.dot(a, a.T, out=d)
    return np.sum(m * d)


def _copyto_fill(x):
    y = np.zeros_like(x)
    np.copyto(y, x * x)
    np.copyto(y[:2], x[2:])
    y[3:].fill(2.0)
    np.copyto(y, x ** 3, where=np.array([True, False, True, False]))
    return np.sum(y * x)


def _kernels(x):
    y = x * x
    sad.axpy(x[0], x[1:], y[:-1])
    sad.scal(x[1], y)
    sad.setindex(y, 0, x[2] * x[3])
    return np.sum(y * y)


def _copies(x):
    y = x.astype(np.float64)           # a copy: x is not written
    y[0] = 1.0
    c = x.copy()
    c *= x
    f = np.full_like(x, 2.0)
    f[1:] = x[:-1]
    s = x[0]
    s += 1.0                           # a scalar: x[0] is not written
    return np.sum(y * c * f) + np.sum(x) * s


def _stepper(x):
    u = np.concatenate([x, x[::-1] ** 2])
    for _ in range(5):
        u[1:-1] += 0.1 * (u[2:] - 2.0 * u[1:-1] + u[:-2])
    return np.sum(u ** 3)


def _writes_x(x):                      # writes its argument (Duplicated below)
    x *= 2.0
    x[0] = x[1] * x[2]
    v = x[2:]
    v += x[0]
    return np.sum(x * x)


PROGRAMS = {f.__name__[1:]: f for f in [_setitem, _fancy, _mask, _operators,
                                        _view_write_through, _siblings, _overlapping, _outs,
                                        _products, _copyto_fill, _kernels, _copies, _stepper]}


@pytest.mark.parametrize("outer,inner", PAIRS, ids=IDS)
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_second_derivatives_of_in_place_programs(name, outer, inner):
    """u^T H v in every nesting of modes, against central differences of the
    C engine's gradient of the same program."""
    f = PROGRAMS[name]
    expect = float(np.dot(U, hessian_fd(f, X0, V)))
    got = uHv(f, outer, inner, X0)
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_hessian_by_jacobian_of_the_inner_gradient(name):
    """sad.jacobian (C engine, forward lanes) over the nested gradient: the
    whole Hessian."""
    f = PROGRAMS[name]

    def grad(x):
        g, = sad.autodiff(f, Active(x))
        return g
    H = sad.jacobian(grad, X0.copy())
    want = np.stack([hessian_fd(f, X0, e) for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(H, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(nested_gradient(f, X0), c_gradient(f, X0), rtol=1e-13)


def _vector_program(x):
    """An array result, written in place on the way."""
    y = x * 1.0
    y[1:] *= x[:-1]
    v = y[::2]
    v += np.sin(x[1::2])
    np.exp(y[:1], out=y[:1])
    return y


@pytest.mark.parametrize("mode", [F, R], ids=["jacobian(F)", "jacobian(R)"])
@pytest.mark.parametrize("outer", [F, R])
def test_nested_jacobian_of_an_in_place_program(mode, outer):
    """sad.jacobian inside a differentiated function, of a program that
    writes in place: against central differences of the same outer function
    evaluated with the C engine's jacobian."""
    def h(x):
        J = sad.jacobian(_vector_program, x, mode=mode)
        return np.sum(J * np.outer(W4, U))

    if outer is R:
        got = float(np.dot(sad.autodiff(h, Active(X0.copy()))[0], V))
    else:
        got = sad.autodiff(h, Duplicated(X0.copy(), V.copy()), mode=F)
    eps = 1e-6
    want = (h(X0 + eps * V) - h(X0 - eps * V)) / (2 * eps)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_view_semantics_match_numpy():
    """Write-through, sibling refresh and overlapping writes leave the values
    numpy leaves (the primal of the nested call is the program's value)."""
    for f in [_view_write_through, _siblings, _overlapping, _stepper, _outs, _copyto_fill,
              _mask, _fancy, _copies]:
        box = {}

        def outer(w):
            (g,), value = sad.autodiff(f, Active(X0 * w), mode=sad.ReverseWithPrimal)
            box["v"] = float(sad.primal(value))
            return np.sum(g) * w
        sad.autodiff(outer, Active(1.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert box["v"] == f(X0.copy()), f.__name__


def test_read_only_views_refuse_writes_as_numpy_does():
    def f(x):
        y = x * 1.0
        d = np.diagonal(y.reshape(2, 2))
        d[0] = 1.0                     # numpy: assignment destination is read-only
        return np.sum(y)

    with pytest.raises(ValueError, match="read-only"):
        nested_gradient(f, X0)
    with pytest.raises(ValueError, match="read-only"):
        f(X0.copy())


# --------------------------------------------------------------------------
# edge values: bit for bit against the C engine

EDGES = [np.array([0.0, -0.0, np.inf, np.nan]), np.array([-np.inf, 1.0, -0.0, 2.0]),
         np.array([np.nan, np.nan, 0.0, -1.0])]


@pytest.mark.parametrize("x", EDGES, ids=["zeros-inf-nan", "-inf", "nans"])
@pytest.mark.parametrize("name", ["setitem", "fancy", "operators", "siblings", "copyto_fill",
                                  "stepper", "view_write_through"])
def test_edge_values_agree_with_the_c_engine(name, x):
    f = PROGRAMS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = c_gradient(f, x)
        got = nested_gradient(f, x)
    same = (np.array_equal(np.isnan(got), np.isnan(want))
            and np.array_equal(np.where(np.isnan(got), 0.0, got),
                               np.where(np.isnan(want), 0.0, want))
            and np.array_equal(np.signbit(np.where(np.isnan(got), 0.0, got)),
                               np.signbit(np.where(np.isnan(want), 0.0, want))))
    if name in ("operators", "stepper", "view_write_through", "siblings"):
        # several paths: forward and reverse orders round apart
        same = np.allclose(got, want, rtol=1e-12, equal_nan=True) and np.array_equal(
            np.isnan(got), np.isnan(want))
    assert same, (name, x.tolist(), got.tolist(), want.tolist())


# --------------------------------------------------------------------------
# arguments of the inner call that f writes

def _c_call(x, dx, mode):
    """The C engine's call on plain copies: (x after, dx after, result)."""
    x, dx = x.copy(), dx.copy()
    r = sad.autodiff(_writes_x, Duplicated(x, dx), mode=mode)
    return x, dx, r


@pytest.mark.parametrize("inner", [F, R])
def test_written_duplicated_argument_of_a_plain_array(inner):
    """Plain memory given to the nested call: f's writes are visible after it,
    and the shadow means what it means in the C engine (reverse: the adjoint
    before the call from the adjoint after; forward: the final tangent)."""
    x0, d0 = X0.copy(), np.array([0.5, -1.0, 2.0, 0.25])
    want_x, want_dx, want_r = _c_call(x0, d0, inner)
    seen = {}

    def outer(w):
        x, dx = x0.copy(), d0.copy()
        seen["r"] = sad.autodiff(_writes_x, Duplicated(x, dx), mode=inner)
        seen["x"], seen["dx"] = x, dx
        return w * 2.0
    sad.autodiff(outer, Active(1.0))
    np.testing.assert_allclose(seen["x"], want_x, rtol=1e-15)
    np.testing.assert_allclose(seen["dx"], want_dx, rtol=1e-13)
    if inner is F:
        np.testing.assert_allclose(seen["r"], want_r, rtol=1e-13)


@pytest.mark.parametrize("inner", [F, R])
@pytest.mark.parametrize("outer", [F, R])
@pytest.mark.parametrize("restore", [False, True])
def test_written_duplicated_argument_of_the_outer_computation(outer, inner, restore):
    """x and dx values of the outer differentiation, written by the inner
    call: the outer derivative of everything after it (x, dx, the result)
    against central differences of the same function run by the C engine."""
    d0 = np.array([0.5, -1.0, 2.0, 0.25])

    def h(w):
        x = w * 1.0
        dx = np.zeros_like(x)
        dx += d0 * w[0]
        r = sad.autodiff(_writes_x, Duplicated(x, dx), mode=inner, restore=restore)
        s = np.sum(x * W4) + np.sum(dx * dx * U)
        return s if inner is R else s + r

    if outer is R:
        got = float(np.dot(sad.autodiff(h, Active(X0.copy()))[0], V))
    else:
        got = sad.autodiff(h, Duplicated(X0.copy(), V.copy()), mode=F)
    eps = 1e-6
    want = (h(X0 + eps * V) - h(X0 - eps * V)) / (2 * eps)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("inner", [F, R])
def test_restore_leaves_the_primal_and_still_sets_the_shadow(inner):
    x0, d0 = X0.copy(), np.array([0.5, -1.0, 2.0, 0.25])
    x, want_dx = x0.copy(), d0.copy()
    sad.autodiff(_writes_x, Duplicated(x, want_dx), mode=inner, restore=True)  # the C engine
    np.testing.assert_array_equal(x, x0)
    seen = {}

    def outer(w):
        x = x0 * w
        dx = np.zeros_like(x) + d0
        sad.autodiff(_writes_x, Duplicated(x, dx), mode=inner, restore=True)
        seen["x"], seen["dx"] = sad.primal(x), sad.primal(dx)
        return np.sum(x)
    sad.autodiff(outer, Active(1.0))
    np.testing.assert_array_equal(seen["x"], x0)
    np.testing.assert_allclose(seen["dx"], want_dx, rtol=1e-13)


class Boom(Exception):
    pass


def _fails_half_way(x):
    x *= 3.0
    x[0] = 7.0
    raise Boom()


@pytest.mark.parametrize("inner", [F, R])
@pytest.mark.parametrize("traced", [False, True], ids=["plain", "outer-traced"])
def test_exception_half_way_leaves_the_arguments(inner, traced):
    """f wrote its argument and then raised: nothing reaches the argument's
    memory, nor its shadow."""
    d0 = np.array([0.5, -1.0, 2.0, 0.25])
    seen = {}

    def outer(w):
        x = (X0 * w) if traced else X0.copy()
        dx = (np.zeros_like(x) + d0) if traced else d0.copy()
        with pytest.raises(Boom):
            sad.autodiff(_fails_half_way, Duplicated(x, dx), mode=inner)
        seen["x"], seen["dx"] = np.array(sad.primal(x)), np.array(sad.primal(dx))
        return np.sum(x) + np.sum(dx)
    g, = sad.autodiff(outer, Active(1.0))
    np.testing.assert_array_equal(seen["x"], X0)
    np.testing.assert_array_equal(seen["dx"], d0)
    assert g == (np.sum(X0) if traced else 0.0)


def test_const_argument_of_the_outer_computation_is_written_back():
    """A Const value of the outer computation that f writes: the write is
    visible after the call and differentiated by the outer differentiation."""
    def h(w):
        c = w * 2.0
        sad.autodiff(lambda x, c: np.sum(x * c) + np.sum(c.__imul__(x)), Active(X0.copy()),
                     Const(c))
        return np.sum(c * c * W4)

    got = sad.autodiff(h, Active(X0.copy()))[0]
    np.testing.assert_allclose(got, 8.0 * X0 ** 2 * X0 * W4, rtol=1e-13)


def test_writes_at_three_levels():
    """The middle level's buffer written by the innermost call's function:
    its own write, at its level; the innermost value cannot go there."""
    def outer(x):
        def middle(z):
            m = np.zeros_like(z)

            def inner(y):
                m[...] = z * 3.0           # middle-level values: the middle's write
                return np.sum(np.sin(y) * m)
            g, = sad.autodiff(inner, Active(z * 1.0))
            return np.sum(g * W4[:3]) + np.sum(m * z)
        g, = sad.autodiff(middle, Active(x))
        return np.sum(g * U[:3])

    x0 = X0[:3].copy()
    got = sad.autodiff(outer, Active(x0.copy()))[0]
    eps = 1e-6
    want = np.array([(outer(x0 + eps * e) - outer(x0 - eps * e)) / (2 * eps)
                     for e in np.eye(3)])
    np.testing.assert_allclose(got, want, rtol=1e-6)

    def bad(x):
        def middle(z):
            m = np.zeros_like(z)

            def inner(y):
                m[0] = y[0]                # an innermost value into a middle array
                return np.sum(y)
            sad.autodiff(inner, Active(z * 1.0))
            return np.sum(m)
        return sad.autodiff(middle, Active(x))[0]

    with pytest.raises(TypeError, match="enclosing differentiation"):
        sad.autodiff(lambda x: np.sum(bad(x)), Active(x0.copy()))


def test_plain_buffer_cannot_hold_a_nested_value():
    def f(x):
        buf = np.zeros(4)
        np.multiply(x, 2.0, out=buf)
        return np.sum(buf)
    with pytest.raises(TypeError, match="plain numpy array.*np.zeros_like"):
        nested_gradient(f, X0)


def test_many_calls_in_a_row_keep_agreeing():
    """The same nested write program, called repeatedly in one outer run."""
    def h(x):
        s = 0.0
        for k in range(6):
            g, = sad.autodiff(_stepper, Active(x * (1.0 + 0.1 * k)))
            s = s + np.sum(g * U)
        return s

    got = float(np.dot(sad.autodiff(h, Active(X0.copy()))[0], V))
    eps = 1e-6
    want = (h(X0 + eps * V) - h(X0 - eps * V)) / (2 * eps)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("inner", [F, R])
def test_written_batch_duplicated_argument(inner):
    """BatchDuplicated: each lane's shadow as the C engine leaves it (reverse:
    one sweep per lane, each seeded with its own shadow)."""
    x0 = X0.copy()
    lanes = (np.array([0.5, -1.0, 2.0, 0.25]), np.array([1.0, 0.0, -0.5, 3.0]))
    want_x = x0.copy()
    want_d = tuple(d.copy() for d in lanes)
    want_r = sad.autodiff(_writes_x, sad.BatchDuplicated(want_x, want_d), mode=inner)
    seen = {}

    def outer(w):
        x = x0.copy()
        ds = tuple(d.copy() for d in lanes)
        seen["r"] = sad.autodiff(_writes_x, sad.BatchDuplicated(x, ds), mode=inner)
        seen["x"], seen["d"] = x, ds
        return w * 2.0
    sad.autodiff(outer, Active(1.0))
    np.testing.assert_allclose(seen["x"], want_x, rtol=1e-15)
    for got, want in zip(seen["d"], want_d):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    if inner is F:
        np.testing.assert_allclose(np.array(seen["r"]), np.array(want_r), rtol=1e-13)


def test_views_taken_in_a_long_loop_are_forgotten():
    """Views a loop takes and drops do not pile up on their root."""
    from shadowad.engines.nested.box import Box
    seen = {}

    def f(x):
        y = x * 1.0
        s = 0.0
        for i in range(2000):
            s = s + np.sum(y[i % 3:i % 3 + 2])
        seen["views"] = len(y.views)
        assert type(y) is Box
        return s
    nested_gradient(f, X0)
    assert seen["views"] < 300


@pytest.mark.parametrize("inner", [F, R])
@pytest.mark.parametrize("middle_mode", [F, R])
def test_written_argument_one_nested_level_down(middle_mode, inner):
    """The innermost call writes an argument that is a value of the middle
    (nested) differentiation: its final value and shadow are written into the
    middle level's Boxes, which the middle and outer levels differentiate."""
    d0 = np.array([0.5, -1.0, 2.0, 0.25])

    def middle(z):
        x = z * 1.0
        dx = np.zeros_like(z)
        dx += d0 * z[1]
        r = sad.autodiff(_writes_x, Duplicated(x, dx), mode=inner)
        s = np.sum(x * W4) + np.sum(dx * dx * U)
        return s if inner is R else s + r

    def outer(w):
        if middle_mode is R:
            g, = sad.autodiff(middle, Active(w))
            return np.sum(g * V)
        return sad.autodiff(middle, Duplicated(w, V.copy()), mode=F)

    got = sad.autodiff(outer, Active(X0.copy()))[0]
    eps = 1e-5
    want = np.array([(outer(X0 + eps * e) - outer(X0 - eps * e)) / (2 * eps)
                     for e in np.eye(4)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_plain_const_argument_cannot_hold_a_nested_value():
    """A plain-array Const argument is plain memory: a value of the nested
    differentiation written into it is refused (naming np.zeros_like), and the
    caller's array is left as it was."""
    buf = np.array([1.0, 2.0])

    def f(x, b):
        b[0] = x[0] * 2.0
        return np.sum(x)

    def outer(w):
        sad.autodiff(f, Active(X0 * w), Const(buf))
        return w
    with pytest.raises(Exception, match="np.zeros_like") as info:
        sad.autodiff(outer, Active(1.0))
    assert isinstance(info.value, TypeError)
    np.testing.assert_array_equal(buf, [1.0, 2.0])


# --------------------------------------------------------------------------
# random programs of views and writes: values, gradients, and written
# arguments with their shadows, against numpy and the C engine

def _random_program(seed, copy):
    rng = np.random.default_rng(seed)
    ops = [(int(rng.integers(0, 9)), int(rng.integers(0, 1000)))
           for _ in range(int(rng.integers(3, 9)))]

    def f(x):
        y = x * 1.0 if copy else x
        arrays = [y]
        for op, r in ops:
            a = arrays[r % len(arrays)]
            k = r // 7
            long = a.ndim >= 1 and a.shape[0] > 2
            if op == 0 and a.ndim >= 1 and a.shape[0] > 1:
                arrays.append(a[1:])
            elif op == 1 and a.ndim >= 1:
                arrays.append(a[::-1])
            elif op == 2:
                arrays.append(a.T)
            elif op == 3 and a.size == 12:
                arrays.append(a.reshape((3, 4) if k % 2 else (2, 6)))
            elif op == 4 and a.ndim >= 1 and a.shape[0] > 1:
                a[0] = a[-1] * x[k % 12]
            elif op == 5:
                a += x[k % 12] * 0.5
            elif op == 6 and long:
                a[1:] += a[:-1]
            elif op == 7:
                np.multiply(a, a, out=a)
            elif op == 8 and a.ndim == 1 and a.shape[0] > 3:
                a[[0, 2, 0]] = a[1:4] * 2.0
        s = 0.0
        for i, a in enumerate(arrays):
            s = s + np.sum(a * a) * (i + 1) * 0.01
        return s + np.sum(y * np.arange(12.0))
    return f


XR = np.linspace(-0.9, 1.1, 12)
DR = np.cos(np.arange(12.0))


@pytest.mark.parametrize("seed", range(40))
def test_random_view_and_write_programs(seed):
    f = _random_program(seed, copy=True)
    want_v = f(XR.copy())
    want_g = c_gradient(f, XR)
    seen = {}

    def outer(w):
        (g,), v = sad.autodiff(f, Active(XR * w), mode=sad.ReverseWithPrimal)
        seen["g"], seen["v"] = np.array(sad.primal(g)), float(sad.primal(v))
        return np.sum(g) * w
    sad.autodiff(outer, Active(1.0))
    np.testing.assert_allclose(seen["v"], want_v, rtol=1e-13)
    np.testing.assert_allclose(seen["g"], want_g, rtol=1e-11)

    g = _random_program(seed, copy=False)  # writes its Duplicated argument
    for mode in (R, F):
        x, dx = XR.copy(), DR.copy()
        want_r = sad.autodiff(g, Duplicated(x, dx), mode=mode)

        def outer2(w):
            xx, dd = XR.copy(), DR.copy()
            seen["r"] = sad.autodiff(g, Duplicated(xx, dd), mode=mode)
            seen["x"], seen["d"] = xx, dd
            return w * 2.0
        sad.autodiff(outer2, Active(1.0))
        np.testing.assert_allclose(seen["x"], x, rtol=1e-13)
        np.testing.assert_allclose(seen["d"], dx, rtol=1e-10)
        if mode is F:
            np.testing.assert_allclose(seen["r"], want_r, rtol=1e-10)


@pytest.mark.parametrize("inner", [F, R])
def test_a_write_to_memory_passed_twice_is_refused(inner):
    """Two arguments sharing memory are separate values inside the nested
    call: f writing one is refused (not a silently different program), and
    nothing is written back; only reading them is fine."""
    def writes(a, b):
        a[0] = 5.0
        return np.sum(a * b)

    def reads(a, b):
        return np.sum(a * b)

    seen = {}

    def outer(w):
        x = X0.copy()
        dx = np.zeros(4)
        with pytest.raises(NotImplementedError, match="shares memory with argument 1"):
            sad.autodiff(writes, Duplicated(x[:3], dx[:3]), Duplicated(x[1:], dx[1:]),
                         mode=inner)
        seen["x"] = x.copy()
        if inner is R:
            sad.autodiff(reads, Duplicated(x[:3], dx[:3]), Duplicated(x[1:], dx[1:]))
            seen["dx"] = dx
        return w * 1.0
    sad.autodiff(outer, Active(1.0))
    np.testing.assert_array_equal(seen["x"], X0)
    if inner is R:
        want, xw = np.zeros(4), X0.copy()
        sad.autodiff(reads, Duplicated(xw[:3], want[:3]), Duplicated(xw[1:], want[1:]))
        np.testing.assert_allclose(seen["dx"], want, rtol=1e-15)


@pytest.mark.parametrize("inner", [F, R])
def test_a_write_back_plain_memory_cannot_hold_changes_nothing(inner):
    """f writes into its plain Duplicated argument a value of the enclosing
    differentiation: refused when the call returns, before any primal or
    shadow is written."""
    seen = {}

    def outer(w):
        x, dx = X0.copy(), np.array([0.5, -1.0, 2.0, 0.25])

        def f(x):
            x *= w                     # w: a value of the outer differentiation
            return np.sum(x * x)
        with pytest.raises(TypeError, match="plain numpy array"):
            sad.autodiff(f, Duplicated(x, dx), mode=inner)
        seen["x"], seen["dx"] = x, dx
        return w * 1.0
    sad.autodiff(outer, Active(1.5))
    np.testing.assert_array_equal(seen["x"], X0)
    np.testing.assert_array_equal(seen["dx"], [0.5, -1.0, 2.0, 0.25])


# --------------------------------------------------------------------------
# writes of a value of an enclosing level, three levels deep; 0-d memory

_MODES = [sad.Forward, sad.Reverse]


@pytest.mark.parametrize("m0", _MODES)
@pytest.mark.parametrize("m1", _MODES)
@pytest.mark.parametrize("m2", _MODES)
def test_three_levels_write_a_middle_value_into_inner_memory(m0, m1, m2):
    """y (innermost memory) receives values of the middle level: the write's
    formulas make their buffers at the level of the values they run on."""
    q0 = np.linspace(0.9, 1.1, 3)

    def third(write):
        def L0(q):
            def L1(p):
                def L2(d):
                    if write:
                        y = np.zeros_like(d) + d
                        y[...] = y * p
                        y[0] = p[0] * d[1]
                    else:
                        y = np.concatenate([p[:1] * d[1:2], (d * p)[1:]])
                    return np.sum(y * y)
                return sad.jacobian(L2, np.ones(3) + 0.1 * np.arange(3), mode=m2)
            return np.sum(sad.jacobian(L1, q * 0.5, mode=m1) ** 2)
        return sad.jacobian(L0, q0.copy(), mode=m0)
    got, want = third(True), third(False)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert np.abs(want).max() > 0.1


@pytest.mark.parametrize("outer", _MODES)
@pytest.mark.parametrize("inner", _MODES)
def test_zero_d_memory_written_inside_a_nested_differentiation(outer, inner):
    def hess(write):
        def f(d, p):
            if write:
                a = np.zeros_like(d, shape=())
                a[...] = 0.7 + 0.1 * d[0] * p[0]
            else:
                a = 0.7 + 0.1 * d[0] * p[0]
            return np.sum(a * d * p)
        return sad.jacobian(lambda p: sad.jacobian(lambda d: f(d, p), np.ones(3), mode=inner),
                            np.ones(3), mode=outer)
    np.testing.assert_array_equal(hess(True), hess(False))
