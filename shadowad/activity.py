"""Activity annotations and modes: plain, self-checking data.

This module imports nothing from the engine.  Each annotation checks its
arguments when it is built, so a mistake is reported at the call site and not
deep inside a sweep.
"""
from numbers import Real

import numpy as np

from .support.memory import shares_memory

__all__ = ["Const", "Active", "Duplicated", "DuplicatedNoNeed", "BatchDuplicated",
           "Mode", "Reverse", "ReverseWithPrimal", "Forward", "ForwardWithPrimal"]


class Mode:
    """A differentiation mode; compare by identity."""

    __slots__ = ("name", "reverse", "with_primal")

    def __init__(self, name, reverse, with_primal):
        self.name, self.reverse, self.with_primal = name, reverse, with_primal

    def __repr__(self):
        return self.name


Reverse = Mode("Reverse", True, False)
ReverseWithPrimal = Mode("ReverseWithPrimal", True, True)
Forward = Mode("Forward", False, False)
ForwardWithPrimal = Mode("ForwardWithPrimal", False, True)


def is_vector(x):
    return type(x).__name__ == "Vector" and hasattr(x, "_cvec")


def plain_array(x, what):
    """x as an ndarray: a subclass becomes the plain ndarray viewing its memory
    (the engines hold ndarrays, and writes still reach x).  np.matrix and masked
    arrays are refused: as plain arrays their arithmetic would mean something
    else (``*`` is a matrix product, masked entries would count)."""
    if type(x) is np.ndarray:
        return x
    if isinstance(x, np.matrix):
        raise TypeError(f"{what} is an np.matrix, whose * is a matrix product; pass "
                        "np.asarray(m) and write @ for matrix products in f")
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{what} is a masked array, which shadowad cannot differentiate "
                        "(masked entries would count); pass m.filled(value) or "
                        "m.compressed()")
    return x.view(np.ndarray)


# The dtypes shadowad differentiates: float64, and float32 (docs/float32.md).
FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _check_float_array(x, what):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a float64 or float32 numpy array, got "
                        f"{type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        hint = " (convert with x.astype(float))" if x.dtype.kind in "biuf" else ""
        raise TypeError(f"{what} must have dtype float64 or float32, got {x.dtype}{hint}")
    if not x.flags.aligned:
        raise ValueError(f"{what} is not aligned in memory (a view of a buffer at an odd "
                         "offset); pass an aligned copy, np.array(x), and copy the result "
                         "back if you need it in place")


# Types of values that belong to a running differentiation (traced arrays and
# scalars, values of nested calls): shadowad.engines.nested.engine fills this, and annotations
# accept such values as they are, for a call nested inside that differentiation.
NESTABLE = set()


def _nested_pair(cls, val, dval):
    """(val, dval) of a Duplicated where one is a value of a running
    differentiation: plain parts checked as usual, shapes congruent."""
    if isinstance(val, np.ndarray):
        val = plain_array(val, f"{cls} primal")
    if isinstance(dval, np.ndarray):
        dval = plain_array(dval, f"{cls} shadow")
    for x, what in ((val, "primal"), (dval, "shadow")):
        if isinstance(x, np.ndarray):
            _check_float_array(x, f"{cls} {what}")
        elif type(x) not in NESTABLE and not is_real_scalar(x):
            raise TypeError(f"{cls} takes a float64 or float32 array or a float, got "
                            f"{type(x).__name__} as its {what}")
    vs, ds = getattr(val, "shape", ()), getattr(dval, "shape", ())
    if vs != ds:
        raise ValueError(f"{cls}: shadow has shape {ds}, primal has shape {vs}; they "
                         "must be congruent")
    if dval is val:
        raise ValueError(f"{cls}: the shadow must not be the primal itself")
    return (float(val) if is_real_scalar(val) else val,
            float(dval) if is_real_scalar(dval) else dval)


def is_real_scalar(x):
    if type(x) is float:  # the common case, first
        return True
    return isinstance(x, Real) and not isinstance(x, bool) or (
        isinstance(x, np.generic) and np.issubdtype(type(x), np.floating))


def _active_value(val):
    if isinstance(val, np.ndarray):
        val = plain_array(val, "Active array")
        _check_float_array(val, "Active array")
    elif is_real_scalar(val):
        val = float(val)
    elif type(val) not in NESTABLE:  # (a value of a running differentiation: shadowad.engines.nested.engine)
        raise TypeError("Active takes a float or a float64 or float32 array, got "
                        f"{type(val).__name__}")
    return val


def _duplicated_pair(cls, val, dval):
    """(val, dval) of a Duplicated-like annotation named ``cls``, checked
    and normalised (a real scalar becomes a float)."""
    if type(val) is float and type(dval) is float:  # a scalar seed: nothing to check
        return val, dval
    if type(val) in NESTABLE or type(dval) in NESTABLE:  # nested differentiation
        return _nested_pair(cls, val, dval)
    if is_vector(val):
        if not is_vector(dval):
            raise TypeError(f"{cls}: the shadow of a Vector must be a Vector, "
                            f"got {type(dval).__name__}")
        if len(dval) != len(val):
            raise ValueError(f"{cls}: shadow Vector has length {len(dval)}, primal has "
                             f"length {len(val)}; a Vector and its shadow must have the "
                             "same length when autodiff is called (push to or pop from "
                             "both)")
        if dval is val:
            raise ValueError(f"{cls}: the shadow must not be the primal itself")
    elif isinstance(val, np.ndarray):
        val = plain_array(val, f"{cls} primal")
        if isinstance(dval, np.ndarray):
            dval = plain_array(dval, f"{cls} shadow")
        _check_float_array(val, f"{cls} primal")
        _check_float_array(dval, f"{cls} shadow")
        if dval.dtype != val.dtype:
            raise TypeError(f"{cls}: shadow has dtype {dval.dtype}, primal has dtype "
                            f"{val.dtype}; give the shadow the primal's dtype, e.g. "
                            "np.zeros_like(x)")
        if dval.shape != val.shape:
            raise ValueError(f"{cls}: shadow has shape {dval.shape}, primal has "
                             f"shape {val.shape}; they must be congruent")
        if not dval.flags.writeable:
            raise ValueError(f"{cls}: the shadow must be writeable (gradients "
                             "are accumulated into it)")
        if shares_memory(val, dval):
            raise ValueError(f"{cls}: shadow shares memory with its primal; give it "
                             "memory of its own, e.g. np.zeros_like(x)")
    elif is_real_scalar(val):
        if not is_real_scalar(dval):
            raise TypeError(f"{cls}: the tangent of a float must be a float, "
                            f"got {type(dval).__name__}")
        val, dval = float(val), float(dval)
    elif type(val).__name__ == "TracedVector":
        raise TypeError(f"{cls}: this Vector belongs to the differentiation that is running "
                        "(it was made or passed in the function being differentiated), and a "
                        "Vector cannot be an argument of a nested autodiff call; pass its "
                        "values as an array (v[:]) and push the results back after the call")
    else:
        raise TypeError(f"{cls} takes a float64 or float32 array, a Vector or a float, "
                        f"got {type(val).__name__}")
    return val, dval


def _batch_lanes(val, dvals):
    """(val, dvals) of a BatchDuplicated, each lane checked as a Duplicated."""
    if not isinstance(dvals, (tuple, list)) or len(dvals) == 0:
        got = "an empty one" if isinstance(dvals, (tuple, list)) else type(dvals).__name__
        raise TypeError("BatchDuplicated takes a non-empty tuple of shadows "
                        f"(dx1, ..., dxk), one per lane; got {got}")
    checked = [_duplicated_pair(f"BatchDuplicated shadow {lane}", val, d)
               for lane, d in enumerate(dvals)]
    return checked[0][0], tuple(d for _, d in checked)


def check(ann):
    """Check annotation ``ann`` again, as when it was built: what it holds may
    have changed since (a Vector shadow popped, an array reshaped in place),
    so the drivers call this at the call."""
    t = type(ann)
    for name in ("val", "dval"):
        x = getattr(ann, name, None)
        if isinstance(x, np.ndarray) and type(x) is not np.ndarray:
            raise TypeError(f"{t.__name__}.{name} was set to a {type(x).__name__} after "
                            f"the annotation was built; build a new {t.__name__}(...), which "
                            "takes the plain array that views its memory")
    if t is Const:
        return
    if t is Active:
        _active_value(ann.val)
    elif t is Duplicated or t is DuplicatedNoNeed:
        _duplicated_pair(t.__name__, ann.val, ann.dval)
    elif t is BatchDuplicated:
        _batch_lanes(ann.val, ann.dvals)
    else:
        raise TypeError(f"unknown annotation {type(ann).__name__}; annotate arguments with "
                        "Const, Active, Duplicated, DuplicatedNoNeed or BatchDuplicated")


class Const:
    """An argument that is not differentiated.  It costs nothing: operations
    whose inputs are all constant are not recorded.  (Const memory that later
    receives an active value is given a hidden shadow so gradients stay right.)"""

    __slots__ = ("val",)

    def __init__(self, val):
        self.val = plain_array(val, "Const array") if isinstance(val, np.ndarray) else val

    def __repr__(self):
        return f"Const({self.val!r})"


class Active:
    """A float or float64 (or float32) array passed by value; its gradient is *returned* by
    reverse mode.  An Active array is read-only inside ``f`` (use Duplicated for
    memory that ``f`` writes)."""

    __slots__ = ("val",)

    def __init__(self, val):
        self.val = _active_value(val)

    def __repr__(self):
        return f"Active({self.val!r})"


class Duplicated:
    """Mutable memory ``val`` with its shadow ``dval`` of the same shape.

    Reverse mode *adds* the gradient to ``dval``: a shadow is turned from the
    adjoint of the value after the call into the adjoint of the value before
    the call; memory that ``f`` overwrote has its shadow consumed and zeroed.
    In forward mode ``dval`` is the tangent.  A float ``Duplicated(2.0, 1.0)``
    is a scalar with its tangent (forward mode only).
    """

    __slots__ = ("val", "dval")

    def __init__(self, val, dval):
        self.val, self.dval = _duplicated_pair(type(self).__name__, val, dval)

    def __repr__(self):
        return f"{type(self).__name__}({self.val!r}, {self.dval!r})"


class DuplicatedNoNeed(Duplicated):
    """Like Duplicated, for write-only outputs whose primal value the caller
    does not need."""

    __slots__ = ()


class BatchDuplicated:
    """Memory ``val`` with several shadows at once (vector mode)."""

    __slots__ = ("val", "dvals")

    def __init__(self, val, dvals):
        self.val, self.dvals = _batch_lanes(val, dvals)

    def __repr__(self):
        return f"BatchDuplicated({self.val!r}, {self.dvals!r})"


ANNOTATIONS = (Const, Active, Duplicated, BatchDuplicated)


def lane_count(annotated, mode_name):
    """1, or the common number of shadows of the BatchDuplicated arguments."""
    widths = {len(a.dvals) for a in annotated if type(a) is BatchDuplicated}
    if len(widths) > 1:
        raise ValueError(f"BatchDuplicated arguments have different numbers of shadows "
                         f"{sorted(widths)}; every argument of one call needs the same "
                         "number of lanes")
    if widths:
        for k, a in enumerate(annotated):
            if isinstance(a, Duplicated):
                raise TypeError(
                    f"argument {k}: Duplicated cannot be mixed with BatchDuplicated in "
                    f"{mode_name} (it has one shadow, the batch has {widths.pop()}); pass "
                    "BatchDuplicated(x, (dx1, ..., dxk)) with one shadow per lane")
        return widths.pop()
    return 1

