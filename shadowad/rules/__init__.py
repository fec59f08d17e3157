"""Derivative rules, one module per family; importing this package fills the
rule tables."""
from . import registry, elementwise, indexing, reductions, linalg, shape  # noqa: F401
