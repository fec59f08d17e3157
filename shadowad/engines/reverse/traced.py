"""Traced values: what ``f`` receives and computes with.

``TArray`` is a numpy duck array: a primal view ``p`` plus the shadow view of
the same memory (``None`` while the memory is inactive), sharing a ``Buffer``
with every other view of that memory.  ``TScalar`` is the lean scalar: a float
and the address of its {value, adjoint} pair in tape memory.

numpy reaches the derivative rules through ``__array_ufunc__`` and
``__array_function__``; the rule tables live in ``shadowad.engines.rules``.
"""
import operator

import numpy as np

from . import snapshots
from ..._c import fast, ffi, lib
from ...support.memory import bounds, data
from ...support.naming import library_caller
from ...primitives.core import generic_only_active
from .tape import Tape, current_tape, finished_error
from .untraced import F64
from ..handlers import REVERSE

_as_strided = np.lib.stride_tricks.as_strided

rules = REVERSE  # the rules' entry points (engines/handlers.py)


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
    return TypeError(
        f"shadowad: {func} has no derivative rule in shadowad, so it cannot be applied to "
        f"traced values: it converts its inputs to plain values (with {how}), which "
        "cannot carry a derivative. Take the value without derivative with sad.primal(x) "
        f"(e.g. {func}(sad.primal(x))), or write the computation with supported "
        "numpy operations")


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


TEMPORARY = "a temporary array"  # the label of a temporary's Buffer


class Buffer(fast.BufferBase):
    """Memory shared by views: the root primal array and its shadow (None while
    inactive).  Inactive memory that receives an active value is *promoted*: it
    gets a hidden zero shadow with the primal's exact layout.  ``span`` (byte
    bounds) covers more than the root when arguments alias each other.

    In forward mode (``tape.lanes`` > 0) the shadow is the tangent, with one
    leading axis of lanes: ``mem`` holds one row per lane, each laid out as the
    primal's bytes, so every view of the primal finds its tangent by offset."""

    # tape, root, shadow, readonly, label, mem, span, kept and slot are
    # fields of the C base (csrc/ext/bases.c), which the fast paths read
    __slots__ = ("lo",)

    def __init__(self, tape, root, shadow, readonly=False, label=TEMPORARY,
                 span=None, kept=True):
        self.tape, self.root, self.shadow = tape, root, shadow
        self.readonly, self.label, self.span = readonly, label, span
        self.mem = None
        self.slot = None  # a lazy shadow in the C tape (see new_lazy)
        self.kept = kept
        if kept:
            tape.keep.append(self)

    def pin(self):
        """Keep this memory alive for the tape's life.  A temporary's primal is
        not kept by default: most records never read it again (copies, sums,
        products by constants), and letting numpy reuse its memory avoids a page
        fault per 4 KiB.  Records that read values keep what they read;
        memory that is written in place or promoted is pinned."""
        if not self.kept:
            self.kept = True
            self.tape.keep.append(self)

    def promote(self):
        self.pin()
        root = self.root
        lo, hi = self.span or bounds(root)
        n = max((hi - lo) // 8, 1)
        lanes = self.tape.lanes
        self.attach(np.zeros((lanes, n) if lanes else n), lo)

    def attach(self, mem, lo):
        """Use ``mem`` (whose element 0 lies at primal byte address ``lo``) as
        the shadow memory of every view."""
        self.mem, self.lo = mem, lo
        self.shadow = self.view_shadow(self.root)

    def attach_fresh(self, tangent):
        """Attach the zero lanes ``tangent`` (shape (lanes,) + root.shape, C order)
        of a fresh C-contiguous root.  Most temporaries are never viewed, so the
        address arithmetic waits for the first view (view_shadow)."""
        self.shadow = tangent

    def view_shadow(self, p):
        """The shadow of primal view ``p`` of a promoted buffer."""
        mem = self.mem
        if mem is None and self.tape.lanes:  # attached fresh: the root's tangent
            t = self.shadow
            mem = self.mem = t.reshape(t.shape[0], -1)
            self.lo = data(self.root)
        off = data(p) - self.lo
        if mem.ndim == 1:
            return np.ndarray(p.shape, F64, mem, off, p.strides)
        return np.ndarray(mem.shape[:1] + p.shape, F64, mem, off, mem.strides[:1] + p.strides)


def temporary_buffer(tape, root, shadow):
    """Buffer(tape, root, shadow, kept=False) for a fresh temporary: made on
    every traced operation, so without the constructor's keyword handling.
    (Forward mode's C fast path builds the same, csrc/ext/forward.c dual_result.)"""
    b = _new_buffer(Buffer)
    b.tape, b.root, b.shadow = tape, root, shadow
    b.readonly, b.label, b.span = False, TEMPORARY, None
    b.mem = b.slot = None
    b.kept = False
    return b


_new_buffer = object.__new__


def shadow_of(a):
    """Shadow view of TArray ``a`` or None when its memory is inactive."""
    s = a._s
    if s is None:
        buf = a.buf
        if buf.slot is not None:
            materialize(buf)
        if buf.shadow is not None:
            s = a._s = buf.shadow if a.p is buf.root else buf.view_shadow(a.p)
    return s


def promote(a):
    """Make TArray ``a``'s memory active and return its shadow."""
    buf = a.buf
    if buf.shadow is None and buf.slot is None:
        buf.promote()
    return shadow_of(a)


def check_writable(a):
    buf = a.buf
    if not buf.kept:  # written in place: the records will swap bytes into it
        buf.pin()
    if buf.readonly:
        raise readonly_error(buf.label)
    if not a.p.flags.writeable:
        raise readonly_view_error(buf)


def readonly_view_error(buf):
    if not buf.root.flags.writeable:
        return ValueError(f"shadowad: cannot write to {buf.label}: it is a read-only array "
                          "(flags.writeable is False); pass a writable copy (np.array(x)) "
                          "if f writes to it")
    return ValueError(f"shadowad: cannot write to {buf.label}: this view of it is "
                      "read-only (numpy marks broadcast and diagonal views so)")


def new_array(tape, z, active):
    """Wrap a freshly computed float64 array as a traced temporary."""
    if active:
        return new_temporary(tape, z, np.zeros(z.shape))
    return TArray(z, None, temporary_buffer(tape, z, None))


LAZY_MIN = 1 << 15  # bytes: smaller temporaries get their shadow right away
_SLOTS_FULL = lib.SAD_SLOTS_FULL


def new_lazy(tape, z):
    """An active temporary whose shadow the C tape allocates only when the
    reverse sweep first needs it, and releases once the temporary's record is
    swept (csrc/core/slot.c).  Python code that needs the shadow as an array calls
    shadow_of, which gives the slot numpy memory instead (materialize)."""
    k = lib.sad_slot_new(tape.c, id(z))
    if k == _SLOTS_FULL:  # as many lazy shadows as the tape may make: an eager one
        return new_temporary(tape, z, np.zeros(z.shape))
    if k <= 0:
        raise MemoryError("shadowad: out of memory while recording")
    buf = temporary_buffer(tape, z, None)
    buf.slot = k
    return TArray(z, None, buf)


def materialize(buf):
    """Give a lazy shadow numpy memory now (zeros), shared with the C tape."""
    tape, root = buf.tape, buf.root
    zs = np.zeros(root.shape)
    lib.sad_slot_bind(tape.c, buf.slot, id(zs))
    tape.shadows.append(zs)
    buf.slot = None
    buf.mem, buf.lo, buf.shadow = zs.reshape(-1), data(root), zs


def _whole_view(p, root):
    """Does p view every element of C-contiguous ``root`` once: root itself,
    a reshape of it, or its axes permuted (swapaxes, .T)?"""
    if p.size != root.size or data(p) != data(root):
        return False
    if p.flags.c_contiguous:
        return True
    step = F64.itemsize
    for stride, n in sorted(zip(p.strides, p.shape)):
        if n > 1:
            if stride != step:
                return False
            step *= n
    return True


def adjoint_for_pullback(a):
    """(adjoint view of TArray ``a``, fresh) for a Python pullback adding into
    it during the sweep.  A lazy shadow the sweep has not needed yet gets numpy
    memory only now; ``fresh`` then says that a's view is all of it and
    uninitialised, to be stored into rather than added to (no zeroing pass).
    Memory the C sweep already allocated is viewed in place, for this pullback
    only (the sweep releases it once the temporary is dead)."""
    buf = a.buf
    if a._s is not None or buf.slot is None:
        return shadow_of(a), False
    tape, root = buf.tape, buf.root
    ptr = lib.sad_slot_memory(tape.c, buf.slot)
    if ptr:
        mem = np.frombuffer(ffi.buffer(ffi.cast("double *", ptr), root.nbytes), dtype=F64)
        off = data(a.p) - data(root)
        return np.ndarray(a.p.shape, F64, mem, off, a.p.strides), False
    whole = _whole_view(a.p, root)
    zs = np.empty(root.shape) if whole else np.zeros(root.shape)
    lib.sad_slot_bind(tape.c, buf.slot, id(zs))
    tape.shadows.append(zs)
    buf.slot = None
    buf.mem, buf.lo, buf.shadow = zs.reshape(-1), data(root), zs
    return shadow_of(a), whole


LAZY_MAXDIM = 4  # SAD_MAXDIM: the C records address at most this many dimensions


def lazy_result(tape, z):
    """numpy's result z of a Python record as an active temporary: when large,
    its shadow is lazy (see new_lazy), so recording writes no zeros and the
    memory exists only from the first record that adds into it until this
    record's pullback (see output_pullback) has read it."""
    if z.nbytes >= LAZY_MIN and z.flags.c_contiguous and z.ndim <= LAZY_MAXDIM:
        return new_lazy(tape, z)
    return new_array(tape, z, True)


def output_pullback(res, body):
    """The pullback of the Python record that made ``res`` (from lazy_result):
    ``body(g)`` with res's adjoint g, laid out as res.  A lazy adjoint that no
    record reached is zero, and body is skipped; memory the sweep allocated
    for it goes back to the tape once body has run (a later sweep of the same
    tape starts it from zero again).  Holds no reference to res's primal."""
    buf = res.buf
    if buf.slot is None:
        g = res._s
        return lambda: body(g)
    tape, slot, shape, nbytes = buf.tape, buf.slot, res.p.shape, res.p.nbytes

    def pullback():
        c = tape.c
        ptr = lib.sad_slot_memory(c, slot)
        if not ptr:
            return
        mem = ffi.buffer(ffi.cast("double *", ptr), nbytes)
        body(np.frombuffer(mem, dtype=F64).reshape(shape))
        lib.sad_slot_release(c, slot)
    return pullback


def new_temporary(tape, z, zs):
    """An active temporary with zero shadow zs.  The tape keeps the shadow
    (records accumulate into it) but not the primal (see Buffer.pin)."""
    tape.shadows.append(zs)
    return TArray(z, zs, temporary_buffer(tape, z, zs))


def adjoint_view(pair):
    """A writable 0-d ndarray over the adjoint of a scalar pair."""
    buf = ffi.buffer(ffi.cast("double *", pair) + 1, 8)
    return np.frombuffer(buf, dtype=F64).reshape(())


def new_scalar(tape, v):
    """A fresh active scalar of value v and a 0-d view of its adjoint."""
    g = lib.sad_pair_new(tape.c, v)
    if not g:
        raise MemoryError("shadowad: out of memory for a scalar")
    return TScalar(v, g, tape), adjoint_view(g)


# The traced array and scalar types of both modes (forward mode adds its own).
ARRAY_TYPES, SCALAR_TYPES = set(), set()


def primal(x):
    """The value of a traced value, without derivative (plain numbers and
    arrays pass through)."""
    t = type(x)
    if t in ARRAY_TYPES:
        return x.p
    if t in SCALAR_TYPES:
        return x.v
    return x


def read_only_primal(x):
    """sad.primal: the value of a traced value, without derivative.  An
    array comes as a read-only view of the traced memory: a write through it
    would change that memory behind the tape's back (no record to undo it,
    a gradient computed from values f never had), so it is refused."""
    p = primal(x)
    if p is not x and type(p) is np.ndarray:
        p = p.view()
        p.flags.writeable = False
    return p


def is_traced(x):
    t = type(x)
    return t in ARRAY_TYPES or t in SCALAR_TYPES


# --------------------------------------------------------------------------
# scalars

_s2 = lib.sad_s2
_load = lib.sad_load
_ADD, _SUB, _MUL, _DIV, _POW = lib.SAD_ADD, lib.SAD_SUB, lib.SAD_MUL, lib.SAD_DIV, lib.SAD_POW
_NEG, _ABS = lib.SAD_NEG, lib.SAD_ABS
_FUNCTIONS = {_ADD: operator.add, _SUB: operator.sub, _MUL: operator.mul,
              _DIV: operator.truediv, _POW: operator.pow}
# The ufuncs of ``np.float64(k) op t``: numpy's scalar does not give way to a
# traced scalar's reflected operator but calls the ufunc, so __array_ufunc__
# takes these straight to the operator's path.  Inactive values are
# np.float64, as numpy's are, not Python floats: under NEP 50 a Python float
# and an np.float32 compute in float32, an np.float64 and an np.float32 in
# float64 (rules.elementwise.inactive_scalar).
SCALAR_UFUNCS = {np.add: _ADD, np.subtract: _SUB, np.multiply: _MUL, np.true_divide: _DIV,
                 np.power: _POW}
# A traced scalar computes as an np.float64 does, whichever side a numpy
# scalar (np.float32 included) stands on: k * t and t * k agree.
NUMPY_REALS = (np.floating, np.integer)


def real_value(o):
    """o as a float if it is a plain real number, else None."""
    t = type(o)
    if t is float:
        return o
    if t is int or t is np.float64 or t is bool:
        return float(o)
    if isinstance(o, (np.floating, np.integer)) and getattr(o, "ndim", 0) == 0:
        return float(o)
    return None


class DeferToNested(TypeError):
    """Raised when a value of a nested differentiation (shadowad.engines.nested.engine) would
    be converted to an array.  Where a traced value of the enclosing
    differentiation meets it as the left operand of an operation, the traced
    value's method returns NotImplemented instead, and the nested value, one
    level in, does the operation.  Never for an in-place operation (out=),
    which must write the traced memory or fail."""


def ieee_arithmetic(fn, a, b):
    """Python float arithmetic, falling back to numpy's IEEE semantics (inf,
    nan and a warning instead of an exception), as on numpy scalars."""
    try:
        r = fn(a, b)
        if type(r) is complex:
            raise ValueError
        return r
    except (ZeroDivisionError, OverflowError, ValueError):
        return float(fn(np.float64(a), np.float64(b)))


def _call_of(t):
    """The call (reverse Tape, forward Context) a traced value belongs to."""
    if isinstance(t, ArrayOps):
        return t.buf.tape
    return t.tape if type(t) is TScalar else getattr(t, "ctx", None)


def conversion_of(t, what, how):
    """The error of converting traced value t to a plain one: a value whose
    call has finished is named as such (whatever the conversion), else
    conversion_error with the call's note on untraced constants."""
    call = _call_of(t)
    if getattr(call, "closed", False) or getattr(call, "state", None) == "freed":
        return finished_error()
    return conversion_error(what, how, getattr(call, "untraced_note", ""), depth=4)


class ScalarOps:
    """What traced scalars of both modes share: comparisons that give plain
    booleans (so control flow works), the refusals to detach, and the scalar
    attributes numpy asks for."""

    __slots__ = ()
    __array_priority__ = 500

    def __lt__(self, o): return self.v < primal(o)
    def __le__(self, o): return self.v <= primal(o)
    def __gt__(self, o): return self.v > primal(o)
    def __ge__(self, o): return self.v >= primal(o)
    def __eq__(self, o): return self.v == primal(o)
    def __ne__(self, o): return self.v != primal(o)
    __hash__ = None

    def __bool__(self):
        return bool(self.v)

    def __float__(self):  # numpy's ndarray.__setitem__ with a traced scalar lands here
        raise conversion_of(self, "float() of a traced scalar", "float()")

    def __int__(self):
        raise conversion_of(self, "int() of a traced scalar", "int()")

    def __index__(self):
        raise conversion_of(self, "using a traced scalar as an index", "operator.index()")

    def __array__(self, dtype=None, copy=None):
        raise conversion_of(self, "converting a traced scalar to a plain numpy array",
                            "np.asarray")

    def item(self, *args):
        raise detach_error("item() of a traced scalar")

    def tolist(self):
        raise detach_error("tolist() of a traced scalar")

    shape = ()
    ndim = 0
    size = 1
    dtype = F64


class TScalar(fast.ScalarBase, ScalarOps):
    """An active scalar inside ``f``: value ``v`` and pair address ``g``.

    ``+ - * / **``, unary ``-`` and ``abs`` of two traced scalars or of a
    traced scalar and a float or int run in C (``csrc/ext/scalar.c``), recorded
    straight onto the tape; the C code hands every other case to ``_slow``."""

    __slots__ = ()

    def _slow(self, op, o, reflected):
        if op == _NEG or op == _ABS:  # only for a freed tape: its error
            self.tape.c
            return NotImplemented
        return self._bin(o, op, _FUNCTIONS[op], reflected)

    def _bin(self, o, op, fn, reflected):
        k = real_value(o)
        if k is not None:
            if reflected:
                z = ieee_arithmetic(fn, k, self.v)
                return TScalar(z, _s2(self.tape.c, op, z, 0, k, self.g, self.v), self.tape)
            z = ieee_arithmetic(fn, self.v, k)
            return TScalar(z, _s2(self.tape.c, op, z, self.g, self.v, 0, k), self.tape)
        if type(o) is TScalar:
            if o.tape is not self.tape:
                raise mixed_tapes_error()
            if reflected:
                self, o = o, self
            z = ieee_arithmetic(fn, self.v, o.v)
            return TScalar(z, _s2(self.tape.c, op, z, self.g, self.v, o.g, o.v), self.tape)
        return NotImplemented

    def __repr__(self):
        return f"TScalar({self.v!r})"

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = SCALAR_UFUNCS.get(ufunc)
        if op is not None and not kwargs and len(inputs) == 2 and method == "__call__":
            a, b = inputs
            if b is self and isinstance(a, NUMPY_REALS):
                return _REFLECTED[op](self, a)  # the C fast path, as for a float
        return rules.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return rules.array_function(func, args, kwargs)


_REFLECTED = {_ADD: TScalar.__radd__, _SUB: TScalar.__rsub__, _MUL: TScalar.__rmul__,
              _DIV: TScalar.__rtruediv__, _POW: TScalar.__rpow__}


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
_view, _c_writes_back = fast.view, fast.writes_back  # csrc/ext/index.c
_rev_out = fast.rev_out
_outer, _np_outer = fast.outer, np.outer  # csrc/ext/reverse.c: TArray.__array_function__
_ADD, _SUB, _MUL, _DIV = lib.SAD_ADD, lib.SAD_SUB, lib.SAD_MUL, lib.SAD_DIV


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
    def __pow__(self, o): return self._u(np.power, self, o)
    def __rpow__(self, o): return self._u(np.power, o, self)
    def __neg__(self): return self._u(np.negative, self)
    def __pos__(self): return self
    def __abs__(self): return self._u(np.absolute, self)

    def __iadd__(self, o): return self._u(np.add, self, o, out=self)
    def __isub__(self, o): return self._u(np.subtract, self, o, out=self)
    def __imul__(self, o): return self._u(np.multiply, self, o, out=self)
    def __itruediv__(self, o): return self._u(np.divide, self, o, out=self)
    def __ipow__(self, o): return self._u(np.power, self, o, out=self)

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
    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return np.sum(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
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
    def clip(self, a_min=None, a_max=None): return np.clip(self, a_min, a_max)
    def argmax(self, axis=None): return self.p.argmax(axis)
    def argmin(self, axis=None): return self.p.argmin(axis)
    def argsort(self, axis=-1): return self.p.argsort(axis)

    def fill(self, value):
        self[...] = value

    def astype(self, dtype, copy=True):
        if np.dtype(dtype) != F64:
            raise detach_error(f"astype({np.dtype(dtype)}) of a traced array")
        return np.copy(self) if copy else self

    def item(self, *args):
        raise detach_error("item() of a traced array")

    def tolist(self):
        raise detach_error("tolist() of a traced array")


class NoRuleError(AttributeError, NotImplementedError):
    """An ndarray attribute that traced arrays do not have.  A NotImplementedError
    like every "no derivative rule" error, and an AttributeError so that
    ``hasattr`` stays False for code that duck-types on it."""


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


def no_rule_message(what):
    return (f"shadowad: {what} has no derivative rule in shadowad, so it cannot be "
            "applied to traced values. Take the value without derivative with "
            "sad.primal(x), or write the computation with supported operations")


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


def complete_ndarray_interface(cls, has_rule, message=no_rule_message):
    """Give ``cls`` every public ndarray attribute it lacks: the methods whose
    numpy function ``has_rule`` call it (not the in-place ones), the rest
    raise NoRuleError with ``message(what)``."""
    for name in dir(np.ndarray):
        if name.startswith("_") or hasattr(cls, name):
            continue
        func = getattr(np, name, None)
        method = callable(getattr(np.ndarray, name))
        if method and name not in IN_PLACE_METHODS and func is not None and has_rule(func):
            setattr(cls, name, _ByFunction(func))
        else:
            setattr(cls, name, _NoRule(name, method, message))


# ndarray.reshape and .transpose take their axes as varargs too, unlike the
# numpy functions complete_ndarray_interface would call
ScalarOps.reshape, ScalarOps.transpose = ArrayOps.reshape, ArrayOps.transpose


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


class TArray(ArrayOps):
    """A traced float64 array inside ``f``: behaves like a numpy array."""

    __slots__ = ()

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
            return TScalar(v, _load(tape.c, id(s), off, v), tape)
        if kind != _OTHER:
            if self.buf.slot is not None:  # lazy: the view finds its shadow later
                return TArray(self.p[idx], None, self.buf)
            s = shadow_of(self)
            return TArray(self.p[idx], None if s is None else s[idx], self.buf)
        return rules.gather(self, idx)

    def __setitem__(self, idx, value):
        if type(idx) is int and type(value) is TScalar:  # y[i] = t, the fast path
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
