"""Values of a nested differentiation, and how operations reach their rules.

When ``sad.autodiff`` is called while another differentiation is running, the
inner call cannot use the C engine: its inputs are values of the outer call
(``TArray``, ``FScalar``, ...), not raw float64 memory.  It runs on a *trace*
instead (``shadowad.engines.nested.trace``): every value the inner ``f`` computes with
is a ``Box`` -- the value one level down (plain, outer-traced, or a Box of an
enclosing nested call) plus what this level knows about its derivative.

A Box hands numpy's protocols, its operators and its item reads and writes
to the engine's handler table (shadowad/engines/handlers.py, bound by
shadowad.engines.nested.rules); every operation then goes through ``bind``:
it finds the innermost trace among the operands (the highest ``level``) and lets it apply the rule; Boxes
of enclosing traces are constants at that level and pass through as values,
so the rule's numpy code hands them to their own trace in turn.  This is how
JAX and autograd order their trace levels, and what keeps perturbations of
different levels apart.
"""
import contextvars

import numpy as np

from ...support.alternatives import no_rule_hint
from ..reverse import methods
from ..reverse.errors import DeferToNested, detach_error
from ..reverse.untraced import F64
from ..reverse.values import is_traced, primal
from ..handlers import NESTED

# The level of the innermost nested trace running in this context (0: none).
level_var = contextvars.ContextVar("shadowad_nested_level", default=0)
# ... and that trace itself (None: none), which owns the buffers made there
trace_var = contextvars.ContextVar("shadowad_nested_trace", default=None)


class Trace:
    """One nested autodiff call.  ``apply(rule, operands, params)`` computes an
    operation whose innermost operand is a Box of this trace: a Box of this
    trace gives its value and derivative, anything else is a constant here."""

    __slots__ = ("level", "alive", "parent")

    def __init__(self):
        self.level = level_var.get() + 1
        self.alive = True
        self.parent = trace_var.get()

    def below(self, fn, *args, **kwargs):
        """fn run on the values one level down, where the innermost running
        trace is the enclosing one: a buffer a formula makes there
        (np.zeros_like of such a value) belongs to that level, not to this."""
        token = trace_var.set(self.parent)
        try:
            return fn(*args, **kwargs)
        finally:
            trace_var.reset(token)

    def enter(self):
        return level_var.set(self.level), trace_var.set(self)

    @staticmethod
    def leave(tokens):
        level_var.reset(tokens[0])
        trace_var.reset(tokens[1])



class UnsupportedError(TypeError):
    pass


def unsupported(what):
    return UnsupportedError(
        f"shadowad: {what} is not supported inside a nested differentiation (an "
        "autodiff/jacobian call running inside a function that shadowad is "
        "differentiating); README's \"Supported numpy operations\" lists what is, and "
        "which engines lack an operation." + no_rule_hint(what.split("(")[0].strip()))


def bind(rule, operands, params):
    """Apply ``rule`` to ``operands`` (params are static: axes, indices,
    shapes): on plain values when no operand is a Box, else at the innermost
    trace among them."""
    top = None
    for a in operands:
        if type(a) is Box:
            tr = a.level_trace
            if top is None or tr.level > top.level:
                top = tr
    if top is None:
        return rule.impl(*operands, **params)
    if not top.alive:
        raise used_after_return_error()
    out = top.apply(rule, operands, params)
    view = rule.specialisations.get("nested view")
    if view is not None:  # numpy may give this result as a view of the operand
        view(out, operands[0], params)
    return out


def used_after_return_error():
    return RuntimeError("shadowad: a value of a nested autodiff call was used after "
                        "that call returned; values of a differentiation exist only "
                        "while its function runs")


def plain(x):
    """The plain numpy value under any number of levels (no derivative):
    for masks and comparisons."""
    while type(x) is Box:
        x = x.v
    return primal(x)


def shape_of(x):
    if type(x) is float:
        return ()
    return getattr(x, "shape", ())


# Operations reach the rules through the engine's handler table
# (shadowad/engines/handlers.py), which shadowad.engines.nested.rules binds.

def _op(ufunc):
    def method(self, *others):
        return NESTED.apply_ufunc(ufunc, (self,) + others, None)
    method.__name__ = ufunc.__name__
    return method


def _rop(ufunc):
    def method(self, other):
        return NESTED.apply_ufunc(ufunc, (other, self), None)
    method.__name__ = ufunc.__name__
    return method


def _inplace(ufunc):
    """``x op= y``: numpy's ufunc with out=x (a scalar gives a new value)."""
    def method(self, other):
        return NESTED.apply_ufunc(ufunc, (self, other), self)
    method.__name__ = ufunc.__name__
    return method


class Box:
    """A value inside a nested differentiation: ``v`` is the value one level
    down, ``d`` its tangent (forward trace) or node on the closure tape
    (reverse trace); ``d`` is None where the value is constant at this level."""

    # A write rebinds v and d (shadowad.engines.nested.writes), so every
    # reference to the Box sees it.  ``root`` is the Box whose memory this one
    # views (None: its own), ``pos`` the flat positions in the root's memory of
    # its elements (float64 integers, laid out as numpy would lay the memory
    # out), ``views`` weak references to the live views of a root, ``lock`` the
    # message refusing a write (an Active argument).
    __slots__ = ("level_trace", "v", "d", "root", "pos", "views", "lock", "__weakref__")
    __array_priority__ = 2000  # above TArray's: numpy asks a Box first

    def __init__(self, trace, v, d):
        self.level_trace, self.v, self.d = trace, v, d
        self.root = self.pos = self.views = self.lock = None

    def __repr__(self):
        kind = "constant" if self.d is None else type(self.level_trace).__name__
        return f"Box(level {self.level_trace.level}, {kind}, {plain(self)!r})"

    # -- numpy protocol ------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return NESTED.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return NESTED.array_function(func, args, kwargs)

    def __array__(self, dtype=None, copy=None):
        if not self.level_trace.alive:  # an escaped value: say so, not "would drop"
            raise used_after_return_error()
        # an operation of the enclosing differentiation's traced value with this
        # one as its right operand catches this and leaves the operation to us
        raise DeferToNested(
            "shadowad: converting a value of a nested differentiation to a plain numpy "
            "array would silently drop its derivative. Typical causes: writing it in "
            "place into a plain numpy buffer (np.zeros(n)) or into an array of the "
            "enclosing differentiation; allocate buffers the nested function writes "
            "with np.zeros_like(x) (x one of its values), or build arrays out of place")

    def _detach(self, what):
        raise TypeError(f"shadowad: {what} of a value of a nested differentiation "
                        "would silently drop its derivative; use it as an array/scalar, "
                        "or sad.autodiff's result outside the inner function")

    def __float__(self): self._detach("float()")
    def __int__(self): self._detach("int()")
    def __index__(self): self._detach("using as an index")
    def item(self, *args): self._detach(".item()")
    def tolist(self): self._detach(".tolist()")

    # -- attributes ----------------------------------------------------------
    shape = property(lambda self: shape_of(self.v))
    ndim = property(lambda self: len(shape_of(self.v)))
    size = property(lambda self: int(np.prod(shape_of(self.v))))
    dtype = F64

    def __len__(self):
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d value")
        return shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # comparisons give plain booleans (control flow works), as on traced values
    def __lt__(self, o): return plain(self) < plain(o)
    def __le__(self, o): return plain(self) <= plain(o)
    def __gt__(self, o): return plain(self) > plain(o)
    def __ge__(self, o): return plain(self) >= plain(o)
    def __eq__(self, o): return plain(self) == plain(o)
    def __ne__(self, o): return plain(self) != plain(o)
    __hash__ = None

    def __bool__(self):
        return bool(plain(self))

    # -- operators -----------------------------------------------------------
    __add__, __radd__ = _op(np.add), _rop(np.add)
    __sub__, __rsub__ = _op(np.subtract), _rop(np.subtract)
    __mul__, __rmul__ = _op(np.multiply), _rop(np.multiply)
    __truediv__, __rtruediv__ = _op(np.divide), _rop(np.divide)
    __pow__, __rpow__ = _op(np.power), _rop(np.power)
    __matmul__, __rmatmul__ = _op(np.matmul), _rop(np.matmul)
    __neg__, __abs__ = _op(np.negative), _op(np.absolute)

    def __pos__(self):
        return self

    __iadd__, __isub__ = _inplace(np.add), _inplace(np.subtract)
    __imul__, __itruediv__ = _inplace(np.multiply), _inplace(np.divide)
    __ipow__, __imatmul__ = _inplace(np.power), _inplace(np.matmul)

    def __getitem__(self, idx):
        return NESTED.gather(self, check_index(idx))

    def __setitem__(self, idx, value):
        NESTED.setindex(self, check_index(idx), value)

    def fill(self, value):
        NESTED.setindex(self, Ellipsis, value)

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        return methods.astype(self, dtype, copy, "a value of a nested differentiation")

    # -- methods -------------------------------------------------------------
    T = property(lambda self: np.transpose(self))

    def transpose(self, *axes):
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return np.transpose(self, axes or None)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return np.reshape(self, shape, order=order)

    def ravel(self, order="C"): return np.ravel(self, order)
    def flatten(self, order="C"): return np.copy(np.ravel(self, order))
    def copy(self, order="C"): return np.copy(self, order=order)
    # ndarray's positional order, so x.sum(0, None, None, True) means the same
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
        if where is not True:
            return np.sum(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims, where=where)
        return np.sum(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
        if where is not True:
            return np.mean(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims, where=where)
        return np.mean(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        return np.max(self, axis=axis, out=out, keepdims=keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return np.min(self, axis=axis, out=out, keepdims=keepdims)

    def dot(self, o): return np.dot(self, o)


def check_index(idx):
    """The index as the trace keeps it: integer and boolean arrays (and lists
    of them) copied, since f may change them before the backward pass reads
    them again; a Box index is refused (indices are not differentiable)."""
    if type(idx) is tuple:
        return tuple(_index_item(i) for i in idx)
    return _index_item(idx)


def _index_item(i):
    if i is None or i is Ellipsis or type(i) is slice:
        return i
    if isinstance(i, (int, np.integer)) and not isinstance(i, bool):
        return i
    if type(i) is Box:
        raise TypeError("shadowad: indexing with a value of a nested differentiation; "
                        "indices must be plain integers or boolean masks")
    if is_traced(i):
        raise detach_error("indexing with a traced value")
    a = np.array(i)
    if a.dtype.kind not in "biu" and a.size:
        raise IndexError("shadowad: only integers, slices, None, Ellipsis and integer or "
                         f"boolean arrays are valid indices, got {a.dtype}")
    return a if a.size else a.astype(np.intp)
