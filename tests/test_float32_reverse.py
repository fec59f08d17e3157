"""float32 in reverse mode (docs/float32.md): in-place programs as users
write them, on float32 arrays.  Each program's gradient agrees with the
float64 run of the same code to float32 precision and is float32; the
primal values, f's result and the final contents are what numpy computes in
float32, bit for bit; restore=True, failure atomicity, split mode, aliasing
views, promotion of Const memory, numpy's dtype promotions, casts, nested
calls, repeated calls and threads hold as they do for float64."""
import threading
import tracemalloc

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated

F32 = np.float32


def heat(u):
    for _ in range(4):
        u[1:-1] += F32(0.2) * (u[2:] - 2 * u[1:-1] + u[:-2])
    return (u * u).sum()


def fisher_kpp(u):
    for _ in range(3):
        u[1:-1] += 0.1 * (u[2:] - 2 * u[1:-1] + u[:-2]) + 0.01 * u[1:-1] * (1 - u[1:-1])
    return np.sum(np.sin(u) ** 2)


def element_loop(x):
    s = 0.0
    for i in range(x.shape[0]):
        s = s + x[i] * x[i] - x[i - 1] * 0.5
    return s


def cholesky_in_place(a):
    A = np.outer(a, a) + a.shape[0] * np.eye(a.shape[0], dtype=a.dtype)
    n = A.shape[0]
    for k in range(n):
        A[k, k] = np.sqrt(A[k, k])
        A[k + 1:, k] /= A[k, k]
        for j in range(k + 1, n):
            A[j:, j] -= A[j:, k] * A[j, k]
    return np.sum(np.tril(A) ** 2)


def mlp(w):
    X = np.linspace(-1, 1, 3 * w.shape[0], dtype=F32).reshape(3, w.shape[0])
    h = np.tanh(X @ w[:, None] + 0.1)
    return np.mean(h ** 2) + np.max(np.abs(w))


def scatter(v):
    out = np.zeros_like(v, shape=4)
    np.add.at(out, [0, 1, 1, 3, 2, 0], v[:6])
    out[2] = v[-1] * out[1]
    return np.sum(np.exp(-out) * out)


def roll_advection(q):
    for _ in range(3):
        q -= 0.3 * (q - np.roll(q, 1))
    return np.sum(q ** 3)


def linear_solve(a):
    A = np.diag(a + 3.0) + np.ones((a.size, a.size), dtype=a.dtype) * 0.1
    return np.sum(np.linalg.solve(A, a) ** 2) + np.linalg.det(A) * 1e-3


def where_clip(x):
    y = np.where(x > 0.5, x ** 2, -x)
    return np.sum(np.clip(y, -0.4, 0.6) * x)


PROGRAMS = [heat, fisher_kpp, element_loop, cholesky_in_place, mlp, scatter, roll_advection,
            linear_solve, where_clip]


def _x(n=8, seed=0):
    return np.random.default_rng(seed).uniform(0.1, 0.9, n)


def _run(f, x, **kw):
    dx = np.zeros_like(x)
    _, value = sad.autodiff(f, Duplicated(x, dx), mode=sad.ReverseWithPrimal, **kw)
    return dx, value


@pytest.mark.parametrize("f", PROGRAMS, ids=lambda f: f.__name__)
def test_gradient_in_float32_agrees_with_float64(f):
    x64 = _x()
    g64, _ = _run(f, x64.copy())
    x32 = x64.astype(F32)
    g32, _ = _run(f, x32.copy())
    assert g32.dtype == F32
    scale = max(1.0, float(np.abs(g64).max()))
    assert np.abs(g32 - g64).max() <= 2e-3 * scale, (g32, g64)


@pytest.mark.parametrize("f", PROGRAMS, ids=lambda f: f.__name__)
def test_values_are_numpys_float32_bit_for_bit(f):
    x32 = _x().astype(F32)
    plain = x32.copy()
    want = f(plain)
    traced = x32.copy()
    _, value = _run(f, traced)
    assert type(value) is type(want) and value.dtype == want.dtype
    assert np.array_equal(value, want)
    assert np.array_equal(traced, plain)  # f's in-place writes, as numpy made them


@pytest.mark.parametrize("f", PROGRAMS, ids=lambda f: f.__name__)
def test_restore_and_accumulate_once(f):
    """A shadow's content before the call is added to once (for an argument f
    overwrites, it is also the seed of its final value, as in float64)."""
    x64 = _x()
    x32 = x64.astype(F32)
    x = x32.copy()
    dx = np.full_like(x, 0.25)
    sad.autodiff(f, Duplicated(x, dx), restore=True)
    assert x.tobytes() == x32.tobytes()
    d64 = np.full_like(x64, 0.25)
    sad.autodiff(f, Duplicated(x64, d64))
    assert dx.dtype == F32
    assert np.abs(dx - d64).max() <= 2e-3 * max(1.0, float(np.abs(d64).max()))


@pytest.mark.parametrize("f", PROGRAMS, ids=lambda f: f.__name__)
def test_finite_differences(f):
    x = _x().astype(F32)
    g, _ = _run(f, x.copy())
    v = np.random.default_rng(3).standard_normal(x.size)
    eps = 1e-3
    x64 = x.astype(np.float64)
    fd = (float(f((x64 + eps * v).astype(F32))) - float(f((x64 - eps * v).astype(F32)))) / (2 * eps)
    assert float(g.astype(np.float64) @ v) == pytest.approx(fd, rel=2e-2, abs=2e-2)


def test_active_float32_array_and_split_mode():
    x = _x().astype(F32)
    g, = sad.autodiff(mlp, Active(x.copy()))
    assert g.dtype == F32
    dx = np.zeros_like(x)
    value, tape = sad.autodiff_split(mlp, Duplicated(x.copy(), dx))
    assert value == mlp(x.copy())
    tape.reverse()
    assert np.array_equal(dx, g)


def test_failure_half_way_restores_float32_primal_and_leaves_shadow():
    x = _x().astype(F32)
    before = x.copy()
    dx = np.full_like(x, 1.5)

    def f(u):
        u[1:] += u[:-1] * 2
        u *= u
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        sad.autodiff(f, Duplicated(x, dx))
    assert x.tobytes() == before.tobytes()
    assert np.all(dx == F32(1.5))


def test_views_of_one_float32_memory_passed_twice():
    x = _x(10).astype(F32)
    dx = np.zeros_like(x)

    def f(a, b):
        a[1:] += b[:-1] * 0.5
        return np.sum(a * b)
    sad.autodiff(f, Duplicated(x[:6], dx[:6]), Duplicated(x[4:], dx[4:]))
    x64 = _x(10)
    d64 = np.zeros_like(x64)
    sad.autodiff(f, Duplicated(x64[:6], d64[:6]), Duplicated(x64[4:], d64[4:]))
    assert np.abs(dx - d64).max() < 1e-5


def test_const_float32_memory_receiving_an_active_value_is_promoted():
    x = _x().astype(F32)
    c = np.zeros(8, dtype=F32)

    def f(x, c):
        c[2:5] = x[:3] * 3.0
        return np.sum(c ** 2)
    dx = np.zeros_like(x)
    sad.autodiff(f, Duplicated(x, dx), Const(c))
    want = np.zeros(8, dtype=F32)
    want[:3] = 18 * x[:3]
    assert np.allclose(dx, want, rtol=1e-6)
    assert dx.dtype == F32


@pytest.mark.parametrize("other, dtype", [
    (lambda: 2.0, F32),                          # a Python float is weak
    (lambda: np.float32(2.0), F32),
    (lambda: np.float64(2.0), np.float64),       # numpy's float64 scalar is strong
    (lambda: np.full(8, 2.0), np.float64),       # a float64 array promotes
    (lambda: np.full(8, 2.0, F32), F32),
    (lambda: np.arange(8, dtype=np.int16), F32),
    (lambda: np.arange(8), np.float64),          # int64 with float32: float64
])
def test_numpy_promotion_of_mixed_operands(other, dtype):
    x = _x().astype(F32)
    seen = {}

    def f(x):
        y = x * other()
        seen["dtype"] = y.dtype
        return np.sum(y * y)
    dx = np.zeros_like(x)
    _, value = sad.autodiff(f, Duplicated(x, dx), mode=sad.ReverseWithPrimal)
    assert seen["dtype"] == np.dtype(dtype) == np.result_type(x, other())
    assert dx.dtype == F32
    assert np.array_equal(value, f(x.copy()))


def test_traced_float64_scalar_promotes_float32_arrays():
    x = _x().astype(F32)
    w = _x(3, seed=1)
    seen = {}

    def f(x, w):
        y = x * w[1]  # an element of a float64 array computes as an np.float64
        seen["dtype"] = y.dtype
        return np.sum(y)
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    sad.autodiff(f, Duplicated(x, dx), Duplicated(w, dw))
    assert seen["dtype"] == np.float64
    assert dx.dtype == F32 and np.allclose(dx, w[1])
    assert dw[1] == pytest.approx(float(np.sum(x.astype(np.float64))))


def test_astype_both_ways():
    x64 = _x()

    def down(x):
        y = x.astype(F32)
        assert y.dtype == F32
        return np.sum(np.sin(y) * y).astype(np.float64) * 2.0
    dx = np.zeros_like(x64)
    _, value = sad.autodiff(down, Duplicated(x64.copy(), dx), mode=sad.ReverseWithPrimal)
    assert value == down(x64.copy())
    assert dx.dtype == np.float64
    y = x64.astype(F32)
    want = 2 * (np.cos(y) * y + np.sin(y))
    assert np.allclose(dx, want, rtol=1e-5)

    x32 = x64.astype(F32)
    d32 = np.zeros_like(x32)
    sad.autodiff(lambda x: np.sum(x.astype(np.float64) ** 3), Duplicated(x32, d32))
    assert d32.dtype == F32
    assert np.array_equal(d32, (3 * x32.astype(np.float64) ** 2).astype(F32))


def test_nested_hessian_vector_product_in_float32():
    def f(x):
        return np.sum(np.sin(x) * x ** 2)

    def grad_dot_v(x, v):
        dx = np.zeros_like(x)
        sad.autodiff(f, Duplicated(x, dx))
        return np.sum(dx * v)
    x = _x(5).astype(F32)
    v = np.ones(5, dtype=F32)
    h = np.zeros_like(x)
    sad.autodiff(grad_dot_v, Duplicated(x.copy(), h), Const(v))
    assert h.dtype == F32
    x64 = x.astype(np.float64)
    want = (2 - x64 ** 2) * np.sin(x64) + 4 * x64 * np.cos(x64)
    assert np.allclose(h, want, rtol=1e-5)


def test_custom_rule_mutating_a_float32_array():
    @sad.custom_rule(mutates=("y",))
    def scale_in_place(y, a):
        y *= a

    @scale_in_place.reverse
    def _(config, dret, tape, y, a):
        y.dval *= a.val  # y_new = a * y_old: the adjoint of y_old is a * that of y_new
        return (None, None)

    def f(y):
        scale_in_place(y, F32(3.0))
        return np.sum(y * y)
    y = _x(4).astype(F32)
    dy = np.zeros_like(y)
    _, value = sad.autodiff(f, Duplicated(y.copy(), dy), mode=sad.ReverseWithPrimal)
    assert dy.dtype == F32
    assert np.array_equal(dy, F32(3.0) * (2 * (F32(3.0) * y)))
    assert value == f(y.copy())


def test_c_rule_refuses_float32_naming_the_dtype():
    from shadowad.engines.rules.c_rule_plain import checked

    class Rule:  # checked() reads only the rule's name
        name = "tridiag"
    with pytest.raises(TypeError, match="dtype float32.*float64"):
        checked(Rule, 0, np.ones(3, F32), False)


def test_repeated_calls_keep_memory_flat():
    x = _x(2000).astype(F32)

    def once():
        dx = np.zeros_like(x)
        sad.autodiff(fisher_kpp, Duplicated(x.copy(), dx))
    for _ in range(3):
        once()
    tracemalloc.start()
    once()
    first = tracemalloc.get_traced_memory()[0]
    for _ in range(20):
        once()
    growth = tracemalloc.get_traced_memory()[0] - first
    tracemalloc.stop()
    assert growth < 200_000, growth


def test_threads_float32_and_float64_side_by_side():
    results, errors = {}, []

    def work(k):
        try:
            x = _x(50, seed=k).astype(F32 if k % 2 else np.float64)
            for _ in range(5):
                dx = np.zeros_like(x)
                sad.autodiff(fisher_kpp, Duplicated(x.copy(), dx))
            results[k] = dx
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k, dx in results.items():
        want = np.zeros(50, dtype=dx.dtype)
        sad.autodiff(fisher_kpp, Duplicated(_x(50, seed=k).astype(dx.dtype), want))
        assert np.array_equal(dx, want)


def test_float16_and_mismatched_shadow_are_refused():
    with pytest.raises(TypeError, match="float16"):
        Duplicated(np.ones(3, np.float16), np.zeros(3, np.float16))
    with pytest.raises(TypeError, match="shadow has dtype float64, primal has dtype float32"):
        Duplicated(np.ones(3, F32), np.zeros(3))


@pytest.mark.parametrize("index", [slice(0, 6), (slice(None),), Ellipsis, slice(1, None, 2)],
                         ids=["slice", "tuple", "ellipsis", "strided"])
def test_writes_through_views_of_inactive_float32_memory_reach_it(index):
    """A basic index of an inactive float32 array is a view, as numpy's: a
    write through it changes the array (found by the random programs: the
    view was a copy, so `np.negative(c[0:6], out=c[0:6])` was lost)."""
    rng = np.random.default_rng(1)
    v, c = rng.uniform(-1, 1, 6), rng.uniform(-1, 1, 6).astype(F32)

    def f(v, c):
        np.negative(c[index], out=c[index])
        c[index] *= 2
        v[0:3:2] += 0.5 * c[0:2] * v[0:3:2]
        return np.sum(v * c)
    v1, c1 = v.copy(), c.copy()
    want = f(v1, c1)
    v2, c2 = v.copy(), c.copy()
    dv = np.zeros(6)
    _, value = sad.autodiff(f, Duplicated(v2, dv), Const(c2), mode=sad.ReverseWithPrimal)
    assert value == want
    assert np.array_equal(v2, v1) and np.array_equal(c2, c1)


# --------------------------------------------------------------------------
# found by the outside tester: each in reverse and forward mode

MODES = [sad.Reverse, sad.Forward]


def _both(f, *arrays):
    """f's value and the final arrays in reverse and forward mode, and numpy's."""
    want_arrays = [a.copy() for a in arrays]
    want = f(*want_arrays)
    for mode in MODES:
        runs = [a.copy() for a in arrays]
        anns = [Duplicated(r, np.zeros_like(r) if mode is sad.Reverse else np.ones_like(r))
                for r in runs]
        _, value = sad.autodiff(f, *anns, mode=sad.ReverseWithPrimal if mode is sad.Reverse
                                else sad.ForwardWithPrimal)
        assert np.asarray(value).dtype == np.asarray(want).dtype, (mode, value, want)
        assert np.array_equal(value, want), (mode, value, want)
        for r, w in zip(runs, want_arrays):
            assert r.dtype == w.dtype and r.tobytes() == w.tobytes(), (mode, r, w)


@pytest.mark.parametrize("write", [
    lambda u: u.__setitem__(slice(2, 6), u[1:8:2]),
    lambda u: np.copyto(u[2:6], u[1:8:2]),
    lambda u: u.__setitem__(np.array([1, 1, 0, 0, 0, 0, 0, 0], bool), u[2::-2]),
], ids=["slice", "copyto", "mask"])
def test_overlapping_writes_leave_numpys_float32_values(write):
    _both(lambda u: (write(u), np.sum(u * u))[1], np.arange(8, dtype=F32) + 1)


def test_axpy_on_float32_in_every_mode():
    f = lambda u: (sad.axpy(0.5, u[2:4], u[0:2]), np.sum(u * u))[1]  # noqa: E731
    _both(f, np.array([0.1, 0.7, 1.3, 2.0], F32))
    x = np.array([0.1, 0.7, 1.3, 2.0], F32)
    assert sad.jacobian(lambda u: (sad.axpy(0.5, u[2:4], u[0:2]), u * 1.0)[1], x).dtype == F32


@pytest.mark.parametrize("f", [
    lambda u: np.sum(np.multiply(u, u, dtype=np.float64)),
    lambda u: np.sum(np.sqrt(u, dtype=np.float64)),
], ids=["multiply", "sqrt"])
def test_ufunc_dtype_float64_computes_in_float64(f):
    _both(f, np.array([0.1, 0.7, 1.3], F32))


@pytest.mark.parametrize("reduce", [
    lambda u, y: np.cumsum(u / 3, out=y),
    lambda u, y: np.sum(u / 3, out=y[0:1].reshape(())),
    lambda u, y: np.add.reduce(u / 3, out=y[0:1].reshape(())),
    lambda u, y: np.mean(u, out=y[0:1].reshape(())),
    lambda u, y: np.prod(u, out=y[0:1].reshape(())),
    lambda u, y: np.cumprod(u, out=y),
], ids=["cumsum", "sum", "add.reduce", "mean", "prod", "cumprod"])
def test_reductions_into_a_float64_out_accumulate_in_float64(reduce):
    _both(lambda u, y: (reduce(u, y), np.sum(y))[1], np.arange(1, 7, dtype=F32) / 7, np.zeros(6))


def test_nested_gradients_of_float32_stay_float32():
    x0 = np.array([0.3, -1.2, 0.7], F32)
    p = lambda x: np.sum(np.sin(x) * x * x)  # noqa: E731
    seen = []

    def outer(x):
        g, = sad.autodiff(p, Active(x))
        seen.append(sad.primal(g).dtype)
        return np.sum(g)
    want = outer(x0.copy())
    dx = np.zeros_like(x0)
    _, value = sad.autodiff(outer, Duplicated(x0.copy(), dx), mode=sad.ReverseWithPrimal)
    assert seen == [F32, F32] and type(value) is np.float32 and value == want
    assert sad.jacobian(lambda x: sad.autodiff(p, Active(x))[0], x0.copy()).dtype == F32


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_vector_takes_float32_elements_widened(mode):
    x = np.array([0.1, 0.7, 1.3], F32)

    def f(u, v):
        v.push(u[0])
        v[0] = u[1]
        return v[0] * 3.0 + v[1]
    d = np.zeros_like(x) if mode is sad.Reverse else np.ones_like(x)
    V, dV = sad.Vector([1.0]), sad.Vector([0.0 if mode is sad.Reverse else 1.0])
    r = sad.autodiff(f, Duplicated(x.copy(), d), Duplicated(V, dV), mode=mode)
    if mode is sad.Reverse:
        assert d.tolist() == [1.0, 3.0, 0.0]
    else:
        assert r == pytest.approx(4.0)


def test_check_rule_and_check_forward_take_float32_programs():
    """shadowad.testing's checks compare a float32 program at float32's
    precision (finite differences on float64 copies), and still catch a
    wrong derivative."""
    from shadowad.testing import check_forward, check_rule
    x = np.linspace(0.1, 1, 5).astype(F32)

    def g(u):
        u[1:] += u[:-1] * 0.5
        return np.sum(np.exp(u))
    check_rule(g, Duplicated(x.copy(), np.zeros_like(x)))
    check_forward(g, x.copy())

    @sad.custom_rule
    def wrong(u):
        return u * u

    @wrong.reverse
    def _(config, dret, tape, u):
        u.dval += 3.0 * u.val * dret  # 2 u is right
        return (None,)
    with pytest.raises(AssertionError):
        check_rule(lambda u: np.sum(wrong(u)), Duplicated(x.copy(), np.zeros_like(x)))


@pytest.mark.parametrize("dtype", [F32, np.float64])
def test_batch_reverse_changes_no_shadow_when_a_lane_fails(dtype):
    """Failure atomicity in batch reverse mode: the second lane's sweep fails,
    and the first lane's shadow is as given (it was written lane by lane)."""
    calls = [0]

    @sad.custom_rule
    def fails(x):
        return x * 1.0

    @fails.reverse
    def _(config, dret, tape, x):
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("the second lane's reverse fails")
        x.dval += dret
        return (None,)
    x = np.array([1.0, 2.0, 3.0], dtype)
    d1, d2 = np.zeros(3, dtype), np.full(3, 0.5, dtype)
    with pytest.raises(RuntimeError, match="second lane"):
        sad.autodiff(lambda x: np.sum(fails(x) * x), sad.BatchDuplicated(x, (d1, d2)))
    assert d1.tolist() == [0.0] * 3 and d2.tolist() == [0.5] * 3
    assert x.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("ufunc", [np.add, np.subtract, np.multiply], ids=lambda u: u.__name__)
def test_ufunc_at_with_a_python_float_on_float32_is_numpys(ufunc, mode):
    """numpy's ufunc.at takes a Python number as float64 (computing each
    step in float64, rounding to float32), unlike a ufunc call."""
    x0 = np.random.default_rng(0).standard_normal(300).astype(F32)
    idx = np.repeat(np.arange(300), 3)
    want = x0.copy()
    ufunc.at(want, idx, 1.1)
    x = x0.copy()
    sad.autodiff(lambda a: ufunc.at(a, idx, 1.1), Duplicated(x, np.ones_like(x)), mode=mode)
    assert x.tobytes() == want.tobytes()


def test_quantile_with_a_float32_q_is_float32():
    x = np.array([0.1, 0.7, 0.3, 0.9, 0.5], F32)
    for q in (np.float32(0.3), np.array([0.1, 0.55], F32)):
        _both(lambda a: np.sum(np.quantile(a, q)), x)


def test_nested_jacobian_of_float32_is_float32():
    x = np.array([0.5, -1.0, 2.0], F32)
    f = lambda y: np.sum(np.sin(y) * y)  # noqa: E731
    H = sad.jacobian(lambda y: sad.jacobian(f, y), x)
    assert H.dtype == F32
    H64 = sad.jacobian(lambda y: sad.jacobian(f, y), x.astype(np.float64))
    assert np.abs(H - H64).max() < 1e-5


def test_peak_nbytes_counts_the_float32_lazy_shadows_of_the_sweep():
    """The sweep allocates a float32 temporary's shadow and drops it after the
    record: stats()'s peak still counts the most they held at once, as it
    counts the C slots of float64 (about half of float64's)."""
    def prog(u):
        for _ in range(5):
            u = np.sin(u) * u + u[::-1]
        return np.sum(u * u)
    peaks = {}
    for dt in (np.float64, F32):
        u = np.random.default_rng(0).random(100000).astype(dt)
        _, tape = sad.autodiff_split(prog, Duplicated(u, np.zeros_like(u)))
        before = tape.stats()["peak_nbytes"]
        tape.reverse()
        peaks[dt] = tape.stats()["peak_nbytes"]
        assert peaks[dt] > before + 3 * u.nbytes // 2  # the sweep's shadows are counted
    assert 0.4 < peaks[F32] / peaks[np.float64] < 0.6


@pytest.mark.parametrize("to", [F32, np.float64], ids=["to_float32", "to_float64"])
def test_cast_primitive_check_rule_and_edges_in_every_engine(to):
    """x.astype(to): finite differences, restore, accumulate-once and the
    dot-product test at an ordinary point; at edge values (signed zero, NaN,
    inf, a float64 beyond float32's range, a subnormal) the derivative is 1 in
    every engine, cast to the operand's dtype (the zero-factor convention
    keeps a zero weight's entry at zero)."""
    from shadowad.testing import (check_accumulate_once, check_dot_product, check_gradient,
                                  check_restore)
    frm = np.float64 if to is F32 else F32
    w = np.array([0.5, -2.0, 3.0, 0.0, 1.5, 2.5], to)

    def f(x):
        return np.sum(x.astype(to) * w)
    x = np.array([0.3, -1.2, 2.5, 0.7, -0.1, 1.1], frm)
    arg = Duplicated(x.copy(), np.zeros_like(x))
    check_gradient(f, arg, rtol=1e-3, atol=1e-5)
    check_restore(f, arg)
    check_accumulate_once(f, arg, rtol=1e-6, atol=1e-6)
    check_dot_product(f, arg, rtol=1e-6)  # float32 arithmetic inside: float32's precision
    edges = np.array([-0.0, np.nan, np.inf, 1e40 if frm is np.float64 else 3e38, 1e-45, 2.0],
                     frm)
    want = w.astype(frm)
    rev = np.zeros_like(edges)
    sad.autodiff(f, Duplicated(edges.copy(), rev))
    fwd = np.array([sad.autodiff(f, Duplicated(edges.copy(), np.eye(6, dtype=frm)[i]),
                                 mode=sad.Forward) for i in range(6)])
    seen = {}

    def outer(s):
        g = np.zeros_like(edges)
        sad.autodiff(f, Duplicated(edges.copy() + 0.0 * s, g))
        seen["g"] = np.array(sad.primal(g))
        return s
    sad.gradient(outer, 1.0)
    assert rev.dtype == frm
    for got in (rev, fwd.astype(frm), seen["g"]):
        assert np.array_equal(got, want), got
