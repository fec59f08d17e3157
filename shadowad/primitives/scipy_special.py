"""scipy.special inside f: its ufuncs as entries of the elementwise partials
table, and logsumexp and softmax as primitives.  scipy is optional: nothing
here registers when it cannot be imported (``AVAILABLE`` says which).

The ufuncs (expit, logit, erf, erfc, gammaln, digamma, xlogy, xlog1py,
ndtr, log_ndtr) reach the engines through ``__array_ufunc__`` as numpy's
do.  They have no C kernel (trigamma, digamma's derivative, is not in C's
math library): every engine runs their generic rule
(shadowad.primitives.elementwise_rules).  digamma's derivative is the
``polygamma`` primitive below, whose derivative is polygamma one order up,
so derivatives of any order exist.  scipy.special.softplus is
``np.logaddexp(0, x)`` in scipy itself, and the table's logaddexp answers it.

logsumexp and softmax are Python functions that convert their inputs with
np.asarray; shadowad puts numpy's dispatch in front of them
(shadowad.support.library_dispatch), so that ``scipy.special.logsumexp(x)``
inside f reaches the rule registered here.  Code that bound the name before
shadowad was imported (``from scipy.special import logsumexp`` first) holds
scipy's own function, which refuses traced values with an error naming it.
Their values are scipy's, bit for bit (the impl calls scipy on plain values).
"""
import numpy as np

from ..support.library_dispatch import dispatched, dispatching, install
from ..support.products import times
from .core import Primitive, apply, implements
from .elementwise import TABLE, define, zero_where
from .elementwise_rules import register_without_kernel
from .values import float_dtype, plain, shape_of, unbroadcast

try:
    import scipy.special as _special
except ImportError:  # scipy is optional
    _special = None

AVAILABLE = _special is not None

__all__ = ["AVAILABLE"]

_TWO_OVER_SQRT_PI = 1.1283791670955126   # 2 / sqrt(pi)
_INV_SQRT_2PI = 0.3989422804014327       # 1 / sqrt(2 pi)


def _polygamma_impl(x, n):
    if isinstance(x, (float, int, np.ndarray, np.generic)):
        # scipy has no float32 polygamma: its float64 value rounded to float32,
        # as scipy's own float32 loops (digamma's) do
        r = _special.polygamma(n, x)
        return r.astype(np.float32) if float_dtype(x) == np.float32 else r
    # a value an enclosing differentiation traces: its engine binds the primitive
    return apply(polygamma, (x,), {"n": n}, numpy_impl=False)


def _polygamma_jvp(ts, vals, out, params):
    return times(ts[0], _polygamma(vals[0], params["n"] + 1), plain)


def _polygamma_vjp(k, g, vals, out, params):
    d = _polygamma(vals[0], params["n"] + 1)
    return unbroadcast(times(g, d, plain), shape_of(vals[0]))


# polygamma(n, x) for a fixed order n >= 1: the derivatives of digamma
polygamma = Primitive("scipy.special.polygamma", _polygamma_impl, _polygamma_jvp,
                      _polygamma_vjp)


def _polygamma(x, n):
    """polygamma(n, x) on any engine's values: scipy's polygamma converts its
    input, so its impl runs on plain values only, and every engine binds it."""
    return apply(polygamma, (x,), {"n": n}, numpy_impl=False)


def _log_ndtr_dx(x, z):
    # phi(x) / Phi(x) as exp(log phi(x) - log Phi(x)); far in the left tail,
    # where both logs overflow (x*x = inf, or z = -inf), its limit -x
    d = np.exp(-0.5 * x * x - z) * _INV_SQRT_2PI
    tail = np.logical_and(np.isnan(plain(d)), plain(x) < 0)
    return np.where(tail, -x, d) if np.any(tail) else d


# name, scipy ufunc, partials, convention
_UFUNCS = [
    ("expit", "expit", (lambda x, z: z * (1.0 - z),),
     "expit'(x) = z * (1 - z): 0 at ±inf"),
    ("logit", "logit", (lambda x, z: 1.0 / (x * (1.0 - x)),),
     "logit'(x) = 1 / (x (1 - x)): +inf at 0 and 1; outside [0, 1] (the value is NaN) the "
     "formula's finite value"),
    ("erf", "erf", (lambda x, z: np.exp(-x * x) * _TWO_OVER_SQRT_PI,),
     "erf'(x) = 2/sqrt(pi) exp(-x*x): 0 at ±inf"),
    ("erfc", "erfc", (lambda x, z: np.exp(-x * x) * -_TWO_OVER_SQRT_PI,),
     "erfc'(x) = -2/sqrt(pi) exp(-x*x)"),
    ("ndtr", "ndtr", (lambda x, z: np.exp(-0.5 * x * x) * _INV_SQRT_2PI,),
     "ndtr'(x) = exp(-x*x/2) / sqrt(2 pi)"),
    ("log_ndtr", "log_ndtr", (_log_ndtr_dx,),
     "log_ndtr'(x) = exp(-x*x/2 - log_ndtr(x)) / sqrt(2 pi), stable far into the left "
     "tail; where that overflows (x < -3.8e154 or log_ndtr(x) = -inf) its limit -x "
     "(+inf at -inf); 0 at +inf"),
    ("gammaln", "gammaln", (lambda x, z: _special.digamma(x),),
     "gammaln'(x) = digamma(x) (also for x < 0: the derivative of log|Gamma(x)|); at the "
     "poles x = 0, -1, -2, ... digamma's value there (scipy: -inf at +0, +inf at -0.0, "
     "NaN at negative integers)"),
    ("digamma", "digamma", (lambda x, z: _polygamma(x, 1),),
     "digamma'(x) = polygamma(1, x): +inf at the poles 0, -1, -2, ...; higher "
     "derivatives are polygamma(n, x)"),
    ("xlogy", "xlogy",
     (lambda x, y, z: np.log(y), lambda x, y, z: zero_where(plain(x) == 0, x / y)),
     "xlogy(x, y) = x log y (0 at x = 0): dz/dx = log(y), also at x = 0 (JAX's "
     "convention; -inf at y = 0); dz/dy = x / y, and 0 where x == 0 (the function is 0 "
     "there for every y; JAX gives NaN at x = y = 0)"),
    ("xlog1py", "xlog1py",
     (lambda x, y, z: np.log1p(y), lambda x, y, z: zero_where(plain(x) == 0, x / (1.0 + y))),
     "xlog1py(x, y) = x log1p(y): dz/dx = log1p(y), also at x = 0; dz/dy = x / (1 + y), "
     "0 where x == 0"),
]


# --------------------------------------------------------------------------
# logsumexp and softmax

def _axes(axis, nd):
    if axis is None:
        return tuple(range(nd))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    return tuple(sorted(int(a) % nd if nd else int(a) for a in axes))


def _kept_shape(shape, axes):
    return tuple(1 if d in axes else n for d, n in enumerate(shape))


def _lse_impl(a, b=None, *, axis, keepdims):
    return _special.logsumexp(a, axis=axis, b=b, keepdims=keepdims)


def _lse_weights(vals, out, axis):
    """(dz/da, dz/db or None) at every entry of the broadcast operands:
    b * exp(a - z) and exp(a - z).  Where a - z is inf - inf (a = z = ±inf)
    the limits: for z = +inf the +inf entries share the derivative in
    proportion to b (evenly without b), and dz/db is 0 there; for z = -inf
    (every term 0) both are 0."""
    a, b = vals[0], (vals[1] if len(vals) > 1 else None)
    shape = np.broadcast_shapes(shape_of(a), () if b is None else shape_of(b))
    axes = _axes(axis, len(shape))
    zk = np.reshape(out, _kept_shape(shape, axes))
    e = np.exp(a - zk)
    pa, pz = np.broadcast_to(plain(a), shape), plain(zk)
    with np.errstate(invalid="ignore"):
        edge = np.logical_and(np.isnan(pa - pz), pa == pz)
    wa = e if b is None else times(b, e, plain)
    if not np.any(edge):
        return wa, (None if b is None else e)
    pb = np.broadcast_to(1.0 if b is None else plain(b), shape)
    share = np.where(edge, pb, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(np.logical_and(edge, pz > 0),
                         share / np.sum(share, axis=axes, keepdims=True), 0.0)
    wa = np.where(edge, share, wa)
    return wa, (None if b is None else np.where(edge, 0.0, e))


def _lse_jvp(ts, vals, out, params):
    axis = params["axis"]
    ws = _lse_weights(vals, out, axis)
    shape = np.broadcast_shapes(*[shape_of(v) for v in vals])
    axes = _axes(axis, len(shape))
    res = None
    for t, w in zip(ts, ws):
        if t is not None:
            term = np.sum(times(t, w, plain), axis=axes, keepdims=params["keepdims"])
            res = term if res is None else res + term
    return res


def _lse_vjp(k, g, vals, out, params):
    axis = params["axis"]
    shape = np.broadcast_shapes(*[shape_of(v) for v in vals])
    axes = _axes(axis, len(shape))
    w = _lse_weights(vals, out, axis)[k]
    gk = np.reshape(g, _kept_shape(shape, axes))
    return unbroadcast(times(gk, w, plain), shape_of(vals[k]))


logsumexp = Primitive("scipy.special.logsumexp", _lse_impl, _lse_jvp, _lse_vjp, reads_out=True)


def _softmax_impl(x, *, axis):
    return _special.softmax(x, axis=axis)


def _softmax_product(s, t, axis):
    """The JVP s * (t - sum(s t)), which is also the VJP (the Jacobian is
    symmetric): a zero factor gives zero."""
    axes = _axes(axis, len(shape_of(s)))
    st = times(s, t, plain)
    return st - times(s, np.sum(st, axis=axes, keepdims=True), plain)


softmax = Primitive(
    "scipy.special.softmax", _softmax_impl,
    lambda ts, vals, out, params: _softmax_product(out, ts[0], params["axis"]),
    lambda k, g, vals, out, params: _softmax_product(out, g, params["axis"]),
    reads_out=True)


def _logsumexp_entry(bind, a, axis=None, b=None, keepdims=False, return_sign=False):
    if return_sign:
        raise TypeError(
            "shadowad: scipy.special.logsumexp(..., return_sign=True) is not supported on "
            "traced values (the sign has no derivative); call it without return_sign, or on "
            "sad.primal(a) for the sign alone")
    operands = (a,) if b is None else (a, b)
    return bind(logsumexp, operands, {"axis": axis, "keepdims": bool(keepdims)}, None)


def _softmax_entry(bind, x, axis=None):
    return bind(softmax, (x,), {"axis": axis}, None)


def _register():
    for name, attr, partials, convention in _UFUNCS:
        ufunc = getattr(_special, attr)
        if name not in TABLE:
            register_without_kernel(define(name, [ufunc], None, partials, convention))
    # numpy's dispatch in front of them (see the module's docstring); the
    # wrappers are the engines' keys
    for name, entry in (("logsumexp", _logsumexp_entry), ("softmax", _softmax_entry)):
        function = dispatched(getattr(_special, name))
        wrapper = dispatching(name, "scipy.special", (lambda f: lambda: f)(function))
        implements(wrapper)(entry)
        install(_special, name, wrapper)


if AVAILABLE:
    _register()
