"""Fused reverse sweeps (csrc/core/fuse.c): runs of elementwise records over the
same large arrays are swept block by block.  The gradients and the restored
primals must equal the record-by-record sweep's bit for bit, and runs must
stop where records share memory in a way that would reorder what an element
sees."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import shadowad as sad
from shadowad import Active, Const, Duplicated
from shadowad.testing import (check_accumulate_once, check_dot_product, check_fused_sweep,
    check_restore, same_bits)

N = 20_011  # several blocks of 2048, the last one partial
rng = np.random.default_rng(11)


def positive(n=N):
    return rng.random(n) + 0.5


def assert_same_as_unfused(f, *args):
    """The fused sweep leaves the record-by-record sweep's bits; returns how
    many records it took in fused runs."""
    return check_fused_sweep(f, *args)


def check_all(f, *args, fused=True):
    n = assert_same_as_unfused(f, *args)
    check_dot_product(f, *args)
    check_restore(f, *args)
    check_accumulate_once(f, *args)
    assert (n >= 2) if fused else (n == 0)
    return n


def loglike(X, data):
    return np.sum(-np.log(X) - data / X)


def test_loglike_chain_is_fused_and_exact():
    X, data = positive(), positive()
    n = check_all(loglike, Active(X), Const(data))
    assert n >= 4  # log, neg, div, sub: every temporary's adjoint stays in a block
    g, = sad.autodiff(loglike, Active(X), Const(data))[:1]
    np.testing.assert_allclose(g, -1 / X + data / X**2, rtol=1e-13)


def test_nonlinear_chain_with_scalars_and_constants():
    x, y = positive(), positive()

    def f(x, y, a):
        t = np.exp(0.1 * x) * y + a * np.sqrt(x)     # a traced scalar broadcast
        u = np.tanh(t) / (1.0 + y * y) - np.sin(x) ** 2
        return np.sum(u * u) + a * a

    check_all(f, Duplicated(x, np.zeros(N)), Duplicated(y, np.zeros(N)), Active(0.7))


def test_in_place_updates_inside_a_run():
    x = positive()

    def f(x, u):
        u *= np.log(x)            # overwrites u: its bytes are restored block by block
        u += 2.0 * x
        v = np.exp(-u) * x
        return np.sum(v) + np.sum(u * x)

    check_all(f, Duplicated(x, np.zeros(N)), Duplicated(positive(), np.zeros(N)))


def test_shifted_views_fuse_in_the_order_that_keeps_the_bits():
    # u[2:], u[1:-1] and u[:-2] share u's adjoint at different elements.  A
    # record may join a run whose earlier (already swept) records touch the
    # same memory further to the right: every element still sees the adds in
    # sweep order (csrc/core/fuse.c admit).  The other way round the run breaks.
    m = N

    def heat(u, r, steps):
        for _ in range(steps):
            u[1:-1] += r * (u[2:] - 2 * u[1:-1] + u[:-2])
        return np.sum(u * u)

    def heat_mirrored(u, r, steps):
        for _ in range(steps):
            u[1:-1] += r * (u[:-2] - 2 * u[1:-1] + u[2:])
        return np.sum(u * u)

    n = check_all(heat, Duplicated(positive(m), np.zeros(m)), 0.25, 3)
    assert n == 3 * 5 + 2  # every record (the steps, u * u and its sum), in runs
    check_all(heat_mirrored, Duplicated(positive(m), np.zeros(m)), 0.25, 3)


def sine_chain(x):
    t = x
    for k in range(14):
        t = np.sin(t) * (1.0 + 0.01 * k)
    return np.sum(t * x)


def test_long_chains_share_scratch_blocks():
    """Temporaries whose adjoints are not live at the same time share one
    block of scratch (csrc/core/fuse.c share_scratch): a 30-record run."""
    x = positive()
    assert check_all(sine_chain, Duplicated(x, np.zeros(N))) >= 28


def test_small_arrays_are_not_fused():
    x = positive(1000)
    check_all(loglike, Active(x), Const(positive(1000)), fused=False)


def test_restore_true_and_batches():
    X, data = positive(), positive()
    u = positive()

    def f(X, u, data):
        u *= X
        return np.sum(np.log(u) - data / X)

    for restore in (False, True):
        args1 = [Duplicated(X.copy(), np.zeros(N)), Duplicated(u.copy(), np.zeros(N)), Const(data)]
        sad.autodiff(f, *args1, restore=restore)
        assert same_bits(args1[0].val, X)
        assert same_bits(args1[1].val, u if restore else u * X)
        np.testing.assert_allclose(args1[0].dval, u / (u * X) * 1 + data / X**2, rtol=1e-12)
    # one tape swept once per lane (redo in between): each lane as its own call
    seeds = (rng.standard_normal(N), rng.standard_normal(N))
    gx, _, _ = sad.autodiff(f, Active(X.copy()),
                            sad.BatchDuplicated(u.copy(), tuple(s.copy() for s in seeds)),
                            Const(data))
    for lane, seed in enumerate(seeds):
        alone = sad.autodiff(f, Active(X.copy()), Duplicated(u.copy(), seed.copy()),
                             Const(data))
        assert same_bits(gx[lane], alone[0])


_OPS = [
    lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / (1.5 + b * b),
    lambda a, b: np.exp(-a * a) + b, lambda a, b: np.log(1.0 + a * a) * b,
    lambda a, b: np.sqrt(1.0 + a * a) - 0.5 * b, lambda a, b: np.maximum(a, b),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_OPS) - 1), st.integers(0, 9), st.integers(0, 9),
                          st.booleans()), min_size=1, max_size=8))
def test_random_chains_equal_the_unfused_sweep(dtype, program):
    """Random elementwise programs on large arrays, some steps in place, of
    float64 and of float32 arrays (the kernels' float instance)."""
    x, y = rng.standard_normal(9000).astype(dtype), rng.standard_normal(9000).astype(dtype)

    def f(x, y):
        vals = [x, y]
        for op, i, j, in_place in program:
            a, b = vals[i % len(vals)], vals[j % len(vals)]
            if in_place:
                y += _OPS[op](a, b) * 0.25
                vals.append(y)
            else:
                vals.append(_OPS[op](a, b))
        return np.sum(vals[-1] * vals[-1]) + np.sum(x * y)

    assert_same_as_unfused(f, Duplicated(x, np.zeros_like(x)), Duplicated(y, np.zeros_like(y)))


def test_sums_of_lazy_temporaries_and_their_views():
    # a sum leaves a large temporary's shadow lazy: the sweep stores into it,
    # or (fused with its producer) never allocates it; views sum a part
    x = positive()

    def f(x):
        t = np.exp(0.5 * x)
        u = x * x
        return np.sum(t) + np.sum(u[::3]) + np.sum(u[5:N - 7]) + np.sum(np.sqrt(t))

    check_all(f, Duplicated(x, np.zeros(N)))
    g = sad.autodiff(f, Active(x))[0]
    want = 0.5 * np.exp(0.5 * x) + 0.25 * np.exp(0.25 * x)
    want[::3] += 2 * x[::3]
    want[5:N - 7] += 2 * x[5:N - 7]
    np.testing.assert_allclose(g, want, rtol=1e-13)


_SHIFTS = {-2: slice(0, -4), -1: slice(1, -3), 0: slice(2, -2), 1: slice(3, -1), 2: slice(4, None)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(_SHIFTS)), st.sampled_from(sorted(_SHIFTS)),
                          st.sampled_from(sorted(_SHIFTS)), st.integers(0, len(_OPS) - 1),
                          st.booleans()), min_size=1, max_size=6))
def test_random_stencils_equal_the_unfused_sweep(dtype, program):
    """Stencil updates through views of one array shifted by -2..2, linear and
    not, in place and out of place: the fused sweep gives the same bits."""
    m = 9000

    def f(u, w):
        for sa, sb, sd, op, in_place in program:
            a, b, d = u[_SHIFTS[sa]], w[_SHIFTS[sb]], u[_SHIFTS[sd]]
            if in_place:
                d += 0.25 * _OPS[op](a, b)
            else:
                w[_SHIFTS[sd]] = _OPS[op](a, b) * 0.5 + d
        return np.sum(u * u) + np.sum(w * u)

    u, w = rng.standard_normal(m).astype(dtype), rng.standard_normal(m).astype(dtype)
    assert_same_as_unfused(f, Duplicated(u, np.zeros_like(u)), Duplicated(w, np.zeros_like(w)))


def test_float32_runs_fuse_and_keep_the_bits():
    """Runs of float32 records fuse as float64 ones do (the template's float
    instance): the same chains and stencils, the same bits as record by
    record.  (A float32 sum is a Python record: it ends a run.)"""
    X, data = positive().astype(np.float32), positive().astype(np.float32)
    assert check_all(loglike, Active(X), Const(data)) >= 4

    def heat(u, r, steps):
        for _ in range(steps):
            u[1:-1] += r * (u[2:] - 2 * u[1:-1] + u[:-2])
        return np.sum(u * u)

    u = positive().astype(np.float32)
    # every step's records, in runs; u * u alone (the sum after it is Python's)
    assert check_all(heat, Duplicated(u, np.zeros_like(u)), 0.25, 3) == 3 * 5
    x = positive().astype(np.float32)
    assert check_all(sine_chain, Duplicated(x, np.zeros_like(x))) >= 28


def test_a_run_is_of_one_float_type():
    """Interleaved float64 and float32 records: each run holds records of one
    type (the float32 sweep reads floats), and the bits are the record-by-
    record sweep's."""
    x, y = positive(), positive().astype(np.float32)

    def f(x, y):
        t = np.exp(0.5 * x) * 2.0
        u = np.sin(y) * 3.0
        v = np.log(x) + t
        w = np.sqrt(y) - u
        return np.sum(v * t) + np.sum(w * u)

    assert check_all(f, Duplicated(x, np.zeros_like(x)), Duplicated(y, np.zeros_like(y))) >= 4
