"""Forward mode: values that carry their tangents with them (no tape).

``FArray`` is the forward-mode twin of ``TArray``: a primal view ``p`` and
its tangent, which has one leading axis of *lanes* (one lane per tangent
direction: 1 for ``Duplicated``, k for ``BatchDuplicated``).  Views share a
``Buffer`` whose tangent memory holds one row per lane laid out like the
primal's bytes, so any view of the primal finds its tangent by offset.

``FScalar`` is a dual number: value ``v`` and tangent ``d`` (a float, or an
array with one entry per lane).  The rules live beside their reverse twins
in ``shadowad.engines.rules``; this module only holds the types.
"""
import math

import numpy as np

from ..._c import fast, lib
from ...support.memory import data
from ...support.products import finite_nonzero, times
from ..handlers import FORWARD
from ..reverse.tape import current_tape, finished_error  # noqa: F401  (current_tape: for the rules)
from ..reverse.buffers import Buffer, check_writable, promote, shadow_of, temporary_buffer
from ..reverse.errors import ARRAY_CONVERSION, conversion_of, mixed_tapes_error
from ..reverse.interface import numpy_protocol
from ..reverse.scalar import NUMPY_REALS, SCALAR_UFUNCS, ScalarOps, real_value, ieee_arithmetic
from ..reverse.traced import ArrayOps
from ..reverse.untraced import F64
from ..reverse.values import ARRAY_TYPES, SCALAR_TYPES

rules = FORWARD  # the forward rules' entry points (engines/handlers.py)


class Context(fast.ContextBase):
    """One forward-mode call: the number of lanes and the memory its values
    point into.  ``elementwise`` names the function ``sad.fwddiff`` runs, which
    may only use elementwise operations (None: anything goes).

    There is no tape to undo, so the memory of each argument is copied before
    f first writes to it: ``unsaved`` maps its Buffer (or Vector) to
    ``(take, is_shadow)`` pairs, ``take()`` copying now and returning the
    function that puts the copy back; ``restore()`` puts copies back.

    ``borrowed`` maps the Buffers of the inputs ``sad.fwddiff`` lends ``g``
    (memory of the reverse tape, never to be written from here, and lanes
    that are a read-only broadcast) to their dual arrays: the first write
    copies both (``own``), so g writes to copies of its own, as if it had
    been given them."""

    step_serial = 0  # no checkpointed steps in forward mode (a Buffer's ``born``: Tape)

    # lanes: a field of the C base (csrc/ext/bases.c), which the fast paths read
    __slots__ = ("keep", "elementwise", "unsaved", "saved", "borrowed", "untraced_note", "closed")

    def __init__(self, lanes, elementwise=None):
        self.lanes, self.elementwise = lanes, elementwise
        self.keep = []
        self.unsaved = {}
        self.saved = []
        self.borrowed = {}
        self.untraced_note = ""  # what a detach error says of untraced Consts (untraced.note)
        self.closed = False  # f has returned: its dual values are refused from then on

    def own(self, buf, a):
        """Before dual array ``a`` of borrowed Buffer ``buf`` is written: move
        buf (and the input's dual array, and a) onto copies of its memory and
        of its lanes, both C-ordered as the root is."""
        x = self.borrowed.pop(buf)
        old = buf.root
        root, lanes = old.copy(), np.array(buf.shadow)
        buf.root, buf.shadow, buf.mem = root, lanes, None  # mem and lo: from these
        if a is not x:  # a view of x's memory: the same view of the copy
            off = data(a.p) - data(old)
            a.p, a._s = np.ndarray(a.p.shape, root.dtype, root, off, a.p.strides), None
        x.p, x._s = root, lanes

    def snapshot(self, key):
        for take, is_shadow in self.unsaved.pop(key):
            self.saved.append((take(), is_shadow))

    def restore(self, shadows=True):
        """Put back every argument f wrote to as it was before the call (its
        primal only, when ``shadows`` is false)."""
        for put_back, is_shadow in reversed(self.saved):
            if shadows or not is_shadow:
                put_back()
        self.saved = []

    def close(self):
        """Drop the call's memory once f has returned: its Buffers point back
        here, and the cycle would hold it until the garbage collector runs."""
        self.keep = []
        self.unsaved = {}
        self.borrowed = {}
        self.closed = True


def is_dual(x):
    return type(x) is FArray or type(x) is FScalar


def new_array(ctx, z, active, zero=True):
    """Wrap a freshly computed float64 (or float32) array; an active one gets
    a zero tangent (``res._s``, of z's dtype) for the rule to fill.  Nothing is recorded, so the
    Context need not keep it: numpy may reuse its memory once it is dropped.
    ``zero=False``: the rule writes every lane of every element, so a
    C-ordered result's lanes are left uninitialised (a pass less)."""
    if ctx is None:  # a dual scalar kept from a finished call, with plain arrays
        raise finished_error()
    buf = temporary_buffer(ctx, z, None)
    if active:
        if z.flags.c_contiguous:
            lanes = (ctx.lanes,) + z.shape
            dt = z.dtype
            t = buf.shadow = np.zeros(lanes, dt) if zero else np.empty(lanes, dt)  # Buffer.attach_fresh
            return FArray(z, t, buf)
        buf.promote()
        return FArray(z, buf.shadow, buf)
    return FArray(z, None, buf)


def zero_tangent(ctx):
    return 0.0 if ctx is None or ctx.lanes == 1 else np.zeros(ctx.lanes)


def _scaled(d, p):
    """d * p, where a zero factor contributes nothing: a zero tangent through
    an infinite partial, a zero partial against an infinite tangent (as in the
    C kernels and the reverse sweep)."""
    return d * p if finite_nonzero(p) else times(d, p)


_ADD, _SUB, _MUL, _DIV, _POW = lib.SAD_ADD, lib.SAD_SUB, lib.SAD_MUL, lib.SAD_DIV, lib.SAD_POW
_UFUNCS = {_DIV: np.divide, _POW: np.power}
_partial = lib.sad_partial
_isfinite = math.isfinite


def scalar_op(op, fn, x, dx, y, dy, ctx):
    """z = fn(x, y) of plain floats with the tangent from the C partials (the
    fast specialisation of shadowad.primitives.elementwise, tested against
    it); dx or dy None marks a constant (y None: a unary op); the result is
    of Context ``ctx``."""
    if y is None:
        with np.errstate(all="ignore"):
            z = float(fn(x))
        return FScalar(z, _scaled(dx, _partial(op, 0, x, 0.0, z)), ctx)
    z = float(ieee_arithmetic(fn, x, y))  # a ufunc gives np.float64: values and tangents stay floats
    d = 0.0
    if dx is not None:
        d = _scaled(dx, _partial(op, 0, x, y, z))
    if dy is not None:
        d = d + _scaled(dy, _partial(op, 1, x, y, z))
    return FScalar(z, d, ctx)


def _quotient(x, dx, y, dy, ctx):
    """x / y of two dual scalars of one lane, as scalar_op computes it (the
    table's partials 1/y and -x/y², which these formulas are), where both
    partials are finite: the common case of scalar loops.  None: scalar_op's
    case.  tests/test_conformance_elementwise.py holds it to the table."""
    if type(x) is float and type(y) is float and type(dx) is float and type(dy) is float:
        yy = y * y
        if yy != 0.0:
            px, py = 1.0 / y, -x / yy
            if _isfinite(px) and _isfinite(py):
                d = dx * px + dy * py
                if d == d:  # else a zero partial met an infinite tangent
                    return FScalar(x / y, d, ctx)
    return None


class FScalar(fast.DualScalarBase, ScalarOps):
    """A dual number inside ``f`` in forward mode: value ``v``, tangent ``d``
    and the Context of its call, so that one kept from an earlier call is
    refused rather than mixed into this one's tangents."""

    __slots__ = ()  # v, d and ctx: fields of the C base (csrc/ext/bases.c)

    def __init__(self, v, d, ctx):
        self.v, self.d, self.ctx = v, d, ctx

    def _bin(self, o, op, fn, reflected):
        t = type(o)
        if t is FScalar:
            if o.ctx is not self.ctx:
                raise mixed_tapes_error()
            ov, od = o.v, o.d
        elif t is FArray:
            return self._with_array(o, _UFUNCS[op], reflected)
        else:
            ov, od = real_value(o), None
            if ov is None:
                return _other(o)
            if self.ctx.closed:
                raise finished_error()
        if reflected:
            return scalar_op(op, fn, ov, od, self.v, self.d, self.ctx)
        return scalar_op(op, fn, self.v, self.d, ov, od, self.ctx)

    def _with_array(self, o, ufunc, reflected):
        """self op o for a dual array o: the array's rule right away, without
        Python's round trip through NotImplemented (the common ``q * x``)."""
        if type(o) is not FArray:
            return _other(o)
        return o._u(ufunc, o, self) if reflected else o._u(ufunc, self, o)

    # + - * / are the hot path of scalar loops: exact, inlined
    def __add__(self, o):
        t = type(o)
        if t is FScalar:
            if o.ctx is not self.ctx:
                raise mixed_tapes_error()
            return FScalar(self.v + o.v, self.d + o.d, self.ctx)
        if t is float or real_value(o) is not None:
            if self.ctx.closed:
                raise finished_error()
            return FScalar(self.v + float(o), self.d, self.ctx)
        return self._with_array(o, np.add, False)

    __radd__ = __add__

    def __sub__(self, o):
        t = type(o)
        if t is FScalar:
            if o.ctx is not self.ctx:
                raise mixed_tapes_error()
            return FScalar(self.v - o.v, self.d - o.d, self.ctx)
        if t is float or real_value(o) is not None:
            if self.ctx.closed:
                raise finished_error()
            return FScalar(self.v - float(o), self.d, self.ctx)
        return self._with_array(o, np.subtract, False)

    def __rsub__(self, o):
        if type(o) is float or real_value(o) is not None:
            if self.ctx.closed:
                raise finished_error()
            return FScalar(float(o) - self.v, -self.d, self.ctx)
        return self._with_array(o, np.subtract, True)

    def __mul__(self, o):
        t = type(o)
        if t is FScalar:
            if o.ctx is not self.ctx:
                raise mixed_tapes_error()
            z = self.v * o.v
            if z != 0.0 and z - z == 0.0:  # finite nonzero partials: IEEE's products
                return FScalar(z, self.d * o.v + self.v * o.d, self.ctx)
            return FScalar(z, times(self.d, o.v) + times(self.v, o.d), self.ctx)
        if t is float or real_value(o) is not None:
            if self.ctx.closed:
                raise finished_error()
            k = float(o)
            return FScalar(self.v * k, self.d * k if finite_nonzero(k) else times(self.d, k),
                           self.ctx)
        return self._with_array(o, np.multiply, False)

    __rmul__ = __mul__

    def __truediv__(self, o):
        if type(o) is FScalar and o.ctx is self.ctx:
            q = _quotient(self.v, self.d, o.v, o.d, self.ctx)
            if q is not None:
                return q
        return self._bin(o, _DIV, _div, False)

    def __rtruediv__(self, o): return self._bin(o, _DIV, _div, True)
    def __pow__(self, o): return self._bin(o, _POW, _pow, False)
    def __rpow__(self, o): return self._bin(o, _POW, _pow, True)

    def __neg__(self):
        return FScalar(-self.v, -self.d, self.ctx)

    def __pos__(self):
        return self

    def __abs__(self):
        return scalar_op(lib.SAD_ABS, abs, self.v, self.d, None, None, self.ctx)

    def __repr__(self):
        return f"FScalar({self.v!r}, tangent={self.d!r})"

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = SCALAR_UFUNCS.get(ufunc)  # np.float64(k) op t: see scalar.SCALAR_UFUNCS
        if op is not None and not kwargs and len(inputs) == 2 and method == "__call__":
            a, b = inputs
            if b is self and isinstance(a, NUMPY_REALS):
                return _REFLECTED[op](self, a)
        return rules.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return rules.array_function(func, args, kwargs)


def _div(a, b):
    return a / b


def _other(o):
    """A dual scalar met an operand it cannot combine with: a traced value of
    a reverse-mode call can only be one kept from another call."""
    t = type(o)
    if (t in ARRAY_TYPES or t in SCALAR_TYPES) and t is not FArray:
        raise mixed_tapes_error()
    return NotImplemented


# np.float64(k) op t, by op code (FScalar.__array_ufunc__)
_REFLECTED = {lib.SAD_ADD: FScalar.__radd__, lib.SAD_SUB: FScalar.__rsub__,
              lib.SAD_MUL: FScalar.__rmul__, lib.SAD_DIV: FScalar.__rtruediv__,
              lib.SAD_POW: FScalar.__rpow__}


def _pow(a, b):
    return a ** b


def lane_values(d, lanes):
    """The tangent ``d`` of a scalar as one float per lane."""
    if type(d) is float or np.ndim(d) == 0:
        return (float(d),) * lanes
    return tuple(float(v) for v in d)


class FArray(ArrayOps):
    """A float64 (or float32) array with its tangent lanes (of its dtype),
    inside ``f`` in forward mode.  An element of a float32 array is a 0-d
    float32 FArray (the take primitive's), not a dual scalar, whose value and
    tangent are float64."""

    __slots__ = ()

    # the forward rules
    _ufunc_entry, _function_entry, _u = numpy_protocol(rules)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if self.buf.tape.closed:
            raise finished_error()
        return self._ufunc_entry(ufunc, method, *inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if self.buf.tape.closed:
            raise finished_error()
        return self._function_entry(func, types, args, kwargs)

    def __array__(self, dtype=None, copy=None):
        raise conversion_of(self, ARRAY_CONVERSION, "np.asarray")

    def __getitem__(self, idx):
        if self.buf.tape.closed:
            raise finished_error()
        p = self.p
        if (type(idx) is int and p.ndim == 1 and self.buf.tape.elementwise is None
                and p.dtype is F64):
            v = p.item(idx)  # x[i] of a vector: the scalar loop
            t = self._s if self._s is not None else shadow_of(self)
            if t is None:
                return np.float64(v)  # numpy's scalar type (scalar.SCALAR_UFUNCS)
            if t.shape[0] == 1:
                return FScalar(v, t.item(0, idx), self.buf.tape)
            return FScalar(v, t[:, idx].copy(), self.buf.tape)
        return rules.gather(self, idx)

    def __setitem__(self, idx, value):
        if self.buf.tape.closed:
            raise finished_error()
        p = self.p
        if (type(idx) is int and p.ndim == 1 and type(value) is FScalar
                and value.ctx is self.buf.tape and not self.buf.readonly and p.flags.writeable
                and self.buf.tape.elementwise is None):
            writable(self)
            t = self._s if self._s is not None else promote(self)
            p[idx] = value.v
            t[:, idx] = value.d
            return
        rules.setindex(self, idx, value)


ARRAY_TYPES.add(FArray)
SCALAR_TYPES.add(FScalar)


def writable(a):
    """Refuse writes to read-only memory, and keep the values of an argument's
    memory before its first write (so a failing f leaves no trace).  Memory
    lent to sad.fwddiff's g is copied first (Context.borrowed)."""
    buf = a.buf
    ctx = buf.tape
    if ctx.borrowed and buf in ctx.borrowed:
        ctx.own(buf, a)
    check_writable(a)
    if ctx.unsaved and buf in ctx.unsaved:
        ctx.snapshot(buf)


class DualVector:
    """A Vector inside ``f`` in forward mode: its primal Vector and one tangent
    Vector per lane (None while inactive); every operation does the same to
    the primal and to each lane."""

    __slots__ = ("ctx", "v", "vs", "label", "__weakref__")

    def __init__(self, ctx, v, vs, label):
        self.ctx, self.v, self.vs, self.label = ctx, v, vs, label

    def _write(self, x=None):
        if (type(x) is FScalar and x.ctx is not self.ctx) or (
                type(x) is FArray and x.buf.tape is not self.ctx):
            raise mixed_tapes_error()
        if self.ctx.unsaved and self in self.ctx.unsaved:
            self.ctx.snapshot(self)

    def _promote(self):
        if self.vs is None:
            self.vs = [type(self.v).zeros(len(self.v)) for _ in range(self.ctx.lanes)]
        return self.vs

    def __len__(self):
        return len(self.v)

    def push(self, x):
        if type(x) is FArray and x.p.dtype != F64:  # float32: the float64 the Vector holds
            x = x.astype(F64)
        self._write(x)
        if type(x) is FScalar:
            lanes = self._promote()
            self.v.push(x.v)
            for lane, d in zip(lanes, lane_values(x.d, self.ctx.lanes)):
                lane.push(d)
        elif type(x) is FArray:
            if x.ndim != 1:
                raise ValueError(f"Vector.push: expected a scalar or a 1-D array, got "
                                 f"shape {x.shape}")
            t = shadow_of(x)
            if t is not None:
                self._promote()
            self.v.push(x.p)
            for lane, vs in enumerate(self.vs or ()):
                vs.push(np.zeros(x.shape) if t is None else t[lane])
        else:
            n = len(self.v)
            self.v.push(x)
            for vs in self.vs or ():
                vs.push(np.zeros(len(self.v) - n))

    def pop(self):
        if len(self.v) == 0:
            raise IndexError("pop from an empty Vector")
        self._write()
        val = self.v.pop()
        if self.vs is None:
            return val
        ds = [vs.pop() for vs in self.vs]
        return FScalar(val, ds[0] if len(ds) == 1 else np.array(ds), self.ctx)

    def __getitem__(self, i):
        if type(i) is slice:
            p = self.v[:]
            res = new_array(self.ctx, p, self.vs is not None)
            for lane, vs in enumerate(self.vs or ()):
                res._s[lane] = vs[:]
            return res[i]
        val = self.v[i]
        if self.vs is None:
            return val
        ds = [vs[i] for vs in self.vs]
        return FScalar(val, ds[0] if len(ds) == 1 else np.array(ds), self.ctx)

    def __setitem__(self, i, x):
        if type(x) is FArray and x.p.dtype != F64:  # float32: the float64 the Vector holds
            x = x.astype(F64)
        self._write(x)
        if type(x) is FScalar:
            lanes = self._promote()
            self.v[i] = x.v
            for vs, d in zip(lanes, lane_values(x.d, self.ctx.lanes)):
                vs[i] = d
        else:
            self.v[i] = x
            for vs in self.vs or ():
                vs[i] = 0.0

    def __iter__(self):
        for i in range(len(self.v)):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        from ..reverse.errors import detach_error
        raise detach_error("converting a traced Vector to a numpy array (use v[:])")

    def __repr__(self):
        return f"DualVector({self.v[:].tolist()!r})"
