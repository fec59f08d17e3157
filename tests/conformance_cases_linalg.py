"""Conformance cases of the contractions and linear algebra family (#16):
einsum, tensordot, multi_dot, matrix_power, norm and the decompositions.
Each case's first input is ordinary; the others are its degenerate points
(zeros, inf/NaN against zero factors, repeated eigenvalues and singular
values, the zero vector), compared across every engine."""
import numpy as np

from conformance_cases import SEVERAL_PATHS, arr, case, inf, nan, ordinary, wsum

__all__ = []


def _spd(x):
    """A symmetric positive definite 3x3 matrix from x (3x3)."""
    return x @ x.T + 3.0 * np.eye(3)


def _einsum(x):
    return (wsum(np.einsum("ij,jk->ik", x, x[::-1])) + np.einsum("ii", x)
            + wsum(np.einsum("ii->i", x)) + wsum(np.einsum("...j,...j->...", x, x[0]))
            + wsum(np.einsum(x, [0, 1], x, [1, 2], [0, 2], optimize=True))
            + wsum(np.einsum("ij,jk,kl", x, x.T, x, optimize="greedy")) + wsum(np.einsum("ij->j", x)))


case("einsum", ["np.einsum"], _einsum,
     [ordinary(3, 3), arr(0.0, inf, 1.0, nan, 0.0, 2.0, -0.0, 1.0, 0.0, shape=(3, 3)), np.zeros((3, 3)),
      np.asfortranarray(ordinary(3, 3))], **SEVERAL_PATHS)
case("einsum_broadcast", ["np.einsum"],
     lambda x: wsum(np.einsum("bij,bjk->bik", x, x)) + wsum(np.einsum("...ij,j->...i", x, x[0, 0]))
     + wsum(np.einsum("i,i->i", x[0, 0, :1], x[1, 1])),
     [ordinary(2, 2, 2), arr(0.0, inf, 1.0, nan, 0.0, -0.0, 2.0, 1.0, shape=(2, 2, 2))], **SEVERAL_PATHS)
case("tensordot", ["np.tensordot"],
     lambda x: wsum(np.tensordot(x, x[::-1], axes=1)) + np.tensordot(x, x)
     + wsum(np.tensordot(x, x.T, axes=([0], [1]))),
     [ordinary(3, 3), arr(0.0, inf, 1.0, nan, 0.0, 2.0, -0.0, 1.0, 0.0, shape=(3, 3))], **SEVERAL_PATHS)
case("multi_dot", ["np.linalg.multi_dot"],
     lambda x: wsum(np.linalg.multi_dot([x, x.T, x])) + np.linalg.multi_dot([x[0], x, x.T, x[1]])
     + wsum(np.linalg.multi_dot([x, x[0]])),
     [ordinary(3, 3), arr(0.0, 1.0, 1.0, 2.0, 0.0, 2.0, -0.0, 1.0, 0.0, shape=(3, 3))], **SEVERAL_PATHS)
case("matrix_power", ["np.linalg.matrix_power"],
     lambda x: wsum(np.linalg.matrix_power(x, 5)) + wsum(np.linalg.matrix_power(x + 3.0 * np.eye(3), -2))
     + wsum(np.linalg.matrix_power(x, 1)) + wsum(np.linalg.matrix_power(x, 0)),
     [ordinary(3, 3) * 0.5, np.zeros((3, 3)), np.eye(3)], **SEVERAL_PATHS)
case("norm_vector", ["np.linalg.norm"],
     lambda x: np.linalg.norm(x) + np.linalg.norm(x, 1) + np.linalg.norm(x, np.inf)
     + np.linalg.norm(x, -np.inf) + np.linalg.norm(x, 3) + np.linalg.norm(x, 0)
     + wsum(np.linalg.norm(x.reshape(2, 2), axis=1, keepdims=True)),
     [ordinary(4), np.zeros(4), arr(0.0, -0.0, 1.0, 0.0), arr(1.0, -1.0, 1.0, 0.5)], **SEVERAL_PATHS)
case("norm_matrix", ["np.linalg.norm"],
     lambda x: np.linalg.norm(x, "fro") + np.linalg.norm(x, "nuc") + np.linalg.norm(x, 1)
     + np.linalg.norm(x, np.inf) + np.linalg.norm(x, 2) + np.linalg.norm(x, -2)
     + np.linalg.norm(x, -1) + wsum(np.linalg.norm(np.stack([x, 2.0 * x]), axis=(2, 1))),
     [ordinary(3, 3), np.eye(3), np.diag([2.0, 2.0, 1.0])], **SEVERAL_PATHS)
case("cholesky", ["np.linalg.cholesky"],
     lambda x: wsum(np.linalg.cholesky(_spd(x))) + wsum(np.linalg.cholesky(_spd(x), upper=True)),
     [ordinary(3, 3), np.zeros((3, 3)), np.eye(3)], **SEVERAL_PATHS)
# eigenvalues alone at repeated eigenvalues (x = 0: 3 I): the vectors' zero
# adjoint meets 1/(w_j - w_i) = inf and contributes 0
case("eigh", ["np.linalg.eigh"],
     lambda x: wsum(np.linalg.eigh(_spd(x))[0]) + wsum(np.abs(np.linalg.eigh(_spd(x), UPLO="U")[1])),
     [ordinary(3, 3)], **SEVERAL_PATHS)
case("eigh_values", ["np.linalg.eigh"],
     lambda x: wsum(np.linalg.eigh(_spd(x))[0]) + wsum(np.linalg.eigh(x + x.T)[0]),
     [ordinary(3, 3), np.zeros((3, 3)), np.eye(3)], **SEVERAL_PATHS)
case("eigvalsh", ["np.linalg.eigvalsh"],
     lambda x: wsum(np.linalg.eigvalsh(_spd(x))) + wsum(np.linalg.eigvalsh(x + x.T, UPLO="U")),
     [ordinary(3, 3), np.zeros((3, 3)), np.eye(3)], **SEVERAL_PATHS)
if hasattr(np.linalg, "vector_norm"):  # numpy >= 2
    case("numpy2_norms_svdvals", ["np.linalg.vector_norm", "np.linalg.matrix_norm", "np.linalg.svdvals"],
         lambda x: np.linalg.vector_norm(x) + wsum(np.linalg.vector_norm(x, axis=0, ord=1))
         + np.linalg.matrix_norm(x) + np.linalg.matrix_norm(x, ord="nuc") + wsum(np.linalg.svdvals(x)),
         [ordinary(3, 3), np.zeros((3, 3)), np.eye(3)], **SEVERAL_PATHS)
case("qr", ["np.linalg.qr"],
     lambda x: wsum(np.linalg.qr(x[:, :2])[0]) + wsum(np.linalg.qr(x)[1]) + wsum(np.linalg.qr(x, mode="r")),
     [ordinary(3, 3), np.eye(3)], **SEVERAL_PATHS)
case("svd", ["np.linalg.svd"],
     lambda x: wsum(np.abs(np.linalg.svd(x[:, :2], full_matrices=False)[0]))
     + wsum(np.linalg.svd(x)[1]) + wsum(np.abs(np.linalg.svd(x[:2], full_matrices=False)[2])),
     [ordinary(3, 3)], **SEVERAL_PATHS)
case("svd_values", ["np.linalg.svd"],
     lambda x: wsum(np.linalg.svd(x, compute_uv=False)) + wsum(np.linalg.svd(x, full_matrices=False)[1]),
     [ordinary(3, 3), np.eye(3), np.diag([2.0, 2.0, 1.0])], **SEVERAL_PATHS)
case("pinv", ["np.linalg.pinv"], lambda x: wsum(np.linalg.pinv(x[:2])) + wsum(np.linalg.pinv(x[:, :2])),
     [ordinary(3, 3), np.eye(3)], **SEVERAL_PATHS)
case("lstsq", ["np.linalg.lstsq"],
     lambda x: wsum(np.linalg.lstsq(x[:, :2], x[:, 2])[0]) + wsum(np.linalg.lstsq(x[:, :2], x[:, 1:])[1])
     + wsum(np.linalg.lstsq(x[:2], x[:2, :1], rcond=None)[0]),
     [ordinary(3, 3), arr(1.0, 0.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 3.0, shape=(3, 3))], **SEVERAL_PATHS)

# -- sequences ---------------------------------------------------------------
XP = np.array([0.0, 1.0, 2.5, 4.0])
case("polyval", ["np.polyval"], lambda x: wsum(np.polyval(x[:3], x)) + np.polyval(x, 0.5),
     [ordinary(4), arr(0.0, -0.0, inf, 1.0), arr(nan, 0.0, 1.0, 2.0)], **SEVERAL_PATHS)
case("interp", ["np.interp"],
     lambda x: wsum(np.interp(x * 2.0, XP, x)) + np.interp(1.7, XP, x, left=0.0, right=x[0]),
     [ordinary(4), arr(0.0, 0.5, 1.25, 2.0), arr(1.0, inf, inf, -0.0), arr(nan, -1.0, 5.0, 2.5)],
     **SEVERAL_PATHS)
case("trapezoid", ["np.trapezoid"],
     lambda x: np.trapezoid(x[0], x[1]) + wsum(np.trapezoid(x, dx=0.5, axis=0)) + np.trapezoid(x[1]),
     [ordinary(2, 4), arr(0.0, inf, 1.0, nan, 0.0, 1.0, 1.0, 2.0, shape=(2, 4))], **SEVERAL_PATHS)
if hasattr(np, "trapz"):  # numpy < 2.4: the deprecated alias has the same rule
    def _trapz(x):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.trapz(x[0], x[1]) + wsum(np.trapz(x, dx=0.5, axis=0))

    case("trapz", ["np.trapz"], _trapz,
         [ordinary(2, 4), arr(0.0, inf, 1.0, nan, 0.0, 1.0, 1.0, 2.0, shape=(2, 4))],
         **SEVERAL_PATHS)
case("correlate_convolve", ["np.correlate", "np.convolve"],
     lambda x: wsum(np.correlate(x, x[:2], "full")) + wsum(np.correlate(x[:2], x, "same"))
     + wsum(np.convolve(x, x[1:3], "valid")) + wsum(np.convolve(x[:3], x, "same"))
     + wsum(np.convolve(x, x[::-1])),
     [ordinary(4), arr(0.0, inf, 1.0, 0.0), arr(nan, 0.0, 0.0, 1.0), arr(-0.0, 0.0, 1.0, 2.0)],
     **SEVERAL_PATHS)

# -- scipy.linalg (registered only where scipy is installed) -----------------
try:
    import scipy.linalg as sl
except ImportError:
    sl = None
else:
    import inspect
    from shadowad.support.library_dispatch import dispatched
    _INV_ASSUME = "assume_a" in inspect.signature(dispatched(sl.inv)).parameters  # scipy >= 1.17

if sl is not None:
    case("scipy_solve_triangular", ["scipy.linalg.solve_triangular"],
         lambda x: wsum(sl.solve_triangular(x + 3.0 * np.eye(3), x[0]))
         + wsum(sl.solve_triangular(x.T + 3.0 * np.eye(3), x, lower=True, trans=1, unit_diagonal=True)),
         [ordinary(3, 3), np.zeros((3, 3)), arr(0.0, -0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, shape=(3, 3))],
         **SEVERAL_PATHS)
    case("scipy_cholesky", ["scipy.linalg.cholesky", "scipy.linalg.cho_factor", "scipy.linalg.cho_solve"],
         lambda x: wsum(sl.cholesky(_spd(x))) + wsum(sl.cholesky(_spd(x), lower=True))
         + wsum(sl.cho_factor(_spd(x))[0]) + wsum(sl.cho_solve(sl.cho_factor(_spd(x), lower=True), x[0]))
         + wsum(sl.cho_solve(sl.cho_factor(_spd(x)), x)),
         [ordinary(3, 3), np.zeros((3, 3)), np.eye(3)], **SEVERAL_PATHS)
    case("scipy_lu", ["scipy.linalg.lu_factor", "scipy.linalg.lu_solve"],
         lambda x: wsum(sl.lu_factor(x + 3.0 * np.eye(3))[0])
         + wsum(sl.lu_solve(sl.lu_factor(x + 3.0 * np.eye(3)), x[0]))
         + wsum(sl.lu_solve(sl.lu_factor(x + 3.0 * np.eye(3)), x, trans=1)),
         [ordinary(3, 3), np.zeros((3, 3))], **SEVERAL_PATHS)
    case("scipy_solve_inv_det", ["scipy.linalg.solve", "scipy.linalg.inv", "scipy.linalg.det"],
         lambda x: wsum(sl.solve(x + 3.0 * np.eye(3), x[0])) + wsum(sl.solve(_spd(x), x, assume_a="pos"))
         + wsum(sl.inv(x + 3.0 * np.eye(3))) + sl.det(x) + (wsum(sl.inv(_spd(x), assume_a="sym", lower=True)) if _INV_ASSUME else 0.0),
         [ordinary(3, 3), np.zeros((3, 3)), arr(1.0, 2.0, 0.0, 2.0, 4.0, 0.0, 0.0, 0.0, 1.0, shape=(3, 3))],
         **SEVERAL_PATHS)
    case("scipy_expm", ["scipy.linalg.expm"], lambda x: wsum(sl.expm(x * 0.5)),
         [ordinary(3, 3), np.zeros((3, 3)), np.eye(3)], **SEVERAL_PATHS)
