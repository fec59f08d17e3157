"""numpy's ndarray interface on the traced types: the numpy protocol methods
that hand operations to an engine's rule entries, and every public ndarray
attribute a traced type lacks, mapped to its numpy function when that has a
rule, else to an error naming it.

Separate because the traced types of every engine are completed the same
way, once the rule tables exist (engines/rules/__init__.py).
"""
import numpy as np

from .errors import DeferToNested, NoRuleError, no_rule_message


class _NoRule:
    """Class attribute standing for a public ndarray attribute or method that
    traced arrays do not implement: reading it raises NoRuleError naming it
    (a plain AttributeError would not say why).  A descriptor rather than a
    ``__getattr__``, which would slow down every attribute access."""

    __slots__ = ("name", "method", "message")

    def __init__(self, name, method, message):
        self.name, self.method, self.message = name, method, message

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        raise NoRuleError(self.message(f"x.{self.name}()" if self.method else f"x.{self.name}"))


class _ByFunction:
    """ndarray method ``x.name(...)`` as ``np.name(x, ...)``, for the methods
    whose numpy function has a rule (derivative-free ones such as np.round)."""

    __slots__ = ("func",)

    def __init__(self, func):
        self.func = func

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        func = self.func
        return lambda *args, **kwargs: func(obj, *args, **kwargs)


# ndarray methods that work in place, where the numpy function of the same
# name returns a new array (np.sort(x) is not x.sort()): never mapped to it
IN_PLACE_METHODS = frozenset({"sort", "partition", "resize", "fill", "put", "itemset",
                              "setfield", "setflags", "byteswap"})


def _sort(self, axis=-1, kind=None, order=None, **stable):  # stable=: numpy >= 2.0
    self[...] = np.sort(self, axis=axis, kind=kind, order=order, **stable)


def _put(self, indices, values, mode="raise"):
    np.put(self, indices, values, mode=mode)


# in-place methods that are a numpy function writing into the array
_IN_PLACE_BY_FUNCTION = {"sort": (np.sort, _sort), "put": (np.put, _put)}


def complete_ndarray_interface(cls, has_rule, message=no_rule_message):
    """Give ``cls`` every public ndarray attribute it lacks: the methods whose
    numpy function ``has_rule`` call it (not the in-place ones, except
    x.sort() and x.put(), which write that function's result into x), the
    rest raise NoRuleError with ``message(what)``."""
    for name in dir(np.ndarray):
        if name.startswith("_") or hasattr(cls, name):
            continue
        in_place = _IN_PLACE_BY_FUNCTION.get(name)
        if in_place is not None and has_rule(in_place[0]):
            setattr(cls, name, in_place[1])
            continue
        func = getattr(np, name, None)
        method = callable(getattr(np.ndarray, name))
        if method and name not in IN_PLACE_METHODS and func is not None and has_rule(func):
            setattr(cls, name, _ByFunction(func))
        else:
            setattr(cls, name, _NoRule(name, method, message))


def numpy_protocol(entries):
    """``__array_ufunc__``, ``__array_function__`` and ``_u`` (the operators')
    of a traced array type, calling its engine's rule entries ``entries``
    (engines/handlers.py).  An operation that a value of
    a nested differentiation must do is handed to it (see DeferToNested)."""
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        in_place = "out" in kwargs
        try:
            return entries.array_ufunc(ufunc, method, inputs, kwargs)
        except DeferToNested:
            if in_place:
                raise
            return NotImplemented

    def __array_function__(self, func, types, args, kwargs):
        try:
            return entries.array_function(func, args, kwargs)
        except DeferToNested:
            if kwargs.get("out") is not None:
                raise
            return NotImplemented

    def _u(self, ufunc, *inputs, out=None):
        try:
            return entries.apply_ufunc(ufunc, inputs, out)
        except DeferToNested:
            if out is not None:
                raise
            return NotImplemented
    return __array_ufunc__, __array_function__, _u
