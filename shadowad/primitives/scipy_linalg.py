"""scipy.linalg's solve_triangular, cholesky, cho_factor, cho_solve,
lu_factor, lu_solve, expm, solve, inv and det on traced values -- registered only when scipy is
installed, and without importing it.

scipy's functions do not dispatch through ``__array_function__``: they
convert their inputs with np.asarray, which a traced value refuses.  So, as
soon as the user's code imports scipy.linalg (support/post_import.py), each
of these names in scipy.linalg's namespace is replaced by a wrapper that
hands traced arguments to shadowad's entry through the same protocol numpy
uses (``type(t).__array_function__(t, wrapper, types, args, kwargs)``) and
plain ones to scipy's function (outside f the cost is one scan of the
arguments).  The wrapper is itself the key the entry is registered under,
made when shadowad is imported, so the engines' tables hold it from the
start.  A name bound
before shadowad was imported (``from scipy.linalg import cho_solve`` first)
is scipy's own function: its conversion error says so (engines/reverse/
errors.py).  JAX and autograd ship their own namespaces instead
(jax.scipy.linalg); that needs the user to change the import, which is what
this project avoids.

The derivatives: each function is a primitive with scipy computing the
value (bit for bit) and formulas written with these same functions, so that
nested differentiation differentiates them again.  The factors are packed as
LAPACK packs them: cho_factor's factor is one triangle of its result (the
other triangle holds the input's entries, which pass through with
derivative 1), lu_factor's L (unit diagonal, not stored) and U share one
matrix; the pivots are constant.
"""
import importlib.util

import numpy as np

from ..support.library_dispatch import dispatching, install
from ..support.post_import import when_imported
from ..support.products import times
from .contractions import matmul_times
from .core import Primitive, implements
from .decompositions import cholesky_adjoint, cholesky_tangent, triangle_adjoint, triangle_tangent
from .linalg import cofactors
from .values import array_operand, float_dtype, ndim, plain, shape_of, swap

__all__ = ["AVAILABLE", "solve_triangular", "cholesky", "cho_factor",
           "solve", "inv", "det", "cho_solve", "lu_factor",
           "lu_solve", "expm"]

AVAILABLE = importlib.util.find_spec("scipy") is not None

_NAMES = ("solve_triangular", "cholesky", "cho_factor", "cho_solve", "lu_factor", "lu_solve",
          "expm", "solve", "inv", "det")
_WRAPPER = {}    # name -> the dispatching wrapper (also the engines' key)
_ORIGINAL = {}   # name -> scipy's function, once scipy.linalg is imported


def _scipy(name):
    """The dispatching wrapper of scipy.linalg's ``name``, importing
    scipy.linalg (which installs the wrappers) if the user's code has not."""
    if name not in _ORIGINAL:
        import scipy.linalg  # noqa: F401  (when_imported below installs the wrappers)
    return _WRAPPER[name]


# --------------------------------------------------------------------------
# dispatch: numpy's protocol in front of scipy.linalg's functions

def _wrapper(name):
    """scipy.linalg's ``name`` for traced and plain arguments alike: the
    engines' key for it (registered at import, before scipy is), installed
    in scipy.linalg's namespace once scipy.linalg is imported."""
    wrapper = dispatching(name, "scipy.linalg", lambda: _ORIGINAL.get(name) or _load(name))
    _WRAPPER[name] = wrapper
    return wrapper


def _load(name):
    import scipy.linalg  # noqa: F401
    return _ORIGINAL[name]


def _install(module):
    for name in _NAMES:
        if getattr(module, name, None) is not None:
            _ORIGINAL[name] = install(module, name, _WRAPPER[name])


# --------------------------------------------------------------------------
# helpers on engine values

def _mm(a, b):
    return matmul_times(a, b)


def _times_plain(a, b):
    return times(a, b, plain)


def _as_matrix(b):
    return np.reshape(b, shape_of(b) + (1,)) if ndim(b) == 1 else b


def _tri(n, lower, strict):
    m = np.tril(np.ones((n, n), dtype=bool), -1 if strict else 0)
    return m if lower else m.T


def _outer_neg(gb, x):
    """-gb x^T for vectors or matrices (the right-hand sides' columns)."""
    return -_mm(_as_matrix(gb), swap(_as_matrix(x)))


def _square(name, a):
    s = shape_of(a)
    if len(s) != 2 or s[0] != s[1]:
        raise ValueError(f"scipy.linalg.{name}: expected a square matrix, got shape {s}")


# --------------------------------------------------------------------------
# solve_triangular: op(T) x = b, T one triangle of a (unit diagonal if asked),
# op = T or T^T.  dx = op(T)^-1 (db - op(dT) x); bbar = op(T)^-T xbar,
# op(Tbar) = -bbar x^T, kept on T's triangle

def _st(a, b, p, trans):
    return _scipy("solve_triangular")(a, b, trans=trans, lower=p["lower"],
                                      unit_diagonal=p["unit"], check_finite=False)


def _st_mask(a, p):
    return _tri(shape_of(a)[-1], p["lower"], p["unit"])


def _st_jvp(ts, vals, x, p):
    (ta, tb), (a, b) = ts, vals
    rhs = tb
    if ta is not None:
        dt = np.where(_st_mask(a, p), ta, 0.0)
        dtx = _mm(dt if p["trans"] == 0 else swap(dt), _as_matrix(x))
        dtx = np.reshape(dtx, shape_of(x))
        rhs = -dtx if rhs is None else rhs - dtx
    return _st(a, rhs, p, p["trans"])


def _st_vjp(k, g, vals, x, p):
    a, b = vals
    gb = _st(a, g, p, 1 if p["trans"] == 0 else 0)
    if k == 1:
        return gb
    m = _outer_neg(gb, x)
    return np.where(_st_mask(a, p), m if p["trans"] == 0 else swap(m), 0.0)


solve_triangular = Primitive(
    "scipy.linalg.solve_triangular",
    lambda a, b, trans, lower, unit, check: _scipy("solve_triangular")(
        a, b, trans=trans, lower=lower, unit_diagonal=unit, check_finite=check),
    _st_jvp, _st_vjp, reads_out=True)

# LAPACK's codes; for real matrices 'C' is 'T' (other arithmetic, the same math)
_TRANS = {0: 0, 1: 1, 2: 2, "N": 0, "T": 1, "C": 2}


def _solve_triangular_entry(bind, a, b, trans=0, lower=False, unit_diagonal=False,
                            overwrite_b=False, check_finite=True):
    a, b = array_operand(a), array_operand(b)
    _square("solve_triangular", a)
    if trans not in _TRANS:
        raise ValueError(f"scipy.linalg.solve_triangular: trans must be 0, 1, 2, 'N', 'T' "
                         f"or 'C', not {trans!r}")
    if ndim(b) not in (1, 2) or shape_of(b)[0] != shape_of(a)[0]:
        raise ValueError("scipy.linalg.solve_triangular: shapes of a "
                         f"{shape_of(a)} and b {shape_of(b)} are incompatible")
    params = {"trans": _TRANS[trans], "lower": bool(lower), "unit": bool(unit_diagonal),
              "check": bool(check_finite)}
    return bind(solve_triangular, (a, b), params, None)


# --------------------------------------------------------------------------
# cholesky: the factor alone (the other triangle zero), lower L or upper U,
# reading that triangle of a, as np.linalg.cholesky's

def _chol_factor_tangent(da, f, lower):
    return cholesky_tangent(da, f) if lower else swap(cholesky_tangent(swap(da), swap(f)))


def _chol_factor_adjoint(g, f, lower):
    return cholesky_adjoint(g, f) if lower else swap(cholesky_adjoint(swap(g), swap(f)))


cholesky = Primitive(
    "scipy.linalg.cholesky",
    lambda a, lower, check: _scipy("cholesky")(a, lower=lower, check_finite=check),
    lambda ts, vals, f, p: _chol_factor_tangent(ts[0], f, p["lower"]),
    lambda k, g, vals, f, p: _chol_factor_adjoint(g, f, p["lower"]), reads_out=True)


def _cholesky_entry(bind, a, lower=False, overwrite_a=False, check_finite=True):
    a = array_operand(a)
    _square("cholesky", a)
    return bind(cholesky, (a,), {"lower": bool(lower), "check": bool(check_finite)}, None)


# --------------------------------------------------------------------------
# cho_factor: c holds the Cholesky factor in one triangle (lower: L with
# A = L L^T, else U with A = U^T U, reading that triangle of a); the other
# holds a's own entries (scipy < 1.18) or zeros (scipy >= 1.18), whichever
# the installed scipy gives

def _factor_of(c, lower):
    return np.where(_tri(shape_of(c)[-1], lower, False), c, 0.0)


_KEEPS = []  # [whether the installed scipy's cho_factor keeps a's other triangle]


def _keeps_other_triangle():
    if not _KEEPS:
        a = np.array([[4.0, 2.0], [1.0, 4.0]])  # lower=False reads the upper triangle
        c = (_ORIGINAL.get("cho_factor") or _load("cho_factor"))(a, lower=False)[0]
        _KEEPS.append(bool(c[1, 0] == 1.0))
    return _KEEPS[0]


def _cf_jvp(ts, vals, c, p):
    lower = p["lower"]
    df = _chol_factor_tangent(ts[0], _factor_of(c, lower), lower)
    return np.where(_tri(shape_of(c)[-1], lower, False), df,
                    ts[0] if _keeps_other_triangle() else 0.0)


def _cf_vjp(k, g, vals, c, p):
    lower = p["lower"]
    mask = _tri(shape_of(c)[-1], lower, False)
    ga = _chol_factor_adjoint(np.where(mask, g, 0.0), _factor_of(c, lower), lower)
    return ga + np.where(mask, 0.0, g) if _keeps_other_triangle() else ga


cho_factor = Primitive(
    "scipy.linalg.cho_factor",
    lambda a, lower, check: _scipy("cho_factor")(a, lower=lower, check_finite=check)[0],
    _cf_jvp, _cf_vjp, reads_out=True)


def _cho_factor_entry(bind, a, lower=False, overwrite_a=False, check_finite=True):
    a = array_operand(a)
    _square("cho_factor", a)
    return bind(cho_factor, (a,), {"lower": bool(lower), "check": bool(check_finite)}, None), \
        bool(lower)


# --------------------------------------------------------------------------
# cho_solve: A x = b with A = L L^T (or U^T U) from c's triangle.
# dx = A^-1 (db - dA x), dA = dL L^T + L dL^T (dU^T U + U^T dU);
# bbar = A^-1 xbar, Abar = -bbar x^T, cbar = (Abar + Abar^T) L on L's
# triangle (U (Abar + Abar^T) on U's)

def _cs(c, b, lower):
    return _scipy("cho_solve")((c, lower), b, check_finite=False)


def _cs_jvp(ts, vals, x, p):
    (tc, tb), (c, b) = ts, vals
    lower = p["lower"]
    rhs = tb
    if tc is not None:
        f, df = _factor_of(c, lower), _factor_of(tc, lower)
        xm = _as_matrix(x)
        if lower:
            dax = _mm(df, _mm(swap(f), xm)) + _mm(f, _mm(swap(df), xm))
        else:
            dax = _mm(swap(df), _mm(f, xm)) + _mm(swap(f), _mm(df, xm))
        dax = np.reshape(dax, shape_of(x))
        rhs = -dax if rhs is None else rhs - dax
    return _cs(c, rhs, lower)


def _cs_vjp(k, g, vals, x, p):
    c, b = vals
    lower = p["lower"]
    gb = _cs(c, g, lower)
    if k == 1:
        return gb
    ga = _outer_neg(gb, x)
    sym = ga + swap(ga)
    f = _factor_of(c, lower)
    return _factor_of(_mm(sym, f) if lower else _mm(f, sym), lower)


cho_solve = Primitive(
    "scipy.linalg.cho_solve",
    lambda c, b, lower, check: _scipy("cho_solve")((c, lower), b, check_finite=check),
    _cs_jvp, _cs_vjp, reads_out=True)


def _cho_solve_entry(bind, c_and_lower, b, overwrite_b=False, check_finite=True):
    c, lower = c_and_lower
    c, b = array_operand(c), array_operand(b)
    _square("cho_solve", c)
    if ndim(b) not in (1, 2) or shape_of(b)[0] != shape_of(c)[0]:
        raise ValueError(f"scipy.linalg.cho_solve: incompatible dimensions ({shape_of(c)} "
                         f"and {shape_of(b)})")
    return bind(cho_solve, (c, b), {"lower": bool(lower), "check": bool(check_finite)}, None)


# --------------------------------------------------------------------------
# lu_factor: P A = L U (square), packed in one matrix; the pivots (LAPACK's
# row interchanges) are constant.  With X = L^-1 P dA U^-1:
# dL = L tril(X, -1), dU = triu(X) U (JAX); the VJP:
# Xbar = tril(L^T Lbar, -1) + triu(Ubar U^T), Abar = P^T L^-T Xbar U^-T

def _permutation(piv):
    perm = list(range(len(piv)))
    for i, j in enumerate(piv):
        perm[i], perm[j] = perm[j], perm[i]
    return np.array(perm, dtype=np.intp)


def _lu_parts(lu):
    n = shape_of(lu)[-1]
    ell = np.where(_tri(n, True, True), lu, 0.0) + np.eye(n, dtype=float_dtype(lu))
    u = np.where(_tri(n, False, False), lu, 0.0)
    return ell, u


def _lf_jvp(ts, vals, lu, p):
    ell, u = _lu_parts(lu)
    n = shape_of(lu)[-1]
    pda = ts[0][_permutation(p["piv"])]
    x = swap(np.linalg.solve(swap(u), swap(np.linalg.solve(ell, pda))))
    return (_mm(ell, np.where(_tri(n, True, True), x, 0.0))
            + _mm(np.where(_tri(n, False, False), x, 0.0), u))


def _lf_vjp(k, g, vals, lu, p):
    ell, u = _lu_parts(lu)
    n = shape_of(lu)[-1]
    gl, gu = np.where(_tri(n, True, True), g, 0.0), np.where(_tri(n, False, False), g, 0.0)
    xbar = (np.where(_tri(n, True, True), _mm(swap(ell), gl), 0.0)
            + np.where(_tri(n, False, False), _mm(gu, swap(u)), 0.0))
    m = swap(np.linalg.solve(u, swap(np.linalg.solve(swap(ell), xbar))))
    return m[np.argsort(_permutation(p["piv"]))]


lu_factor = Primitive(
    "scipy.linalg.lu_factor",
    lambda a, piv, check: _scipy("lu_factor")(a, check_finite=check)[0],
    _lf_jvp, _lf_vjp, reads_out=True)


def _lu_factor_entry(bind, a, overwrite_a=False, check_finite=True):
    a = array_operand(a)
    _square("lu_factor", a)
    _, piv = _scipy("lu_factor")(np.asarray(plain(a)), check_finite=check_finite)
    params = {"piv": tuple(int(i) for i in piv), "check": bool(check_finite)}
    return bind(lu_factor, (a,), params, None), piv


# --------------------------------------------------------------------------
# lu_solve: op(A) x = b with A = P^T L U from the packed factors.
# dA = P^T (dL U + L dU); bbar = op(A)^-T xbar, op(Abar) = -bbar x^T,
# lubar = tril(P Abar U^T, -1) + triu(L^T P Abar)

def _ls(lu, piv, b, trans):
    return _scipy("lu_solve")((lu, np.asarray(piv, dtype=np.int32)), b, trans=trans,
                              check_finite=False)


def _ls_jvp(ts, vals, x, p):
    (tl, tb), (lu, b) = ts, vals
    rhs = tb
    if tl is not None:
        n = shape_of(lu)[-1]
        ell, u = _lu_parts(lu)
        dl, du = np.where(_tri(n, True, True), tl, 0.0), np.where(_tri(n, False, False), tl, 0.0)
        inverse = np.argsort(_permutation(p["piv"]))
        da = (_mm(dl, u) + _mm(ell, du))[inverse]
        dax = _mm(da if p["trans"] == 0 else swap(da), _as_matrix(x))
        dax = np.reshape(dax, shape_of(x))
        rhs = -dax if rhs is None else rhs - dax
    return _ls(lu, p["piv"], rhs, p["trans"])


def _ls_vjp(k, g, vals, x, p):
    lu, b = vals
    gb = _ls(lu, p["piv"], g, 1 if p["trans"] == 0 else 0)
    if k == 1:
        return gb
    n = shape_of(lu)[-1]
    m = _outer_neg(gb, x)
    pa = (m if p["trans"] == 0 else swap(m))[_permutation(p["piv"])]
    ell, u = _lu_parts(lu)
    return (np.where(_tri(n, True, True), _mm(pa, swap(u)), 0.0)
            + np.where(_tri(n, False, False), _mm(swap(ell), pa), 0.0))


lu_solve = Primitive(
    "scipy.linalg.lu_solve",
    lambda lu, b, piv, trans, check: _scipy("lu_solve")(
        (lu, np.asarray(piv, dtype=np.int32)), b, trans=trans, check_finite=check),
    _ls_jvp, _ls_vjp, reads_out=True)


def _lu_solve_entry(bind, lu_and_piv, b, trans=0, overwrite_b=False, check_finite=True):
    lu, piv = lu_and_piv
    lu, b = array_operand(lu), array_operand(b)
    _square("lu_solve", lu)
    if plain(piv) is not piv:
        raise TypeError("scipy.linalg.lu_solve: the pivots are integers and take no "
                        "derivative; pass lu_factor's piv as it is")
    if trans not in _TRANS:
        raise ValueError(f"scipy.linalg.lu_solve: trans must be 0, 1 or 2, not {trans!r}")
    if ndim(b) not in (1, 2) or shape_of(b)[0] != shape_of(lu)[0]:
        raise ValueError(f"scipy.linalg.lu_solve: incompatible dimensions ({shape_of(lu)} "
                         f"and {shape_of(b)})")
    params = {"piv": tuple(int(i) for i in np.asarray(piv)), "trans": _TRANS[trans],
              "check": bool(check_finite)}
    return bind(lu_solve, (lu, b), params, None)


# --------------------------------------------------------------------------
# expm: its Frechet derivative L(A, E) is the upper right block of
# expm([[A, E], [0, A]]) (Higham); the VJP is L(A^T, G)

def _frechet(a, e):
    n = shape_of(a)[-1]
    zero = np.zeros(shape_of(a), float_dtype(a, e))
    block = np.concatenate([np.concatenate([a, e], axis=-1),
                            np.concatenate([zero, a], axis=-1)], axis=-2)
    return _scipy("expm")(block)[..., :n, n:]


expm = Primitive("scipy.linalg.expm", lambda a: _scipy("expm")(a),
                 lambda ts, vals, out, p: _frechet(vals[0], ts[0]),
                 lambda k, g, vals, out, p: _frechet(swap(vals[0]), g))


def _expm_entry(bind, A):
    a = array_operand(A)
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ValueError(f"scipy.linalg.expm: expected a square matrix (or a stack), got "
                         f"shape {s}")
    return bind(expm, (a,), {}, None)


# --------------------------------------------------------------------------
# solve, inv, det: np.linalg's derivatives (scipy's values), through the part
# of a that ``assume_a`` says scipy reads: one triangle, symmetrized, for
# 'sym'/'her'/'pos' (the upper unless lower=True); one triangle as it is for
# 'upper triangular'/'lower triangular'; the diagonal for 'diagonal'; all of
# it for None (scipy's own detection of structure changes the algorithm, not
# the function) and 'gen'

_FULL, _SYMMETRIC, _UPPER, _LOWER, _DIAGONAL = "full", "symmetric", "upper", "lower", "diagonal"
_STRUCTURE = {None: _FULL, "gen": _FULL, "general": _FULL, "sym": _SYMMETRIC, "her": _SYMMETRIC,
              "pos": _SYMMETRIC, "upper triangular": _UPPER, "lower triangular": _LOWER,
              "diagonal": _DIAGONAL}


def _structure(fname, assume_a, allowed):
    s = _STRUCTURE.get(assume_a)
    if s is None or s not in allowed:
        names = sorted(k for k, v in _STRUCTURE.items() if v in allowed and k)
        raise NotImplementedError(
            f"shadowad: scipy.linalg.{fname}(..., assume_a={assume_a!r}) of traced values has no "
            f"derivative here; use assume_a=None or one of {names}")
    return s


def _read_tangent(da, p):
    s, n = p["structure"], shape_of(da)[-1]
    if s == _SYMMETRIC:
        return triangle_tangent(da, p["lower"])
    if s == _UPPER or s == _LOWER:
        return np.where(_tri(n, s == _LOWER, False), da, 0.0)
    if s == _DIAGONAL:
        return np.where(np.eye(n, dtype=bool), da, 0.0)
    return da


def _read_adjoint(g, p):
    s, n = p["structure"], shape_of(g)[-1]
    if s == _SYMMETRIC:
        return triangle_adjoint(g, p["lower"])
    if s == _UPPER or s == _LOWER:
        return np.where(_tri(n, s == _LOWER, False), g, 0.0)
    if s == _DIAGONAL:
        return np.where(np.eye(n, dtype=bool), g, 0.0)
    return g


def _solve_call(a, b, p, transposed):
    return _scipy("solve")(a, b, lower=p["lower"], assume_a=p["assume_a"],
                           transposed=transposed, check_finite=False)


def _solve_jvp(ts, vals, x, p):
    (ta, tb), (a, b) = ts, vals
    rhs = tb
    if ta is not None:
        da = _read_tangent(ta, p)
        dax = np.reshape(_mm(swap(da) if p["transposed"] else da, _as_matrix(x)), shape_of(x))
        rhs = -dax if rhs is None else rhs - dax
    return _solve_call(a, rhs, p, p["transposed"])


def _solve_adjoint_rhs(a, g, p):
    """The matrix scipy reads, transposed, solved against g: symmetric and
    diagonal ones are their transposes; a triangle is solved transposed by
    solve_triangular (scipy's solve takes transposed=True only for 'gen')."""
    s = p["structure"]
    if s == _SYMMETRIC or s == _DIAGONAL:
        return _solve_call(a, g, p, False)
    if s == _UPPER or s == _LOWER:
        return _scipy("solve_triangular")(a, g, trans=1, lower=s == _LOWER, check_finite=False)
    return _solve_call(a, g, p, not p["transposed"])


def _solve_vjp(k, g, vals, x, p):
    a, b = vals
    gb = _solve_adjoint_rhs(a, g, p)
    if k == 1:
        return gb
    m = _outer_neg(gb, x)
    return _read_adjoint(swap(m) if p["transposed"] else m, p)


solve = Primitive(
    "scipy.linalg.solve",
    lambda a, b, lower, assume_a, structure, transposed, check: _scipy("solve")(
        a, b, lower=lower, assume_a=assume_a, transposed=transposed, check_finite=check),
    _solve_jvp, _solve_vjp, reads_out=True)


def _solve_entry(bind, a, b, lower=False, overwrite_a=False, overwrite_b=False,
                 check_finite=True, assume_a=None, transposed=False):
    a, b = array_operand(a), array_operand(b)
    _square("solve", a)
    if ndim(b) not in (1, 2) or shape_of(b)[0] != shape_of(a)[0]:
        raise ValueError(f"scipy.linalg.solve of traced values: a {shape_of(a)} and b "
                         f"{shape_of(b)} (1-D or 2-D, as many rows as a) are incompatible")
    structure = _structure("solve", assume_a, (_FULL, _SYMMETRIC, _UPPER, _LOWER, _DIAGONAL))
    if transposed and structure != _FULL:
        raise NotImplementedError("shadowad: scipy.linalg.solve(..., transposed=True) of traced "
                                  "values takes assume_a=None or 'gen'; transpose a instead")
    params = {"lower": bool(lower), "assume_a": assume_a, "structure": structure,
              "transposed": bool(transposed), "check": bool(check_finite)}
    return bind(solve, (a, b), params, None)


# inv: dZ = -Z dA Z, Abar = -Z^T Zbar Z^T (read back through assume_a)

def _inv_impl(a, lower, assume_a, structure, check):
    if assume_a is None:
        return _scipy("inv")(a, check_finite=check)
    return _scipy("inv")(a, check_finite=check, assume_a=assume_a, lower=lower)


inv = Primitive(
    "scipy.linalg.inv", _inv_impl,
    lambda ts, vals, z, p: -_mm(z, _mm(_read_tangent(ts[0], p), z)),
    lambda k, g, vals, z, p: _read_adjoint(-_mm(swap(z), _mm(g, swap(z))), p),
    reads_out=True)


def _inv_entry(bind, a, overwrite_a=False, check_finite=True, *, assume_a=None, lower=False):
    a = array_operand(a)
    _square("inv", a)
    structure = _structure("inv", assume_a, (_FULL, _SYMMETRIC))
    return bind(inv, (a,), {"lower": bool(lower), "assume_a": assume_a,
                            "structure": structure, "check": bool(check_finite)}, None)


# det: the cofactors (np.linalg.det's, also where a is singular)

det = Primitive(
    "scipy.linalg.det", lambda a, check: _scipy("det")(a, check_finite=check),
    lambda ts, vals, d, p: np.sum(_times_plain(ts[0], cofactors(vals[0], d)), axis=(-2, -1)),
    lambda k, g, vals, d, p: _times_plain(np.reshape(g, shape_of(g) + (1, 1)),
                                          cofactors(vals[0], d)),
    reads_out=True)


def _det_entry(bind, a, overwrite_a=False, check_finite=True):
    a = array_operand(a)
    s = shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ValueError(f"scipy.linalg.det: expected a square matrix (or a stack), got shape {s}")
    return bind(det, (a,), {"check": bool(check_finite)}, None)


_ENTRIES = {"solve_triangular": _solve_triangular_entry, "cholesky": _cholesky_entry,
            "cho_factor": _cho_factor_entry,
            "cho_solve": _cho_solve_entry, "lu_factor": _lu_factor_entry,
            "lu_solve": _lu_solve_entry, "expm": _expm_entry, "solve": _solve_entry,
            "inv": _inv_entry, "det": _det_entry}

if AVAILABLE:
    for _name in _NAMES:
        implements(_wrapper(_name))(_ENTRIES[_name])
    when_imported("scipy.linalg", _install)
