"""The engines' side of sad.c_rule (shadowad/api/c_rule.py).

Reverse mode: one C record per call (csrc/core/crule.c): the descriptors of
the arguments and of their shadows, the rule's tape and the mutated bytes;
the C sweep swaps those bytes back and calls the rule's reverse, without
Python.  Shadows must be memory by then, so lazy ones are given memory here.
Forward mode: the rule's tangent, once per lane, the mutated arguments put
back to their values before the call between lanes.  Outside a
differentiation: the primal.
"""
import numpy as np

from ..._c import ffi, lib
from ...support.memory import bounds, data
from ..forward import dual
from ..reverse.buffers import check_writable, promote, shadow_of
from ..reverse.crule_error import CRuleError
from ..reverse.scalar import TScalar
from ..reverse.traced import TArray
from ..reverse.untraced import F64
from .elementwise import tape_of_inputs
from .operands import forward_context, forward_operand, operand

__all__ = ["call", "CRuleError", "MAX_ARGS", "rule_pointer"]

MAX_ARGS = lib.SAD_CRULE_MAXARGS


def rule_pointer(address):
    return ffi.cast("void *", address)


def call(rule, values):
    for x in values:
        if hasattr(x, "level_trace"):  # a Box of a nested differentiation
            raise _twice(rule)
    for x in values:
        t = type(x)
        if t is TArray or t is TScalar:
            return _reverse_call(rule, values)
        if t is dual.FArray or t is dual.FScalar:
            return _forward_call(rule, values)
    return _plain_call(rule, values)


# --------------------------------------------------------------------------
# descriptors

class _Descriptors:
    """sad_arr descriptors of arrays (and of their shadows), with the cffi
    memory they point to kept alive as long as this object."""

    def __init__(self, n):
        self.arr = ffi.new("sad_arr[]", max(n, 1))
        self.shadow = ffi.new("sad_arr[]", max(n, 1))
        self.hold = []

    def set(self, which, k, p, address=None):
        d = (self.arr if which == 0 else self.shadow)[k]
        shape = ffi.new("int64_t[]", p.shape or (0,))
        strides = ffi.new("int64_t[]", p.strides or (0,))
        self.hold += (shape, strides)
        d.data = ffi.cast("double *", data(p) if address is None else address)
        d.nd = p.ndim
        d.shape = shape
        d.strides = strides

    def set_address(self, which, k, address):
        d = (self.arr if which == 0 else self.shadow)[k]
        d.data = ffi.cast("double *", address)
        d.nd = 0


def _checked(rule, k, p, mutated):
    """Argument k as an aligned float64 ndarray (floats: 0-d arrays)."""
    if isinstance(p, (float, int, np.floating, np.integer)) and not isinstance(p, bool):
        if mutated:
            raise TypeError(f"{rule.name}: argument {k} is declared in mutates, so it must be a "
                            f"float64 array the rule can write, got {type(p).__name__}")
        return np.array(float(p))
    if type(p) is not np.ndarray:
        raise TypeError(f"{rule.name}: argument {k} must be a float64 ndarray (or a float), "
                        f"got {type(p).__name__}")
    if p.dtype != F64:
        raise TypeError(f"{rule.name}: argument {k} has dtype {p.dtype}; a C rule takes "
                        "float64 arrays only (convert with .astype(np.float64))")
    if not p.flags.aligned:
        raise ValueError(f"{rule.name}: argument {k} is not aligned; pass a copy")
    if p.ndim > lib.SAD_CRULE_MAXDIM:
        raise ValueError(f"{rule.name}: argument {k} has {p.ndim} dimensions, at most "
                         f"{lib.SAD_CRULE_MAXDIM}")
    if mutated and not p.flags.writeable:
        raise ValueError(f"{rule.name}: argument {k} is declared in mutates but is read-only")
    return p


def _check_aliasing(rule, prims):
    """A mutated argument must not share memory with another argument: the
    rule's reverse would read bytes its own restore has changed."""
    spans = [bounds(p) for p in prims]
    for m in rule.mutates:
        lo, hi = spans[m]
        for k, (a, b) in enumerate(spans):
            if k != m and a < hi and lo < b and prims[k].size and prims[m].size:
                raise ValueError(f"{rule.name}: argument {m}, which the rule overwrites, shares "
                                 f"memory with argument {k}; pass a copy of one of them")


def _run(rule, part, rc, code=None):
    if rc == lib.SAD_RULE_FAILED or (code is None and rc != 0):
        raise CRuleError(rule.name, part, code if code is not None else rc)
    if rc == lib.SAD_NOMEM:
        raise MemoryError(f"shadowad: out of memory while recording {rule.name}")
    if rc != lib.SAD_OK:
        raise RuntimeError(f"shadowad: C core refused {rule.name} (code {rc})")


# --------------------------------------------------------------------------
# outside a differentiation

def _plain_call(rule, values):
    prims = [_checked(rule, k, p, k in rule.mutates) for k, p in enumerate(values)]
    _check_aliasing(rule, prims)
    d = _Descriptors(len(prims))
    for k, p in enumerate(prims):
        d.set(0, k, p)
    rc = lib.sad_crule_call(rule.ptr, 0, len(prims), d.arr, ffi.NULL)
    if rc:
        raise CRuleError(rule.name, "primal", rc)


# --------------------------------------------------------------------------
# reverse mode

def _reverse_call(rule, values):
    tape = tape_of_inputs(values, None)
    prims, actives = [], []
    for k, x in enumerate(values):
        t = type(x)
        if t is TArray:
            if type(x.p) is not np.ndarray:
                raise _twice(rule)
            p, d = operand(x, tape)  # (the tape's check and the activity, as every rule's)
            prims.append(_checked(rule, k, p, False))  # writable: check_writable
            actives.append(d)
        elif t is TScalar:
            if k in rule.mutates:
                _checked(rule, k, 0.0, True)
            p, d = operand(x, tape)
            prims.append(p)
            actives.append(d)
        else:
            if t in (dual.FArray, dual.FScalar):
                raise TypeError(f"{rule.name}: a value of forward mode met one of reverse mode; "
                                "values of two differentiations cannot be combined")
            if hasattr(x, "__array_function__") and type(x) is not np.ndarray:
                raise _twice(rule)
            p = _checked(rule, k, x, k in rule.mutates)
            if k in rule.mutates:
                raise TypeError(
                    f"{rule.name}: argument {k} is a plain array that the rule overwrites inside "
                    "f; pass it to autodiff (Duplicated or Const) or allocate it inside f from a "
                    "traced value (np.zeros_like(x)), so that the tape can restore it")
            # read at sweep time: a copy, since f may change a plain array untraced
            prims.append(np.array(p) if p.ndim else p)
            actives.append(None)
    _check_aliasing(rule, prims)
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
    d = _Descriptors(len(prims))
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
    _run(rule, rule.recording, rc, 0)
    tape.rule_names[len(tape) - 1] = rule.name


def _twice(rule):
    return TypeError(f"{rule.name}: a C rule cannot be differentiated twice: it is called on "
                     "values of a nested differentiation (sad.autodiff inside a differentiated "
                     "function), whose derivatives would need the derivative of the rule's C "
                     "reverse or tangent; call it at one level of differentiation only")


# --------------------------------------------------------------------------
# forward mode

def _forward_call(rule, values):
    ctx = forward_context(values)
    prims, tangents = [], []
    for k, x in enumerate(values):
        t = type(x)
        if t is dual.FArray:
            if type(x.p) is not np.ndarray:
                raise _twice(rule)
            p, tangent = forward_operand(x, ctx)
            prims.append(_checked(rule, k, p, False))  # writable: dual.writable
            tangents.append(tangent)
        elif t is dual.FScalar:
            if k in rule.mutates:
                _checked(rule, k, 0.0, True)
            p, tangent = forward_operand(x, ctx)
            prims.append(p)
            tangents.append(np.asarray(tangent, dtype=F64))
        else:
            if t in (TArray, TScalar):
                raise TypeError(f"{rule.name}: a value of reverse mode met one of forward mode; "
                                "values of two differentiations cannot be combined")
            if hasattr(x, "__array_function__") and type(x) is not np.ndarray:
                raise _twice(rule)
            if k in rule.mutates:
                raise TypeError(
                    f"{rule.name}: argument {k} is a plain array that the rule overwrites inside "
                    "f; pass it to autodiff or allocate it inside f from a traced value")
            prims.append(_checked(rule, k, x, False))
            tangents.append(None)
    _check_aliasing(rule, prims)
    active = any(t is not None for t in tangents)
    for k in rule.mutates:
        x = values[k]
        dual.writable(x)
        if active and tangents[k] is None:
            tangents[k] = promote(x)
    if not active:
        return _plain_call(rule, prims)
    if not rule.has_tangent:
        raise NotImplementedError(f"{rule.name} has no tangent function, so forward mode "
                                  "cannot differentiate it")
    lanes = next(t for t in tangents if t is not None).shape[0]
    before = [np.array(prims[k]) for k in rule.mutates]
    d = _Descriptors(len(prims))
    for k, p in enumerate(prims):
        d.set(0, k, p)
    for lane in range(lanes):
        if lane:  # each lane performs the call: from the same values
            for k, b in zip(rule.mutates, before):
                prims[k][...] = b
        for k, t in enumerate(tangents):
            if t is None:
                d.shadow[k].data = ffi.NULL
            else:
                d.set(1, k, t[lane if t.shape[0] > 1 else 0, ...])  # one: every lane's
        rc = lib.sad_crule_call(rule.ptr, 1, len(prims), d.arr, d.shadow)
        if rc:
            for k, b in zip(rule.mutates, before):
                prims[k][...] = b
            raise CRuleError(rule.name, "tangent", rc)
