"""The tape: autodiff_split, record counts ("constants cost nothing"), the
bytes it holds ("save only what is overwritten"), seeds, single use, primal
effects after the split and after the sweep, restore, ReverseWithPrimal."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, ReverseWithPrimal, autodiff, autodiff_split
from shadowad.testing import same_bits


def dup(a):
    a = np.asarray(a, dtype=float)
    return Duplicated(a, np.zeros_like(a))


def records(f, *args):
    _, tape = autodiff_split(f, *args)
    n = len(tape)
    tape.reverse()
    return n


# --------------------------------------------------------------------------
# autodiff_split

def test_split_returns_result_and_tape():
    x = np.array([2.0, 3.0])

    def f(x):
        return x[0] * x[1]
    res, tape = autodiff_split(f, dup(x))
    assert type(res) is float and res == 6.0
    assert len(tape) == 3  # two loads and a product
    assert tape.nbytes > 0


def test_split_with_none_result():
    def f(x, y):
        y[0] = x[0] * x[1]
    res, tape = autodiff_split(f, dup([2.0, 3.0]), dup([0.0]))
    assert res is None
    assert len(tape) == 4  # two loads, a product, a store


@pytest.mark.parametrize("k", [0, 1, 5, 50])
def test_k_scalar_ops_make_k_records(k):
    def f(a):
        t = a
        for _ in range(k):
            t = t * 1.01
        return t
    assert records(f, Active(2.0)) == k

    def g(x):
        t = x[0]            # one load
        for i in range(k):
            t = t + x[1]    # a load and a sum each
        return t
    assert records(g, dup([1.0, 2.0])) == 1 + 2 * k


def test_constants_cost_nothing():
    """Operations whose inputs are all inactive are not recorded."""
    def f(x, c, k):
        t = c * 2.0 + np.exp(c)           # Const array arithmetic
        u = np.sin(t) / (1.0 + c * c)
        s = c[0] * c[1] + k               # Const elements are plain floats
        v = u[1:] - t[:-1]
        np.maximum(v, 0.0) * s
        assert type(s) is np.float64
        return x[0] * 2.0                 # the only recorded work: a load and a product
    assert records(f, dup([1.0]), Const(np.array([0.5, 1.5, 2.5])), Const(3.0)) == 2
    assert records(f, dup([1.0]), np.array([0.5, 1.5, 2.5]), 3.0) == 2  # bare = Const


def test_const_only_function_records_nothing():
    def f(c):
        t = c * c
        return c[0] + np.exp(t)[1]
    res, tape = autodiff_split(f, Const(np.array([1.0, 2.0])))
    assert len(tape) == 0
    assert res == 1.0 + np.exp(4.0)
    assert tape.reverse() == (None,)


def test_array_op_counts():
    def f(x, y):
        t = x * y            # 1
        u = np.exp(t) + y    # 2
        y += u               # 1 (saves y)
        y[0] = x[0]          # a load and a store
    assert records(f, dup(np.ones(5)), dup(np.ones(5))) == 6


# --------------------------------------------------------------------------
# saved bytes: save only what is overwritten (tape.stats(); test_accounting.py
# checks that nbytes is every byte the tape holds)

def _saved(f, n):
    _, tape = autodiff_split(f, dup(np.linspace(0.5, 1.5, n)), dup(np.ones(n)))
    nb = tape.stats()["saved_bytes"]
    tape.reverse()
    return nb


def test_out_of_place_ops_save_nothing():
    def f(x, y):
        t = x * y
        u = np.sin(t) + x
        u / y
    assert _saved(f, 10) == _saved(f, 10000) == 0


@pytest.mark.parametrize("op", ["iadd", "out", "setslice", "axpy", "scal"])
def test_in_place_ops_save_the_overwritten_bytes(op):
    def f(x, y):
        if op == "iadd":
            y += x
        elif op == "out":
            np.multiply(x, y, out=y)
        elif op == "setslice":
            y[...] = x * 2.0
        elif op == "axpy":
            sad.axpy(2.0, x, y)
        else:
            sad.scal(3.0, y)

    def g(x, y):  # the same work without overwriting: a temporary instead
        if op == "setslice":
            x * 2.0
    n1, n2 = 10, 1000
    assert _saved(f, n2) - _saved(f, n1) == 8 * (n2 - n1)
    if op == "setslice":
        assert _saved(f, n2) - _saved(g, n2) - (_saved(f, n1) - _saved(g, n1)) == \
            8 * (n2 - n1)


def test_in_place_costs_exactly_the_saved_bytes_more():
    def inplace(x, y):
        y *= x

    def outofplace(x, y):
        x * y
    n = 777
    assert _saved(inplace, n) - _saved(outofplace, n) == 8 * n


def test_nbytes_grows_with_records():
    """(In whole chunks: a tape allocates room for thousands of records at once.)"""
    def f(x, k):
        t = x[0]
        for _ in range(k):
            t = t * x[0]
        return t
    sizes = []
    for k in (10, 5000, 50000):
        _, tape = autodiff_split(f, dup([1.0]), k)
        sizes.append(tape.nbytes)
        tape.reverse()
    assert sizes[0] < sizes[1] < sizes[2]


def test_advanced_index_write_counts_its_saved_bytes():
    def f(x, y, idx):
        y[idx] = x[: len(idx)]
    n = 50
    small = _saved(lambda x, y: f(x, y, [0, 1]), n)
    large = _saved(lambda x, y: f(x, y, list(range(40))), n)
    assert large - small >= 8 * 38


# --------------------------------------------------------------------------
# seeds

def seeded_f(a, y):
    y[0] = a * y[0]
    return a * a


def test_reverse_seed_scales_the_result_adjoint():
    got = []
    for seed in (1.0, 2.0, 0.0, -0.5):
        y, dy = np.array([2.0]), np.array([1.0])
        _, tape = autodiff_split(seeded_f, Active(3.0), Duplicated(y, dy))
        (ga, _) = tape.reverse(seed=seed)
        got.append((ga, dy[0]))
    # d(a*a)/da = 6 scaled by the seed, plus y's pre-filled shadow: d(a*y0)/da = y0 = 2
    assert got == [(6.0 + 2.0, 3.0), (12.0 + 2.0, 3.0), (2.0, 3.0), (-3.0 + 2.0, 3.0)]


def test_seed_scales_array_gradients():
    def f(x, c):
        return x[0] * c[0] + np.exp(x[1])
    grads = []
    for seed in (1.0, 2.5):
        dx = np.zeros(2)
        _, tape = autodiff_split(f, Duplicated(np.array([1.0, 0.5]), dx), Const(np.array([4.0])))
        tape.reverse(seed=seed)
        grads.append(dx.copy())
    assert np.allclose(grads[1], 2.5 * grads[0], rtol=1e-15, atol=0)


# --------------------------------------------------------------------------
# single use

def test_tape_reversed_twice_is_a_clear_error():
    _, tape = autodiff_split(lambda x: x[0] * 2.0, dup([1.0]))
    tape.reverse()
    with pytest.raises(RuntimeError, match="used once"):
        tape.reverse()
    assert len(tape) == 2 and tape.nbytes == 0  # the records it had; it holds nothing now


def test_unreversed_tape_can_be_dropped():
    def f(x, y):
        y += x
    y = np.zeros(3)
    _, tape = autodiff_split(f, dup([1.0, 2.0, 3.0]), Duplicated(y, np.ones(3)))
    del tape
    assert y.tolist() == [1.0, 2.0, 3.0]


# --------------------------------------------------------------------------
# primal effects

def program(x, y):
    y *= x
    y[1:] += y[:-1]
    y[0] = x[0] * y[2]
    sad.axpy(0.5, x, y)
    return y[1] * y[2]


def test_primal_effects_visible_after_split_and_after_reverse():
    x0 = np.array([1.5, -0.5, 2.0])
    y0 = np.array([0.25, 3.0, -1.0])
    plain_y = y0.copy()
    plain_res = program(x0.copy(), plain_y)

    x, y = x0.copy(), y0.copy()
    res, tape = autodiff_split(program, dup(x), Duplicated(y, np.zeros(3)))
    assert res == plain_res
    assert same_bits(y, plain_y)         # visible right after the split
    tape.reverse()
    assert same_bits(y, plain_y)         # and after the sweep (redo)
    assert same_bits(x, x0)


def test_reverse_restore_true_on_a_split_tape():
    x0 = np.array([1.5, -0.5, 2.0])
    y0 = np.array([0.25, 3.0, -1.0])
    x, y = x0.copy(), y0.copy()
    _, tape = autodiff_split(program, dup(x), Duplicated(y, np.zeros(3)))
    assert not same_bits(y, y0)
    tape.reverse(restore=True)
    assert same_bits(y, y0)
    assert same_bits(x, x0)


def test_autodiff_restore_true_and_default():
    y0 = np.array([0.25, 3.0, -1.0])
    y = y0.copy()
    g1 = autodiff(program, dup([1.5, -0.5, 2.0]), Duplicated(y, np.zeros(3)), restore=True)
    assert same_bits(y, y0)
    g2 = autodiff(program, dup([1.5, -0.5, 2.0]), Duplicated(y, np.zeros(3)))
    plain = y0.copy()
    program(np.array([1.5, -0.5, 2.0]), plain)
    assert same_bits(y, plain)
    assert g1 == g2 == (None, None)


def test_split_gradients_equal_autodiff():
    dxa, dya = np.zeros(3), np.array([1.0, 2.0, 3.0])
    autodiff(program, Duplicated(np.array([1.5, -0.5, 2.0]), dxa),
             Duplicated(np.array([0.25, 3.0, -1.0]), dya))
    dxb, dyb = np.zeros(3), np.array([1.0, 2.0, 3.0])
    _, tape = autodiff_split(program, Duplicated(np.array([1.5, -0.5, 2.0]), dxb),
                             Duplicated(np.array([0.25, 3.0, -1.0]), dyb))
    tape.reverse()
    assert same_bits(dxa, dxb) and same_bits(dya, dyb)


# --------------------------------------------------------------------------
# ReverseWithPrimal

def test_reverse_with_primal():
    grads, value = autodiff(lambda a, b: a * b + 1.0, Active(2.0), Active(5.0),
                            mode=ReverseWithPrimal)
    assert grads == (5.0, 2.0)
    assert value == 11.0 and type(value) is float

    def f(x, y):
        y[0] = x[0]
    grads, value = autodiff(f, dup([1.0]), dup([0.0]), mode=ReverseWithPrimal)
    assert grads == (None, None) and value is None

    grads, value = autodiff(lambda a, c: c * 2.0, Active(1.0), Const(4.0), mode=ReverseWithPrimal)
    assert grads == (0.0, None) and value == 8.0


def test_plain_number_results():
    for ret in (3, 2.5, np.float64(1.5), np.int64(4), np.array(2.0)):
        grads, value = autodiff(lambda a, r=ret: r, Active(1.0), mode=ReverseWithPrimal)
        assert grads == (0.0,) and value == float(ret)


def test_zero_dim_traced_result_is_seeded():
    def f(x):
        return x[1, ...] * 3.0   # a 0-d traced array
    dx = np.zeros(2)
    grads, value = autodiff(f, Duplicated(np.array([1.0, 2.0]), dx), mode=ReverseWithPrimal)
    assert value == 6.0
    assert dx.tolist() == [0.0, 3.0]


def test_result_that_is_a_view_of_an_argument():
    """The seed adds to the shadow already there: L = y[1] + <dy, y>."""
    def f(y):
        y *= 2.0
        return y[1, ...]
    y, dy = np.array([1.0, 2.0]), np.array([5.0, 7.0])
    (_,), value = autodiff(f, Duplicated(y, dy), mode=ReverseWithPrimal)
    assert value == 4.0
    assert dy.tolist() == [10.0, 16.0]


def test_bad_result_leaves_no_trace():
    y = np.array([1.0, 2.0])

    def f(y):
        y *= 3.0
        return y
    with pytest.raises(TypeError, match="scalar result"):
        autodiff_split(f, Duplicated(y, np.zeros(2)))
    assert y.tolist() == [1.0, 2.0]


# --------------------------------------------------------------------------
# arguments that alias each other (the same activity, so allowed)

@pytest.mark.parametrize("views", ["same", "reversed", "overlapping", "disjoint"])
def test_const_arguments_sharing_memory_share_promotion(views):
    """An active value written through one Const alias is read through the
    other: both see the same (hidden) shadow."""
    base = np.arange(1.0, 9.0)
    c1, c2 = {"same": (base, base), "reversed": (base, base[::-1]),
              "overlapping": (base[:4], base[2:]), "disjoint": (base[:4], base[4:])}[views]

    def f(x, c1, c2):
        c1[1] = x[0] * 3.0
        c1[2:4] = x[1:3] * x[1:3]
        return c2[0] * 2.0 + c2[-1] * c2[1]
    x0 = np.array([0.5, -1.5, 2.0])

    def plain(x):
        b = np.arange(1.0, 9.0)
        p1, p2 = {"same": (b, b), "reversed": (b, b[::-1]), "overlapping": (b[:4], b[2:]),
                  "disjoint": (b[:4], b[4:])}[views]
        return f(x, p1, p2)
    dx = np.zeros(3)
    (_, _, _), value = autodiff(f, Duplicated(x0.copy(), dx), Const(c1), Const(c2),
                                mode=ReverseWithPrimal)
    assert value == plain(x0.copy())
    h, want = 1e-6, np.zeros(3)
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        want[i] = (plain(x0 + e) - plain(x0 - e)) / (2 * h)
    np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-8)


def test_duplicated_arguments_sharing_memory():
    """The same memory passed twice as Duplicated with the matching shadow views."""
    x, dx = np.array([1.0, 2.0, 3.0]), np.zeros(3)

    def f(a, b):
        a[1:] *= b[:-1]
        return b[2] * 1.0
    autodiff(f, Duplicated(x, dx), Duplicated(x, dx))
    assert x.tolist() == [1.0, 2.0, 6.0]
    assert dx.tolist() == [0.0, 3.0, 2.0]   # b[2] = a[2] * a[1] after the update


def test_restore_keeps_special_bit_patterns():
    """-0.0, NaN payloads, infinities and subnormals come back bit for bit
    through every kind of record that overwrites memory."""
    special = np.array([-0.0, np.inf, -np.inf, 5e-324, 1.0, 2.0, 3.0, 4.0])
    bits = special.view(np.uint64).copy()
    bits[4] = 0x7FF8DEADBEEF0001       # a quiet NaN with a payload
    y0 = bits.view(np.float64)

    def f(x, y):
        y[0] = x[0] * 2.0                 # scalar store
        y[1:3] = x[1:3]                   # copy record
        y[3:5] *= x[3:5]                  # in-place ufunc
        sad.axpy(0.5, x[5:7], y[5:7])     # axpy
        y[[7, 4]] = x[:2] * 3.0           # advanced index (Python record)
        np.exp(x, out=y)                  # overwrite everything once more
    y = y0.copy()
    autodiff(f, dup(np.linspace(0.1, 0.8, 8)), Duplicated(y, np.ones(8)), restore=True)
    assert y.view(np.uint64).tolist() == y0.view(np.uint64).tolist()

    def g(x, c):                          # the same into Const memory, inactive
        c[0] = 1.0
        c[1:3] = 2.0
        c[3:5] *= 3.0
        c[[7, 4]] = 4.0
        return x[0] * 1.0
    c = y0.copy()
    autodiff(g, dup([1.0]), Const(c), restore=True)
    assert c.view(np.uint64).tolist() == y0.view(np.uint64).tolist()


# --------------------------------------------------------------------------
# the restore floor: below the first record whose reverse reads primal
# values, the sweep leaves memory as f left it (csrc sad_tape_restore_floor)

def _heat(u, steps=3):
    for _ in range(steps):
        u[1:-1] += 0.25 * (u[2:] - 2.0 * u[1:-1] + u[:-2])


def _heat_then_read(u, y):
    _heat(u)                       # linear, in place: below the floor
    y[0] = u[3] * 2.0              # an element store, a scalar product: no reader yet
    s = np.sin(u)                  # the first reader: it needs u as _heat left it
    _heat(u)                       # overwrites what sin read
    u[2] *= u[5]                   # a reader of its own
    return np.sum(s * s) + np.sum(u * u) + y[0] * y[1]


def _final_and_initial(f, *arrays):
    before = [a.copy() for a in arrays]
    after = [a.copy() for a in arrays]
    f(*after)
    return before, after


@pytest.mark.parametrize("n", [40, 20001], ids=["record by record", "fused runs, streamed saves"])
def test_floor_gradients_final_state_and_restore(n):
    rng = np.random.default_rng(11)
    u0, y0 = rng.uniform(0.1, 0.9, n), rng.uniform(0.1, 0.9, 2)
    before, after = _final_and_initial(_heat_then_read, u0, y0)
    u, y = u0.copy(), y0.copy()
    du, dy = np.zeros(n), np.zeros(2)
    autodiff(_heat_then_read, Duplicated(u, du), Duplicated(y, dy))
    assert same_bits(u, after[0]) and same_bits(y, after[1])   # f's effects, bit for bit
    v = rng.standard_normal(n)
    h = 1e-6
    slope = (_heat_then_read(u0 + h * v, y0.copy()) - _heat_then_read(u0 - h * v, y0.copy())) / (2 * h)
    assert abs(du @ v - slope) <= 1e-6 * max(1.0, abs(slope))
    u, y = u0.copy(), y0.copy()
    du2, dy2 = np.zeros(n), np.zeros(2)
    autodiff(_heat_then_read, Duplicated(u, du2), Duplicated(y, dy2), restore=True)
    assert same_bits(u, before[0]) and same_bits(y, before[1])
    assert same_bits(du2, du) and same_bits(dy2, dy)


def test_floor_is_the_first_reader():
    u = np.random.default_rng(12).uniform(0.1, 0.9, 40)
    _, split = autodiff_split(lambda u: _heat(u) or np.sum(u * 3.0), dup(u.copy()))
    tape = split._tape
    split.reverse()                 # all linear: nothing restored, nothing to redo
    assert tape.applied is None     # (the final redo started at the end)

    _, split = autodiff_split(_heat_then_read, dup(u.copy()), dup([0.5, 0.25]))
    inner = split._tape
    inner.reverse()
    assert 0 < inner.applied < len(inner)
    from shadowad._c import lib
    assert inner.applied == lib.sad_tape_restore_floor(inner.c)
    inner.redo()
    inner.free()


def test_floor_over_several_sweeps():
    """BatchDuplicated and reverse Jacobians sweep one tape several times:
    between sweeps only what the sweep undid is redone."""
    rng = np.random.default_rng(13)
    u0 = rng.uniform(0.1, 0.9, 30)
    seeds = tuple(rng.standard_normal(30) for _ in range(3))

    def f(u, y):
        _heat(u)
        y[...] = u * 2.0
        _heat(y)

    def run(restore):
        u, y = u0.copy(), np.zeros(30)
        dus = tuple(np.zeros(30) for _ in seeds)
        sad.autodiff(f, sad.BatchDuplicated(u, dus),
                     sad.BatchDuplicated(y, tuple(s.copy() for s in seeds)), restore=restore)
        return u, y, dus
    u, y, dus = run(False)
    _, after = _final_and_initial(f, u0, np.zeros(30))
    assert same_bits(u, after[0]) and same_bits(y, after[1])
    for s, du in zip(seeds, dus):   # f is linear: du = J^T s, one lane at a time
        u1, y1 = u0.copy(), np.zeros(30)
        dy1, du1 = s.copy(), np.zeros(30)
        autodiff(f, Duplicated(u1, du1), Duplicated(y1, dy1))
        assert same_bits(du, du1)
    u, y, _ = run(True)
    assert same_bits(u, u0) and (y == 0).all()

    def g(u):
        w = u.copy()
        _heat(w)
        return np.sin(w[:5]) + w[5:10] * 2.0
    J = sad.jacobian(g, u0, mode=sad.Reverse)
    np.testing.assert_allclose(J, sad.jacobian(g, u0, mode=sad.Forward), rtol=1e-13, atol=1e-15)


def test_floor_when_a_pullback_fails(monkeypatch):
    """A Python record is a reader: records below it are still applied when its
    pullback raises, and the primals come back as before the call."""
    from shadowad.engines.rules import linalg
    u0 = np.random.default_rng(14).uniform(0.1, 0.9, 60)

    def f(u):
        _heat(u)
        m = np.matmul(u.reshape(6, 10), u.reshape(10, 6))
        _heat(u)
        return np.sum(m) + np.sum(u)

    def boom(*args):
        raise ArithmeticError("pullback failed")
    monkeypatch.setattr(linalg, "_accumulate_product", boom)
    u, du = u0.copy(), np.full(60, 0.5)
    with pytest.raises(ArithmeticError):
        autodiff(f, Duplicated(u, du))
    assert same_bits(u, u0)


# --------------------------------------------------------------------------
# the save-stack pool (sad.set_memory_pool): large chunks outlive their tape

def _big_heat(u):
    s = np.sum(u * u)              # its pullback reads u: every later write is saved
    for _ in range(24):            # 24 x 1 MB saved: chunks of 4 MiB and more
        u[1:-1] += 0.25 * (u[2:] - 2.0 * u[1:-1] + u[:-2])
    return np.sum(u * u) + 1e-3 * s


def test_pool_keeps_and_reuses_chunks():
    rng = np.random.default_rng(15)
    u0 = rng.uniform(0.1, 0.9, 1 << 17)
    sad.set_memory_pool(256 << 20)
    try:
        results = []
        for _ in range(3):          # pooled memory is not zeroed: every call alike
            u, du = u0.copy(), np.zeros_like(u0)
            autodiff(_big_heat, Duplicated(u, du), restore=True)
            assert same_bits(u, u0)
            results.append(du)
            held = sad.memory_pool_bytes()
            assert held >= 4 << 20
        assert all(same_bits(r, results[0]) for r in results)
        sad.set_memory_pool(0)      # frees what the pool holds, keeps nothing after
        assert sad.memory_pool_bytes() == 0
        u, du = u0.copy(), np.zeros_like(u0)
        autodiff(_big_heat, Duplicated(u, du))
        assert sad.memory_pool_bytes() == 0 and same_bits(du, results[0])
    finally:
        sad.set_memory_pool(256 << 20)


@pytest.mark.parametrize("bad, exc, words", [
    (-1, ValueError, "between 0 and 2**63 - 1 bytes, got -1"),
    (2 ** 63, ValueError, "between 0 and 2**63 - 1 bytes"),
    (2 ** 70, ValueError, "between 0 and 2**63 - 1 bytes"),
    (np.int64(-5), ValueError, "got -5"),
    (1.5, TypeError, "must be an int"), ("1", TypeError, "got str '1'"),
    (True, TypeError, "must be an int"), (None, TypeError, "got NoneType"),
    (np.float64(4.0), TypeError, "must be an int")])
def test_pool_limit_is_checked(bad, exc, words):
    before = sad.memory_pool_bytes()
    with pytest.raises(exc, match="sad.set_memory_pool: max_bytes") as e:
        sad.set_memory_pool(bad)
    assert words in str(e.value)
    assert sad.memory_pool_bytes() == before


def test_pool_limit_takes_numpy_integers_and_the_largest():
    try:
        sad.set_memory_pool(np.int64(1 << 20))
        sad.set_memory_pool(2 ** 63 - 1)
    finally:
        sad.set_memory_pool(256 << 20)


def test_pool_outlives_its_thread_while_a_tape_uses_it():
    """A split tape recorded in a thread that has ended still gives its chunks
    back safely (the tape holds its own reference to the pool)."""
    import gc
    import threading
    u0 = np.random.default_rng(16).uniform(0.1, 0.9, 1 << 17)
    out = {}

    def work():
        u, du = u0.copy(), np.zeros_like(u0)
        out["split"] = autodiff_split(_big_heat, Duplicated(u, du))[1]
        out["du"] = du
    t = threading.Thread(target=work)
    t.start()
    t.join()
    del t
    gc.collect()
    out.pop("split").reverse()
    gc.collect()
    expect = np.zeros_like(u0)
    autodiff(_big_heat, Duplicated(u0.copy(), expect))
    assert same_bits(out["du"], expect)


def test_threads_each_use_their_own_pool():
    import threading
    u0 = np.random.default_rng(17).uniform(0.1, 0.9, 1 << 17)
    expect = np.zeros_like(u0)
    autodiff(_big_heat, Duplicated(u0.copy(), expect))
    bad = []

    def work():
        for _ in range(3):
            du = np.zeros_like(u0)
            autodiff(_big_heat, Duplicated(u0.copy(), du))
            if not same_bits(du, expect):
                bad.append(du)
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


# --------------------------------------------------------------------------
# f's final values after the sweep: the last redo, or a copy put back

def _lu_in_place(A, b):
    n = A.shape[0]
    for k in range(n - 1):
        A[k + 1:, k] /= A[k, k]
        A[k + 1:, k + 1:] -= np.outer(A[k + 1:, k], A[k, k + 1:])
    b[1:] -= A[1:, 0] * b[0]           # a second written argument
    b[0] = b[0] * A[0, 0]              # a scalar store
    return np.sum(np.log(np.abs(np.diagonal(A)))) + np.sum(b * b)


def _vector_program(x, v):
    v.push(x[0] * 2.0)
    x[1:] *= x[0]
    return v[-1] * x[1] + np.sum(x)


PROGRAMS = [
    ("lu", _lu_in_place, lambda r: (dup(np.eye(6) * 5 + r.uniform(-1, 1, (6, 6))),
                                    dup(r.standard_normal(6)))),
    ("vector", _vector_program, lambda r: (dup(r.uniform(0.5, 1.5, 4)),
                                           sad.Duplicated(sad.Vector([1.0]), sad.Vector([0.0])))),
]


@pytest.mark.parametrize("name,f,make", PROGRAMS, ids=[p[0] for p in PROGRAMS])
@pytest.mark.parametrize("batch", [False, True], ids=["one sweep", "batch"])
def test_final_copy_equals_the_last_redo(name, f, make, batch, monkeypatch):
    from shadowad.api import autodiff as driver
    calls = []
    real = driver._final_copies
    monkeypatch.setattr(driver, "_final_copies", lambda t: calls.append(1) or real(t))

    def run(ratio):
        monkeypatch.setattr(driver, "FINAL_COPY_RATIO", ratio)
        args = make(np.random.default_rng(5))
        if batch and name == "lu":
            A, b = args
            args = (sad.BatchDuplicated(A.val, (A.dval, A.dval.copy() + 1.0)),
                    sad.BatchDuplicated(b.val, (b.dval, b.dval.copy() - 1.0)))
        v = autodiff(f, *args)
        out = []
        for a in args:
            vals = [a.val] + (list(a.dvals) if hasattr(a, "dvals") else [a.dval])
            out += [np.asarray(x[:] if isinstance(x, sad.Vector) else x) for x in vals]
        return v, out
    copied = run(0.0)           # a copy whenever the tape allows it
    redone = run(float("inf"))  # always the last redo
    assert calls
    for a, b in zip(copied[1], redone[1]):
        assert same_bits(a, b)


def test_final_copy_is_taken_only_when_cheaper(monkeypatch):
    from shadowad.api import autodiff as driver
    seen = []
    real = driver._final_copies
    monkeypatch.setattr(driver, "_final_copies", lambda t: seen.append(real(t)) or seen[-1])
    rng = np.random.default_rng(6)
    A = np.eye(40) * 40 + rng.uniform(-1, 1, (40, 40))
    autodiff(_lu_in_place, dup(A), dup(rng.standard_normal(40)))  # saves ~13x the matrix
    assert seen[-1] is not None and len(seen[-1]) == 2
    x = rng.uniform(0.5, 1.5, 40)
    autodiff(lambda x: np.sum(np.sin(x) * x), dup(x))             # writes nothing
    assert seen[-1] is None
    autodiff(_vector_program, dup(x[:4]), sad.Duplicated(sad.Vector([1.0]), sad.Vector([0.0])))
    assert seen[-1] is None                                       # Vector records: redo


# --------------------------------------------------------------------------
# in-place writes below the restore floor share an earlier save
# (csrc tape.c sad_tape_save_covered): undo, restore and redo as before

def _heat(u, steps=12):
    for _ in range(steps):
        u[1:-1] += 0.25 * (u[2:] - 2.0 * u[1:-1] + u[:-2])
    return np.sum(u * u)


def _saved_each_time():
    """numpy's error state, set anew: in place writes save their bytes each
    time (the fast path shares saves only in the state shadowad saw at import)."""
    return np.errstate(**np.geterr())


def _heat_run(u0, shared, restore=False, steps=12):
    u, du = u0.copy(), np.zeros_like(u0)
    with (_nullcontext() if shared else _saved_each_time()):
        res, tape = autodiff_split(_heat, Duplicated(u, du), Const(steps))
        nbytes = tape.stats()["saved_bytes"]
        tape.reverse(restore=restore)
    return u, du, nbytes, res


def _nullcontext():
    import contextlib
    return contextlib.nullcontext()


def test_linear_writes_share_one_save():
    u0 = np.random.default_rng(40).uniform(0.1, 0.9, 5000)
    u1, du1, shared_bytes, r1 = _heat_run(u0, True)
    u2, du2, own_bytes, r2 = _heat_run(u0, False)
    assert shared_bytes < own_bytes / 6          # 1 save of u[1:-1] instead of 12
    assert same_bits(du1, du2) and same_bits(u1, u2) and r1 == r2
    u3, _, _, _ = _heat_run(u0, True, restore=True)
    assert same_bits(u3, u0)                     # the one save puts back all twelve


def test_shared_saves_restore_and_redo():
    u0 = np.random.default_rng(41).uniform(0.1, 0.9, 3000)
    u, du = u0.copy(), np.zeros_like(u0)
    autodiff(_heat, Duplicated(u, du), restore=True)
    assert same_bits(u, u0)
    v, dv = u0.copy(), np.zeros_like(u0)
    autodiff(_heat, Duplicated(v, dv))           # f's final values, as numpy leaves them
    w = u0.copy()
    _heat(w)
    assert same_bits(v, w) and same_bits(du, dv)


def test_failure_after_shared_writes_restores_the_inputs():
    u0 = np.random.default_rng(42).uniform(0.1, 0.9, 3000)

    def f(u):
        _heat(u, 5)
        raise KeyError("stop")
    u = u0.copy()
    with pytest.raises(KeyError, match="stop"):
        autodiff(f, Duplicated(u, np.zeros_like(u)))
    assert same_bits(u, u0)


def test_a_reader_stops_the_sharing():
    """After a record whose pullback reads values (here u * u), writes save
    their bytes again: the sweep must restore them."""
    u0 = np.random.default_rng(43).uniform(0.1, 0.9, 3000)

    def f(u):
        _heat(u, 3)
        s = np.sum(u * u)
        _heat(u, 3)
        return s + np.sum(u * u * u)
    u, du = u0.copy(), np.zeros_like(u0)
    _, tape = autodiff_split(f, Duplicated(u, du))
    assert tape.stats()["saved_bytes"] > 3 * 8 * 2998   # the three writes after the reader
    tape.reverse()
    v, dv = u0.copy(), np.zeros_like(u0)
    with _saved_each_time():
        autodiff(f, Duplicated(v, dv))
    assert same_bits(du, dv)
    from shadowad.testing import check_rule
    check_rule(f, Duplicated(u0[:200].copy(), np.zeros(200)))


def test_shared_saves_over_several_sweeps():
    u0 = np.random.default_rng(44).uniform(0.1, 0.9, 40)

    def f(u):
        _heat(u, 6)
        return u[::8] * 1.0
    J = sad.jacobian(f, u0, mode=sad.Reverse)
    np.testing.assert_allclose(J, sad.jacobian(f, u0, mode=sad.Forward), rtol=1e-13, atol=1e-14)


def _overflows(u):
    _heat(u, 2)
    u[1:-1] *= 1e200                             # linear: shares the save
    u[1:-1] *= 1e200                             # writes inf, then warns


def _divides_by_zero(u):
    _heat(u, 2)
    u[1:-1] /= np.zeros(u.shape[0] - 2)          # reads u: saves its bytes


@pytest.mark.parametrize("f", [_overflows, _divides_by_zero], ids=lambda f: f.__name__)
def test_a_floating_point_error_after_a_write_keeps_its_record(f):
    """numpy writes the output, then reports the floating-point error (a
    warnings filter or np.errstate makes it raise): the write happened and
    stays recorded, shared save or not.  Uncaught, the call fails and the
    inputs come back bit for bit; caught inside f, f's values are numpy's."""
    import warnings
    u0 = np.random.default_rng(45).uniform(0.1, 0.9, 3000)
    warnings.simplefilter("ignore", RuntimeWarning)   # pytest restores the filters

    def g(u):
        try:
            f(u)
        except (RuntimeWarning, FloatingPointError):
            pass
        return np.sum(u[:1] * 2.0)
    import contextlib
    _, tape = autodiff_split(g, Duplicated(u0.copy(), np.zeros_like(u0)))
    records = len(tape)                          # numpy only warned: every record
    tape.reverse()
    for errstate in (False, True):
        with warnings.catch_warnings(), (np.errstate(all="raise") if errstate
                                         else contextlib.nullcontext()):
            warnings.simplefilter("error", RuntimeWarning)
            _, tape = autodiff_split(g, Duplicated(u0.copy(), np.zeros_like(u0)))
            assert len(tape) == records          # the failed write's record stays
            tape.reverse()
            u = u0.copy()
            with pytest.raises((RuntimeWarning, FloatingPointError)):
                autodiff(lambda u: f(u) or np.sum(u * 1.0), Duplicated(u, np.zeros_like(u)))
            assert same_bits(u, u0)
            u, du = u0.copy(), np.zeros_like(u0)
            autodiff(g, Duplicated(u, du))
            w = u0.copy()
            g(w)
            assert same_bits(u, w) and np.isinf(u[1:-1]).all()
            assert du[0] == 2.0 and not du[1:].any()
            u = u0.copy()
            autodiff(g, Duplicated(u, np.zeros_like(u)), restore=True)
            assert same_bits(u, u0)


def test_errstate_that_raises_saves_each_write():
    u0 = np.random.default_rng(46).uniform(0.1, 0.9, 3000)
    _, _, shared_bytes, _ = _heat_run(u0, True)
    u, du = u0.copy(), np.zeros_like(u0)
    with np.errstate(all="raise"):
        _, tape = autodiff_split(_heat, Duplicated(u, du), Const(12))
        assert tape.stats()["saved_bytes"] > 6 * shared_bytes
        tape.reverse()
