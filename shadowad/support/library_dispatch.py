"""numpy's ``__array_function__`` protocol for a library function that does
not take part in it.

scipy.special.logsumexp and softmax convert their inputs with np.asarray,
so a traced value never reaches a derivative rule through them: the
conversion is refused (it would drop the derivative).  ``dispatching(func,
relevant)`` is ``func`` with numpy's dispatch in front, as numpy's own
functions have it: when an argument ``relevant`` names has an
``__array_function__`` of its own (a traced value of any engine), the call
goes to it, with ``func`` itself as the function, and the rule registered
for ``func`` answers; otherwise ``func`` runs unchanged.
"""
import functools

import numpy as np

__all__ = ["dispatching", "dispatched"]

_NDARRAY = np.ndarray.__array_function__


def _override(a):
    method = getattr(type(a), "__array_function__", None)
    return method is not None and method is not _NDARRAY


def dispatching(func, relevant):
    """``func`` with numpy's dispatch in front; ``relevant(*args, **kwargs)``
    gives the arguments that may be traced (as numpy's dispatchers do)."""
    @functools.wraps(func)
    def dispatch(*args, **kwargs):
        try:
            found = [a for a in relevant(*args, **kwargs) if _override(a)]
        except TypeError:  # a signature func itself refuses: its own error
            found = ()
        if found:
            types = tuple({type(a): None for a in found})
            for a in found:
                res = a.__array_function__(func, types, args, kwargs)
                if res is not NotImplemented:
                    return res
            raise TypeError(f"no implementation of {func.__name__} for {types}")
        return func(*args, **kwargs)

    dispatch.__shadowad_dispatches__ = func
    return dispatch


def dispatched(func):
    """The library function behind ``func`` when it is a ``dispatching``
    wrapper, else ``func``."""
    return getattr(func, "__shadowad_dispatches__", func)
