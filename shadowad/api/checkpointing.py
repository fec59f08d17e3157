"""Binomial checkpointing of in-place loops: ``sad.checkpoint_loop``.

In reverse mode a checkpointed loop is one Python record on the tape.  While
``f`` records, the loop's steps run *untaped*: each step is recorded as a
segment of the tape and forgotten at once (Tape.mark / Tape.drop), keeping
its effect on memory and nothing else, and at most ``snapshots`` copies of
the state are kept, as the revolve schedule (shadowad/support/revolve.py)
says.  The record's pullback runs the rest of the schedule in the sweep: it
restores snapshots, advances untaped again, and tapes each step exactly once
right before reversing it (Tape.reverse_segment), which moves the state's
adjoint from after the step to before it and adds the step's share into the
adjoints of everything else it read.  So the tape holds the snapshots and one
step's records at a time, whatever the number of steps.

A sad.Vector in the state is copied with its length, and with its shadow as
the steps left it while f recorded: a push adds a zero to the shadow and a
pop takes its last element away, which the pop's record keeps and its
pullback hands back.  So a step taped in the sweep must find the shadow as
its first run did (stored in the snapshots), and the adjoint the sweep
carries is set aside meanwhile and put into the shadow to reverse the step.
"""
import sys

import numpy as np

from .._c import lib
from ..engines.reverse.buffers import Buffer, check_writable, promote
from ..engines.reverse.tape import Tape, current_tape, tape_var
from ..engines.reverse.traced import TArray
from ..engines.reverse.errors import mixed_tapes_error
from ..support import revolve
from ..support.memory import bounds
from .vector import TracedVector, c_vectors, elements, set_elements

DEFAULT_SNAPSHOTS = 10  # the contract's example: a 1000-step loop in 3.6 untaped runs per step


def checkpoint_loop(body, n, *state, snapshots=DEFAULT_SNAPSHOTS):
    """Run ``body(i, *state)`` for ``i in range(n)``.  ``body`` mutates the
    ``state`` arrays (and sad.Vectors) in place and may read anything else,
    which it must not modify.  Outside ``autodiff`` and in forward mode this
    is the plain loop; in reverse mode the loop is differentiated with at
    most ``snapshots`` stored states (the initial one included), recomputing
    steps in the binomial (revolve) order: with r the smallest integer such
    that C(snapshots + r, snapshots) >= n, the steps run untaped
    r*n - C(snapshots + r, r - 1) times in all and taped once each."""
    if not callable(body):
        raise TypeError(f"sad.checkpoint_loop: body must be callable as body(i, *state), "
                        f"got {type(body).__name__}")
    n = _count(n)
    snapshots = _snapshots(snapshots)
    tape = _tape_of(state, "sad.checkpoint_loop")
    if tape is None:
        for i in range(n):
            body(i, *state)
        return None
    _Loop(tape, body, n, state, snapshots).record()
    return None


def _count(n):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"sad.checkpoint_loop: n must be an int (the number of steps), "
                        f"got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"sad.checkpoint_loop: n must be >= 0, got {n}")
    return int(n)


def _snapshots(s):
    if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
        raise TypeError(f"sad.checkpoint_loop: snapshots must be an int (how many states "
                        f"to keep, the initial one included), got {type(s).__name__}")
    if s < 1:
        raise ValueError(f"sad.checkpoint_loop: snapshots must be >= 1 (the initial state "
                         f"counts as one), got {s}")
    return int(s)


def _traced_tape(values):
    """The reverse-mode tape the traced arrays and Vectors among ``values``
    are traced on, or None."""
    tape = None
    for a in values:
        t = type(a)
        if t is TArray or t is TracedVector:
            on = a.buf.tape if t is TArray else a.tape
            if tape is not None and on is not tape:
                raise mixed_tapes_error()
            tape = on
    return tape


def _tape_of(state, name):
    """The reverse-mode tape the state is traced on, or None (the plain loop:
    outside autodiff, forward mode, nested differentiation)."""
    tape = _traced_tape(state)
    if tape is None:
        return None
    for k, a in enumerate(state):
        if type(a) is not TArray and type(a) is not TracedVector:
            raise TypeError(
                f"{name}: state[{k}] is {type(a).__name__}; in reverse mode "
                "every state entry must be an array or a sad.Vector traced by this "
                "autodiff call (an argument of f, a view of one, or one f made), since "
                "the loop stores and restores the state's memory")
    _apart(state, name)
    return tape


def _apart(state, name):
    for j in range(len(state)):
        for k in range(j):
            a, b = state[j], state[k]
            if type(a) is TracedVector or type(b) is TracedVector:
                shared = a is b
            else:
                try:  # exact for interleaved views (x[::2], x[1::2]), within a bound
                    shared = np.shares_memory(a.p, b.p, max_work=1 << 20)
                except np.exceptions.TooHardError:
                    shared = True
            if shared:
                raise ValueError(f"{name}: state[{k}] and state[{j}] share memory; pass "
                                 "each piece of state once")


class _Lease:
    """One state array's memory, lent to a step that runs on numpy arrays:
    the array the step is given (np.asarray of the lease) and every view
    numpy derives from it have the lease as their base, so a reference the
    step kept past its end shows in the lease's reference count."""

    __slots__ = ("__array_interface__", "owner")

    def __init__(self, a):
        self.__array_interface__ = a.__array_interface__
        self.owner = a  # the memory stays alive while lent


def _returned(leases, arrays):
    """Are the arrays lent to a step, and their views, held by nothing but
    the lists here (and each array's base)?"""
    for k in range(len(leases)):
        if sys.getrefcount(arrays[k]) > 2 or sys.getrefcount(leases[k]) > 3:
            return False
    return True


class StateRuleError(RuntimeError):
    """``body`` wrote memory outside the loop's state."""


def _state_rule_error(what, name="sad.checkpoint_loop"):
    return StateRuleError(
        f"{name}: body wrote {what}, which is not part of the loop's state. "
        "A checkpointed loop recomputes its steps from stored copies of the state, so body "
        "may modify only the arrays passed as state (checkpoint_loop(body, n, *state)) and "
        "must only read everything else; pass the array it writes as one more state entry")


class _Loop:
    """One checkpointed loop in reverse mode.  While f records, the
    schedule's forward part runs; its last action tapes the last step into the
    tape itself, right after the loop's record, so that the sweep reverses it
    as any record before reaching the loop's pullback, which runs the rest.

    The record sits before the last step: going backwards over it (its swap)
    the state's memory goes from the state before the last step to the
    initial state, and forward again on a redo.  A Vector's shadow goes back
    with it (to the initial one: an undo restores the shadows, and the
    pops recorded before the loop find theirs), its adjoint set aside for
    the pullback; a redo leaves shadows as they are, as for any Vector.

    It is kept on the tape from the start, and the tape's accounting measures
    its __sizeof__ at every count (accounting.resizable): the copies of the
    state it holds now (not walked again: ACCOUNTING_SKIPS), so the budget and
    stats() see snapshots come and go."""

    __slots__ = ("tape", "body", "n", "s", "state", "primals", "vectors", "own", "outside",
                 "snaps", "initial", "other", "adjoints", "applied", "pending", "ready",
                 "peak", "name", "plain", "last_kept")
    ACCOUNTING_SKIPS = ("initial", "other", "adjoints", "snaps")

    def __sizeof__(self):
        seen, total = set(), object.__sizeof__(self)
        for copies in [self.initial, self.other, self.adjoints, *self.snaps.values()]:
            if copies is not None and id(copies) not in seen:
                seen.add(id(copies))
                total += sum(a.nbytes for a in copies)
        return total

    def __init__(self, tape, body, n, state, s):
        self.tape, self.body, self.n, self.s = tape, body, n, s
        self.state = state
        arrays = [a for a in state if type(a) is TArray]
        self.vectors = [a for a in state if type(a) is TracedVector]
        for a in arrays:
            check_writable(a)  # the loop writes it (an Active argument is refused here)
            promote(a)  # the state carries adjoints from step to step
        for v in self.vectors:
            v.promote()
        self.primals = [a.p for a in arrays]
        self.own = {id(a.buf) for a in arrays}
        self.name = "sad.checkpoint_loop"
        # traced memory that existed before the loop, but the state's views:
        # what a step must not write (memory kept later is checked as it is
        # kept); the rest of an array whose view is state is outside too
        views = sorted(bounds(p) for p in self.primals)
        self.outside = [(gap, buf.label) for buf in tape.keep if type(buf) is Buffer
                        for gap in _gaps(bounds(buf.root), views)]
        self.peak = 0
        self.snaps = {}
        self.initial = None  # the state before step 0 (also snapshot 0)
        self.other = None    # the swap's copy: the initial state, or the state before the last step
        self.adjoints = None  # in the sweep: the Vectors' adjoints, out of their shadows
        self.applied = True  # the record's effect is in memory: a swap goes back over it
        self.pending = None  # the segment of a step taped and not yet reversed
        self.last_kept = (0, 0)  # what the last step's records keep (tape.keep[lo:hi])
        # advances run on the state's numpy arrays until a step needs the
        # tape; a Vector's steps are recorded from the start, as their pushes
        # and pops must move its shadow too (see the module's docstring),
        # which only their records do
        self.plain = not self.vectors
        tape.keep.append(self)
        self.ready = False   # the forward part's snapshots are there (a sweep uses them up)

    # -- the state's memory ---------------------------------------------------
    def _copy(self):
        """A copy of the state: its arrays', then its Vectors' (_VectorCopy)."""
        return [p.copy() for p in self.primals] + [_VectorCopy.of(v) for v in self.vectors]

    def _writes(self):
        """What the record writes (Tape.last_write): the state's memory."""
        return [(p, Ellipsis) for p in self.primals]

    @property
    def nbytes(self):
        """The bytes of one copy of the state (as long as its Vectors are now)."""
        return (sum(p.nbytes for p in self.primals)
                + sum(8 * (len(v.v) + len(v.vs)) for v in self.vectors))

    def _put(self, copies):
        for p, c in zip(self.primals, copies):
            np.copyto(p, c)
        for v, c in zip(self.vectors, copies[len(self.primals):]):
            c.put(v)

    def _swap(self):
        for p, o in zip(self.primals, self.other):
            tmp = p.copy()
            np.copyto(p, o)
            np.copyto(o, tmp)
        k = len(self.primals)
        for v, o in zip(self.vectors, self.other[k:]):
            now = elements(v.v)
            set_elements(v.v, o.elements)
            o.elements = now
        if self.applied:  # backwards: an undo, or the sweep before _pullback
            self.adjoints = [elements(v.vs) for v in self.vectors]
            for v, c in zip(self.vectors, self.initial[k:]):
                set_elements(v.vs, c.shadow)
        self.applied = not self.applied

    def _shadows_hold(self, adjoints):
        """Put ``adjoints`` (the Vectors' adjoints after the step just taped)
        into their shadows, to reverse it."""
        for v, a in zip(self.vectors, adjoints):
            set_elements(v.vs, a)

    # -- steps ------------------------------------------------------------------
    def _run(self, i):
        """Step i recorded as a new segment of the tape (returned), its writes
        checked against the state rule."""
        tape = self.tape
        seg = tape.mark()
        tape.step_serial += 1
        born = tape.step_serial
        token = tape_var.set(tape)  # the sweep's re-runs run as f did: in its autodiff call
        # the segment is reversed or dropped right after: its saves stay in the cache
        soon = lib.sad_tape_set_saves_soon(tape.c, 1)
        try:
            self.body(i, *self.state)
            self._check_writes(seg, born)
        except BaseException:
            tape.undo_segment(seg)  # what the step wrote, the state and beyond, goes back
            raise
        finally:
            lib.sad_tape_set_saves_soon(tape.c, soon)
            tape_var.reset(token)
        return seg

    def _advance(self, start, stop):
        """Steps start..stop-1 untaped, from the state of snapshot ``start``
        (an Advance follows its Store or Restore).  They run on the state's
        numpy arrays, as the plain loop does, while a step touches nothing
        traced; a step that does (it reads a parameter, say) is taken back,
        and from then on the steps are recorded and forgotten (_run), from
        the snapshot again."""
        if self.plain:
            if self._advance_plain(start, stop) == stop:
                return
            self._put(self.snaps[start])  # plain steps wrote the state, in part or whole
        for i in range(start, stop):
            self.tape.drop(self._run(i), count=False)  # only its effect on memory stays

    def _advance_plain(self, start, stop):
        """The steps from ``start`` that run on plain arrays: where the first
        one that touched the tape (or raised, or kept its arrays) began, its
        records undone, else ``stop``.  A step that raises runs again
        recorded, which raises as it should (the plain run may have failed on
        a traced value).  A step that keeps a reference to the arrays it was
        given (or to a view of them) runs again recorded too: what it kept
        must be the traced state, whose derivative f may use later."""
        tape, primals = self.tape, self.primals
        token = tape_var.set(tape)  # the sweep's steps run as f did: in its autodiff call
        try:
            for i in range(start, stop):
                seg = tape.mark()
                counts = tape.counts()  # what a step taken back must not have counted
                try:
                    leases = [_Lease(p) for p in primals]
                    arrays = [np.asarray(lease) for lease in leases]
                    self.body(i, *arrays)
                    if tape.unchanged_since(seg) and _returned(leases, arrays):
                        continue
                except Exception:
                    pass
                except BaseException:
                    tape.undo_segment(seg)
                    tape.set_counts(counts)
                    raise
                tape.undo_segment(seg)
                tape.set_counts(counts)
                self.plain = False
                return i
        finally:
            tape_var.reset(token)
        return stop

    def _check_writes(self, seg, born):
        """The state rule: a step writes nothing that existed before the step
        but the state (memory the step made is its own)."""
        tape = self.tape
        for (lo, hi), label in self.outside:
            if tape.last_write(seg.mark.n, lo, hi) >= 0:
                raise _state_rule_error(label, self.name)
        made = tape.keep[seg.keep:]
        for buf in made:  # memory the step began to keep: written
            if type(buf) is Buffer and id(buf) not in self.own and buf.born < born:
                raise _state_rule_error(buf.label, self.name)
        vectors = self.vectors + [v for v in made if type(v) is TracedVector]
        for loop in made:  # a loop nested in the step writes its Vectors in its record
            if isinstance(loop, _Loop) and any(v not in vectors for v in loop.vectors):
                raise _state_rule_error("a sad.Vector", self.name)
        if lib.sad_tape_vector_write(tape.c, seg.mark.n, len(tape), c_vectors(vectors),
                                     len(vectors)) >= 0:
            raise _state_rule_error("a sad.Vector", self.name)

    def _apply(self, action):
        kind, tape = type(action), self.tape
        if kind is revolve.Advance:
            self._advance(action.start, action.stop)
            tape.advances += action.stop - action.start
        elif kind is revolve.Store:
            self.snaps[action.step] = self.initial if action.step == 0 else self._copy()
            if len(self.snaps) > self.peak:  # the tape's count sums its loops' peaks
                tape.peak_snapshots += len(self.snaps) - self.peak
                self.peak = len(self.snaps)
            tape.grew(self.nbytes, "sad.checkpoint_loop (a snapshot of its state)")
        elif kind is revolve.Restore:
            self._put(self.snaps[action.step])
        elif kind is revolve.Free:
            del self.snaps[action.step]
        elif kind is revolve.Tape:
            self.pending = self._run(action.step)
            tape.taped_steps += 1
        elif kind is revolve.Reverse:
            self._check_lengths(action.step)
            seg, self.pending = self.pending, None
            self._shadows_hold(self.adjoints)
            try:
                tape.reverse_segment(seg)
            finally:
                tape.drop(seg)
            self.adjoints = [elements(v.vs) for v in self.vectors]
        else:  # pragma: no cover - the schedule's vocabulary is the one above
            raise TypeError(f"unknown checkpoint action {action!r}")

    def _check_lengths(self, step):
        """The Vectors are as long after the re-run of ``step`` as after its
        first run, which the adjoints set aside have (else reversing the
        step would pop elements the shadow does not have)."""
        for k, (v, a) in enumerate(zip(self.vectors, self.adjoints)):
            if len(v.v) != len(a):
                raise RuntimeError(
                    f"{self.name}: the re-run of step {step} left the loop's sad.Vector "
                    f"{k} with {len(v.v)} elements, where the first run left {len(a)}: "
                    "each run of a step must see what the first saw and do the same (see "
                    "docs/checkpointing.md)")

    # -- the record -------------------------------------------------------------
    def record(self):
        """The forward part, while f records: the record, then the last step."""
        tape = self.tape
        actions = list(revolve.forward_part(self.n, self.s))
        if not actions:  # no steps: nothing to keep
            return
        self.initial = self._copy()
        tape.grew(self.nbytes, "sad.checkpoint_loop (its initial state)")
        last = actions.pop()  # Tape(n - 1)
        try:
            for action in actions:
                self._apply(action)
        except BaseException:
            self._put(self.initial)  # as before the loop: the tape's undo goes on from here
            raise
        self.ready = True
        self.other = [c.primal() if type(c) is _VectorCopy else c.copy() for c in self.initial]
        tape.grew(self.nbytes, "sad.checkpoint_loop (its record's copy of the state)")
        tape.user_rules = True  # the pullback runs body, which may raise in the sweep
        tape.record_py(self._pullback, self._swap, writes=self._writes())
        # the last step stays on the tape: the sweep reverses it as any record
        # (if it fails, the tape's undo takes its records back with the rest)
        tape.step_serial += 1
        seg = tape.mark()
        self.body(last.step, *self.state)
        self._check_writes(seg, tape.step_serial)
        self.last_kept = (seg.keep, len(tape.keep))
        tape.taped_steps += 1

    def _pullback(self):
        """The schedule's reverse part after its first action (the last
        step's reversal, which the sweep has done).  The swap has put the
        initial state into memory and the state before the last step into
        ``other``, where the schedule expects it now; the state's shadows
        hold the adjoint of the state before the last step (a Vector's is in
        ``adjoints``: its shadow is as before the loop, as the re-runs from
        snapshot 0 need it)."""
        if self.tape.final_sweep:
            self._release_last_step()
        try:
            if not self.ready:  # a second sweep: the snapshots again, from the initial state
                for action in list(revolve.forward_part(self.n, self.s))[:-1]:
                    self._apply(action)
            self._put(self.other)
            self.ready = False
            actions = iter(revolve.reverse_part(self.n, self.s))
            next(actions)  # Reverse(n - 1)
            for action in actions:
                self._apply(action)
        except BaseException:
            if self.pending is not None:  # taped, not reversed: its writes go back
                self.tape.undo_segment(self.pending)
                self.pending = None
            self._put(self.initial)
            self.adjoints = None
            raise
        self.snaps.clear()
        self._shadows_hold(self.adjoints)  # the adjoint of the state before the loop
        self.adjoints = None

    def _release_last_step(self):
        """The values the last step's records kept for their partials, once
        the tape's last sweep has gone past them: only a sweep reads them
        (an undo or redo swaps saved bytes with memory Buffers keep), so the
        steps the pullback tapes run without them."""
        keep = self.tape.keep
        lo, hi = self.last_kept
        for k in range(lo, min(hi, len(keep))):
            if type(keep[k]) is np.ndarray:
                keep[k] = None
        self.tape.holdings = None  # the count walks the lists afresh


class _VectorCopy:
    """A sad.Vector's part of a copy of a loop's state: its elements (as many
    as it is long) and its shadow as the steps left it while f recorded,
    or None (the record's copy, ``other``, of the elements only)."""

    __slots__ = ("elements", "shadow")

    def __init__(self, values, shadow=None):
        self.elements, self.shadow = values, shadow

    @classmethod
    def of(cls, v):
        """A copy of traced Vector v now."""
        return cls(elements(v.v), elements(v.vs))

    def primal(self):
        """A copy of the elements alone."""
        return _VectorCopy(self.elements.copy())

    @property
    def nbytes(self):
        return self.elements.nbytes + (0 if self.shadow is None else self.shadow.nbytes)

    def put(self, v):
        """Make traced Vector v (and its shadow, if copied) what was copied."""
        set_elements(v.v, self.elements)
        if self.shadow is not None:
            set_elements(v.vs, self.shadow)

def checkpoint(fn, *args):
    """``fn(*args)``, a region whose records are not kept: in reverse mode it
    runs untaped while f records and runs again, taped, when the sweep
    reaches it (as ``jax.checkpoint``, with mutation: ``fn`` may modify its
    array arguments in place, which the region's record stores and restores,
    and must only read everything else).  Its result (None, an array, a
    scalar, or a tuple or list of them) is what ``fn`` returns.  Outside
    ``autodiff`` and in forward mode it is the plain call."""
    if not callable(fn):
        raise TypeError(f"sad.checkpoint: fn must be callable, got {type(fn).__name__}")
    tape = _traced_tape(args)
    if tape is None:
        t = current_tape()
        tape = t if type(t) is Tape else None
    if tape is None:
        return fn(*args)
    # the arrays it may write are its state (an Active one is read-only)
    writable = [a for a in args if type(a) is TArray and a.buf.tape is tape and
                not a.buf.readonly and a.p.flags.writeable]
    _apart(writable, "sad.checkpoint")
    return _Region(tape, fn, writable).record(args)


class _Region(_Loop):
    """One checkpointed region: a loop of one step whose state is the
    region's array arguments, and whose result is carried out of the step."""

    __slots__ = ("fn", "args", "out")

    def __init__(self, tape, fn, arrays):
        super().__init__(tape, None, 1, arrays, 1)
        self.fn = fn
        self.name = "sad.checkpoint"

    def record(self, args):
        tape = self.tape
        self.initial = self._copy()
        self.args = args
        seg = tape.mark()
        tape.step_serial += 1
        try:
            res = self.fn(*args)
            self._check_writes(seg, tape.step_serial)
            _fresh(tape, res, self.own, build=False)  # what fn returned is a region's result
        except BaseException:
            tape.undo_segment(seg)
            raise
        tape.drop(seg)
        self.out = _fresh(tape, res, self.own)  # made after the drop: the tape keeps them
        tape.advances += 1
        self.other = [c.copy() for c in self.initial]
        tape.grew(2 * self.nbytes, "sad.checkpoint (its copies of the arguments it may write)")
        tape.user_rules = True
        tape.record_py(self._pullback, self._swap, writes=self._writes())
        return self.out

    def _pullback(self):
        """The swap has put the arguments' memory back as before the region:
        run it again taped, seed its result with the adjoint of the result f
        used, and reverse it."""
        tape = self.tape
        seg = tape.mark()
        tape.step_serial += 1
        token = tape_var.set(tape)
        try:
            res = self.fn(*self.args)
            _seed(res, self.out)
            tape.taped_steps += 1
            tape.reverse_segment(seg)
        except BaseException:
            tape.undo_segment(seg)
            self._put(self.initial)
            raise
        finally:
            tape_var.reset(token)
        tape.drop(seg)


def _fresh(tape, res, own, build=True):
    """The region's result, as values of the tape that outlive its records:
    a copy of each array and scalar it computed (the arguments it returns
    stay themselves), in res's structure.  ``build=False``: only check that
    res is a region's result (None when it is)."""
    from ..engines.reverse.scalar import TScalar, new_scalar
    from ..engines.reverse.traced import new_array
    t = type(res)
    if res is None:
        return None
    if t is tuple or t is list:
        return t(_fresh(tape, r, own, build) for r in res)
    if t is TArray:
        if id(res.buf) in own or not build:
            return res
        return new_array(tape, res.p.copy(), True)
    if t is TScalar:
        return new_scalar(tape, res.v)[0] if build else res
    if isinstance(res, (np.ndarray, float, int, np.generic)):
        return res  # a constant: no derivative flows back through it
    raise TypeError(f"sad.checkpoint: fn returned {t.__name__}; a checkpointed region "
                    "returns None, an array, a scalar, or a tuple or list of them")


def _seed(res, out):
    """Add the adjoint of ``out`` (what f used) into the re-run's ``res``."""
    from ..engines.reverse.buffers import adjoint_for_pullback, shadow_of
    from ..engines.reverse.scalar import TScalar
    from .._c import lib
    if out is None:
        return
    t = type(out)
    if t is tuple or t is list:
        for r, o in zip(res, out):
            _seed(r, o)
        return
    if t is TArray and type(res) is TArray and res is not out and res.buf is not out.buf:
        g = shadow_of(out)
        s, fresh = adjoint_for_pullback(res)
        if fresh:
            s[...] = g
        else:
            s += g
    elif t is TScalar and type(res) is TScalar:
        lib.sad_pair_add(res.g, lib.sad_pair_grad(out.g))


def _gaps(span, views):
    """The parts of byte range ``span`` outside the sorted byte ranges
    ``views``."""
    lo, hi = span
    out = []
    for vlo, vhi in views:
        if vhi <= lo or vlo >= hi:
            continue
        if vlo > lo:
            out.append((lo, vlo))
        lo = max(lo, vhi)
    if lo < hi:
        out.append((lo, hi))
    return out
