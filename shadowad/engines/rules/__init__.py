"""Derivative rules, one module per family; importing this package fills the
rule tables and binds the traced types to them.  ``derived`` gives every
primitive of shadowad.primitives its reverse and forward rule."""
from ..forward import dual
from ..reverse import traced
from . import registry, elementwise, indexing, reductions, derived, linalg, shape  # noqa: F401

traced.apply_ufunc = elementwise.apply_ufunc
traced.array_ufunc = elementwise.array_ufunc
traced.array_function = registry.array_function
traced.setindex = indexing.setindex
traced.gather = indexing.gather
traced.outer_by_numpy = linalg.outer_by_numpy

dual.apply_ufunc = elementwise.forward_apply
dual.array_ufunc = elementwise.forward_ufunc
dual.array_function = registry.forward_function
dual.setindex = indexing.forward_setindex
dual.gather = indexing.forward_getitem

for _cls in (traced.ArrayOps, traced.ScalarOps):
    traced.complete_ndarray_interface(
        _cls, lambda f: f in registry.FUNCTIONS and f in registry.JVPS)
