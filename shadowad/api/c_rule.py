"""sad.c_rule: a derivative rule written in C against the public header
shadowad/rule.h (``sad.get_include()``).

    solve = sad.c_rule(address_or_capsule, name="tridiag.solve", mutates=(3,))
    solve(a, b, c, d)          # d overwritten, as the rule's primal does

The struct is read once, here: its ABI number, its argument count and which
functions it has.  The calls go to shadowad/engines/rules/c_rule.py.
"""
import cffi

from .._c import fast

from ..engines.rules import c_rule as engine
from ..engines.rules.c_rule import CRuleError

__all__ = ["c_rule", "CRule", "CRuleError", "RULE_ABI"]

RULE_ABI = 1  # SAD_RULE_ABI of shadowad/rule.h

_ffi = cffi.FFI()  # ABI mode, only to read the struct
_ffi.cdef("""
    typedef struct sad_rule_view {
        uint32_t abi;
        int32_t nargs;
        void *primal, *augmented_primal, *reverse, *tangent, *free_tape, *user;
    } sad_rule_view;
""")  # the layout of shadowad/rule.h's sad_rule, its function pointers as addresses

def c_rule(rule, *, name=None, mutates=(), nested=None):
    """A callable for the C rule at ``rule``: a PyCapsule holding a
    ``const sad_rule *`` (any capsule name) or the struct's address as an int.

    ``mutates``: the positions of the arguments the routine overwrites
    (shadowad saves their bytes before each call); the others must not be
    written, which shadowad.testing.check_rule verifies.  The struct and
    everything it points to must outlive the returned object (keep the
    module that defines it loaded).

    ``nested``: the same routine in Python (numpy code, or a
    sad.custom_rule) with the same arguments and effects.  Inside a nested
    differentiation whose enclosing differentiation reaches the rule's
    arguments, second derivatives would need the derivatives of the C
    tangent and reverse; shadowad differentiates ``nested`` there instead
    (without it such a call is a TypeError).  Elsewhere the C functions run,
    nested differentiation included."""
    if nested is not None and not callable(nested):
        raise TypeError(f"sad.c_rule(nested=...) takes a function, got {type(nested).__name__}")
    return CRule(_address(rule), name=name, mutates=mutates, nested=nested)


def _address(rule):
    if type(rule) is int:
        if not 0 < rule < 1 << 64 or rule % 8:
            # (a wrong address within range still crashes: it is C's pointer)
            raise ValueError(f"sad.c_rule: {rule} is not the address of a sad_rule (a "
                             "positive, 8-byte aligned 64-bit address)")
        return rule
    if type(rule).__name__ == "PyCapsule":
        return fast.capsule_pointer(rule)
    raise TypeError("sad.c_rule takes a PyCapsule holding a `const sad_rule *` or its address "
                    f"as an int (cffi: int(ffi.cast('uintptr_t', ptr))), got "
                    f"{type(rule).__name__}")


class CRule:
    """A C rule (see c_rule): call it like the routine, inside or outside f."""

    def __init__(self, address, name=None, mutates=(), nested=None):
        view = _ffi.cast("sad_rule_view *", address)
        self.name = name or f"c_rule@{address:#x}"
        if view.abi != RULE_ABI:
            raise ValueError(f"sad.c_rule({self.name}): the rule was built against "
                             f"shadowad/rule.h ABI {view.abi}, this shadowad has ABI "
                             f"{RULE_ABI}; rebuild it with this shadowad's header "
                             "(sad.get_include())")
        self.nargs = int(view.nargs)
        if not 0 <= self.nargs <= engine.MAX_ARGS:
            raise ValueError(f"sad.c_rule({self.name}): nargs = {self.nargs}, it must be in "
                             f"[0, {engine.MAX_ARGS}]")
        if view.primal == _ffi.NULL:
            raise ValueError(f"sad.c_rule({self.name}): the rule has no primal function")
        if view.augmented_primal != _ffi.NULL and view.free_tape == _ffi.NULL:
            raise ValueError(f"sad.c_rule({self.name}): a rule with an augmented primal needs "
                             "free_tape, to release the tape it allocates")
        if isinstance(mutates, int):
            mutates = (mutates,)
        mut = []
        for m in mutates:
            if type(m) is not int or not 0 <= m < self.nargs:
                raise ValueError(f"sad.c_rule({self.name}): mutates takes argument positions "
                                 f"in [0, {self.nargs}), got {m!r}")
            mut.append(m)
        self.mutates = tuple(sorted(set(mut)))
        self.address = address
        self.nested = nested
        self.ptr = engine.rule_pointer(address)
        self.has_reverse = view.reverse != _ffi.NULL
        self.has_tangent = view.tangent != _ffi.NULL
        # the function that performs the call when it is recorded
        self.recording = ("augmented primal" if view.augmented_primal != _ffi.NULL
                          else "primal")

    def __call__(self, *args):
        if len(args) != self.nargs:
            raise TypeError(f"{self.name} takes {self.nargs} array arguments, got {len(args)}")
        return engine.call(self, args)

    def __repr__(self):
        return f"c_rule({self.name})"
