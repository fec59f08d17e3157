"""sad.fwddiff: mixed mode, after ForwardDiffPullbacks.

Inside reverse mode, a call of ``fwddiff(g)`` on scalars -- or elementwise on
arrays, with broadcasting -- is recorded as ONE record instead of one record
per operation inside ``g``.  Its partial derivatives come from running ``g``
once in forward mode with one tangent lane per active input, seeded with ones
(elementwise, the lane of input j holds d g / d input_j at every element).
"""
import functools

import numpy as np

from ._c import lib
from .activity import Active
from .dual import Context, FArray, FScalar
from .primitives.protocol import AugmentedReturn, add_to_shadow
from .products import times
from .rules.derived import record
from .tape import Tape, _current, current_tape
from .traced import (F64, TEMPORARY, TArray, TScalar, mixed_tapes_error, primal, shadow_of,
                     temporary_buffer)


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
    """g's arguments in forward mode: active input j (a float or an array
    among the values ``args``) carries lane j = 1.

    An array input is lent to g, not copied, and its lanes are a broadcast
    of ones and zeros, not memory: copying and filling cost about as much
    as g, and at n = 1e6 the extra memory made every call fault its pages
    in afresh.  If g writes to the input, both are copied first
    (Context.own): an Active array is read-only, and a write to tape memory
    would escape the tape.  A non-contiguous input is copied into C order
    at once, as before, so g computes on the same layouts."""
    lanes = len(active)
    duals = list(args)
    for j, k in enumerate(active):
        p = args[k]
        if type(p) is float:
            d = 1.0 if lanes == 1 else np.eye(lanes)[j]
            duals[k] = FScalar(p, d, ctx)
            continue
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
        if type(tape) is not Tape:  # plain call, or forward mode: g runs as it is
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
        rule = ForwardPartials(g, name, args, active)
        inputs = [args[k] for k in active]
        if len(active) <= 2 and all(type(a) is TScalar for a in inputs):
            computed = rule.partials([float(a.v) for a in inputs])
            if np.ndim(computed[0]) == 0:
                return _scalar_record(tape, float(computed[0]), inputs, computed[1])
            rule.computed = computed
        prims = [a.v if type(a) is TScalar else a.p for a in inputs]
        return record(tape, rule, inputs, prims, inputs, {})
    return wrapper


def _scalar_record(tape, z, inputs, partials):
    """z = g(x[, y]) of traced scalars: one C record holding the two partials."""
    x = inputs[0]
    y = inputs[1] if len(inputs) > 1 else None
    pair = lib.sad_s2(tape.c, lib.SAD_LIN, z, x.g, float(partials[0]),
                      0 if y is None else y.g, 0.0 if y is None else float(partials[1]))
    return TScalar(z, pair, tape)


class ForwardPartials:
    """The record of one call of ``fwddiff(g)`` (record protocol,
    shadowad/primitives/protocol.py): the augmented primal runs g once in
    forward mode, one tangent lane per active argument, and keeps the lanes
    as its tape; the reverse adds the result's adjoint times lane j into
    active argument j, summed over the axes broadcasting added.  Its
    arguments are g's active ones; the constant ones it holds itself."""

    __slots__ = ("g", "name", "args", "active", "computed")

    def __init__(self, g, name, args, active):
        self.g, self.name, self.args, self.active = g, name, args, active
        self.computed = None  # (value, partials, own) when already run

    def partials(self, values):
        """(value, partials with a leading lanes axis, own) of g at the active
        arguments' ``values`` (floats for scalars, arrays): ``own``, value
        and partials are memory nobody else holds (see _own)."""
        lanes = len(self.active)
        ctx = Context(lanes, elementwise=self.name)
        token = _current.set(ctx)
        try:
            inputs = [primal(a) for a in self.args]
            for k, v in zip(self.active, values):
                inputs[k] = v
            out = self.g(*_dual_inputs(ctx, inputs, self.active))
            return _partials(ctx, out, self.name, lanes)
        finally:
            _current.reset(token)
            ctx.close()  # its Buffers point back to it: no cycle keeps g's memory

    def augmented_primal(self, config, *args):
        computed = self.computed
        if computed is None:  # an Active's val is a float, a Duplicated's an array
            computed = self.partials([a.val for a in args])
        self.computed = self.args = None  # the record keeps only what reverse reads
        value, partials, own = computed
        z = value if own else np.array(value, dtype=F64)
        if not own:
            partials = np.array(partials)  # memory of its own, whatever g returned
        return AugmentedReturn(primal=z if z.ndim else float(z), tape=partials)

    def reverse(self, config, dret, partials, *args):
        grads = []
        for j, a in enumerate(args):
            c = times(dret, partials[j])
            if isinstance(a, Active):  # a scalar: the sum over the broadcast
                grads.append(np.sum(c))
            else:
                add_to_shadow(a, c)
                grads.append(None)
        return tuple(grads)

    def __repr__(self):
        return f"ForwardPartials({self.name})"
