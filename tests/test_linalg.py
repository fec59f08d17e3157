"""Linear algebra (dot, vdot, inner, outer, matmul and ``@``, np.linalg's
solve, inv, det, slogdet): finite differences, restore, accumulate-once,
activity combinations, primals equal to numpy's bit for bit, and errors."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import (Active, Const, Duplicated, Forward, ForwardWithPrimal, ReverseWithPrimal,
    autodiff)
from shadowad.testing import check_forward, check_rule, same_bits

rng = np.random.default_rng(3)


check_all = check_rule


def dup(a):
    a = np.array(a, dtype=float)
    return Duplicated(a, np.zeros_like(a))


def combos(a, b):
    """both active, one active (either side, Active or Duplicated), one const"""
    return [(dup(a), dup(b)), (Active(a), Const(b)), (Const(a), dup(b)),
            (dup(a), Active(b))]


def well_conditioned(*shape):
    n = shape[-1]
    return rng.standard_normal(shape) + 3.0 * np.eye(n)


# --------------------------------------------------------------------------
# products: each inside a program that also accumulates into an argument

BINARY = [
    (np.matmul, (3, 4), (4, 2)), (np.matmul, (4,), (4, 2)), (np.matmul, (3, 4), (4,)),
    (np.matmul, (4,), (4,)), (np.matmul, (2, 3, 4), (4, 2)), (np.matmul, (2, 3, 4), (2, 4, 2)),
    (np.matmul, (2, 1, 3, 4), (3, 4, 2)), (np.matmul, (4,), (2, 4, 3)),
    (np.matmul, (2, 3, 4), (4,)), (np.matmul, (1, 3, 4), (2, 4, 2)),
    (np.dot, (3, 4), (4, 2)), (np.dot, (4,), (4,)), (np.dot, (3, 4), (4,)),
    (np.dot, (4,), (4, 2)), (np.dot, (2, 3, 4), (4,)), (np.dot, (2, 3, 4), (5, 4, 2)),
    (np.dot, (), (3, 2)), (np.dot, (3,), ()),
    (np.inner, (4,), (4,)), (np.inner, (2, 4), (3, 4)), (np.inner, (2, 2, 3), (3,)),
    (np.inner, (), (3,)),
    (np.vdot, (4,), (4,)), (np.vdot, (2, 3), (2, 3)), (np.vdot, (2, 3), (6,)),
    (np.outer, (3,), (4,)), (np.outer, (2, 2), (3,)), (np.outer, (), (2,)),
]


@pytest.mark.parametrize("fn,sa,sb", BINARY,
                         ids=[f"{f.__name__}{a}{b}" for f, a, b in BINARY])
def test_product_in_place_program(fn, sa, sb):
    a, b = np.array(rng.standard_normal(sa)), np.array(rng.standard_normal(sb))
    y = np.array(rng.standard_normal(np.shape(fn(a, b))))

    def f(a, b, y):
        y += fn(a, b)
        y *= 0.5
        return np.sum(y * fn(a * a, b))

    for args in combos(a, b):
        check_all(f, *args, dup(y))
    check_all(f, Const(a), Const(b), dup(y))


@pytest.mark.parametrize("fn,sa,sb", BINARY,
                         ids=[f"{f.__name__}{a}{b}" for f, a, b in BINARY])
def test_product_primal_equals_numpy(fn, sa, sb):
    a, b = np.array(rng.standard_normal(sa)), np.array(rng.standard_normal(sb))
    want = fn(a, b)
    y = np.zeros(np.shape(want))

    def f(a, b, y):
        y[...] = fn(a, b)

    autodiff(f, dup(a), Const(b), Duplicated(y, np.zeros_like(y)))
    assert same_bits(y, want)


def test_matmul_operator_and_in_place_forms():
    A, B = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    x, y = rng.standard_normal(3), rng.standard_normal(3)

    def f(A, B, x, y):
        y += A @ x                    # TArray.__matmul__
        y -= B.T.dot(y)               # a method, with an aliasing in-place update
        C = np.zeros_like(A)
        np.matmul(A, B, out=C)        # out= through the ufunc path
        C @= B                        # __imatmul__
        return np.sum(C * C) + y @ y + x @ C @ x

    check_all(f, dup(A), dup(B), dup(x), dup(y))
    check_all(f, Active(A), Const(B), Const(x), dup(y))


def test_matmul_of_transposed_operands():
    # the pullback computes the product transposed when an operand's shadow is a
    # transposed view (GMM's Q @ swapaxes(xc, 1, 2)); the sum must be the same
    A, B = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 5))

    def f(A, B):
        C = np.matmul(np.swapaxes(A, 1, 2), B)         # (2, 4, 5)
        D = C @ np.swapaxes(B[:, :2], 1, 2)            # (2, 4, 2)
        return np.sum(D * D) + np.sum(A[0].T @ B[1])

    check_all(f, dup(A), dup(B))
    check_all(f, Active(A), Const(B))
    check_all(f, Const(A), dup(B))


# --------------------------------------------------------------------------
# a product whose right operand repeats active inputs along its columns: they
# take the column sums A^T (G 1) of its adjoint (csrc sad_ew_reverse_summed)

X_CONST = np.random.default_rng(30).standard_normal((7, 3))
X_LONG = np.random.default_rng(34).standard_normal((14, 3))


def _summed_programs():
    def gmm(q, m):               # the GMM's (x - means) @ Q^T, swapped, out of a sum
        xc = X_CONST[None] - m[:, None, :]                 # (2, 7, 3)
        z = np.matmul(q, np.swapaxes(xc, 1, 2))            # (2, 3, 7)
        return np.sum(z * z * 0.5)

    def unswapped(q, m):         # b itself, its active input repeated along the last axis
        b = m[:, :, None] * 2.0 + X_CONST[None, :3, :]     # (2, 3, 3)
        return np.sum(np.sin(q @ b))

    def both_active(q, m):       # an input that does not repeat: the full product
        xc = (X_CONST[None, :3] - m[:, None, :]) + q        # (2, 3, 3)
        return np.sum(np.matmul(q, np.swapaxes(xc, 1, 2)) ** 2)

    def not_repeated(q, m):      # an active input that varies along the columns
        w = (m[:, None, :] * X_LONG[None])[:, ::2, :]      # (2, 7, 3), a strided view
        xc = X_CONST[None] - w
        return np.sum(np.matmul(q, np.swapaxes(xc, 1, 2)) ** 2)

    def in_between(q, m):        # a record after b's: no shortcut
        xc = X_CONST[None] - m[:, None, :]
        t = m * 3.0
        return np.sum(np.matmul(q, np.swapaxes(xc, 1, 2)) ** 2) + np.sum(t)

    def used_again(q, m):        # another consumer after the product: b's slot is written
        xc = X_CONST[None] - m[:, None, :]
        z = np.matmul(q, np.swapaxes(xc, 1, 2))
        return np.sum(z ** 2) + np.sum(np.cos(xc))

    def nonlinear(q, m):         # b's record is not linear
        xc = np.exp(m[:, None, :] * 0.1) * X_CONST[None]
        return np.sum(np.matmul(q, np.swapaxes(xc, 1, 2)) ** 2)

    def broadcast_batch(q, m):   # b with one batch for q's two: the sums would need summing
        xc = X_CONST[None] - m[:1, None, :]                # (1, 7, 3)
        return np.sum(np.matmul(q, np.swapaxes(xc, 1, 2)) ** 2)
    return {f.__name__: f for f in (gmm, unswapped, both_active, not_repeated, in_between,
                                    used_again, nonlinear, broadcast_batch)}


SUMMED = _summed_programs()
SUMMED_TAKES = {"gmm": True, "unswapped": True, "both_active": False, "not_repeated": False,
                "in_between": False,
                "used_again": False, "nonlinear": False, "broadcast_batch": False}


@pytest.mark.parametrize("name", sorted(SUMMED))
def test_matmul_column_sums_through_a_broadcast(name, monkeypatch):
    """The shortcut is taken exactly where it applies, and gives the gradient
    of the full product (to rounding: the sums come before the product)."""
    from shadowad.engines.reverse import traced
    from shadowad.engines.rules import linalg
    monkeypatch.setattr(traced, "LAZY_MIN", 0)  # every temporary lazy, at any size
    f = SUMMED[name]
    r = np.random.default_rng(31)
    q0, m0 = r.standard_normal((2, 3, 3)), r.standard_normal((2, 3))
    real, taken = linalg._columns_summed, []

    def counting(*a):
        ok = real(*a)
        taken.append(ok)
        return ok
    monkeypatch.setattr(linalg, "_columns_summed", counting)

    def grads():
        q, m = dup(q0), dup(m0)
        autodiff(f, q, m)
        return q.dval, m.dval
    summed = grads()
    assert any(taken) == SUMMED_TAKES[name]
    monkeypatch.setattr(linalg, "_summed_through", lambda tape, b, bp: None)
    full = grads()
    for a, b in zip(summed, full):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    monkeypatch.undo()
    monkeypatch.setattr(traced, "LAZY_MIN", 0)
    check_all(f, dup(q0), dup(m0))
    check_all(f, Const(q0), Active(m0))


def test_matmul_column_sums_over_several_sweeps(monkeypatch):
    """A reverse Jacobian sweeps the tape once per output: each sweep takes the
    shortcut, and agrees with forward mode."""
    from shadowad.engines.reverse import traced
    from shadowad.engines.rules import linalg
    monkeypatch.setattr(traced, "LAZY_MIN", 0)
    q0 = np.random.default_rng(32).standard_normal((2, 3, 3))
    real, taken = linalg._columns_summed, []
    monkeypatch.setattr(linalg, "_columns_summed", lambda *a: taken.append(real(*a)) or taken[-1])

    def f(m):
        xc = X_CONST[None] - m[:, None, :]
        z = np.matmul(q0, np.swapaxes(xc, 1, 2))
        return np.stack([np.sum(z * z), np.sum(np.tanh(z))])
    m0 = np.random.default_rng(33).standard_normal((2, 3))
    J = sad.jacobian(f, m0, mode=sad.Reverse)
    assert taken == [True, True]  # once per sweep
    np.testing.assert_allclose(J, sad.jacobian(f, m0, mode=sad.Forward), rtol=1e-12, atol=1e-12)


def test_matmul_with_plain_ndarray_operands():
    A = rng.standard_normal((3, 3))
    c = rng.standard_normal(3)
    k = np.arange(3)                  # an integer constant

    def f(A):
        return np.sum((A @ c) * (c @ A)) + np.dot(k, A @ k) + np.inner(A, c)[0]

    check_all(f, dup(A))


def test_vector_dot_is_a_scalar_and_exact():
    x, dx = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    y, dy = np.array([4.0, 5.0, 6.0]), np.zeros(3)
    seen = []

    def f(x, y):
        d = x @ y
        seen.append(type(d))
        return d + np.dot(x, x) + np.vdot(x, y) + np.inner(y, y)

    (_, _), v = autodiff(f, Duplicated(x, dx), Duplicated(y, dy), mode=ReverseWithPrimal)
    assert seen == [sad.TScalar]
    assert v == 32 + 14 + 32 + 77
    assert dx.tolist() == [2 * 4 + 2 * 1, 2 * 5 + 2 * 2, 2 * 6 + 2 * 3]
    assert dy.tolist() == [2 * 1 + 2 * 4, 2 * 2 + 2 * 5, 2 * 3 + 2 * 6]


def test_mixing_with_traced_scalars():
    A, x = rng.standard_normal((3, 3)), rng.standard_normal(3)
    y = rng.standard_normal(3)

    def f(s, A, x, y):
        t = x[0] * s                            # a traced scalar
        y += (A @ x) * t
        y += np.dot(t, x) + np.dot(x, t)        # scalar operands: products
        y += np.outer(t, x)[0] + np.inner(x, t)
        return np.vdot(y, y) * t + np.linalg.det(A) * t + np.trace(A @ A) / t

    check_all(f, Active(1.3), dup(A), dup(x), dup(y))
    check_all(f, Active(0.4), Const(A), Active(x), dup(y))


def test_vector_dot_of_views_with_many_dimensions():
    # a 6-d strided view: more dimensions than the C record iterates over
    x = rng.standard_normal((3, 2, 3, 2, 3, 2))

    def f(x, y):
        v = x[::2, :, ::2, :, ::2, :]
        y[...] = np.vdot(v, v * v)

    check_all(f, dup(x), dup(np.zeros(())))


@pytest.mark.skipif(np.broadcast_to not in sad.engines.rules.registry.FUNCTIONS,
                    reason="np.broadcast_to has no rule yet")
def test_products_of_broadcast_views():
    # a broadcast view's shadow has stride 0: each adjoint term must land
    x, A = rng.standard_normal(3), rng.standard_normal((3, 3))

    def f(x, A):
        B = np.broadcast_to(x, (3, 3))
        return (np.sum(B @ A) + np.sum(A @ B) + np.vdot(B, A) + np.dot(B[0], x)
                + np.sum(np.outer(B, x)) + np.linalg.det(B + A) + np.sum(np.linalg.inv(B + A)))

    check_all(f, dup(x), dup(A))


# --------------------------------------------------------------------------
# np.linalg

SOLVE = [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 2)), ((2, 3, 3), (3,)),
         ((3, 3), (2, 3, 1)), ((1, 3, 3), (2, 3, 2))]


@pytest.mark.parametrize("sa,sb", SOLVE)
def test_solve(sa, sb):
    A, b = well_conditioned(*sa), rng.standard_normal(sb)
    y = rng.standard_normal(np.linalg.solve(A, b).shape)

    def f(A, b, y):
        y += np.linalg.solve(A, b)
        return np.sum(y * np.linalg.solve(A, b * b))

    for args in combos(A, b):
        check_all(f, *args, dup(y))


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 3, 3)])
def test_inv(shape):
    A = well_conditioned(*shape)
    Y = rng.standard_normal(shape)

    def f(A, Y):
        Y[...] = np.linalg.inv(A) @ Y
        return np.sum(np.linalg.inv(A * A) * Y)

    check_all(f, dup(A), dup(Y))
    check_all(f, Active(A), dup(Y))
    check_all(f, Const(A), dup(Y))


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 3, 3)])
def test_det_and_slogdet(shape):
    A = rng.standard_normal(shape)
    y = rng.standard_normal(shape[:-2])

    def f(A, y):
        sign, logdet = np.linalg.slogdet(A)
        y += np.linalg.det(A) * 2.0
        y *= logdet
        return np.sum(y * sign) + np.sum(np.linalg.slogdet(A * A).logabsdet)

    check_all(f, dup(A), dup(np.array(y)))
    check_all(f, Active(A), dup(np.array(y)))


def test_slogdet_result_types_and_values():
    A = np.array([[0.0, 2.0], [3.0, 1.0]])   # det = -6
    seen = []

    def f(A):
        r = np.linalg.slogdet(A)
        seen.extend([type(r[0]), type(r.logabsdet), r.sign])
        return r[1]

    (g,), v = autodiff(f, Active(A), mode=ReverseWithPrimal)
    assert seen == [float, sad.TScalar, -1.0]
    assert same_bits(v, np.linalg.slogdet(A)[1])
    np.testing.assert_allclose(g, np.linalg.inv(A).T, rtol=1e-14)


def test_det_primal_and_gradient_exact():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    (g,), v = autodiff(lambda A: np.linalg.det(A), Active(A), mode=ReverseWithPrimal)
    assert same_bits(v, np.linalg.det(A))
    np.testing.assert_allclose(g, [[3.0, -1.0], [-1.0, 2.0]], rtol=1e-14)


@pytest.mark.parametrize("A,want", [
    (np.array([[1.0, 2.0], [2.0, 4.0]]), [[4.0, -2.0], [-2.0, 1.0]]),
    (np.zeros((2, 2)), [[0.0, 0.0], [0.0, 0.0]]),
    (np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]),
     [[-3.0, 6.0, -3.0], [6.0, -12.0, 6.0], [-3.0, 6.0, -3.0]]),
])
def test_det_gradient_at_singular_matrices_is_the_cofactor_matrix(A, want):
    (g,) = autodiff(lambda A: np.linalg.det(A), Active(A))
    np.testing.assert_allclose(g, want, atol=1e-12)


def test_slogdet_gradient_at_a_singular_matrix_is_nan():
    A = np.stack([np.array([[1.0, 2.0], [2.0, 4.0]]), np.eye(2)])
    with np.errstate(divide="ignore"):
        (g,) = autodiff(lambda A: np.sum(np.linalg.slogdet(A)[1]), Active(A))
    assert np.isnan(g[0]).all()
    assert g[1].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_slogdet_of_an_unused_singular_matrix_contributes_nothing():
    """A zero adjoint meets the NaN derivative: zero (the zero-factor rule)."""
    A = np.stack([np.array([[1.0, 2.0], [2.0, 4.0]]), np.eye(2)])
    with np.errstate(divide="ignore"):
        (g,) = autodiff(lambda A: np.sum(np.linalg.slogdet(A)[1][1:]), Active(A))
        jf = sad.jacobian(lambda A: np.sum(np.linalg.slogdet(A)[1][1:]), A, mode=sad.Forward)
    assert g[0].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert g[1].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert np.array_equal(jf, g)


def test_linalg_primals_equal_numpy():
    A, b = well_conditioned(3, 3), rng.standard_normal(3)

    def f(A, b, x, Z):
        x[...] = np.linalg.solve(A, b)
        Z[...] = np.linalg.inv(A)

    x, Z = np.zeros(3), np.zeros((3, 3))
    autodiff(f, dup(A), dup(b), Duplicated(x, np.zeros(3)), Duplicated(Z, np.zeros((3, 3))))
    assert same_bits(x, np.linalg.solve(A, b))
    assert same_bits(Z, np.linalg.inv(A))


def test_inactive_linalg_is_plain():
    seen = []

    def f(C, x):
        seen.append(type(np.linalg.det(C)))
        seen.append(np.linalg.inv(C).p is not None)
        seen.append(type(C[0] @ C[1]))
        return np.sum(x)

    autodiff(f, Const(well_conditioned(2, 2)), Active(np.ones(2)))
    assert seen == [np.float64, True, np.float64]


# --------------------------------------------------------------------------
# errors

def test_errors_name_the_function():
    A = well_conditioned(3, 3)
    with pytest.raises(NotImplementedError, match=r"np\.linalg\.eig\b"):
        autodiff(lambda A: np.sum(np.linalg.eig(A)[0]), dup(A))
    with pytest.raises(NotImplementedError, match=r"np\.linalg\.eigvals"):
        autodiff(lambda A: np.sum(np.linalg.eigvals(A)), dup(A))
    with pytest.raises(ValueError):                 # numpy's: matmul of a scalar
        autodiff(lambda A: np.sum(np.matmul(A[0, 0], A)), dup(A))
    with pytest.raises(ValueError):                 # numpy's: shapes do not align
        autodiff(lambda A: np.sum(A @ np.ones(4)), dup(A))
    with pytest.raises(TypeError, match=r"axes"):
        autodiff(lambda A: np.sum(np.matmul(A, A, axes=[(0, 1), (0, 1), (0, 1)])), dup(A))
    with pytest.raises(np.linalg.LinAlgError):
        autodiff(lambda A: np.sum(np.linalg.inv(A)), dup(np.zeros((2, 2))))


def test_failed_product_leaves_primals_restored():
    A, y = well_conditioned(3, 3), np.ones(3)

    def f(A, y):
        y += A @ y
        y += A @ np.ones(4)

    before = y.copy()
    with pytest.raises(ValueError):
        autodiff(f, dup(A), Duplicated(y, np.zeros(3)))
    assert same_bits(y, before)


# --------------------------------------------------------------------------
# forward mode: tangents against finite differences and against reverse mode
# (the dot-product test), and lanes against single-lane calls

FORWARD_BINARY = BINARY + [
    (np.matmul, (3, 4), (2, 4, 2)), (np.matmul, (2, 1, 3, 4), (4,)), (np.matmul, (1, 4), (3, 4, 1)),
    (np.dot, (4,), (2, 4, 3)), (np.inner, (3,), (2, 2, 3)), (np.outer, (3,), ())]


@pytest.mark.parametrize("fn,sa,sb", FORWARD_BINARY,
                         ids=[f"{f.__name__}{a}{b}" for f, a, b in FORWARD_BINARY])
def test_forward_product(fn, sa, sb):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)

    def f(a, b):
        return fn(a, b)

    check_forward(f, a, b)
    check_forward(f, Const(a), b)
    check_forward(f, a, Const(b))


def test_forward_products_with_out_operators_and_methods():
    A, B, x = rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), rng.standard_normal(3)

    def f(A, B, x, C, y):
        np.matmul(A, B, out=C)        # out= through the ufunc path
        C @= B                        # __imatmul__
        np.dot(A, x, out=y)
        y += x @ A + A.dot(y)
        np.outer(x, y, out=B)
        return C * (y @ x) + B + np.outer(y, x)

    check_forward(f, A, B, x, np.zeros((3, 3)), np.zeros(3))
    check_forward(f, Const(A), B, Const(x), np.zeros((3, 3)), np.zeros(3))
    check_forward(f, A, B, x, Const(np.zeros((3, 3))), Const(np.zeros(3)))

    def plain_out(A):
        np.dot(A, A, out=np.zeros((3, 3)))

    with pytest.raises(TypeError, match=r"out=<plain ndarray>"):
        autodiff(plain_out, Duplicated(A, np.ones((3, 3))), mode=Forward)


def test_forward_with_dual_scalars_and_plain_operands():
    A, x = rng.standard_normal((3, 3)), rng.standard_normal(3)
    c, k = rng.standard_normal(3), np.arange(3)

    def f(A, x):
        t = x[0] * x[1]                         # a dual scalar
        y = np.dot(t, x) + np.dot(x, t) + np.outer(t, x)[0] + np.inner(x, t)
        s = np.vdot(t, t) + np.vdot(x, x * t) + np.dot(k, A @ k) + np.inner(A, c)[0]
        return y * s + (A @ c) * (c @ A) + np.linalg.det(A) * t

    check_forward(f, A, x)


SOLVE_FORWARD = SOLVE + [((3, 3), (1, 2, 3, 2)), ((1, 1), (1,))]


@pytest.mark.parametrize("sa,sb", SOLVE_FORWARD)
def test_forward_solve(sa, sb):
    A, b = well_conditioned(*sa), rng.standard_normal(sb)
    check_forward(np.linalg.solve, A, b)
    check_forward(np.linalg.solve, Const(A), b)
    check_forward(np.linalg.solve, A, Const(b))


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 3, 3)])
def test_forward_inv_det_slogdet(shape):
    A = well_conditioned(*shape)
    check_forward(np.linalg.inv, A)
    check_forward(np.linalg.det, rng.standard_normal(shape))
    check_forward(lambda A: np.linalg.slogdet(A)[1], rng.standard_normal(shape))
    check_forward(lambda A: np.linalg.inv(A * A) * np.sum(np.linalg.det(A))
                  + np.sum(np.linalg.slogdet(A).logabsdet), A)


@pytest.mark.parametrize("A", [
    np.array([[1.0, 2.0], [2.0, 4.0]]), np.zeros((2, 2)),
    np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]),
    np.stack([np.array([[1.0, 2.0], [2.0, 4.0]]), np.eye(2)])])
def test_forward_det_at_singular_matrices(A):
    check_forward(np.linalg.det, A)
    dA = rng.standard_normal(A.shape)
    t = autodiff(np.linalg.det, Duplicated(A.copy(), dA), mode=Forward)
    (g,) = autodiff(lambda A: np.sum(np.linalg.det(A)), Active(A))
    want = np.sum(g * dA, axis=(-2, -1))
    np.testing.assert_allclose(t, want, rtol=1e-12, atol=1e-12)


def test_forward_slogdet_result_types_and_singular():
    A = np.array([[0.0, 2.0], [3.0, 1.0]])   # det = -6
    seen = []

    def f(A):
        r = np.linalg.slogdet(A)
        seen.extend([type(r), type(r[0]), type(r.logabsdet), r.sign])
        return r[1]

    dA = rng.standard_normal((2, 2))
    t, v = autodiff(f, Duplicated(A, dA.copy()), mode=ForwardWithPrimal)
    assert seen == [type(np.linalg.slogdet(A)), float, sad.engines.forward.dual.FScalar, -1.0]
    assert same_bits(v, np.linalg.slogdet(A)[1])
    assert t == pytest.approx(np.sum(np.linalg.inv(A).T * dA), rel=1e-14)
    S = np.stack([np.array([[1.0, 2.0], [2.0, 4.0]]), np.eye(2)])
    t = autodiff(lambda A: np.linalg.slogdet(A)[1], Duplicated(S, np.ones((2, 2, 2))),
                 mode=Forward)
    assert np.isnan(t[0]) and t[1] == 2.0


def test_forward_linalg_primals_equal_numpy():
    A, b = well_conditioned(3, 3), rng.standard_normal((3, 2))
    for fn, args in [(np.linalg.solve, (A, b)), (np.linalg.inv, (A,)), (np.linalg.det, (A,)),
                     (np.matmul, (A, b)), (np.dot, (b[:, 0], b[:, 1]))]:
        _, v = autodiff(fn, *[Duplicated(a.copy(), np.ones_like(a)) for a in args],
                        mode=ForwardWithPrimal)
        assert same_bits(v, fn(*args))


def test_forward_inactive_linalg_is_plain():
    seen = []

    def f(C, x):
        seen.append(type(np.linalg.det(C)))
        seen.append(sad.engines.reverse.buffers.shadow_of(np.linalg.inv(C)))
        seen.append(type(C[0] @ C[1]))
        seen.append(type(np.linalg.solve(C, x)))
        return x

    autodiff(f, Const(well_conditioned(2, 2)), Duplicated(np.ones(2), np.ones(2)), mode=Forward)
    assert seen == [np.float64, None, np.float64, sad.engines.forward.dual.FArray]


@pytest.mark.parametrize("sa,sb,axes", [
    ((3,), (3,), {}), ((4, 3), (3,), {}), ((3,), (5, 3), {}), ((2, 1, 3), (4, 3), {}),
    ((3, 5), (3, 5), {"axis": 0}),                          # columns, as in bundle adjustment
    ((3, 4), (4, 3), {"axisa": 0, "axisb": 1, "axisc": 0}),
    ((2, 3, 4), (4, 3), {"axisa": 1, "axisb": -1, "axisc": -1})])
def test_cross(sa, sb, axes):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)

    def f(a, b):
        return (np.sum(np.cross(a, b, **axes) ** 2)
                + np.sum(np.cross(a, b, **axes) * np.cross(a, b, **axes).sum()))

    for args in combos(a, b):
        check_all(f, *args)
    check_forward(f, a, b)
    check_forward(f, Const(a), b)


def test_cross_refuses_2_vectors():
    with pytest.raises(ValueError, match="3-vectors"):
        autodiff(lambda a: np.sum(np.cross(a, a)), Active(np.ones((3, 2))))
