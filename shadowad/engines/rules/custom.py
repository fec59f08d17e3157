"""The engines' side of sad.custom_rule (shadowad/api/custom.py): a call of a
user's rule on traced values becomes one record of the record protocol in
reverse mode (shadowad/engines/rules/derived.py ``record``, as every built-in
Python record), and one call of the rule's ``forward`` in forward mode.

What the user's parts return is checked here, where the mistake is made,
rather than deep inside a sweep: an ``AugmentedReturn``, one gradient per
argument and only for ``Active`` ones, a ``(primal, tangent)`` pair.  Arrays
the rule does not declare in ``mutates`` reach it as read-only views, so an
undeclared write is an error naming the argument instead of bytes the tape
never saved.
"""
import numpy as np

from ...activity import FLOAT_DTYPES, Active, Const, Forward, Reverse
from ...primitives.protocol import AugmentedReturn, Config
from ...primitives.core import Primitive
from ..forward import dual
from ..nested.box import Box, bind as nested_bind, plain as plain_value
from ..nested import writes
from ..reverse.buffers import check_writable, promote
from ..reverse.scalar import TScalar
from ..reverse.traced import TArray
from ..reverse.untraced import F32, F64
from ...support.memory import shares_memory
from .derived import TangentDuplicated, TangentLanes, read_only, record
from .elementwise import tape_of_inputs
from .operands import (const_result, forward_const, forward_context, forward_operand,
                       forward_result, operand)
from . import registry

__all__ = ["call", "register", "unregister", "CustomRecord", "mutated_copies"]



def call(rule, values):
    """``rule`` called on ``values`` (its arguments in order)."""
    engine = None
    for x in values:
        t = type(x)
        if t is Box:
            return _nested_call(rule, values)
        if t is TArray or t is TScalar:
            engine = "reverse"
            break
        if t is dual.FArray or t is dual.FScalar:
            engine = "forward"
            break
    if engine is None:
        return rule.fn(*values)
    if engine == "reverse":
        return _reverse_call(rule, values)
    return _forward_call(rule, values)


# --------------------------------------------------------------------------
# reverse mode

class CustomRecord:
    """The record protocol's face of a user's rule: its parts, each checked."""

    __slots__ = ("rule", "mutates")
    guards_reads = True

    def __init__(self, rule):
        self.rule = rule
        self.mutates = rule.mutates

    def augmented_primal(self, config, *args):
        rule = self.rule
        with _undeclared_writes(rule, args):
            if rule.augmented_primal_fn is None:  # the plain function, nothing taped
                z = rule.fn(*[a.val for a in args])
                _check_result(rule, z, [a.val for a in args])
                return AugmentedReturn(primal=z, tape=None)
            aug = rule.augmented_primal_fn(config, *args)
        if type(aug) is not AugmentedReturn:
            raise TypeError(f"{rule.name}: augmented_primal must return "
                            f"sad.AugmentedReturn(primal=..., tape=...), got {type(aug).__name__}")
        _check_result(rule, aug.primal, [a.val for a in args])
        return aug

    def reverse(self, config, dret, tape, *args):
        rule = self.rule
        with _undeclared_writes(rule, args, "reverse"):
            grads = rule.reverse_fn(config, dret, tape, *args)
        if grads is None and len(args) == 0:
            grads = ()
        return grads

    def __repr__(self):
        return repr(self.rule)


class _undeclared_writes:
    """Turns numpy's "assignment destination is read-only" from inside a part
    of ``rule`` into an error that names the fix."""

    __slots__ = ("rule", "args", "part")

    def __init__(self, rule, args, part="augmented_primal"):
        self.rule, self.args, self.part = rule, args, part

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is ValueError and "read-only" in str(exc):
            rule = self.rule
            names = list(rule.signature.parameters)
            declared = [names[k] for k in rule.mutates]
            raise ValueError(
                f"{rule.name}.{self.part} wrote to an argument it does not declare in "
                f"mutates (declared: {declared or 'none'}); add its name to "
                f"sad.custom_rule(mutates=(...)) so the engine saves its bytes, or write "
                f"into a copy") from exc
        return False


def _reverse_call(rule, values):
    tape = tape_of_inputs(values, None)
    prims, actives = [], []
    for x in values:
        t = type(x)
        if t is TArray or t is TScalar:
            p, d = operand(x, tape)  # (the tape's check and the activity, as every rule's)
            prims.append(x.v if t is TScalar else p)  # a scalar arrives as a float
            actives.append(d)
        else:
            _check_plain(rule, x)
            prims.append(x)
            actives.append(None)
    active = any(d is not None for d in actives)
    for k in rule.mutates:
        _check_mutated(rule, k, values[k])
    _check_aliasing(rule, prims)
    for k in rule.mutates:
        x = values[k]
        if type(x) is TArray:
            check_writable(x)
            if active and actives[k] is None:
                promote(x)
                actives[k] = x
        elif active:
            raise TypeError(
                f"{rule.name}: argument {_name(rule, k)!r} is a plain array that the rule "
                "overwrites with values that depend on active inputs, which would drop "
                "their derivative; pass it to autodiff (Duplicated or Const) or allocate it "
                "inside f from a traced value (np.zeros_like(x))")
    if not active:
        if not any(type(values[k]) is TArray for k in rule.mutates):
            with _undeclared_writes(rule, prims, "function"):
                z = rule.fn(*[p if k in rule.mutates else read_only(p)
                              for k, p in enumerate(prims)])
            return z if z is None else const_result(tape, z)
        return record(tape, _Passive(rule), values, prims, actives, {})
    if rule.reverse_fn is None:
        raise NotImplementedError(f"{rule.name} has no reverse rule, so reverse mode cannot "
                                  f"differentiate it; define one with @{rule.name}.reverse")
    tape.user_rules = True
    return record(tape, CustomRecord(rule), values, prims, actives, {})


class _Passive:
    """A call with nothing active that overwrites traced memory: the plain
    function, recorded only so that the sweeps put its bytes back."""

    __slots__ = ("rule", "mutates")
    guards_reads = True
    reads_consts = False

    def __init__(self, rule):
        self.rule, self.mutates = rule, rule.mutates

    def augmented_primal(self, config, *args):
        with _undeclared_writes(self.rule, args):
            return AugmentedReturn(primal=self.rule.fn(*[a.val for a in args]))

    def reverse(self, config, dret, tape, *args):
        return (None,) * len(args)


def _name(rule, k):
    return list(rule.signature.parameters)[k]


def _arrays_overlap(a, b):
    return isinstance(b, np.ndarray) and shares_memory(a, b)


def _check_aliasing(rule, prims, overlap=_arrays_overlap):
    """A mutated argument may share no memory with another argument: the
    rule's parts would see one memory as two (its adjoints too), and no order
    of updates in them could be right."""
    for k in rule.mutates:
        for j, p in enumerate(prims):
            if j != k and overlap(prims[k], p):
                raise ValueError(
                    f"{rule.name}: argument {_name(rule, k)!r}, which the rule overwrites, "
                    f"shares memory with argument {_name(rule, j)!r}; pass a copy of one "
                    "of them")


def _check_result(rule, z, prims):
    """The result may not be an argument's memory: it would be a second name
    for memory the engine tracks under the argument (write a copy)."""
    if isinstance(z, np.ndarray):
        for j, p in enumerate(prims):
            if isinstance(p, np.ndarray) and shares_memory(z, p):
                raise ValueError(
                    f"{rule.name}: the result shares memory with argument "
                    f"{_name(rule, j)!r}; return a copy (np.array(...)) from the rule's "
                    "parts")


def _check_plain(rule, x):
    t = type(x)
    if t in (dual.FArray, dual.FScalar):
        raise TypeError(f"{rule.name}: a value of forward mode met one of reverse mode; "
                        "values of two differentiations cannot be combined")


def _check_mutated(rule, k, x):
    p = x.p if type(x) in (TArray, dual.FArray) else x
    if not isinstance(p, np.ndarray) or p.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{rule.name}: argument {_name(rule, k)!r} is declared in mutates, so "
                        "it must be a float64 or float32 array (the rule writes into it), got "
                        f"{type(x).__name__}")


# --------------------------------------------------------------------------
# forward mode

def _forward_call(rule, values):
    ctx = forward_context(values)
    prims, tangents = [], []
    for x in values:
        t = type(x)
        if t is dual.FArray or t is dual.FScalar:
            p, tangent = forward_operand(x, ctx)
            prims.append(x.v if t is dual.FScalar else p)  # a scalar arrives as a float
            tangents.append(tangent)
        else:
            if t in (TArray, TScalar):
                raise TypeError(f"{rule.name}: a value of reverse mode met one of forward "
                                "mode; values of two differentiations cannot be combined")
            prims.append(x)
            tangents.append(None)
    active = any(t is not None for t in tangents)
    for k in rule.mutates:
        _check_mutated(rule, k, values[k])
    _check_aliasing(rule, prims)
    for k in rule.mutates:
        x = values[k]
        if type(x) is dual.FArray:
            dual.writable(x)
            if active and tangents[k] is None:
                tangents[k] = promote(x)
        elif active:
            raise TypeError(
                f"{rule.name}: argument {_name(rule, k)!r} is a plain array that the rule "
                "overwrites with values that depend on active inputs, which would drop "
                "their tangents; pass it to autodiff or allocate it inside f from a traced "
                "value (np.zeros_like(x))")
    if not active:
        with _undeclared_writes(rule, prims, "function"):
            z = rule.fn(*[p if k in rule.mutates else read_only(p) for k, p in enumerate(prims)])
        return z if z is None else forward_const(ctx, z)
    if rule.forward_fn is None:
        raise NotImplementedError(f"{rule.name} has no forward rule, so forward mode cannot "
                                  f"differentiate it; define one with @{rule.name}.forward")
    lanes = next(t for t in tangents if t is not None).shape[0]
    args = []
    for k, (p, t) in enumerate(zip(prims, tangents)):
        if k not in rule.mutates:
            p = read_only(p)
        if t is None:
            args.append(Const(p))
        elif lanes == 1:
            args.append(TangentDuplicated(p, t[0] if np.ndim(p) else float(t[0])))
        else:
            args.append(TangentLanes(p, tuple(t) if np.ndim(p) else tuple(float(v) for v in t)))
    config = Config(needs_primal=True, width=lanes, mode=Forward)
    with _undeclared_writes(rule, args, "forward"):
        res = rule.forward_fn(config, *args)
    if res is None:
        return None
    if type(res) is not tuple or len(res) != 2:
        raise TypeError(f"{rule.name}.forward must return (primal, tangent) of the result, or "
                        f"None when the function returns None; got {type(res).__name__}")
    z, dz = res
    _check_result(rule, z, prims)
    if lanes > 1 and (type(dz) is not tuple or len(dz) != lanes):
        raise TypeError(f"{rule.name}.forward: with config.width = {lanes} the tangent must be "
                        f"a tuple of {lanes} tangents, one per lane")
    shape = np.shape(z)
    single = getattr(z, "dtype", None) == F32  # a float32 result keeps float32 (and its lanes)
    lanes_of = np.empty((lanes,) + shape, F32 if single else F64)
    for lane, t in enumerate(dz if lanes > 1 else (dz,)):
        if np.shape(t) != shape and np.ndim(t) != 0:
            raise ValueError(f"{rule.name}.forward: the tangent has shape {np.shape(t)}, the "
                             f"primal {shape}; they must be congruent")
        lanes_of[lane] = t
    z = np.array(z, dtype=F32 if single else F64) if np.ndim(z) or single else float(z)
    return forward_result(ctx, z, lanes_of)


# --------------------------------------------------------------------------
# nested differentiation: the rule as a primitive of the values one level down

def _nested_call(rule, values):
    if rule.mutates:
        return _nested_mutation(rule, values)
    prim = rule.__dict__.get("_nested_primitive")
    if prim is None:
        prim = rule.__dict__["_nested_primitive"] = _as_primitive(rule)
    return nested_bind(prim, values, {})


def _nested_mutation(rule, values):
    """A mutating rule on values of a nested differentiation: each mutated
    argument's new content is a primitive of all the arguments (computed
    first, from the values before the call), then written into it as the
    nested engine writes any array (shadowad/engines/nested/writes.py)."""
    for k in rule.mutates:
        if type(values[k]) is not Box and type(values[k]) is not np.ndarray:
            raise writes.inner_into_outer_error()
        if type(values[k]) is not Box:
            raise TypeError(
                f"{rule.name}: argument {_name(rule, k)!r} is plain memory that the rule "
                "overwrites inside a nested differentiation, which would drop the derivative "
                "of what it writes; allocate it with np.zeros_like(x) inside the nested "
                "function")
        if not writes.is_memory(values[k]):
            _check_mutated(rule, k, plain_value(values[k]))
    _check_aliasing(rule, values, writes.overlapping)
    prims = rule.__dict__.get("_nested_outputs")
    if prims is None:
        prims = rule.__dict__["_nested_outputs"] = {k: _mutation_primitive(rule, k)
                                                    for k in rule.mutates}
    new = {k: nested_bind(prims[k], values, {}) for k in rule.mutates}
    for k, v in new.items():
        writes.inplace(values[k], v)
    return None


def mutated_copies(mutates, vals):
    """The values with the mutated ones copied (a rule writes into these).
    A plain one is copied into a buffer of the differentiation one level down
    when another value belongs to it (np.zeros_like of that value), so that
    the rule may write values that depend on it there."""
    ref = next((v for v in vals if type(v) in (TArray, dual.FArray, Box) and np.ndim(v)), None)
    out = []
    for k, v in enumerate(vals):
        if k not in mutates:
            out.append(v)
        elif ref is not None and type(v) is np.ndarray:
            c = np.zeros_like(ref, shape=v.shape)
            c[...] = v
            out.append(c)
        else:
            out.append(np.copy(v))
    return out


def _mutation_primitive(rule, k):
    """Argument k's content after the call, as a primitive of the arguments
    before it: the value runs the rule on copies (one level down the rule
    differentiates itself); the tangent is its forward part and the adjoint
    its reverse part with the adjoint after the call seeded on argument k."""
    def impl(*vals):
        work = mutated_copies(rule.mutates, vals)
        rule(*work)
        return work[k]

    def jvp(ts, vals, out, params):
        if rule.forward_fn is None:
            raise NotImplementedError(f"{rule.name} has no forward rule, which a nested "
                                      f"forward differentiation needs; define @{rule.name}"
                                      ".forward")
        work = mutated_copies(rule.mutates, vals)
        args = []
        for j, (v, t) in enumerate(zip(work, ts)):
            if t is None and j in rule.mutates:
                t = np.zeros_like(v)
            args.append(Const(v) if t is None else
                        TangentDuplicated(v, np.copy(t) if j in rule.mutates else t))
        rule.forward_fn(Config(needs_primal=True, width=1, mode=Forward), *args)
        return args[k].dval

    def vjp(j, g, vals, out, params):
        if rule.reverse_fn is None:
            raise NotImplementedError(f"{rule.name} has no reverse rule, which a nested "
                                      f"reverse differentiation needs; define @{rule.name}"
                                      ".reverse")
        config = Config(needs_primal=True, width=1, mode=Reverse)

        def arguments(memory):
            args = []
            for i, v in enumerate(memory):
                if i == k:
                    args.append(TangentDuplicated(v, g * 1.0))
                elif i in rule.mutates or (i == j and np.ndim(v)):
                    args.append(TangentDuplicated(v, np.zeros_like(v)))
                elif i == j:
                    args.append(_NestedActive(v))
                else:
                    args.append(Const(v))
            return args
        tape = None
        if rule.augmented_primal_fn is not None:
            tape = rule.augmented_primal_fn(config, *arguments(mutated_copies(rule.mutates, vals))).tape
        args = arguments(mutated_copies(rule.mutates, vals))  # memory as before the call
        grads = rule.reverse_fn(config, None, tape, *args)
        if type(grads) is not tuple or len(grads) != len(vals):
            raise TypeError(f"{rule.name}.reverse must return a tuple with one entry per "
                            f"argument ({len(vals)})")
        a = args[j]
        return grads[j] if type(a) is _NestedActive else a.dval

    return Primitive(f"{rule.name}[{_name(rule, k)}]", impl, jvp, vjp)


def _as_primitive(rule):
    """The rule's three parts as a Primitive's impl, jvp and vjp on the values
    one level down.  The value calls the rule again (one level down it is
    differentiated by the rule too); the tangent is its forward part and the
    adjoint its reverse part, run on those values, so the enclosing
    differentiation differentiates the parts' own numpy code."""
    def impl(*vals):
        return rule(*vals)

    def jvp(ts, vals, out, params):
        if rule.forward_fn is None:
            raise NotImplementedError(f"{rule.name} has no forward rule, which a nested "
                                      f"forward differentiation needs; define @{rule.name}"
                                      ".forward")
        args = [Const(v) if t is None else TangentDuplicated(v, t) for v, t in zip(vals, ts)]
        res = rule.forward_fn(Config(needs_primal=True, width=1, mode=Forward), *args)
        if type(res) is not tuple or len(res) != 2:
            raise TypeError(f"{rule.name}.forward must return (primal, tangent)")
        return res[1]

    def vjp(k, g, vals, out, params):
        if rule.reverse_fn is None:
            raise NotImplementedError(f"{rule.name} has no reverse rule, which a nested "
                                      f"reverse differentiation needs; define @{rule.name}"
                                      ".reverse")
        args = []
        for j, v in enumerate(vals):
            if j != k:
                args.append(Const(v))
            elif np.ndim(v):
                args.append(TangentDuplicated(v, np.zeros_like(v)))
            else:
                args.append(_NestedActive(v))
        if rule.augmented_primal_fn is None:
            tape = None
        else:
            tape = rule.augmented_primal_fn(Config(needs_primal=True, width=1, mode=Reverse),
                                            *args).tape
        grads = rule.reverse_fn(Config(needs_primal=True, width=1, mode=Reverse), g, tape,
                                *args)
        if type(grads) is not tuple or len(grads) != len(vals):
            raise TypeError(f"{rule.name}.reverse must return a tuple with one entry per "
                            f"argument ({len(vals)})")
        a = args[k]
        return grads[k] if type(a) is _NestedActive else a.dval

    return Primitive(rule.name, impl, jvp, vjp)


class _NestedActive(Active):
    """An active scalar one level down (its value may be traced there)."""

    __slots__ = ()

    def __init__(self, val):
        self.val = val


# --------------------------------------------------------------------------
# implements=: the rule answers a numpy function on traced values

_REPLACED = {}  # numpy function -> (its previous reverse rule, forward rule)


def register(rule, func):
    if isinstance(func, np.ufunc):
        raise TypeError(
            f"sad.custom_rule(implements={func.__name__}): ufuncs are dispatched through "
            "shadowad's elementwise kernels, not the function table; call the rule itself "
            "inside f")
    if not callable(func):
        raise TypeError(f"sad.custom_rule(implements=...) takes a numpy function, got "
                        f"{type(func).__name__}")
    if not hasattr(func, "__wrapped__") and getattr(func, "__module__", "").split(".")[0] \
            not in ("numpy",):
        raise TypeError(
            f"sad.custom_rule(implements={getattr(func, '__name__', func)!r}): only functions "
            "numpy dispatches to traced values (through __array_function__) can be "
            "implemented; other libraries' functions convert their inputs to plain arrays "
            "first, so call the rule itself inside f")
    if func in _REPLACED:
        raise ValueError(
            f"sad.custom_rule(implements={getattr(func, '__name__', func)}): "
            f"{_REPLACED[func][2]} already implements it; call its unregister() first")
    _REPLACED[func] = (registry.FUNCTIONS.get(func), registry.JVPS.get(func), rule.name)

    def entry(*args, **kwargs):
        return rule(*args, **kwargs)
    registry.FUNCTIONS[func] = entry
    registry.JVPS[func] = entry


def unregister(rule, func):
    previous = _REPLACED.get(func)
    if previous is None or previous[2] != rule.name:
        return
    del _REPLACED[func]
    for table, old in zip((registry.FUNCTIONS, registry.JVPS), previous[:2]):
        if old is None:
            table.pop(func, None)
        else:
            table[func] = old

