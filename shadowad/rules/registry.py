"""The rule table for numpy functions, keyed by the function object.

Each family module registers its rules right below their implementation with
``@implements(np.fn, ...)``.  A numpy function with no rule raises an error
that names it -- never a silently wrong gradient.
"""
import numpy as np

FUNCTIONS = {}


def implements(*funcs):
    def register(impl):
        for f in funcs:
            FUNCTIONS[f] = impl
        return impl
    return register


def _name(func):
    mod = getattr(func, "__module__", "") or ""
    mod = mod.replace("numpy._core.", "numpy.").replace("numpy.core.", "numpy.")
    if mod.startswith("numpy.linalg"):
        mod = "numpy.linalg"
    elif mod.startswith("numpy"):
        mod = "numpy"
    return f"{mod.replace('numpy', 'np')}.{func.__name__}"


def no_rule_error(func):
    return NotImplementedError(
        f"shadowad: {_name(func)} has no derivative rule in shadowad, so it cannot be "
        "applied to traced values. Take the value without derivative with "
        "sad.primal(x), or write the computation with supported operations")


def array_function(func, args, kwargs):
    impl = FUNCTIONS.get(func)
    if impl is None:
        raise no_rule_error(func)
    return impl(*args, **kwargs)


# Functions whose result carries no derivative: they run on primal values.
def _on_primals(func):
    from ..traced import primal

    def run(*args, **kwargs):
        args = [primal(a) if not isinstance(a, (list, tuple)) else type(a)(primal(x) for x in a)
                for a in args]
        kwargs = {k: primal(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)
    return run


for _f in (np.shape, np.ndim, np.size, np.argmax, np.argmin, np.argsort, np.nonzero,
           np.flatnonzero, np.count_nonzero, np.any, np.all, np.isclose, np.allclose,
           np.array_equal, np.result_type, np.sign, np.floor, np.ceil, np.round,
           np.isnan, np.isinf, np.isfinite, np.searchsorted, np.argwhere, np.may_share_memory,
           np.shares_memory):
    FUNCTIONS[_f] = _on_primals(_f)
