"""The operands and results of the reverse and forward rules of the
non-elementwise primitives (shadowad/rules/derived.py and its
specialisations): an operand's primal and activity, numpy's result made a
traced or dual value, and ``out=``.
"""
import numpy as np

from ..forward import dual
from ..reverse.buffers import shadow_of
from ..reverse.errors import detach_error, mixed_tapes_error
from ..reverse.scalar import TScalar
from ..reverse.traced import TArray, new_array
from ..reverse.untraced import F32, F64

from ..reverse.values import ARRAY_TYPES, SCALAR_TYPES, primal
from .elementwise import context_of_inputs, ufunc_forward_operand

__all__ = ["operand", "forward_context", "forward_operand", "forward_result",
           "const_result", "forward_const", "finish_out"]


def operand(a, tape, generic=False):
    """(primal ndarray, ``a`` if it is active else None) of one operand.
    A traced scalar's primal is a 0-d float64 array; constants become float64,
    except in a call on the generic rules (``generic``: a float32 traced
    operand), where numpy's promotion decides with their own dtype."""
    t = type(a)
    if t is TArray:
        if a.buf.tape is not tape:
            raise mixed_tapes_error()
        # a lazy shadow (an active temporary) is not given memory before the
        # sweep needs it (see traced.adjoint_for_pullback)
        active = a._s is not None or a.buf.slot is not None or shadow_of(a) is not None
        return a.p, (a if active else None)
    if t is TScalar:
        if a.tape is not tape:
            raise mixed_tapes_error()
        return np.array(a.v), a
    if generic:
        if t is float or t is int or t is bool:  # weak under numpy's promotion (NEP 50)
            return a, None
        p = np.asarray(a)
        if p.dtype.kind in "biuf":
            return p, None
    p = np.asarray(a)
    if p.dtype != F64 or not p.flags.aligned:
        if p.dtype.kind not in "biuf":
            raise TypeError(f"shadowad: cannot combine a traced value with "
                            f"{type(a).__name__} of dtype {p.dtype}")
        p = np.array(p, dtype=F64)
    return p, None


def forward_context(inputs, out=None):
    """The Context of a forward-mode call: its dual arrays', else the running
    one."""
    return context_of_inputs(inputs, out)


def forward_operand(a, ctx, generic=False):
    """(primal ndarray, tangent with its leading lanes axis or None) of one
    operand in forward mode.  A dual scalar's primal is a 0-d float64 array;
    constants are as ``operand`` makes them (``generic``: a call on the
    generic rules).  The tangent may be the operand's own memory: the rules
    only read it."""
    t = type(a)
    if t is dual.FArray:
        if a.buf.tape is not ctx:
            raise mixed_tapes_error()
        s = a._s
        return a.p, (s if s is not None else shadow_of(a))
    if t is dual.FScalar:
        return ufunc_forward_operand(a, ctx.lanes)
    return operand(a, None, generic)


def forward_result(ctx, z, dz):
    """numpy's result z with the tangent lanes dz (shape (lanes,) + z's): a
    dual array, or a dual scalar whose tangent is a float for one lane.  A
    float32 scalar is a 0-d float32 dual array: a dual scalar is float64."""
    if type(z) is np.ndarray:
        res = dual.new_array(ctx, z, True, zero=False)
        res._s[...] = dz
        return res
    if type(z) is np.float32:
        res = dual.new_array(ctx, np.array(z), True, zero=False)
        res._s[...] = dz
        return res
    if ctx.lanes == 1:
        return dual.FScalar(float(z), float(dz[0]), ctx)
    return dual.FScalar(float(z), np.array(dz, dtype=F64), ctx)


def const_result(tape, z):
    """numpy's result z of inactive inputs: an inactive traced array, or
    numpy's scalar as it is (an np.float64 is not a Python float: see
    traced.SCALAR_UFUNCS)."""
    if type(z) is np.ndarray:
        return new_array(tape, z, False) if z.dtype == F64 or z.dtype == F32 else z
    return z


def forward_const(ctx, z):
    """const_result in forward mode."""
    if type(z) is np.ndarray:
        return dual.new_array(ctx, z, False) if z.dtype == F64 or z.dtype == F32 else z
    return z


def _broadcasts_to(shape, target):
    return len(shape) <= len(target) and all(
        n == 1 or n == m for n, m in zip(reversed(shape), reversed(target)))


def finish_out(res, out, fname, broadcast=False):
    """Honour ``out=``: copy the result into it (a recorded copy, or in forward
    mode a copy of the tangent lanes too, when out is traced).  ``broadcast``:
    a ufunc's, whose result broadcasts to out's shape as numpy's does."""
    if out is None:
        return res
    shape = np.shape(primal(res))
    out_shape = tuple(np.shape(primal(out)))
    if broadcast and _broadcasts_to(shape, out_shape):
        shape = out_shape
    if out_shape != shape:
        raise ValueError(f"shadowad: {fname}(..., out=...): out has shape "
                         f"{np.shape(primal(out))} but the result has shape {shape}")
    if type(out) in ARRAY_TYPES:
        out[...] = res
    elif type(res) in SCALAR_TYPES or (type(res) in ARRAY_TYPES and shadow_of(res) is not None):
        raise detach_error(f"{fname}(..., out=<plain ndarray>)")
    else:
        out[...] = primal(res)
    return out
