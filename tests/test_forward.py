"""Forward mode (shadowad/engines/forward/forward.py, shadowad/engines/forward/dual.py): tangents that travel
with the values, in one lane (Duplicated) or k lanes (BatchDuplicated)."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, BatchDuplicated, Const, Duplicated, Forward, ForwardWithPrimal, Vector
from shadowad._c import fast, lib
from shadowad.engines.rules.elementwise import EW_OPS
from shadowad.testing import check_dot_product, check_forward, same_bits

rng = np.random.default_rng(7)


def fd_tangent(f, xs, dxs, h=1e-6):
    """Central difference of f along the directions dxs (f on plain copies)."""
    def at(sign):
        r = f(*[x + sign * h * d if d is not None else x.copy() for x, d in zip(xs, dxs)])
        return np.asarray(r, dtype=float)
    return (at(1.0) - at(-1.0)) / (2 * h)


def positive(n):
    return rng.uniform(0.2, 0.9, n)


UNARY = [u for u in EW_OPS if u.nin == 1]
BINARY = [u for u in EW_OPS if u.nin == 2]


@pytest.mark.parametrize("ufunc", UNARY + BINARY, ids=lambda u: u.__name__)
def test_ufunc_tangent_matches_finite_differences(ufunc):
    # (arccosh is defined from 1 on)
    xs = [positive(5) + (ufunc is np.arccosh) for _ in range(ufunc.nin)]
    dxs = [rng.standard_normal(5) for _ in xs]
    got = sad.autodiff(lambda *a: ufunc(*a), *map(Duplicated, xs, [d.copy() for d in dxs]),
                       mode=Forward)
    np.testing.assert_allclose(got, fd_tangent(ufunc, xs, dxs), rtol=1e-6, atol=1e-8)
    # the scalar path gives the same tangents element by element
    for i in (0, 3):
        t = sad.autodiff(lambda *a: ufunc(*a), *[Duplicated(float(x[i]), float(d[i]))
                                                for x, d in zip(xs, dxs)], mode=Forward)
        assert t == pytest.approx(got[i], rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("ufunc", BINARY, ids=lambda u: u.__name__)
def test_binary_with_constants_and_broadcasting(ufunc):
    x, c = positive((3, 4)), positive(4)
    dx = rng.standard_normal((3, 4))
    got = sad.autodiff(lambda x, c: ufunc(c, x) + ufunc(x, 0.7), Duplicated(x, dx.copy()),
                       Const(c), mode=Forward)
    want = fd_tangent(lambda x: ufunc(c, x) + ufunc(x, 0.7), [x], [dx])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def scalar_loop(x, y):
    for i in range(1, len(x)):
        y[i] = x[i] * x[i] + 0.5 * y[i - 1]


def test_scalar_loop_leaves_the_untraced_primal():
    x, y = positive(6), positive(6)
    want_y = y.copy()
    scalar_loop(x.copy(), want_y)
    assert sad.autodiff(scalar_loop, Duplicated(x, rng.standard_normal(6)),
                        Duplicated(y, rng.standard_normal(6)), mode=Forward) is None
    assert same_bits(y, want_y)


def test_mutated_argument_holds_output_tangent():
    x0, y0 = positive(6), positive(6)
    dx, dy = rng.standard_normal(6), rng.standard_normal(6)

    def final(x, y):
        y = y.copy()
        scalar_loop(x, y)
        return y
    y, DY = y0.copy(), dy.copy()
    sad.autodiff(scalar_loop, Duplicated(x0.copy(), dx.copy()), Duplicated(y, DY), mode=Forward)
    np.testing.assert_allclose(DY, fd_tangent(final, [x0, y0], [dx, dy]), rtol=1e-6, atol=1e-9)


def test_float_argument_and_with_primal():
    def f(a, x):
        return a * a * np.sin(a) + 2.0 * a
    t, v = sad.autodiff(f, Duplicated(1.3, 1.0), Const(None), mode=ForwardWithPrimal)
    assert v == f(1.3, None)
    assert t == pytest.approx(2 * 1.3 * np.sin(1.3) + 1.3 ** 2 * np.cos(1.3) + 2.0, rel=1e-14)


def test_array_result_with_primal_is_numpys():
    x = positive(7)
    t, v = sad.autodiff(lambda x: np.exp(x) * x[::-1], Duplicated(x, np.ones(7)),
                        mode=ForwardWithPrimal)
    assert same_bits(v, np.exp(x) * x[::-1])
    np.testing.assert_allclose(t, np.exp(x) * x[::-1] + np.exp(x), rtol=1e-14)


def test_batch_lanes_equal_single_lanes():
    x, y = positive(5), positive(5)
    lanes = [rng.standard_normal(5) for _ in range(3)]

    def f(x, y):
        y *= np.sin(x)
        y[1:] += y[:-1] * x[1:]
        return y[2] * x[0]
    singles = []
    for d in lanes:
        dy = np.zeros(5)
        singles.append((sad.autodiff(f, Duplicated(x.copy(), d.copy()),
                                     Duplicated(y.copy(), dy), mode=Forward), dy))
    dys = tuple(np.zeros(5) for _ in lanes)
    Y = y.copy()
    got = sad.autodiff(f, BatchDuplicated(x.copy(), tuple(d.copy() for d in lanes)),
                       BatchDuplicated(Y, dys), mode=Forward)
    assert isinstance(got, tuple) and len(got) == 3
    for (t, dy), g, bdy in zip(singles, got, dys):
        assert g == pytest.approx(t, rel=1e-14)
        np.testing.assert_allclose(bdy, dy, rtol=1e-14)


def test_c_tangent_kernel_lanes_equal_one_lane_calls():
    """One call with k lanes computes what k one-lane calls compute, also when
    the output overlaps an input (u[1:] = u[1:] * u[:-1])."""
    for op in (lib.SAD_MUL, lib.SAD_ATAN2, lib.SAD_DIV):
        u = positive(9)
        du = rng.standard_normal((3, 9))
        z, x = u[1:], u[:-1]
        dz, dx = du[:, 1:], du[:, :-1]
        singles = []
        for lane in range(3):
            d = du[lane].copy()
            dzl, dxl = d[1:], d[:-1]  # named: C reads them during the call
            assert fast.tangent(op, lib.SAD_KX_ARR | lib.SAD_KY_ARR, z, dzl,
                                z, dzl, x, dxl, 0.0) == lib.SAD_OK
            singles.append(d)
        assert fast.tangent(op, lib.SAD_KX_ARR | lib.SAD_KY_ARR | lib.SAD_F_LANES,
                            z, dz, z, dz, x, dx, 0.0) == lib.SAD_OK
        for lane in range(3):
            assert same_bits(du[lane], singles[lane])


def test_indexing_forward():
    x = positive((4, 5))
    dx = rng.standard_normal((4, 5))

    def f(x):
        y = x[[0, 2]] * 2.0
        z = x[1:3, [0, 4]]
        w = x[[1, 3], :, ][:, [0, 1]]
        sep = x[[0, 3], 2]  # int and list: numpy's advanced dims first
        return y[0, 1] * z[1, 1] + w[1, 0] * sep[1] + x[-1, -1]
    np.testing.assert_allclose(sad.autodiff(f, Duplicated(x, dx.copy()), mode=Forward),
                               fd_tangent(f, [x], [dx]), rtol=1e-6)


def test_setindex_forward_basic_advanced_and_element():
    def f(x, y):
        y[0] = x[1] * x[2]
        y[1:3] = np.sin(x[:2])
        y[[3, 5]] = x[[0, 0]] * 3.0
        y[4] = 0.5
        y[y.shape[0] - 1] = x[3]
        return y[4] + y[3]
    x, y = positive(4), positive(6)
    dx, dy = rng.standard_normal(4), rng.standard_normal(6)
    Y, DY = y.copy(), dy.copy()
    t = sad.autodiff(f, Duplicated(x, dx.copy()), Duplicated(Y, DY), mode=Forward)

    def final(x, y):
        y = y.copy()
        f(x, y)
        return y
    np.testing.assert_allclose(DY, fd_tangent(final, [x, y], [dx, dy]), rtol=1e-6, atol=1e-9)
    assert t == pytest.approx(DY[4] + DY[3], rel=1e-14)
    check_dot_product(f, Duplicated(x, np.zeros(4)), Duplicated(y, np.zeros(6)))


def test_separated_advanced_indices_on_a_matrix():
    def f(w, x):
        w[[0, 2], 1, [1, 0]] = w[[0, 2], 1, [1, 0]] * x[:2]
        w[[1, 2], :, 0] = np.sin(w[[0, 1], :, 1]) * x[3]  # separated: numpy moves axes
        return w[2, 1, 0] * w[0, 1, 1]
    w, x = positive((3, 3, 2)), positive(4)
    check_dot_product(f, Duplicated(w, np.zeros(w.shape)), Duplicated(x, np.zeros(4)))


def test_writes_into_const_memory_are_promoted():
    def f(x, c):
        c[1] = x[0] * 2.0
        c[2:] = x[1:3]
        return c[1] * c[3] + c[0]
    x, c = positive(3), positive(4)
    t = sad.autodiff(f, Duplicated(x, np.array([1.0, 0.0, 1.0])), Const(c.copy()), mode=Forward)
    assert t == pytest.approx(2.0 * x[2] + 2 * x[0] * 1.0, rel=1e-14)


def test_layouts_of_user_tangents():
    """Fortran-ordered and strided arguments and shadows (lanes copied in and out)."""
    base = positive((6, 8))
    x = np.asfortranarray(base)
    dx = rng.standard_normal((6, 8))
    y = positive((12, 8))[::2]
    dy = np.asfortranarray(rng.standard_normal((6, 8)))

    def f(x, y):
        y *= x
        y[:, 1:] += np.sin(y[:, :-1])
        return y[5, 7] * x[0, 0]

    def final(x, y):
        y = y.copy()
        f(x, y)
        return y
    Y, DY = y.copy(), dy.copy()
    want = fd_tangent(final, [x, y], [dx, dy])
    sad.autodiff(f, Duplicated(x.copy(order="F"), dx.copy()), Duplicated(Y, DY), mode=Forward)
    np.testing.assert_allclose(DY, want, rtol=1e-6, atol=1e-9)


def test_failure_restores_primals_and_shadows():
    x, y = positive(5), positive(5)
    dx, dy = rng.standard_normal(5), rng.standard_normal(5)
    c = positive(5)
    before = [a.copy() for a in (x, y, dx, dy, c)]

    def f(x, y, c):
        y *= x
        c[0] = 3.0
        y[2] = x[1] * 2.0
        raise ArithmeticError("stop")
    with pytest.raises(ArithmeticError):
        sad.autodiff(f, Duplicated(x, dx), Duplicated(y, dy), Const(c), mode=Forward)
    for a, b in zip((x, y, dx, dy, c), before):
        assert same_bits(a, b)


def test_restore_puts_primals_back_keeps_output_tangents():
    x, y = positive(5), positive(5)
    dx, dy = rng.standard_normal(5), np.zeros(5)
    y0 = y.copy()

    def f(x, y):
        y *= np.exp(x)
    sad.autodiff(f, Duplicated(x, dx.copy()), Duplicated(y, dy), mode=Forward, restore=True)
    assert same_bits(y, y0)
    np.testing.assert_allclose(dy, y0 * np.exp(x) * dx, rtol=1e-14)


def test_vector_push_pop_forward():
    def f(v, x):
        v.push(x[0] * x[1])
        v.push(np.sin(x))
        a = v.pop()
        v[0] = v[0] * a
        return v[1] + v[len(v) - 1] * 2.0
    v, dv = Vector([0.5, 1.5]), Vector([1.0, -1.0])
    x = positive(3)
    dx = rng.standard_normal(3)
    t = sad.autodiff(f, Duplicated(v, dv), Duplicated(x, dx.copy()), mode=Forward)

    def plain(x, vals):
        v = Vector(vals)
        return f(v, x)
    h = 1e-6
    want = (plain(x + h * dx, [0.5 + h, 1.5 - h]) - plain(x - h * dx, [0.5 - h, 1.5 + h])) / (2 * h)
    assert t == pytest.approx(want, rel=1e-6)
    assert len(dv) == len(v)


def test_errors():
    x = positive(3)
    with pytest.raises(TypeError, match="Active is not allowed"):
        sad.autodiff(lambda x: x, Active(x), mode=Forward)
    with pytest.raises(ValueError, match="shape"):
        Duplicated(x, np.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        BatchDuplicated(x, (np.zeros(3), np.zeros(2)))
    with pytest.raises(ValueError, match="numbers of shadows"):
        sad.autodiff(lambda x, y: None, BatchDuplicated(x, (np.zeros(3),)),
                     BatchDuplicated(x.copy(), (np.zeros(3), np.zeros(3))), mode=Forward)
    with pytest.raises(TypeError, match="mixed with BatchDuplicated"):
        sad.autodiff(lambda x, y: None, Duplicated(x, np.zeros(3)),
                     BatchDuplicated(x.copy(), (np.zeros(3), np.zeros(3))), mode=Forward)
    with pytest.raises(TypeError, match="returned a dict"):
        sad.autodiff(lambda x: {"a": x}, Duplicated(x, np.zeros(3)), mode=Forward)
    with pytest.raises(TypeError, match="float"):
        sad.autodiff(lambda x: float(x[0]), Duplicated(x, np.zeros(3)), mode=Forward)


def test_batch_of_plain_numbers():
    """Ints are numbers like floats: BatchDuplicated(2, (1, 3)) is the float 2.0
    with two tangent lanes (an int tangent once reached C as an array)."""
    got = sad.autodiff(lambda a: a * a + 1.0, BatchDuplicated(2, (1, 3)), mode=Forward)
    assert got == (4.0, 12.0)
    assert sad.autodiff(lambda a: a * 3.0, BatchDuplicated(2.0, (1,)), mode=Forward) == (3.0,)


def test_numpy_scalar_arithmetic_on_dual_scalars():
    # np.float64 * dual scalar goes through the ufunc path; values and tangents
    # stay floats, and a dual scalar broadcast into an array works
    def f(x):
        a = np.float64(2.0) * x
        b = a * a
        return np.sum(np.zeros(2) + b)

    assert sad.autodiff(f, sad.Duplicated(1.0, 1.0), mode=sad.Forward) == 16.0
    tangents = sad.autodiff(f, sad.BatchDuplicated(1.0, (1.0, 0.5)), mode=sad.Forward)
    assert tangents == (16.0, 8.0)


def test_results_laid_out_like_a_transposed_operand():
    # numpy gives a ufunc of a transposed view the view's (Fortran) layout; the
    # result's tangent must follow that layout, or later views see wrong lanes
    A = np.random.default_rng(5).standard_normal((3, 4))

    def f(A):
        B = np.exp(A.T) * 2.0          # Fortran-ordered results
        return np.sum(B[1:, :2] * B[0, :2]) + np.sum(B.T[2] - B[:, 1])

    check_forward(f, A)


def test_a_dual_scalar_kept_from_a_finished_call_with_plain_arrays():
    """Nothing runs to give the result its Context: a clear error, not an
    AttributeError from inside the rules."""
    kept = {}

    def f(x):
        kept["s"] = x * 2.0
        return x * 3.0
    sad.autodiff(f, Duplicated(1.5, 1.0), mode=sad.Forward)
    s = kept["s"]
    for use in (lambda: s * np.ones(3), lambda: np.ones(3) - s, lambda: np.add(s, np.ones(2))):
        with pytest.raises(RuntimeError, match="after its autodiff call finished"):
            use()


# --------------------------------------------------------------------------
# the tangent kernel's loops (csrc/ops/ew_forward.c: tangent_tile) and what
# forward mode hands back without copying (forward._tangent)

def _f64(bits):
    return np.array(bits, dtype=np.uint64).view(np.float64)


def _quiet(v):
    return v + 0.0  # one NaN operand: numpy returns it quieted, payload kept


def _reference_tangent(terms):
    """The tangent as the scalar loop computed it: each term t * p taken only
    where neither factor is zero (a zero factor gives zero, even against an
    infinite or NaN one), from 0.0; of two NaNs the tangent's before the
    partial's and the sum's before the term's (written without ever combining
    two NaNs, so numpy's operand order cannot matter)."""
    with np.errstate(all="ignore"):
        d = None
        for t, p in terms:
            m = np.where(np.isnan(t), _quiet(t), t * np.where(np.isnan(t), 1.0, p))
            live = (t != 0.0) & (p != 0.0)
            if d is None:
                d = np.where(live, 0.0 + m, 0.0)
            else:
                d = np.where(live, np.where(np.isnan(d), d, d + m), d)
        return d


SPECIAL = _f64([0x7FF8000000000001, 0xFFF8000000000002, 0x7FF4000000000003])  # NaNs (last: signalling)
VALUES = np.concatenate([SPECIAL, [0.0, -0.0, np.inf, -np.inf, 1e-310, 1e300, -2.5, 3.0]])


def _pattern(n, shift):
    """n entries cycling through VALUES (shifted so x, y, dx and dy pair
    every special value with every other one somewhere)."""
    return VALUES[(np.arange(n) * (shift + 1) + shift) % len(VALUES)]


@pytest.mark.parametrize("n", [1, 255, 256, 257, 1000])
def test_tangent_kernel_zero_tangents_and_nans_as_the_scalar_loop(n):
    """dz = px dx + py dy with every pairing of zeros, infinities and NaNs
    of several payloads (signalling included), across tile boundaries: the
    vectorized loop gives the scalar loop's bits, NaN payloads and signs too."""
    x, y, dx, dy = (_pattern(n, s) for s in (0, 1, 3, 5))
    z = np.empty(n)  # C reads its shape; these partials do not read the value
    with np.errstate(all="ignore"):
        cases = [(lib.SAD_MUL, [(dx, y), (dy, x)]),
                 (lib.SAD_DIV, [(dx, 1.0 / y), (dy, -x / (y * y))]),
                 (lib.SAD_ADD, [(dx, np.ones(n)), (dy, np.ones(n))])]
    for op, terms in cases:
        dz = np.empty(n)
        assert fast.tangent(op, lib.SAD_KX_ARR | lib.SAD_KY_ARR, z, dz,
                            x, dx, y, dy, 0.0) == lib.SAD_OK
        assert same_bits(dz, _reference_tangent(terms)), op
        for which, (t, p) in enumerate(terms):  # one operand with tangents
            dz = np.empty(n)
            ids = (x, t, y, 0) if which == 0 else (x, 0, y, t)
            assert fast.tangent(op, lib.SAD_KX_ARR | lib.SAD_KY_ARR, z,
                                dz, *ids, 0.0) == lib.SAD_OK
            assert same_bits(dz, _reference_tangent([(t, p)])), (op, which)
    xs = np.abs(x)  # sqrt: an infinite partial at 0, NaN ones at NaN
    dz = np.empty(n)
    with np.errstate(all="ignore"):  # NaNs of several payloads
        z = np.sqrt(xs)  # the partial reads the value, which the caller computed
    assert fast.tangent(lib.SAD_SQRT, lib.SAD_KX_ARR, z, dz,
                        xs, dx, 0, 0, 0.0) == lib.SAD_OK
    with np.errstate(all="ignore"):
        assert same_bits(dz, _reference_tangent([(dx, 0.5 / np.sqrt(xs))]))


@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("ufunc", UNARY + BINARY, ids=lambda u: u.__name__)
def test_tangent_kernel_strided_and_broadcast_lanes(ufunc, lanes):
    """Tangents read at stride 0 (a broadcast, as sad.fwddiff's inputs have)
    or at other strides, and tangents written at strides, give the bits of
    contiguous ones."""
    op, n = EW_OPS[ufunc], 600
    x, y = positive(n), positive(n)
    rows = rng.standard_normal((lanes, 1))
    rows[0] = 0.0
    flags = lib.SAD_F_LANES | lib.SAD_KX_ARR | (lib.SAD_KY_ARR if ufunc.nin == 2 else 0)

    z = ufunc(x, y) if ufunc.nin == 2 else ufunc(x)  # the value, which partials may read

    def run(dx, dy, dz):
        rc = fast.tangent(op, flags, z, dz, x, dx,
                          y if ufunc.nin == 2 else None,
                          dy if ufunc.nin == 2 else None, 0.0)
        assert rc == lib.SAD_OK
        return np.array(dz)

    dx = np.broadcast_to(rows, (lanes, n))
    dy = rng.standard_normal((lanes, 2 * n))[:, ::2]
    want = run(np.ascontiguousarray(dx), np.ascontiguousarray(dy), np.empty((lanes, n)))
    assert same_bits(run(dx, dy, np.empty((lanes, n))), want)
    assert same_bits(run(dx, dy, np.empty((lanes, 3 * n))[:, ::3]), want)


def test_results_are_handed_back_without_sharing_memory():
    """A temporary f made is handed back as it is (primal and tangent); the
    same temporary returned twice, a view of one, and an argument's memory
    are copies, so no two results and no argument share memory."""
    x, dx = positive(6), rng.standard_normal(6)

    def f(x):
        z = np.exp(x)
        return z, z, z[1:], x, np.sin(x).T
    tangents, values = sad.autodiff(f, Duplicated(x, dx.copy()), mode=ForwardWithPrimal)
    for k, (t, v) in enumerate(zip(tangents, values)):
        for a in (x, dx):
            assert not np.shares_memory(t, a) and not np.shares_memory(v, a)
        for t2, v2 in zip(tangents[k + 1:], values[k + 1:]):
            assert not np.shares_memory(t, t2) and not np.shares_memory(v, v2)
    np.testing.assert_array_equal(values[0], np.exp(x))
    np.testing.assert_array_equal(values[2], np.exp(x)[1:])
    np.testing.assert_allclose(tangents[1], np.exp(x) * dx, rtol=1e-15)
    np.testing.assert_array_equal(tangents[3], dx)
    # the fresh result itself, and its one lane of tangents, not copies of them
    assert values[0].flags.owndata
    assert tangents[0].base is not None and tangents[0].base.shape == (1, 6)


def test_returned_argument_is_a_copy_under_restore():
    x, dx = positive(5), rng.standard_normal(5)
    x0 = x.copy()

    def f(x):
        x *= 2.0
        return x
    t, v = sad.autodiff(f, Duplicated(x, dx.copy()), mode=ForwardWithPrimal, restore=True)
    assert same_bits(x, x0)
    np.testing.assert_array_equal(v, 2.0 * x0)
    np.testing.assert_array_equal(t, 2.0 * dx)


def test_batch_results_are_lanes_of_their_own():
    x = positive(5)
    lanes = tuple(rng.standard_normal(5) for _ in range(3))
    got = sad.autodiff(lambda x: np.sin(x), BatchDuplicated(x, lanes), mode=Forward)
    for k, (g, d) in enumerate(zip(got, lanes)):
        np.testing.assert_allclose(g, np.cos(x) * d, rtol=1e-15)
        assert g.flags.c_contiguous
        for g2 in got[k + 1:]:
            assert not np.shares_memory(g, g2)
