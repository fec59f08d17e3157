"""The reverse and forward engines' rules, derived from the primitives'
definitions (shadowad.primitives).

Reverse: a primitive call becomes one Python record that follows the record
protocol (primitives.protocol): at recording, its rule's ``augmented_primal``
computes the value; at sweep time its ``reverse`` receives the arguments as
activity objects with memory as it was before the call (later records have
restored it), ``.dval`` being the adjoint memory of an active array (a lazy
shadow or a view of one included).  A primitive's ``"reverse"``
specialisation (a C record) is tried first.

Forward: the tangent of each lane is the primitive's JVP of that lane's
tangents; a ``"forward"`` specialisation computes all lanes at once along
their leading axis, and a ``"forward_call"`` one the whole call (value and
tangents) from the operands as they come, before they are parsed.
"""
import numpy as np

from ..forward import dual
from ...activity import Active, BatchDuplicated, Const, Duplicated, Forward, Reverse
from ...primitives import core, values
from ...primitives.protocol import AugmentedReturn, Config, DerivedRule
from ...primitives.elementwise_rules import ELEMENTWISE_CALLS
from ..reverse.snapshots import held
from ..reverse.buffers import (adjoint_for_pullback, check_writable, lazy_view, output_pullback,
                               promote)
from ..reverse.scalar import TScalar, new_scalar
from ..reverse.traced import TArray, lazy_result, new_array
from ..reverse.untraced import F32, F64
from ..reverse.values import takes_generic
from .elementwise import tape_of_inputs
from .adjoints import accumulate
from .operands import (const_result, finish_out, forward_const, forward_context,
    forward_operand, forward_result, operand)
from . import registry

REVERSE_CONFIG = Config(needs_primal=True, width=1, mode=Reverse)

values.PLAIN.update({TArray: lambda x: x.p, TScalar: lambda x: x.v,
                     dual.FArray: lambda x: x.p, dual.FScalar: lambda x: x.v})


# --------------------------------------------------------------------------
# the arguments of a record at sweep time

class SweepDuplicated(Duplicated):
    """An active array argument of a record: ``val`` its primal, and during
    the sweep ``dval`` its adjoint memory (given zeroed memory on first use
    when its shadow is lazy)."""

    __slots__ = ("traced",)

    def __init__(self, val, traced):
        self.val, self.traced = val, traced

    @property
    def dval(self):
        s, fresh = adjoint_for_pullback(self.traced)
        if fresh:
            s[...] = 0.0
        elif 0 in s.strides and s.size and any(st == 0 and n > 1
                                               for st, n in zip(s.strides, s.shape)):
            # (numpy gives an array without elements zero strides: nothing to sum)
            # numpy's `s += c` through such a view keeps one term of each sum
            raise ValueError(
                "shadowad: this argument is a broadcast view, whose adjoint memory names "
                "each element several times, so `.dval += c` would drop terms; add with "
                "shadowad.primitives.protocol.add_to_shadow(arg, c), which sums them")
        return s

    @dval.setter
    def dval(self, v):  # ``a.dval += c`` stores the view it added into back
        s = self.dval
        if not (type(v) is np.ndarray and v.shape == s.shape and v.strides == s.strides
                and v.__array_interface__["data"][0] == s.__array_interface__["data"][0]):
            raise AttributeError("shadowad: a rule may add into .dval (a.dval += ...) or "
                                 "write into it (a.dval[...] = ...), not rebind it")

    def accumulate(self, c):
        """dval += c, storing into memory no record has touched yet and summing
        into broadcast views correctly."""
        accumulate(self.traced, c)


class SweepActive(Active):
    """An active scalar argument: its gradient is returned by ``reverse``."""

    __slots__ = ("traced",)

    def __init__(self, val, traced):
        self.val, self.traced = val, traced


def arguments(tape, rule, operands, prims, actives):
    """The activity objects of a record's arguments.  A Const argument is
    read at sweep time as it was at the call (a snapshot if its memory
    changes), unless the rule says its reverse reads none.  A rule that
    ``guards_reads`` gets read-only views of the arrays it does not declare
    in ``mutates`` (a write to one is then an error, not lost bytes)."""
    keep = getattr(rule, "reads_consts", True)
    guard = getattr(rule, "guards_reads", False)
    mutates = getattr(rule, "mutates", ())
    args = []
    for k, (x, p, d) in enumerate(zip(operands, prims, actives)):
        if guard and k not in mutates:
            p = read_only(p)
        if d is None:
            args.append(Const(held(tape, x, p) if keep else p))
        elif type(d) is TScalar:
            args.append(SweepActive(p, d))
        else:
            args.append(SweepDuplicated(p, d))
    return args


def read_only(v):
    """A read-only view of array v (anything else as it is)."""
    if isinstance(v, np.ndarray) and v.flags.writeable:
        v = v.view()
        v.flags.writeable = False
    return v


def _gradients(rule, args, grads):
    """Add the gradients ``reverse`` returned for Active arguments; refuse
    any other entry."""
    if type(grads) is not tuple or len(grads) != len(args):
        raise TypeError(f"shadowad: {rule!r}.reverse must return a tuple with one entry per "
                        f"argument ({len(args)}), got {grads!r}")
    for k, g in enumerate(grads):
        if g is None:
            continue
        a = args[k]
        if type(a) is not SweepActive:
            raise TypeError(f"shadowad: {rule!r}.reverse returned a gradient for argument "
                            f"{k}, which is not Active (add into its .dval instead; return "
                            "None for it)")
        accumulate(a.traced, g)


def record(tape, rule, operands, prims, actives, params):
    """Run ``rule``'s augmented primal on the arguments and record its reverse.
    If it raises, the arguments it mutates get their bytes back first."""
    args = arguments(tape, rule, operands, prims, actives)
    mutated = [prims[k] for k in getattr(rule, "mutates", ())]
    before = [np.array(p) for p in mutated]
    try:
        aug = rule.augmented_primal(REVERSE_CONFIG, *args, **params)
        check_augmented(rule, aug)
    except BaseException:
        for p, b in zip(mutated, before):
            p[...] = b
        raise
    _drop_unread(rule, args)
    if mutated:
        return _record_mutation(tape, rule, args, aug, params, mutated, before)
    return record_result(tape, rule, args, aug, params)


_ZERO_BYTES = bytes(16)  # one zero element of any float dtype


def _drop_unread(rule, args):
    """Once the primal has run, the arguments whose values the reverse does
    not read (a primitive's ``reads``) keep only their shape and dtype: the
    record then holds no temporary that nothing else reads."""
    reads = getattr(rule, "reads", None)
    if reads is None:
        return
    reads_for = getattr(rule, "reads_for", None)
    if reads_for is not None:  # what the active operands' adjoints read
        reads = {j for k, a in enumerate(args) if type(a) is not Const for j in reads_for[k]}
    for k, a in enumerate(args):
        v = a.val
        if k not in reads and type(v) is np.ndarray and v.size:
            # zeros of v's shape and dtype in no memory (read-only, stride 0):
            # np.broadcast_to's array, built directly at a tenth of its cost
            a.val = np.ndarray(v.shape, v.dtype, _ZERO_BYTES, 0, (0,) * v.ndim)
            if type(a) is SweepDuplicated and type(a.traced) is TArray:
                a.traced = lazy_view(a.traced)


def check_augmented(rule, aug):
    if type(aug) is not AugmentedReturn:
        raise TypeError(f"shadowad: {rule!r}.augmented_primal must return an "
                        f"AugmentedReturn, got {type(aug).__name__}")


def _sweep(rule, args, aug, params):
    saved, reverse = aug.tape, rule.reverse

    def sweep(dret):
        _gradients(rule, args, reverse(REVERSE_CONFIG, dret, saved, *args, **params))
    return sweep


def record_result(tape, rule, args, aug, params):
    """The record of a call that returned ``aug`` (its augmented primal has
    run on ``args``, arguments() of the call): the traced result, whose
    adjoint the record's reverse receives as ``dret``."""
    check_augmented(rule, aug)
    z = aug.primal
    sweep = _sweep(rule, args, aug, params)
    if isinstance(z, np.ndarray) and z.ndim:
        # a subclass operand gives a subclass result; the tape holds ndarrays
        res = lazy_result(tape, np.asarray(z))
        tape.record_py(output_pullback(res, sweep))
        return res
    if _single(z):  # numpy's float32 scalar: a 0-d float32 array keeps its dtype
        res = new_array(tape, np.array(z), True)
        tape.record_py(output_pullback(res, sweep))
        return res
    res, g = new_scalar(tape, float(z))
    # an np.float64, not a Python float: the adjoint of a float64 value stays
    # strong beside float32 operands in the reverse's formulas (NEP 50)
    tape.record_py(lambda: sweep(np.float64(g)))
    return res


def _single(z):
    return getattr(z, "dtype", None) == F32


def float_copy(z):
    """A copy of array z as a traced value holds it: float32 stays float32,
    anything else becomes float64."""
    return np.array(z, dtype=F32 if _single(z) else F64)


def _record_mutation(tape, rule, args, aug, params, mutated, before):
    """The record of a call that overwrote ``mutated``: the sweeps swap the
    bytes from before the call back in (so its reverse, and every earlier
    record, read memory as before it) and out again for a replay.  Its
    result, if any, is traced: an eager adjoint, since the reverse must run
    (it turns the mutated arguments' adjoints) even when nothing reaches it."""
    def swap():
        for p, b in zip(mutated, before):
            cur = np.array(p)
            p[...] = b
            b[...] = cur

    sweep = _sweep(rule, args, aug, params)
    z = aug.primal
    if z is None:
        res, pullback = None, lambda: sweep(None)
    elif isinstance(z, np.ndarray) and z.ndim:
        res = new_array(tape, float_copy(z), True)
        g = res._s
        pullback = lambda: sweep(g)  # noqa: E731
    elif _single(z):
        res = new_array(tape, np.array(z), True)
        g = res._s
        pullback = lambda: sweep(g)  # noqa: E731
    else:
        res, gs = new_scalar(tape, float(z))
        pullback = lambda: sweep(np.float64(gs))  # noqa: E731  (strong: see record_result)
    tape.record_py(pullback, swap=swap, saved=tuple(before),
                   writes=(mutated[0], Ellipsis) if len(mutated) == 1 else None)
    return res


def derived_rule(prim):
    rule = prim.derived
    if rule is None:
        rule = prim.derived = DerivedRule(prim)
    return rule


def _viewed(prim, operands, params, out):
    """The view of a traced array that a shape primitive is in the reverse and
    forward engines (shadowad/engines/rules/shape.py), or None.  A view records
    nothing: it is how these engines lay out memory (writes through it reach
    its base), not a fast path, so generic_only does not turn it off."""
    view = prim.specialisations.get("view")
    if view is None or out is not None:
        return None
    return view(operands[0], params)


def reverse_bind(prim, operands, params, out=None):
    """A primitive applied in reverse mode: its value, and its record when an
    operand is active."""
    res = _viewed(prim, operands, params, out)
    if res is not None:
        return res
    tape = tape_of_inputs(operands, out)
    generic = takes_generic(operands, out)
    if len(operands) == 1:  # the reductions, inv, det, ...: no lists to build
        p, d = operand(operands[0], tape, generic)
        prims, actives, active = (p,), (d,), d is not None
    else:
        prims, actives, active = [], [], False
        for x in operands:
            p, d = operand(x, tape, generic)
            prims.append(p)
            actives.append(d)
            if d is not None:
                active = True
    if prim.mutates:
        return _mutation(tape, prim, operands, prims, actives, params, active, generic)
    if not active:
        res = const_result(tape, prim.impl(*prims, **params))
    else:
        spec = None if generic else core.specialised(prim, "reverse")
        res = None if spec is None else spec(tape, operands, prims, actives, params)
        if res is None:
            res = record(tape, derived_rule(prim), operands, prims, actives, params)
    return res if out is None else finish_out(res, out, "np." + prim.name, prim.ufunc_out)


def _mutation(tape, prim, operands, prims, actives, params, active, generic):
    """A mutating primitive in reverse mode: its target gets a shadow when
    anything is active (its new content is), and its old bytes are saved
    even when nothing is (earlier records read them in the sweep)."""
    m = prim.mutates[0]
    check_writable(operands[m])
    if active and actives[m] is None:
        promote(operands[m])
        actives[m] = operands[m]
    spec = core.specialised(prim, "reverse") if active and not generic else None
    if spec is None or spec(tape, operands, prims, actives, params) is None:
        record(tape, derived_rule(prim), operands, prims, actives, params)


# --------------------------------------------------------------------------
# forward mode

class TangentDuplicated(Duplicated):
    """An active argument of a forward call: ``dval`` a view of its tangent
    lane (the engine's memory, so a write into it is the new tangent)."""

    __slots__ = ()

    def __init__(self, val, dval):
        self.val, self.dval = val, dval


class TangentLanes(BatchDuplicated):
    """An active argument of a forward call with several lanes: ``dvals``
    one view per lane."""

    __slots__ = ()

    def __init__(self, val, dvals):
        self.val, self.dvals = val, dvals

    @property
    def dval(self):
        raise AttributeError(
            f"this argument has {len(self.dvals)} tangent lanes (config.width = "
            f"{len(self.dvals)}: sad.jacobian and BatchDuplicated run several at once): read "
            "and write them as .dvals[lane], and return one tangent per lane")


def forward_by_rule(rule, prims, tangents, params):
    """``rule.forward`` on the operands and their tangent lanes (arrays of
    shape (lanes,) + the operand's): (z, z's tangent lanes), or None for a
    call that returns None (its effects done)."""
    lanes = next(t for t in tangents if t is not None).shape[0]
    if lanes == 1:
        args = [Const(p) if t is None else TangentDuplicated(p, t[0])
                for p, t in zip(prims, tangents)]
    else:
        args = [Const(p) if t is None else TangentLanes(p, tuple(t))
                for p, t in zip(prims, tangents)]
    res = rule.forward(Config(needs_primal=True, width=lanes, mode=Forward), *args, **params)
    if res is None:
        return None
    z, dz = res
    lanes_of = np.empty((lanes,) + np.shape(z), F32 if _single(z) else F64)
    if lanes == 1:
        lanes_of[0] = dz
    else:
        for lane, t in enumerate(dz):
            lanes_of[lane] = t
    return z, lanes_of


def forward_bind(prim, operands, params, out=None):
    """A primitive applied in forward mode: its value with its tangent lanes.
    On a float32 operand (takes_generic) only the derived rule runs: the
    specialisations may read float64 memory in C."""
    res = _viewed(prim, operands, params, out)
    if res is not None:
        return res
    generic = takes_generic(operands, out)
    whole = None if generic else core.specialised(prim, "forward_call")
    if whole is not None:
        res = whole(operands, params, out)
        if res is not None:
            return res
    name = "np." + prim.name
    ctx = forward_context(operands, out)
    prims, tangents = [], []
    for x in operands:
        p, t = forward_operand(x, ctx, generic)
        prims.append(p)
        tangents.append(t)
    if prim.mutates:
        return _forward_mutation(prim, operands, prims, tangents, params, generic)
    if all(t is None for t in tangents):
        return finish_out(forward_const(ctx, prim.impl(*prims, **params)), out, name,
                          prim.ufunc_out)
    spec = None if generic else core.specialised(prim, "forward")
    dz = None
    if spec is not None:
        z = prim.impl(*prims, **params)
        dz = spec(tangents, prims, z, params)
    if dz is None:  # the generic path (or the specialisation declined: edge values)
        z, dz = forward_by_rule(derived_rule(prim), prims, tangents, params)
    return finish_out(forward_result(ctx, z, dz), out, name, prim.ufunc_out)


def _forward_mutation(prim, operands, prims, tangents, params, generic):
    """A mutating primitive in forward mode: the new content and, when
    anything is active, the new tangent lanes stored into the target."""
    m = prim.mutates[0]
    dual.writable(operands[m])
    if all(t is None for t in tangents):
        prims[m][...] = prim.impl(*prims, **params)
        return
    spec = None if generic else core.specialised(prim, "forward")
    if spec is not None and spec(operands, prims, tangents, params) is not None:
        return
    if tangents[m] is None:
        tangents[m] = promote(operands[m])
    forward_by_rule(derived_rule(prim), prims, tangents, params)


core.BINDERS.update({TArray: (0, reverse_bind), TScalar: (0, reverse_bind),
                     dual.FArray: (0, forward_bind), dual.FScalar: (0, forward_bind)})


# --------------------------------------------------------------------------
# every registered numpy function gets its reverse and forward rule

def _bound(entry, bind):
    def rule(*args, **kwargs):
        return entry(bind, *args, **kwargs)
    return rule


for _func, _entry in core.registered():
    registry.FUNCTIONS[_func] = _bound(_entry, reverse_bind)
    registry.JVPS[_func] = _bound(_entry, forward_bind)
registry.ELEMENTWISE.update(ELEMENTWISE_CALLS)
