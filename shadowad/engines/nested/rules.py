"""The nested engine's rules and its side of the registry: every primitive
of shadowad.primitives (registered with ``core.implements``: linear algebra,
reductions, shapes, indexing, the selects where and clip) is bound as it is
defined, and the elementwise table's partials as below; a Box reaches them
through the engine's handler table (shadowad/engines/handlers.py,
``NESTED``), bound at the end, as the traced types of the other engines
reach theirs.

Every operation is a ``Primitive`` (shadowad.primitives.core), whose impl,
jvp and vjp are ordinary numpy on the values one level down (plain, traced
by an enclosing differentiation, or Boxes of an enclosing nested call -- so
that enclosing differentiation records and differentiates them too).

The elementwise operations are the generic rules of the partials table
(shadowad.primitives.elementwise_rules), which every engine derives from,
with its conventions at kinks and edges (docs/conventions.md).
"""
import operator

import numpy as np

from ... import primitives
from . import writes
from .box import Box, bind, plain, shape_of, trace_var, unsupported
from ..handlers import NESTED
from ...primitives.reductions import REDUCE_OF, reduce_call
from ...primitives.scatter import ufunc_at
from ...support.naming import qualified_name as numpy_name
from ...primitives.elementwise import TABLE as ELEMENTWISE
from ...primitives.elementwise_rules import generic_rule
from ...primitives.inactive import DERIVATIVE_FREE_UFUNCS
from ..reverse.interface import complete_ndarray_interface
from ..reverse.scalar import ieee_arithmetic
from ...primitives.inactive import DERIVATIVE_FREE


# numpy entry points -> handlers, the nested engine's side of the registry
# (shadowad.primitives.core's entries are bound below, beside its own rules)
UFUNCS = {}      # ufunc -> handler(*inputs)
FUNCTIONS = {}   # numpy function -> handler(*args, **kwargs)


# --------------------------------------------------------------------------
# elementwise: every primitive of the partials table (shadowad.primitives.
# elementwise), its partials evaluated on the values one level down -- so an
# enclosing nested differentiation differentiates the same formulas

def _scalar_safe(fn):
    """Python float arithmetic with numpy's IEEE results (inf, nan) instead of
    exceptions; everything else through the operator itself."""
    def impl(*args):
        if all(type(a) is float or type(a) is int for a in args):
            return ieee_arithmetic(fn, *args)
        return fn(*args)
    return impl


# The value of the primitives Python spells with an operator: through the
# operator, so that a traced scalar of an enclosing differentiation stays on
# its lean path and Python floats stay floats.
_OPERATORS = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
              "divide": operator.truediv, "power": operator.pow}


def _elementwise_rule(entry):
    if entry.name == "negative":
        impl = operator.neg
    elif entry.name in _OPERATORS:  # (-8.0) ** 0.5 is nan here, not a complex number
        impl = _scalar_safe(_OPERATORS[entry.name])
    else:
        impl = entry.ufunc
    return generic_rule(entry, impl)


def _applies(rule):
    """The handler of a ufunc that is one rule of its inputs."""
    return lambda *inputs: bind(rule, inputs, {})


for _entry in ELEMENTWISE.values():
    if _entry.op is None:  # the primitive of its ufuncs, bound below with the others
        continue
    _rule = _elementwise_rule(_entry)
    for _u in _entry.ufuncs:
        UFUNCS[_u] = _applies(_rule)
UFUNCS[np.positive] = lambda a: a  # +x is x itself: nothing to record

# Functions whose derivative is zero almost everywhere run on the plain values.
for _u in DERIVATIVE_FREE_UFUNCS:
    UFUNCS[_u] = (lambda u: lambda *vals: u(*[plain(v) for v in vals]))(_u)


# --------------------------------------------------------------------------
# the primitives (shadowad.primitives): bound as they are defined

def _bind_primitive(prim, operands, params, out=None):
    res = bind(prim, operands, params)
    return res if out is None else writes.write_out(out, res)


def _entry(entry):
    return lambda *args, **kwargs: entry(_bind_primitive, *args, **kwargs)


for _func, _e in primitives.core.registered():
    (UFUNCS if isinstance(_func, np.ufunc) else FUNCTIONS)[_func] = _entry(_e)
primitives.values.PLAIN[Box] = lambda b: b.v


# indexing: a Box's x[idx] is the take primitive (shadowad.primitives.indexing),
# whose transpose (scatter_add) the formulas bind through core.apply
primitives.core.BINDERS[Box] = (1, bind)


# --------------------------------------------------------------------------
# queries and constants

FUNCTIONS[np.shape] = lambda a: shape_of(a)
FUNCTIONS[np.ndim] = lambda a: len(shape_of(a))
FUNCTIONS[np.size] = lambda a, axis=None: (
    int(np.prod(shape_of(a))) if axis is None else shape_of(a)[axis])


def _like(fill):
    def handler(a, dtype=None, order="K", subok=True, shape=None, **kwargs):
        buf = np.full(shape_of(a) if shape is None else shape, fill,
                      dtype=np.float64 if dtype is None else dtype)
        if buf.dtype != np.float64:
            return buf
        # a constant of the innermost running differentiation, which the
        # nested function may then write its values into
        trace = trace_var.get()
        return Box(a.level_trace if trace is None else trace, buf, None)
    return handler


FUNCTIONS[np.zeros_like] = FUNCTIONS[np.empty_like] = _like(0.0)
FUNCTIONS[np.ones_like] = _like(1.0)


def _full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None):
    if isinstance(fill_value, Box):
        raise unsupported("np.full_like with a differentiated fill value")
    return _like(plain(fill_value))(a, dtype=dtype, shape=shape)


FUNCTIONS[np.full_like] = _full_like
for _f in DERIVATIVE_FREE:
    if _f in (np.shape, np.ndim, np.size):  # a Box's own shape: no conversion
        continue
    FUNCTIONS[_f] = (lambda f: lambda *args, **kw: f(*[plain(a) for a in args],
                                                     **{k: plain(v) for k, v in kw.items()}))(_f)


FUNCTIONS[np.copyto] = writes.copyto


# --------------------------------------------------------------------------
# the handlers a Box calls (shadowad/engines/handlers.py)

def array_ufunc(ufunc, method, inputs, kwargs):
    name = numpy_name(ufunc)
    out = kwargs.pop("out", None)
    if out is not None:
        if len(out) != 1:
            raise unsupported(f"{name} with {len(out)} outputs")
        return writes.write_out(out[0], array_ufunc(ufunc, method, inputs, kwargs))
    if method == "reduce" and ufunc in REDUCE_OF and len(inputs) == 1:
        func, axis, kwargs = reduce_call(ufunc, kwargs)
        return FUNCTIONS[func](inputs[0], axis, **kwargs)
    if method == "at":
        return ufunc_at(ufunc, inputs, kwargs)
    if method != "__call__":
        raise unsupported(f"{name}.{method}")
    for k, v in kwargs.items():
        if not (k == "dtype" and v is not None and np.dtype(v) == np.float64) and k not in (
                "casting", "order", "subok"):
            raise unsupported(f"{name}(..., {k}=...)")
    handler = UFUNCS.get(ufunc)
    if handler is None:
        raise unsupported(name)
    return handler(*inputs)


def array_function(func, args, kwargs):
    handler = FUNCTIONS.get(func)
    if handler is None:
        raise unsupported(numpy_name(func))
    return handler(*args, **kwargs)


def apply_ufunc(ufunc, inputs, out):
    """An operator; ``out``: the target of an in-place one (``x += y``)."""
    res = UFUNCS[ufunc](*inputs)
    return res if out is None else writes.inplace(out, res)


def gather(box, idx):
    return bind(primitives.indexing.take, (box,), {"idx": idx})


NESTED.bind(apply_ufunc=apply_ufunc, array_ufunc=array_ufunc, array_function=array_function,
            setindex=writes.setitem, gather=gather)


# x.std(), x.sort(), ... on a Box: named, not a bare AttributeError
complete_ndarray_interface(Box, lambda f: f in FUNCTIONS, lambda what: str(unsupported(what)))
