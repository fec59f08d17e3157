"""Whole programs with exact expected values: the programs issue 2 names.

Each program is ordinary in-place numpy code; the tests check the gradients
(exactly where the arithmetic is exact, else against an independent
reference), the primal state after the call, restore=True bit for bit, and
the error messages users see when they get an annotation wrong.
"""
import threading

import numpy as np
import pytest

import shadowad as sad
from shadowad import (Active, Const, Duplicated, DuplicatedNoNeed, Forward, ForwardWithPrimal,
    Reverse, ReverseWithPrimal, autodiff)
from shadowad.testing import check_failure_atomic, check_restore, same_bits


# --------------------------------------------------------------------------
# the Enzyme documentation example

def enzyme_f(x, y):
    y[0] = x[0] * x[0] + x[1] * x[0]


def test_enzyme_documentation_example():
    x, dx = np.array([2.0, 2.0]), np.array([0.0, 0.0])
    y, dy = np.array([0.0]), np.array([1.0])
    grads = autodiff(enzyme_f, Duplicated(x, dx), Duplicated(y, dy))
    assert grads == (None, None)
    assert dx.tolist() == [6.0, 2.0]
    assert dy.tolist() == [0.0]          # y[0] was overwritten: its shadow is consumed
    assert y.tolist() == [8.0]           # the primal holds what f left in it
    assert x.tolist() == [2.0, 2.0]


def test_enzyme_example_restore_and_accumulate():
    x, dx = np.array([2.0, 2.0]), np.array([1.0, -1.0])   # pre-filled: gradient is added
    y, dy = np.array([0.0]), np.array([1.0])
    autodiff(enzyme_f, Duplicated(x, dx), Duplicated(y, dy), restore=True)
    assert dx.tolist() == [7.0, 1.0]
    assert dy.tolist() == [0.0]
    assert y.tolist() == [0.0]


# --------------------------------------------------------------------------
# axpy with an Active scalar

def axpy_f(a, x, y):
    sad.axpy(a, x, y)


def test_axpy_active_a():
    x, dx = np.array([2.0, 4.0, 6.0]), np.zeros(3)
    y, dy = np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0, 2.0])
    grads = autodiff(axpy_f, Active(1.0), Duplicated(x, dx), Duplicated(y, dy))
    assert grads == (18.0, None, None)
    assert type(grads[0]) is float
    assert dx.tolist() == [1.0, 1.0, 2.0]
    assert dy.tolist() == [1.0, 1.0, 2.0]     # y += a*x: dy/dy_before = 1, unchanged
    assert y.tolist() == [3.0, 5.0, 7.0]


def test_axpy_active_a_restore_and_primal():
    x, dx = np.array([2.0, 4.0, 6.0]), np.zeros(3)
    y, dy = np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0, 2.0])
    grads, res = autodiff(axpy_f, Active(1.0), Duplicated(x, dx), Duplicated(y, dy),
                          mode=ReverseWithPrimal, restore=True)
    assert grads == (18.0, None, None) and res is None
    assert y.tolist() == [1.0, 1.0, 1.0]


# --------------------------------------------------------------------------
# in-place Doolittle LU: log|det A| with the factors written over A

def lu_logabsdet(A):
    n = A.shape[0]
    for k in range(n):
        for i in range(k + 1, n):
            A[i, k] = A[i, k] / A[k, k]
            A[i, k + 1:] -= A[i, k] * A[k, k + 1:]
    logdet = 0.0
    for k in range(n):
        logdet = logdet + np.log(abs(A[k, k]))
    return logdet


def _lu_matrix(n, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) + n * np.eye(n)   # no pivoting needed


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_inplace_lu_logabsdet_gradient(n):
    A0 = _lu_matrix(n, seed=n)
    A, dA = A0.copy(), np.zeros((n, n))
    grads, value = autodiff(lu_logabsdet, Duplicated(A, dA), mode=ReverseWithPrimal)
    assert grads == (None,)
    assert value == pytest.approx(np.linalg.slogdet(A0)[1], rel=1e-13)
    np.testing.assert_allclose(dA, np.linalg.inv(A0).T, rtol=1e-10, atol=1e-13)
    # A holds the factors, bit for bit as an untraced call leaves them
    plain = A0.copy()
    assert lu_logabsdet(plain) == value
    assert same_bits(A, plain)


@pytest.mark.parametrize("n", [2, 4, 7])
def test_inplace_lu_restore_bit_for_bit(n):
    A0 = _lu_matrix(n, seed=100 + n)
    A0[0, 1] = -0.0                                      # signed zero must survive too
    A, dA = A0.copy(), np.zeros((n, n))
    autodiff(lu_logabsdet, Duplicated(A, dA), restore=True)
    assert same_bits(A, A0)
    np.testing.assert_allclose(dA, np.linalg.inv(A0).T, rtol=1e-10, atol=1e-13)
    check_restore(lu_logabsdet, Duplicated(A0.copy(), np.zeros((n, n))))


def test_inplace_lu_gradient_is_added():
    A0 = _lu_matrix(4, seed=3)
    dA0 = np.arange(16.0).reshape(4, 4)
    dA = dA0.copy()
    autodiff(lu_logabsdet, Duplicated(A0.copy(), dA))
    # every entry of A is overwritten or read-only (the first row): the shadow
    # seeds of the final factors are pulled back too; compare with seed-free run
    dB = np.zeros((4, 4))
    autodiff(lu_logabsdet, Duplicated(A0.copy(), dB))
    dC = dA0.copy()
    autodiff(lambda A: lu_logabsdet(A) * 0.0, Duplicated(A0.copy(), dC))
    np.testing.assert_allclose(dA, dB + dC, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------
# explicit heat equation, many in-place steps

def heat(u, r, steps):
    for _ in range(steps):
        u[1:-1] += r * (u[2:] - 2 * u[1:-1] + u[:-2])


def heat_plain(u0, r, steps):
    u = u0.copy()
    heat(u, r, steps)
    return u


@pytest.mark.parametrize("steps", [1, 10, 1000])
def test_heat_equation_gradient(steps):
    n, r = 16, 0.3
    rng = np.random.default_rng(steps)
    u0, w = rng.standard_normal(n), rng.standard_normal(n)
    # objective <w, u after the call>: seed the shadow with w, return None
    u, du = u0.copy(), w.copy()
    assert autodiff(heat, Duplicated(u, du), r, steps) == (None, None, None)
    assert same_bits(u, heat_plain(u0, r, steps))
    # the map is linear: J^T w is exact up to rounding, so compare with the
    # explicit Jacobian and with central differences
    J = np.column_stack([heat_plain(e, r, steps) for e in np.eye(n)])
    np.testing.assert_allclose(du, J.T @ w, rtol=1e-10, atol=1e-12)
    h = 1e-3
    fd = np.array([(w @ heat_plain(u0 + h * e, r, steps) - w @ heat_plain(u0 - h * e, r, steps))
                   / (2 * h) for e in np.eye(n)])
    np.testing.assert_allclose(du, fd, rtol=1e-7, atol=1e-9)


def test_heat_equation_restore_and_nonlinear_objective():
    n, r, steps = 12, 0.25, 300
    rng = np.random.default_rng(5)
    u0 = rng.standard_normal(n)

    def energy(u):
        heat(u, r, steps)
        e = 0.0
        for i in range(n):
            e = e + u[i] * u[i]
        return e

    u, du = u0.copy(), np.zeros(n)
    autodiff(energy, Duplicated(u, du), restore=True)
    assert same_bits(u, u0)
    J = np.column_stack([heat_plain(e, r, steps) for e in np.eye(n)])
    np.testing.assert_allclose(du, 2 * J.T @ (J @ u0), rtol=1e-10, atol=1e-12)


def test_heat_equation_tape_saves_only_overwritten_bytes():
    n, steps = 1000, 20
    _, tape = sad.autodiff_split(heat, Duplicated(np.ones(n), np.zeros(n)), 0.25, steps)
    # each step overwrites n-2 doubles; out-of-place temporaries save nothing, so
    # the tape holds a small multiple of the overwritten bytes, not of all values
    assert len(tape) > 0
    assert tape.stats()["saved_bytes"] < 3 * steps * 8 * n
    tape.reverse()


# --------------------------------------------------------------------------
# a 1000-step scalar loop

def scalar_loop(x, y):
    for i in range(1, x.shape[0]):
        y[i] = x[i] * x[i] + 0.5 * y[i - 1]
    return y[-1]


def test_scalar_loop_1000_steps():
    n = 1001
    rng = np.random.default_rng(11)
    x0 = rng.uniform(-2, 2, n)
    x, dx = x0.copy(), np.zeros(n)
    y, dy = np.zeros(n), np.zeros(n)
    y[0] = 1.5
    grads, value = autodiff(scalar_loop, Duplicated(x, dx), Duplicated(y, dy),
                            mode=ReverseWithPrimal)
    # y[n-1] = sum_i 0.5**(n-1-i) x_i**2 + 0.5**(n-1) y_0: powers of two, so exact
    k = np.arange(n)
    want_dx = 2 * x0 * 0.5 ** (n - 1 - k)
    want_dx[0] = 0.0
    assert np.array_equal(dx, want_dx)
    want_dy = np.zeros(n)
    want_dy[0] = 0.5 ** (n - 1)
    assert np.array_equal(dy, want_dy)
    plain_y = np.zeros(n)
    plain_y[0] = 1.5
    assert value == scalar_loop(x0.copy(), plain_y)
    assert same_bits(y, plain_y)


def test_scalar_loop_prefilled_shadows():
    n = 1000
    rng = np.random.default_rng(12)
    x0, y0 = rng.standard_normal(n), rng.standard_normal(n)
    seed = rng.standard_normal(n)
    x, dx = x0.copy(), np.zeros(n)
    y, dy = y0.copy(), seed.copy()
    _, tape = sad.autodiff_split(scalar_loop, Duplicated(x, dx), Duplicated(y, dy))
    assert len(tape) >= 3 * (n - 1)
    tape.reverse(seed=2.0)
    # the adjoint recurrence by hand: L = 2*y[-1] + <seed, y after>
    adj = seed.copy()
    adj[-1] += 2.0
    want_dx, want_dy = np.zeros(n), np.zeros(n)
    for i in range(n - 1, 0, -1):
        want_dx[i] = 2 * x0[i] * adj[i]
        adj[i - 1] += 0.5 * adj[i]
    want_dy[0] = adj[0]
    np.testing.assert_allclose(dx, want_dx, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(dy, want_dy, rtol=1e-14)


# --------------------------------------------------------------------------
# an f that raises half-way

class Boom(Exception):
    pass


def half_way(a, x, y, v):
    sad.axpy(a, x, y)
    y[1:] *= x[:-1]
    y[0] = x[2] * a
    v.push(y[0])
    x[...] = 0.0          # x is Duplicated: writes are recorded too
    if True:
        raise Boom("half-way through f")


def test_exception_half_way_restores_primals_and_leaves_shadows():
    x0 = np.array([1.0, -0.0, np.nan, 3.5])
    y0 = np.array([np.inf, 2.0, -1.0, 1e-300])
    dx0, dy0 = np.array([0.5, 0.25, 0.0, 1.0]), np.array([1.0, 2.0, 3.0, 4.0])
    x, y, dx, dy = x0.copy(), y0.copy(), dx0.copy(), dy0.copy()
    v, dv = sad.Vector([1.0, 2.0]), sad.Vector([0.0, 0.0])
    with pytest.raises(Boom, match="half-way through f"):
        autodiff(half_way, Active(2.0), Duplicated(x, dx), Duplicated(y, dy),
                 Duplicated(v, dv))
    assert same_bits(x, x0) and same_bits(y, y0)
    assert same_bits(dx, dx0) and same_bits(dy, dy0)
    assert v[:].tolist() == [1.0, 2.0] and dv[:].tolist() == [0.0, 0.0]
    check_failure_atomic(half_way, Active(2.0), Duplicated(x0, dx0), Duplicated(y0, dy0),
                         Duplicated(sad.Vector([1.0, 2.0]), sad.Vector([0.0, 0.0])), exc=Boom)


def test_exception_half_way_in_split_mode_and_const():
    c0 = np.array([1.0, 2.0, 3.0])
    c = c0.copy()

    def f(x, c):
        c[0] = x[0] * 3.0          # Const memory promoted, then f fails
        c[1:] += 1.0
        raise Boom("late")

    x, dx = np.array([1.0, 2.0]), np.zeros(2)
    with pytest.raises(Boom):
        sad.autodiff_split(f, Duplicated(x, dx), Const(c))
    assert same_bits(c, c0) and dx.tolist() == [0.0, 0.0]


def test_engine_usable_after_exception():
    with pytest.raises(Boom):
        autodiff(half_way, Active(2.0), Duplicated(np.ones(4), np.zeros(4)),
                 Duplicated(np.ones(4), np.zeros(4)),
                 Duplicated(sad.Vector(), sad.Vector()))
    x, dx = np.array([2.0, 2.0]), np.zeros(2)
    autodiff(enzyme_f, Duplicated(x, dx), Duplicated(np.zeros(1), np.ones(1)))
    assert dx.tolist() == [6.0, 2.0]


# --------------------------------------------------------------------------
# bad inputs: each a clear exception whose message says what to do

def test_shadow_shape_mismatch():
    with pytest.raises(ValueError, match=r"shadow has shape \(4,\), primal has shape \(3,\)"):
        Duplicated(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="congruent"):
        DuplicatedNoNeed(np.zeros((2, 3)), np.zeros((3, 2)))


def test_shadow_dtype_mismatch():
    with pytest.raises(TypeError, match="shadow has dtype float32, primal has dtype float64"):
        Duplicated(np.zeros(3), np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="shadow must have dtype float64 or float32, got float16"):
        Duplicated(np.zeros(3), np.zeros(3, dtype=np.float16))
    with pytest.raises(TypeError, match="shadow must be a float64 or float32 numpy array, got list"):
        Duplicated(np.zeros(3), [0.0, 0.0, 0.0])


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_integer_arrays_rejected(dtype):
    a = np.arange(3).astype(dtype)
    with pytest.raises(TypeError, match=rf"Active array must have dtype float64 or float32, got {np.dtype(dtype)}"):
        Active(a)
    with pytest.raises(TypeError, match=r"Duplicated primal must have dtype float64 or float32.*astype\(float\)"):
        Duplicated(a, np.zeros(3))
    with pytest.raises(TypeError, match="must have dtype float64 or float32"):
        Duplicated(np.zeros(3), a)


def test_active_rejects_non_numbers():
    with pytest.raises(TypeError, match="Active takes a float or a float64 or float32 array, got str"):
        Active("1.0")


def _write_setitem(x):
    x[0] = 1.0


def _write_inplace(x):
    x += 1.0


def _write_axpy(x):
    sad.axpy(2.0, np.ones(3), x)


def _write_out(x):
    np.multiply(x, 2.0, out=x)


@pytest.mark.parametrize("f", [_write_setitem, _write_inplace, _write_axpy, _write_out])
def test_writing_to_active_array(f):
    x0 = np.array([1.0, 2.0, 3.0])
    x = x0.copy()
    with pytest.raises(TypeError, match=r"argument 0 is Active.*read-only inside f.*"
                                        r"Duplicated\(x, dx\)"):
        autodiff(f, Active(x))
    assert same_bits(x, x0)


@pytest.mark.parametrize("ret", [lambda x: x * 2.0, lambda x: x[:2], lambda x: [x[0]],
                                 lambda x: np.ones(3)])
def test_array_returned_in_reverse_mode(ret):
    x = np.array([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="reverse mode needs a scalar result"):
        autodiff(ret, Duplicated(x, np.zeros(3)))
    with pytest.raises(TypeError, match="reverse mode needs a scalar result"):
        sad.autodiff_split(ret, Duplicated(x, np.zeros(3)))


def test_array_returned_leaves_no_trace():
    y0, dy0 = np.array([1.0, -0.0, 3.0]), np.array([1.0, 2.0, 3.0])
    y, dy = y0.copy(), dy0.copy()

    def f(y):
        y *= 2.0
        y[0] = y[1] * y[2]
        return y

    with pytest.raises(TypeError, match="reverse mode needs a scalar result"):
        autodiff(f, Duplicated(y, dy))
    assert same_bits(y, y0) and same_bits(dy, dy0)


def test_array_return_message_names_the_shape():
    with pytest.raises(TypeError, match=r"f returned an array of shape \(3,\).*np\.sum"):
        autodiff(lambda x: x * 2.0, Active(np.ones(3)))


@pytest.mark.parametrize("mode", [Forward, ForwardWithPrimal])
def test_active_in_forward_mode(mode):
    with pytest.raises(TypeError, match=rf"argument 1: Active is not allowed in {mode}.*"
                                        r"Duplicated\(x, dx\)"):
        autodiff(lambda c, a: a, Const(1.0), Active(2.0), mode=mode)


@pytest.mark.parametrize("mode", ["reverse", None, Reverse.reverse, 0])
def test_bad_mode(mode):
    with pytest.raises(TypeError, match="mode must be one of Reverse, ReverseWithPrimal, "
                                        "Forward, ForwardWithPrimal"):
        autodiff(enzyme_f, Active(1.0), mode=mode)


@pytest.mark.parametrize("driver", [autodiff, sad.autodiff_split, sad.gradient])
@pytest.mark.parametrize("f", [3, None, "f", np.zeros(2)])
def test_non_callable_f(driver, f):
    with pytest.raises(TypeError, match="must be callable"):
        driver(f, Active(1.0))


def test_shadow_is_its_own_primal():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="shadow shares memory with its primal"):
        Duplicated(x, x)
    with pytest.raises(ValueError, match="shadow shares memory with its primal"):
        Duplicated(x[:2], x[1:])


def test_shadow_shares_memory_with_another_primal():
    x, dx = np.zeros(3), np.zeros(3)
    with pytest.raises(ValueError, match="the shadow of argument 0 shares memory with the "
                                         "primal of argument 1"):
        autodiff(lambda x, c: None, Duplicated(x, dx), Const(dx))
    y = np.zeros(3)
    with pytest.raises(ValueError, match="the shadow of argument 1 shares memory with the "
                                         "primal of argument 0"):
        autodiff(lambda a, b: None, Duplicated(y, np.zeros(3)), Duplicated(x, y[::-1]))


def test_shared_memory_with_different_activities():
    x = np.zeros(4)
    with pytest.raises(ValueError, match="arguments 0 and 1 share memory but are annotated "
                                         "Duplicated and Const"):
        autodiff(lambda a, b: None, Duplicated(x, np.zeros(4)), Const(x[1:]))


# --------------------------------------------------------------------------
# four threads at once

def _thread_job(k):
    """Different data per thread: the LU gradient, the heat equation and the
    scalar loop, all results as bytes for a bit-for-bit comparison."""
    A = _lu_matrix(6, seed=1000 + k)
    dA = np.zeros((6, 6))
    logdet = autodiff(lu_logabsdet, Duplicated(A, dA), mode=ReverseWithPrimal)[1]
    rng = np.random.default_rng(k)
    u, du = rng.standard_normal(50), rng.standard_normal(50)
    autodiff(heat, Duplicated(u, du), 0.25, 200)
    x, dx = rng.standard_normal(300), np.zeros(300)
    y, dy = np.zeros(300), np.ones(300)
    a = autodiff(lambda a, x, y: (sad.axpy(a, x, y), scalar_loop(x, y))[1],
                 Active(0.5 + k), Duplicated(x, dx), Duplicated(y, dy))[0]
    return [logdet, A.tobytes(), dA.tobytes(), u.tobytes(), du.tobytes(), a,
            x.tobytes(), dx.tobytes(), y.tobytes(), dy.tobytes()]


def test_four_threads_at_once():
    nthreads, rounds = 4, 3
    reference = [_thread_job(k) for k in range(nthreads)]
    results = [[None] * rounds for _ in range(nthreads)]
    errors = []
    barrier = threading.Barrier(nthreads)

    def worker(k):
        try:
            barrier.wait()
            for r in range(rounds):
                results[k][r] = _thread_job(k)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(nthreads):
        for r in range(rounds):
            assert results[k][r] == reference[k], f"thread {k}, round {r} differs"
    # the jobs really differ, so a mix-up between threads would show
    assert len({ref[2] for ref in reference}) == nthreads
