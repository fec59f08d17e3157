"""Which values are traced, and their values without derivative.

Separate so that the traced types of both modes (they fill ``ARRAY_TYPES``
and ``SCALAR_TYPES``), the traced scalars' comparisons and the engines can
ask without importing one another.
"""
import numpy as np


# The traced array and scalar types of both modes (forward mode adds its own).
ARRAY_TYPES, SCALAR_TYPES = set(), set()


def primal(x):
    """The value of a traced value, without derivative (plain numbers and
    arrays pass through)."""
    t = type(x)
    if t in ARRAY_TYPES:
        return x.p
    if t in SCALAR_TYPES:
        return x.v
    return x


def read_only_primal(x):
    """sad.primal: the value of a traced value, without derivative.  An
    array comes as a read-only view of the traced memory: a write through it
    would change that memory behind the tape's back (no record to undo it,
    a gradient computed from values f never had), so it is refused."""
    p = primal(x)
    if p is not x and type(p) is np.ndarray:
        p = p.view()
        p.flags.writeable = False
    return p


def is_traced(x):
    t = type(x)
    return t in ARRAY_TYPES or t in SCALAR_TYPES


_F64 = np.dtype(np.float64)


def takes_generic(operands, out=None):
    """Does a call on these operands leave the float64 C records: is any
    traced array among them (or ``out``) not float64?  Its elementwise ufuncs
    may then run the kernels' float32 instance (float32_kernels); everything
    else runs the primitives' generic rules, whose numpy keeps the dtype and
    numpy's promotions (docs/float32.md)."""
    for a in operands:
        if type(a) in ARRAY_TYPES and a.p.dtype != _F64:
            return True
    return out is not None and type(out) in ARRAY_TYPES and out.p.dtype != _F64


_F32 = np.dtype(np.float32)
# The largest Python number numpy casts to float32 without overflow: past it
# numpy raises (or warns) at the cast, before it computes anything, so the
# call takes the generic rule, which computes before it records (the C fast
# path declines the same numbers: csrc/ext/fast.c sad_fast_fit).
_FLOAT32_CAST_MAX = float.fromhex("0x1.ffffffp127")


def _casts_to_float32(v):
    try:
        v = float(v)
    except OverflowError:  # an int beyond any float
        return False
    return not (abs(v) >= _FLOAT32_CAST_MAX and abs(v) != float("inf"))


def float32_kernels(operands, out=None):
    """Does a call that takes_generic run on the float32 instance of the C
    elementwise kernels?  When numpy computes it in float32 from float32
    arrays alone: every array operand (traced or plain) and ``out`` float32,
    every other operand a Python number (weak under NEP 50) or an np.float32.
    A traced scalar is a float64 pair, and float64 arrays, np.float64 scalars
    and integer arrays promote the call to float64: those take the generic
    rules."""
    for a in operands:
        t = type(a)
        if t in ARRAY_TYPES:
            if a.p.dtype != _F32:
                return False
        elif t is np.ndarray:
            if a.dtype != _F32:
                return False
        elif t is float or t is int:
            if not _casts_to_float32(a):
                return False
        elif not (t is bool or t is np.float32):
            return False
    return out is None or (type(out) in ARRAY_TYPES and out.p.dtype == _F32)
