"""Traced scalars: ``TScalar``, a float and the address of its {value,
adjoint} pair in tape memory, whose arithmetic with floats and other traced
scalars runs in C (csrc/ext/scalar.c); ``ScalarOps``, what the scalars of
both modes share.

Separate from the arrays because scalar loops are a hot path of their own:
their op codes, the numpy-scalar dispatch tables and the IEEE fallback sit
next to the type that uses them.
"""
import operator

import numpy as np

from ..._c import fast, ffi, lib
from . import methods
from .errors import conversion_of, detach_error, mixed_tapes_error
from .untraced import F64
from .values import primal
from ..handlers import REVERSE

rules = REVERSE  # the rules' entry points (engines/handlers.py)


_s2 = lib.sad_s2
_ADD, _SUB, _MUL, _DIV, _POW = lib.SAD_ADD, lib.SAD_SUB, lib.SAD_MUL, lib.SAD_DIV, lib.SAD_POW
_NEG, _ABS = lib.SAD_NEG, lib.SAD_ABS
_FUNCTIONS = {_ADD: operator.add, _SUB: operator.sub, _MUL: operator.mul,
              _DIV: operator.truediv, _POW: operator.pow}
# The ufuncs of ``np.float64(k) op t``: numpy's scalar does not give way to a
# traced scalar's reflected operator but calls the ufunc, so __array_ufunc__
# takes these straight to the operator's path.  Inactive values are
# np.float64, as numpy's are, not Python floats: under NEP 50 a Python float
# and an np.float32 compute in float32, an np.float64 and an np.float32 in
# float64 (rules.elementwise.inactive_scalar).
SCALAR_UFUNCS = {np.add: _ADD, np.subtract: _SUB, np.multiply: _MUL, np.true_divide: _DIV,
                 np.power: _POW}
# A traced scalar computes as an np.float64 does, whichever side a numpy
# scalar (np.float32 included) stands on: k * t and t * k agree.
NUMPY_REALS = (np.floating, np.integer)


def real_value(o):
    """o as a float if it is a plain real number, else None."""
    t = type(o)
    if t is float:
        return o
    if t is int or t is np.float64 or t is bool:
        return float(o)
    if isinstance(o, (np.floating, np.integer)) and getattr(o, "ndim", 0) == 0:
        return float(o)
    return None


def ieee_arithmetic(fn, a, b):
    """Python float arithmetic, falling back to numpy's IEEE semantics (inf,
    nan and a warning instead of an exception), as on numpy scalars."""
    try:
        r = fn(a, b)
        if type(r) is complex:
            raise ValueError
        return r
    except (ZeroDivisionError, OverflowError, ValueError):
        return float(fn(np.float64(a), np.float64(b)))


class ScalarOps:
    """What traced scalars of both modes share: comparisons that give plain
    booleans (so control flow works), the refusals to detach, and the scalar
    attributes numpy asks for."""

    __slots__ = ()
    __array_priority__ = 500

    def __lt__(self, o): return self.v < primal(o)
    def __le__(self, o): return self.v <= primal(o)
    def __gt__(self, o): return self.v > primal(o)
    def __ge__(self, o): return self.v >= primal(o)
    def __eq__(self, o): return self.v == primal(o)
    def __ne__(self, o): return self.v != primal(o)
    __hash__ = None

    def __bool__(self):
        return bool(self.v)

    def __float__(self):  # numpy's ndarray.__setitem__ with a traced scalar lands here
        raise conversion_of(self, "float() of a traced scalar", "float()")

    def __int__(self):
        raise conversion_of(self, "int() of a traced scalar", "int()")

    def __index__(self):
        raise conversion_of(self, "using a traced scalar as an index", "operator.index()")

    def __array__(self, dtype=None, copy=None):
        raise conversion_of(self, "converting a traced scalar to a plain numpy array",
                            "np.asarray")

    def item(self, *args):
        raise detach_error("item() of a traced scalar")

    def tolist(self):
        raise detach_error("tolist() of a traced scalar")

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        # a scalar is immutable: float64 is itself, copy or not
        return methods.astype(self, dtype, False, "a traced scalar")

    shape = ()
    ndim = 0
    size = 1
    dtype = F64


class TScalar(fast.ScalarBase, ScalarOps):
    """An active scalar inside ``f``: value ``v`` and pair address ``g``.

    ``+ - * / **``, unary ``-`` and ``abs`` of two traced scalars or of a
    traced scalar and a float or int run in C (``csrc/ext/scalar.c``), recorded
    straight onto the tape; the C code hands every other case to ``_slow``."""

    __slots__ = ()

    def _slow(self, op, o, reflected):
        if op == _NEG or op == _ABS:  # only for a freed tape: its error
            self.tape.c
            return NotImplemented
        return self._bin(o, op, _FUNCTIONS[op], reflected)

    def _bin(self, o, op, fn, reflected):
        k = real_value(o)
        if k is not None:
            if reflected:
                z = ieee_arithmetic(fn, k, self.v)
                return fast.scalar(z, _s2(self.tape.c, op, z, 0, k, self.g, self.v), self.tape)
            z = ieee_arithmetic(fn, self.v, k)
            return fast.scalar(z, _s2(self.tape.c, op, z, self.g, self.v, 0, k), self.tape)
        if type(o) is TScalar:
            if o.tape is not self.tape:
                raise mixed_tapes_error()
            if reflected:
                self, o = o, self
            z = ieee_arithmetic(fn, self.v, o.v)
            return fast.scalar(z, _s2(self.tape.c, op, z, self.g, self.v, o.g, o.v), self.tape)
        return NotImplemented

    def __repr__(self):
        return f"TScalar({self.v!r})"

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = SCALAR_UFUNCS.get(ufunc)
        if op is not None and not kwargs and len(inputs) == 2 and method == "__call__":
            a, b = inputs
            if b is self and isinstance(a, NUMPY_REALS):
                return _REFLECTED[op](self, a)  # the C fast path, as for a float
        return rules.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return rules.array_function(func, args, kwargs)


_REFLECTED = {_ADD: TScalar.__radd__, _SUB: TScalar.__rsub__, _MUL: TScalar.__rmul__,
              _DIV: TScalar.__rtruediv__, _POW: TScalar.__rpow__}


def adjoint_view(pair):
    """A writable 0-d ndarray over the adjoint of a scalar pair."""
    buf = ffi.buffer(ffi.cast("double *", pair) + 1, 8)
    return np.frombuffer(buf, dtype=F64).reshape(())


def new_scalar(tape, v):
    """A fresh active scalar of value v and a 0-d view of its adjoint."""
    g = lib.sad_pair_new(tape.c, v)
    if not g:
        raise tape.out_of_memory("a traced scalar", "shadowad: out of memory for a scalar")
    return fast.scalar(v, g, tape), adjoint_view(g)
