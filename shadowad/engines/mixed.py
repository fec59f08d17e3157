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
from ..activity import Const
from ..primitives.protocol import AugmentedReturn, delivered
from .forward.dual import Context, FArray, FScalar
from ..support.products import times
from ..primitives import core
from .rules.adjoints import accumulate
from .rules.derived import record
from .reverse.tape import Tape, tape_var, current_tape
from .reverse.buffers import TEMPORARY, shadow_of, temporary_buffer
from .reverse.errors import mixed_tapes_error
from .reverse.scalar import TScalar, new_scalar
from .reverse.traced import TArray, new_array
from .reverse.untraced import F32, F64
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


def _dual_inputs(ctx, vals, active):
    """g's arguments in forward mode: active input j carries lane j = 1.

    An array input is lent to g, not copied, and its lanes are a broadcast
    of ones and zeros, not memory: copying and filling cost about as much
    as g, and at n = 1e6 the extra memory made every call fault its pages
    in afresh.  If g writes to the input, both are copied first
    (Context.own): an Active array is read-only, and a write to tape memory
    would escape the tape.  A non-contiguous input is copied into C order
    at once, as before, so g computes on the same layouts."""
    lanes = len(active)
    duals = list(vals)
    for j, k in enumerate(active):
        p = vals[k]
        if type(p) is float:
            d = 1.0 if lanes == 1 else np.eye(lanes)[j]
            duals[k] = FScalar(p, d, ctx)
            continue
        unit = np.zeros(lanes, p.dtype)  # the lanes of a float32 input are float32
        unit[j] = 1.0
        if p.flags.c_contiguous:  # unit along the lanes, repeated (stride 0) along p's axes
            t = np.ndarray((lanes,) + p.shape, p.dtype, unit, 0, (p.itemsize,) + (0,) * p.ndim)
            t.flags.writeable = False
            x = FArray(p, t, temporary_buffer(ctx, p, t))
            ctx.borrowed[x.buf] = x
        else:
            z = p.copy()
            t = np.empty((lanes,) + z.shape, z.dtype)
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
        return out.p, (np.zeros((lanes,) + out.shape, out.p.dtype) if s is None else s), False
    if isinstance(out, (float, int, np.floating, np.integer)) or (
            isinstance(out, np.ndarray) and out.dtype.kind in "iuf"):
        return out, np.zeros((lanes,) + np.shape(out)), False  # g ignores its active inputs
    raise TypeError(f"sad.fwddiff({name}): g must return one scalar or array, got "
                    f"{type(out).__name__}")


class PartialsRule:
    """The record of one call of ``fwddiff(g)``, in the record protocol: the
    augmented primal runs g once in forward mode, one tangent lane per active
    argument, and keeps the partials as its tape; the reverse multiplies the
    result's adjoint into each lane.  Its reverse reads no Const argument, so
    the engine does not keep them."""

    __slots__ = ("g", "name")
    mutates = ()
    reads_consts = False

    def __init__(self, g, name):
        self.g, self.name = g, name

    def augmented_primal(self, config, *args):
        active = [k for k, a in enumerate(args) if type(a) is not Const]
        return _own_memory(*self.partials([a.val for a in args], active))

    def partials(self, vals, active):
        """(g's value, its partials with respect to the arguments ``active``
        along a leading axis, whether both are memory of their own)."""
        lanes = len(active)
        ctx = Context(lanes, elementwise=self.name)
        token = tape_var.set(ctx)
        try:
            out = self.g(*_dual_inputs(ctx, vals, active))
            value, partials, own = _partials(ctx, out, self.name, lanes)
        finally:
            tape_var.reset(token)
            ctx.close()  # its Buffers point back to it: no cycle keeps g's memory
        return value, partials, own

    def reverse(self, config, dret, partials, *args):
        lanes = iter(partials)
        return delivered(args, [None if type(a) is Const else times(dret, next(lanes))
                                for a in args])

    def __repr__(self):
        return f"fwddiff({self.name})"


def fwddiff(g):
    """Wrap ``g`` (a function of a few scalars, applied elementwise when given
    arrays) so that reverse mode records each call as one record whose
    pullback uses forward-mode partials.  Outside reverse mode the wrapper
    calls ``g`` itself."""
    if not callable(g):
        raise TypeError(f"sad.fwddiff: g must be callable (a function of a few scalars), "
                        f"got {type(g).__name__}; use it as sad.fwddiff(g) or as a decorator")
    name = getattr(g, "__name__", "g")
    rule = PartialsRule(g, name)

    @functools.wraps(g)
    def wrapper(*args):
        tape = current_tape()
        # plain call, forward mode, or inside a nested differentiation (which
        # differentiates g's operations themselves): g runs as it is
        if type(tape) is not Tape or level_var.get() > 0:
            return g(*args)
        for k, a in enumerate(args):
            _check_arg(name, k, a)
        actives = [a if _active(a) else None for a in args]
        inputs = [a for a in actives if a is not None]
        if not inputs:
            return g(*[primal(a) for a in args])
        for a in inputs:
            if (a.tape if type(a) is TScalar else a.buf.tape) is not tape:
                raise mixed_tapes_error()
        prims = [_value(a) for a in args]
        if core.generic_only_active():
            return record(tape, rule, args, prims, actives, {})
        # the rule's record specialised: a scalar result of one or two traced
        # scalars is one C record, anything else one Python record that adds
        # the partials times the result's adjoint into the inputs' adjoints
        # directly (the protocol's argument objects cost W3's fwddiff row 10%)
        value, partials, own = rule.partials(prims, [k for k, d in enumerate(actives)
                                                     if d is not None])
        scalar = not isinstance(value, np.ndarray) or value.ndim == 0
        if scalar and len(inputs) <= 2 and all(type(a) is TScalar for a in inputs):
            return _scalar_record(tape, float(value), inputs, partials)
        return _array_record(tape, value, inputs, partials, own)
    return wrapper


def _array_record(tape, value, inputs, partials, own):
    """One Python record: input j's adjoint += the result's adjoint * lane j,
    summed over the axes broadcasting added (what PartialsRule.reverse does).
    ``own``: value and partials are memory nobody else holds (else copied)."""
    z = value if own else _float_copy(value)
    if z.ndim == 0 and z.dtype == F64:
        res, gz = new_scalar(tape, float(z))
    else:
        res = new_array(tape, z, True)
        gz = res._s
    if not own:
        partials = np.array(partials)

    def pullback():
        for j, x in enumerate(inputs):
            accumulate(x, times(gz, partials[j]))
    tape.record_py(pullback)
    return res


def _own_memory(value, partials, own):
    """The AugmentedReturn of a call: value and partials copied unless they
    are g's own memory (the tape must not see later writes to g's inputs)."""
    if not own:
        value = _float_copy(value) if np.ndim(value) or _single(value) else float(value)
        partials = np.array(partials)
    return AugmentedReturn(primal=value, tape=partials)


def _single(v):
    return getattr(v, "dtype", None) == F32


def _float_copy(v):
    """A copy of g's value as the record holds it: float32 stays float32 (a
    float32 scalar a 0-d array), anything else becomes float64."""
    return np.array(v, dtype=F32 if _single(v) else F64)


def _value(a):
    """What g is given for argument a: a traced scalar's value as a float."""
    p = primal(a)
    return float(p) if type(a) is TScalar else p


def _scalar_record(tape, z, inputs, partials):
    """The rule's record specialised for g of one or two traced scalars with
    a scalar value: one C record holding the partials."""
    x = inputs[0]
    y = inputs[1] if len(inputs) > 1 else None
    pair = lib.sad_s2(tape.c, lib.SAD_LIN, z, x.g, float(partials[0]),
                      0 if y is None else y.g, 0.0 if y is None else float(partials[1]))
    return fast.scalar(z, pair, tape)
