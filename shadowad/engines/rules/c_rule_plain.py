"""A C rule's functions run on plain float64 arrays, without a tape: the
argument checks, the descriptors handed to C, and the primal, one lane of
the tangent, and the reverse (after the augmented primal on scratch copies,
for the rule's own tape).  The engines (c_rule.py, c_rule_nested.py) decide
which to run on what.
"""
import numpy as np

from ..._c import ffi, lib
from ...support.memory import bounds, data
from ..reverse.crule_error import CRuleError
from ..reverse.untraced import F64

__all__ = ["Descriptors", "checked", "check_aliasing", "check_code", "primal", "tangent",
           "adjoint", "MAX_ARGS"]

MAX_ARGS = lib.SAD_CRULE_MAXARGS


class Descriptors:
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

    def of(self, which, arrays):
        """Descriptors of ``arrays`` (None: no shadow)."""
        for k, p in enumerate(arrays):
            if p is None:
                (self.arr if which == 0 else self.shadow)[k].data = ffi.NULL
            else:
                self.set(which, k, p)
        return self.arr if which == 0 else self.shadow


def checked(rule, k, p, mutated):
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


def _spans_overlap(a, b):
    lo, hi = bounds(a)
    c, d = bounds(b)
    return c < hi and lo < d and a.size and b.size


def check_aliasing(rule, prims, overlap=_spans_overlap):
    """A mutated argument must not share memory with another argument: the
    rule's reverse would read bytes its own restore has changed."""
    for m in rule.mutates:
        for k, p in enumerate(prims):
            if k != m and overlap(prims[m], p):
                raise ValueError(f"{rule.name}: argument {m}, which the rule overwrites, shares "
                                 f"memory with argument {k}; pass a copy of one of them")


def check_code(rule, part, rc, code=None):
    """The core's return code rc of running ``part`` (code: the rule's own)."""
    if rc == lib.SAD_RULE_FAILED or (code is None and rc != 0):
        raise CRuleError(rule.name, part, code if code is not None else rc)
    if rc == lib.SAD_NOMEM:
        raise MemoryError(f"shadowad: out of memory while recording {rule.name}")
    if rc != lib.SAD_OK:
        raise RuntimeError(f"shadowad: C core refused {rule.name} (code {rc})")


def primal(rule, values):
    """The routine on plain values (the mutated ones overwritten)."""
    prims = [checked(rule, k, p, k in rule.mutates) for k, p in enumerate(values)]
    check_aliasing(rule, prims)
    d = Descriptors(len(prims))
    rc = lib.sad_crule_call(rule.ptr, 0, len(prims), d.of(0, prims), ffi.NULL)
    if rc:
        raise CRuleError(rule.name, "primal", rc)


def tangent(rule, prims, tangents):
    """One lane of the tangent: performs the call on ``prims`` (checked
    arrays) and writes the mutated arguments' new tangents into
    ``tangents`` (arrays shaped as the arguments; None: inactive)."""
    if not rule.has_tangent:
        raise NotImplementedError(f"{rule.name} has no tangent function, which forward mode "
                                  "needs (and a nested differentiation enclosing its reverse, "
                                  "whose transpose it is)")
    d = Descriptors(len(prims))
    rc = lib.sad_crule_call(rule.ptr, 1, len(prims), d.of(0, prims), d.of(1, tangents))
    if rc:
        raise CRuleError(rule.name, "tangent", rc)


def adjoint(rule, prims, shadows):
    """The reverse with ``prims`` as the memory before the call (left as
    they are: the augmented primal, run first for the rule's tape, writes
    copies of the mutated ones) and ``shadows`` the adjoints (None:
    inactive), which it updates as in a sweep."""
    if not rule.has_reverse:
        raise NotImplementedError(f"{rule.name} has no reverse function, which reverse mode "
                                  "needs (and a nested differentiation enclosing its tangent, "
                                  "whose transpose it is)")
    work = [np.array(p) if k in rule.mutates else p for k, p in enumerate(prims)]
    d = Descriptors(len(prims))
    w = Descriptors(len(prims))
    part = ffi.new("int *")
    rc = lib.sad_crule_adjoint(rule.ptr, len(prims), w.of(0, work), d.of(0, prims),
                               d.of(1, shadows), part)
    if rc:
        raise CRuleError(rule.name, "reverse" if part[0] else rule.recording, rc)
