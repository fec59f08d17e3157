"""Derivative rules, one module per family; importing this package fills the
rule tables and binds the engines' handler tables (engines/handlers.py) to
them.  ``derived`` gives every primitive of shadowad.primitives its reverse
and forward rule."""
from ..handlers import FORWARD, REVERSE
from ..reverse import interface, scalar, traced
# shape after derived: its C records for np.where and np.clip replace the rules
# derived from those primitives (shadowad/primitives/selection.py)
from . import registry, elementwise, indexing, reductions, derived, linalg, shape, ufuncs  # noqa: F401

REVERSE.bind(apply_ufunc=elementwise.apply_ufunc, array_ufunc=ufuncs.array_ufunc,
             array_function=registry.array_function, setindex=indexing.setindex,
             gather=indexing.gather, outer_by_numpy=linalg.outer_by_numpy)
FORWARD.bind(apply_ufunc=elementwise.forward_apply, array_ufunc=ufuncs.forward_ufunc,
             array_function=registry.forward_function, setindex=indexing.forward_setindex,
             gather=indexing.forward_getitem)

for _cls in (traced.ArrayOps, scalar.ScalarOps):
    interface.complete_ndarray_interface(
        _cls, lambda f: f in registry.FUNCTIONS and f in registry.JVPS)
