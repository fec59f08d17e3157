"""Names of functions as users write them, for error messages.

``np.fft.rfft``, ``scipy.special.expit``, ``np.random.Generator.normal``:
the public module a function is reached through (private modules such as
``scipy.special._logsumexp`` or ``numpy._core.umath`` are skipped), then its
qualified name, with ``numpy`` spelled ``np``.  ufuncs carry no
``__module__``; they are looked up in the modules already imported.

Also: the library function whose frame is on the stack when a traced value
is converted to a plain array (``library_caller``), so that the error names
the function the user called rather than numpy's conversion.
"""
import os
import sys
import sysconfig
import types
import warnings

_cache = {}


def _public(module):
    """``module`` without its first private component and what follows."""
    parts = []
    for p in module.split("."):
        if p.startswith("_"):
            break
        parts.append(p)
    return ".".join(parts)


def _same(obj, func):
    if obj is func:
        return True
    # a bound method is a new object at every attribute access
    return isinstance(func, types.MethodType) and type(obj) is types.MethodType and obj == func


def _holds(module, name, func):
    mod = sys.modules.get(module)
    return mod is not None and _same(getattr(mod, name, None), func)


def _search(name, func):
    """The shortest public module, among those imported, that holds ``func``
    as ``name``."""
    found = []
    for modname, mod in list(sys.modules.items()):
        if mod is None or modname != _public(modname):
            continue
        try:
            with warnings.catch_warnings():  # deprecated namespaces warn on every lookup
                warnings.simplefilter("ignore")
                held = getattr(mod, name, None)
            if _same(held, func):
                found.append(modname)
        except Exception:  # a module whose attributes are computed lazily and fail
            continue
    return min(found, key=lambda m: (m.count("."), len(m))) if found else None


def _module_of(func, name):
    module = getattr(func, "__module__", None)
    if type(module) is not str:  # ufuncs: no __module__
        return _search(name, func)
    public = _public(module)
    if public and not _holds(public, name, func):
        # e.g. numpy.ma.core.sum is numpy.ma.sum: shorter only where the
        # shorter module holds the same object
        return _search(name, func) or public
    # climb while the parent holds the same object: numpy.ma.core -> numpy.ma
    while "." in public and _holds(public.rsplit(".", 1)[0], name, func):
        public = public.rsplit(".", 1)[0]
    return public or module


def _np(full):
    return "np" + full[len("numpy"):] if full == "numpy" or full.startswith("numpy.") else full


def qualified_name(func):
    """How a user writes ``func``: ``np.fft.rfft``, ``scipy.special.expit``."""
    try:
        return _cache[func]
    except (KeyError, TypeError):  # TypeError: unhashable
        pass
    name = getattr(func, "__name__", None)
    if type(name) is not str:
        return repr(func)
    qual = getattr(func, "__qualname__", None) or name
    module = None
    if qual == name or "<" in qual:
        module = _module_of(func, name)
    elif isinstance(func, types.MethodType):  # np.random.normal: the global RandomState's
        module = _public(getattr(func, "__module__", None) or "")
        if _holds(module, name, func):
            qual = name
    if module is None and qual != name:  # a method: its class's module
        module = _public(getattr(func, "__module__", None) or "") or None
    if module == "builtins":
        module = None
    full = _np(f"{module}.{qual}" if module else qual)
    try:
        _cache[func] = full
    except TypeError:
        pass
    return full


# --------------------------------------------------------------------------
# the library function that converted a traced value

_LIBRARY_DIRS = tuple(sorted({os.path.realpath(p) + os.sep for key in ("stdlib", "platstdlib",
                                                                       "purelib", "platlib")
                              if (p := sysconfig.get_paths().get(key))}))
_HERE = os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + os.sep  # the package


def _in_library(code):
    path = os.path.realpath(code.co_filename)
    return path.startswith(_LIBRARY_DIRS) and not path.startswith(_HERE)


def library_caller(depth=2):
    """The name of the outermost library function (installed package or
    standard library) that the user's code called and that is running now,
    ``depth`` frames above this one; None when the user's own code (or
    shadowad's) did the conversion."""
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return None
    frames = []  # the library's frames, innermost first
    while frame is not None:
        code = frame.f_code
        if os.path.realpath(code.co_filename).startswith(_HERE):
            if frames:
                return None  # a rule's own numpy call converted: not the user's library call
            break  # shadowad's own frames: the driver that runs f, or a rule
        if not _in_library(code):
            break  # the user's code: it called the library, or converted itself
        else:
            frames.append(frame)
        frame = frame.f_back
    if not frames:
        return None
    outermost = frames[-1]
    code = outermost.f_code
    func = outermost.f_globals.get(code.co_name)
    inner = func
    while inner is not None and getattr(inner, "__code__", None) is not code:
        inner = getattr(inner, "__wrapped__", None)  # a decorated module function
    if inner is not None:
        return qualified_name(func)
    if "<locals>" in getattr(code, "co_qualname", ""):
        # a decorator's wrapper (scipy's batching): the module function it wraps
        for name in code.co_freevars:
            f = outermost.f_locals.get(name)
            if type(f) is types.FunctionType and "<locals>" not in f.__qualname__:
                return qualified_name(f)
    module = _public(outermost.f_globals.get("__name__", "")) or "?"
    qual = getattr(code, "co_qualname", code.co_name)
    return _np(f"{module}.{qual}")
