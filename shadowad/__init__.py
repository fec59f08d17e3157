"""shadowad: Enzyme-style, activity-annotated automatic differentiation of
in-place numpy code, on a C tape.

    grads = shadowad.autodiff(f, Active(x), Const(c), Duplicated(y, dy))
"""
from .activity import (Active, BatchDuplicated, Const, Duplicated, DuplicatedNoNeed, Forward,
    ForwardWithPrimal, Reverse, ReverseWithPrimal)
from .engines import rules  # noqa: F401  (fills the rule tables)
from .api.autodiff import autodiff, autodiff_split, gradient
from .api.jacobian import jacobian
from .api.kernels import axpy, scal, setindex
from .engines.mixed import fwddiff
from .primitives.protocol import AugmentedReturn, Config
from .engines.nested.trace import OverwrittenError
from .engines.reverse.tape import memory_pool_bytes, set_memory_pool
from .engines.reverse.watch import TapeBudgetError, TapeMemoryWarning, set_tape_report
from .engines.reverse.scalar import TScalar
from .engines.reverse.traced import TArray
from .engines.reverse.values import read_only_primal as primal
from .api.vector import Vector
from .api.custom import custom_rule
from .api.checkpointing import checkpoint, checkpoint_loop, StateRuleError
from .api.c_rule import c_rule, CRuleError

__all__ = ["autodiff", "autodiff_split", "gradient", "jacobian", "fwddiff", "Reverse", "ReverseWithPrimal",
           "Forward", "ForwardWithPrimal", "Const", "Active", "Duplicated",
           "DuplicatedNoNeed", "BatchDuplicated", "axpy", "scal", "setindex", "Vector",
           "primal", "TArray", "TScalar", "set_memory_pool", "memory_pool_bytes",
           "OverwrittenError", "AugmentedReturn", "Config", "custom_rule", "c_rule", "CRuleError", "get_include",
           "checkpoint", "checkpoint_loop", "StateRuleError",
           "TapeBudgetError", "TapeMemoryWarning", "set_tape_report"]
__version__ = "0.1.0"


def get_include():
    """The folder holding shadowad's public C header, shadowad/rule.h (for
    C rules: pass it to your compiler's include path)."""
    import os
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")
