"""Matrix decompositions: np.linalg's cholesky, eigh, eigvalsh, qr, svd
(and its singular values alone: svdvals), pinv and lstsq -- each defined
once.

LAPACK computes every value (numpy's own call, so the values are numpy's bit
for bit).  A decomposition with several results is one primitive whose value
is the results packed side by side along the last axis (``_pack``); the entry
unpacks them by slicing, so their derivatives come from one JVP and one VJP.
The formulas are JAX's (jvp) and their transposes (vjp), written with
operations every engine differentiates (solve instead of triangular solves),
so nested differentiation takes higher derivatives through them.

cholesky and eigh read one triangle of the matrix, as LAPACK does (the lower
one by default): their derivatives are those of the function numpy computes,
so an entry of the other triangle has derivative 0 and finite differences of
numpy's function agree.  JAX and PyTorch symmetrize the adjoint instead; for
a matrix built symmetric (K = k(X, X)) the gradient of anything K is built
from is the same either way.  Degenerate points (docs/conventions.md,
"Decompositions"): repeated eigenvalues or singular values make the
eigenvector (singular vector) derivative infinite or NaN, as in JAX, but a
zero adjoint of the vectors contributes exactly 0 (the 1/(w_j - w_i) factors
meet it under the zero-factor convention), so the eigenvalues' derivative
stays right there.
"""
import numpy as np

from ..support.products import times
from .contractions import matmul_times
from .core import Primitive, implements
from .elementwise import float_type
from .values import array_operand, ndim, plain, shape_of, swap

__all__ = ["cholesky", "eigh", "eigvalsh", "qr", "svd", "svdvals", "pinv", "lstsq",
           "cholesky_tangent", "cholesky_adjoint", "triangle_tangent", "triangle_adjoint"]


def _square(name, a):
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise np.linalg.LinAlgError(
            f"{name}: last 2 dimensions of the array must be square (got shape {s})")


def _result_type(value):
    """numpy >= 2 returns named tuples; numpy 1 plain tuples."""
    return type(value) if hasattr(value, "_fields") else (lambda *v: tuple(v))


# --------------------------------------------------------------------------
# several results as one value

def _pack(parts, batch):
    return np.concatenate([np.reshape(p, batch + (-1,)) for p in parts], axis=-1)


def _unpack(packed, shapes):
    batch = shape_of(packed)[:-1]
    parts, at = [], 0
    for s in shapes:
        n = int(np.prod(s, dtype=np.int64))
        parts.append(np.reshape(packed[..., at:at + n], batch + tuple(s)))
        at += n
    return parts


# --------------------------------------------------------------------------
# helpers on engine values

def _mm(a, b):
    return matmul_times(a, b)


def _tri(n, lower, strict):
    m = np.tril(np.ones((n, n), dtype=bool), -1 if strict else 0)
    return m if lower else m.T


def triangle_tangent(da, lower):
    """The symmetric matrix LAPACK sees when it reads one triangle of da."""
    n = shape_of(da)[-1]
    return np.where(_tri(n, lower, False), da, 0.0) + swap(np.where(_tri(n, lower, True), da, 0.0))


def triangle_adjoint(w, lower):
    """The transpose of triangle_tangent: w + w^T on the read triangle's strict
    part, w on the diagonal, 0 on the other triangle."""
    n = shape_of(w)[-1]
    return np.where(_tri(n, lower, True), w + swap(w), np.where(np.eye(n, dtype=bool), w, 0.0))


def _diag_embed(v):
    n = shape_of(v)[-1]
    return np.where(np.eye(n, dtype=bool), np.reshape(v, shape_of(v)[:-1] + (1, n)), 0.0)


def _diagonal(m):
    return np.diagonal(m, 0, ndim(m) - 2, ndim(m) - 1)


def _right_solve(m, x):
    """x m^-1 (m square)."""
    return swap(np.linalg.solve(swap(m), swap(x)))


def _gaps(w):
    """F[i, j] = 1 / (w[j] - w[i]) off the diagonal, 0 on it (inf where two
    entries are equal)."""
    n = shape_of(w)[-1]
    eye = np.eye(n, dtype=float_type((plain(w),)))
    d = np.reshape(w, shape_of(w)[:-1] + (1, n)) - np.reshape(w, shape_of(w) + (1,))
    with np.errstate(divide="ignore"):
        return 1.0 / (d + eye) - eye


# --------------------------------------------------------------------------
# cholesky: A = L L^T.  dL = L phi(L^-1 dS L^-T) with phi = the lower
# triangle, diagonal halved (Murray 2016, JAX); the VJP is its transpose:
# W = L^-T phi(L^T Lbar) L^-1, read back through the triangle LAPACK reads

def _phi(x):
    n = shape_of(x)[-1]
    num = float_type((plain(x),))  # float32 for a float32 x
    mask = np.tril(np.ones((n, n), num)) - num(0.5) * np.eye(n, dtype=num)
    return times(x, mask, plain)


def cholesky_tangent(da, ell):
    """dL of the lower factor ell for the tangent da of the matrix (its lower
    triangle read, as LAPACK reads it)."""
    s = triangle_tangent(da, True)
    x = _right_solve(swap(ell), np.linalg.solve(ell, s))
    return _mm(ell, _phi(x))


def cholesky_adjoint(g, ell):
    """The matrix's adjoint (on the lower triangle read) for the adjoint g
    of its lower factor ell."""
    p = _phi(_mm(swap(ell), g))
    w = _right_solve(ell, np.linalg.solve(swap(ell), p))
    return triangle_adjoint(w, True)


def _chol_jvp(ts, vals, out, params):
    if params["upper"]:  # U = chol_lower(A^T)^T
        return swap(cholesky_tangent(swap(ts[0]), swap(out)))
    return cholesky_tangent(ts[0], out)


def _chol_vjp(k, g, vals, out, params):
    if params["upper"]:
        return swap(cholesky_adjoint(swap(g), swap(out)))
    return cholesky_adjoint(g, out)


cholesky = Primitive("linalg.cholesky",
                     lambda a, upper: np.linalg.cholesky(a, upper=True) if upper
                     else np.linalg.cholesky(a),
                     _chol_jvp, _chol_vjp, reads_out=True)


@implements(np.linalg.cholesky)
def cholesky_entry(bind, a, /, *, upper=False):
    a = array_operand(a)
    _square("np.linalg.cholesky", a)
    return bind(cholesky, (a,), {"upper": bool(upper)}, None)


# --------------------------------------------------------------------------
# eigh: A = V diag(w) V^T.  With M = V^T dS V: dw = diag(M), dV = V (F * M)
# (JAX); the VJP: W = V (diag(wbar) + F * V^T Vbar) V^T

def _eigh_parts(packed, n):
    return _unpack(packed, [(n,), (n, n)])


def _eigh_jvp(ts, vals, out, params):
    n = shape_of(vals[0])[-1]
    w, v = _eigh_parts(out, n)
    m = _mm(swap(v), _mm(triangle_tangent(ts[0], params["lower"]), v))
    dv = _mm(v, times(_gaps(w), m, plain))
    return _pack([_diagonal(m), dv], shape_of(w)[:-1])


def _eigh_vjp(k, g, vals, out, params):
    n = shape_of(vals[0])[-1]
    w, v = _eigh_parts(out, n)
    gw, gv = _eigh_parts(g, n)
    inner = times(_gaps(w), _mm(swap(v), gv), plain) + _diag_embed(gw)
    return triangle_adjoint(_mm(v, _mm(inner, swap(v))), params["lower"])


def _eigh_impl(a, lower):
    w, v = np.linalg.eigh(a, UPLO="L" if lower else "U")
    return _pack([w, v], shape_of(w)[:-1])


eigh = Primitive("linalg.eigh", _eigh_impl, _eigh_jvp, _eigh_vjp, reads_out=True)
_EIGH_RESULT = _result_type(np.linalg.eigh(np.eye(1)))


@implements(np.linalg.eigh)
def eigh_entry(bind, a, UPLO="L"):
    a = array_operand(a)
    _square("np.linalg.eigh", a)
    if UPLO not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    n = shape_of(a)[-1]
    w, v = _eigh_parts(bind(eigh, (a,), {"lower": UPLO == "L"}, None), n)
    return _EIGH_RESULT(w, v)


# eigvalsh: LAPACK's eigenvalues without vectors (numpy's values); the
# vectors are computed again (eigh of the engine's values, so that a nested
# differentiation differentiates them too): dw = diag(V^T dS V),
# Abar = V diag(wbar) V^T read back through the triangle

def _eigvalsh_vectors(a, lower):
    return np.linalg.eigh(a, UPLO="L" if lower else "U")[1]


def _eigvalsh_jvp(ts, vals, out, params):
    v = _eigvalsh_vectors(vals[0], params["lower"])
    return np.sum(times(v, _mm(triangle_tangent(ts[0], params["lower"]), v), plain), axis=-2)


def _eigvalsh_vjp(k, g, vals, out, params):
    v = _eigvalsh_vectors(vals[0], params["lower"])
    return triangle_adjoint(_mm(times(v, _row(g), plain), swap(v)), params["lower"])


eigvalsh = Primitive("linalg.eigvalsh",
                     lambda a, lower: np.linalg.eigvalsh(a, UPLO="L" if lower else "U"),
                     _eigvalsh_jvp, _eigvalsh_vjp)


@implements(np.linalg.eigvalsh)
def eigvalsh_entry(bind, a, UPLO="L"):
    a = array_operand(a)
    _square("np.linalg.eigvalsh", a)
    if UPLO not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    return bind(eigvalsh, (a,), {"lower": UPLO == "L"}, None)


# --------------------------------------------------------------------------
# qr, reduced, m >= n: A = Q R.  With X = dA R^-1, C = Q^T X, O = tril(C, -1)
# minus its transpose: dQ = Q (O - C) + X, dR = (C - O) R (JAX).  The VJP:
# B = Rbar R^T - Q^T Qbar, Cbar = triu(B) + tril(B^T, -1),
# Abar = (Qbar + Q Cbar) R^-T

def _qr_parts(packed, m, n):
    return _unpack(packed, [(m, n), (n, n)])


def _qr_jvp(ts, vals, out, params):
    m, n = shape_of(vals[0])[-2:]
    q, r = _qr_parts(out, m, n)
    x = _right_solve(r, ts[0])
    c = _mm(swap(q), x)
    low = np.where(_tri(n, True, True), c, 0.0)
    o = low - swap(low)
    return _pack([_mm(q, o - c) + x, _mm(c - o, r)], shape_of(q)[:-2])


def _qr_vjp(k, g, vals, out, params):
    m, n = shape_of(vals[0])[-2:]
    q, r = _qr_parts(out, m, n)
    gq, gr = _qr_parts(g, m, n)
    b = _mm(gr, swap(r)) - _mm(swap(q), gq)
    cbar = np.where(_tri(n, False, False), b, 0.0) + np.where(_tri(n, True, True), swap(b), 0.0)
    return _right_solve(swap(r), gq + _mm(q, cbar))


def _qr_impl(a):
    q, r = np.linalg.qr(a)
    return _pack([q, r], shape_of(q)[:-2])


qr = Primitive("linalg.qr", _qr_impl, _qr_jvp, _qr_vjp, reads_out=True)
_QR_RESULT = _result_type(np.linalg.qr(np.eye(1)))


@implements(np.linalg.qr)
def qr_entry(bind, a, mode="reduced"):
    a = array_operand(a)
    s = shape_of(a)
    if len(s) < 2:
        raise np.linalg.LinAlgError(f"np.linalg.qr: {len(s)}-dimensional array given. "
                                    "Array must be at least two-dimensional")
    m, n = s[-2:]
    if mode not in ("reduced", "complete", "r"):
        raise NotImplementedError(f"shadowad: np.linalg.qr(..., mode={mode!r}) of traced "
                                  "values has no derivative; use mode='reduced'")
    if m < n:
        raise NotImplementedError(
            f"shadowad: the derivative of np.linalg.qr of a wide matrix ({m}x{n}, fewer rows "
            "than columns) is not defined here (as in JAX); factor the transpose or the "
            "leading square block")
    if mode == "complete" and m != n:
        raise NotImplementedError("shadowad: np.linalg.qr(..., mode='complete') of a tall "
                                  "traced matrix has no derivative; use mode='reduced'")
    q, r = _qr_parts(bind(qr, (a,), {}, None), m, n)
    return r if mode == "r" else _QR_RESULT(q, r)


# --------------------------------------------------------------------------
# svd, full_matrices=False: A = U diag(s) Vh, k = min(m, n).  JAX's JVP:
# dS = U^T dA V, ds = diag(dS), F[i, j] = 1 / (s_j^2 - s_i^2),
# dU = U (F * (dS S + S dS^T)) + (I - U U^T) dA V S^-1 (m > n),
# dV = V (F * (S dS + dS^T S)) + (I - V V^T) dA^T U S^-1 (n > m).
# The VJP, its transpose: X = F * U^T Ubar, Y = F * V^T Vbar,
# Abar = U (diag(sbar) + (X + X^T) S + S (Y + Y^T)) V^T
#        + (I - U U^T) Ubar S^-1 V^T + U S^-1 Vbar^T (I - V V^T)

def _svd_parts(packed, m, n):
    k = min(m, n)
    return _unpack(packed, [(m, k), (k,), (k, n)])


def _square_gaps(s):
    return _gaps(s * s)


def _inverse(s):
    with np.errstate(divide="ignore"):
        return 1.0 / s


def _row(s):
    return np.reshape(s, shape_of(s)[:-1] + (1, shape_of(s)[-1]))


def _col(s):
    return np.reshape(s, shape_of(s) + (1,))


def _svd_jvp(ts, vals, out, params):
    m, n = shape_of(vals[0])[-2:]
    u, s, vh = _svd_parts(out, m, n)
    da = ts[0]
    v = swap(vh)
    dav = _mm(da, v)
    ds_ = _mm(swap(u), dav)
    f = _square_gaps(s)
    dss = times(ds_, _row(s), plain)
    sds = times(_col(s), ds_, plain)
    du = _mm(u, times(f, dss + swap(dss), plain))
    dv = _mm(v, times(f, sds + swap(sds), plain))
    if m > n:
        du = du + times(dav - _mm(u, _mm(swap(u), dav)), _row(_inverse(s)), plain)
    if n > m:
        dahu = _mm(swap(da), u)
        dv = dv + times(dahu - _mm(v, _mm(vh, dahu)), _row(_inverse(s)), plain)
    return _pack([du, _diagonal(ds_), swap(dv)], shape_of(s)[:-1])


def _svd_vjp(k, g, vals, out, params):
    m, n = shape_of(vals[0])[-2:]
    u, s, vh = _svd_parts(out, m, n)
    gu, gs, gvh = _svd_parts(g, m, n)
    v, gv = swap(vh), swap(gvh)
    f = _square_gaps(s)
    x = times(f, _mm(swap(u), gu), plain)
    y = times(f, _mm(vh, gv), plain)
    core = (_diag_embed(gs) + times(x + swap(x), _row(s), plain)
            + times(_col(s), y + swap(y), plain))
    ga = _mm(u, _mm(core, vh))
    if m > n:
        ga = ga + _mm(times(gu - _mm(u, _mm(swap(u), gu)), _row(_inverse(s)), plain), vh)
    if n > m:
        ga = ga + _mm(times(u, _row(_inverse(s)), plain), swap(gv - _mm(v, _mm(vh, gv))))
    return ga


def _svd_impl(a):
    u, s, vh = np.linalg.svd(a, full_matrices=False)
    return _pack([u, s, vh], shape_of(s)[:-1])


svd = Primitive("linalg.svd", _svd_impl, _svd_jvp, _svd_vjp, reads_out=True)


# the singular values alone: ds = diag(U^T dA V), Abar = U diag(sbar) V^T,
# with U and V computed again (as svd of the engine's values, so that a
# nested differentiation differentiates them too)

def _singular_vectors(a):
    u, _, vh = np.linalg.svd(a, full_matrices=False)
    return u, vh


def _svdvals_jvp(ts, vals, out, params):
    u, vh = _singular_vectors(vals[0])
    return np.sum(times(u, _mm(ts[0], swap(vh)), plain), axis=-2)


def _svdvals_vjp(k, g, vals, out, params):
    u, vh = _singular_vectors(vals[0])
    return _mm(times(u, _row(g), plain), vh)


svdvals = Primitive("linalg.svdvals", lambda a: np.linalg.svd(a, compute_uv=False),
                    _svdvals_jvp, _svdvals_vjp)
_SVD_RESULT = _result_type(np.linalg.svd(np.eye(1)))


def _svdvals_entry(bind, x, /):
    x = array_operand(x)
    if ndim(x) < 2:
        raise np.linalg.LinAlgError(f"np.linalg.svdvals: {ndim(x)}-dimensional array given. "
                                    "Array must be at least two-dimensional")
    return bind(svdvals, (x,), {}, None)


if hasattr(np.linalg, "svdvals"):  # numpy >= 2
    implements(np.linalg.svdvals)(_svdvals_entry)


@implements(np.linalg.svd)
def svd_entry(bind, a, full_matrices=True, compute_uv=True, hermitian=False):
    a = array_operand(a)
    s = shape_of(a)
    if len(s) < 2:
        raise np.linalg.LinAlgError(f"np.linalg.svd: {len(s)}-dimensional array given. "
                                    "Array must be at least two-dimensional")
    if hermitian:
        raise NotImplementedError("shadowad: np.linalg.svd(..., hermitian=True) of traced "
                                  "values has no derivative; leave hermitian out")
    if not compute_uv:
        return bind(svdvals, (a,), {}, None)
    m, n = s[-2:]
    if full_matrices and m != n:
        raise NotImplementedError(
            "shadowad: np.linalg.svd(..., full_matrices=True) of a non-square traced matrix "
            "has no derivative (the extra singular vectors are not determined); pass "
            "full_matrices=False")
    u, sv, vh = _svd_parts(bind(svd, (a,), {}, None), m, n)
    return _SVD_RESULT(u, sv, vh)


# --------------------------------------------------------------------------
# pinv: Z = A^+.  dZ = -Z dA Z + Z Z^T dA^T (I - A Z) + (I - Z A) dA^T Z^T Z
# (Golub and Pereyra; JAX), exact where the rank is constant; its transpose
# Abar = -Z^T Zbar Z^T + (I - A Z) Zbar^T Z Z^T + Z^T Z Zbar^T (I - Z A)

def pinv_jvp(da, a, z):
    dat = swap(da)
    t1 = -_mm(z, _mm(da, z))
    t2 = _mm(_mm(z, swap(z)), _mm(dat, _eye_minus(a, z)))
    t3 = _mm(_eye_minus(z, a), _mm(dat, _mm(swap(z), z)))
    return t1 + t2 + t3


def pinv_vjp(g, a, z):
    zt, gt = swap(z), swap(g)
    t1 = -_mm(zt, _mm(g, zt))
    t2 = _mm(_eye_minus(a, z), _mm(gt, _mm(z, zt)))
    t3 = _mm(_mm(zt, z), _mm(gt, _eye_minus(z, a)))
    return t1 + t2 + t3


def _eye_minus(x, y):
    xy = _mm(x, y)
    return np.eye(shape_of(xy)[-1], dtype=float_type((plain(xy),))) - xy


def _pinv_impl(a, options):
    return np.linalg.pinv(a, **dict(options))


pinv = Primitive("linalg.pinv", _pinv_impl,
                 lambda ts, vals, z, params: pinv_jvp(ts[0], vals[0], z),
                 lambda k, g, vals, z, params: pinv_vjp(g, vals[0], z),
                 reads_out=True)


@implements(np.linalg.pinv)
def pinv_entry(bind, a, *args, **kwargs):
    a = array_operand(a)
    np.linalg.pinv(np.zeros((1, 1)), *args, **kwargs)  # numpy checks the options
    names = ("rcond", "hermitian")
    options = dict(zip(names, args))
    options.update(kwargs)
    return bind(pinv, (a,), {"options": tuple(sorted(options.items()))}, None)


# --------------------------------------------------------------------------
# lstsq: x = A^+ b, so dx = dZ b + Z db with Z = A^+ at lstsq's cut-off, and
# bbar = Z^T xbar, Abar = pinv_vjp(xbar b^T)

def _cutoff(a, rcond):
    m, n = shape_of(a)[-2:]
    return np.finfo(np.float64).eps * max(m, n) if rcond is None or rcond < 0 else rcond


def _as_matrix(b):
    return np.reshape(b, shape_of(b) + (1,)) if ndim(b) == 1 else b


def _lstsq_jvp(ts, vals, x, params):
    a, b = vals
    z = np.linalg.pinv(a, rcond=_cutoff(a, params["rcond"]))
    r = None
    if ts[0] is not None:
        r = _mm(pinv_jvp(ts[0], a, z), _as_matrix(b))
    if ts[1] is not None:
        zb = _mm(z, _as_matrix(ts[1]))
        r = zb if r is None else r + zb
    return np.reshape(r, shape_of(x))


def _lstsq_vjp(k, g, vals, x, params):
    a, b = vals
    z = np.linalg.pinv(a, rcond=_cutoff(a, params["rcond"]))
    gm = _as_matrix(g)
    if k == 1:
        return np.reshape(_mm(swap(z), gm), shape_of(b))
    return pinv_vjp(_mm(gm, swap(_as_matrix(b))), a, z)


lstsq = Primitive("linalg.lstsq",
                  lambda a, b, rcond: np.linalg.lstsq(a, b, rcond=rcond)[0],
                  _lstsq_jvp, _lstsq_vjp)


@implements(np.linalg.lstsq)
def lstsq_entry(bind, a, b, rcond=None):
    a, b = array_operand(a), array_operand(b)
    if ndim(a) != 2 or ndim(b) not in (1, 2):
        raise np.linalg.LinAlgError("np.linalg.lstsq: a must be 2-D and b 1-D or 2-D")
    _, _, rank, _ = np.linalg.lstsq(plain(a), plain(b), rcond=rcond)
    x = bind(lstsq, (a, b), {"rcond": rcond}, None)
    m, n = shape_of(a)
    if rank == n and m > n:
        res = b - np.matmul(a, x)
        residuals = np.sum(res * res, axis=0)
        if ndim(b) == 1:
            residuals = np.reshape(residuals, (1,))
    else:
        residuals = np.empty((0,))
    return x, residuals, int(rank), bind(svdvals, (a,), {}, None)
