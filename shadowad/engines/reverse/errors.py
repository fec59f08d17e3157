"""The errors of traced values: a derivative silently dropped, a conversion
to a plain value, a write to read-only memory, values of two calls mixed, an
operation without a derivative rule.

Separate from the traced types because every engine (reverse, forward,
nested) and the rules raise them, and they need nothing of those types: only
the running call (tape.py) and the C bases that tell a traced value's call.
"""
from ..._c import fast
from ...support.alternatives import no_rule_hint
from ...primitives import core
from ...support.naming import library_caller, qualified_name
from .tape import current_tape, finished_error


def detach_error(what, note=None):
    """``note``: what to add on the call's untraced constants; by default the
    running call's (a rule refusing an ``out=`` or a store into one)."""
    if note is None:
        note = getattr(current_tape(), "untraced_note", "")
    return TypeError(
        f"shadowad: {what} would silently drop the derivative of a traced value. "
        "Allocate outputs with np.zeros_like(x) / np.empty_like(x) (they return "
        "traced buffers), build arrays from traced scalars with np.stack, or call "
        "sad.primal(t) to take the value on purpose, without derivative." + note)


ARRAY_CONVERSION = ("converting a traced array to a plain numpy array (e.g. np.asarray, or "
                    "assigning it into an untraced array)")


def conversion_error(what, how, note="", depth=3):
    """The error of converting a traced value to a plain one (``__array__``,
    ``__float__``).  When a library function the user called does it (scipy's
    functions convert their inputs with np.asarray), the error names that
    function: it has no derivative rule, and allocating with np.zeros_like
    is not the fix.  ``what`` names what the user's own code did, ``how``
    what the library did."""
    func = library_caller(depth)  # 0 library_caller, 1 here, 2 __array__, 3 its caller
    if func is None:
        return detach_error(what, note)
    ruled = _name_with_rule(func)
    if ruled is not None:
        # a reference taken before shadowad put numpy's dispatch in front of
        # the function (shadowad.support.library_dispatch)
        module, name = ruled.rsplit(".", 1)
        return TypeError(
            f"shadowad: {ruled} has a derivative rule, but f calls the library's own "
            f"function, bound before shadowad was imported (e.g. `from {module} import "
            f"{name}` ran before `import shadowad`), which converts its inputs to plain "
            f"values. Import shadowad first, or call it through its module ({ruled}(...))")
    return TypeError(
        f"shadowad: {func} has no derivative rule in shadowad, so it cannot be applied to "
        f"traced values: it converts its inputs to plain values (with {how}), which "
        f"cannot carry a derivative.{no_rule_hint(func)} (e.g. {func}(sad.primal(x)))")


def _name_with_rule(func):
    """The name of a function with a rule whose library original ``func``
    is (as library_caller names it, also through a deprecated module such
    as scipy.linalg.decomp_cholesky), or None."""
    names = {qualified_name(f) for f, _ in core.registered()
             if hasattr(f, "__shadowad_original__")}  # the dispatch wrappers
    if func in names:
        return func
    parts = func.split(".")
    short = ".".join(parts[:2] + parts[-1:])
    return short if len(parts) > 3 and short in names else None


def readonly_error(label):
    return TypeError(
        f"shadowad: {label} is Active, and Active arrays are read-only inside f; "
        "pass it as Duplicated(x, dx) if f writes to it")


def mixed_tapes_error():
    # Values of a nested call are of other types (shadowad.engines.nested.engine), so two
    # tapes meet only when a traced value outlived the f it was made in.
    return RuntimeError(
        "shadowad: values from two different autodiff calls were combined: a traced value "
        "escaped from an earlier autodiff call (kept in a global, a closure or a list, or "
        "made by an autodiff_split whose tape is not reversed yet) is being used in this "
        "one. Traced values exist only while the f that made them runs: take its value "
        "inside that f with sad.primal(t), or return it from f. (Calling sad.autodiff "
        "inside f, nested differentiation, is supported: pass the values as arguments.)")


def readonly_view_error(buf):
    if not buf.root.flags.writeable:
        return ValueError(f"shadowad: cannot write to {buf.label}: it is a read-only array "
                          "(flags.writeable is False); pass a writable copy (np.array(x)) "
                          "if f writes to it")
    return ValueError(f"shadowad: cannot write to {buf.label}: this view of it is "
                      "read-only (numpy marks broadcast and diagonal views so)")


class DeferToNested(TypeError):
    """Raised when a value of a nested differentiation (shadowad.engines.nested.engine) would
    be converted to an array.  Where a traced value of the enclosing
    differentiation meets it as the left operand of an operation, the traced
    value's method returns NotImplemented instead, and the nested value, one
    level in, does the operation.  Never for an in-place operation (out=),
    which must write the traced memory or fail."""


def _call_of(t):
    """The call (reverse Tape, forward Context) a traced value belongs to.
    Told by the C bases (ArrayOps and TScalar use these errors)."""
    if isinstance(t, fast.ArrayBase):
        return t.buf.tape
    return t.tape if isinstance(t, fast.ScalarBase) else getattr(t, "ctx", None)


def conversion_of(t, what, how):
    """The error of converting traced value t to a plain one: a value whose
    call has finished is named as such (whatever the conversion), else
    conversion_error with the call's note on untraced constants."""
    call = _call_of(t)
    if getattr(call, "closed", False) or getattr(call, "state", None) == "freed":
        return finished_error()
    return conversion_error(what, how, getattr(call, "untraced_note", ""), depth=4)


class NoRuleError(AttributeError, NotImplementedError):
    """An ndarray attribute that traced arrays do not have.  A NotImplementedError
    like every "no derivative rule" error, and an AttributeError so that
    ``hasattr`` stays False for code that duck-types on it."""


def no_rule_message(what, ufunc=False):
    return (f"shadowad: {what} has no derivative rule in shadowad, so it cannot be "
            f"applied to traced values.{no_rule_hint(what, ufunc)}")
