"""The mutating kernels of the public API: axpy, scal, setindex.

Each works inside ``f`` on traced values (recorded on the tape, computed in C;
in forward mode the tangent lanes computed in C beside the primal) and outside
on plain float64 arrays (the same C kernel, nothing recorded).
"""
import numpy as np

from ..engines.forward import dual
from .._c import fast, lib
from ..engines.rules import indexing
from ..engines.rules.elementwise import (ufunc_forward_operand, ufunc_operand, apply_ufunc, forward_apply,
    save_inactive)
from ..engines.reverse.snapshots import held
from ..engines.reverse.buffers import check_writable, promote, shadow_of
from ..engines.reverse.errors import detach_error, mixed_tapes_error
from ..engines.reverse.scalar import TScalar, real_value
from ..engines.reverse.traced import TArray
from ..engines.reverse.untraced import F32, F64
from ..engines.reverse.values import is_traced, primal, takes_generic
from ..engines.nested.box import Box


def _check_plain(y, name):
    if not isinstance(y, np.ndarray) or (y.dtype != F64 and y.dtype != F32):
        raise TypeError(f"sad.{name}: y must be a float64 or float32 array, got "
                        f"{getattr(y, 'dtype', type(y).__name__)}")
    if not y.flags.writeable:
        raise ValueError(f"sad.{name}: y is read-only (numpy marks broadcast views and "
                         "np.broadcast_to results so); pass writeable memory")


def axpy(a, x, y):
    """y += a*x in place (a: scalar; x: array broadcastable to y, or scalar)."""
    if type(y) is Box:  # inside a nested differentiation: its in-place operator
        y += a * x
        return y
    if type(y) is dual.FArray:
        return _axpy_forward(a, x, y)
    if type(y) is not TArray:
        if is_traced(a) or is_traced(x):
            raise detach_error("sad.axpy into an untraced numpy array")
        _check_plain(y, "axpy")
        va = _real(a)
        if y.dtype != F64:  # float32: numpy's y += a * x (the C kernel reads float64)
            _check_shape(np.shape(x), y.shape)
            y += (a if isinstance(a, np.generic) else va) * np.asarray(x)  # an np.float64 is strong
            return y
        xa = np.asarray(x, dtype=F64)
        _check_shape(xa.shape, y.shape)
        if not xa.flags.aligned:
            xa = np.array(xa)
        rc = fast.axpy(None, lib.SAD_KX_ARR | lib.SAD_KY_CONST, 0, va, xa, None, y, None)
        if rc != lib.SAD_OK:
            y += va * xa
        return y
    check_writable(y)
    if takes_generic((x, y)):  # float32: the generic records of y += a * x
        _check_shape(np.shape(primal(x)), y.shape)
        y += a * x
        return y
    tape = y.buf.tape
    if type(a) is TScalar:
        if a.tape is not tape:
            raise mixed_tapes_error()
        ka, aobj, va, aact = lib.SAD_KY_PAIR, a.g, a.v, True
    else:
        ka, aobj, va, aact = lib.SAD_KY_CONST, 0, _real(a), False
    o = ufunc_operand(x, tape)
    kind, obj, xs, xv = o
    if kind == lib.SAD_KX_CONST:
        obj = np.array(xv, dtype=F64)
        kind, xs = lib.SAD_KX_ARR, None
    if kind == lib.SAD_KX_ARR:
        _check_shape(obj.shape, y.shape)
    xact = xs is not None
    ys = shadow_of(y)
    if not (aact or xact) and ys is None:
        save_inactive(tape, y.p)
        y.p += va * (obj if kind == lib.SAD_KX_ARR else xv)
        return y
    if ys is None:
        ys = promote(y)
    if kind == lib.SAD_KX_PAIR:
        xs = None
    else:
        if aact and xs is None and type(x) is not TArray:
            obj = held(tape, x, obj)  # the sweep reads x for a's adjoint
        tape.keep.append(obj)
        if xs is not None:
            tape.keep.append(xs)
    tape.keep.append(y.p)
    tape.keep.append(ys)
    rc = fast.axpy(tape, kind | ka | lib.SAD_F_SAVE, aobj, va, obj, xs, y.p, ys)
    if rc == lib.SAD_TOO_MANY_DIMS:  # rare: fall back to the elementwise records
        y += a * x
    else:
        tape.check(rc, "axpy")
    return y


def _axpy_forward(a, x, y):
    """axpy into a dual array: y and its tangent lanes updated in one C call,
    dy += va*dx + da*x lane by lane."""
    dual.writable(y)
    if takes_generic((x, y)):  # float32: the generic rules of y += a * x
        _check_shape(np.shape(primal(x)), y.shape)
        y += a * x
        return y
    lanes = y.buf.tape.lanes
    if type(a) is dual.FScalar:
        va = a.v
        da = np.empty(lanes)  # one tangent of a per lane, contiguous for C
        da[...] = a.d
    else:
        va, da = _real(a), None
    px, dx = ufunc_forward_operand(x, lanes)
    if type(px) is not np.ndarray:
        px = np.array(px, dtype=F64)
    _check_shape(px.shape, y.shape)
    dy = promote(y) if da is not None or dx is not None else None  # else dy is unchanged
    rc = fast.axpy_tangents(va, da, px, dx, y.p, dy)
    if rc == lib.SAD_TOO_MANY_DIMS:  # x partly overlaps y, or too many dimensions
        y += a * x
    elif rc:
        raise MemoryError("shadowad: out of memory in axpy")
    return y


def _real(a, kernel="axpy"):
    va = real_value(a)
    if va is None:
        raise TypeError(f"sad.{kernel}: a must be a real scalar, got {type(a).__name__}")
    return va


def _check_shape(xshape, yshape):
    try:
        ok = np.broadcast_shapes(xshape, yshape) == tuple(yshape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"sad.axpy: x of shape {xshape} does not broadcast to y's "
                         f"shape {yshape}")


def scal(a, x):
    """x *= a in place."""
    if type(x) is Box:  # inside a nested differentiation: its in-place operator
        x *= a
        return x
    if type(x) is TArray:
        return apply_ufunc(np.multiply, (x, a), out=x)
    if type(x) is dual.FArray:
        return forward_apply(np.multiply, (x, a), out=x)
    if is_traced(a):
        raise detach_error("sad.scal of an untraced numpy array by a traced scalar")
    _check_plain(x, "scal")
    if real_value(a) is None and np.asarray(a).dtype.kind not in "biuf":
        raise TypeError(f"sad.scal: a must be a real scalar or array, got "
                        f"{type(a).__name__}")
    x *= a
    return x


def setindex(y, idx, v):
    """y[idx] = v in place."""
    if type(y) is Box:  # inside a nested differentiation: its item assignment
        y[idx] = v
    elif type(y) is dual.FArray:
        indexing.forward_setindex(y, idx, v)
    else:
        indexing.setindex(y, idx, v)
    return y
