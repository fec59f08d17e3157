"""The entry points of ``__array_ufunc__``: a ufunc call is an elementwise
operation (rules/elementwise.py); its methods (``np.add.reduce``,
``np.add.accumulate``, ...) are one of the reductions (rules/reductions.py).
Both families are below this module, so neither imports the other."""
from ...support.naming import qualified_name
from . import elementwise, reductions, registry


def array_ufunc(ufunc, method, inputs, kwargs):
    """Entry point of ``__array_ufunc__`` in reverse mode."""
    if method == "__call__":
        return elementwise.apply_ufunc(ufunc, inputs, elementwise.call_out(ufunc, kwargs))
    return reductions.ufunc_method(ufunc, method, inputs, kwargs)


def forward_ufunc(ufunc, method, inputs, kwargs):
    """Entry point of ``__array_ufunc__`` in forward mode."""
    if method == "__call__":
        out = elementwise.call_out(ufunc, kwargs) if kwargs else None
        return elementwise.forward_apply(ufunc, inputs, out)
    registry.check_elementwise(f"{qualified_name(ufunc)}.{method}")
    return reductions.forward_ufunc_method(ufunc, method, inputs, kwargs)
