"""Linear algebra: dot, vdot, inner, outer, matmul (also ``a @ b``), and
np.linalg's solve, inv, det and slogdet.

numpy (BLAS, LAPACK) computes every primal.  The inner product of two vectors
is a C record; the rest are Python records whose pullback, right below the
primal computation, reads the operands from memory at sweep time (restored by
then) and adds into their shadows.  Nothing is saved: the solve and
determinant pullbacks refactor the matrix instead of keeping factors.
"""
import numpy as np

from .._c import lib
from ..traced import TScalar, new_scalar, shadow_of
from .elementwise import _tape_of, apply_ufunc
from .indexing import accumulate, unbroadcast
from .reductions import const_result, finish_out, operand, prod_others, result
from .registry import implements

_DOT = lib.SAD_DOT
# numpy 2 reads solve's b as a vector only when it is 1-D (numpy 1: a.ndim - 1)
_SOLVE_VECTOR_1D = int(np.__version__.split(".")[0]) >= 2


def _operands(a, b, out):
    """The tape and (primal, active operand or None) of both operands."""
    tape = _tape_of((a, b), out)
    ap, ad = operand(a, tape)
    bp, bd = operand(b, tape)
    return tape, ap, ad, bp, bd


def _swap(m):
    return np.swapaxes(m, -1, -2)


# --------------------------------------------------------------------------
# the inner product of two vectors: one C record

def _vector_dot(tape, a, ap, ad, b, bp, bd, v):
    """<a, b> = v of two arrays of one shape."""
    if type(a) is not TScalar and type(b) is not TScalar and ap.shape == bp.shape:
        sa = None if ad is None else shadow_of(ad)
        sb = None if bd is None else shadow_of(bd)
        tape.keep += (ap, bp, sa, sb)
        g = lib.sad_reduce(tape.c, _DOT, v, id(ap), 0 if sa is None else id(sa),
                           id(bp), 0 if sb is None else id(sb))
        if g:
            return TScalar(v, g, tape)
    # scalars, vdot of differently shaped arrays, or more dimensions than C takes
    t, g = new_scalar(tape, v)

    def pullback():
        if ad is not None:
            accumulate(ad, g * bp.reshape(ap.shape))
        if bd is not None:
            accumulate(bd, g * ap.reshape(bp.shape))
    tape.record_py(pullback)
    return t


# --------------------------------------------------------------------------
# dot and inner: one axis of a (its last) contracted with axis ib of b

def _contract(tape, z, ap, ad, bp, bd, ib):
    """z = tensordot(a, b, ([-1], [ib])), whose axes are a's free axes then b's."""
    res, gz = result(tape, z)
    na, nb = ap.ndim, bp.ndim
    zb = list(range(na - 1, z.ndim))            # z's axes that come from b
    bfree = [d for d in range(nb) if d != ib]
    afree = list(range(na - 1))

    def pullback():
        if ad is not None:
            accumulate(ad, np.tensordot(gz, bp, axes=(zb, bfree)))
        if bd is not None:
            accumulate(bd, np.moveaxis(np.tensordot(ap, gz, axes=(afree, afree)), 0, ib))
    tape.record_py(pullback)
    return res


@implements(np.dot)
def dot(a, b, out=None):
    tape, ap, ad, bp, bd = _operands(a, b, out)
    if ap.ndim == 0 or bp.ndim == 0:  # numpy: a product with a scalar
        return apply_ufunc(np.multiply, (a, b), out)
    z = np.dot(ap, bp)
    if ad is None and bd is None:
        return finish_out(const_result(tape, z), out, "np.dot")
    if ap.ndim == 1 and bp.ndim == 1:
        res = _vector_dot(tape, a, ap, ad, b, bp, bd, float(z))
    else:
        res = _contract(tape, z, ap, ad, bp, bd, max(bp.ndim - 2, 0))
    return finish_out(res, out, "np.dot")


@implements(np.inner)
def inner(a, b):
    tape, ap, ad, bp, bd = _operands(a, b, None)
    if ap.ndim == 0 or bp.ndim == 0:
        return apply_ufunc(np.multiply, (a, b))
    z = np.inner(ap, bp)
    if ad is None and bd is None:
        return const_result(tape, z)
    if ap.ndim == 1 and bp.ndim == 1:
        return _vector_dot(tape, a, ap, ad, b, bp, bd, float(z))
    return _contract(tape, z, ap, ad, bp, bd, bp.ndim - 1)


@implements(np.vdot)
def vdot(a, b):
    tape, ap, ad, bp, bd = _operands(a, b, None)
    v = float(np.vdot(ap, bp))
    if ad is None and bd is None:
        return v
    return _vector_dot(tape, a, ap, ad, b, bp, bd, v)


@implements(np.outer)
def outer(a, b, out=None):
    tape, ap, ad, bp, bd = _operands(a, b, out)
    z = np.outer(ap, bp)
    if ad is None and bd is None:
        return finish_out(const_result(tape, z), out, "np.outer")
    res, gz = result(tape, z)

    def pullback():
        if ad is not None:
            accumulate(ad, np.dot(gz, bp.ravel()).reshape(ap.shape))
        if bd is not None:
            accumulate(bd, np.dot(ap.ravel(), gz).reshape(bp.shape))
    tape.record_py(pullback)
    return finish_out(res, out, "np.outer")


# --------------------------------------------------------------------------
# matmul: stacks of matrices with broadcast batch axes; a 1-D operand is a
# row (left) or column (right) vector whose axis is dropped from the result

@implements(np.matmul)
def matmul(a, b, out=None):
    tape, ap, ad, bp, bd = _operands(a, b, out)
    z = np.matmul(ap, bp)
    if ad is None and bd is None:
        return finish_out(const_result(tape, z), out, "np.matmul")
    if ap.ndim == 1 and bp.ndim == 1:
        return finish_out(_vector_dot(tape, a, ap, ad, b, bp, bd, float(z)), out, "np.matmul")
    res, gz = result(tape, z)
    a2 = ap if ap.ndim > 1 else ap[None, :]
    b2 = bp if bp.ndim > 1 else bp[:, None]
    g2 = gz if ap.ndim > 1 else gz[..., None, :]
    if bp.ndim == 1:
        g2 = g2[..., None]

    def pullback():
        if ad is not None:
            ga = np.matmul(g2, _swap(b2))
            accumulate(ad, unbroadcast(ga, a2.shape).reshape(ap.shape))
        if bd is not None:
            gb = np.matmul(_swap(a2), g2)
            accumulate(bd, unbroadcast(gb, b2.shape).reshape(bp.shape))
    tape.record_py(pullback)
    return finish_out(res, out, "np.matmul")


# --------------------------------------------------------------------------
# np.linalg

@implements(np.linalg.solve)
def solve(a, b):
    tape, ap, ad, bp, bd = _operands(a, b, None)
    x = np.linalg.solve(ap, bp)
    if ad is None and bd is None:
        return const_result(tape, x)
    res, gx = result(tape, x)
    xp = res.p
    vector = bp.ndim == 1 if _SOLVE_VECTOR_1D else bp.ndim == ap.ndim - 1

    def pullback():
        # bbar = A^-T xbar, Abar = -bbar x^T
        g = np.linalg.solve(_swap(ap), gx[..., None] if vector else gx)
        if ad is not None:
            xm = xp[..., None] if vector else xp
            accumulate(ad, -np.matmul(g, _swap(xm)))
        if bd is not None:
            accumulate(bd, g[..., 0] if vector else g)
    tape.record_py(pullback)
    return res


@implements(np.linalg.inv)
def inv(a):
    tape = _tape_of((a,), None)
    ap, ad = operand(a, tape)
    z = np.linalg.inv(ap)
    if ad is None:
        return const_result(tape, z)
    res, gz = result(tape, z)
    zp = res.p

    def pullback():
        # Abar = -Z^T Zbar Z^T
        zt = _swap(zp)
        accumulate(ad, -np.matmul(zt, np.matmul(gz, zt)))
    tape.record_py(pullback)
    return res


def _cofactors(a, d):
    """d * inv(a)^T, the cofactor matrix of a, also where a is singular."""
    d = np.asarray(d)
    if d.all():
        try:
            return d[..., None, None] * _swap(np.linalg.inv(a))
        except np.linalg.LinAlgError:
            pass
    # a = u diag(s) vt, adj(a) = det(u) det(vt) vt^T diag(prod_{j != i} s_j) u^T
    u, s, vt = np.linalg.svd(a)
    c = np.linalg.det(u) * np.linalg.det(vt)
    adj = np.matmul(_swap(vt) * prod_others(s)[..., None, :], _swap(u))
    return c[..., None, None] * _swap(adj)


@implements(np.linalg.det)
def det(a):
    tape = _tape_of((a,), None)
    ap, ad = operand(a, tape)
    d = np.linalg.det(ap)
    if ad is None:
        return const_result(tape, d)
    res, gd = result(tape, d)

    def pullback():
        accumulate(ad, gd[..., None, None] * _cofactors(ap, d))
    tape.record_py(pullback)
    return res


def _inv_t(a, singular):
    """inv(a)^T; NaN where a is singular (log|det| = -inf has no derivative)."""
    if not np.any(singular):
        return _swap(np.linalg.inv(a))
    eye = np.eye(a.shape[-1])
    r = _swap(np.linalg.inv(np.where(singular[..., None, None], eye, a)))
    r[singular] = np.nan
    return r


@implements(np.linalg.slogdet)
def slogdet(a):
    tape = _tape_of((a,), None)
    ap, ad = operand(a, tape)
    r = np.linalg.slogdet(ap)
    sign, logdet = r
    if np.ndim(sign) == 0:
        sign = float(sign)
    # numpy >= 2 returns a named tuple (sign, logabsdet), numpy 1 a tuple
    pack = type(r) if hasattr(r, "_fields") else (lambda *v: v)
    if ad is None:
        return pack(sign, const_result(tape, logdet))
    res, gl = result(tape, logdet)
    singular = np.asarray(sign) == 0

    def pullback():
        accumulate(ad, gl[..., None, None] * _inv_t(ap, singular))
    tape.record_py(pullback)
    return pack(sign, res)
