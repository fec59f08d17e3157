"""The primitives of nested differentiation, each with its rules beside it.

A ``Rule`` has three parts, all ordinary numpy on the values one level down
(plain, traced by an enclosing differentiation, or Boxes of an enclosing
nested call -- so that enclosing differentiation records and differentiates
them too):

* ``impl(*vals, **params)``: the value;
* ``jvp(tangents, vals, out, params)``: the output tangent (a tangent is None
  where an input is constant at this level);
* ``vjp(k, g, vals, out, params)``: the adjoint of input ``k`` for the output
  adjoint ``g`` (None: no contribution).

Derivatives at non-differentiable points follow docs/design-notes.md, as the
C kernels do: abs'(0) = 0, d(x**y)/dx = 0 where y == 0 and d(x**y)/dy = 0
where x == 0; the weights of maximum/minimum/fmax/fmin and of the max/min
reductions (ties, NaNs) come from the C engine's own definitions; and every
chain-rule product is ``_chain``: a zero factor gives zero, even against an
infinite or NaN one (shadowad.products).  The partials are the C kernels'
formulas, operation for operation, so first derivatives agree bit for bit.
"""
import operator

import numpy as np

from . import primitives
from ._c import lib
from .nested_box import FUNCTIONS, RULES, UFUNCS, Box, bind, plain, shape_of, unsupported
from .products import times
from .rules.elementwise import plain_partials
from .rules.reductions import extreme_entries
from .traced import _safe, complete_ndarray_interface


class Rule:
    __slots__ = ("name", "impl", "jvp", "vjp")

    def __init__(self, name, impl, jvp, vjp):
        self.name, self.impl, self.jvp, self.vjp = name, impl, jvp, vjp

    def __repr__(self):
        return f"Rule({self.name})"


# --------------------------------------------------------------------------
# helpers shared by the rules

def fit(t, shape):
    """Tangent ``t`` broadcast to the output's shape (``x + c`` with a scalar x
    and an array c has an array tangent)."""
    if t is None or shape_of(t) == shape:
        return t
    return np.zeros(shape) + t


def unbroadcast(g, shape):
    """Adjoint ``g`` of a broadcast result summed back to an input's shape."""
    gs = shape_of(g)
    if gs == shape:
        return g
    if len(gs) < len(shape):
        return np.zeros(shape) + g
    extra = len(gs) - len(shape)
    if extra:
        g = np.sum(g, axis=tuple(range(extra)))
        gs = shape_of(g)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and gs[i] != 1)
    if axes:
        g = np.sum(g, axis=axes, keepdims=True)
    return g


def _is_plain(v):
    return isinstance(v, (np.ndarray, float, int, np.generic))


def _sum_terms(terms):
    res = None
    for t in terms:
        if t is not None:
            res = t if res is None else res + t
    return res


# --------------------------------------------------------------------------
# elementwise

def _chain(t, p):
    """Tangent or adjoint t times partial p, a zero factor giving zero (as in
    the C kernels), for values of any level: zeros and NaNs are found on the
    plain values, and only the entries that need it go through np.where.  A
    partial's own infinities (sqrt at 0) are not numpy warnings here, as they
    are not in the C engine."""
    return times(t, p, plain)


def unary(name, ufunc, partial):
    """``ufunc`` of one input; ``partial(x, z)`` is dz/dx (z = ufunc(x))."""
    def jvp(ts, vals, out, params):
        with np.errstate(all="ignore"):
            return _chain(ts[0], partial(vals[0], out))

    def vjp(k, g, vals, out, params):
        with np.errstate(all="ignore"):
            return _chain(g, partial(vals[0], out))

    RULES[name] = Rule(name, ufunc, jvp, vjp)
    UFUNCS[ufunc] = _applies(RULES[name])


def _applies(rule):
    """The handler of a ufunc that is one rule of its inputs."""
    return lambda *inputs: bind(rule, inputs, {})


unary("exp", np.exp, lambda x, z: z)
unary("log", np.log, lambda x, z: 1.0 / x)
unary("sqrt", np.sqrt, lambda x, z: 0.5 / z)
unary("sin", np.sin, lambda x, z: np.cos(x))
unary("cos", np.cos, lambda x, z: -np.sin(x))
unary("tan", np.tan, lambda x, z: 1.0 + z * z)
unary("tanh", np.tanh, lambda x, z: 1.0 - z * z)
unary("sinh", np.sinh, lambda x, z: np.cosh(x))
unary("cosh", np.cosh, lambda x, z: np.sinh(x))
unary("arctan", np.arctan, lambda x, z: 1.0 / (1.0 + x * x))
unary("log1p", np.log1p, lambda x, z: 1.0 / (1.0 + x))
unary("expm1", np.expm1, lambda x, z: z + 1.0)
unary("square", np.square, lambda x, z: 2.0 * x)
unary("reciprocal", np.reciprocal, lambda x, z: -(z * z))


def _abs_partial(x, z):
    """abs'(0) = 0 and abs'(nan) = 0: the C partial (a plain value)."""
    return plain_partials(lib.SAD_ABS, plain(x), 0.0)[0]


unary("absolute", np.absolute, _abs_partial)

RULES["negative"] = Rule(
    "negative", operator.neg,
    lambda ts, vals, out, params: -ts[0],
    lambda k, g, vals, out, params: -g)
UFUNCS[np.negative] = _applies(RULES["negative"])
UFUNCS[np.positive] = lambda a: a


def _scalar_safe(fn):
    """Python float arithmetic with numpy's IEEE results (inf, nan) instead of
    exceptions; everything else through the operator itself."""
    def impl(a, b):
        if (type(a) is float or type(a) is int) and (type(b) is float or type(b) is int):
            return _safe(fn, a, b)
        return fn(a, b)
    return impl


def binary(name, ufunc, impl, dx, dy):
    """``ufunc`` of two broadcast inputs; ``dx(t, x, y, z)`` is t * dz/dx
    (elementwise, so the same product serves tangents and adjoints)."""
    partials = (dx, dy)

    def jvp(ts, vals, out, params):
        x, y = vals
        tx, ty = ts
        with np.errstate(all="ignore"):
            if ty is None:
                t = dx(tx, x, y, out)
            elif tx is None:
                t = dy(ty, x, y, out)
            else:
                t = _sum_terms((dx(tx, x, y, out), dy(ty, x, y, out)))
        return fit(t, shape_of(out))

    def vjp(k, g, vals, out, params):
        with np.errstate(all="ignore"):
            c = partials[k](g, vals[0], vals[1], out)
        return None if c is None else unbroadcast(c, shape_of(vals[k]))

    RULES[name] = Rule(name, impl, jvp, vjp)
    UFUNCS[ufunc] = _applies(RULES[name])


binary("add", np.add, _scalar_safe(operator.add),
       lambda t, x, y, z: t, lambda t, x, y, z: t)
binary("subtract", np.subtract, _scalar_safe(operator.sub),
       lambda t, x, y, z: t, lambda t, x, y, z: -t)
_div = _scalar_safe(operator.truediv)
binary("multiply", np.multiply, _scalar_safe(operator.mul),
       lambda t, x, y, z: _chain(t, y), lambda t, x, y, z: _chain(t, x))
binary("divide", np.divide, _div,
       lambda t, x, y, z: _chain(t, _div(1.0, y)),
       lambda t, x, y, z: _chain(t, _div(-x, y * y)))


def _zero_where(mask, value):
    """value, with 0 where the plain boolean ``mask`` holds (if anywhere)."""
    if not np.any(mask):
        return value
    return np.where(mask, 0.0, value)


def _pow_dx(t, x, y, z):
    if isinstance(y, (int, float, np.integer, np.floating)):
        if y == 0:
            return None        # x ** 0 is the constant 1
        if y == 1:
            return t
        if y == 2:
            return _chain(t, 2.0 * x)
        return _chain(t, y * _pow(x, y - 1))
    return _chain(t, _zero_where(plain(y) == 0, y * _pow(x, y - 1)))


def _pow_dy(t, x, y, z):
    return _chain(t, _zero_where(plain(x) == 0, z * np.log(x)))


_pow = _scalar_safe(operator.pow)  # (-8.0) ** 0.5 is nan, not a complex number
binary("power", np.power, _pow, _pow_dx, _pow_dy)


def _select(name, ufunc, op):
    """maximum/minimum/fmax/fmin: plain weights, the C partials at the plain
    values (ties split evenly; with one NaN the derivative goes to the operand
    the value comes from)."""
    def weight(k):
        def term(t, x, y, z):
            return _chain(t, plain_partials(op, plain(x), plain(y))[k])
        return term
    binary(name, ufunc, ufunc, weight(0), weight(1))


_select("maximum", np.maximum, lib.SAD_MAX)
_select("minimum", np.minimum, lib.SAD_MIN)
_select("fmax", np.fmax, lib.SAD_FMAX)
_select("fmin", np.fmin, lib.SAD_FMIN)

# Functions whose derivative is zero almost everywhere run on the plain values.
for _u in (np.sign, np.floor, np.ceil, np.rint, np.trunc, np.isnan, np.isinf, np.isfinite,
           np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal):
    UFUNCS[_u] = (lambda u: lambda *vals: u(*[plain(v) for v in vals]))(_u)


# --------------------------------------------------------------------------
# where: the condition is plain (comparisons of traced values give booleans)

def _where_jvp(ts, vals, out, params):
    ta, tb = (0.0 if t is None else t for t in ts)
    return fit(np.where(params["cond"], ta, tb), shape_of(out))


def _where_vjp(k, g, vals, out, params):
    cond = params["cond"]
    picked = np.where(cond, g, 0.0) if k == 0 else np.where(cond, 0.0, g)
    return unbroadcast(picked, shape_of(vals[k]))


RULES["where"] = Rule("where", lambda a, b, cond: np.where(cond, a, b), _where_jvp, _where_vjp)


def where(cond, a=None, b=None):
    if a is None or b is None:
        raise unsupported("np.where(cond) (the one-argument form)")
    return bind(RULES["where"], (a, b), {"cond": plain(cond)})


FUNCTIONS[np.where] = where


# --------------------------------------------------------------------------
# reductions

def _axes(axis, ndim):
    if axis is None:
        return None
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(int(a) % ndim if ndim else int(a) for a in axes))


def _kept_shape(shape, axes):
    return tuple(1 if axes is None or i in axes else n for i, n in enumerate(shape))


def expand(g, shape, axes, keepdims):
    """The adjoint of a reduction's result spread back over the input's shape."""
    if not keepdims and axes is not None and shape_of(g) != ():
        g = np.reshape(g, _kept_shape(shape, axes))
    return np.zeros(shape) + g


RULES["sum"] = Rule(
    "sum", lambda a, axis, keepdims: np.sum(a, axis=axis, keepdims=keepdims),
    lambda ts, vals, out, p: np.sum(ts[0], axis=p["axis"], keepdims=p["keepdims"]),
    lambda k, g, vals, out, p: expand(g, shape_of(vals[0]), p["axis"], p["keepdims"]))


def _extremes(a, out, axes):
    """(mask, count): the entries that attain a max/min and how many share it,
    as the C engine's rule finds them (ties share evenly, a NaN result goes
    to the NaNs)."""
    pa = np.asarray(plain(a), dtype=float)
    zk = np.reshape(plain(out), _kept_shape(np.shape(pa), axes))
    return extreme_entries(pa, axes, zk)


def _extreme(name, fn):
    def jvp(ts, vals, out, p):
        mask, count = _extremes(vals[0], out, p["axis"])
        return np.sum(_chain(ts[0], times(mask, 1.0 / count)), axis=p["axis"],
                      keepdims=p["keepdims"])

    def vjp(k, g, vals, out, p):
        mask, count = _extremes(vals[0], out, p["axis"])
        return _chain(mask, expand(g, shape_of(vals[0]), p["axis"], p["keepdims"]) / count)

    RULES[name] = Rule(name, lambda a, axis, keepdims: fn(a, axis=axis, keepdims=keepdims),
                       jvp, vjp)


_extreme("max", np.max)
_extreme("min", np.min)


def _reduction(name):
    def handler(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        if out is not None:
            raise unsupported(f"np.{name}(..., out=...)")
        if kwargs:
            raise unsupported(f"np.{name}(..., {next(iter(kwargs))}=...)")
        return bind(RULES[name], (a,),
                    {"axis": _axes(axis, len(shape_of(a))), "keepdims": bool(keepdims)})
    return handler


FUNCTIONS[np.sum] = _reduction("sum")
FUNCTIONS[np.max] = FUNCTIONS[np.amax] = _reduction("max")
FUNCTIONS[np.min] = FUNCTIONS[np.amin] = _reduction("min")


def mean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    shape = shape_of(a)
    axes = _axes(axis, len(shape))
    count = int(np.prod([n for i, n in enumerate(shape) if axes is None or i in axes]))
    return FUNCTIONS[np.sum](a, axis, dtype, out, keepdims, **kwargs) / count


FUNCTIONS[np.mean] = mean


# --------------------------------------------------------------------------
# the primitives (shadowad.primitives): bound as they are defined

def _bind_primitive(prim, operands, params, out=None):
    if out is not None:
        raise unsupported(f"np.{prim.name}(..., out=...)")
    return bind(prim, operands, params)


def _entry(entry):
    return lambda *args, **kwargs: entry(_bind_primitive, *args, **kwargs)


for _func, _e in primitives.core.registered():
    (UFUNCS if isinstance(_func, np.ufunc) else FUNCTIONS)[_func] = _entry(_e)
primitives.values.PLAIN[Box] = lambda b: b.v


# --------------------------------------------------------------------------
# indexing: basic indices (ints, slices, None, Ellipsis); the pullback
# scatters the adjoint into zeros of the input's shape

def _scatter_impl(g, idx, shape):
    if _is_plain(g):
        z = np.zeros(shape)
    else:  # a buffer of the enclosing differentiation, so it can hold g
        z = np.zeros_like(g, shape=shape)
    z[idx] = g
    return z


RULES["scatter"] = Rule(
    "scatter", _scatter_impl,
    lambda ts, vals, out, p: bind(RULES["scatter"], (ts[0],), p),
    lambda k, g, vals, out, p: g[p["idx"]])

RULES["getitem"] = Rule(
    "getitem", lambda a, idx: a[idx],
    lambda ts, vals, out, p: ts[0][p["idx"]],
    lambda k, g, vals, out, p: bind(RULES["scatter"], (g,),
                                    {"idx": p["idx"], "shape": shape_of(vals[0])}))


# --------------------------------------------------------------------------
# queries and constants

FUNCTIONS[np.shape] = lambda a: shape_of(a)
FUNCTIONS[np.ndim] = lambda a: len(shape_of(a))
FUNCTIONS[np.size] = lambda a, axis=None: (
    int(np.prod(shape_of(a))) if axis is None else shape_of(a)[axis])


def _like(fill):
    def handler(a, dtype=None, order="K", subok=True, shape=None, **kwargs):
        return np.full(shape_of(a) if shape is None else shape, fill,
                       dtype=np.float64 if dtype is None else dtype)
    return handler


# New buffers are constants; writing into them inside the nested call is
# refused anyway (in-place writes), so plain arrays are enough.
FUNCTIONS[np.zeros_like] = FUNCTIONS[np.empty_like] = _like(0.0)
FUNCTIONS[np.ones_like] = _like(1.0)
for _f in (np.argmax, np.argmin, np.argsort, np.isclose, np.allclose, np.any, np.all,
           np.nonzero, np.count_nonzero, np.sign, np.floor, np.ceil, np.round):
    FUNCTIONS[_f] = (lambda f: lambda *args, **kw: f(*[plain(a) for a in args],
                                                     **{k: plain(v) for k, v in kw.items()}))(_f)


# x.std(), x.sort(), ... on a Box: named, not a bare AttributeError
complete_ndarray_interface(Box, lambda f: f in FUNCTIONS, lambda what: str(unsupported(what)))
