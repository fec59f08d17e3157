"""The public kernels sad.axpy, sad.scal and sad.setindex: inside f in reverse
and forward mode (every activity of a and x, broadcasting, exact and partial
aliasing of x and y) and outside f on plain arrays (bit for bit as numpy), and
their errors."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import (Active, BatchDuplicated, Const, Duplicated, Forward, Reverse, autodiff,
    autodiff_split)
from shadowad.testing import check_forward, check_rule, check_gradient, check_restore, same_bits


def dup(a):
    a = np.asarray(a, dtype=float)
    return Duplicated(a, np.zeros_like(a))


check_all = check_rule


rng = np.random.default_rng(5)
X = rng.uniform(-1, 1, (3, 4))
Y = rng.uniform(-1, 1, (3, 4))


# --------------------------------------------------------------------------
# axpy inside f

A_KINDS = {
    "active": lambda a, x: a,                 # Active(a) scalar argument
    "const": lambda a, x: 1.75,
    "int": lambda a, x: 2,
    "np_scalar": lambda a, x: np.float64(-0.5),
    "traced": lambda a, x: x[0, 1] * a,       # a traced scalar computed inside f
}
X_KINDS = {
    "array": lambda x: x,
    "row": lambda x: x[1],                    # broadcast along rows
    "column": lambda x: x[:, 2:3],            # broadcast along columns
    "scalar": lambda x: 0.75,                 # a plain number
    "traced_scalar": lambda x: x[2, 3],       # a traced scalar
    "strided": lambda x: x[::-1, ::-1],
    "zero_d": lambda x: x[1, 1, ...],
}


@pytest.mark.parametrize("xk", list(X_KINDS))
@pytest.mark.parametrize("ak", list(A_KINDS))
def test_axpy_inside_f(ak, xk):
    def f(a, x, y):
        sad.axpy(A_KINDS[ak](a, x), X_KINDS[xk](x), y)
        y *= x             # y is read after the update
    check_all(f, Active(1.3), dup(X), dup(Y))


def test_axpy_exact_gradients():
    def f(a, x, y):
        sad.axpy(a, x, y)
    x, dx = np.array([2.0, 4.0, 6.0]), np.zeros(3)
    y, dy = np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0, 2.0])
    ga, _, _ = autodiff(f, Active(1.5), Duplicated(x, dx), Duplicated(y, dy))
    assert ga == 2.0 + 4.0 + 12.0
    assert dx.tolist() == [1.5, 1.5, 3.0]
    assert dy.tolist() == [1.0, 1.0, 2.0]      # dy/dy_before = 1: passes through
    assert y.tolist() == [4.0, 7.0, 10.0]


def test_axpy_broadcast_x_accumulates_over_repeats():
    def f(x, y):
        sad.axpy(2.0, x, y)
    x, dx = np.array([1.0, 2.0]), np.zeros(2)
    y, dy = np.zeros((3, 2)), np.arange(6.0).reshape(3, 2)
    autodiff(f, Duplicated(x, dx), Duplicated(y, dy))
    assert dx.tolist() == [2.0 * (0 + 2 + 4), 2.0 * (1 + 3 + 5)]


def test_axpy_const_x_active_a():
    def f(a, c, y):
        sad.axpy(a, c, y)
        sad.axpy(a, c[0], y)        # c[0] of a Const array is a plain float
    check_all(f, Active(0.5), Const(X.copy()), dup(Y))


def test_axpy_into_const_y_promotes():
    def f(x, c, out):
        sad.axpy(3.0, x, c)
        out[...] = c * c
    check_all(f, dup(X), Const(Y.copy()), dup(np.zeros((3, 4))))


def test_axpy_all_inactive_into_const_y_is_restored():
    def f(x, c):
        sad.axpy(2.0, c[0], c)       # inactive: only the overwritten bytes are kept
        return x[0, 0] * c[1, 1]
    check_all(f, dup(X), Const(Y.copy()))


ALIASES = ["exact", "shift_up", "shift_down", "reversed", "strided", "broadcast_self",
           "scalar_self"]


def aliased_axpy(alias):
    """An axpy whose x is a view of y (exactly, shifted, reversed, ...)."""
    def f(a, y):
        if alias == "exact":
            sad.axpy(a, y, y)                       # y += a*y
        elif alias == "shift_up":
            sad.axpy(2.0, y[:-1], y[1:])            # y[1:] += 2*y[:-1] (old values)
        elif alias == "shift_down":
            sad.axpy(a, y[1:], y[:-1])
        elif alias == "reversed":
            sad.axpy(a, y[::-1], y)
        elif alias == "strided":
            sad.axpy(a, y[::2], y[1::2])
        elif alias == "broadcast_self":
            sad.axpy(a, y[:1], y)                   # y += a*y[0], y[0] included
        else:
            sad.axpy(a, y[0], y)                    # the same with a traced scalar
        y *= y
    return f


@pytest.mark.parametrize("alias", ALIASES)
def test_axpy_aliasing(alias):
    check_all(aliased_axpy(alias), Active(0.7), dup(rng.uniform(-1, 1, 8)))


@pytest.mark.parametrize("alias", ["exact", "shift_up", "shift_down", "reversed",
                                   "half_overlap"])
def test_axpy_aliasing_matches_numpy(alias):
    """Inside f and outside f: bit for bit as numpy's y += a*x."""
    sl = {"exact": (slice(None), slice(None)), "shift_up": (slice(None, -1), slice(1, None)),
          "shift_down": (slice(1, None), slice(None, -1)),
          "reversed": (slice(None, None, -1), slice(None)),
          "half_overlap": (slice(0, 6), slice(3, 9))}[alias]
    y0 = rng.uniform(-1, 1, 9)
    want = y0.copy()
    want[sl[1]] += 1.7 * want[sl[0]]
    plain = y0.copy()
    sad.axpy(1.7, plain[sl[0]], plain[sl[1]])
    assert same_bits(plain, want)

    def f(y):
        sad.axpy(1.7, y[sl[0]], y[sl[1]])
    for mode in (Reverse, Forward):
        traced = y0.copy()
        autodiff(f, dup(traced), mode=mode)
        assert same_bits(traced, want)
    check_all(f, dup(y0))


def test_axpy_shift_exact_gradient():
    """y[1:] += 2*y[:-1] is y_new = A y: ybar_before = A^T ybar_after."""
    n = 6
    y0 = np.arange(1.0, n + 1)
    ybar = np.arange(10.0, 10.0 + n)
    y, dy = y0.copy(), ybar.copy()

    def f(y):
        sad.axpy(2.0, y[:-1], y[1:])
    autodiff(f, Duplicated(y, dy))
    A = np.eye(n) + 2.0 * np.eye(n, k=-1)
    assert dy.tolist() == (A.T @ ybar).tolist()
    assert y.tolist() == (A @ y0).tolist()


def test_axpy_returns_y():
    seen = []

    def f(x, y):
        seen.append(sad.axpy(1.0, x, y) is y)
    autodiff(f, dup([1.0]), dup([1.0]))
    assert seen == [True]
    y = np.zeros(2)
    assert sad.axpy(1.0, np.ones(2), y) is y


def test_axpy_saves_only_y():
    def f(x, y):
        sad.axpy(2.0, x, y)
    sizes = []
    for n in (10, 1010):
        _, tape = autodiff_split(f, dup(np.ones(n)), dup(np.ones(n)))
        assert len(tape) == 1
        sizes.append(tape.stats()["saved_bytes"])
        tape.reverse()
    assert sizes[1] - sizes[0] == 8 * 1000


def test_axpy_six_dims():
    """More dimensions than one C record iterates over: still right."""
    y = np.asfortranarray(rng.uniform(-1, 1, (2,) * 6))
    x = rng.uniform(-1, 1, (2,) * 6)

    def f(a, x, y):
        sad.axpy(a, x, y)
        y *= x
    check_gradient(f, Active(0.3), dup(x), Duplicated(y, np.zeros_like(y)))
    check_restore(f, Active(0.3), dup(x), Duplicated(y, np.zeros_like(y)))


# --------------------------------------------------------------------------
# axpy outside f: the same C kernel, nothing recorded, bit for bit as numpy

@pytest.mark.parametrize("xk", ["array", "row", "column", "scalar", "zero_d", "strided",
                                "fortran", "int_array"])
@pytest.mark.parametrize("a", [1.7, -3, np.float64(0.1), np.int32(2), True])
def test_axpy_outside_f(a, xk):
    x = {"array": X, "row": X[1], "column": X[:, 2:3], "scalar": 0.75, "zero_d": np.array(2.5),
         "strided": rng.uniform(-1, 1, (3, 8))[::-1, ::-2], "fortran": np.asfortranarray(X),
         "int_array": np.arange(12).reshape(3, 4)}[xk]
    want = Y.copy()
    want += a * np.asarray(x, dtype=float)
    y = Y.copy()
    assert sad.axpy(a, x, y) is y
    assert same_bits(y, want)
    yf = np.asfortranarray(Y)
    sad.axpy(a, x, yf)
    assert same_bits(yf, want)


def test_axpy_outside_f_on_views():
    big = rng.uniform(-1, 1, (6, 8))
    want = big.copy()
    want[::2, 1::3] += 0.5 * want[1::2, ::3]
    got = big.copy()
    sad.axpy(0.5, got[1::2, ::3], got[::2, 1::3])
    assert same_bits(got, want)


# --------------------------------------------------------------------------
# scal

@pytest.mark.parametrize("ak", ["const", "active", "traced"])
def test_scal_inside_f(ak):
    def f(a, y):
        s = {"const": 2.5, "active": a, "traced": y[0] * a}[ak]
        assert sad.scal(s, y[1:]) is not None
        sad.scal(s, y)
        y *= y
    check_all(f, Active(0.8), dup(rng.uniform(-1, 1, 5)))


def test_scal_exact():
    def f(a, y):
        sad.scal(a, y)
    y, dy = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    (ga, _) = autodiff(f, Active(4.0), Duplicated(y, dy))
    assert ga == 1.0 * 3.0 + 2.0 * 5.0
    assert dy.tolist() == [12.0, 20.0]
    assert y.tolist() == [4.0, 8.0]


def test_scal_outside_f():
    y = Y.copy()
    assert sad.scal(1.3, y) is y
    assert same_bits(y, Y * 1.3)
    v = Y.copy()
    sad.scal(-2.0, v[::-1, 1::2])
    w = Y.copy()
    w[::-1, 1::2] *= -2.0
    assert same_bits(v, w)


# --------------------------------------------------------------------------
# setindex

IDX = {
    "int": (1, lambda x: x[0, 0] * x[1, 1]),
    "neg_int": (-1, lambda x: 2.5),
    "tuple": ((1, 2), lambda x: x[2, 3]),
    "row": (0, lambda x: x[2] * 2.0),
    "slice": (slice(1, 3), lambda x: np.sin(x[:2])),
    "strided": ((slice(None, None, -1), slice(None, None, 2)), lambda x: x[:, 1::2]),
    "broadcast": ((slice(None), 1), lambda x: x[0, 0]),
    "ellipsis": (Ellipsis, lambda x: x * x),
    "fancy": (([0, 2], [1, 3]), lambda x: x[1, :2]),
    "mask": (Y > 0, lambda x: x[0, 1]),
    "const_array": (slice(0, 2), lambda x: np.ones((2, 4))),
}


@pytest.mark.parametrize("name", list(IDX))
def test_setindex_inside_f(name):
    idx, val = IDX[name]

    def f(x, y):
        assert sad.setindex(y, idx, val(x)) is y
        y *= x
    check_all(f, dup(X), dup(Y))


def test_setindex_same_as_item_assignment():
    def f(x, y, use_kernel):
        if use_kernel:
            sad.setindex(y, (slice(None), 0), x[:, 1] * x[:, 2])
            sad.setindex(y, 3, x[0])
        else:
            y[:, 0] = x[:, 1] * x[:, 2]
            y[3] = x[0]
    res = []
    for k in (True, False):
        dx, dy = np.zeros((4, 3)), np.arange(12.0).reshape(4, 3)
        y = np.ones((4, 3))
        autodiff(f, Duplicated(X.T.copy(), dx), Duplicated(y, dy), k)
        res.append((dx, dy, y))
    for a, b in zip(*res):
        assert same_bits(a, b)


def test_setindex_exact():
    def f(x, y):
        sad.setindex(y, 0, x[0] * x[0] + x[1] * x[0])
    x, dx = np.array([2.0, 2.0]), np.zeros(2)
    y, dy = np.array([0.0]), np.array([1.0])
    autodiff(f, Duplicated(x, dx), Duplicated(y, dy))
    assert dx.tolist() == [6.0, 2.0] and dy.tolist() == [0.0] and y.tolist() == [8.0]


def test_setindex_repeated_indices_last_write_wins():
    def f(x, y):
        sad.setindex(y, [0, 2, 0, 1, 2], x * 2.0)
    x, dx = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.zeros(5)
    y, dy = np.zeros(3), np.array([10.0, 20.0, 30.0])
    autodiff(f, Duplicated(x, dx), Duplicated(y, dy))
    want = np.zeros(3)
    want[[0, 2, 0, 1, 2]] = x * 2.0
    assert same_bits(y, want)                    # numpy: the last write wins
    assert dx.tolist() == [0.0, 0.0, 20.0, 40.0, 60.0]
    assert dy.tolist() == [0.0, 0.0, 0.0]
    check_all(f, dup(x), dup(np.zeros(3)))


@pytest.mark.parametrize("name", list(IDX))
def test_setindex_outside_f(name):
    idx, val = IDX[name]
    v = val(X)
    want = Y.copy()
    want[idx] = v
    y = Y.copy()
    assert sad.setindex(y, idx, v) is y
    assert same_bits(y, want)


# --------------------------------------------------------------------------
# errors

@pytest.mark.parametrize("call, exc, match", [
    (lambda x, y: sad.axpy(1.0, x[:3], y), ValueError, "does not broadcast"),
    (lambda x, y: sad.axpy(1.0, np.ones((2, 4)), y), ValueError, "does not broadcast"),
    (lambda x, y: sad.axpy(1.0, x[:, None], y), ValueError, "does not broadcast"),
    (lambda x, y: sad.axpy(np.ones(2), x, y), TypeError, "real scalar"),
    (lambda x, y: sad.axpy("2", x, y), TypeError, "real scalar"),
    (lambda x, y: sad.axpy(1.0, x, np.zeros((4, 3), dtype=int)), TypeError, None),
    (lambda x, y: sad.axpy(1.0, x, np.zeros((4, 3))), TypeError, "np.zeros_like"),
    (lambda x, y: sad.axpy(x[0, 0], np.ones(3), np.zeros(3)), TypeError, "np.zeros_like"),
    (lambda x, y: sad.setindex(np.zeros(3), 0, x[0, 0]), TypeError, "np.zeros_like"),
    (lambda x, y: sad.setindex(y, 7, 1.0), IndexError, None),
    (lambda x, y: sad.setindex(y, slice(0, 2), np.ones(5)), ValueError, None),
    (lambda x, y: sad.scal(x[0, 0], np.ones(3)), TypeError, "np.zeros_like"),
])
@pytest.mark.parametrize("mode", [Reverse, Forward], ids=repr)
def test_errors_inside_f(call, exc, match, mode):
    y0 = np.arange(12.0).reshape(4, 3)
    y, dy = y0.copy(), np.ones((4, 3))

    def f(x, y):
        y *= 2.0            # done before the error: undone
        call(x, y)
    with pytest.raises(exc, match=match):
        autodiff(f, dup(X.T.copy()), Duplicated(y, dy), mode=mode)
    assert same_bits(y, y0) and same_bits(dy, np.ones((4, 3)))


def test_axpy_into_active_is_refused():
    def f(x, y):
        sad.axpy(1.0, y, x)
    with pytest.raises(TypeError, match="Duplicated"):
        autodiff(f, Active(np.ones(3)), dup(np.ones(3)))


@pytest.mark.parametrize("call, exc", [
    (lambda: sad.axpy(1.0, np.ones(3), np.zeros(4)), ValueError),
    (lambda: sad.axpy(1.0, np.ones((3, 1)), np.zeros(3)), ValueError),
    (lambda: sad.axpy(1.0, np.ones(3), np.zeros(3, dtype=int)), TypeError),
    (lambda: sad.axpy(1.0, np.ones(3), np.zeros(3, dtype=np.float16)), TypeError),
    (lambda: sad.axpy(1.0, np.ones(4, dtype=np.float32), np.zeros(3, dtype=np.float32)), ValueError),
    (lambda: sad.axpy(1.0, np.ones(3), [0.0, 0.0, 0.0]), TypeError),
    (lambda: sad.axpy(np.ones(3), np.ones(3), np.zeros(3)), TypeError),
    (lambda: sad.axpy(1.0, np.ones(3), np.broadcast_to(np.zeros(1), (3,))), ValueError),
    (lambda: sad.scal(2.0, np.zeros(3, dtype=int)), TypeError),
    (lambda: sad.scal(2.0, [1.0]), TypeError),
])
def test_errors_outside_f(call, exc):
    with pytest.raises(exc):
        call()


def test_float32_outside_f_is_numpy():
    """On plain float32 arrays axpy and scal are numpy's y += a * x and
    x *= a (the C kernels read float64)."""
    x = np.array([1.5, -2.0, 0.1], dtype=np.float32)
    y = np.array([0.3, 1.0, -4.0], dtype=np.float32)
    want = y + np.float32(0.7) * x
    assert sad.axpy(0.7, x, y) is y and y.dtype == np.float32 and y.tobytes() == want.tobytes()
    want = x * np.float32(0.3)
    assert sad.scal(0.3, x) is x and x.dtype == np.float32 and x.tobytes() == want.tobytes()


# --------------------------------------------------------------------------
# forward mode: the kernels on dual values

@pytest.mark.parametrize("xk", list(X_KINDS))
@pytest.mark.parametrize("ak", list(A_KINDS))
def test_axpy_forward(ak, xk):
    def f(a, x, y):
        sad.axpy(A_KINDS[ak](a, x), X_KINDS[xk](x), y)
        y *= x
    check_forward(f, 1.3, X, Y)


def test_axpy_forward_exact_in_place():
    """dy += a*dx + da*x: the Duplicated shadow of y holds its output tangent,
    lane by lane."""
    def f(a, x, y):
        sad.axpy(a, x, y)
    x, dx = np.array([2.0, 4.0, 6.0]), np.array([1.0, 0.0, -1.0])
    y, dy = np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0, 2.0])
    assert autodiff(f, Duplicated(1.5, 2.0), Duplicated(x, dx), Duplicated(y, dy),
                    mode=Forward) is None
    assert y.tolist() == [4.0, 7.0, 10.0]
    assert dy.tolist() == [1.0 + 1.5 + 4.0, 1.0 + 8.0, 2.0 - 1.5 + 12.0]
    assert dx.tolist() == [1.0, 0.0, -1.0]
    dys = (np.zeros(3), np.ones(3))
    autodiff(f, BatchDuplicated(1.5, (1.0, 0.0)), Const(np.array([2.0, 4.0, 6.0])),
             BatchDuplicated(np.ones(3), dys), mode=Forward)
    assert dys[0].tolist() == [2.0, 4.0, 6.0] and dys[1].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("alias", ALIASES)
def test_axpy_aliasing_forward(alias):
    check_forward(aliased_axpy(alias), 0.7, rng.uniform(-1, 1, 8))


def test_axpy_forward_constants_and_promotion():
    """Constant a, x or y; an active update of Const memory promotes it."""
    def const_x(a, c, y):
        sad.axpy(a, c, y)
        sad.axpy(a, c[0], y)
    check_forward(const_x, 0.5, Const(X.copy()), Y)

    def into_const(x, c, out):
        sad.axpy(3.0, x, c)
        out[...] = c * c
    check_forward(into_const, X, Const(Y.copy()), np.zeros((3, 4)))

    def const_a_into_const(a, c, out):
        sad.axpy(a, np.ones(4), c)      # a dual scalar a into Const memory
        out[...] = c * c
    check_forward(const_a_into_const, 0.3, Const(Y.copy()), np.zeros((3, 4)))

    def all_inactive(x, c):
        sad.axpy(2.0, c[0], c)
        return x[0, 0] * c[1, 1]
    check_forward(all_inactive, X, Const(Y.copy()))


def test_axpy_forward_six_dims():
    """More dimensions than the C kernel iterates over: the ufunc fallback."""
    def f(a, x, y):
        sad.axpy(a, x, y)
        y *= x
    check_forward(f, 0.3, rng.uniform(-1, 1, (2,) * 6),
                  np.asfortranarray(rng.uniform(-1, 1, (2,) * 6)))


@pytest.mark.parametrize("ak", ["const", "active", "traced"])
def test_scal_forward(ak):
    def f(a, y, c):
        s = {"const": 2.5, "active": a, "traced": y[0] * a}[ak]
        sad.scal(s, y[1:])
        sad.scal(s, y)
        sad.scal(s, c)             # Const memory promoted unless s is constant
        y *= y + c[0]
    check_forward(f, 0.8, rng.uniform(-1, 1, 5), Const(rng.uniform(-1, 1, 5)))


@pytest.mark.parametrize("name", list(IDX))
def test_setindex_forward(name):
    idx, val = IDX[name]

    def f(x, y, c):
        assert sad.setindex(y, idx, val(x)) is y
        sad.setindex(c, idx, val(x))   # active values into Const memory
        y *= x + c
    check_forward(f, X, Y, Const(Y + 1.0))
