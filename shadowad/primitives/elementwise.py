"""The partials table of the elementwise primitives: for every elementwise
operation shadowad differentiates, its numpy ufuncs, its C op code, its arity
and its partial derivatives, written once in generic numpy.

Each operand has its partial, a function of the operands and the value
(``x, z`` or ``x, y, z``), so an engine computes only the partials of its
active operands.  The partials use numpy only (ufuncs, ``np.where`` and
comparisons), so they run on plain values, on traced values of the reverse
and forward engines, and on the nested engine's Boxes -- which is how nested
higher derivatives differentiate these same formulas.  Comparisons
of traced values give plain booleans, so a partial that is piecewise constant
(abs, the selects of maximum/minimum) is a plain array at every level: its
derivative is zero, as it should be.

The engines multiply a partial by a tangent or an adjoint with the zero-factor
convention (shadowad.support.products.times): a zero factor gives zero even against an
infinite or NaN one.  The partials themselves are IEEE's formulas with the edge
conventions written beside each entry (docs/conventions.md lists them all).

The C kernels (csrc/ops/ew_partials.c, ``sad_ew_partials``) are the fast
specialisation of this table: tests/test_elementwise_table.py requires them to
give the same partials bit for bit at edge values.  The facts C needs of each
entry -- its op code (the order of definition here), arity and which of x, y,
z its partials read -- are not written in C: tools/ew_ops.py generates them
from this table (csrc/core/ew_ops.h, csrc/ops/ew_ops.c).

This module imports numpy only, so that the generator can load it without
the built C core.
"""
import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin


class Elementwise:
    """One elementwise primitive.  ``partials[k](*operands, z)`` is dz/d
    operand k; ``convention`` states its values at kinks and edges where the
    textbook formula does not say.  ``op`` is its C op code, named
    ``c_name`` in csrc/core/ew_ops.h; ``reads`` which values its partials
    read: x 1, y 2, z 4 (see operands_read).  An entry without a C kernel
    (``c_name`` None: scipy.special's functions, whose partials C's math
    library lacks) has ``op`` None; every engine then runs its generic rule
    (shadowad.primitives.elementwise_rules)."""

    __slots__ = ("name", "ufuncs", "op", "c_name", "arity", "partials", "convention",
                 "reads")

    def __init__(self, name, ufuncs, op, c_name, partials, convention):
        self.name, self.ufuncs, self.op, self.c_name = name, tuple(ufuncs), op, c_name
        self.arity, self.partials, self.convention = len(partials), tuple(partials), convention
        # (without a C kernel nothing reads the mask: the generic rule keeps
        # its operands, and its partials may call primitives a probe cannot run)
        self.reads = operands_read(self.partials) if c_name is not None else 7

    @property
    def ufunc(self):
        return self.ufuncs[0]

    def __repr__(self):
        return f"Elementwise({self.name})"


TABLE = {}     # name -> Elementwise, in op code order (those without a C kernel too)
BY_UFUNC = {}  # numpy ufunc -> Elementwise
BY_OP = {}     # C op code -> Elementwise


def define(name, ufuncs, c_name, partials, convention=""):
    """Register primitive ``name``; its C op code is the next one free (C's
    unary ops come first, as here).  ``c_name`` None: no C kernel, no op code."""
    op = None if c_name is None else len(BY_OP)
    entry = Elementwise(name, ufuncs, op, c_name, partials, convention)
    if (name in TABLE or any(c_name is not None and e.c_name == c_name for e in TABLE.values())
            or any(u in BY_UFUNC for u in entry.ufuncs)):
        raise ValueError(f"elementwise primitive {name} defined twice")
    TABLE[name] = entry
    if op is not None:
        BY_OP[op] = entry
    for u in entry.ufuncs:
        BY_UFUNC[u] = entry
    return entry


def unary(name, ufuncs, c_name, convention=""):
    """Register the decorated ``d(x, z)`` as the partial of primitive ``name``."""
    def register(d):
        define(name, ufuncs, c_name, (d,), convention)
        return d
    return register


class _Probe(NDArrayOperatorsMixin):
    """An operand or value handed to a partial to see whether it reads it:
    every read of a value in a numpy-only partial is a ufunc or array
    function call (or the value returned as it is)."""

    def __init__(self, bit, value, seen):
        self.bit, self.value, self.seen = bit, value, seen

    def _open(self, a):
        if isinstance(a, _Probe):
            self.seen.append(a.bit)
            return a.value
        return a

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return getattr(ufunc, method)(*[self._open(a) for a in inputs], **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return func(*[self._open(a) for a in args],
                    **{k: self._open(v) for k, v in kwargs.items()})


# values the probes carry: a zero (the kinks' masks) and an ordinary number,
# so that a partial reading an operand on one branch only is seen on either
PROBE_VALUES = (0.0, 0.75)


def operands_read(partials, arity=None):
    """Which values the partials read, as the mask x 1, y 2, z 4: what the
    tape must keep for the sweep (C reads it as sad_ew_partials_read).
    Found by calling each partial on probes, so it is never written by hand.
    ``arity``: the entry's, when ``partials`` is a subset of its partials."""
    bits = (1, 4) if (arity or len(partials)) == 1 else (1, 2, 4)
    seen = []
    with np.errstate(all="ignore"):
        for v in PROBE_VALUES:
            for d in partials:
                probes = [_Probe(b, np.float64(v), seen) for b in bits]
                try:
                    out = d(*probes)
                except TypeError as e:
                    raise TypeError(
                        f"the partial {getattr(d, '__qualname__', d)!r} must compute with numpy "
                        "ufuncs and functions only (no float(), math or Python branches on "
                        f"values), so that every engine can run it: {e}") from e
                if isinstance(out, _Probe):
                    seen.append(out.bit)
    mask = 0
    for b in seen:
        mask |= b
    return mask


def partial_at(entry, k, *values):
    """dz/d operand k of ``entry`` at ``values`` (the operands, then the value
    z), with IEEE's results (inf, nan) and no warnings."""
    with np.errstate(all="ignore"):
        return ieee_partial(entry, k, values)


def ieee_partial(entry, k, values):
    """partial_at for a caller that already runs under
    np.errstate(all="ignore"), on the operands as numpy's loop sees them:
    Python numbers become numpy scalars, so that 1 / 0.0 is inf here as in C,
    not an exception; of the value's type when it is float32 (numpy casts a
    Python number to the array's type: a float64 scalar would promote the
    partial), else np.float64.  A float32 operand of a float64 value (promoted
    by a float64 one) is cast first, as numpy's loop casts it: its partial is
    then float64 throughout, not partly rounded in float32."""
    z_dtype = getattr(values[-1], "dtype", None)
    kind = np.float32 if z_dtype == _F32 else np.float64
    return entry.partials[k](*[_as_loop_operand(v, kind, z_dtype) for v in values])


def _as_loop_operand(v, kind, z_dtype):
    t = type(v)
    if t is float or t is int or t is bool:  # (numpy divides by False as by 0.0)
        return kind(v)
    if z_dtype == _F64 and (t is np.ndarray or isinstance(v, np.floating)) and v.dtype == _F32:
        return v.astype(_F64)
    return v


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


def typed(p, z):
    """Partial ``p``, constants picked by masks, in the type of the value z:
    np.where of Python constants alone is float64 (there is no array to take
    a type from), where numpy gives them a float32 array's type.  (Reading
    z's dtype is not reading z: the C kernels' operand masks stay as they are.)"""
    if getattr(z, "dtype", None) == _F32 and getattr(p, "dtype", None) != _F32:
        return np.asarray(p, dtype=_F32)
    return p



def zero_where(mask, value):
    """value, with 0.0 where the plain boolean ``mask`` holds: a kink's
    convention replacing the formula there.  Where the mask holds nowhere, the
    value itself (so the nested engine records no select)."""
    if not np.any(mask):
        return value
    return np.where(mask, 0.0, value)


# --------------------------------------------------------------------------
# unary: dz/dx(x, z)

@unary("positive", [np.positive], "SAD_COPY")
def _positive(x, z):
    return 1.0


@unary("negative", [np.negative], "SAD_NEG")
def _negative(x, z):
    return -1.0


@unary("square", [np.square], "SAD_SQUARE")
def _square(x, z):
    return 2.0 * x


@unary("sqrt", [np.sqrt], "SAD_SQRT",
       "sqrt'(0) = +inf, sqrt'(-0.0) = -inf, sqrt'(x < 0) = NaN (0.5 / z); an unused "
       "or zero-weighted sqrt(0) contributes 0 by the zero-factor convention")
def _sqrt(x, z):
    return 0.5 / z


@unary("reciprocal", [np.reciprocal], "SAD_RECIP",
       "1/x at 0: -inf (the formula -z*z with z = inf)")
def _reciprocal(x, z):
    return -z * z


@unary("exp", [np.exp], "SAD_EXP",
       "exp'(x) = exp(x) as computed (overflow: inf)")
def _exp(x, z):
    return z


@unary("log", [np.log], "SAD_LOG",
       "log'(0) = +inf (1/x; -0.0 gives -inf), log'(x < 0) = 1/x (finite, the value "
       "is NaN)")
def _log(x, z):
    return 1.0 / x


@unary("log1p", [np.log1p], "SAD_LOG1P", "log1p'(-1) = +inf")
def _log1p(x, z):
    return 1.0 / (1.0 + x)


@unary("expm1", [np.expm1], "SAD_EXPM1")
def _expm1(x, z):
    return z + 1.0


@unary("sin", [np.sin], "SAD_SIN")
def _sin(x, z):
    return np.cos(x)


@unary("cos", [np.cos], "SAD_COS")
def _cos(x, z):
    return -np.sin(x)


@unary("tan", [np.tan], "SAD_TAN")
def _tan(x, z):
    return 1.0 + z * z


@unary("tanh", [np.tanh], "SAD_TANH")
def _tanh(x, z):
    return 1.0 - z * z


@unary("sinh", [np.sinh], "SAD_SINH")
def _sinh(x, z):
    return np.cosh(x)


@unary("cosh", [np.cosh], "SAD_COSH")
def _cosh(x, z):
    return np.sinh(x)


@unary("arcsin", [np.arcsin], "SAD_ASIN", "arcsin'(±1) = +inf")
def _arcsin(x, z):
    return 1.0 / np.sqrt(1.0 - x * x)


@unary("arccos", [np.arccos], "SAD_ACOS", "arccos'(±1) = -inf")
def _arccos(x, z):
    return -1.0 / np.sqrt(1.0 - x * x)


@unary("arctan", [np.arctan], "SAD_ATAN")
def _arctan(x, z):
    return 1.0 / (1.0 + x * x)


@unary("absolute", [np.absolute, np.fabs], "SAD_ABS",
       "abs'(0) = abs'(-0.0) = 0 (sign(0), the subgradient of least norm, as PyTorch; JAX "
       "gives 1); abs'(NaN) = 0")
def _absolute(x, z):
    return typed(np.where(x > 0, 1.0, np.where(x < 0, -1.0, 0.0)), z)


# --------------------------------------------------------------------------
# binary: dz/dx(x, y, z) and dz/dy(x, y, z)

define("add", [np.add], "SAD_ADD", (lambda x, y, z: 1.0, lambda x, y, z: 1.0))
define("subtract", [np.subtract], "SAD_SUB", (lambda x, y, z: 1.0, lambda x, y, z: -1.0))
define("multiply", [np.multiply], "SAD_MUL", (lambda x, y, z: y, lambda x, y, z: x))
define("divide", [np.divide], "SAD_DIV",
       (lambda x, y, z: 1.0 / y, lambda x, y, z: -x / (y * y)),
       "x/0: dz/dx = 1/y = ±inf and dz/dy = -x/y² (±inf; NaN at x = 0)")
define("power", [np.power, np.float_power], "SAD_POW",
       (lambda x, y, z: zero_where(y == 0, y * np.power(x, y - 1.0)),
        lambda x, y, z: zero_where(x == 0, z * np.log(x))),
       "dz/dx = 0 where y == 0 (x**0 is the constant 1, also at x = 0); dz/dy = 0 where "
       "x == 0 (the limit for y > 0; JAX gives it for y >= 0); dz/dy at x < 0 is NaN "
       "(z*log(x)); dz/dx at x = 0, 0 < y < 1 is +inf")


def _atan2_dx(x, y, z):
    r = x * x + y * y
    return zero_where(r == 0, y / r)


def _atan2_dy(x, y, z):
    r = x * x + y * y
    return zero_where(r == 0, -x / r)


define("arctan2", [np.arctan2], "SAD_ATAN2", (_atan2_dx, _atan2_dy),
       "both partials 0 at the origin (x = y = 0: no direction is preferred)")
define("hypot", [np.hypot], "SAD_HYPOT",
       (lambda x, y, z: zero_where(z == 0, x / z), lambda x, y, z: zero_where(z == 0, y / z)),
       "both partials 0 at the origin")


def _select_weight(x, y, z, lower, nan_wins):
    """dz/dx of a select z = x if x wins else y, where x wins if x > y (x < y
    if ``lower``): 1 where x wins, 0 where it loses, 0.5 at a tie (JAX's and
    PyTorch's even split) and, with one NaN operand, 1 where the value comes
    from x (x is the NaN if ``nan_wins``, else the number).  Two NaNs are a
    tie.  dz/dy is 1 - dz/dx."""
    nx, ny = np.isnan(x), np.isnan(y)
    a, b = (y, x) if lower else (x, y)
    return typed(np.where(a > b, 1.0, np.where(a < b, 0.0, np.where(
        nx == ny, 0.5, np.where(nx == nan_wins, 1.0, 0.0)))), z)


def _select(name, ufunc, op, lower, nan_wins):
    define(name, [ufunc], op,
           (lambda x, y, z: _select_weight(x, y, z, lower, nan_wins),
            lambda x, y, z: 1.0 - _select_weight(x, y, z, lower, nan_wins)),
           "ties split evenly (0.5, 0.5); one NaN operand: the derivative goes to the "
           f"operand the value comes from ({'the NaN' if nan_wins else 'the number'}); two "
           "NaNs are a tie")


_select("maximum", np.maximum, "SAD_MAX", False, True)
_select("minimum", np.minimum, "SAD_MIN", True, True)
_select("fmax", np.fmax, "SAD_FMAX", False, False)
_select("fmin", np.fmin, "SAD_FMIN", True, False)


# --------------------------------------------------------------------------
# more unary and binary primitives (C op codes from SAD_LOG10 on)

LN10 = 2.302585092994046   # np.log(10.0), also C's constant (ew_partials.c)
LN2 = 0.6931471805599453   # np.log(2.0)


@unary("log10", [np.log10], "SAD_LOG10",
       "log10'(x) = 1 / (x * ln 10): +inf at 0, -inf at -0.0, finite for x < 0 (the value "
       "is NaN), as log")
def _log10(x, z):
    return 1.0 / (x * LN10)


@unary("log2", [np.log2], "SAD_LOG2", "log2'(x) = 1 / (x * ln 2), with log's edges")
def _log2(x, z):
    return 1.0 / (x * LN2)


@unary("exp2", [np.exp2], "SAD_EXP2",
       "exp2'(x) = exp2(x) * ln 2 as computed (overflow: inf)")
def _exp2(x, z):
    return z * LN2


@unary("arcsinh", [np.arcsinh], "SAD_ASINH",
       "arcsinh'(x) = 1 / sqrt(x*x + 1): 0 at ±inf, and from |x| > 1.3e154 on (x*x "
       "overflows; the true value is below 7.5e-155)")
def _arcsinh(x, z):
    return 1.0 / np.sqrt(x * x + 1.0)


@unary("arccosh", [np.arccosh], "SAD_ACOSH",
       "arccosh'(x) = 1 / sqrt((x - 1) * (x + 1)): +inf at x = 1, NaN for x < 1 (the value "
       "is NaN), 0 at +inf")
def _arccosh(x, z):
    return 1.0 / np.sqrt((x - 1.0) * (x + 1.0))


@unary("arctanh", [np.arctanh], "SAD_ATANH",
       "arctanh'(x) = 1 / (1 - x*x): +inf at x = ±1; negative outside [-1, 1] (the value "
       "is NaN)")
def _arctanh(x, z):
    return 1.0 / (1.0 - x * x)


def _factor(ufunc, z):
    """The constant slope of deg2rad or rad2deg as numpy's loop has it in z's
    type: float32's factor is computed in float32 (180.0f / pi_f), not the
    float64 one rounded, which differs in the last bit for rad2deg.  (Reading
    z's dtype is not reading z: see typed.)"""
    kind = np.float32 if getattr(z, "dtype", None) == _F32 else np.float64
    return ufunc(kind(1.0))


@unary("deg2rad", [np.deg2rad, np.radians], "SAD_DEG2RAD")
def _deg2rad(x, z):
    return _factor(np.deg2rad, z)


@unary("rad2deg", [np.rad2deg, np.degrees], "SAD_RAD2DEG")
def _rad2deg(x, z):
    return _factor(np.rad2deg, z)


@unary("cbrt", [np.cbrt], "SAD_CBRT",
       "cbrt'(x) = 1 / (3 z*z): +inf at 0 and at -0.0 (the slope is +inf from both sides, "
       "as JAX), 0 at ±inf")
def _cbrt(x, z):
    return 1.0 / (3.0 * z * z)


def _sign_weight(x, z):
    """abs'(x): 1, -1, or 0 at ±0 and NaN (abs's convention), in z's type."""
    return typed(np.where(x > 0, 1.0, np.where(x < 0, -1.0, 0.0)), z)


define("copysign", [np.copysign], "SAD_COPYSIGN",
       (lambda x, y, z: typed(np.where(np.signbit(y), -1.0, 1.0), z) * _sign_weight(x, z),
        lambda x, y, z: 0.0),
       "copysign(x, y) = |x| with y's sign bit: dz/dx = abs'(x) times y's sign (±1 from the "
       "sign bit, also for y = ±0 and NaN), so 0 at x = ±0 and x = NaN (abs's convention); "
       "dz/dy = 0 (piecewise constant in y)")

define("heaviside", [np.heaviside], "SAD_HEAVISIDE",
       (lambda x, y, z: 0.0, lambda x, y, z: typed(np.where(x == 0, 1.0, 0.0), z)),
       "heaviside(x, h): dz/dx = 0 everywhere, also at x = 0 (a step; JAX gives 0 too); "
       "dz/dh = 1 where x == 0 (the value is h there), else 0")


def _log_add_weight(x, y, z, d):
    """dz/dx of z = logaddexp(x, y) (with ``d`` = exp, or exp2 for
    logaddexp2): d(x - z), stable at every finite point.  Where x - z is NaN
    with x == z (x = z = ±inf) the limit: 1, or 0.5 when y == x too (a tie
    splits evenly, as maximum's)."""
    e = x - z
    edge = np.logical_and(np.isnan(e), x == z)
    # y is read at every point, not only where an edge occurs: operands_read
    # finds what a partial reads from probes, which hold no edge
    return np.where(edge, typed(np.where(x == y, 0.5, 1.0), z), d(e))


define("logaddexp", [np.logaddexp], "SAD_LOGADDEXP",
       (lambda x, y, z: _log_add_weight(x, y, z, np.exp),
        lambda x, y, z: _log_add_weight(y, x, z, np.exp)),
       "dz/dx = exp(x - z), dz/dy = exp(y - z); where x - z is inf - inf: 1 to the infinite "
       "operand that is the value, 0.5 each at x = y = ±inf (JAX gives NaN at -inf/-inf, "
       "(1, 1) at +inf/+inf and (1, exp(y)) at x = +inf)")
define("logaddexp2", [np.logaddexp2], "SAD_LOGADDEXP2",
       (lambda x, y, z: _log_add_weight(x, y, z, np.exp2),
        lambda x, y, z: _log_add_weight(y, x, z, np.exp2)),
       "dz/dx = 2**(x - z), dz/dy = 2**(y - z), with logaddexp's edges")


# --------------------------------------------------------------------------
# selects without a C op: which operand each entry of the result comes from.
# Their "partials" are masks, applied as selects (np.where(mask, g, 0.0)), not
# products: an unselected entry gets exactly +0.0 whatever the adjoint.

def where_sources(cond):
    """np.where(cond, a, b): (from_a, from_b).  The condition is not
    differentiated; a kink written with where (where(x >= 0, sqrt(x), -x))
    takes the derivative of the branch chosen at the point."""
    c = np.asarray(cond, dtype=bool)
    return c, np.logical_not(c)


def clip_sources(a, lo, hi):
    """np.clip(a, lo, hi) = minimum(maximum(a, lo), hi): masks (from_lo,
    from_hi) of the entries the result takes from lo and from hi (plain
    values; None: no such bound); the rest comes from ``a``.  At a boundary
    (a == lo or a == hi) the derivative goes to ``a`` (as torch.clamp); where
    lo > hi the result is hi everywhere, and so is the derivative's source.
    A NaN bound makes the value NaN (np.maximum and np.minimum propagate it),
    and as there the NaN operand takes the derivative: the bound, also where
    ``a`` is NaN too (as the scalar path, shadowad/engines/rules/shape.py's _clip_scalar)."""
    from_lo = False if lo is None else np.logical_or(np.less(a, lo), np.isnan(lo))
    m = a if lo is None else np.maximum(a, lo)
    from_hi = False if hi is None else np.logical_or(np.greater(m, hi), np.isnan(hi))
    return np.logical_and(from_lo, np.logical_not(from_hi)), from_hi


SELECTS = {
    "where": "np.where(cond, a, b): a's adjoint where cond holds, b's elsewhere; the "
             "unselected branch gets exactly 0 (a NaN or inf there never reaches it)",
    "clip": "np.clip(a, lo, hi): a at the boundaries (a == lo or a == hi: a's); lo where "
            "a < lo or lo is NaN, hi where maximum(a, lo) > hi or hi is NaN (hi everywhere "
            "when lo > hi)",
}

__all__ = ["Elementwise", "TABLE", "BY_UFUNC", "BY_OP", "SELECTS", "define", "unary",
           "operands_read", "partial_at", "ieee_partial", "zero_where", "where_sources",
           "clip_sources"]
