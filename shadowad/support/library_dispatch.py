"""numpy's ``__array_function__`` protocol for library functions that do not
take part in it (scipy.linalg's and scipy.special's Python functions
convert their inputs with np.asarray, so a traced value never reaches a
derivative rule through them: the conversion is refused, since it would
drop the derivative).

``dispatching(name, module, original)`` is a wrapper with numpy's dispatch
in front, as numpy's own functions have it: when an argument (nested lists
and tuples and keyword arguments included) has an ``__array_function__`` of
its own (a traced value of any engine), the call goes to it with the
wrapper as the function, so the rule registered for the wrapper answers;
otherwise the library's function runs unchanged.  ``original`` gives that
function when it is first needed, so the wrapper (the engines' key for the
rule) can exist before the library is imported.  The wrappers are put into
the library's namespace (see shadowad.support.post_import).
"""
import functools

import numpy as np

__all__ = ["dispatching", "dispatched", "install"]

_PLAIN = (np.ndarray, np.generic, float, int, bool, complex, str, type(None))
_NDARRAY = np.ndarray.__array_function__


def _overriding(args, found):
    for a in args:
        t = type(a)
        if t is tuple or t is list:
            _overriding(a, found)
        elif not isinstance(a, _PLAIN):
            af = getattr(t, "__array_function__", None)
            if af is not None and af is not _NDARRAY:
                found.append(a)
    return found


def _dispatch_order(values):
    """One value per type, subclasses before superclasses, else left to
    right (NEP 18)."""
    order = []
    for v in values:
        t = type(v)
        if any(type(o) is t for o in order):
            continue
        at = next((i for i, o in enumerate(order) if issubclass(t, type(o))), len(order))
        order.insert(at, v)
    return order


def dispatching(name, module, original):
    """The wrapper of ``module``'s function ``name`` (see the module's
    docstring); ``original()`` returns the library's function."""
    def wrapper(*args, **kwargs):
        found = _overriding(kwargs.values(), _overriding(args, []))
        if not found:
            return original()(*args, **kwargs)
        order = _dispatch_order(found)
        types = tuple(type(v) for v in order)
        for v in order:
            r = type(v).__array_function__(v, wrapper, types, args, kwargs)
            if r is not NotImplemented:
                return r
        raise TypeError(f"no implementation of {module}.{name} found for types {types}")
    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__module__ = module  # where pickle finds this object
    wrapper.__shadowad_original__ = original
    return wrapper


def dispatched(func):
    """The library's function behind ``func`` when it is a ``dispatching``
    wrapper, else ``func`` itself."""
    original = getattr(func, "__shadowad_original__", None)
    return func if original is None else original()


def install(module, name, wrapper):
    """Put ``wrapper`` in ``module``'s namespace in place of its function
    ``name``, with that function's name, signature and docstring; returns
    the library's function."""
    function = dispatched(getattr(module, name))
    original = wrapper.__shadowad_original__
    functools.update_wrapper(wrapper, function)
    wrapper.__module__ = module.__name__  # where pickle finds this object
    wrapper.__shadowad_original__ = original
    setattr(module, name, wrapper)
    return function
