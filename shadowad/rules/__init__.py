"""Derivative rules, one module per family; importing this package fills the
rule tables and binds the traced types to them."""
from .. import traced
from . import registry, elementwise, indexing, reductions, linalg, shape  # noqa: F401

traced.apply_ufunc = elementwise.apply_ufunc
traced.array_ufunc = elementwise.array_ufunc
traced.array_function = registry.array_function
traced.setindex = indexing.setindex
traced.gather = indexing.gather
