"""Traced arrays: what ``f`` receives and computes with.

``TArray`` is a numpy duck array: a primal view ``p`` plus the shadow view of
the same memory (``None`` while the memory is inactive), sharing a ``Buffer``
(buffers.py) with every other view of that memory.  ``ArrayOps`` is what the
arrays of both modes share.  This module registers ``TArray`` and the traced
scalar ``TScalar`` (scalar.py) with the C fast paths.

numpy reaches the derivative rules through ``__array_ufunc__`` and
``__array_function__``; the rule tables live in ``shadowad.engines.rules``.
"""
import numpy as np

from . import methods, snapshots
from ..._c import fast, lib
from ...support.memory import data
from ...primitives.core import generic_only_active
from .buffers import Buffer, promote, shadow_of, temporary_buffer
from .errors import ARRAY_CONVERSION, conversion_of, detach_error
from .interface import numpy_protocol
from .scalar import ScalarOps, TScalar
from .tape import Tape
from .untraced import F64
from .values import ARRAY_TYPES, SCALAR_TYPES, primal
from ..handlers import REVERSE

rules = REVERSE  # the rules' entry points (engines/handlers.py)


# --------------------------------------------------------------------------
# arrays

def is_basic_index(idx):
    """True when idx selects a view (ints, slices, Ellipsis, None)."""
    return _index_kind(idx) != _OTHER


_VIEW, _INTEGERS, _OTHER = 0, 1, 2


def _index_kind(idx):
    """_VIEW: a basic index with a slice, None or Ellipsis; _INTEGERS: only
    integers (an element, or a view of fewer axes); _OTHER: advanced."""
    t = type(idx)
    if t is tuple:
        kind = _INTEGERS
        for i in idx:
            ti = type(i)
            if ti is slice or i is None or i is Ellipsis:
                kind = _VIEW
            elif not (ti is int or isinstance(i, np.integer)):
                return _OTHER
        return kind
    if t is slice or idx is None or idx is Ellipsis:
        return _VIEW
    if t is int or isinstance(idx, np.integer):
        return _INTEGERS
    return _OTHER


def _element_offsets(a, idx):
    """Byte offsets (primal, shadow) of element idx when idx names one
    element of ``a`` exactly, else None.  Raises IndexError like numpy."""
    p = a.p
    if type(idx) is int or isinstance(idx, np.integer):
        if p.ndim != 1:
            return None
        idx = (int(idx),)
    elif type(idx) is tuple and len(idx) == p.ndim:  # () names the element of a 0-d array
        for i in idx:
            if not (type(i) is int or isinstance(i, np.integer)):
                return None
    else:
        return None
    shape, st = p.shape, p.strides
    off = 0
    norm = []
    for d, i in enumerate(idx):
        i = int(i)
        n = shape[d]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {idx[d]} is out of bounds for axis {d} with size {n}")
        off += i * st[d]
        norm.append(i)
    return off, norm


def _writes_back(p, idx, v):
    """True for Python's write-back after ``y[idx] op= x``: ``y[idx] = v`` where
    v already is that very view, updated in place (and recorded) by the op."""
    same = _c_writes_back(p, idx, v)  # the plain indexes, in C
    if same is not None:
        return same
    if _index_kind(idx) == _OTHER:
        return False
    w = p[idx]
    return (type(w) is np.ndarray and w.shape == v.shape and w.strides == v.strides
            and data(w) == data(v))


_load_element, _store_element = fast.load, fast.store
_load = fast.load_at
_view, _c_writes_back = fast.view, fast.writes_back  # csrc/ext/index.c
_rev_out = fast.rev_out
_outer, _np_outer = fast.outer, np.outer  # csrc/ext/reverse.c: TArray.__array_function__
_ADD, _SUB, _MUL, _DIV = lib.SAD_ADD, lib.SAD_SUB, lib.SAD_MUL, lib.SAD_DIV


# ndarray's ``x ** k`` for these k is another ufunc (numpy's fast_scalar_power),
# whose values np.power does not always give (numpy 2.2: x ** 0.5 is sqrt, and
# np.power(x, 0.5) differs in the last bit)
_FAST_POWERS = {2.0: np.square, 0.5: np.sqrt, -1.0: np.reciprocal}


def _fast_power(o):
    t = type(o)
    if t is int or t is float or t is np.float64 or t is np.int64:
        return _FAST_POWERS.get(float(o))
    return None


class ArrayOps(fast.ArrayBase):
    """What traced arrays of both modes share: ndarray's attributes, operators
    and methods, expressed through ``self._u`` (a ufunc) and numpy functions."""

    __slots__ = ()  # p, _s and buf: fields of the C base (csrc/ext/bases.c)
    __array_priority__ = 1000

    def __init__(self, p, s, buf):
        self.p, self._s, self.buf = p, s, buf

    def __repr__(self):
        act = "active" if shadow_of(self) is not None else "inactive"
        return f"{type(self).__name__}({self.p!r}, {act})"

    def __array__(self, dtype=None, copy=None):
        raise conversion_of(self, ARRAY_CONVERSION, "np.asarray")

    def __float__(self):
        raise conversion_of(self, "float() of a traced array", "float()")

    def __int__(self):
        raise conversion_of(self, "int() of a traced array", "int()")

    def __index__(self):
        raise conversion_of(self, "using a traced array as an index", "operator.index()")

    # -- attributes --------------------------------------------------------
    shape = property(lambda self: self.p.shape)
    ndim = property(lambda self: self.p.ndim)
    size = property(lambda self: self.p.size)
    dtype = property(lambda self: self.p.dtype)
    strides = property(lambda self: self.p.strides)
    nbytes = property(lambda self: self.p.nbytes)

    def __len__(self):
        return len(self.p)

    def __bool__(self):
        return bool(self.p)

    def __iter__(self):
        for i in range(len(self.p)):
            yield self[i]

    # -- operators -------------------------------------------------------------
    def __add__(self, o): return self._u(np.add, self, o)
    def __radd__(self, o): return self._u(np.add, o, self)
    def __sub__(self, o): return self._u(np.subtract, self, o)
    def __rsub__(self, o): return self._u(np.subtract, o, self)
    def __mul__(self, o): return self._u(np.multiply, self, o)
    def __rmul__(self, o): return self._u(np.multiply, o, self)
    def __truediv__(self, o): return self._u(np.divide, self, o)
    def __rtruediv__(self, o): return self._u(np.divide, o, self)
    def __pow__(self, o):
        fast = _fast_power(o)
        return self._u(np.power, self, o) if fast is None else self._u(fast, self)
    def __rpow__(self, o): return self._u(np.power, o, self)
    def __neg__(self): return self._u(np.negative, self)
    def __pos__(self): return self
    def __abs__(self): return self._u(np.absolute, self)

    def __iadd__(self, o): return self._u(np.add, self, o, out=self)
    def __isub__(self, o): return self._u(np.subtract, self, o, out=self)
    def __imul__(self, o): return self._u(np.multiply, self, o, out=self)
    def __itruediv__(self, o): return self._u(np.divide, self, o, out=self)
    def __ipow__(self, o):
        fast = _fast_power(o)
        return self._u(np.power, self, o, out=self) if fast is None else self._u(fast, self, out=self)

    def __matmul__(self, o): return np.matmul(self, o)
    def __rmatmul__(self, o): return np.matmul(o, self)

    def __imatmul__(self, o):
        r = np.matmul(self, o)
        self[...] = r
        return self

    def __lt__(self, o): return self.p < primal(o)
    def __le__(self, o): return self.p <= primal(o)
    def __gt__(self, o): return self.p > primal(o)
    def __ge__(self, o): return self.p >= primal(o)
    def __eq__(self, o): return self.p == primal(o)
    def __ne__(self, o): return self.p != primal(o)
    __hash__ = None

    # -- methods that mirror ndarray's, through the numpy functions ------------
    @property
    def T(self):
        return np.transpose(self)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return np.reshape(self, shape, order=order)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return np.transpose(self, axes or None)

    def ravel(self, order="C"): return np.ravel(self, order=order)
    def flatten(self): return np.copy(np.ravel(self))
    def copy(self): return np.copy(self)
    def squeeze(self, axis=None): return np.squeeze(self, axis=axis)
    def swapaxes(self, a, b): return np.swapaxes(self, a, b)
    def diagonal(self, offset=0, axis1=0, axis2=1): return np.diagonal(self, offset, axis1, axis2)
    def trace(self, offset=0, axis1=0, axis2=1): return np.trace(self, offset, axis1, axis2)
    # same positional order as ndarray's methods, so x.sum(0, None, None, True) means the same
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
        if where is not True:
            return np.sum(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims, where=where)
        return np.sum(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, *, where=True):
        if where is not True:
            return np.mean(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims, where=where)
        return np.mean(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False):
        return np.prod(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        return np.max(self, axis=axis, out=out, keepdims=keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return np.min(self, axis=axis, out=out, keepdims=keepdims)

    def cumsum(self, axis=None, dtype=None, out=None):
        return np.cumsum(self, axis=axis, dtype=dtype, out=out)

    def dot(self, o): return np.dot(self, o)
    # ndarray's names: x.clip(min=0.0) as numpy users write it
    def clip(self, min=None, max=None, out=None, **kwargs):
        return np.clip(self, min, max, out=out, **kwargs)

    def argmax(self, axis=None, out=None, *, keepdims=False):
        return self.p.argmax(axis, out, keepdims=keepdims)

    def argmin(self, axis=None, out=None, *, keepdims=False):
        return self.p.argmin(axis, out, keepdims=keepdims)

    def argsort(self, axis=-1): return self.p.argsort(axis)

    def fill(self, value):
        self[...] = value

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        return methods.astype(self, dtype, copy, "a traced array")

    def item(self, *args):
        raise detach_error("item() of a traced array")

    def tolist(self):
        raise detach_error("tolist() of a traced array")


# ndarray.reshape and .transpose take their axes as varargs too, unlike the
# numpy functions complete_ndarray_interface would call
ScalarOps.reshape, ScalarOps.transpose = ArrayOps.reshape, ArrayOps.transpose


class TArray(ArrayOps):
    """A traced float64 array inside ``f``: behaves like a numpy array."""

    __slots__ = ()
    # the shadow view ``_s`` is a cache, set on first use (possibly after the
    # tape's accounting walked the array): its memory is counted with the
    # Buffer, and accounting leaves the view out (accounting.held_bytes)
    ACCOUNTING_SKIPS = "_s"

    # -- numpy protocol: the reverse rules ---------------------------------
    __array_ufunc__, _array_function, _u = numpy_protocol(rules)

    def __array_function__(self, func, types, args, kwargs):
        # np.outer of two vectors, an LU's rank-1 update, goes straight to its
        # C record (csrc/ext/reverse.c), without the rule's Python; every case
        # it leaves (NotImplemented) takes the rule (a specialisation of the
        # outer primitive: shadowad/engines/rules/linalg.py)
        if func is _np_outer and len(args) == 2 and not kwargs and not generic_only_active():
            r = _outer(args[0], args[1], rules.outer_by_numpy)
            if r is not NotImplemented:
                return r
        return self._array_function(func, types, args, kwargs)

    # x op= y goes straight to the C fast path that apply_ufunc would call
    # first (csrc/ext/reverse.c), two Python calls fewer; every case it leaves
    # (NotImplemented) takes the general path.
    def __iadd__(self, o):
        r = _rev_out(self, np.add, _ADD, self, o)
        return self._u(np.add, self, o, out=self) if r is NotImplemented else r

    def __isub__(self, o):
        r = _rev_out(self, np.subtract, _SUB, self, o)
        return self._u(np.subtract, self, o, out=self) if r is NotImplemented else r

    def __imul__(self, o):
        r = _rev_out(self, np.multiply, _MUL, self, o)
        return self._u(np.multiply, self, o, out=self) if r is NotImplemented else r

    def __itruediv__(self, o):
        r = _rev_out(self, np.divide, _DIV, self, o)
        return self._u(np.divide, self, o, out=self) if r is NotImplemented else r

    # -- indexing ------------------------------------------------------------
    def __getitem__(self, idx):
        t = type(idx)
        if self.p.dtype is not F64:  # float32: a view, else the take primitive's generic rule
            if t is TArray or t is TScalar:
                raise detach_error("indexing with a traced value")
            kind = _index_kind(idx)
            if kind == _VIEW or (kind == _INTEGERS and _element_offsets(self, idx) is None):
                return self._basic_view(idx)
            return rules.gather(self, idx)  # an element is a copy, as numpy's np.float32
        if t is int or t is tuple:  # an element of an active array (x[i], A[i, j]): in C
            s = self._s
            if s is None and self.buf.slot is None:  # (a lazy shadow stays lazy for views)
                s = shadow_of(self)
                if s is None and t is int and self.p.ndim == 1:
                    return np.float64(self.p.item(idx))  # numpy's scalar: see SCALAR_UFUNCS
            if s is not None:
                r = _load_element(self.p, s, idx, self.buf.tape)
                if r is not NotImplemented:
                    return r
        r = _view(self, idx)  # a basic view, in C
        if r is not NotImplemented:
            return r
        if t is TArray or t is TScalar:
            raise detach_error("indexing with a traced value")
        kind = _index_kind(idx)
        el = _element_offsets(self, idx) if kind == _INTEGERS else None
        if el is not None:
            v = self.p.item(*el[1])
            s = shadow_of(self)
            if s is None:
                return np.float64(v)
            off = 0
            for i, st in zip(el[1], s.strides):
                off += i * st
            tape = self.buf.tape
            return fast.scalar(v, _load(tape, s, off, v), tape)
        if kind != _OTHER:
            return self._basic_view(idx)
        return rules.gather(self, idx)

    def _basic_view(self, idx):
        if self.buf.slot is not None:  # lazy: the view finds its shadow later
            return TArray(self.p[idx], None, self.buf)
        s = shadow_of(self)
        return TArray(self.p[idx], None if s is None else s[idx], self.buf)

    def __setitem__(self, idx, value):
        if type(idx) is int and type(value) is TScalar and self.p.dtype is F64:  # y[i] = t, the fast path
            p, buf = self.p, self.buf
            if p.ndim == 1 and value.tape is buf.tape and not buf.readonly:
                n = p.shape[0]
                i = idx + n if idx < 0 else idx
                if 0 <= i < n and p.flags.writeable:
                    if not buf.kept:
                        buf.pin()
                    s = self._s
                    if s is None:
                        s = promote(self)
                    _store_element(p, s, i, value)
                    return
        if type(value) is TArray and value.buf is self.buf and _writes_back(self.p, idx, value.p):
            return
        rules.setindex(self, idx, value)


# --------------------------------------------------------------------------
# fresh traced arrays

def new_array(tape, z, active):
    """Wrap a freshly computed float64 (or float32) array as a traced temporary."""
    if active:
        return new_temporary(tape, z, np.zeros(z.shape, z.dtype))
    return TArray(z, None, temporary_buffer(tape, z, None))


LAZY_MIN = 1 << 15  # bytes: smaller temporaries get their shadow right away
_SLOTS_FULL = lib.SAD_SLOTS_FULL


def new_lazy(tape, z):
    """An active temporary whose shadow the C tape allocates only when the
    reverse sweep first needs it, and releases once the temporary's record is
    swept (csrc/core/slot.c).  Python code that needs the shadow as an array calls
    shadow_of, which gives the slot numpy memory instead (materialize)."""
    k = fast.slot_new(tape, z)
    if k == _SLOTS_FULL:  # as many lazy shadows as the tape may make: an eager one
        return new_temporary(tape, z, np.zeros(z.shape, z.dtype))
    if k <= 0:
        raise tape.out_of_memory("a lazy shadow", "shadowad: out of memory while recording")
    buf = temporary_buffer(tape, z, None)
    buf.slot = k
    return TArray(z, None, buf)


LAZY_MAXDIM = 4  # SAD_MAXDIM: the C records address at most this many dimensions


def lazy_result(tape, z):
    """numpy's result z of a Python record as an active temporary: when large,
    its shadow is lazy (see new_lazy), so recording writes no zeros and the
    memory exists only from the first record that adds into it until this
    record's pullback (see output_pullback) has read it."""
    if z.nbytes >= LAZY_MIN and z.flags.c_contiguous and z.ndim <= LAZY_MAXDIM:
        return new_lazy(tape, z)
    return new_array(tape, z, True)


def new_temporary(tape, z, zs):
    """An active temporary with zero shadow zs.  The tape keeps the shadow
    (records accumulate into it) but not the primal (see Buffer.pin)."""
    tape.shadows.append(zs)
    return TArray(z, zs, temporary_buffer(tape, z, zs))


ARRAY_TYPES.add(TArray)
SCALAR_TYPES.add(TScalar)
snapshots.TRACED.update((TArray, TScalar))

# The reverse fast paths (csrc/ext/reverse.c, index.c) meet these classes
# exactly and read their fields as members of the C bases; lazy_result makes
# a fast path's result, whose record is in C.
def _numpy_error_state():
    """(numpy's error-state context variable, its value now) when numpy only
    warns about floating-point errors now, else (None, None).  An in-place
    record may then share an earlier save (csrc tape.c sad_tape_save_covered):
    the C fast path checks the state is still that one on every call, since
    a ufunc that raises after writing its output could not be undone."""
    try:
        from numpy._core import umath
        var = umath._extobj_contextvar
    except (ImportError, AttributeError):  # pragma: no cover - numpy 1.x
        return None, None
    if any(mode in ("raise", "call") for mode in np.geterr().values()):
        return None, None
    return var, var.get()


# what the C fast paths know of the reverse-mode types (csrc/ext/reverse.c)
fast.register_reverse(TArray, TScalar, Buffer, Tape, lazy_result, snapshots.hold,
                      *_numpy_error_state())
