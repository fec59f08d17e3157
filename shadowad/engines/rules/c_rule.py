"""The engines' side of sad.c_rule (shadowad/api/c_rule.py).

Reverse mode: one C record per call (csrc/core/crule.c): the descriptors of
the arguments and of their shadows, the rule's tape and the mutated bytes;
the C sweep swaps those bytes back and calls the rule's reverse, without
Python.  Shadows must be memory by then, so lazy ones are given memory here.
Forward mode: the rule's tangent, once per lane, the mutated arguments put
back to their values before the call between lanes.  Outside a
differentiation: the primal.  Inside a nested one: c_rule_nested.py.
"""
import numpy as np

from ..._c import ffi, lib
from ..forward import dual
from ..nested.box import Box
from ..reverse.buffers import check_writable, promote, shadow_of
from ..reverse.crule_error import CRuleError
from ..reverse.scalar import TScalar
from ..reverse.traced import TArray
from ..reverse.untraced import F64
from .elementwise import tape_of_inputs
from .operands import forward_context, forward_operand, operand
from .c_rule_plain import (MAX_ARGS, Descriptors, check_aliasing, check_code, checked,
                           primal, tangent)
from . import c_rule_nested

__all__ = ["call", "CRuleError", "MAX_ARGS", "rule_pointer"]


def rule_pointer(address):
    return ffi.cast("void *", address)


def call(rule, values):
    for x in values:
        if type(x) is Box:
            return c_rule_nested.call(rule, values)
    for x in values:
        t = type(x)
        if t is TArray or t is TScalar:
            return _reverse_call(rule, values)
        if t is dual.FArray or t is dual.FScalar:
            return _forward_call(rule, values)
    return primal(rule, values)


# --------------------------------------------------------------------------
# reverse mode

def _reverse_call(rule, values):
    tape = tape_of_inputs(values, None)
    prims, actives = [], []
    for k, x in enumerate(values):
        t = type(x)
        if t is TArray:
            if type(x.p) is not np.ndarray:
                raise _foreign(rule, k, x.p)
            p, d = operand(x, tape)  # (the tape's check and the activity, as every rule's)
            prims.append(checked(rule, k, p, False))  # writable: check_writable
            actives.append(d)
        elif t is TScalar:
            if k in rule.mutates:
                checked(rule, k, 0.0, True)
            p, d = operand(x, tape)
            prims.append(p)
            actives.append(d)
        else:
            if t in (dual.FArray, dual.FScalar):
                raise TypeError(f"{rule.name}: a value of forward mode met one of reverse mode; "
                                "values of two differentiations cannot be combined")
            if hasattr(x, "__array_function__") and type(x) is not np.ndarray:
                raise _foreign(rule, k, x)
            p = checked(rule, k, x, k in rule.mutates)
            if k in rule.mutates:
                raise TypeError(
                    f"{rule.name}: argument {k} is a plain array that the rule overwrites inside "
                    "f; pass it to autodiff (Duplicated or Const) or allocate it inside f from a "
                    "traced value (np.zeros_like(x)), so that the tape can restore it")
            # read at sweep time: a copy, since f may change a plain array untraced
            prims.append(np.array(p) if p.ndim else p)
            actives.append(None)
    check_aliasing(rule, prims)
    active = any(a is not None for a in actives)
    for k in rule.mutates:
        x = values[k]
        check_writable(x)
        if active and actives[k] is None:
            promote(x)
            actives[k] = x
    if active and not rule.has_reverse:
        raise NotImplementedError(f"{rule.name} has no reverse function, so reverse mode "
                                  "cannot differentiate it")
    d = Descriptors(len(prims))
    keep = tape.keep
    for k, (p, a) in enumerate(zip(prims, actives)):
        keep.append(p)
        if type(a) is TScalar:
            d.set_address(0, k, a.g)
            d.set_address(1, k, a.g + 8)
            continue
        d.set(0, k, p)
        if a is None:
            d.shadow[k].data = ffi.NULL
            continue
        s = shadow_of(a)
        keep.append(s)
        d.set(1, k, s)
    mut = ffi.new("int32_t[]", rule.mutates or (0,))
    code = ffi.new("int *")
    tape.user_rules = True
    rc = lib.sad_crule(tape.c, rule.ptr, len(prims), d.arr, d.shadow, len(rule.mutates), mut,
                       code)
    if rc == lib.SAD_RULE_FAILED:
        raise CRuleError(rule.name, rule.recording, code[0])
    if rc == lib.SAD_OVER_BUDGET:
        raise tape.out_of_memory(rule.name)
    check_code(rule, rule.recording, rc, 0)
    tape.rule_names[len(tape) - 1] = rule.name
    tape.check(rc, rule.name)  # the rule's own tape counts from now on


def _foreign(rule, k, x):
    return TypeError(f"{rule.name}: argument {k} is a {type(x).__name__}, which a C rule "
                     "cannot read; pass a float64 ndarray (np.asarray(..., dtype=float))")


# --------------------------------------------------------------------------
# forward mode

def _forward_call(rule, values):
    ctx = forward_context(values)
    prims, tangents = [], []
    for k, x in enumerate(values):
        t = type(x)
        if t is dual.FArray:
            if type(x.p) is not np.ndarray:
                raise _foreign(rule, k, x.p)
            p, dx = forward_operand(x, ctx)
            prims.append(checked(rule, k, p, False))  # writable: dual.writable
            tangents.append(dx)
        elif t is dual.FScalar:
            if k in rule.mutates:
                checked(rule, k, 0.0, True)
            p, dx = forward_operand(x, ctx)
            prims.append(p)
            tangents.append(np.asarray(dx, dtype=F64))
        else:
            if t in (TArray, TScalar):
                raise TypeError(f"{rule.name}: a value of reverse mode met one of forward mode; "
                                "values of two differentiations cannot be combined")
            if hasattr(x, "__array_function__") and type(x) is not np.ndarray:
                raise _foreign(rule, k, x)
            if k in rule.mutates:
                raise TypeError(
                    f"{rule.name}: argument {k} is a plain array that the rule overwrites inside "
                    "f; pass it to autodiff or allocate it inside f from a traced value")
            prims.append(checked(rule, k, x, False))
            tangents.append(None)
    check_aliasing(rule, prims)
    active = any(t is not None for t in tangents)
    for k in rule.mutates:
        x = values[k]
        dual.writable(x)
        if active and tangents[k] is None:
            tangents[k] = promote(x)
    if not active:
        return primal(rule, prims)
    lanes = next(t for t in tangents if t is not None).shape[0]
    before = [np.array(prims[k]) for k in rule.mutates]
    for lane in range(lanes):
        if lane:  # each lane performs the call: from the same values
            for k, b in zip(rule.mutates, before):
                prims[k][...] = b
        try:  # (a tangent of one lane is every lane's)
            tangent(rule, prims, [None if t is None else t[lane if t.shape[0] > 1 else 0, ...]
                                  for t in tangents])
        except CRuleError:
            for k, b in zip(rule.mutates, before):
                prims[k][...] = b
            raise
