"""np.outer of two vectors in reverse mode: one C record (csrc/ops/outer.c) that
computes numpy's primal bit for bit and sweeps in C.  Finite differences,
restore, accumulate-once and the dot-product test on contiguous and strided
operands, views of one array that overlap (np.outer(x, x) included), constant
operands, lazy and eager result shadows, out=, results never reached, the
in-place LU loop of benchmark W4, repeated sweeps of one tape, and the
operands the record leaves to the general path."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import shadowad as sad
from shadowad import Active, BatchDuplicated, Const, Duplicated, autodiff
from shadowad.engines.reverse import traced
from shadowad.testing import check_rule, same_bits

rng = np.random.default_rng(45)


def dup(a):
    a = np.array(a, dtype=float)
    return Duplicated(a, np.zeros_like(a))


def python_records(f, *args):
    """How many Python records the tape of f holds (the C record adds none)."""
    _, tape = sad.autodiff_split(f, *args)
    n = len(tape._tape.py)
    tape.reverse(seed=1.0)
    return n


# --------------------------------------------------------------------------
# the primal: numpy's bits

SPECIAL = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, -np.nan, 5e-324, -1e308,
                    1e308, 3.0e-200, np.pi])
# no NaN, and no product that overflows, underflows or is invalid (inf * 0):
# C's primal stands, without numpy
CLEAN_A = np.array([0.0, -0.0, 1.5, -2.5, np.pi, 1e-150, -7e100])
CLEAN_B = np.array([-0.0, 3.0, -1e-100, 7e10, 0.0, -1.0])
INFS_A, INFS_B = np.array([np.inf, -np.inf, 2.0, -0.5]), np.array([1.0, -np.inf, np.inf, -3.0])


def _pick(view, x, M):
    return {"contiguous": x, "reversed": x[::-1], "strided": x[::2], "column": M[:, 3]}[view]


def _outer_bits(a, b, view):
    """np.outer(a view of a, b[::-1]) through the C record, and numpy's."""
    M = np.tile(a, (4, 1)).T.copy()  # column 3 is a
    want = np.outer(_pick(view, a, M), b[::-1])
    y = np.zeros(want.shape)

    def f(a, b, M, y):
        y[...] = np.outer(_pick(view, a, M), b[::-1])

    autodiff(f, dup(a), dup(b), dup(M), Duplicated(y, np.ones_like(y)))
    return y, want


@pytest.mark.parametrize("view", ["contiguous", "reversed", "strided", "column"])
def test_primal_bits_equal_numpy(view):
    for a, b in [(CLEAN_A, CLEAN_B), (INFS_A, INFS_B), (CLEAN_A, INFS_B)]:
        if b is INFS_B and a is CLEAN_A:
            a = a[2:]  # no zeros against infinities
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy would warn of nothing, nor does C
            y, want = _outer_bits(a, b, view)
        assert same_bits(y, want)
    with np.errstate(all="ignore"):
        y, want = _outer_bits(SPECIAL, SPECIAL * 0.75, view)  # numpy recomputes these
    assert same_bits(y, want)


def test_numpy_warnings_and_errors_stay():
    big, nan = np.array([1e300, 2.0]), np.array([np.nan, -np.nan, 1.0])

    def f(a, b):
        return np.sum(np.outer(a, b))

    with pytest.warns(RuntimeWarning, match="overflow encountered in multiply"):
        g = sad.gradient(f, big, big)
    np.testing.assert_array_equal(g[0], [1e300 + 2.0, 1e300 + 2.0])

    def g_nan(a, b):
        z = np.outer(a, b)
        assert same_bits(sad.primal(z), np.outer(nan, nan[::-1]))  # numpy's NaN bits
        return np.sum(z)

    sad.gradient(g_nan, nan, nan[::-1])

    def raising(a, b, y):
        y *= 2.0
        with np.errstate(over="raise"):
            return np.sum(np.outer(a, b)) + np.sum(y)

    y = np.ones(3)
    with pytest.raises(FloatingPointError, match="overflow"):
        autodiff(raising, dup(big), dup(big), Duplicated(y, np.zeros(3)))
    assert same_bits(y, np.ones(3))

    def caught(a, b, fail=True):
        ah, bh = a * 1e300, b * 1e300
        if fail:
            try:
                with np.errstate(over="raise"):
                    np.outer(ah, bh)
            except FloatingPointError:
                pass  # ... and its record was dropped
        return np.sum(np.outer(a, b))

    def records(**kw):
        _, tape = sad.autodiff_split(lambda a, b: caught(a, b, **kw), dup([1.5, 2.0]),
                                     dup([3.0, 4.0]))
        n = len(tape)
        tape.reverse(seed=1.0)
        return n

    assert records() == records(fail=False)
    check_rule(caught, dup([1.5, 2.0]), dup([3.0, -4.0]))


def test_primal_bits_one_side_constant():
    a, b = rng.standard_normal(7), rng.standard_normal(5) * 1e-300
    want = np.outer(a, b)

    def f(a, b):
        z = np.outer(a, b)
        assert same_bits(sad.primal(z), want)
        return np.sum(z)

    autodiff(f, Const(a), dup(b))
    autodiff(f, Active(a), b)  # a plain ndarray operand
    assert python_records(f, Const(a), dup(b)) == 0


# --------------------------------------------------------------------------
# the rule checks

def test_contiguous_operands_all_activities():
    a, b = rng.standard_normal(4), rng.standard_normal(3)
    y = rng.standard_normal((4, 3))

    def f(a, b, y):
        y -= np.outer(a, b)
        y *= 0.5
        return np.sum(y * np.outer(a * a, b)) + np.sum(np.outer(a, b) ** 2)

    for args in [(dup(a), dup(b)), (Active(a), Const(b)), (Const(a), dup(b)),
                 (dup(a), Active(b))]:
        check_rule(f, *args, dup(y))
    assert python_records(f, dup(a), dup(b), dup(y)) == 0


def test_outer_of_x_with_itself_and_overlapping_views():
    x = rng.standard_normal(6)

    def f(x):
        return (np.sum(np.outer(x, x) ** 2) + np.sum(np.sin(np.outer(x[:-1], x[1:])))
                + np.sum(np.outer(x[::-1], x[::2]) * np.outer(x[1:4], x[2::-1]).sum()))

    check_rule(f, dup(x))
    check_rule(f, Active(x))
    g, = sad.gradient(lambda x: np.sum(np.outer(x, x)), x)
    np.testing.assert_allclose(g, 2 * np.sum(x) * np.ones(6), rtol=1e-14)


def test_rows_and_columns_of_one_matrix():
    A = rng.standard_normal((5, 5))

    def f(A):
        z = np.outer(A[:, 1], A[1, :])      # they share A[1, 1]
        w = np.outer(A[2, 1:], A[:3, 4])    # a row against a column
        return np.sum(z * z) + np.sum(np.cos(w))

    check_rule(f, dup(A))


def lu_logabsdet(A):
    """Benchmark W4: an in-place Doolittle LU, no pivoting."""
    n = A.shape[0]
    for k in range(n):
        A[k + 1:, k] /= A[k, k]
        A[k + 1:, k + 1:] -= np.outer(A[k + 1:, k], A[k, k + 1:])
    return np.log(np.abs(np.diagonal(A))).sum()


@pytest.mark.parametrize("n", [2, 5, 9])
def test_in_place_lu_loop(n):
    A = rng.standard_normal((n, n)) + n * np.eye(n)
    check_rule(lu_logabsdet, dup(A))


@pytest.mark.parametrize("n", [8, 70])  # 70: the first steps' products are lazy
def test_in_place_lu_gradient_is_inverse_transpose(n):
    A = rng.standard_normal((n, n)) + n * np.eye(n)
    dA = np.zeros_like(A)
    A1 = A.copy()
    autodiff(lu_logabsdet, Duplicated(A1, dA))
    np.testing.assert_allclose(dA, np.linalg.inv(A).T, rtol=1e-10, atol=1e-12)
    assert python_records(lu_logabsdet, dup(A)) == 0
    before = A.copy()
    autodiff(lu_logabsdet, Duplicated(before, np.zeros_like(A)), restore=True)
    assert same_bits(before, A)


def _fast_path_programs():
    x = rng.standard_normal(150)
    big = rng.standard_normal(120)

    def lu(A):
        return lu_logabsdet(A)

    def plain_operand(x):            # a float64 ndarray on one side, a lazy result
        return np.sum(np.sin(np.outer(big, x[:120]))) + np.sum(np.outer(x[:4], big[:3]))

    def lazy_operand(x):             # operands that are lazy temporaries themselves
        t = x * 0.5
        return np.sum(np.outer(t[:40], t[100:130]) ** 2)

    def nan_operand(x):              # C leaves the primal to numpy (NaN bits)
        y = x[:6] * 1.0
        y[2] = np.nan
        z = np.outer(y, x[:5])
        return np.sum(np.where(np.isnan(z), 0.0, z))
    return {"lu": (lu, rng.standard_normal((12, 12)) + 12 * np.eye(12)),
            "plain_operand": (plain_operand, x), "lazy_operand": (lazy_operand, x),
            "nan_operand": (nan_operand, x)}


FAST = _fast_path_programs()


@pytest.mark.parametrize("name", sorted(FAST))
def test_fast_path_equals_the_rule(name, monkeypatch):
    """np.outer of traced vectors goes from TArray.__array_function__ straight
    to C (_fast.outer) and gives the bits of the rule's path."""
    f, x0 = FAST[name]
    taken = []

    def counting(*args, real=traced._outer):
        r = real(*args)
        taken.append(r is not NotImplemented)
        return r

    def run():
        x, dx = x0.copy(), np.zeros_like(x0)
        v = autodiff(f, Duplicated(x, dx), mode=sad.ReverseWithPrimal)[-1]
        return x, dx, v
    monkeypatch.setattr(traced, "_outer", counting)
    fast = run()
    assert taken and all(taken)
    monkeypatch.setattr(traced, "_outer", lambda *a: NotImplemented)
    rule = run()
    assert all(same_bits(np.asarray(a), np.asarray(b)) for a, b in zip(fast, rule))
    monkeypatch.undo()
    check_rule(f, dup(x0))


def test_fast_path_leaves_other_calls_to_the_rule(monkeypatch):
    """A matrix operand, a traced scalar, a list and keywords: the rule's path."""
    taken = []
    monkeypatch.setattr(traced, "_outer",
                        lambda *a, real=traced._outer: taken.append(real(*a)) or taken[-1])
    x = rng.standard_normal(4)

    def f(x, M):
        a = np.outer(x, M)                       # a matrix operand: flattened by the rule
        b = np.outer(x[0], x)                    # a traced scalar
        c = np.outer([1.0, 2.0], x)              # a list
        d = np.outer(x, x, out=None)             # a keyword
        return np.sum(a) + np.sum(b * b) + np.sum(c) + np.sum(d)
    M = rng.standard_normal((2, 3))
    autodiff(f, dup(x), dup(M))
    assert len(taken) >= 2 and all(r is NotImplemented for r in taken)
    monkeypatch.undo()
    check_rule(f, dup(x), dup(M))


def test_result_never_reached():
    x, y = rng.standard_normal(5), rng.standard_normal(4)
    big = rng.standard_normal(120)  # a lazy result (120 * 120 * 8 bytes >= 32 KiB)

    def f(x, y, big):
        np.outer(x, y)
        z = np.outer(big, big)
        z[0, 0]  # noqa: B018 -- an element read gives the lazy shadow memory
        np.outer(big, x)
        return np.sum(x * y[:1])

    check_rule(f, dup(x), dup(y), dup(big))


def test_large_lazy_and_small_results_equal_eager(monkeypatch):
    x = rng.standard_normal(150)

    def f(x):
        o = np.outer(x, x[:120])             # lazy
        p = np.outer(x[:7], x[3:9])          # small
        t = o * 2.0
        return np.sum(np.tanh(t[:, 3])) + np.sum(p * p) + np.sum(np.outer(x[::3], x[1::2]))

    made = []
    monkeypatch.setattr(traced, "new_lazy",
                        lambda tape, z, real=traced.new_lazy: made.append(z.shape) or real(tape, z))
    lazy, = sad.gradient(f, x)
    assert (150, 120) in made
    monkeypatch.setattr(traced, "LAZY_MIN", 1 << 62)
    eager, = sad.gradient(f, x)
    monkeypatch.setattr(traced, "LAZY_MIN", 8)
    all_lazy, = sad.gradient(f, x)
    assert same_bits(lazy, eager) and same_bits(lazy, all_lazy)
    check_rule(f, dup(x))


def test_lazy_operands():
    x = rng.standard_normal(5000)  # x * 0.5 is a lazy temporary

    def f(x):
        t = x * 0.5
        return np.sum(np.sin(np.outer(t[:40], t[100:130]))) + np.sum(np.outer(t[:3], t[:3]))

    check_rule(f, dup(x))


def test_out_argument():
    a, b = rng.standard_normal(3), rng.standard_normal(4)

    def f(a, b, C):
        np.outer(a, b, out=C)
        C *= C
        return np.sum(C) + np.sum(np.outer(b, a, out=np.zeros_like(C.T)))

    check_rule(f, dup(a), dup(b), dup(np.ones((3, 4))))
    check_rule(f, dup(a), Const(b), dup(np.ones((3, 4))))

    def wrong(a, b):
        np.outer(a, b, out=np.zeros_like(np.outer(b, a)))

    with pytest.raises(ValueError, match="out has shape"):
        autodiff(wrong, dup(a), dup(b))


def test_broadcast_operand_with_stride_zero():
    x = rng.standard_normal(4)

    def f(x):
        return np.sum(np.outer(np.broadcast_to(x[:1], (5,)), x) ** 2)

    check_rule(f, dup(x))


def test_empty_operands():
    x = rng.standard_normal(3)

    def f(x):
        return np.sum(np.outer(x[:0], x)) + np.sum(np.outer(x, x[3:])) + np.sum(x)

    check_rule(f, dup(x))


def test_a_zero_adjoint_meets_no_infinite_operand():
    """As the elementwise product a[:, None] * b[None, :]: where z's adjoint is
    zero, an infinite operand contributes nothing (no 0 * inf = nan)."""
    a, b = np.array([1.0, 2.0]), np.array([3.0, np.inf, 4.0])

    def f(a, b):
        return np.sum(np.outer(a, b)[:, 0]) + np.sum(np.outer(b, a)[0])

    def g(a, b):
        return np.sum((a[:, None] * b[None, :])[:, 0]) + np.sum((b[:, None] * a[None, :])[0])

    assert all(np.isfinite(v).all() for v in sad.gradient(f, a, b))
    for u, v in zip(sad.gradient(f, a, b), sad.gradient(g, a, b)):
        np.testing.assert_array_equal(u, v)


def test_repeated_sweeps_batch_and_jacobian():
    n = 6
    A = rng.standard_normal((n, n)) + n * np.eye(n)
    seeds = tuple(rng.standard_normal((n, n)) for _ in range(3))

    def f(A):
        lu_logabsdet(A)

    dAs = tuple(s.copy() for s in seeds)
    sad.autodiff(f, BatchDuplicated(A.copy(), dAs))
    for s, d in zip(seeds, dAs):
        one = s.copy()
        sad.autodiff(f, Duplicated(A.copy(), one))
        assert same_bits(one, d)

    x = rng.standard_normal(130)  # lazy products

    def h(x):
        o = np.outer(x, x[:100])
        return np.sum(o * o, axis=1)[:5] + np.outer(x[:5], x[5:8]).sum(axis=1)

    J = sad.jacobian(h, x, mode=sad.Reverse)
    np.testing.assert_allclose(J, sad.jacobian(h, x, mode=sad.Forward), rtol=1e-12, atol=1e-12)


def test_what_the_record_leaves_to_the_general_path():
    x = rng.standard_normal(3)
    M = rng.standard_normal((2, 2))

    def f(x, M):
        t = x[0] * x[1]                           # a traced scalar
        return (np.sum(np.outer(t, x)) + np.sum(np.outer(M, x)) + np.sum(np.outer(x, 2.0))
                + np.sum(np.outer(x, np.arange(3))) + np.sum(np.outer(x, [1.0, 2.0])))

    check_rule(f, dup(x), dup(M))


def test_used_after_the_call():
    x = rng.standard_normal(3)
    kept = []

    def f(x):
        kept.append(x)
        return np.sum(x)

    autodiff(f, dup(x))
    with pytest.raises(RuntimeError, match="after its autodiff call"):
        np.outer(kept[0], kept[0])


# --------------------------------------------------------------------------
# random views of one array against the closed form

def _view(x, spec):
    start, stop, step = spec
    return x[start:stop:step]


views = st.tuples(st.integers(0, 12), st.integers(0, 12), st.sampled_from([1, 2, 3, -1, -2]))


@settings(max_examples=60, deadline=None)
@given(va=views, vb=views, same=st.booleans(), const_b=st.booleans(), seed=st.integers(0, 99))
def test_random_views_against_closed_form(va, vb, same, const_b, seed):
    r = np.random.default_rng(seed)
    x, y = r.standard_normal(12), r.standard_normal(12)
    a_idx = np.arange(12)[slice(*va)]
    b_idx = np.arange(12)[slice(*vb)]
    W = r.standard_normal((len(a_idx), len(b_idx)))

    def f(x, y):
        b = _view(x if same else y, vb)
        return np.sum(W * np.outer(_view(x, va), b))

    dx, dy = np.zeros(12), np.zeros(12)
    yarg = Const(y) if const_b else Duplicated(y, dy)
    autodiff(f, Duplicated(x, dx), yarg)
    want_x, want_y = np.zeros(12), np.zeros(12)
    bv = (x if same else y)[b_idx]
    np.add.at(want_x, a_idx, W @ bv)
    if same:
        np.add.at(want_x, b_idx, W.T @ x[a_idx])
    elif not const_b:
        np.add.at(want_y, b_idx, W.T @ x[a_idx])
    np.testing.assert_allclose(dx, want_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dy, want_y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("zero_in", ["x", "y", "both"])
def test_zero_operand_against_an_infinite_adjoint(zero_in, layout):
    """sqrt of an outer product with zero entries: the adjoint of those
    entries is infinite, and the zero operand it meets gives 0, as in every
    other record and in forward mode (the zero-factor convention), on the
    vectorized rows and on the strided ones."""
    x0 = np.array([1.0, 2.0, 0.5, 3.0])
    y0 = np.array([0.0, 1.0, 4.0])
    if zero_in in ("x", "both"):
        x0 = np.array([0.0, 2.0, 0.5, 3.0])
    if zero_in == "y":
        y0 = np.array([2.0, 0.0, 4.0])

    def f(x, y):
        if layout == "strided":
            x, y = x[::2], y[::2]
        return np.sum(np.sqrt(np.outer(x, y)) * 0.5)

    def grads(x, y):
        rev = sad.autodiff(f, Active(x.copy()), Active(y.copy()))
        fwd_x = [sad.autodiff(f, Duplicated(x.copy(), e), Const(y), mode=sad.Forward)
                 for e in np.eye(x.size)]
        fwd_y = [sad.autodiff(f, Const(x), Duplicated(y.copy(), e), mode=sad.Forward)
                 for e in np.eye(y.size)]
        return rev, np.array(fwd_x), np.array(fwd_y)
    (gx, gy), fx, fy = grads(x0, y0)
    np.testing.assert_array_equal(gx, fx)
    np.testing.assert_array_equal(gy, fy)
