"""sad.Vector: a growable float64 vector in C memory.

Outside ``f`` it is a plain container.  Inside ``f`` (and for Vector arguments)
the operations are recorded: push's pullback pops and accumulates the popped
shadow into the pushed value's adjoint; pop's pullback pushes back.
"""
import numpy as np

from .._c import fast, ffi, lib
from ..engines.reverse.tape import current_tape
from ..engines.reverse.buffers import shadow_of
from ..engines.reverse.errors import detach_error, mixed_tapes_error
from ..engines.reverse.scalar import TScalar, real_value
from ..engines.reverse.traced import TArray, new_array
from ..engines.reverse.untraced import F64
from ..engines.nested.box import level_var


def _new_cvec(cap=8):
    ptr = lib.sad_vec_new(cap)
    if ptr == ffi.NULL:
        raise MemoryError("shadowad: cannot allocate a Vector")
    return ffi.gc(ptr, lib.sad_vec_free)


def _address(cvec):
    """The address of C vector cvec (a cffi pointer; NULL: None), as the
    extension's vector functions take it; the Vector holding cvec holds it."""
    return None if cvec == ffi.NULL else int(ffi.cast("uintptr_t", cvec))


def _float_array(x, what):
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{what}: expected real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=F64)
    if a.ndim != 1:
        raise ValueError(f"{what}: expected a scalar or a 1-D array, got shape {a.shape}")
    return a


def _widened(x):
    """A float32 traced value as the float64 the Vector holds: the recorded
    cast (its adjoint is cast back); a 0-d one becomes a traced scalar."""
    if type(x) is TArray and x.p.dtype != F64:
        return x.astype(F64)
    return x


def _index(i, n):
    if not (type(i) is int or isinstance(i, np.integer)):
        raise TypeError(f"Vector indices must be integers or slices, got {type(i).__name__}")
    j = int(i) + n if i < 0 else int(i)
    if not 0 <= j < n:
        raise IndexError(f"Vector index {i} out of range for length {n}")
    return j


class Vector:
    """A growable float64 vector backed by C memory.

    ``v.push(x)`` appends a scalar or the elements of a 1-D array, ``v.pop()``
    removes and returns the last element, ``len(v)``, ``v[i]``, ``v[i] = x``
    and ``v[:]`` (a copy of the contents as an ndarray) work as expected.
    Created inside ``f``, a Vector is recorded on that call's tape.
    """

    __slots__ = ("_cvec", "__weakref__")

    def __new__(cls, data=None):
        if level_var.get() > 0:  # inside a nested differentiation's function
            from ..engines.nested.vector import NestedVector
            return NestedVector(data)
        plain = object.__new__(cls)
        plain._cvec = _new_cvec()
        tape = current_tape()
        if tape is not None and tape.lanes:  # forward mode
            from ..engines.forward.dual import DualVector
            dv = DualVector(tape, plain, None, "a Vector created inside f")
            if data is not None:
                dv.push(data)
            return dv
        if tape is not None:
            tv = TracedVector(tape, plain, None, "a Vector created inside f")
            if data is not None:
                tv.push(data)
            return tv
        if data is not None:
            plain.push(data)
        return plain

    @classmethod
    def zeros(cls, n):
        """A plain Vector of ``n`` zeros (an inactive Vector's shadow, when it
        becomes active), whatever differentiation is running."""
        return zeros_vector(n)

    def __len__(self):
        return lib.sad_vec_len(self._cvec)

    def __sizeof__(self):
        return object.__sizeof__(self) + lib.sad_vec_nbytes(self._cvec)

    def push(self, x):
        if type(x) is TScalar or type(x) is TArray:
            raise detach_error("pushing a traced value into a Vector that is not an "
                               "argument of f (pass it as Duplicated or Const)")
        v = real_value(x)
        if v is not None:
            rc = lib.sad_vec_push(self._cvec, v)
        else:
            a = _float_array(x, "Vector.push")
            rc = fast.vec_extend(_address(self._cvec), a)
        if rc != lib.SAD_OK:
            raise MemoryError("shadowad: out of memory in Vector.push")

    def pop(self):
        if len(self) == 0:
            raise IndexError("pop from an empty Vector")
        return lib.sad_vec_pop(self._cvec)

    def _contents(self):
        n = len(self)
        out = np.empty(n)
        if n:
            ffi.memmove(ffi.from_buffer(out), lib.sad_vec_data(self._cvec), n * 8)
        return out

    def __getitem__(self, i):
        if type(i) is slice:
            return self._contents()[i]
        return lib.sad_vec_data(self._cvec)[_index(i, len(self))]

    def __setitem__(self, i, x):
        v = real_value(x)
        if v is None:
            raise TypeError(f"Vector elements are floats, got {type(x).__name__}")
        lib.sad_vec_data(self._cvec)[_index(i, len(self))] = v

    def __iter__(self):
        return iter(self._contents())

    def _reset(self, contents):
        """Make the contents exactly ``contents`` (a 1-D float64 array)."""
        a = np.ascontiguousarray(contents, dtype=F64)
        if lib.sad_vec_assign(self._cvec, ffi.from_buffer("double[]", a), a.size) != lib.SAD_OK:
            raise MemoryError("shadowad: out of memory for a Vector's contents")

    def __repr__(self):
        return f"Vector({self._contents().tolist()!r})"

    def __array__(self, dtype=None, copy=None):
        a = self._contents()
        return a if dtype is None else a.astype(dtype)


def elements(vec):
    """A copy of plain Vector ``vec``'s elements: a 1-D float64 array as long
    as it is."""
    return vec._contents()


def set_elements(vec, values):
    """Make plain Vector ``vec`` hold exactly ``values`` (a 1-D float64
    array): its length becomes theirs."""
    vec._reset(values)


def c_vectors(traced):
    """The C vectors of TracedVectors ``traced``' elements, as a C array (for
    sad_tape_vector_write)."""
    return ffi.new("sad_vec *[]", [t.v._cvec for t in traced])


def zeros_vector(n):
    z = object.__new__(Vector)
    z._cvec = _new_cvec(max(n, 8))
    if n:
        zeros = np.zeros(n)
        fast.vec_extend(_address(z._cvec), zeros)
    return z


class TracedVector:
    """A Vector inside ``f``: its primal Vector, its shadow Vector (None while
    inactive) and the tape its operations are recorded on."""

    __slots__ = ("tape", "v", "vs", "label")

    def __init__(self, tape, v, vs, label):
        self.tape, self.v, self.vs, self.label = tape, v, vs, label
        tape.keep.append(self)  # found there when adjoints are zeroed between sweeps
        tape.keep.append(v)
        if vs is not None:
            tape.keep.append(vs)

    def _promote(self):
        if self.vs is None:
            self.vs = zeros_vector(len(self.v))
            self.tape.keep.append(self.vs)
        return self.vs._cvec

    def promote(self):
        """Give the Vector its shadow (zeros) now, if it has none."""
        self._promote()

    def _shadow(self):
        return ffi.NULL if self.vs is None else self.vs._cvec

    def __len__(self):
        return len(self.v)

    def push(self, x):
        tape = self.tape
        x = _widened(x)
        if type(x) is TScalar:
            if x.tape is not tape:
                raise mixed_tapes_error()
            rc = lib.sad_vpush(tape.c, self.v._cvec, self._promote(), x.g, x.v)
        elif type(x) is TArray:
            if x.ndim != 1:
                raise ValueError(f"Vector.push: expected a scalar or a 1-D array, got shape {x.shape}")
            s = shadow_of(x)
            vs = self._shadow() if s is None else self._promote()
            rc = fast.vpusha(tape, _address(self.v._cvec), _address(vs), x.p, s)
        else:  # a constant (recorded even while inactive: the sweeps pop it again)
            v = real_value(x)
            if v is not None:
                rc = lib.sad_vpush(tape.c, self.v._cvec, self._shadow(), 0, v)
            else:
                a = _float_array(x, "Vector.push")
                tape.keep.append(a)
                rc = fast.vpusha(tape, _address(self.v._cvec), _address(self._shadow()), a, None)
        tape.check(rc, "Vector.push")

    def pop(self):
        if len(self.v) == 0:
            raise IndexError("pop from an empty Vector")
        out = ffi.new("double *")
        tape = self.tape
        g = lib.sad_vpop(tape.c, self.v._cvec, self._shadow(), out)
        if g == 0:
            raise tape.out_of_memory("Vector.pop", "shadowad: out of memory in Vector.pop")
        if self.vs is None:
            tape.grew(0, "Vector.pop")  # the record's C memory: a count, if due
            return out[0]
        return fast.scalar(out[0], g, tape)

    def __getitem__(self, i):
        if type(i) is slice:
            return self._copy()[i]
        j = _index(i, len(self.v))
        val = self.v[j]
        if self.vs is None:
            return val
        tape = self.tape
        return fast.scalar(val, lib.sad_vload(tape.c, self.vs._cvec, j, val), tape)

    def _copy(self):
        tape, n = self.tape, len(self.v)
        res = new_array(tape, np.empty(n), self.vs is not None)
        rc = fast.vcopy(tape, _address(self.v._cvec), _address(self._shadow()), res.p, res._s)
        tape.check(rc, "Vector[:]")
        return res

    def __setitem__(self, i, x):
        j = _index(i, len(self.v))
        tape = self.tape
        x = _widened(x)
        if type(x) is TScalar:
            if x.tape is not tape:
                raise mixed_tapes_error()
            rc = lib.sad_vstore(tape.c, self.v._cvec, self._promote(), j, x.g, x.v)
        else:
            v = real_value(x)
            if v is None:
                raise TypeError(f"Vector elements are floats, got {type(x).__name__}")
            rc = lib.sad_vstore(tape.c, self.v._cvec, self._shadow(), j, 0, v)
        tape.check(rc, "Vector[i] = x")

    def __iter__(self):
        for i in range(len(self.v)):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        raise detach_error("converting a traced Vector to a numpy array (use v[:])")

    def __repr__(self):
        return f"TracedVector({self.v._contents().tolist()!r})"
