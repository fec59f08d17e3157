"""The entry points of ``__array_ufunc__``: a ufunc call is an elementwise
operation (rules/elementwise.py); its methods (``np.add.reduce``,
``np.add.accumulate``, ...) are one of the reductions (rules/reductions.py).
Both families are below this module, so neither imports the other."""
import numpy as np

from ...support.naming import qualified_name
from . import elementwise, reductions, registry

_F64 = np.dtype(np.float64)


def _in_float64(inputs, kwargs):
    """``dtype=np.float64``: the inputs cast to float64 first, as numpy's loop
    computes them (float32 ones included: the cast primitive)."""
    dt = kwargs.get("dtype")
    if dt is None or np.dtype(dt) != _F64:
        return inputs
    del kwargs["dtype"]
    return tuple(x.astype(_F64) if getattr(x, "dtype", _F64) not in (_F64, None)
                 and np.dtype(x.dtype).kind == "f" else x for x in inputs)


def array_ufunc(ufunc, method, inputs, kwargs):
    """Entry point of ``__array_ufunc__`` in reverse mode."""
    if method == "__call__":
        inputs = _in_float64(inputs, kwargs)
        return elementwise.apply_ufunc(ufunc, inputs, elementwise.call_out(ufunc, kwargs))
    return reductions.ufunc_method(ufunc, method, inputs, kwargs)


def forward_ufunc(ufunc, method, inputs, kwargs):
    """Entry point of ``__array_ufunc__`` in forward mode."""
    if method == "__call__":
        inputs = _in_float64(inputs, kwargs) if kwargs else inputs
        out = elementwise.call_out(ufunc, kwargs) if kwargs else None
        return elementwise.forward_apply(ufunc, inputs, out)
    registry.check_elementwise(f"{qualified_name(ufunc)}.{method}")
    return reductions.forward_ufunc_method(ufunc, method, inputs, kwargs)
