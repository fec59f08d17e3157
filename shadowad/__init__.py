"""shadowad: Enzyme-style, activity-annotated automatic differentiation of
in-place numpy code, on a C tape.

    grads = shadowad.autodiff(f, Active(x), Const(c), Duplicated(y, dy))
"""
from .activity import (Active, BatchDuplicated, Const, Duplicated, DuplicatedNoNeed,
                       Forward, ForwardWithPrimal, Reverse, ReverseWithPrimal)
from . import rules  # noqa: F401  (fills the rule tables)
from .driver import autodiff, autodiff_split, gradient
from .jacobian import jacobian
from .kernels import axpy, scal, setindex
from .mixed import fwddiff
from .nested_trace import OverwrittenError
from .tape import memory_pool_bytes, set_memory_pool
from .traced import TArray, TScalar, read_only_primal as primal
from .vector import Vector

__all__ = ["autodiff", "autodiff_split", "gradient", "jacobian", "fwddiff", "Reverse", "ReverseWithPrimal",
           "Forward", "ForwardWithPrimal", "Const", "Active", "Duplicated",
           "DuplicatedNoNeed", "BatchDuplicated", "axpy", "scal", "setindex", "Vector",
           "primal", "TArray", "TScalar", "set_memory_pool", "memory_pool_bytes",
           "OverwrittenError"]
__version__ = "0.1.0"
