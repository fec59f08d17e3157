"""sad.fwddiff: mixed mode, after ForwardDiffPullbacks.

Inside reverse mode, a call of ``fwddiff(g)`` on scalars -- or elementwise on
arrays, with broadcasting -- is recorded as ONE record instead of one record
per operation inside ``g``.  Its partial derivatives come from running ``g``
once in forward mode with one tangent lane per active input, seeded with ones
(elementwise, the lane of input j holds d g / d input_j at every element).
"""
import functools

import numpy as np

from .._c import fast, lib
from .forward.dual import Context, FArray, FScalar
from ..support.products import times
from .rules.adjoints import accumulate
from .reverse.tape import Tape, tape_var, current_tape
from .reverse.buffers import TEMPORARY, shadow_of, temporary_buffer
from .reverse.errors import mixed_tapes_error
from .reverse.scalar import TScalar, new_scalar
from .reverse.traced import TArray, new_array
from .reverse.untraced import F64
from .reverse.values import primal
from .nested.box import level_var


def _active(a):
    t = type(a)
    return t is TScalar or (t is TArray and shadow_of(a) is not None)


def _check_arg(name, k, a):
    t = type(a)
    if t is TArray or t is TScalar or t is float or t is int or isinstance(
            a, (np.floating, np.integer)):
        return
    if isinstance(a, np.ndarray) and a.dtype.kind in "biuf":
        return
    raise TypeError(f"sad.fwddiff({name}): argument {k} is a {t.__name__}; fwddiff "
                    "takes scalars and float arrays")


def _dual_inputs(ctx, args, active):
    """g's arguments in forward mode: active input j carries lane j = 1.

    An array input is lent to g, not copied, and its lanes are a broadcast
    of ones and zeros, not memory: copying and filling cost about as much
    as g, and at n = 1e6 the extra memory made every call fault its pages
    in afresh.  If g writes to the input, both are copied first
    (Context.own): an Active array is read-only, and a write to tape memory
    would escape the tape.  A non-contiguous input is copied into C order
    at once, as before, so g computes on the same layouts."""
    lanes = len(active)
    duals = [primal(a) for a in args]
    for j, k in enumerate(active):
        a = args[k]
        if type(a) is TScalar:
            d = 1.0 if lanes == 1 else np.eye(lanes)[j]
            duals[k] = FScalar(a.v, d, ctx)
            continue
        p = a.p
        unit = np.zeros(lanes)
        unit[j] = 1.0
        if p.flags.c_contiguous:  # unit along the lanes, repeated (stride 0) along p's axes
            t = np.ndarray((lanes,) + p.shape, F64, unit, 0, (F64.itemsize,) + (0,) * p.ndim)
            t.flags.writeable = False
            x = FArray(p, t, temporary_buffer(ctx, p, t))
            ctx.borrowed[x.buf] = x
        else:
            z = p.copy()
            t = np.empty((lanes,) + z.shape)
            t[...] = unit.reshape((lanes,) + (1,) * z.ndim)
            x = FArray(z, t, temporary_buffer(ctx, z, t))  # as dual.new_array makes it
        duals[k] = x
    return duals


def _own(ctx, out):
    """Is dual array ``out`` all of a temporary made inside g, its primal and
    lanes in memory of their own (not lent to g)?  Then the record takes
    them as they are: once g has returned nothing else sees them."""
    buf = out.buf
    s = out._s
    return (buf.label is TEMPORARY and buf not in ctx.borrowed and out.p is buf.root
            and out.p.base is None and s is not None and s is buf.shadow and s.base is None)


def _partials(ctx, out, name, lanes):
    """(value, partials with a leading lanes axis, whether both are g's own
    memory: see _own) of g's forward-mode result."""
    t = type(out)
    if t is FScalar:
        d = np.broadcast_to(np.asarray(out.d, dtype=F64), (lanes,))
        return out.v, d, False
    if t is FArray:
        s = shadow_of(out)
        if s is not None and _own(ctx, out):
            return out.p, s, True
        return out.p, (np.zeros((lanes,) + out.shape) if s is None else s), False
    if isinstance(out, (float, int, np.floating, np.integer)) or (
            isinstance(out, np.ndarray) and out.dtype.kind in "iuf"):
        return out, np.zeros((lanes,) + np.shape(out)), False  # g ignores its active inputs
    raise TypeError(f"sad.fwddiff({name}): g must return one scalar or array, got "
                    f"{type(out).__name__}")


def fwddiff(g):
    """Wrap ``g`` (a function of a few scalars, applied elementwise when given
    arrays) so that reverse mode records each call as one record whose
    pullback uses forward-mode partials.  Outside reverse mode the wrapper
    calls ``g`` itself."""
    if not callable(g):
        raise TypeError(f"sad.fwddiff: g must be callable (a function of a few scalars), "
                        f"got {type(g).__name__}; use it as sad.fwddiff(g) or as a decorator")
    name = getattr(g, "__name__", "g")

    @functools.wraps(g)
    def wrapper(*args):
        tape = current_tape()
        # plain call, forward mode, or inside a nested differentiation (which
        # differentiates g's operations themselves): g runs as it is
        if type(tape) is not Tape or level_var.get() > 0:
            return g(*args)
        for k, a in enumerate(args):
            _check_arg(name, k, a)
        active = [k for k, a in enumerate(args) if _active(a)]
        if not active:
            return g(*[primal(a) for a in args])
        for k in active:
            a = args[k]
            if (a.tape if type(a) is TScalar else a.buf.tape) is not tape:
                raise mixed_tapes_error()
        lanes = len(active)
        ctx = Context(lanes, elementwise=name)
        token = tape_var.set(ctx)
        try:
            out = g(*_dual_inputs(ctx, args, active))
            value, partials, own = _partials(ctx, out, name, lanes)
        finally:
            tape_var.reset(token)
            ctx.close()  # its Buffers point back to it: no cycle keeps g's memory
        if np.ndim(value) == 0 and all(type(args[k]) is TScalar for k in active) \
                and lanes <= 2:
            return _scalar_record(tape, float(value), [args[k] for k in active], partials)
        return _array_record(tape, value, [args[k] for k in active], partials, own)
    return wrapper


def _scalar_record(tape, z, inputs, partials):
    """z = g(x[, y]) of traced scalars: one C record holding the two partials."""
    x = inputs[0]
    y = inputs[1] if len(inputs) > 1 else None
    pair = lib.sad_s2(tape.c, lib.SAD_LIN, z, x.g, float(partials[0]),
                      0 if y is None else y.g, 0.0 if y is None else float(partials[1]))
    return fast.scalar(z, pair, tape)


def _array_record(tape, value, inputs, partials, own):
    """One Python record: input j's adjoint += the result's adjoint * lane j,
    summed over the axes broadcasting added.  ``own``: value and partials are
    memory nobody else holds (else they are copied)."""
    z = value if own else np.array(value, dtype=F64)
    if z.ndim == 0:
        res, gz = new_scalar(tape, float(z))
    else:
        res = new_array(tape, z, True)
        gz = res._s
    if not own:
        partials = np.array(partials)  # memory of its own, whatever g returned

    def pullback():
        for j, x in enumerate(inputs):
            accumulate(x, times(gz, partials[j]))
    tape.record_py(pullback)
    return res
