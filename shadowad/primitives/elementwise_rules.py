"""The generic rule of an elementwise primitive, derived from its partials in
the table (shadowad.primitives.elementwise): a ``Primitive`` whose JVP is
the sum of partial times tangent over the operands and whose VJP is partial
times adjoint, summed back over broadcasting.  The partials run on the values
one level down (plain, traced by an enclosing differentiation, or Boxes), so
an enclosing differentiation differentiates these same formulas.

The nested engine runs every entry this way.  The reverse and forward
engines run an entry's C kernels, the table's fast specialisation; an entry
without one (``op`` None: scipy.special's functions) is registered here as
the primitive of its ufuncs, so that every engine binds this generic rule.
Every chain-rule product follows the zero-factor convention
(shadowad.support.products): a zero factor gives zero, even against an
infinite or NaN one.
"""
import operator

import numpy as np

from ..support.products import times
from .core import Primitive, implements
from .elementwise import ieee_partial, operands_read
from .values import float_dtype, plain, shape_of, unbroadcast

__all__ = ["generic_rule", "generic_primitive", "register_without_kernel", "PRIMITIVES",
           "ELEMENTWISE_CALLS"]

PRIMITIVES = {}  # entry name -> its Primitive, for entries without a C kernel
_WITH_KERNEL = {}  # entry name -> its generic Primitive, for entries with one
# the numpy (and scipy) callables registered as elementwise primitives: sad.fwddiff may run them
ELEMENTWISE_CALLS = set()


def _fit(t, shape):
    """Tangent ``t`` broadcast to the output's shape (``x + c`` with a scalar x
    and an array c has an array tangent)."""
    if t is None or shape_of(t) == shape:
        return t
    return np.zeros(shape, float_dtype(t)) + t


def _chain(t, p):
    return times(t, p, plain)


def generic_rule(entry, impl=None, name=None):
    """The Primitive of ``entry`` (value by ``impl``, default its ufunc;
    ``name``, default the entry's, for messages).  A
    partial's own infinities (sqrt at 0) are not numpy warnings here, as they
    are not in the C kernels."""
    def jvp(ts, vals, out, params):
        vals = (*vals, out)
        res = None
        with np.errstate(all="ignore"):
            for k, t in enumerate(ts):
                if t is not None:
                    term = _chain(t, ieee_partial(entry, k, vals))
                    res = term if res is None else res + term
        return _fit(res, shape_of(out))

    def vjp(k, g, vals, out, params):
        if out is None:  # not kept (no partial reads it): what stands for it gives its type
            out = np.zeros((), float_dtype(*vals))
        with np.errstate(all="ignore"):
            c = _chain(g, ieee_partial(entry, k, (*vals, out)))
        return unbroadcast(c, shape_of(vals[k]))

    prim = Primitive(entry.name if name is None else name, entry.ufunc if impl is None else impl,
                     jvp, vjp, reads_out=True)
    prim.ufunc_out = True
    if entry.op is not None:  # (the reads of an entry without a kernel are not probed)
        # operand k's adjoint reads what its partial reads: x * y keeps only
        # y when x alone is active
        masks = [operands_read((d,), entry.arity) for d in entry.partials]
        prim.reads_for = tuple(tuple(j for j in range(entry.arity) if m & (1 << j))
                               for m in masks)
        prim.reads = tuple(sorted(set().union(*prim.reads_for)))
        prim.reads_out = bool(entry.reads & 4)
    return prim


# numpy's scalar math rounds these otherwise than the ufunc's loop: np.float32(t) ** 3
# (pow) and np.power(t, 3) differ in the last bit for about one value in ten
_SCALAR_MATH = {np.power: operator.pow}


def _as_on_scalars(ufunc):
    """ufunc computing as numpy does on the values the engines hold 0-d: a
    traced element (x[i] of a float32 array) stands for numpy's np.float32
    scalar, whose operators are numpy's scalar math (``x[i] ** 3``)."""
    scalar_math = _SCALAR_MATH.get(ufunc)

    def impl(*vals):
        if all(type(v) is not np.ndarray or v.ndim == 0 for v in vals):
            vals = [v[()] if type(v) is np.ndarray else v for v in vals]
            if scalar_math is not None and any(isinstance(v, np.generic) for v in vals):
                return scalar_math(*vals)
        return ufunc(*vals)
    return impl


def generic_primitive(entry, ufunc=None):
    """The Primitive of any entry: for an entry with a C kernel, what the
    reverse and forward engines bind for values the kernels cannot read
    (float32 arrays: docs/float32.md).  ``ufunc``: the one called, when it is
    not the entry's first (np.float_power computes in float64 where np.power
    keeps float32)."""
    key = entry.name if ufunc is None or ufunc is entry.ufunc else (entry.name, ufunc.__name__)
    prim = PRIMITIVES.get(key) or _WITH_KERNEL.get(key)
    if prim is None:
        ufunc = ufunc or entry.ufunc
        prim = _WITH_KERNEL[key] = generic_rule(entry, _as_on_scalars(ufunc), ufunc.__name__)
    return prim


def register_without_kernel(entry):
    """Make ``entry`` (no C kernel) the primitive of its ufuncs in every
    engine: a call ``ufunc(*inputs, out=None)`` binds its generic rule."""
    if entry.op is not None:
        raise ValueError(f"{entry.name} has a C kernel: the engines run it")
    prim = PRIMITIVES[entry.name] = generic_rule(entry)
    nin = entry.arity

    def ufunc_entry(bind, *inputs, out=None):
        if len(inputs) != nin:
            raise TypeError(f"{entry.name} takes {nin} input{'s' * (nin > 1)}, got "
                            f"{len(inputs)}")
        return bind(prim, inputs, {}, out)

    implements(*entry.ufuncs)(ufunc_entry)
    ELEMENTWISE_CALLS.update(entry.ufuncs)
    return prim
