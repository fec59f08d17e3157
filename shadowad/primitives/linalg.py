"""Linear algebra: dot, inner, vdot, outer, cross, matmul (also ``a @ b``), and
np.linalg's solve, inv, det and slogdet -- each defined once.

numpy (BLAS, LAPACK) computes every value.  The products are bilinear: their
tangent is the product of a tangent with the other operand (derived from the
value, see core.defbilinear), and only their two transposes are written.
Every product the chain rule forms (a tangent or an adjoint times an
operand) follows the zero-factor convention term by term
(primitives/contractions.py), so forward and reverse mode agree where an
operand holds inf or NaN.  The
np.linalg functions have a JVP and a VJP; theirs read the result (``out``),
so no factorization is kept: solve and det refactor the matrix instead.
Every formula uses operations that every engine differentiates, so that
nested differentiation takes second and third derivatives through them.
"""
import numpy as np

from ..support.products import times
from .contractions import (cross_times, dot_times, inner_times, matmul_times, outer_times,
                           scaled_times, vdot_times)
from .core import Primitive, defbilinear, implements
from .values import (array_operand, expand_last, float_dtype, moveaxis, ndim, plain,
                     prod_others, shape_of, swap, unbroadcast)

__all__ = ["dot", "inner", "vdot", "outer", "cross", "matmul", "solve", "inv", "det",
           "logabsdet"]

# numpy 2 reads solve's b as a vector only when it is 1-D (numpy 1: a.ndim - 1)
_SOLVE_VECTOR_1D = int(np.__version__.split(".")[0]) >= 2


def _scaled(a, b, out):
    """A product with a 0-d operand: numpy's np.dot/np.inner multiply."""
    return a * b if out is None else np.multiply(a, b, out=out)


# --------------------------------------------------------------------------
# dot and inner: a's last axis contracted with axis ``ib`` of b (dot: b's
# second-to-last, inner: b's last).  As matrices: a (rows, k) @ b (k, cols).

def _contraction(ib_of):
    def left(g, a, b, params):
        if ndim(a) == 1 and ndim(b) == 1:
            return scaled_times(g, b)
        nb = ndim(b)
        k = shape_of(b)[ib_of(nb)]
        bm = np.reshape(moveaxis(b, ib_of(nb), 0), (k, -1))
        gm = np.reshape(g, (-1, shape_of(bm)[1]))
        return np.reshape(matmul_times(gm, swap(bm)), shape_of(a))

    def right(g, a, b, params):
        if ndim(a) == 1 and ndim(b) == 1:
            return scaled_times(g, a)
        ib = ib_of(ndim(b))
        k = shape_of(a)[-1]
        am = np.reshape(a, (-1, k))
        gm = np.reshape(g, (shape_of(am)[0], -1))
        bs = shape_of(b)
        moved = (k,) + bs[:ib] + bs[ib + 1:]
        return moveaxis(np.reshape(matmul_times(swap(am), gm), moved), 0, ib)
    return left, right


def dot_axis(nb):
    return max(nb - 2, 0)


def inner_axis(nb):
    return nb - 1


dot = defbilinear(Primitive("dot", np.dot), *_contraction(dot_axis), product=dot_times)
inner = defbilinear(Primitive("inner", np.inner), *_contraction(inner_axis),
                    product=inner_times)


@implements(np.dot)
def dot_entry(bind, a, b, out=None):
    a, b = array_operand(a), array_operand(b)
    if ndim(a) == 0 or ndim(b) == 0:
        return _scaled(a, b, out)
    return bind(dot, (a, b), {}, out)


@implements(np.inner)
def inner_entry(bind, a, b):
    a, b = array_operand(a), array_operand(b)
    if ndim(a) == 0 or ndim(b) == 0:
        return _scaled(a, b, None)
    return bind(inner, (a, b), {}, None)


# --------------------------------------------------------------------------
# vdot: the inner product of both operands flattened

vdot = defbilinear(Primitive("vdot", np.vdot),
                   lambda g, a, b, params: scaled_times(g, np.reshape(b, shape_of(a))),
                   lambda g, a, b, params: scaled_times(g, np.reshape(a, shape_of(b))),
                   product=vdot_times)


@implements(np.vdot)
def vdot_entry(bind, a, b):
    return bind(vdot, (array_operand(a), array_operand(b)), {}, None)


# --------------------------------------------------------------------------
# outer: every entry of a (flattened) times every entry of b

outer = defbilinear(
    Primitive("outer", np.outer),
    lambda g, a, b, params: np.reshape(matmul_times(g, np.reshape(b, (-1,))), shape_of(a)),
    lambda g, a, b, params: np.reshape(matmul_times(np.reshape(a, (-1,)), g), shape_of(b)),
    product=outer_times)


@implements(np.outer)
def outer_entry(bind, a, b, out=None):
    return bind(outer, (array_operand(a), array_operand(b)), {}, out)


# --------------------------------------------------------------------------
# cross products of 3-vectors: d(a x b) = da x b + a x db, so the adjoint of a
# is b x g and that of b is g x a.  Vector axes are counted from the end, where
# broadcasting aligns them (numpy moves them last before broadcasting).

def _cross_left(g, a, b, p):
    return unbroadcast(cross_times(b, g, axisa=p["axisb"], axisb=p["axisc"], axisc=p["axisa"]),
                       shape_of(a))


def _cross_right(g, a, b, p):
    return unbroadcast(cross_times(g, a, axisa=p["axisc"], axisb=p["axisa"], axisc=p["axisb"]),
                       shape_of(b))


cross = defbilinear(Primitive("cross", np.cross), _cross_left, _cross_right, product=cross_times)


def _negative_axis(axis, nd):
    if not -nd <= axis < nd:
        raise np.exceptions.AxisError(axis, nd)
    return axis - nd if axis >= 0 else axis


@implements(np.cross)
def cross_entry(bind, a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    a, b = array_operand(a), array_operand(b)
    if axis is not None:
        axisa = axisb = axisc = axis
    sa, sb = shape_of(a), shape_of(b)
    na, nb = _negative_axis(axisa, len(sa)), _negative_axis(axisb, len(sb))
    if sa[na] != 3 or sb[nb] != 3:
        raise ValueError(f"shadowad: np.cross of traced values takes 3-vectors, got vectors "
                         f"of length {sa[na]} and {sb[nb]}")
    nc = _negative_axis(axisc, max(len(sa), len(sb)))
    return bind(cross, (a, b), {"axisa": na, "axisb": nb, "axisc": nc}, None)


# --------------------------------------------------------------------------
# matmul: stacks of matrices with broadcast batch axes; a 1-D operand is a
# row (left) or column (right) vector whose axis is dropped from the result

def _as_stacks(g, a, b):
    """(g, a, b) as stacks of matrices: a 1-D a a row, a 1-D b a column, and
    g with the unit axes they dropped."""
    sa, sb, sg = shape_of(a), shape_of(b), shape_of(g)
    if len(sa) == 1:
        a = np.reshape(a, (1,) + sa)
        g = np.reshape(g, sg[:-1] + (1,) + sg[-1:]) if len(sb) > 1 else np.reshape(g, sg + (1,))
    if len(sb) == 1:
        b = np.reshape(b, sb + (1,))
        if len(sa) > 1:
            g = np.reshape(g, sg + (1,))
    return g, a, b


def _matmul_left(g, a, b, params):
    if ndim(a) == 1 and ndim(b) == 1:
        return scaled_times(g, b)
    g2, a2, b2 = _as_stacks(g, a, b)
    return np.reshape(unbroadcast(matmul_times(g2, swap(b2)), shape_of(a2)), shape_of(a))


def _matmul_right(g, a, b, params):
    if ndim(a) == 1 and ndim(b) == 1:
        return scaled_times(g, a)
    g2, a2, b2 = _as_stacks(g, a, b)
    return np.reshape(unbroadcast(matmul_times(swap(a2), g2), shape_of(b2)), shape_of(b))


matmul = defbilinear(Primitive("matmul", np.matmul), _matmul_left, _matmul_right,
                     product=matmul_times)


@implements(np.matmul)
def matmul_entry(bind, a, b, out=None):
    return bind(matmul, (array_operand(a), array_operand(b)), {}, out)


# --------------------------------------------------------------------------
# np.linalg.solve: x = A^-1 b.  dx = A^-1 (db - dA x); bbar = A^-T xbar,
# Abar = -bbar x^T.

def _solve_vector(a, b):
    return ndim(b) == 1 if _SOLVE_VECTOR_1D else ndim(b) == ndim(a) - 1


def _solve_jvp(ts, vals, x, params):
    ta, tb = ts
    a, b = vals
    vector = _solve_vector(a, b)
    rhs = None if tb is None else (expand_last(tb, 1) if vector else tb)
    if ta is not None:
        dax = matmul_times(ta, expand_last(x, 1) if vector else x)
        rhs = -dax if rhs is None else rhs - dax
    dx = np.linalg.solve(a, rhs)
    return np.reshape(dx, shape_of(dx)[:-1]) if vector else dx


def _solve_vjp(k, g, vals, x, params):
    a, b = vals
    vector = _solve_vector(a, b)
    gb = np.linalg.solve(swap(a), expand_last(g, 1) if vector else g)
    if k == 1:
        return unbroadcast(np.reshape(gb, shape_of(gb)[:-1]) if vector else gb, shape_of(b))
    return unbroadcast(-matmul_times(gb, swap(expand_last(x, 1) if vector else x)), shape_of(a))


solve = Primitive("linalg.solve", np.linalg.solve, _solve_jvp, _solve_vjp, reads_out=True)


@implements(np.linalg.solve)
def solve_entry(bind, a, b):
    return bind(solve, (array_operand(a), array_operand(b)), {}, None)


# --------------------------------------------------------------------------
# np.linalg.inv: dZ = -Z dA Z; Abar = -Z^T Zbar Z^T

def _inv_jvp(ts, vals, z, params):
    return -matmul_times(z, matmul_times(ts[0], z))


def _inv_vjp(k, g, vals, z, params):
    zt = swap(z)
    return -matmul_times(zt, matmul_times(g, zt))


inv = Primitive("linalg.inv", np.linalg.inv, _inv_jvp, _inv_vjp, reads_out=True)


@implements(np.linalg.inv)
def inv_entry(bind, a):
    return bind(inv, (array_operand(a),), {}, None)


# --------------------------------------------------------------------------
# np.linalg.det: ddet = sum(cof(A) * dA), cof(A) = det(A) inv(A)^T where that
# is exact; the cofactors of a polynomial need no division, so elsewhere they
# are computed without it (docs/conventions-nonelementwise.md)

# the smallest normal float64: a subnormal det times inv(A) has lost digits
_NORMAL = np.finfo(np.float64).tiny
# minors computed one by one (O(n^5)) for matrices with inf/NaN up to this size
MINORS_UP_TO = 64
# and for every matrix whose determinant is not a normal float up to this size
SMALL_MINORS = 8


def _singular_cofactors(a):
    """The cofactor matrix of plain, finite ``a`` by its SVD, also where a is
    singular: a = u diag(s) vt, adj(a) = det(u) det(vt) vt^T diag(prod_{j != i}
    s_j) u^T (no division, so no overflow for a tiny determinant)."""
    u, s, vt = np.linalg.svd(a)
    c = np.linalg.det(u) * np.linalg.det(vt)
    adj = np.matmul(np.swapaxes(vt, -1, -2) * prod_others(s)[..., None, :],
                    np.swapaxes(u, -1, -2))
    return c[..., None, None] * np.swapaxes(adj, -1, -2)


def _minor_cofactors(a):
    """The cofactor matrix of plain ``a`` from its minors, each numpy's
    determinant: for matrices with inf or NaN entries, where an SVD fails, so
    that a cofactor whose minor is finite stays finite (diag(inf, 1) gives
    [[1, 0], [0, inf]]).  NaN everywhere beyond MINORS_UP_TO rows."""
    n = a.shape[-1]
    if n > MINORS_UP_TO:
        return np.full(a.shape, np.nan, float_dtype(a))
    keep = [np.array([k for k in range(n) if k != i], dtype=np.intp) for i in range(n)]
    cof = np.empty(a.shape, float_dtype(a))
    sign = (1.0 - 2.0 * (np.add.outer(np.arange(n), np.arange(n)) % 2)).astype(cof.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        for i in range(n):
            rows = a[..., keep[i], :]
            for j in range(n):
                cof[..., i, j] = np.linalg.det(rows[..., :, keep[j]])
    return cof * sign


def _svd_fits(a, d):
    """Matrices of ``a`` (determinants ``d``, not normal floats or not finite)
    whose cofactors the SVD gives.  The SVD's error is relative to the largest
    cofactor, so it loses the small ones ([[1e200, 1], [2, 1e200]] has
    cofactors -2 and -1; [[1e-200, 0], [3, 1e-200]] has 1e-200 on the
    diagonal): up to SMALL_MINORS rows the minors' determinants are cheap and
    exact, so they are taken always; up to MINORS_UP_TO rows, where the
    determinant overflows or the products of singular values would (for
    diag(1e200, 1e200, 1e200) the SVD's vt^T diag(inf) u^T gives inf * 0 = NaN
    off the diagonal); the SVD elsewhere, singular matrices included."""
    n = a.shape[-1]
    fits = np.asarray(np.isfinite(a).all(axis=(-2, -1)))
    if n <= SMALL_MINORS:
        return np.zeros_like(fits)
    if n <= MINORS_UP_TO:
        fits &= np.isfinite(d)
    if fits.any():
        with np.errstate(over="ignore"):
            s = np.linalg.svd(a[fits], compute_uv=False)
            fits[fits] = np.isfinite(prod_others(s)).all(axis=-1)
    return fits


def _plain_cofactors(a, d):
    fits = _svd_fits(a, d)
    if fits.all():
        return _singular_cofactors(a)
    if fits.ndim == 0:
        return _minor_cofactors(a)
    cof = np.empty(a.shape, float_dtype(a))
    cof[fits] = _singular_cofactors(a[fits]) if fits.any() else cof[fits]
    cof[~fits] = _minor_cofactors(a[~fits])
    return cof


def cofactors(a, d):
    """The cofactor matrix of a (d = det(a)): d * inv(a)^T where every
    determinant is a normal float and inv(a) finite; else without division
    (an SVD for finite matrices, the minors for others), on plain values only:
    a derivative of it there (nested differentiation) is refused rather than
    dropped."""
    pd = np.asarray(plain(d))
    normal = np.finfo(pd.dtype).tiny if pd.dtype == np.float32 else _NORMAL  # (of d's type)
    if (np.abs(pd) >= normal).all() and np.isfinite(pd).all():
        try:
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                z = np.linalg.inv(a)
            if np.isfinite(plain(z)).all():
                return expand_last(d, 2) * swap(z)
        except np.linalg.LinAlgError:
            pass
    pa = plain(a)
    if pa is a:
        return _plain_cofactors(pa, pd)
    if shape_of(a)[-1] <= SMALL_MINORS:
        return _cofactors_by_det(a)
    raise NotImplementedError(
        "shadowad: the derivative of np.linalg.det at a singular matrix (or a nearly "
        f"singular or non-finite one) larger than {SMALL_MINORS}x{SMALL_MINORS} cannot be "
        "differentiated again (inside a nested differentiation); perturb the matrix or "
        "differentiate np.linalg.det once")


def _cofactors_by_det(a):
    """The cofactor matrix as the minors' determinants, written with
    np.linalg.det itself, so that a value of an enclosing differentiation
    gets its derivative (each minor's det is differentiated in turn, down to
    1x1): the same values as _minor_cofactors."""
    shape = shape_of(a)
    n = shape[-1]
    if n == 1:
        return np.ones(shape, float_dtype(a))  # the empty minor's determinant: a constant
    keep = [np.array([k for k in range(n) if k != i], dtype=np.intp) for i in range(n)]
    rows = []
    for i in range(n):
        below = a[..., keep[i], :]
        rows.append(np.stack([np.linalg.det(below[..., :, keep[j]]) * (-1.0) ** (i + j)
                              for j in range(n)], axis=-1))
    return np.stack(rows, axis=-2)


det = Primitive("linalg.det", np.linalg.det,
                lambda ts, vals, d, params: np.sum(times(ts[0], cofactors(vals[0], d), plain),
                                                   axis=(-2, -1)),
                lambda k, g, vals, d, params: times(expand_last(g, 2), cofactors(vals[0], d),
                                                    plain),
                reads_out=True)


@implements(np.linalg.det)
def det_entry(bind, a):
    return bind(det, (array_operand(a),), {}, None)


# --------------------------------------------------------------------------
# np.linalg.slogdet: the sign has no derivative; log|det| has inv(A)^T

def inverse_transposed(a, logdet):
    """inv(a)^T; NaN where a is singular (log|det| = -inf has no derivative)."""
    singular = np.asarray(plain(logdet)) == -np.inf
    pa = plain(a)
    if not singular.any():
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            z = swap(np.linalg.inv(a))
            if np.isfinite(plain(z)).all() or not np.isfinite(pa).all():
                return z
            # LAPACK's inverse of a nearly singular matrix overflows inside, and
            # inf * 0 puts NaN where the inverse is 0: invert c * a instead, c a
            # power of two (exact) that brings its largest entry near 2^900, and
            # scale back: only the entries whose true value overflows are inf
            # (c = c1 * c2 in two powers of two: for entries below 2^-124, c
            # itself would overflow)
            # (float32: near 2^100, and the powers of two float32 too)
            one = np.float32(1.0) if pa.dtype == np.float32 else 1.0
            top = np.max(np.abs(pa), axis=(-2, -1))
            k = (100 if pa.dtype == np.float32 else 900) - np.frexp(top)[1]
            c1 = np.ldexp(one, k // 2)[..., None, None]
            c2 = np.ldexp(one, k - k // 2)[..., None, None]
            return swap(np.linalg.inv(a * c1 * c2) * c1 * c2)
    # written with differentiable operations, so that a value of an enclosing
    # differentiation gets a derivative: NaN at the singular matrices, and NaN
    # as its derivative with respect to every entry (sum(a) * NaN: a one-hot
    # tangent of any entry meets the NaN), inv's elsewhere
    mask = singular[..., None, None]
    r = swap(np.linalg.inv(np.where(mask, np.eye(pa.shape[-1], dtype=float_dtype(a)), a)))
    undefined = np.sum(a, axis=(-2, -1), keepdims=True) * np.full(pa.shape, np.nan,
                                                                  float_dtype(a))
    return np.where(mask, undefined, r)


logabsdet = Primitive(
    "linalg.slogdet", lambda a: np.linalg.slogdet(a)[1],
    lambda ts, vals, z, params: np.sum(times(ts[0], inverse_transposed(vals[0], z), plain),
                                       axis=(-2, -1)),
    lambda k, g, vals, z, params: times(expand_last(g, 2), inverse_transposed(vals[0], z), plain),
    reads_out=True)


@implements(np.linalg.slogdet)
def slogdet_entry(bind, a):
    a = array_operand(a)
    r = np.linalg.slogdet(plain(a))
    sign = r[0]
    if np.ndim(sign) == 0:
        sign = float(sign)
    # numpy >= 2 returns a named tuple (sign, logabsdet), numpy 1 a tuple
    pack = type(r) if hasattr(r, "_fields") else (lambda *v: v)
    return pack(sign, bind(logabsdet, (a,), {}, None))
