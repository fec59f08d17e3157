"""The Python face of the C tape: recording helpers, Python records, sweeps,
and what the tape holds (``nbytes``, ``stats``).

All memory a record points into is kept alive by the tape (``keep``) until the
tape is freed.  Records that need numpy (BLAS, linalg, fancy indexing) are
Python callables; the C sweep stops at them, Python runs them, C goes on.
"""
import contextlib
import contextvars
import threading

import numpy as np

from ..._c import fast, ffi, lib
from . import watch
from .accounting import Holdings, recount
from ...support.memory import bounds, element_addresses
from .crule_error import CRuleError
from .untraced import put_back
from .snapshots import Snapshots

tape_var = contextvars.ContextVar("shadowad_tape", default=None)
_fused = contextvars.ContextVar("shadowad_fused_sweeps", default=True)


@contextlib.contextmanager
def fused_sweeps(on):
    """Tapes made inside sweep runs of elementwise records fused block by block
    (``on``, the default: csrc/core/fuse.c) or record by record (shadowad.testing
    compares the two bit for bit)."""
    token = _fused.set(bool(on))
    try:
        yield
    finally:
        _fused.reset(token)


# --------------------------------------------------------------------------
# the save-stack pool: large chunks of saved bytes outlive their tape, so that
# the next call in the same thread writes into pages that are already there
# (fresh pages cost a fault and the kernel's zeroing; docs/design-notes.md has
# the measurement)

_pools = threading.local()
_pool_limit = [256 << 20]  # bytes a thread keeps between calls (set_memory_pool)
POOL_MAX = (1 << 63) - 1  # the C core's int64_t


def _pool():
    p = getattr(_pools, "pool", None)
    if p is None:
        raw = lib.sad_pool_new(_pool_limit[0])
        p = _pools.pool = ffi.gc(raw, lib.sad_pool_release) if raw != ffi.NULL else False
    return p


def set_memory_pool(max_bytes):
    """At most ``max_bytes`` of save-stack memory kept by each thread between
    autodiff calls (default 256 MiB; only chunks of 4 MiB and more are kept).
    Applies to the calling thread's pool now (freeing any excess) and to the
    pools of threads that start differentiating later; 0 keeps nothing."""
    if isinstance(max_bytes, (bool, np.bool_)) or not isinstance(max_bytes, (int, np.integer)):
        raise TypeError(f"sad.set_memory_pool: max_bytes must be an int (a number of bytes; "
                        f"0 keeps nothing), got {type(max_bytes).__name__} {max_bytes!r}")
    max_bytes = int(max_bytes)
    if not 0 <= max_bytes <= POOL_MAX:
        raise ValueError(f"sad.set_memory_pool: max_bytes must be between 0 and 2**63 - 1 "
                         f"bytes, got {max_bytes}")
    _pool_limit[0] = max_bytes
    p = _pool()
    if p:
        lib.sad_pool_trim(p, max_bytes)


def memory_pool_bytes():
    """Bytes of save-stack memory the calling thread's pool holds right now."""
    p = _pool()
    return lib.sad_pool_bytes(p) if p else 0


def current_tape():
    """The tape of the autodiff call running in this context, or None."""
    return tape_var.get()


class TapeError(RuntimeError):
    pass


class PyRecord:
    """A record whose pullback runs in Python.

    ``pullback()`` moves the adjoint of its outputs into its inputs;
    ``swap()``, if given, exchanges memory with what was saved (so the same
    call restores going backwards and re-applies going forwards), ``saved``
    holds what it saved (what tape.stats() counts as saved bytes), and
    ``writes`` says what it writes: (primal array, index), a list of those,
    or None for any memory."""

    __slots__ = ("pullback", "swap", "saved", "writes")

    def __init__(self, pullback, swap=None, saved=None, writes=None):
        self.pullback, self.swap, self.saved, self.writes = pullback, swap, saved, writes


# tape.stats()'s keys for checkpointing (DESIGN.md section 4): summed over the
# tape's checkpointed loops
CHECKPOINT_KEYS = ("advances", "taped_steps", "peak_snapshots")
BYTE_KEYS = ("record_bytes", "saved_bytes", "shadow_bytes", "kept_bytes", "nbytes")


class Segment:
    """A tape's mark (Tape.mark): the C tape's, and the lengths of the lists
    Python keeps beside it."""

    __slots__ = ("mark", "py", "keep", "shadows")

    def __init__(self, mark, py, keep, shadows):
        self.mark, self.py, self.keep, self.shadows = mark, py, keep, shadows


class Tape(fast.TapeBase):
    # keep, _tptr (the C tape's address) and alive: fields of the C base
    # (csrc/ext/bases.c), which traced scalars' C arithmetic reads; read only,
    # set by _bind (once) and cleared by _unbind
    __slots__ = ("c", "py", "shadows", "snaps", "state", "applied", "untraced",
                 "untraced_note", "arguments", "peak", "holdings", "summarize", "summary", "rule_names",
                 "user_rules", "step_serial", "advances", "taped_steps", "peak_snapshots",
                 "watch", "final_sweep",
                 "__weakref__")
    lanes = 0  # reverse mode: shadows carry no axis of lanes (see buffers.Buffer)

    def __init__(self, budget=None):
        """``budget``: the most bytes the tape may hold (stats()["nbytes"]),
        over recording and the sweep, or None (see watch.py)."""
        ptr = lib.sad_tape_new()
        if ptr == ffi.NULL:
            raise MemoryError("shadowad: cannot allocate a tape")
        pool = _pool()
        if pool:
            lib.sad_tape_use_pool(ptr, pool)
        if not _fused.get():
            lib.sad_tape_set_fuse(ptr, 0)
        c = ffi.gc(ptr, lib.sad_tape_free)
        # before self.c: a second __init__ is refused while the first C tape stays
        self._bind(int(ffi.cast("intptr_t", ptr)))
        self.c = c
        self.py = []
        self.keep = []
        self.shadows = []  # the shadows of temporaries (see traced.new_temporary)
        self.snaps = Snapshots()  # of the plain arrays records read (shadowad/engines/reverse/snapshots.py)
        self.state = "recording"
        self.applied = None  # records at the start still applied: None for all of them
        self.untraced = []  # Const arrays f may write without a record (see shadowad/engines/reverse/untraced.py)
        self.untraced_note = ""  # what a detach error says of them (untraced.note)
        self.arguments = ()  # what the caller passed f: its memory is not the tape's
        self.peak = 0  # the most nbytes seen (see stats)
        self.holdings = None  # what Python holds for the tape, counted as it grows
        self.summarize = False  # keep stats() for after free()
        self.summary = None
        self.rule_names = {}  # record number -> name of the C rule (its sweep errors)
        # does a record's reverse run a user's code (a custom rule), which may
        # raise in the sweep?  Then the drivers keep the shadows to put back
        self.user_rules = False
        # checkpointed loops (shadowad/api/checkpointing.py): steps begun so far
        # (Buffers note it: Buffer.born), untaped and taped steps, the most
        # states stored at once
        self.step_serial = 0
        self.advances = self.taped_steps = self.peak_snapshots = 0
        # the sweep running is the tape's last (its driver says so): what
        # only a sweep reads may go once swept (a checkpointed loop's last step)
        self.final_sweep = False
        self.watch = watch.start(self, ptr, budget)  # its budget, reports, warning

    @property
    def budget(self):
        """The most bytes the tape may hold, or None."""
        return self.watch.budget if self.watch is not None else None

    # -- recording ---------------------------------------------------------
    def check(self, rc, what):
        """Raise the error of return code rc of a call that recorded ``what``;
        after one that succeeded, count what the tape holds if that is due
        (watch.py)."""
        if rc == lib.SAD_OK:
            if self.watch is not None and lib.sad_tape_grew(self.c, 0):
                watch.look(self, what)
            return
        if rc == lib.SAD_OVER_BUDGET or rc == lib.SAD_NOMEM:
            raise self.out_of_memory(what)
        if rc == lib.SAD_BAD_SLOT:
            raise TapeError(f"shadowad: {what} names a lazy shadow this tape does not have "
                            "(a Buffer's slot was assigned from outside; leave the fields "
                            "of traced values to shadowad)")
        if rc != lib.SAD_OK:
            raise TapeError(f"shadowad: C core refused {what} (code {rc})")

    def record_py(self, pullback, swap=None, saved=None, writes=None):
        """Append a Python record (see PyRecord)."""
        rec = PyRecord(pullback, swap, saved, writes)
        self.py.append(rec)
        flags = lib.SAD_F_PYUNDO if swap is not None else 0
        rc = lib.sad_py(self.c, len(self.py) - 1, flags)
        if rc != lib.SAD_OK:
            self.check(rc, pullback)
        watch.record_grew(self, rec, pullback)

    def grew(self, nbytes, what):
        """Python added about ``nbytes`` bytes for the tape (an estimate, see
        watch.py), recording ``what``: count what it holds if that is due."""
        if self.watch is not None and lib.sad_tape_grew(self.c, nbytes):
            watch.look(self, what)

    def out_of_memory(self, what, message=None, where=True):
        """The error of a call that found no memory for ``what``: the
        budget's (TapeBudgetError) if it refused, else MemoryError(message)."""
        return watch.out_of_memory(self, what, message, where)

    def __len__(self):
        return lib.sad_tape_len(self.c)

    # -- segments (checkpointed loops: shadowad/api/checkpointing.py) -----------
    def mark(self):
        """Where the tape stands now, for a segment of records appended after
        it and later swept alone (reverse_segment) or forgotten (drop)."""
        m = ffi.new("sad_tape_mark *")
        lib.sad_tape_get_mark(self.c, m)
        return Segment(m, len(self.py), len(self.keep), len(self.shadows))

    def counts(self):
        """The checkpointed loops' counts (stats()), to put back with
        set_counts when what made them is taken back."""
        return (self.advances, self.taped_steps, self.peak_snapshots)

    def set_counts(self, counts):
        self.advances, self.taped_steps, self.peak_snapshots = counts

    def unchanged_since(self, seg):
        """Has nothing been recorded, kept or allocated on the tape since
        ``seg``?"""
        now = self.mark()
        return (now.py == seg.py and now.keep == seg.keep and now.shadows == seg.shadows
                and ffi.buffer(now.mark)[:] == ffi.buffer(seg.mark)[:])

    def reverse_segment(self, seg):
        """The reverse sweep of the records since ``seg`` (sad_reverse_range):
        their adjoints move into memory below it, and the primals they
        overwrote come back."""
        c, py, lo = self.c, self.py, seg.mark.n
        i = lib.sad_reverse_range(c, len(self), lo)
        while i >= lo:
            rec = py[lib.sad_record_pyidx(c, i)]
            if rec.swap is not None:
                rec.swap()
            rec.pullback()
            i = lib.sad_reverse_range(c, i, lo)
        if i <= -2:
            code = ffi.new("int64_t *")
            if lib.sad_tape_rule_error(c, code):
                raise CRuleError(self.rule_names.get(code[0], "?"), "reverse",
                                 lib.sad_tape_rule_error(c, code))
            raise MemoryError("shadowad: out of memory for a shadow in the reverse sweep")

    def undo_segment(self, seg):
        """Undo the records since ``seg`` (memory as it was at the mark) and
        forget them."""
        c, py, lo = self.c, self.py, seg.mark.n
        i = lib.sad_undo_range(c, len(self), lo)
        while i >= lo:
            py[lib.sad_record_pyidx(c, i)].swap()
            i = lib.sad_undo_range(c, i, lo)
        self.drop(seg)

    def drop(self, seg, count=True):
        """Forget the records since ``seg``, leaving memory as they left it,
        and what Python held for them (csrc sad_tape_drop).  The tape then
        holds less than it did: with ``count``, the peak first takes what it
        holds now, the segment's part counted without being remembered, so
        that Python's count goes on from the mark (a checkpointed loop drops
        a segment per step: a count walked afresh each time would cost the
        whole tape).  A loop's untaped steps drop without counting: the
        taped step that follows them holds as many snapshots and more
        records (its sweep's shadows), and its drop counts."""
        h = self.holdings
        if h is not None and not h.before(seg):
            h = self.holdings = None  # it walked into the segment: it cannot forget it
        if count:
            sizes = ffi.new("sad_tape_bytes *")
            lib.sad_tape_sizes(self.c, sizes)
            held = sizes.records + sizes.save_room + sizes.saved + sizes.shadows
            if h is None:
                h = self.holdings = Holdings(self.arguments, (Tape,))
            held += sum(h.update(self, upto=seg)) + h.segment_bytes(self, seg)
            self.peak = max(self.peak, held)
        lib.sad_tape_drop(self.c, seg.mark)
        n = seg.mark.n
        del self.py[seg.py:]
        for buf in self.keep[seg.keep:]:  # memory pinned since: not kept any more, so
            if isinstance(buf, _BufferBase):  # a later write pins it again (and is seen to)
                buf.kept = False
        del self.keep[seg.keep:]
        del self.shadows[seg.shadows:]
        for i in [i for i in self.rule_names if i >= n]:
            del self.rule_names[i]

    def last_write(self, start, lo, hi):
        """The last record from ``start`` on that may have written primal
        bytes [lo, hi), or -1 (csrc/core/tape.c sad_tape_last_write)."""
        c, to = self.c, len(self)
        while True:
            i = lib.sad_tape_last_write(c, start, to, lo, hi)
            if i >= -1:
                return i
            i = -2 - i  # a record that writes from Python: it names its array
            w = self.py[lib.sad_record_pyidx(c, i)].writes
            if w is None or any(_overlaps(x, lo, hi) for x in (w if type(w) is list else (w,))):
                return i
            to = i

    @property
    def nbytes(self):
        """Every byte the tape holds now (stats()["nbytes"])."""
        return self.stats()["nbytes"]

    def stats(self):
        """What the tape holds, as a dict of ints:

        - ``records``: its records (``len(tape)``), ``python_records`` of them
          run their pullback in Python;
        - ``record_bytes``: the C records themselves: the record array, scalar
          pairs and iteration blocks, as allocated (whole chunks: room for more
          records counts), and the unused part of the save stack's chunks;
        - ``saved_bytes``: the overwritten values the records saved (the C save
          stack in use, and what Python records saved);
        - ``shadow_bytes``: the shadows of temporaries: the memory of lazy
          ones the sweep allocated (released blocks included: the tape reuses
          them), and the ones numpy holds;
        - ``kept_bytes``: the rest of what Python holds for the records: the
          operands and results they read, the snapshots of plain arrays, the
          gradients of Active arrays, promoted shadows, copies of untraced
          constants, and the Python records with their closures' data;
        - ``nbytes``: the sum of the four, every byte the tape keeps alive;
        - ``peak_nbytes``: the most it held, over recording and the sweep:
          the tape releases nothing before it is freed, so this is the
          greatest ``nbytes`` of any look, the one as the sweep ends included
          (shadowad/engines/reverse/accounting.py);
        - ``fused_records``: how many records the sweep took in fused runs
          (csrc/core/fuse.c), 0 before it;
        - ``advances``, ``taped_steps``, ``peak_snapshots``: what the tape's
          checkpointed loops (sad.checkpoint_loop) did: the steps they ran
          untaped, the steps they taped, and the most states they held at
          once.

        Each buffer counts once (views of one array cost its memory once);
        each object is walked once over the tape's life, so looking after
        every record costs O(1) per record, amortized;
        the memory of f's arguments is the caller's and does not count (see
        shadowad/engines/reverse/accounting.py for the exact rule).  After the sweep the tape
        is freed: records and peak are what they were, the bytes held are 0."""
        if self.state == "freed":
            out = dict(self.summary) if self.summary is not None else {
                "records": 0, "python_records": 0, "peak_nbytes": self.peak,
                "fused_records": 0}
            out.update((k, 0) for k in BYTE_KEYS)
            out.update((k, getattr(self, k)) for k in CHECKPOINT_KEYS)
            return out
        out = self._bytes(self.python_bytes())
        out["fused_records"] = lib.sad_tape_fused(self.c)
        out.update((k, getattr(self, k)) for k in CHECKPOINT_KEYS)
        return out

    def python_bytes(self):
        """(saved, shadows, kept): what Python holds for the tape now, each
        object walked once over the tape's life (accounting.Holdings)."""
        if self.holdings is None:  # f's arguments are known once recording runs
            self.holdings = Holdings(self.arguments, (Tape,))
        return self.holdings.update(self)

    def recount(self):
        """stats()'s byte counts walked from scratch (accounting.recount): what
        the incremental count must equal, for tests and debugging."""
        return self._bytes(recount(self, (Tape,)), peak=False)

    def _bytes(self, python, peak=True):
        py_saved, shadows, kept = python
        c = ffi.new("sad_tape_bytes *")
        lib.sad_tape_sizes(self.c, c)
        out = {"records": len(self), "python_records": len(self.py),
               "record_bytes": c.records + c.save_room, "saved_bytes": c.saved + py_saved,
               "shadow_bytes": c.shadows + shadows, "kept_bytes": kept}
        out["nbytes"] = sum(out[k] for k in BYTE_KEYS[:-1])
        if peak:
            self.peak = max(self.peak, out["nbytes"])
            out["peak_nbytes"] = self.peak
        return out

    # -- sweeps --------------------------------------------------------------
    def reverse(self):
        """Accumulate every adjoint, last record first, restoring the primal
        memory each record overwrote as far as records before it read values
        (csrc sad_tape_restore_floor): ``applied`` records at the start keep
        their effects, and undo() and redo() start from there."""
        c, py = self.c, self.py
        self.state = "swept"  # f has returned (what watch.py's messages name)
        floor = lib.sad_tape_restore_floor(c)
        i = lib.sad_reverse(c, len(self))
        try:
            while i >= 0:
                rec = py[lib.sad_record_pyidx(c, i)]
                if rec.swap is not None:
                    rec.swap()
                rec.pullback()
                i = lib.sad_reverse(c, i)
        except BaseException:
            # a Python pullback failed: put the primals back as before the call
            self._undo_from(i)
            raise
        if i <= -2:  # record -2 - i found no memory for a shadow or is a C rule
            # whose reverse failed, untouched; the sweep kept the records
            # between it and the floor applied
            self._undo_from(max(-1 - i, floor))
            code = ffi.new("int64_t *")
            if lib.sad_tape_rule_error(c, code):
                raise CRuleError(self.rule_names.get(code[0], "?"), "reverse",
                                 lib.sad_tape_rule_error(c, code))
            raise self.out_of_memory(
                f"the adjoint of record {-2 - i:,}'s temporary in the reverse sweep",
                "shadowad: out of memory for a shadow in the reverse sweep", where=False)
        try:  # with a budget: a count once the sweep has ended (watch.py)
            watch.finish(self, "the reverse sweep")
        except BaseException:
            self._undo_from(floor)
            raise
        self.applied = floor

    def undo(self):
        """Restore every primal without touching any shadow."""
        self._undo_from(len(self) if self.applied is None else self.applied)

    def _undo_from(self, start):
        c, py = self.c, self.py
        i = lib.sad_undo(c, start)
        while i >= 0:
            py[lib.sad_record_pyidx(c, i)].swap()
            i = lib.sad_undo(c, i)
        self.applied = 0
        put_back(self.untraced)

    def redo(self, last=False):
        """Re-apply every record's effect on primal memory, first record first
        (after a sweep, from the first one it undid).  ``last``: the tape is
        freed next and never undone again, so saved bytes are copied back
        rather than swapped (half the memory traffic)."""
        c, py = self.c, self.py
        run = lib.sad_redo_last if last else lib.sad_redo
        i = run(c, self.applied or 0)
        while i >= 0:
            py[lib.sad_record_pyidx(c, i)].swap()
            i = run(c, i + 1)
        self.applied = None

    def final_stats(self):
        """The counts stats() keeps once the tape is freed: the bytes held as
        the sweep ends are the most the tape held (nothing is released
        before the tape is freed), which the peak takes.  A recount: the
        sweep changed objects the looks had walked (accounting.py)."""
        out = self._bytes(recount(self, (Tape,)))
        return {"records": out["records"], "python_records": out["python_records"],
                "peak_nbytes": self.peak, "fused_records": lib.sad_tape_fused(self.c)}

    def free(self):
        """Free the C tape and drop what it kept, now.  The tape's Buffers,
        Vectors and Python records point back to it, so until this runs the
        tape is in reference cycles: its owner (the driver, a SplitTape) frees
        it on every path rather than leave it to the garbage collector."""
        if self.state == "freed":
            return
        if self.summarize:  # what stats() reports once the tape is gone
            self.summary = self.final_stats()
        self.state = "freed"
        self._unbind()
        ffi.release(self.c)
        del self.c  # a traced value that outlives its call now gets __getattr__'s error
        self.py = []
        self.keep = []
        self.shadows = []
        self.untraced = []
        self.arguments = ()
        self.snaps = Snapshots()
        self.holdings = None

    def __getattr__(self, name):  # only reached for ``c`` and ``_tptr`` after free()
        if name == "c" or name == "_tptr":
            raise finished_error()
        raise AttributeError(f"'Tape' object has no attribute {name!r}")


# the C fast paths call watch.look when a recording call was refused by the
# budget or made Python's count due (csrc/ext/reverse.c sad_rev_recorded)
fast.register_watch(watch.look)


def _overlaps(writes, lo, hi):
    """Do the elements ``a[idx]`` (writes = (a, idx)) meet bytes [lo, hi)?"""
    a, idx = writes
    alo, ahi = bounds(a)
    if not (alo < hi and lo < ahi):
        return False
    at = element_addresses(a)[idx]
    return bool(np.any((at < hi) & (lo < at + a.itemsize)))


_BufferBase = fast.BufferBase  # buffers.Buffer's C base (buffers imports this module)


def finished_error():
    return RuntimeError("shadowad: a traced value was used after its autodiff call finished; "
                        "traced values exist only while f runs (take plain values inside f "
                        "with sad.primal)")
