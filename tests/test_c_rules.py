"""sad.c_rule: C custom rules (shadowad/rule.h) in every mode, their C
records, their errors, threads, and check_rule on them.

The rules: tests/c_rules/axpy_rule.c (y += a * x**2, with counters and
failures on request) and examples/c_rule/tridiag.c (the Thomas solver, and a
broken variant built with -DTRIDIAG_BROKEN)."""
import threading
import time

import numpy as np
import pytest

import shadowad as sad
from shadowad import (Active, BatchDuplicated, Const, Duplicated, Forward, Reverse,
                      ReverseWithPrimal)
from shadowad.testing import check_rule, same_bits

from c_rules import build

N = 12


@pytest.fixture(scope="module")
def axpy_mod(tmp_path_factory):
    return build.axpy(tmp_path_factory.mktemp("axpy"))


@pytest.fixture(scope="module")
def tri_mod(tmp_path_factory):
    return build.tridiag(tmp_path_factory.mktemp("tridiag"))


def address(ffi, ptr):
    return int(ffi.cast("uintptr_t", ptr))


@pytest.fixture
def axpy(axpy_mod):
    """(a fresh rule, its counters)"""
    ffi, lib = axpy_mod.ffi, axpy_mod.lib
    r = lib.axpy_rule_new(sad.api.c_rule.RULE_ABI, 1)
    user = lib.axpy_rule_user(r)
    return sad.c_rule(address(ffi, r), name="sqaxpy", mutates=(2,)), user


@pytest.fixture
def solve(tri_mod):
    return sad.c_rule(address(tri_mod.ffi, tri_mod.lib.tridiag_rule()), name="tridiag.solve",
                      mutates=(3,))


def system(n=N, seed=0):
    rng = np.random.default_rng(seed)
    a, c = rng.standard_normal(n) * 0.3, rng.standard_normal(n) * 0.3
    b = 2.0 + rng.random(n)
    return a, b, c, rng.standard_normal(n)


def grad(f, *args):
    """Gradients of f at args: arrays as Duplicated (f may write them), floats Active."""
    anns = [Active(a) if type(a) is float else Duplicated(a.copy(), np.zeros_like(a))
            for a in args]
    res = sad.autodiff(f, *anns)
    return [r if type(a) is Active else a.dval for a, r in zip(anns, res)]


def dense(a, b, c):
    n = len(b)
    return (np.eye(n) * b[:, None] + np.eye(n, k=-1) * a[:, None]
            + np.eye(n, k=1) * c[:, None])


# --------------------------------------------------------------------------
# outside autodiff; the struct's checks

def test_plain_call_solves_in_place(solve):
    a, b, c, d = system()
    x = np.linalg.solve(dense(a, b, c), d)
    a0 = a.copy()
    solve(a, b, c, d)
    np.testing.assert_allclose(d, x, rtol=1e-12)
    assert same_bits(a, a0)


def test_plain_call_takes_strided_views_and_floats(axpy):
    rule, _ = axpy
    x = np.arange(24.0).reshape(4, 6)[:2, ::2]      # (2, 3), strided
    y = np.ones((6, 4))
    view = y[::2, :3].T[:2]                         # (2, 3), transposed and strided
    want = y.copy()
    want[::2, :3].T[:2] += 2.0 * x ** 2
    rule(2, x, view)                                # an int: a 0-d float64 Const
    assert same_bits(y, want)


def test_errors_name_rule_and_code(axpy, solve):
    rule, user = axpy
    with pytest.raises(TypeError, match="float64"):
        rule(1.0, np.arange(3), np.zeros(3))
    with pytest.raises(TypeError, match="takes 3"):
        rule(1.0, np.zeros(3))
    with pytest.raises(ValueError, match="shares memory"):
        y = np.zeros(3)
        rule(1.0, y, y)
    with pytest.raises(sad.CRuleError, match="sqaxpy.*primal.*code 7"):
        rule(1.0, np.zeros(3), np.zeros(4))
    a, b, c, d = system()
    b[:] = 0.0
    with pytest.raises(sad.CRuleError, match="code 3"):  # SINGULAR
        solve(a, b, c, d)


def test_struct_checks(axpy_mod):
    ffi, lib = axpy_mod.ffi, axpy_mod.lib
    with pytest.raises(ValueError, match="ABI 99"):
        sad.c_rule(address(ffi, lib.axpy_rule_new(99, 1)), mutates=(2,))
    with pytest.raises(ValueError, match="mutates"):
        sad.c_rule(address(ffi, lib.axpy_rule_new(1, 1)), mutates=(3,))
    with pytest.raises(TypeError, match="PyCapsule"):
        sad.c_rule("nope")
    for bad in (0, -5, 1, 2 ** 64 + 16, 2 ** 70):  # (2**64 + 16 used to wrap and crash)
        with pytest.raises(ValueError, match="not the address of a sad_rule"):
            sad.c_rule(bad, name="bad", mutates=())


def test_capsule(tri_mod):
    import ctypes
    make = ctypes.pythonapi.PyCapsule_New
    make.restype = ctypes.py_object
    make.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    cap = make(address(tri_mod.ffi, tri_mod.lib.tridiag_rule()), b"shadowad.rule", None)
    solve = sad.c_rule(cap, name="cap", mutates=(3,))
    a, b, c, d = system()
    x = np.linalg.solve(dense(a, b, c), d)
    solve(a, b, c, d)
    np.testing.assert_allclose(d, x, rtol=1e-12)


# --------------------------------------------------------------------------
# every mode on one program

def program(solve):
    def f(b, d, s):
        sub = 0.5 * np.ones_like(d) * 0.1
        solve(sub, b, sub, d)
        d *= s
        solve(sub, b, sub, d[::-1])  # a view: strides negative
        return np.sum(d * d)
    return f


def numpy_program(b, d, s):
    n = len(d)
    sub = 0.05 * np.ones(n)
    m = dense(sub, b, sub)
    d = np.linalg.solve(m, d) * s
    d = np.linalg.solve(m, d[::-1])[::-1]
    return np.sum(d * d)


def test_reverse_matches_numpy_and_check_rule(solve):
    _, b, _, d = system()
    f = program(solve)
    gb, gd, gs = grad(f, b, d, 1.3)
    nb, nd, ns = grad(numpy_program, b, d, 1.3)
    np.testing.assert_allclose(gb, nb, rtol=1e-10)
    np.testing.assert_allclose(gd, nd, rtol=1e-10)
    assert abs(gs - ns) <= 1e-10 * abs(ns)
    check_rule(f, Duplicated(b.copy(), np.zeros(N)), Duplicated(d.copy(), np.zeros(N)), 1.3)


def test_modes_agree(solve):
    _, b, _, d = system()
    f = program(solve)
    gb, gd = grad(lambda b, d: f(b, d, 1.3), b, d)
    # ReverseWithPrimal
    db, dd, d1 = np.zeros(N), np.zeros(N), d.copy()
    _, val = sad.autodiff(f, Duplicated(b.copy(), db), Duplicated(d1, dd), Const(1.3),
                          mode=ReverseWithPrimal)
    assert val == f(b.copy(), d.copy(), 1.3)
    assert same_bits(db, gb) and same_bits(dd, gd)
    # restore=True: inputs back bit for bit
    db, dd, d2 = np.zeros(N), np.zeros(N), d.copy()
    sad.autodiff(f, Duplicated(b.copy(), db), Duplicated(d2, dd), Const(1.3), restore=True)
    assert same_bits(d2, d) and same_bits(dd, gd)
    # split mode: the seed scales, and the tape is used once
    db, dd = np.zeros(N), np.zeros(N)
    _, tape = sad.autodiff_split(f, Duplicated(b.copy(), db), Duplicated(d.copy(), dd),
                                 Const(1.3))
    tape.reverse(seed=2.0)
    np.testing.assert_allclose(db, 2.0 * gb, rtol=1e-13)
    np.testing.assert_allclose(dd, 2.0 * gd, rtol=1e-13)
    # forward, one lane and batched, against the gradient
    rng = np.random.default_rng(5)
    vb, vd = rng.standard_normal(N), rng.standard_normal(N)
    t = sad.autodiff(f, Duplicated(b.copy(), vb.copy()), Duplicated(d.copy(), vd.copy()),
                     Const(1.3), mode=Forward)
    assert abs(t - (gb @ vb + gd @ vd)) <= 1e-10 * abs(t)
    lanes = sad.autodiff(f, BatchDuplicated(b.copy(), (vb.copy(), np.zeros(N))),
                         BatchDuplicated(d.copy(), (vd.copy(), np.ones(N))), Const(1.3),
                         mode=Forward)
    assert abs(lanes[0] - t) <= 1e-12 * abs(t)
    assert abs(lanes[1] - gd.sum()) <= 1e-10 * abs(gd).sum()
    # BatchDuplicated reverse
    dbs, dds = (np.zeros(N), np.zeros(N)), (np.zeros(N), np.zeros(N))
    sad.autodiff(f, BatchDuplicated(b.copy(), dbs), BatchDuplicated(d.copy(), dds), Const(1.3))
    for k in range(2):
        np.testing.assert_allclose(dbs[k], gb, rtol=1e-13)


def test_reverse_lanes_run_the_rule_reverse_once_each(axpy):
    """BatchDuplicated reverse sweeps one tape once per lane: the rule's
    reverse runs on the same tape again, between redo and undo."""
    rule, user = axpy

    def f(x, y):
        rule(0.5, x, y)
        y *= y
        rule(0.5, x, y)
        return np.sum(y)
    x, y = np.linspace(0.5, 1.5, 5), np.linspace(-1, 1, 5)
    want = grad(f, x, y)
    start = user.reverses
    dx, dy = (np.zeros(5), np.zeros(5), np.zeros(5)), (np.zeros(5), np.zeros(5), np.zeros(5))
    y3 = y.copy()
    sad.autodiff(f, BatchDuplicated(x.copy(), dx), BatchDuplicated(y3, dy))
    assert user.reverses - start == 6
    y1 = y.copy()
    f(x.copy(), y1)
    assert same_bits(y3, y1)
    for k in range(3):
        assert same_bits(dx[k], want[0]) and same_bits(dy[k], want[1])


def test_active_scalar_and_array(axpy):
    rule, user = axpy

    def f(a, x, y):
        rule(a, x, y)
        rule(a * 2.0, x[::2], y[1::2])
        return np.sum(y * y)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(8), rng.standard_normal(8)
    check_rule(f, 0.7, Duplicated(x.copy(), np.zeros(8)), Duplicated(y.copy(), np.zeros(8)))

    def g(a, x, y):
        y = y * 1.0
        rule(a, x, y)
        return np.sum(y * y)
    ga, gx = sad.autodiff(g, Active(0.7), Active(x.copy()), Const(y.copy()))[:2]

    def h(a, x, y):
        return np.sum((y + a * x * x) ** 2)
    ha, hx = sad.autodiff(h, Active(0.7), Active(x.copy()), Const(y.copy()))[:2]
    np.testing.assert_allclose(ga, ha, rtol=1e-12)
    np.testing.assert_allclose(gx, hx, rtol=1e-12)


def test_const_memory_promoted(axpy):
    """y is inactive memory (a Const argument, or allocated from a traced
    value) that receives active values from the rule: it gets a shadow."""
    rule, _ = axpy

    def f(x, y):
        rule(1.5, x, y)
        return np.sum(y * y)
    x, y = np.arange(1.0, 5.0), np.ones(4)
    want = 2 * (1 + 1.5 * x * x) * 3.0 * x
    gx, = sad.gradient(lambda x: f(x, np.zeros_like(x) + 1.0), x.copy())
    np.testing.assert_allclose(gx, want, rtol=1e-13)
    dx, y2 = np.zeros(4), y.copy()
    sad.autodiff(f, Duplicated(x.copy(), dx), Const(y2))
    np.testing.assert_allclose(dx, want, rtol=1e-13)
    assert same_bits(y2, 1 + 1.5 * x * x)


def test_failure_atomicity(axpy, solve):
    rule, user = axpy
    x, y = np.arange(4.0), np.ones(4)

    def f(x, y):
        rule(1.0, x, y)
        y *= 2.0
        raise KeyError("late")
    y0 = y.copy()
    with pytest.raises(KeyError):
        sad.autodiff(f, Duplicated(x, np.zeros(4)), Duplicated(y, np.zeros(4)))
    assert same_bits(y, y0)
    # the augmented primal fails after writing: y back, error names rule and code
    user.fail_augmented = 5

    def g(x, y):
        y *= 3.0
        rule(1.0, x, y)
        return np.sum(y)
    with pytest.raises(sad.CRuleError, match="sqaxpy.*augmented primal.*code 5"):
        sad.autodiff(g, Duplicated(x, np.zeros(4)), Duplicated(y, np.zeros(4)))
    assert same_bits(y, y0)
    user.fail_augmented = 0
    # the reverse fails in the sweep: primals restored, error names rule and code
    user.fail_reverse = 9
    dx, dy = np.full(4, 0.5), np.full(4, 0.25)
    with pytest.raises(sad.CRuleError, match="sqaxpy.*reverse.*code 9"):
        sad.autodiff(g, Duplicated(x, dx), Duplicated(y, dy))
    assert same_bits(y, y0)
    # and the shadows as they were (the records after the rule had added into them)
    assert same_bits(dx, np.full(4, 0.5)) and same_bits(dy, np.full(4, 0.25))
    user.fail_reverse = 0
    assert user.tapes == user.frees
    # forward: the tangent fails, y back
    user.fail_tangent = 4
    with pytest.raises(sad.CRuleError, match="tangent.*code 4"):
        sad.autodiff(g, Duplicated(x, np.ones(4)), Duplicated(y, np.zeros(4)), mode=Forward)
    assert same_bits(y, y0)


def test_no_reverse_or_tangent(axpy_mod):
    ffi, lib = axpy_mod.ffi, axpy_mod.lib
    rule = sad.c_rule(address(ffi, lib.axpy_rule_new(1, 0)), name="notan", mutates=(2,))
    with pytest.raises(NotImplementedError, match="notan has no tangent"):
        sad.autodiff(lambda x, y: rule(1.0, x, y), Duplicated(np.ones(2), np.ones(2)),
                     Duplicated(np.ones(2), np.zeros(2)), mode=Forward)


def test_aliasing_refused_inside_f(axpy):
    rule, _ = axpy

    def f(x):
        rule(1.0, x, x)
        return np.sum(x)
    with pytest.raises(ValueError, match="shares memory"):
        sad.gradient(f, np.ones(3))


def test_plain_array_mutated_inside_f_refused(axpy):
    rule, _ = axpy

    def f(x):
        y = np.ones(3)
        rule(1.0, x, y)
        return np.sum(y)
    with pytest.raises(TypeError, match="zeros_like"):
        sad.gradient(f, np.ones(3))


# --------------------------------------------------------------------------
# the C records: no Python in the tape, memory flat, free_tape once each

def test_all_c_records_and_free_tape_counted(axpy):
    rule, user = axpy
    tapes, frees = user.tapes, user.frees

    def f(x, y):
        for _ in range(50):
            rule(0.01, x, y)
            y *= 0.5
            y += x
        return np.sum(y * y)
    x = np.linspace(0, 1, 100)
    _, tape = sad.autodiff_split(f, Duplicated(x.copy(), np.zeros(100)),
                                 Duplicated(np.ones(100), np.zeros(100)))
    stats = tape.stats()
    assert stats["python_records"] == 0
    assert stats["records"] >= 150
    assert stats["saved_bytes"] >= 50 * (64 + 800)  # the rule's tapes and y's bytes
    assert user.tapes - tapes == 50 and user.frees == frees
    tape.reverse(seed=1.0)
    assert user.frees - frees == 50  # each once, when the tape is freed


def test_many_calls_memory_flat(axpy):
    rule, user = axpy
    import resource

    def f(x, y):
        rule(0.5, x, y)
        return np.sum(y)
    x = np.ones(1000)
    rss = []
    for k in range(300):
        sad.autodiff(f, Duplicated(x, np.zeros(1000)), Duplicated(np.ones(1000), np.zeros(1000)))
        if k in (50, 299):
            rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    assert user.tapes == user.frees == 300
    assert rss[1] - rss[0] < 20_000  # KiB


def test_sweep_releases_the_gil(axpy):
    rule, user = axpy
    user.sleep = 0.3
    ticks = []
    stop = threading.Event()

    def other():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.005)

    def f(x, y):
        rule(1.0, x, y)
        return np.sum(y)
    _, tape = sad.autodiff_split(f, Duplicated(np.ones(3), np.zeros(3)),
                                 Duplicated(np.ones(3), np.zeros(3)))
    t = threading.Thread(target=other)
    t.start()
    try:
        time.sleep(0.02)
        t0 = time.perf_counter()
        tape.reverse(seed=1.0)
        t1 = time.perf_counter()
    finally:
        stop.set()
        t.join()
        user.sleep = 0.0
    assert t1 - t0 >= 0.3
    inside = [s for s in ticks if t0 < s < t1]
    assert len(inside) >= 10, inside


def test_threads_share_a_rule(solve):
    a, b, c, d = system()
    f = program(solve)
    want = grad(f, b, d, 1.3)
    out = [None] * 4

    def work(k):
        for _ in range(20):
            out[k] = grad(f, b, d, 1.3)
    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for o in out:
        assert same_bits(o[0], want[0]) and same_bits(o[1], want[1])


# --------------------------------------------------------------------------
# nested differentiation

def test_nested_rule_at_the_outer_level_runs(solve):
    """A nested differentiation of numpy code next to the C rule, which the
    enclosing differentiation (the C engine) differentiates: it runs."""
    _, b, _, d = system()
    sub = 0.1 * np.ones(N)

    def f(b, d):
        solve(sub, b, sub, d)
        g, = sad.gradient(lambda u: np.sum(u * u * u), d)  # 3 d**2, nested
        return np.sum(g * d)                               # 3 sum(d**3)
    gb, gd = grad(f, b, d)

    def f_numpy(b, d):
        x = np.linalg.solve(dense(sub, b, sub), d)
        return 3.0 * np.sum(x ** 3)
    nb, nd = grad(f_numpy, b, d)
    np.testing.assert_allclose(gb, nb, rtol=1e-10)
    np.testing.assert_allclose(gd, nd, rtol=1e-10)


MODES = [Forward, Reverse]


def thomas_numpy(a, b, c, d):
    """The tridiagonal solve in numpy, d overwritten: the rule's nested=."""
    d[...] = np.linalg.solve(dense(a, b, c), d)


def _weighted(solve_fn, b, sub):
    """sum(p * x * x) for x = A(b)^-1 d0, A(b)'s diagonal b: differentiated
    in d0 inside, in the weights p outside."""
    def inner(d0, p):
        d = np.zeros_like(d0) + d0  # memory of the nested differentiation
        solve_fn(sub, b, sub, d)
        d *= 1.5
        solve_fn(sub, b, sub, d[::-1])  # a view, strides negative
        return np.sum(p * d * d)
    return inner


@pytest.mark.parametrize("outer", MODES)
@pytest.mark.parametrize("inner_mode", MODES)
def test_nested_rule_on_values_the_outer_differentiation_does_not_reach(solve, outer,
                                                                        inner_mode):
    """The rule's arguments are plain one level down, the weights are not: the
    inner gradient is the rule's C reverse applied to an adjoint that depends
    on the weights, which the outer differentiation differentiates with the
    rule's C tangent and reverse again (no Python definition needed)."""
    _, b, _, d0 = system()
    sub = 0.1 * np.ones(N)
    w = 1.0 + np.arange(N) / N

    def grad_of(inner):
        return lambda p: sad.jacobian(lambda d: inner(d, p), d0.copy(), mode=inner_mode)
    got = sad.jacobian(grad_of(_weighted(solve, b, sub)), w.copy(), mode=outer)
    want = sad.jacobian(grad_of(_weighted(thomas_numpy, b, sub)), w.copy(), mode=outer)
    assert got.shape == (N, N)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    assert np.abs(got).max() > 0.1


@pytest.mark.parametrize("outer", MODES)
def test_nested_rule_three_levels(solve, outer):
    """A Hessian (two enclosing levels) of a function of an inner gradient
    through the rule: the linear C parts are differentiated twice more."""
    _, b, _, d0 = system()
    sub = 0.1 * np.ones(N)
    w = 1.0 + np.arange(N) / N

    def f_of(inner):
        def f(p):
            g = sad.gradient(lambda d: inner(d, p), d0.copy())[0]
            return np.sum(g * g * p)
        return f

    def hess(f):
        return sad.jacobian(lambda p: sad.jacobian(f, p, mode=outer), w.copy(), mode=outer)
    got = hess(f_of(_weighted(solve, b, sub)))
    want = hess(f_of(_weighted(thomas_numpy, b, sub)))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got, got.T, rtol=1e-9, atol=1e-12)


def _stepper(solve_fn, sub):
    def inner(b):  # the outer differentiation reaches the rule's matrix
        d = np.zeros_like(b) + 1.0
        for _ in range(2):
            solve_fn(sub, b, sub, d)
            d *= 1.01
        return np.sum(d * d)
    return inner


@pytest.mark.parametrize("outer", MODES)
@pytest.mark.parametrize("inner_mode", MODES)
def test_nested_rule_with_a_python_definition(tri_mod, outer, inner_mode):
    """Where the outer differentiation reaches the rule's arguments, the
    rule's nested= definition is differentiated: the Hessian matches the
    numpy program's; without it the call is a clear TypeError, with the
    arguments as they were."""
    _, b, _, _ = system()
    sub = 0.1 * np.ones(N)
    ptr = address(tri_mod.ffi, tri_mod.lib.tridiag_rule())
    with_def = sad.c_rule(ptr, name="tridiag.solve", mutates=(3,), nested=thomas_numpy)
    without = sad.c_rule(ptr, name="tridiag.solve", mutates=(3,))

    def hess(solve_fn):
        inner = _stepper(solve_fn, sub)
        return sad.jacobian(lambda x: sad.jacobian(inner, x, mode=inner_mode), b.copy(),
                            mode=outer)
    np.testing.assert_allclose(hess(with_def), hess(thomas_numpy), rtol=1e-10, atol=1e-12)
    b0 = b.copy()
    with pytest.raises(TypeError, match="nested="):
        sad.jacobian(lambda x: sad.jacobian(_stepper(without, sub), x, mode=inner_mode), b,
                     mode=outer)
    assert same_bits(b, b0)


def test_nested_rule_gradient_of_plain_values_uses_c(axpy):
    """An active scalar and a read-only array of the rule, plain one level
    down, under both enclosing modes: the rule's reverse ran (its counter)."""
    rule, user = axpy
    x0 = np.linspace(-1.0, 1.0, 5)

    def inner(a, y0, p):
        y = np.zeros_like(y0) + y0
        rule(a, x0, y)
        return np.sum(p * y * y)

    def outer(p):
        ga, gy = sad.gradient(lambda a, y: inner(a, y, p), 0.7, np.ones(5))
        return ga + np.sum(gy * p)
    assert _axpy_nested(rule, x0) is not None
    for mode in MODES:
        got = sad.jacobian(outer, np.ones(5) * 0.3, mode=mode)
        # ga = sum(p * 2 y x^2), gy = 2 p y, y = 1 + a x^2
        y = 1.0 + 0.7 * x0 ** 2
        want = 2.0 * y * x0 ** 2 + 4.0 * 0.3 * y
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert user.reverses > 0


def _axpy_nested(rule, x0):
    def inner(a, y0, p):
        y = np.zeros_like(y0) + y0
        rule(a, x0, y)
        return np.sum(p * y * y)

    def outer(p):
        ga, gy = sad.gradient(lambda a, y: inner(a, y, p), 0.7, np.ones(len(x0)))
        return ga + np.sum(gy * p)
    return outer


@pytest.mark.parametrize("mode", MODES)
def test_nested_rule_reads_plain_values_as_they_were_at_the_call(axpy, mode):
    """A plain array the rule read, changed after the call and before the
    enclosing sweep: the derivatives use its value at the call."""
    rule, user = axpy
    x0 = np.linspace(-1.0, 1.0, 5)
    xs = x0.copy()

    def inner(a, y0, p):
        y = np.zeros_like(y0) + y0
        rule(a, xs, y)
        xs[...] = 100.0  # untraced change after the call
        return np.sum(p * y * y)

    def outer(p):
        xs[...] = x0
        ga, gy = sad.gradient(lambda a, y: inner(a, y, p), 0.7, np.ones(5))
        return ga + np.sum(gy * p)
    got = sad.jacobian(outer, np.ones(5) * 0.3, mode=mode)
    want = sad.jacobian(_axpy_nested(rule, x0), np.ones(5) * 0.3, mode=mode)
    assert same_bits(got, want)
    assert user.tapes == user.frees


@pytest.mark.parametrize("mode", MODES)
def test_nested_rule_failure_leaves_arguments(axpy, mode):
    """A part of the rule failing inside a nested differentiation (the primal
    one level down, or the reverse an enclosing sweep runs): a CRuleError
    naming rule, part and code, and the outer arguments as they were."""
    rule, user = axpy
    x0 = np.linspace(-1.0, 1.0, 5)
    p = np.ones(5) * 0.3
    p0 = p.copy()
    for field, part in (("fail_augmented", "augmented primal"), ("fail_reverse", "reverse")):
        setattr(user, field, 6)
        with pytest.raises(sad.CRuleError, match=f"sqaxpy.*{part}.*code 6"):
            sad.jacobian(_axpy_nested(rule, x0), p, mode=mode)
        setattr(user, field, 0)
        assert same_bits(p, p0)
    assert user.tapes == user.frees


def test_nested_rule_without_a_part(axpy_mod):
    """The transpose of the rule's reverse is its tangent: a rule without one
    says which part a nested differentiation needs."""
    ffi, lib = axpy_mod.ffi, axpy_mod.lib
    notan = sad.c_rule(address(ffi, lib.axpy_rule_new(1, 0)), name="notan", mutates=(2,))
    with pytest.raises(NotImplementedError, match="notan has no tangent.*nested"):
        sad.jacobian(_axpy_nested(notan, np.ones(3)), np.ones(3), mode=Reverse)
    with pytest.raises(TypeError, match=r"nested=\.\.\.\) takes a function"):
        sad.c_rule(address(ffi, lib.axpy_rule_new(1, 0)), name="x", nested=3)


def test_nested_rule_aliasing_refused(axpy):
    """As at first order: a mutated argument sharing memory with another
    argument (views of one buffer of the nested differentiation) is refused;
    disjoint views of one buffer are fine."""
    rule, _ = axpy

    def inner(y0, overlap):
        y = np.zeros_like(y0) + y0
        if overlap:
            rule(0.5, y[1:4], y[:3])
        else:
            rule(0.5, y[3:], y[:3])
        return np.sum(y * y)
    for overlap in (True, False):
        def outer(p):
            return np.sum(sad.gradient(lambda y: inner(y, overlap), np.ones(6))[0] * p)
        if overlap:
            with pytest.raises(ValueError, match="argument 2, which the rule overwrites, "
                                                 "shares memory with argument 1"):
                sad.jacobian(outer, np.ones(6))
        else:
            y = np.ones(6)
            want = sad.gradient(lambda y: inner(y, False), y.copy())[0]
            np.testing.assert_allclose(sad.jacobian(outer, np.ones(6)), want, rtol=1e-14)


def test_nested_rule_tangent_failing_in_the_outer_sweep_leaves_shadows(axpy):
    """The rule's tangent runs in the enclosing sweep (the transpose of the
    inner reverse): when it fails, the outer arguments' primals and shadows
    are as they were before autodiff."""
    rule, user = axpy
    outer = _axpy_nested(rule, np.linspace(-1.0, 1.0, 5))
    p, dp = np.full(5, 0.3), np.full(5, 2.0)
    user.fail_tangent = 6
    try:
        with pytest.raises(sad.CRuleError, match="sqaxpy.*tangent.*code 6"):
            sad.autodiff(outer, Duplicated(p, dp))
    finally:
        user.fail_tangent = 0
    assert same_bits(p, np.full(5, 0.3)) and same_bits(dp, np.full(5, 2.0))


def test_nested_rule_memory_flat(axpy):
    """Each nested call makes the rule's linear parts anew: nothing of them
    outlives the call."""
    import gc
    import tracemalloc
    rule, user = axpy
    outer = _axpy_nested(rule, np.linspace(-1.0, 1.0, 2000))
    p = np.full(2000, 0.3)
    for _ in range(3):
        sad.gradient(outer, p.copy())
    gc.collect()
    tracemalloc.start()
    try:
        sizes = []
        for _ in range(4):
            for _ in range(10):
                sad.gradient(outer, p.copy())
            gc.collect()
            sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert sizes[-1] - sizes[0] < 16000 * 10 / 4, sizes  # well under one argument per call
    assert user.tapes == user.frees


def test_nested_rule_definition_checked(tri_mod):
    """A nested= definition that does not do what the C primal does, or that
    returns a value, is refused the first time it would stand in."""
    _, b, _, _ = system()
    sub = 0.1 * np.ones(N)
    ptr = address(tri_mod.ffi, tri_mod.lib.tridiag_rule())

    def twice(a, b, c, d):
        thomas_numpy(a, b, c, d)
        d *= 2.0

    def returns(a, b, c, d):
        return np.linalg.solve(dense(a, b, c), d)
    for wrong, err, match in ((twice, ValueError, "does not do what the C primal does"),
                              (returns, TypeError, "returned a value")):
        rule = sad.c_rule(ptr, name="tridiag.solve", mutates=(3,), nested=wrong)
        with pytest.raises(err, match=match):
            sad.jacobian(lambda x: sad.jacobian(_stepper(rule, sub), x), b.copy())


def test_nested_rule_mutating_a_scalar_or_enclosing_memory_refused(axpy):
    rule, _ = axpy

    def scalar_target(s, p):
        y = np.zeros_like(s) + s  # a traced scalar, not memory
        rule(0.5, 2.0, y)
        return y * y * p
    with pytest.raises(TypeError, match="must be a float64 array the rule can write, got a "
                                        "scalar"):
        sad.jacobian(lambda p: sad.gradient(lambda s: scalar_target(s, p), 0.3)[0],
                     np.ones(1))

    def outer(p):
        y = np.zeros_like(p) + 1.0  # memory of the enclosing differentiation

        def inner(x):
            rule(0.5, x, y)
            return np.sum(x)
        return sad.gradient(inner, np.ones(3))[0].sum() + np.sum(y)
    with pytest.raises(TypeError, match="enclosing"):
        sad.gradient(outer, np.ones(3))


def test_nested_rule_on_plain_memory_refused(solve):
    _, b, _, d = system()
    sub = 0.1 * np.ones(N)

    def inner(b):
        dd = d.copy()  # plain memory: the derivative of what the rule writes would be lost
        solve(sub, b, sub, dd)
        return np.sum(dd)
    with pytest.raises(TypeError, match="np.zeros_like"):
        sad.jacobian(lambda x: sad.gradient(inner, x)[0], b.copy())


# --------------------------------------------------------------------------
# check_rule on C rules

def _check(solve):
    a, b, c, d = system()

    def f(b, d):
        solve(a, b, c, d)
        d *= 1.5
        solve(a, b, c, d)
        return np.sum(d * d)
    check_rule(f, Duplicated(b.copy(), np.zeros(N)), Duplicated(d.copy(), np.zeros(N)))


def test_check_rule_passes_tridiag(solve):
    _check(solve)


def test_check_rule_catches_broken_c_rule(tmp_path):
    mod = build.tridiag(tmp_path, broken=True)
    broken = sad.c_rule(address(mod.ffi, mod.lib.tridiag_rule()), name="broken",
                        mutates=(3,))
    with pytest.raises(AssertionError):
        _check(broken)


def test_check_rule_catches_an_undeclared_write(axpy_mod):
    """The rule writes y, but mutates does not say so: nothing saves y's bytes."""
    ffi, lib = axpy_mod.ffi, axpy_mod.lib
    rule = sad.c_rule(address(ffi, lib.axpy_rule_new(1, 1)), name="undeclared")

    def f(x, y):
        rule(0.5, x, y)
        return np.sum(y * y)
    with pytest.raises(AssertionError):
        check_rule(f, Duplicated(np.linspace(1, 2, 4), np.zeros(4)),
                   Duplicated(np.ones(4), np.zeros(4)))


def test_batched_forward_with_an_active_scalar(axpy):
    rule, _ = axpy

    def f(a, x, y):
        rule(a, x, y)
        return np.sum(y * y)
    x, y = np.linspace(1, 2, 3), np.ones(3)
    t = sad.autodiff(f, BatchDuplicated(0.5, (1.0, 0.0)),
                     BatchDuplicated(x.copy(), (np.zeros(3), np.ones(3))), Const(y.copy()),
                     mode=Forward)
    yy = 1 + 0.5 * x * x
    np.testing.assert_allclose(t, [np.sum(2 * yy * x * x), np.sum(2 * yy * x)], rtol=1e-14)
