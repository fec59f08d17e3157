"""The binomial checkpointing schedule (revolve: Griewank & Walther, ACM TOMS
26(1), 2000) for reversing ``n`` steps of a loop with at most ``snapshots``
stored states, the state before step 0 counted among them.

With r the smallest integer such that C(s+r, s) >= n, the schedule runs
r*n - C(s+r, r-1) untaped steps in all (``counts``), the fewest any schedule
can, and tapes each step exactly once; of revolve's recursive schedules with
that minimum it takes the fewest ``Store``s.  The minimum needs revolve's
shape: the recording runs untaped only up to the state before step n-1 and
tapes the last step there, which leaves the true final state after the loop.
A recording that ran all n steps untaped would have to re-run from a snapshot
to tape step n-1: n more untaped steps with one snapshot, 3640 instead of
3636 for n=1000, s=10.

The schedule is a stream of actions on one *current state* (the loop's state
arrays), a set of snapshots keyed by step and at most one pending step tape.
"The state before step i" is the loop's state once steps 0..i-1 have run;
the state before step n is the final one.  Every action names its steps, so
the engine only carries them out:

* ``Advance(start, stop)``: run steps start..stop-1 untaped.  Before: the state
  before ``start``; after: the state before ``stop``.
* ``Store(step)``: copy the current state into a new snapshot ``step``.  Before
  and after: the state before ``step``.
* ``Restore(step)``: copy snapshot ``step`` into the current state, which is
  then the state before ``step``.  The snapshot stays.
* ``Free(step)``: drop snapshot ``step``; the state is unchanged.  It comes
  right after the snapshot's last ``Restore``, so the pair may be a move.
* ``Tape(step)``: run step ``step`` recording a tape, and keep the tape.
  Before: the state before ``step``; after: the state before ``step + 1``.
* ``Reverse(step)``: sweep the tape of ``Tape(step)`` and drop it.  Before: the
  state before ``step + 1``; after: the state before ``step`` (the sweep
  restores the primals), with adjoints pulled back through the step.

``forward_part`` is what the recording runs: Stores and Advances, then
``Tape(n-1)``, leaving the final state and that step's tape pending.  Between
the two parts the enclosing program runs on and its sweep restores the final
state.  ``reverse_part`` is the sweep: it starts with ``Reverse(n-1)``, reverses
the steps in decreasing order, each ``Tape(i)`` immediately followed by
``Reverse(i)``, and ends with the state before step 0, no snapshot and no tape.
Both stream in O(snapshots) memory and are functions of (n, snapshots) alone:
nothing needs keeping between them.
"""
from dataclasses import dataclass
from itertools import islice
from math import comb
from operator import index


@dataclass(frozen=True, slots=True)
class Advance:
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class Store:
    step: int


@dataclass(frozen=True, slots=True)
class Restore:
    step: int


@dataclass(frozen=True, slots=True)
class Free:
    step: int


@dataclass(frozen=True, slots=True)
class Tape:
    step: int


@dataclass(frozen=True, slots=True)
class Reverse:
    step: int


def reach(snapshots, repetitions):
    """C(snapshots + repetitions, snapshots): the most steps ``snapshots``
    stored states reverse when no step runs untaped more than ``repetitions``
    times (0 when either is negative)."""
    if snapshots < 0 or repetitions < 0:
        return 0
    return comb(snapshots + repetitions, snapshots)


def repetitions(n, snapshots):
    """The smallest r with reach(snapshots, r) >= n: how many times the most
    re-run step runs untaped."""
    r = 0
    while reach(snapshots, r) < n:
        r += 1
    return r


def counts(n, snapshots):
    """(untaped step runs, taped step runs) of the schedule, by revolve's formula."""
    n, snapshots = _checked(n, snapshots)
    r = repetitions(n, snapshots)
    return r * n - reach(snapshots + 1, r - 1), n


def schedule(n, snapshots):
    """Every action for reversing n steps with at most ``snapshots`` states
    stored: ``forward_part`` followed by ``reverse_part``."""
    n, snapshots = _checked(n, snapshots)
    return _actions(n, snapshots)


def forward_part(n, snapshots):
    """The actions the recording runs: they end with ``Tape(n-1)`` (nothing
    when n is 0)."""
    n, snapshots = _checked(n, snapshots)
    return islice(_actions(n, snapshots), _forward_length(n, snapshots))


def reverse_part(n, snapshots):
    """The actions the sweep runs after ``forward_part(n, snapshots)``: from
    ``Reverse(n-1)`` down to ``Reverse(0)``."""
    n, snapshots = _checked(n, snapshots)
    return islice(_actions(n, snapshots), _forward_length(n, snapshots), None)


def _checked(n, snapshots):
    n, snapshots = index(n), index(snapshots)
    if n < 0:
        raise ValueError(f"revolve: the number of steps must be >= 0, not {n}")
    if snapshots < 1:
        raise ValueError(
            f"revolve: snapshots must be >= 1 (the state before step 0 is one), not {snapshots}")
    return n, snapshots


def _forward_length(n, snapshots):
    length = 0
    for length, action in enumerate(_actions(n, snapshots), 1):
        if type(action) is Tape:
            break
    return length


def _actions(n, snapshots):
    stored = []         # live snapshots, increasing; each below end - 1 when taken
    end = n             # steps end..n-1 are reversed
    at = 0              # the current state is the state before step `at`
    while end > 0:
        while end - at > 1:
            if not stored or stored[-1] != at:
                yield Store(at)
                stored.append(at)
            usable = snapshots - len(stored) + 1   # the one at `at` included
            stop = end - 1
            if usable > 1 and end - at > 2:
                stop = at + _split(end - at, usable)
            yield Advance(at, stop)
            at = stop
        yield Tape(at)
        yield Reverse(at)
        end = at
        if end > 0:
            at = stored[-1]
            yield Restore(at)
            if end - at == 1:
                stored.pop()
                yield Free(at)


def _split(steps, usable):
    """Where to take the next snapshot, as an offset into ``steps`` (>= 3)
    steps whose first state is stored, with ``usable`` (>= 2) snapshots for
    them, the stored one included.

    With r = repetitions(steps, usable) and b = reach, an offset m is optimal
    when b(usable, r-2) <= m <= b(usable, r-1) and b(usable-1, r-1) <=
    steps-m <= b(usable-1, r): the left part then costs (r-1)*m -
    b(usable+1, r-2) untaped steps and the right part r*(steps-m) -
    b(usable, r-1), which with m's own add up to the minimum
    r*steps - b(usable+1, r-1) by Pascal's rule.  Among those, revolve's rule
    below also takes the fewest snapshots, and leaves at least two steps on
    the right, so the snapshot is used."""
    b, r = reach, repetitions(steps, usable)
    if steps <= b(usable, r - 1) + b(usable - 2, r - 1):
        return b(usable, r - 2)
    if steps >= b(usable, r) - b(usable - 3, r):
        return b(usable, r - 1)
    return steps - b(usable - 1, r - 1) - b(usable - 2, r - 1)


__all__ = ["Advance", "Store", "Restore", "Free", "Tape", "Reverse",
           "reach", "repetitions", "counts", "schedule", "forward_part", "reverse_part"]
