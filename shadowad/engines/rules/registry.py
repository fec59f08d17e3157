"""The rule table for numpy functions, keyed by the function object.

Each family module registers its rules right below their implementation with
``@implements(np.fn, ...)``.  A numpy function with no rule raises an error
that names it -- never a silently wrong gradient.
"""
import numpy as np

from ...support.naming import qualified_name
from ..reverse.tape import current_tape
from ..reverse.errors import no_rule_message
from ...primitives.inactive import DERIVATIVE_FREE

FUNCTIONS = {}  # reverse mode: numpy function -> rule that records a pullback
JVPS = {}       # forward mode: numpy function -> rule that propagates tangents


def implements(*funcs):
    def register(impl):
        for f in funcs:
            FUNCTIONS[f] = impl
        return impl
    return register


def implements_jvp(*funcs):
    """Register a forward-mode rule (its tangents travel with the values)."""
    def register(impl):
        for f in funcs:
            JVPS[f] = impl
        return impl
    return register


def implements_both(*funcs, elementwise=False):
    """Register one rule that serves both modes (it looks at its inputs'
    types); ``elementwise`` ones may also run inside sad.fwddiff."""
    def register(impl):
        implements(*funcs)(impl)
        implements_jvp(*funcs)(impl)
        if elementwise:
            ELEMENTWISE.update(funcs)
        return impl
    return register


def _name(func):
    return qualified_name(func)


def no_rule_error(func):
    return NotImplementedError(no_rule_message(_name(func), isinstance(func, np.ufunc)))


def array_function(func, args, kwargs):
    impl = FUNCTIONS.get(func)
    if impl is None:
        raise no_rule_error(func)
    return impl(*args, **kwargs)


def not_elementwise_error(fname, what):
    return TypeError(
        f"sad.fwddiff({fname}): {what} is not elementwise. fwddiff applies {fname} to "
        "arrays elementwise (with broadcasting), so it may only use elementwise "
        "operations (arithmetic, ufuncs such as np.exp, np.where); call it on scalars, "
        "or leave it unwrapped so reverse mode records its internals")


# numpy functions that keep a computation elementwise (fwddiff may run them)
ELEMENTWISE = set()


def forward_function(func, args, kwargs):
    impl = JVPS.get(func)
    if impl is None:
        raise no_rule_error(func)
    if func not in ELEMENTWISE:
        check_elementwise(func)
    return impl(*args, **kwargs)


def check_elementwise(what):
    """Inside sad.fwddiff only elementwise operations may run.  ``what`` (a
    name, or the numpy function) is spelled out only for the error."""
    name = getattr(current_tape(), "elementwise", None)
    if name is not None:
        raise not_elementwise_error(name, what if type(what) is str else _name(what))


# Functions whose result carries no derivative: they run on primal values.
def _on_primals(func):
    from ..reverse.values import primal

    def run(*args, **kwargs):
        args = [primal(a) if not isinstance(a, (list, tuple)) else type(a)(primal(x) for x in a)
                for a in args]
        kwargs = {k: primal(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)
    return run


for _f in DERIVATIVE_FREE:
    FUNCTIONS[_f] = JVPS[_f] = _on_primals(_f)
    ELEMENTWISE.add(_f)
