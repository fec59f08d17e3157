"""sad.jacobian (forward lanes / reverse sweeps over one tape) and
BatchDuplicated in both modes, against central finite differences."""
import sys

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, BatchDuplicated, Const, Duplicated, Forward, Reverse
from shadowad.testing import same_bits

jacmod = sys.modules["shadowad.api.jacobian"]  # the module (sad.jacobian is the function)
rng = np.random.default_rng(11)


def fd_jacobian(f, x, *consts, h=1e-6):
    """Central differences of f(x, *consts) on plain copies: out.shape + x.shape."""
    def at(v):
        return np.asarray(f(v, *[np.copy(c) for c in consts]), dtype=float)

    if isinstance(x, float):
        hh = h * max(1.0, abs(x))
        return (at(x + hh) - at(x - hh)) / (2 * hh)
    x = np.asarray(x, dtype=float)
    shape = at(x.copy()).shape
    J = np.zeros(shape + x.shape)
    for i in np.ndindex(x.shape):
        hh = h * max(1.0, abs(x[i]))
        xp, xm = x.copy(), x.copy()
        xp[i] += hh
        xm[i] -= hh
        J[(Ellipsis,) + i] = (at(xp) - at(xm)) / (2 * hh)
    return J


def check_jacobian(f, x, *consts, out_shape=None, rtol=1e-6, atol=1e-7):
    """Forward, reverse and automatic mode agree to 1e-12 and with finite
    differences; returns the Jacobian."""
    Jf = sad.jacobian(f, x, *consts, mode=Forward)
    Jr = sad.jacobian(f, x, *consts, mode=Reverse)
    J = sad.jacobian(f, x, *consts)
    shape = np.shape(np.asarray(f(np.copy(x) if not isinstance(x, float) else x,
                                  *[np.copy(getattr(c, "val", c)) for c in consts])))
    want_shape = shape + np.shape(x)
    if out_shape is not None:
        assert shape == out_shape
    for got in (Jf, Jr, J):
        assert isinstance(got, np.ndarray)
        assert got.shape == want_shape
    np.testing.assert_allclose(Jf, Jr, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(J, Jf if np.size(x) <= int(np.prod(shape)) else Jr)
    plain = [np.copy(getattr(c, "val", c)) for c in consts]
    np.testing.assert_allclose(J, fd_jacobian(f, x, *plain), rtol=rtol, atol=atol)
    return J


# --- functions -----------------------------------------------------------------

A7 = rng.standard_normal((7, 3))
B7 = rng.standard_normal((7, 3))
C2 = rng.standard_normal((2, 7))


def tall(x):                                   # R^3 -> R^7
    return A7 @ np.sin(x) + (B7 @ x) * x[0] * x[2]


def tall_inplace(x, buf):                      # R^3 -> R^7, mutates a Const buffer
    buf[:3] = x * x
    buf[3:6] = np.sin(x) * x[::-1]
    buf[6] = x[0] * x[1] - x[2]
    buf[1:] += 0.5 * buf[:-1]                  # overlapping in-place update
    return buf * 2.0


def wide(x):                                   # R^7 -> R^2
    return C2 @ np.tanh(x) * np.sum(x * x)


def wide_inplace(x):                           # R^7 -> R^2, mutates an internal buffer
    b = x * 1.0
    for i in range(1, 7):
        b[i] += 0.5 * b[i - 1] * b[i]
    b *= np.cos(x)
    return C2 @ b


def wide_zeros_like(x):                        # R^7 -> R^2, a zeros_like scratch buffer
    y = np.zeros_like(x)
    y[0] = x[0]
    for i in range(1, 7):
        y[i] = y[i - 1] * 0.9 + np.sin(x[i])
    return C2 @ y


X3 = np.array([0.3, -1.2, 0.8])
X7 = rng.uniform(-1.0, 1.0, 7)


def test_tall():
    J = check_jacobian(tall, X3, out_shape=(7,))
    assert J.shape == (7, 3)


def test_tall_inplace_const_buffer_restored():
    buf = rng.standard_normal(7)
    buf0 = buf.copy()
    x = X3.copy()
    check_jacobian(tall_inplace, x, Const(buf), out_shape=(7,))
    assert same_bits(buf, buf0)            # Const buffer f mutated is left as it was
    assert same_bits(x, X3)                # x is not modified
    sad.jacobian(tall_inplace, x, buf)     # a bare array is a Const too
    assert same_bits(buf, buf0)


def test_wide():
    check_jacobian(wide, X7, out_shape=(2,))


def test_wide_inplace_internal_buffer():
    x = X7.copy()
    check_jacobian(wide_inplace, x, out_shape=(2,))
    assert same_bits(x, X7)


def test_wide_zeros_like_buffer():
    check_jacobian(wide_zeros_like, X7, out_shape=(2,))


def test_automatic_mode_choice(monkeypatch):
    calls = []
    fwd, rev = jacmod.jacobian_forward, jacmod.jacobian_reverse
    monkeypatch.setattr(jacmod, "jacobian_forward",
                        lambda *a, **k: calls.append("fwd") or fwd(*a, **k))
    monkeypatch.setattr(jacmod, "jacobian_reverse",
                        lambda *a, **k: calls.append("rev") or rev(*a, **k))
    sad.jacobian(tall, X3)
    sad.jacobian(wide, X7)
    sad.jacobian(lambda x: x * x, X3)      # square: forward
    sad.jacobian(lambda t: np.sin(t), 0.5)  # float x: forward
    assert calls == ["fwd", "rev", "fwd", "fwd"]


def test_float_x():
    w = np.linspace(-1.0, 2.0, 5)
    J = check_jacobian(lambda t, w: np.sin(t * w) * t, 0.7, Const(w), out_shape=(5,))
    assert J.shape == (5,)
    # float in, float out: a 0-d Jacobian
    J0 = check_jacobian(lambda t: t * t * np.sin(t), 1.3)
    assert J0.shape == ()
    np.testing.assert_allclose(J0, 2 * 1.3 * np.sin(1.3) + 1.3 ** 2 * np.cos(1.3), rtol=1e-14)


def test_scalar_valued_f_gives_gradient_shape():
    x = rng.standard_normal((2, 3))
    J = check_jacobian(lambda x: np.sum(x ** 3) + x[0, 1] * x[1, 2], x)
    assert J.shape == (2, 3)
    want = 3 * x ** 2
    want[0, 1] += x[1, 2]
    want[1, 2] += x[0, 1]
    np.testing.assert_allclose(J, want, rtol=1e-14)


def test_2d_x_2d_out():
    x = rng.standard_normal((2, 3))
    J = check_jacobian(lambda x: x.T @ np.sin(x), x, out_shape=(3, 3))   # tall: forward
    assert J.shape == (3, 3, 2, 3)
    J = check_jacobian(lambda x: np.sin(x) @ x.T, x, out_shape=(2, 2))   # wide: reverse
    assert J.shape == (2, 2, 2, 3)


def test_more_than_64_inputs_several_chunks():
    n = 150                                    # 3 forward passes of at most 64 lanes
    assert n > 2 * jacmod.CHUNK
    x = rng.uniform(-1.0, 1.0, n)
    J = check_jacobian(lambda x: np.cumsum(np.sin(x)) * x, x, out_shape=(n,))
    want = np.tril(np.ones((n, n))) * np.cos(x) * x[:, None] + np.diag(np.cumsum(np.sin(x)))
    np.testing.assert_allclose(J, want, rtol=1e-13, atol=1e-14)
    # and a wide one with more than 64 inputs
    J = check_jacobian(lambda x: C2 @ np.tanh(x.reshape(7, -1)).sum(axis=1),
                       rng.standard_normal(7 * 10))
    assert J.shape == (2, 70)


@pytest.mark.parametrize("n", [1, 2, 64, 65, 129])
def test_chunk_boundaries(n):
    """A last forward chunk of one lane (n % 64 == 1) gives a column too."""
    x = np.linspace(-1.0, 1.0, n)
    J = sad.jacobian(lambda x: np.sin(x) * x[::-1], x)
    want = np.diag(np.cos(x) * x[::-1]) + np.diag(np.sin(x))[:, ::-1]
    np.testing.assert_allclose(J, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(sad.jacobian(lambda x: np.sin(x) * x[::-1], x, mode=Reverse),
                               want, rtol=1e-14, atol=1e-15)


def test_zero_dimensional_and_empty_x():
    J = check_jacobian(lambda x: np.sin(x) * np.arange(3.0), np.array(0.5))
    assert J.shape == (3,)
    J = check_jacobian(lambda x: np.sum(x * x), np.array([3.0]))
    assert J.shape == (1,) and J[0] == 6.0
    for mode in (None, Forward, Reverse):
        assert sad.jacobian(lambda x: x * 2.0, np.zeros(0), mode=mode).shape == (0, 0)
        assert sad.jacobian(lambda x: np.sum(x) + 1.0, np.zeros((0, 2)),
                            mode=mode).shape == (0, 2)
    # an int or numpy float x is a float
    assert sad.jacobian(lambda x: x * x, 3) == 6.0
    assert sad.jacobian(lambda x: x * x, np.float64(3.0)) == 6.0


def test_output_independent_of_x():
    c = np.arange(4.0)
    for mode in (Forward, Reverse, None):
        J = sad.jacobian(lambda x, c: c * 2.0, X3, Const(c), mode=mode)
        assert J.shape == (4, 3)
        assert not J.any()


def test_output_aliases_x_or_a_mutated_buffer():
    x = np.array([0.3, -1.2, 0.8, 0.5])
    b = np.ones(6)

    def square_in_place(x):               # returns the memory it mutated (x itself)
        x *= x
        return x

    def fill(x, b):                        # returns a Const buffer it wrote active values to
        b[:2] = x[1:3] * x[0]
        return b

    check_jacobian(square_in_place, x)
    check_jacobian(lambda x: square_in_place(x)[:2], x)
    check_jacobian(lambda x: x[::-1], x)
    check_jacobian(fill, x, Const(b), out_shape=(6,))
    assert (b == 1.0).all()
    np.testing.assert_array_equal(sad.jacobian(lambda x: 3.0, x), np.zeros(4))


# --- (b) the issue's example: batch forward mode with identity lanes --------------

def issue_f(x):
    return np.sin(x) * x[::-1] + np.cumsum(x)


def test_batch_forward_identity_lanes_returning_array():
    n = 5
    x = rng.uniform(-1.0, 1.0, n)
    x0 = x.copy()
    tangents = sad.autodiff(issue_f, BatchDuplicated(x, tuple(np.eye(n))), mode=Forward)
    assert isinstance(tangents, tuple) and len(tangents) == n
    J = np.column_stack(tangents)
    np.testing.assert_allclose(J, fd_jacobian(issue_f, x0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(J, sad.jacobian(issue_f, x0), rtol=1e-14, atol=1e-15)
    assert same_bits(x, x0)


def test_batch_forward_identity_lanes_writing_output():
    n = 5
    x = rng.uniform(-1.0, 1.0, n)
    y = np.zeros(n)
    dys = tuple(np.zeros(n) for _ in range(n))

    def g(x, y):
        y[...] = np.sin(x) * x[::-1] + np.cumsum(x)

    assert sad.autodiff(g, BatchDuplicated(x, tuple(np.eye(n))), BatchDuplicated(y, dys),
                        mode=Forward) is None
    J = np.column_stack(dys)                    # lane j: column j of the Jacobian
    np.testing.assert_allclose(J, fd_jacobian(issue_f, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(y, issue_f(x))

    # one lane, Duplicated: one column
    y1, dy1 = np.zeros(n), np.zeros(n)
    e2 = np.zeros(n)
    e2[2] = 1.0
    sad.autodiff(g, Duplicated(x, e2), Duplicated(y1, dy1), mode=Forward)
    np.testing.assert_allclose(dy1, J[:, 2], rtol=1e-15, atol=1e-15)


# --- (c) the seed example rs(xs, d) ----------------------------------------------

XG = np.arange(-10.0, 11.0)


def f0(m):
    return np.exp(-1.5 * (XG - m) ** 2)


def rs(xs, d):
    d0 = f0(xs)
    return d - np.sum(d * d0) / np.sum(d0 * d0) * d0


def test_seed_rs_example():
    d = np.random.default_rng(3).standard_normal(21)
    d_before = d.copy()
    for xs in (0.3, -2.7):
        Jf = sad.jacobian(rs, xs, Const(d), mode=Forward)
        Jr = sad.jacobian(rs, xs, Const(d), mode=Reverse)
        J = sad.jacobian(rs, xs, Const(d))
        assert Jf.shape == Jr.shape == J.shape == (21,)
        np.testing.assert_allclose(Jf, Jr, rtol=1e-12, atol=1e-13)
        np.testing.assert_array_equal(J, Jf)
        np.testing.assert_allclose(J, fd_jacobian(rs, xs, d), rtol=1e-6, atol=1e-8)
    assert same_bits(d, d_before)


# --- (d) nothing is modified -------------------------------------------------------

def test_x_and_consts_left_as_they_were():
    def f(x, c):
        x *= 2.0                                # f writes to x itself
        c[:] = x[:4] * c[::-1]                  # and to a Const
        return x[1:5] * c
    x = rng.standard_normal(6)
    c = rng.standard_normal(4)
    x0, c0 = x.copy(), c.copy()
    Jf = sad.jacobian(f, x, Const(c), mode=Forward)
    assert same_bits(x, x0) and same_bits(c, c0)
    Jr = sad.jacobian(f, x, Const(c), mode=Reverse)
    assert same_bits(x, x0) and same_bits(c, c0)
    J = sad.jacobian(f, x, Const(c))            # records, then chooses forward
    assert same_bits(x, x0) and same_bits(c, c0)
    np.testing.assert_allclose(Jf, Jr, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(J, Jf)
    np.testing.assert_allclose(J, fd_jacobian(f, x, c), rtol=1e-6, atol=1e-8)


# --- (e) errors --------------------------------------------------------------------

@pytest.mark.parametrize("mode", [sad.ReverseWithPrimal, sad.ForwardWithPrimal, "forward", 1])
def test_bad_mode(mode):
    with pytest.raises(TypeError, match="mode"):
        sad.jacobian(tall, X3, mode=mode)


@pytest.mark.parametrize("x", ["abc", [1.0, 2.0], None, np.arange(3),
                               np.ones(3, dtype=np.float16), True])
def test_bad_x(x):
    with pytest.raises(TypeError):
        sad.jacobian(tall, x)


def test_non_const_extra_argument():
    with pytest.raises(TypeError, match="constants"):
        sad.jacobian(lambda x, a: x * a, X3, Active(2.0))
    with pytest.raises(TypeError, match="constants"):
        sad.jacobian(lambda x, y: x * y, X3, Duplicated(np.ones(3), np.zeros(3)))


def test_f_not_callable():
    with pytest.raises(TypeError, match="callable"):
        sad.jacobian(X3, X3)


@pytest.mark.parametrize("mode", [None, Forward, Reverse])
@pytest.mark.parametrize("x", [X3, X7, 0.5], ids=["tall", "wide", "float"])
def test_f_returning_tuple(mode, x):
    c = np.arange(3.0)
    c0 = c.copy()

    def f(x, c):
        c *= 2.0
        return (x * 2.0, x * 3.0)
    with pytest.raises(TypeError, match="f must return one float or array"):
        sad.jacobian(f, x, Const(c), mode=mode)
    assert same_bits(c, c0)


@pytest.mark.parametrize("mode", [None, Forward, Reverse])
def test_f_returning_none(mode):
    with pytest.raises(TypeError, match="f must return one float or array"):
        sad.jacobian(lambda x: None, X7, mode=mode)


# --- (f) reverse mode BatchDuplicated -------------------------------------------------

def g_inplace(x, y):
    y[...] = np.sin(x) * x[::-1] + np.cumsum(x)


def test_reverse_batch_rows_of_jacobian():
    n = 6
    x = rng.uniform(-1.0, 1.0, n)
    y = rng.standard_normal(n)
    x0 = x.copy()
    dxs = tuple(np.zeros(n) for _ in range(n))
    dys = tuple(np.eye(n))                     # seed i: d y_i
    dys = tuple(d.copy() for d in dys)
    grads = sad.autodiff(g_inplace, BatchDuplicated(x, dxs), BatchDuplicated(y, dys))
    assert grads == (None, None)
    J = np.vstack(dxs)                          # lane i: row i of the Jacobian
    np.testing.assert_allclose(J, fd_jacobian(issue_f, x0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(J, sad.jacobian(issue_f, x0), rtol=1e-13, atol=1e-14)
    for dy in dys:                              # y was overwritten: its shadows are consumed
        assert not dy.any()
    np.testing.assert_array_equal(y, issue_f(x0))   # primal effects as after a plain call
    assert same_bits(x, x0)


def test_reverse_batch_accumulates_into_shadows():
    n = 4
    x = rng.uniform(-1.0, 1.0, n)
    base = [rng.standard_normal(n) for _ in range(2)]
    dxs = tuple(b.copy() for b in base)
    seeds = [rng.standard_normal(n) for _ in range(2)]
    dys = tuple(s.copy() for s in seeds)
    sad.autodiff(g_inplace, BatchDuplicated(x, dxs), BatchDuplicated(np.zeros(n), dys))
    J = sad.jacobian(issue_f, x)
    for lane in range(2):
        np.testing.assert_allclose(dxs[lane], base[lane] + seeds[lane] @ J, rtol=1e-13)


def test_reverse_batch_active_float_gets_tuple():
    n = 5
    x = rng.uniform(-1.0, 1.0, n)

    def f(a, x, y):
        y[...] = np.sin(a * x) + a * a * y
        return np.sum(y * x)    # the scalar result is seeded with 1 in every lane

    y0 = rng.standard_normal(n)
    k = 3
    dxs = tuple(np.zeros(n) for _ in range(k))
    seeds = [rng.standard_normal(n) for _ in range(k)]
    dys = tuple(s.copy() for s in seeds)
    y = y0.copy()
    grads = sad.autodiff(f, Active(0.7), BatchDuplicated(x, dxs), BatchDuplicated(y, dys))
    assert grads[1] is None and grads[2] is None
    ga = grads[0]
    assert isinstance(ga, tuple) and len(ga) == k
    assert all(isinstance(g, float) for g in ga)

    def objective(a, x, y, s):           # L = f + <s, y after>
        y = y.copy()
        r = f(a, x, y)
        return r + s @ y

    for lane in range(k):
        h = 1e-6
        want_a = (objective(0.7 + h, x, y0, seeds[lane])
                  - objective(0.7 - h, x, y0, seeds[lane])) / (2 * h)
        np.testing.assert_allclose(ga[lane], want_a, rtol=1e-6)
        want_x = np.array([(objective(0.7, x + h * e, y0, seeds[lane])
                            - objective(0.7, x - h * e, y0, seeds[lane])) / (2 * h)
                           for e in np.eye(n)])
        np.testing.assert_allclose(dxs[lane], want_x, rtol=1e-6, atol=1e-8)
        want_y = np.array([(objective(0.7, x, y0 + h * e, seeds[lane])
                            - objective(0.7, x, y0 - h * e, seeds[lane])) / (2 * h)
                           for e in np.eye(n)])
        np.testing.assert_allclose(dys[lane], want_y, rtol=1e-6, atol=1e-8)
    # and the same lane by lane with plain Duplicated
    for lane in range(k):
        dx, dy = np.zeros(n), seeds[lane].copy()
        g1 = sad.autodiff(f, Active(0.7), Duplicated(x, dx), Duplicated(y0.copy(), dy))
        np.testing.assert_allclose(g1[0], ga[lane], rtol=1e-13)
        np.testing.assert_allclose(dx, dxs[lane], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(dy, dys[lane], rtol=1e-13, atol=1e-15)


def test_reverse_batch_active_array_gets_tuple():
    x = rng.uniform(-1.0, 1.0, 4)
    y = np.zeros(4)
    grads = sad.autodiff(lambda w, y: np.sum(w * y) + np.sum(w * w),
                         Active(x), BatchDuplicated(y, (np.zeros(4), np.zeros(4))))
    assert isinstance(grads[0], tuple) and len(grads[0]) == 2
    for g in grads[0]:
        np.testing.assert_allclose(g, 2 * x, rtol=1e-15)


def test_reverse_batch_mixing_duplicated_is_type_error():
    n = 3
    with pytest.raises(TypeError, match="Duplicated cannot be mixed"):
        sad.autodiff(g_inplace, Duplicated(np.ones(n), np.zeros(n)),
                     BatchDuplicated(np.zeros(n), (np.ones(n), np.ones(n))))
    with pytest.raises(TypeError, match="Duplicated cannot be mixed"):
        sad.autodiff(g_inplace, BatchDuplicated(np.ones(n), (np.zeros(n), np.zeros(n))),
                     Duplicated(np.zeros(n), np.ones(n)))


def test_reverse_batch_lane_counts_differ_is_value_error():
    n = 3
    x, y = np.ones(n), np.zeros(n)
    dx = (np.zeros(n), np.zeros(n))
    dy = (np.ones(n), np.ones(n), np.ones(n))
    with pytest.raises(ValueError, match="different numbers of shadows"):
        sad.autodiff(g_inplace, BatchDuplicated(x, dx), BatchDuplicated(y, dy))
    assert not any(d.any() for d in dx)         # nothing touched
    assert all((d == 1.0).all() for d in dy)
    assert (y == 0.0).all()


def test_reverse_batch_restore_bit_for_bit():
    n = 6
    x = rng.uniform(-1.0, 1.0, n)
    y = rng.standard_normal(n)
    y[2] = -0.0
    y[4] = np.nan
    x0, y0 = x.copy(), y.copy()

    def f(x, y):
        y[...] = np.sin(x) * x[::-1] + np.cumsum(x)
        y[1:] += y[:-1] * x[1:]
        x *= 1.5
        return np.sum(x * y)

    dxs = tuple(np.zeros(n) for _ in range(3))
    dys = tuple(rng.standard_normal(n) for _ in range(3))
    sad.autodiff(f, BatchDuplicated(x, dxs), BatchDuplicated(y, dys), restore=True)
    assert same_bits(x, x0) and same_bits(y, y0)
    # each lane agrees with a single Duplicated call (which also restores)
    dxs2 = tuple(np.zeros(n) for _ in range(3))
    dys2 = tuple(rng.standard_normal(n) for _ in range(3))
    dys2_in = [d.copy() for d in dys2]
    sad.autodiff(f, BatchDuplicated(x, dxs2), BatchDuplicated(y, dys2))
    xa, ya = x.copy(), y.copy()                 # without restore: the primal effects
    xp, yp = x0.copy(), y0.copy()
    f(xp, yp)
    assert same_bits(xa, xp) and same_bits(ya, yp)
    for lane in range(3):
        dx, dy = np.zeros(n), dys2_in[lane].copy()
        sad.autodiff(f, Duplicated(x0.copy(), dx), Duplicated(y0.copy(), dy))
        assert same_bits(dx, dxs2[lane]) and same_bits(dy, dys2[lane])
