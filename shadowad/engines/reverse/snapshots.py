"""Plain arrays that records read: the tape holds snapshots of them.

A record whose reverse reads an operand's values (``x * w``, ``W @ x``, an
index array of a gather) reads them at sweep time.  Traced memory is safe:
every write to it is recorded and the sweep restores it first.  A plain
ndarray -- one ``f`` makes with ``np.ones``/``np.empty``, a global or a
closure, an index array, ``sad.primal(t)`` -- is not: a later write to it
never reaches the tape, and the sweep would read the new values.  So such a
record reads a snapshot instead.

One snapshot per distinct content: each tape keeps, per memory region, the
last snapshot taken of it, and a new use of the region compares its bytes
with that snapshot (memcmp) and reuses it when they are equal.  A constant
``W`` used by ``W @ x`` in every step of a loop costs one copy and a
comparison per step; a scratch buffer given new values each step costs one
copy per step, which the gradient needs.  Bytes, not values, are compared: a
NaN equals itself and -0.0 differs from 0.0.

A view that tiles its extent exactly (the array itself, ``W.T``, a reversed
or Fortran-ordered view) is held as a copy of that extent, shared by every
such view of the same memory; other views (a column ``A[:, k]``, a strided
slice) are copied compactly, in C order.  Broadcast axes (stride 0) stay
broadcast.  Regions are keyed by address: an address that numpy reuses for a
new array is compared like any other, so no reference to the user's array
is needed.
"""
import weakref

import numpy as np

from ..._c import fast, lib
from ...support.memory import data

_same_bytes, _copy_bytes, _same_elements = (lib.sad_same_bytes, lib.sad_copy_bytes,
                                            fast.same_elements)
_as_strided = np.lib.stride_tricks.as_strided


class Snapshots:
    """The snapshots one tape (or nested reverse trace) holds."""

    __slots__ = ("entries", "recent", "nbytes", "taken")

    RECENT = 8  # array objects remembered (see hold)

    def __init__(self):
        self.entries = {}  # region key -> [raw copy, its address, {layout: held view}]
        # id(array) -> (weak reference, shape, strides, dtype, lo, raw address, n, view, data)
        self.recent = {}
        self.nbytes = 0    # bytes of every snapshot taken (the records keep them)
        self.taken = 0     # how many snapshots were taken

    def hold(self, a):
        """What a record should read instead of plain ndarray ``a``: a
        read-only array of a's shape, dtype and bytes, which nothing
        writes while the tape lives.  The last few array objects held are
        remembered by weak reference (a strong one would make numpy refuse
        ``a.resize``): the same object again, with the same layout and data
        address (numpy lets shape, strides and dtype be set in place, and
        resize moves the data), costs one comparison of its bytes."""
        r = self.recent.get(id(a))
        if (r is not None and r[0]() is a and r[1] == a.shape and r[2] == a.strides
                and r[3] == a.dtype and r[8] == data(a) and _same_bytes(r[4], r[5], r[6])):
            return r[7]
        if a.size == 0:
            return a  # no values to read
        strides = a.strides
        if 0 in strides and any(st == 0 and n > 1 for n, st in zip(a.shape, strides)):
            return self._broadcast(a)
        ptr = data(a)
        flags = a.flags
        if flags.c_contiguous or flags.f_contiguous:
            return self._dense(a, ptr, a.nbytes, ptr)
        if _tiles(a.shape, strides, a.itemsize):
            lo = ptr
            for n, st in zip(a.shape, strides):
                if st < 0:
                    lo += (n - 1) * st
            return self._dense(a, lo, a.nbytes, ptr)
        return self._compact(a, ptr)

    def _dense(self, a, lo, n, ptr):
        """a (at address ptr) tiles the n bytes from lo: held as a view of
        their copy."""
        key = (lo, n)
        e = self.entries.get(key)
        if e is None or not _same_bytes(lo, e[1], n):
            raw = np.empty(-(-n // 8), np.float64)  # aligned for any numpy number type
            e = self.entries[key] = [self._frozen(raw), data(raw), {}]
            _copy_bytes(e[1], lo, n)
        layout = (ptr - lo, a.shape, a.strides, a.dtype)
        v = e[2].get(layout)
        if v is None:
            v = e[2][layout] = np.ndarray(a.shape, a.dtype, e[0], layout[0], a.strides)
        recent = self.recent
        if len(recent) >= self.RECENT:
            del recent[next(iter(recent))]
        recent[id(a)] = (weakref.ref(a), layout[1], layout[2], layout[3], lo, e[1], n, v, ptr)
        return v

    def _compact(self, a, ptr):
        """a has gaps or overlaps: held as a C-ordered copy of its elements."""
        key = (ptr, a.shape, a.strides, a.itemsize)
        e = self.entries.get(key)
        if e is None or not _same_elements(a, e[1], a.itemsize):
            raw = np.array(a, order="C")  # numpy copies items bit for bit
            e = self.entries[key] = [self._frozen(raw), data(raw), {}]
        raw = e[0]
        if raw.dtype == a.dtype:
            return raw
        v = e[2].get(a.dtype)
        if v is None:
            v = e[2][a.dtype] = raw.view(a.dtype)
        return v

    def _broadcast(self, a):
        """a repeats along its stride-0 axes: the snapshot of one repetition,
        broadcast again."""
        one = tuple(slice(0, 1) if st == 0 else slice(None) for st in a.strides)
        # (a's stride-0 axes have length 1 in a[one]: hold does not come back here)
        core = self.hold(a[one])
        strides = tuple(0 if st == 0 else cs for st, cs in zip(a.strides, core.strides))
        return _as_strided(core, a.shape, strides, writeable=False)

    def _frozen(self, raw):
        raw.flags.writeable = False
        self.nbytes += raw.nbytes
        self.taken += 1
        return raw


def _tiles(shape, strides, itemsize):
    """Do the elements of this layout cover their extent exactly once (a
    permutation of a contiguous block, axes possibly reversed)?"""
    step = itemsize
    for st, n in sorted((abs(st), n) for n, st in zip(shape, strides) if n > 1):
        if st != step:
            return False
        step *= n
    return True


def hold(tape, a):
    """The snapshot of plain ndarray ``a`` that a record of ``tape`` reads
    (Snapshots.hold; the C fast paths call this, csrc/ext/reverse.c)."""
    return _held_by(tape, a)


def _held_by(tape, a):
    """tape.snaps.hold(a), telling the tape what a new copy adds (its watch)."""
    snaps = tape.snaps
    before = snaps.nbytes
    v = snaps.hold(a)
    if snaps.nbytes != before:
        tape.grew(snaps.nbytes - before, "a snapshot of a plain array")
    return v


# Types of operands a record reads as they are: traced values, whose every
# write the tape records (shadowad.engines.reverse.traced adds TArray and TScalar).
TRACED = set()

# Operands whose array is made new from them when an operation reads them:
# nothing else sees that array, so nothing can change it unseen.
_FRESH = (int, float, complex, bool, np.generic, list, tuple)


def held(tape, operand, primal):
    """What a record of ``tape`` reads at sweep time for ``operand``, given as
    ``primal`` (the caller's conversion of it: an operation reads a list as an
    array of numbers, an index as an index).  primal itself when nothing can
    change it unseen (a traced operand, a fresh conversion, anything that is
    not an ndarray), else its snapshot: f may write to a plain array later."""
    if (type(operand) in TRACED or isinstance(operand, _FRESH)
            or not isinstance(primal, np.ndarray)):
        return primal
    return _held_by(tape, primal)
