"""Contractions and linear algebra (#16): np.einsum, np.tensordot,
np.linalg's multi_dot, matrix_power, norm, cholesky, eigh, qr, svd, pinv,
lstsq and np.trace's offset/axes.  check_rule on each (finite differences,
restore, accumulate-once, dot product), every keyword form supported, the
values numpy's bit for bit, the degenerate points, third derivatives through
the nested engine, and the errors of what is refused."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, Forward, Reverse
from shadowad.testing import check_failure_atomic, check_rule, same_bits
from coverage_helpers import dup, weights, wsum  # noqa: F401

rng = np.random.default_rng(16)





def spd(n, seed=0):
    a = np.random.default_rng(seed).standard_normal((n, n))
    return a @ a.T + n * np.eye(n)


# --------------------------------------------------------------------------
# einsum: every subscript form

EINSUM = [
    ("ij,jk->ik", (3, 4), (4, 2)), ("ij,jk", (3, 4), (4, 2)), ("ii->i", (3, 3)), ("ii", (3, 3)),
    ("ij->", (2, 3)), ("ij->ji", (2, 3)), ("ij", (2, 3)), ("ji", (2, 3)),
    ("...i,...i->...", (2, 3), (1, 3)), ("i,i->i", (1,), (3,)), ("...ij,...jk", (2, 3, 4), (4, 2)),
    ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)), ("ij,ij,ij->i", (2, 3), (2, 3), (2, 3)),
    ("iij->ij", (3, 3, 2)), ("iji->j", (3, 2, 3)), ("ij,j", (2, 3), (3,)), ("i,j", (2,), (3,)),
    ("i,j->", (2,), (3,)), ("ij,jk,kl->il", (2, 3), (3, 4), (4, 2)), ("...", (2, 3)),
    ("ii,i->i", (3, 3), (3,)), ("Ab,bC->AC", (2, 3), (3, 2)), (" i j , j k -> i k ", (2, 3), (3, 2)),
]


@pytest.mark.parametrize("optimize", [False, True, "greedy", "optimal"])
@pytest.mark.parametrize("spec", EINSUM, ids=[s[0] for s in EINSUM])
def test_einsum_check_rule(spec, optimize):
    sub, shapes = spec[0], spec[1:]
    xs = [rng.standard_normal(s) for s in shapes]
    expect = np.einsum(sub, *xs, optimize=optimize)
    seen = []

    def f(*a):
        r = np.einsum(sub, *a, optimize=optimize)
        seen.append(sad.primal(r))
        return wsum(r)
    check_rule(f, *[dup(x) for x in xs])
    if optimize is False:
        assert same_bits(np.asarray(seen[0]), np.asarray(expect))
    else:  # an optimized path may call BLAS, whose rounding follows the operands' alignment
        np.testing.assert_allclose(np.asarray(seen[0]), np.asarray(expect), rtol=1e-14,
                                   atol=1e-300)


def test_einsum_operand_list_form_and_explicit_path():
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    path = np.einsum_path("ij,jk->ik", a, b, optimize="optimal")[0]
    check_rule(lambda a, b: wsum(np.einsum(a, [0, 1], b, [1, 2], [0, 2]))
               + wsum(np.einsum(a, [Ellipsis, 1], a * 2.0, [Ellipsis, 1]))
               + wsum(np.einsum("ij,jk->ik", a, b, optimize=path)), dup(a), dup(b))


def test_einsum_same_operand_twice_and_plain_operands():
    x = rng.standard_normal(4)
    c = rng.standard_normal((4, 4))
    g, = sad.gradient(lambda x: np.einsum("i,ij,j", x, c, x), x)
    np.testing.assert_allclose(g, (c + c.T) @ x, rtol=1e-13)
    check_rule(lambda x: np.einsum("i,i->", x, x) + np.einsum("i,ij,j", x, [[1.0] * 4] * 4, x), dup(x))


def test_einsum_trace_gradient_is_the_identity_even_against_inf():
    g, = sad.gradient(lambda x: np.einsum("ii", x), np.array([[1.0, np.inf], [np.nan, 2.0]]))
    assert same_bits(g, np.eye(2))


def test_einsum_zero_factor_convention_in_both_modes():
    # x[1] = 0 meets inf in y: the term is 0, so the derivative wrt y[0] is x[0] only
    x, y = np.array([2.0, 0.0]), np.array([1.0, np.inf])
    gr = sad.autodiff(lambda x, y: np.einsum("i,i", x, y), Const(x), Active(y))[1]
    assert same_bits(gr, np.array([2.0, 0.0]))
    gf = sad.autodiff(lambda x, y: np.einsum("i,i", x, y), Const(x), Duplicated(y, np.array([1.0, 0.0])),
                      mode=Forward)
    assert gf == 2.0


def test_einsum_views_write_through_as_numpys():
    # numpy's one-operand einsum that sums nothing is a writable view
    def f(y):
        d = np.einsum("ij->ji", y)
        d[0, 1] = 7.0 * d[0, 0]
        return np.sum(y * y)
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    check_rule(f, dup(y))
    yy, dy = y.copy(), np.zeros((2, 2))
    sad.autodiff(f, Duplicated(yy, dy))
    expect = y.copy()
    f(expect)
    assert same_bits(yy, expect) and same_bits(dy, np.array([[100.0, 4.0], [0.0, 8.0]]))
    # a diagonal is a read-only view here: a write into it is refused, not lost
    with pytest.raises(ValueError, match="read-only"):
        sad.autodiff(lambda y: np.einsum("ii->i", y).__setitem__(0, 3.0), dup(y))


def test_einsum_out_argument():
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))

    def f(a, b, y):
        np.einsum("ij,jk->ik", a, b, out=y)
        return wsum(y)
    check_rule(f, dup(a), dup(b), dup(np.zeros((2, 2))))


@pytest.mark.parametrize("bad,match", [
    (lambda x: np.einsum("ij,jk", x, np.ones((4, 2))), "broadcast"),
    (lambda x: np.einsum("ijk", x), "axes"),
    (lambda x: np.einsum("ij->ii", x), "repeated"),
    (lambda x: np.einsum("ij->k", x), "not in any operand"),
    (lambda x: np.einsum("ij", x, dtype=np.float32), "dtype"),
    (lambda x: np.einsum("ij", x, x), "operands"),
])
def test_einsum_refuses_bad_subscripts_clearly(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sad.gradient(lambda x: np.sum(bad(x)), np.ones((3, 3)))


# --------------------------------------------------------------------------
# tensordot, multi_dot, matrix_power: numpy's algorithm on traced values

@pytest.mark.parametrize("axes", [2, 1, 0, ([1], [0]), ([1, 2], [1, 0]), (1, 0), ([-1], [1])])
def test_tensordot(axes):
    a, b = rng.standard_normal((3, 4, 4)), rng.standard_normal((4, 4, 2))
    expect = np.tensordot(a, b, axes=axes)
    seen = []

    def f(a, b):
        r = np.tensordot(a, b, axes=axes)
        seen.append(sad.primal(r))
        return wsum(r)
    check_rule(f, dup(a), dup(b))
    assert same_bits(np.asarray(seen[0]), expect)


@pytest.mark.parametrize("shapes", [[(3, 4), (4, 2)], [(3, 4), (4, 5), (5, 2)], [(30, 4), (4, 50), (50, 2)],
                                    [(4,), (4, 5), (5, 2), (2, 3), (3,)], [(4,), (4, 5), (5,)],
                                    [(2, 4), (4, 5), (5, 6), (6,)]])
def test_multi_dot(shapes):
    xs = [rng.standard_normal(s) for s in shapes]
    expect = np.linalg.multi_dot(xs)
    seen = []

    def f(*xs):
        r = np.linalg.multi_dot(list(xs))
        seen.append(sad.primal(r))
        return wsum(r)
    check_rule(f, *[dup(x) for x in xs])
    assert same_bits(np.asarray(seen[0]), np.asarray(expect))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 12, -1, -3])
def test_matrix_power(n):
    a = rng.standard_normal((3, 3)) * 0.4 + np.eye(3)
    seen = []

    def f(a):
        r = np.linalg.matrix_power(a, n)
        seen.append(sad.primal(r))
        return wsum(r)
    check_rule(f, dup(a))
    assert same_bits(np.asarray(seen[0]), np.linalg.matrix_power(a, n))


def test_matrix_power_batched_and_errors():
    a = rng.standard_normal((2, 3, 3)) * 0.5
    check_rule(lambda a: wsum(np.linalg.matrix_power(a, 6)), dup(a))
    with pytest.raises(TypeError, match="integer"):
        sad.gradient(lambda a: np.sum(np.linalg.matrix_power(a, 1.5)), a)
    with pytest.raises(np.linalg.LinAlgError, match="square"):
        sad.gradient(lambda a: np.sum(np.linalg.matrix_power(a, 2)), np.ones((2, 3)))


# --------------------------------------------------------------------------
# norm: vector and matrix orders, axis, keepdims; values numpy's bit for bit

VECTOR_ORDS = [None, 1, 2, np.inf, -np.inf, 0, 3, 0.5, -1.5]
MATRIX_ORDS = [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("ord", VECTOR_ORDS, ids=str)
def test_vector_norm(ord, keepdims):
    x = rng.standard_normal((3, 4))
    seen = []

    def f(x):
        r1 = np.linalg.norm(x[0], ord)
        r2 = np.linalg.norm(x, ord, axis=1, keepdims=keepdims)
        r3 = np.linalg.norm(x, ord, axis=-2)
        seen.append([sad.primal(r) for r in (r1, r2, r3)])
        return r1 + wsum(r2) + wsum(r3)
    check_rule(f, dup(x))
    for got, expect in zip(seen[0], [np.linalg.norm(x[0], ord),
                                     np.linalg.norm(x, ord, axis=1, keepdims=keepdims),
                                     np.linalg.norm(x, ord, axis=-2)]):
        assert same_bits(np.asarray(got), np.asarray(expect))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
def test_matrix_norm(ord, keepdims):
    x = rng.standard_normal((2, 3, 4))
    seen = []

    def f(x):
        r1 = np.linalg.norm(x[0], ord)
        r2 = np.linalg.norm(x, ord, axis=(2, 1), keepdims=keepdims)
        seen.append([sad.primal(r) for r in (r1, r2)])
        return r1 + wsum(r2)
    check_rule(f, dup(x))
    for got, expect in zip(seen[0], [np.linalg.norm(x[0], ord),
                                     np.linalg.norm(x, ord, axis=(2, 1), keepdims=keepdims)]):
        assert same_bits(np.asarray(got), np.asarray(expect))


def test_norm_default_of_any_array_and_keepdims():
    x = rng.standard_normal((2, 3, 2))
    check_rule(lambda x: np.linalg.norm(x) + wsum(np.linalg.norm(x, keepdims=True)), dup(x))


@pytest.mark.parametrize("ord", [None, 2, 1, np.inf, 3, 0.5])
@pytest.mark.parametrize("mode", [Reverse, Forward])
def test_norm_of_the_zero_vector_has_gradient_zero_not_nan(ord, mode):
    z = np.zeros(3)
    if mode is Reverse:
        g, = sad.gradient(lambda x: np.linalg.norm(x, ord), z)
        assert not np.isnan(g).any()
        if ord in (None, 2, 3, 0.5):
            assert same_bits(g, np.zeros(3))
    else:
        t = sad.autodiff(lambda x: np.linalg.norm(x, ord), Duplicated(z, np.ones(3)), mode=Forward)
        assert not np.isnan(t)


@pytest.mark.parametrize("bad,exc,match", [
    (dict(ord="fro", axis=0), ValueError, "Invalid norm order"),
    (dict(ord=3, axis=(0, 1)), ValueError, "Invalid norm order for matrices"),
    (dict(axis=(0, 0)), ValueError, "Duplicate axes"),
    (dict(axis=(0, 1, 2)), ValueError, "Improper number"),
    (dict(axis=1.5), TypeError, "axis"),
])
def test_norm_refuses_what_numpy_refuses(bad, exc, match):
    with pytest.raises(exc, match=match):
        sad.gradient(lambda x: np.sum(np.linalg.norm(x, **bad)), np.ones((2, 2, 2)))


# --------------------------------------------------------------------------
# decompositions

def test_cholesky_lower_and_upper_and_batched():
    a = spd(4)
    check_rule(lambda a: wsum(np.linalg.cholesky(a)) + wsum(np.linalg.cholesky(a, upper=True)), dup(a))
    b = np.stack([spd(3, 1), spd(3, 2)])
    check_rule(lambda b: wsum(np.linalg.cholesky(b)), dup(b))


def test_cholesky_reads_one_triangle_as_numpy_does():
    # numpy reads the lower triangle; the other has derivative 0 (finite
    # differences of numpy's function agree), and for a symmetric matrix
    # built from parameters the gradient equals the symmetrized one
    a = spd(3)
    g, = sad.gradient(lambda a: wsum(np.linalg.cholesky(a)), a)
    assert same_bits(np.triu(g, 1), np.zeros((3, 3)))
    gu, = sad.gradient(lambda a: wsum(np.linalg.cholesky(a, upper=True)), a)
    assert same_bits(np.tril(gu, -1), np.zeros((3, 3)))
    p = rng.standard_normal((3, 3))
    gp, = sad.gradient(lambda p: wsum(np.linalg.cholesky(p @ p.T + 3.0 * np.eye(3))), p)
    g2, = sad.gradient(lambda a: wsum(np.linalg.cholesky(a)), p @ p.T + 3.0 * np.eye(3))
    np.testing.assert_allclose(gp, (g2 + g2.T) @ p, rtol=1e-12)  # dA = dp p^T + p dp^T
    check_rule(lambda p: wsum(np.linalg.cholesky(p @ p.T + 3.0 * np.eye(3))), dup(p))


def test_cholesky_value_and_refusal_of_indefinite():
    a = spd(3)
    r = sad.autodiff(lambda a: np.linalg.cholesky(a)[2, 1], Active(a), mode=sad.ReverseWithPrimal)[1]
    assert r == np.linalg.cholesky(a)[2, 1]
    with pytest.raises(np.linalg.LinAlgError):
        sad.gradient(lambda a: np.sum(np.linalg.cholesky(a)), -np.eye(2))


@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh_values_and_vectors(uplo):
    a = spd(4)
    # each eigenvector up to sign: |v| and v v^T are invariant
    check_rule(lambda a: wsum(np.linalg.eigh(a, UPLO=uplo)[0])
               + wsum(np.linalg.eigh(a, uplo)[1] ** 2), dup(a))
    w, v = np.linalg.eigh(a, uplo)
    seen = []
    sad.gradient(lambda a: seen.append(np.linalg.eigh(a, uplo)) or np.sum(seen[0][0]), a)
    assert same_bits(np.asarray(sad.primal(seen[0].eigenvalues)), w)
    assert same_bits(np.asarray(sad.primal(seen[0].eigenvectors)), v)


@pytest.mark.parametrize("mode", [Reverse, Forward])
def test_eigh_repeated_eigenvalues_eigenvalues_only_is_finite(mode):
    # 2 I: every pair of eigenvalues is repeated (1 / (w_j - w_i) = inf); the
    # eigenvalues' derivative is still right (sum of eigenvalues = trace)
    a = 2.0 * np.eye(3)
    if mode is Reverse:
        g, = sad.gradient(lambda a: np.sum(np.linalg.eigh(a)[0]), a)
        assert same_bits(g, np.eye(3))
        g, = sad.gradient(lambda a: np.sum(np.linalg.eigh(a)[0] ** 2), a)
        np.testing.assert_allclose(g, 4.0 * np.eye(3), atol=1e-15)
    else:
        da = np.zeros((3, 3))
        da[1, 1] = 1.0
        t = sad.autodiff(lambda a: np.sum(np.linalg.eigh(a)[0]), Duplicated(a, da), mode=Forward)
        assert t == 1.0


def test_eigh_repeated_eigenvalues_vectors_derivative_is_not_defined():
    # as in JAX: the eigenvectors of a repeated eigenvalue are not determined,
    # so their derivative is not finite (documented)
    g, = sad.gradient(lambda a: np.sum(np.linalg.eigh(a)[1] * weights((3, 3))), np.eye(3))
    assert not np.isfinite(g).all()


def test_qr_reduced_complete_r_and_batched():
    a = rng.standard_normal((5, 3))
    check_rule(lambda a: wsum(np.linalg.qr(a)[0]) + wsum(np.linalg.qr(a, mode="reduced").R)
               + wsum(np.linalg.qr(a, mode="r")), dup(a))
    s = rng.standard_normal((3, 3))
    check_rule(lambda s: wsum(np.linalg.qr(s, mode="complete")[0]), dup(s))
    b = rng.standard_normal((2, 4, 3))
    check_rule(lambda b: wsum(np.linalg.qr(b)[0]) + wsum(np.linalg.qr(b)[1]), dup(b))
    q, r = np.linalg.qr(a)
    seen = []
    sad.gradient(lambda a: seen.append(np.linalg.qr(a)) or np.sum(seen[0][1]), a)
    assert same_bits(np.asarray(sad.primal(seen[0].Q)), q)
    assert same_bits(np.asarray(sad.primal(seen[0].R)), r)


@pytest.mark.parametrize("kw,match", [(dict(mode="raw"), "mode='reduced'"),
                                      (dict(mode="complete"), "mode='reduced'"),
                                      (dict(), "wide matrix")])
def test_qr_refusals_name_the_fix(kw, match):
    shape = (2, 3) if not kw else (4, 2)
    with pytest.raises(NotImplementedError, match=match):
        sad.gradient(lambda a: np.sum(np.linalg.qr(a, **kw)[0]), np.ones(shape) + np.eye(*shape))


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 4, 3)])
def test_svd_reduced(shape):
    a = rng.standard_normal(shape)
    # u and vh up to a common sign per singular value: |u|, |vh|, u s vh
    check_rule(lambda a: wsum(np.abs(np.linalg.svd(a, full_matrices=False)[0]))
               + wsum(np.linalg.svd(a, full_matrices=False).S)
               + wsum(np.abs(np.linalg.svd(a, full_matrices=False)[2])), dup(a))
    check_rule(lambda a: wsum(np.linalg.svd(a, compute_uv=False)), dup(a))
    seen = []
    sad.gradient(lambda a: seen.append(np.linalg.svd(a, full_matrices=False)) or np.sum(seen[0][1]), a)
    for got, expect in zip(seen[0], np.linalg.svd(a, full_matrices=False)):
        assert same_bits(np.asarray(sad.primal(got)), expect)


def test_svd_degenerate_singular_values():
    # values alone: finite at repeated and zero singular values
    a = np.diag([2.0, 2.0, 0.0])
    g, = sad.gradient(lambda a: np.sum(np.linalg.svd(a, compute_uv=False)), a)
    assert np.isfinite(g).all()
    g, = sad.gradient(lambda a: np.sum(np.linalg.svd(a, full_matrices=False)[1]), a)
    assert np.isfinite(g).all()
    # the nuclear norm of a rank-deficient tall matrix: the vectors' adjoint is 0
    g, = sad.gradient(lambda a: np.linalg.norm(a, "nuc"), np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    assert np.isfinite(g).all()


def test_svd_refusals():
    with pytest.raises(NotImplementedError, match="full_matrices=False"):
        sad.gradient(lambda a: np.sum(np.linalg.svd(a)[0]), np.ones((3, 2)))
    with pytest.raises(NotImplementedError, match="hermitian"):
        sad.gradient(lambda a: np.sum(np.linalg.svd(a, hermitian=True)[1]), np.eye(2))


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (3, 3)])
def test_pinv(shape):
    a = rng.standard_normal(shape)
    check_rule(lambda a: wsum(np.linalg.pinv(a)) + wsum(np.linalg.pinv(a, rcond=1e-12)), dup(a))


@pytest.mark.parametrize("bshape", [(5,), (5, 2)])
def test_lstsq_full_rank(bshape):
    a, b = rng.standard_normal((5, 3)), rng.standard_normal(bshape)
    check_rule(lambda a, b: wsum(np.linalg.lstsq(a, b)[0]) + wsum(np.linalg.lstsq(a, b, rcond=None)[1])
               + wsum(np.linalg.lstsq(a, b)[3]), dup(a), dup(b))
    x, res, rank, s = np.linalg.lstsq(a, b)
    seen = []
    sad.gradient(lambda a: seen.append(np.linalg.lstsq(a, b)) or np.sum(seen[0][0]), a)
    assert same_bits(np.asarray(sad.primal(seen[0][0])), x)
    np.testing.assert_allclose(sad.primal(seen[0][1]), res, rtol=1e-12)
    assert seen[0][2] == rank


def test_lstsq_underdetermined_and_plain_matrix():
    a, b = rng.standard_normal((2, 4)), rng.standard_normal(2)
    check_rule(lambda a, b: wsum(np.linalg.lstsq(a, b)[0]), dup(a), dup(b))
    g, = sad.gradient(lambda b: np.sum(np.linalg.lstsq(a, b)[0]), b)
    np.testing.assert_allclose(g, np.linalg.pinv(a).T @ np.ones(4), rtol=1e-12)


# --------------------------------------------------------------------------
# trace with offset and axes

@pytest.mark.parametrize("offset,a1,a2", [(0, 0, 1), (1, 0, 1), (-1, 0, 1), (2, 1, 0), (0, 0, 2), (1, -1, 0)])
def test_trace_offset_and_axes(offset, a1, a2):
    x = rng.standard_normal((3, 4, 3))
    check_rule(lambda x: wsum(np.trace(x, offset, a1, a2)) + wsum(x.trace(offset=offset, axis1=a1, axis2=a2)),
               dup(x))


# --------------------------------------------------------------------------
# higher derivatives: the formulas are written in differentiable operations

F, R = Forward, Reverse
X0 = np.array([0.9, 0.45, 1.3, 0.7])


def _m(x):
    return np.reshape(x, (2, 2)) + 2.0 * np.eye(2)


PROGRAMS = {
    "einsum": lambda x: np.einsum("ij,jk,ki", _m(x), _m(x), _m(x)) + np.einsum("ii", _m(x) ** 3),
    "tensordot": lambda x: np.sum(np.tensordot(_m(x), _m(x) ** 2, axes=1) ** 2),
    "cholesky": lambda x: np.sum(np.linalg.cholesky(_m(x) @ _m(x).T) ** 3),
    "eigh": lambda x: np.sum(np.linalg.eigh(_m(x) + _m(x).T)[0] ** 3)
    + np.sum(np.linalg.eigh(_m(x) + _m(x).T)[1] ** 2 * weights((2, 2))),
    "qr": lambda x: np.sum(np.linalg.qr(_m(x))[1] ** 2) + np.sum(np.linalg.qr(_m(x))[0] * weights((2, 2))),
    "svd": lambda x: np.sum(np.linalg.svd(_m(x))[1] ** 3)
    + np.sum(np.linalg.svd(_m(x))[0] ** 2 * weights((2, 2))),
    "norm": lambda x: np.linalg.norm(x) ** 3 + np.linalg.norm(_m(x), "nuc") ** 2 + np.linalg.norm(x, 3),
    "pinv": lambda x: np.sum(np.linalg.pinv(_m(x)) ** 2),
    "lstsq": lambda x: np.sum(np.linalg.lstsq(_m(x), x[:2])[0] ** 2),
    "matrix_power": lambda x: np.sum(np.linalg.matrix_power(_m(x) * 0.5, 3))
    + np.sum(np.linalg.matrix_power(_m(x), -1)),
}


def _derivative(g, mode):
    if mode is R:
        return lambda t: sad.autodiff(g, Active(t))[0]
    return lambda t: sad.autodiff(g, Duplicated(t, 1.0), mode=F)


def _fd3(g, t, h=1e-3):
    return (g(t + 2 * h) - 2 * g(t + h) + 2 * g(t - h) - g(t - 2 * h)) / (2 * h ** 3)


@pytest.mark.parametrize("modes", [(R, R, R), (F, R, F), (R, F, R), (F, F, F)],
                         ids=["RRR", "FRF", "RFR", "FFF"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_third_derivatives_through_nested(name, modes):
    p = PROGRAMS[name]
    d = np.array([0.3, -0.7, 0.5, 0.2])

    def line(t):
        return p(X0 + t * d)
    got = _derivative(_derivative(_derivative(line, modes[0]), modes[1]), modes[2])(0.0)
    expect = _fd3(lambda t: float(line(t)), 0.0)
    np.testing.assert_allclose(got, expect, rtol=2e-4, atol=1e-6)


# --------------------------------------------------------------------------
# eigvalsh, and numpy 2's svdvals, vector_norm and matrix_norm

@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigvalsh(uplo):
    a = np.stack([spd(4, 1), spd(4, 2)])
    check_rule(lambda a: wsum(np.linalg.eigvalsh(a, uplo)), dup(a))
    seen = []
    sad.gradient(lambda a: seen.append(np.linalg.eigvalsh(a, UPLO=uplo)) or np.sum(seen[0]), a)
    assert same_bits(np.asarray(sad.primal(seen[0])), np.linalg.eigvalsh(a, uplo))
    g, = sad.gradient(lambda a: np.sum(np.linalg.eigvalsh(a, uplo) ** 2), 2.0 * np.eye(3))
    np.testing.assert_allclose(g, 4.0 * np.eye(3), atol=1e-15)


@pytest.mark.skipif(not hasattr(np.linalg, "svdvals"), reason="numpy < 2")
def test_svdvals():
    a = rng.standard_normal((2, 3, 5))
    check_rule(lambda a: wsum(np.linalg.svdvals(a)), dup(a))


@pytest.mark.skipif(not hasattr(np.linalg, "vector_norm"), reason="numpy < 2")
@pytest.mark.parametrize("kw", [{}, dict(axis=1), dict(axis=(0, 2), keepdims=True), dict(ord=1, axis=-1),
                                dict(ord=np.inf, keepdims=True), dict(ord=3.0, axis=(2,))])
def test_vector_norm_function(kw):
    a = rng.standard_normal((2, 3, 4))
    check_rule(lambda a: wsum(np.linalg.vector_norm(a, **kw)), dup(a))
    seen = []
    sad.gradient(lambda a: seen.append(np.linalg.vector_norm(a, **kw)) or np.sum(seen[0]), a)
    assert same_bits(np.asarray(sad.primal(seen[0])), np.asarray(np.linalg.vector_norm(a, **kw)))


@pytest.mark.skipif(not hasattr(np.linalg, "matrix_norm"), reason="numpy < 2")
@pytest.mark.parametrize("kw", [{}, dict(ord="nuc"), dict(ord=2, keepdims=True), dict(ord=1),
                                dict(ord=-np.inf)])
def test_matrix_norm_function(kw):
    a = rng.standard_normal((2, 3, 4))
    check_rule(lambda a: wsum(np.linalg.matrix_norm(a, **kw)), dup(a))
    seen = []
    sad.gradient(lambda a: seen.append(np.linalg.matrix_norm(a, **kw)) or np.sum(seen[0]), a)
    assert same_bits(np.asarray(sad.primal(seen[0])), np.asarray(np.linalg.matrix_norm(a, **kw)))


# --------------------------------------------------------------------------
# views, writes into arguments, an exception half-way, many calls in a row

def test_views_as_operands():
    x = rng.standard_normal((4, 6))
    check_rule(lambda x: wsum(np.einsum("ij,kj->ik", x[:, ::2], x.T[::-2, :3].T))
               + wsum(np.linalg.svd(x[::-1, 1::2], compute_uv=False))
               + wsum(np.linalg.cholesky(x[:, :4].T @ x[:, :4] + 4.0 * np.eye(4))[::-1])
               + np.linalg.norm(x[1, ::-2]) + wsum(np.tensordot(x[:, ::3], x[:, 1::3], axes=([0], [0]))),
               dup(x))


def test_results_written_into_arguments():
    a, y = spd(3), np.zeros((3, 3))

    def f(a, y):
        y[...] = np.linalg.cholesky(a)
        y += np.einsum("ij,jk->ik", a, y)
        a[0, 0] = np.linalg.eigh(a)[0][0]  # overwrites a after reading it
        return wsum(y) + np.sum(a)
    check_rule(f, dup(a), dup(y))


def test_exception_half_way_restores_and_leaves_shadows():
    a, y = spd(3), rng.standard_normal((3, 3))

    def f(a, y):
        y[...] = np.linalg.qr(a)[1] + np.einsum("ii->i", a)
        a *= 2.0
        np.linalg.svd(a)
        raise RuntimeError("half-way")
    check_failure_atomic(f, dup(a), dup(y), exc=RuntimeError)

    def g(a, y):  # numpy's own error half-way: cholesky of a matrix that is not definite
        y[...] = np.einsum("ij->ji", a)
        return np.sum(np.linalg.cholesky(-a))
    check_failure_atomic(g, dup(a), dup(y), exc=np.linalg.LinAlgError)


def test_many_calls_in_a_row_give_the_same_gradient():
    a = spd(4)

    def f(a):
        return (np.linalg.eigh(a)[0] @ np.arange(4.0) + np.linalg.norm(np.linalg.svd(a)[0], "nuc")
                + np.einsum("ij,ji", a, np.linalg.pinv(a)))
    first, = sad.gradient(f, a)
    for _ in range(30):
        g, = sad.gradient(f, a)
        assert same_bits(g, first)


def test_decomposition_results_written_in_place():
    # the usual sign fix of eigenvectors and Q written into the results
    a = spd(4)

    def f(a):
        w, v = np.linalg.eigh(a)
        v *= np.sign(sad.primal(v[0]))
        q, r = np.linalg.qr(a)
        q[:, 0] = -q[:, 0]
        u, s, vh = np.linalg.svd(a)
        u *= np.sign(sad.primal(u[0]))
        return wsum(v) + wsum(q) + wsum(r) + wsum(s) + np.sum(u[:, 0])
    check_rule(f, dup(a))
