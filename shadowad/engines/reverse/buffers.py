"""The shadow memory of traced arrays: ``Buffer``, the memory every view of
one root shares (the primal root and its shadow, promoted when inactive
memory receives an active value, or a lazy slot of the C tape until Python
needs it), and how a view finds, makes and reads its shadow.

Separate from the traced array type because forward mode's arrays and the
rules share this bookkeeping, which needs nothing of the array types.
"""
import numpy as np

from ..._c import fast, ffi, lib
from ...support.memory import bounds, data
from .errors import readonly_error, readonly_view_error


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
    # born: the tape's step_serial when it was made (a checkpointed loop's
    # step may write memory it made, not memory that existed before it)
    __slots__ = ("lo", "born")

    def __init__(self, tape, root, shadow, readonly=False, label=TEMPORARY,
                 span=None, kept=True):
        self.tape, self.root, self.shadow = tape, root, shadow
        self.born = tape.step_serial if tape is not None else 0
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
        n = max((hi - lo) // root.itemsize, 1)
        lanes = self.tape.lanes
        self.attach(np.zeros((lanes, n) if lanes else n, root.dtype), lo)
        attached(self)
        if not lanes:  # reverse mode: the tape holds the hidden shadow
            self.tape.grew(self.mem.nbytes, "a promoted shadow")

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
            return np.ndarray(p.shape, mem.dtype, mem, off, p.strides)
        return np.ndarray(mem.shape[:1] + p.shape, mem.dtype, mem, off,
                          mem.strides[:1] + p.strides)


def attached(buf):
    """Tell the tape's accounting what ``buf`` now holds: the tape may have
    walked buf before (shadowad/engines/reverse/accounting.py walks each object
    once), and a promoted shadow is memory only buf holds."""
    keep = buf.tape.keep
    keep.append(buf.mem)
    keep.append(buf.shadow)


def temporary_buffer(tape, root, shadow):
    """Buffer(tape, root, shadow, kept=False) for a fresh temporary: made on
    every traced operation, so without the constructor's keyword handling.
    (Forward mode's C fast path builds the same, csrc/ext/forward.c dual_result.)"""
    b = _new_buffer(Buffer)
    b.tape, b.root, b.shadow = tape, root, shadow
    b.readonly, b.label, b.span = False, TEMPORARY, None
    b.mem = b.slot = None
    b.kept = False
    b.born = tape.step_serial if tape is not None else 0  # (a constant's may have no tape)
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


class LazyView:
    """What a record keeps of an operand it does not read the values of, when
    the operand views a temporary whose shadow is a lazy slot: where it lies
    in the temporary's adjoint (the slot, shape, strides, byte offset), not
    the temporary's memory, which is then freed as soon as nothing else
    holds it (as the C records hold no temporary they do not read)."""

    __slots__ = ("tape", "slot", "root_shape", "dtype", "shape", "strides", "offset")

    def __init__(self, a):
        buf = a.buf
        root = buf.root
        self.tape, self.slot, self.root_shape, self.dtype = buf.tape, buf.slot, root.shape, root.dtype
        self.shape, self.strides, self.offset = a.p.shape, a.p.strides, data(a.p) - data(root)

    def adjoint(self):
        """(adjoint view, fresh), as adjoint_for_pullback."""
        whole = (self.offset == 0 and self.shape == self.root_shape
                 and self.strides == _c_strides(self.shape, self.dtype.itemsize))
        mem, fresh = _slot_adjoint(self.tape, self.slot, self.root_shape, self.dtype, whole)
        return np.ndarray(self.shape, self.dtype, mem, self.offset, self.strides), fresh


def _c_strides(shape, itemsize):
    out, step = [], itemsize
    for n in reversed(shape):
        out.append(step)
        step *= max(n, 1)
    return tuple(reversed(out))


def lazy_view(a):
    """A LazyView of TArray a when it views a temporary whose shadow is a lazy
    slot, else a."""
    if a._s is None and a.buf.slot is not None:
        return LazyView(a)
    return a


def materialize(buf):
    """Give a lazy shadow numpy memory now (zeros), shared with the C tape."""
    tape, root = buf.tape, buf.root
    zs = np.zeros(root.shape, root.dtype)
    tape.check(fast.slot_bind(tape, buf.slot, zs), "a lazy shadow")
    tape.shadows.append(zs)
    buf.slot = None
    buf.mem, buf.lo, buf.shadow = zs.reshape(-1), data(root), zs
    attached(buf)
    tape.grew(zs.nbytes, "a shadow")


def _whole_view(p, root):
    """Does p view every element of C-contiguous ``root`` once: root itself,
    a reshape of it, or its axes permuted (swapaxes, .T)?"""
    if p.size != root.size or data(p) != data(root):
        return False
    if p.flags.c_contiguous:
        return True
    step = root.itemsize
    for stride, n in sorted(zip(p.strides, p.shape)):
        if n > 1:
            if stride != step:
                return False
            step *= n
    return True


def _slot_memory(shape, dtype, ptr):
    """A lazy slot's memory at address ptr as a flat array of its elements."""
    n = int(np.prod(shape))
    return np.frombuffer(ffi.buffer(ffi.cast("char *", ptr), n * dtype.itemsize), dtype=dtype)


def _slot_adjoint(tape, slot, shape, dtype, whole):
    """(the memory of a temporary's lazy slot during the sweep, fresh): the
    memory the sweep gave it, or the tape's memory now (as the C sweep takes
    it), left uninitialised (``fresh``) when the caller's view is ``whole``,
    to be stored into rather than added to (no zeroing pass).  It is the
    tape's, released once the temporary's record is swept (output_pullback):
    view it for the pullback only."""
    n = int(np.prod(shape))
    ptr = lib.sad_slot_memory(tape.c, slot, n, dtype.itemsize)
    if ptr == lib.SAD_BAD_SLOT:
        tape.check(ptr, "a lazy shadow")
    fresh = False
    if not ptr:
        ptr = lib.sad_slot_alloc(tape.c, slot, n, dtype.itemsize, not whole)
        if ptr == lib.SAD_BAD_SLOT:
            tape.check(ptr, "a lazy shadow")
        if not ptr:
            raise tape.out_of_memory(
                "an adjoint in the reverse sweep",
                "shadowad: out of memory for an adjoint in the reverse sweep", where=False)
        fresh = whole
    return _slot_memory(shape, dtype, ptr), fresh


def adjoint_for_pullback(a):
    """(adjoint view of TArray ``a``, fresh) for a Python pullback adding into
    it during the sweep.  A lazy shadow the sweep has not needed yet gets the
    tape's memory only now; ``fresh`` then says that a's view is all of it and
    uninitialised, to be stored into rather than added to (no zeroing pass).
    Memory of a lazy slot is viewed in place, for this pullback only (the
    sweep releases it once the temporary is dead)."""
    if type(a) is LazyView:
        return a.adjoint()
    buf = a.buf
    if a._s is not None or buf.slot is None:
        return shadow_of(a), False
    root = buf.root
    mem, fresh = _slot_adjoint(buf.tape, buf.slot, root.shape, root.dtype, _whole_view(a.p, root))
    return np.ndarray(a.p.shape, root.dtype, mem, data(a.p) - data(root), a.p.strides), fresh


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
    tape, slot, shape, dtype, size = buf.tape, buf.slot, res.p.shape, res.p.dtype, res.p.size

    def pullback():
        c = tape.c
        ptr = lib.sad_slot_memory(c, slot, size, dtype.itemsize)
        if ptr == lib.SAD_BAD_SLOT:
            tape.check(ptr, "a lazy shadow")
        if not ptr:
            return
        body(_slot_memory(shape, dtype, ptr).reshape(shape))
        tape.check(lib.sad_slot_release(c, slot), "a lazy shadow")
    return pullback
