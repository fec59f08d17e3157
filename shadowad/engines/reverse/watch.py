"""Watching what a tape holds while it records: its budget (``tape_budget=``),
progress reports (``sad.set_tape_report``) and the warning for a tape that
takes much of the machine's memory (``TapeMemoryWarning``).

What is watched is ``tape.stats()["nbytes"]``: the C core's bytes, which the
core knows exactly as it allocates (csrc/core/budget.c), plus what Python
holds for the tape, which costs a walk to count (accounting.Holdings: each
object once over the tape's life).  So Python counts only when a count is
due: the core compares its bytes, plus Python's bytes at the last count, plus
an estimate of what Python has added since, with a *mark*, the next size at
which something must happen (the budget, the next report, the memory
warning's threshold).  The estimate is what the fast paths and Python's
recording helpers know they add (the data of the arrays a record keeps, of
eager shadows, snapshots, promoted and materialized shadows, a Python
record's saved values and the arrays its pullback closes over); when it
misses something, the count happens later, never wrongly.

The budget itself never rests on the estimate:

* the core refuses an allocation that would take its bytes plus Python's
  counted bytes past the budget (``SAD_OVER_BUDGET``); Python's count can only
  have grown since, so a refusal is always a real excess;
* a count that finds ``nbytes`` past the budget raises;
* with a budget, Python counts once more when ``f`` returns and once more when
  the sweep ends, so a call that succeeds never held more than its budget by
  that count (``nbytes`` only grows until the tape is freed).

Between counts the tape can pass its budget by what Python added that the
estimate missed (object headers of views the fast paths keep, about a
hundred bytes each, and arrays a Python path keeps without a Python record);
the error then comes at the next count, at the latest when ``f`` returns.
"""
import linecache
import os
import sys
import types
import warnings

import numpy as np

from ..._c import lib


class TapeBudgetError(MemoryError):
    """Recording (or the reverse sweep) would take the tape past the
    ``tape_budget`` given to ``sad.autodiff`` / ``sad.autodiff_split``.

    When it propagates out of the driver, every primal is back as it was
    before the call, bit for bit, and the shadows are untouched.  Attributes:
    ``budget``, ``nbytes`` (what the tape would have held, or held when
    counted), ``held`` (what it held before the refused allocation; None for
    a count), ``records`` (its records so far), ``operation`` (what was being
    recorded, a string) and ``where`` ((file, line, function, source line) of
    ``f``'s frame, or None)."""

    def __init__(self, message, budget=None, nbytes=None, held=None, records=None,
                 operation=None, where=None):
        super().__init__(message)
        self.budget, self.nbytes, self.held = budget, nbytes, held
        self.records, self.operation, self.where = records, operation, where


class TapeMemoryWarning(RuntimeWarning):
    """A tape holds a large part of the machine's available memory
    (``WARN_FRACTION`` of what was available to it).  A RuntimeWarning, shown
    by default (ResourceWarning is not); silence it with
    ``warnings.filterwarnings("ignore", category=sad.TapeMemoryWarning)`` or
    ``sad.set_tape_report(memory_warning=False)``."""


# The warning: once a tape holds this fraction of the memory it could have
# (what it holds plus what /proc/meminfo calls available), checked from
# WARN_FROM bytes on (no reading of /proc/meminfo below it).
WARN_FRACTION = 0.5
WARN_FROM = 256 << 20
REPORT_EVERY = 256 << 20

_settings = {"report": None, "every": REPORT_EVERY, "warn": True}
INT64_MAX = (1 << 63) - 1


def set_tape_report(report=True, *, every_bytes=REPORT_EVERY, memory_warning=True):
    """Watch the tapes recorded from now on (in every thread).

    ``report``: ``True`` prints a line to stderr each time a tape grows past
    another ``every_bytes`` bytes while it records (its bytes, records, and
    the line of ``f`` it has got to); a callable is called instead with a
    dict: ``tape.stats()`` plus ``"where"`` (``"file:line"`` of ``f``, or
    None); ``None`` or ``False`` turns reports off (the default).
    ``memory_warning``: warn (``sad.TapeMemoryWarning``) once a tape holds
    half the memory available to it (Linux: /proc/meminfo's MemAvailable;
    elsewhere never), suggesting sad.checkpoint_loop.  On by default.
    With neither, recording pays nothing for either."""
    if report is not None and not isinstance(report, bool) and not callable(report):
        raise TypeError(f"sad.set_tape_report: report must be True (stderr), a callable taking "
                        f"a dict, or None/False (off); got {type(report).__name__} {report!r}")
    every_bytes = check_bytes(every_bytes, "sad.set_tape_report", "every_bytes")
    if not isinstance(memory_warning, (bool, np.bool_)):
        raise TypeError(f"sad.set_tape_report: memory_warning must be True or False, got "
                        f"{type(memory_warning).__name__} {memory_warning!r}")
    _settings.update(report=report or None, every=every_bytes, warn=bool(memory_warning))


def check_bytes(n, where, name):
    """A positive number of bytes, as an int (TypeError, ValueError)."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be a positive int (a number of bytes), got "
                        f"{type(n).__name__} {n!r}")
    n = int(n)
    if not 0 < n <= INT64_MAX:
        raise ValueError(f"{where}: {name} must be a positive number of bytes (at most "
                         f"2**63 - 1), got {n}")
    return n


def check_budget(budget, where):
    """``tape_budget``: None, or a positive int."""
    return None if budget is None else check_bytes(budget, where, "tape_budget")


class Watch:
    """What is watched on one tape: its budget (None: none), the size of its
    next report and the size at which its memory warning is looked at (None:
    none, or done).  ``precise``: a budget or reports, which want every
    Python record estimated (record_grew)."""

    __slots__ = ("budget", "report", "every", "report_at", "warn_at", "precise")

    def __init__(self, budget):
        self.budget = budget
        self.report, self.every = _settings["report"], _settings["every"]
        self.report_at = self.every if self.report is not None else None
        self.warn_at = WARN_FROM if _settings["warn"] else None
        self.precise = budget is not None or self.report is not None

    def mark(self):
        """The next size at which Python must count (0: never)."""
        marks = [m for m in (self.report_at, self.warn_at) if m is not None]
        if self.budget is not None:
            marks.append(self.budget + 1)
        return min(marks) if marks else 0


def start(tape, c, budget):
    """Set up what tape (C tape c) watches: its Watch, or None when it
    watches nothing (then recording pays nothing for it)."""
    if budget is None and _settings["report"] is None and not _settings["warn"]:
        return None
    w = Watch(budget)
    if budget is not None:
        lib.sad_tape_set_budget(c, budget)
    lib.sad_tape_set_mark(c, w.mark())
    return w


def look(tape, what=None, where=True):
    """Python's count of the tape is due (or the core refused an
    allocation): raise the budget's error, or count, report and warn, and set
    the next mark.  ``where``: False when f is not running (no line of f to
    name; nor is there once the sweep has started, tape.state)."""
    c = tape.c
    refused = lib.sad_tape_refused(c)
    if refused:
        raise refusal(tape, what, refused, where)
    s = tape.stats()
    nbytes = s["nbytes"]
    lib.sad_tape_counted(c, nbytes - lib.sad_tape_held(c))
    w = tape.watch
    if w.budget is not None and nbytes > w.budget:
        raise budget_error(tape, what, nbytes, where=where)
    if w.report_at is not None and nbytes >= w.report_at:
        _report(w.report, s, frame_of_f() if where and tape.state == "recording" else None)
        w.report_at = (nbytes // w.every + 1) * w.every
    if w.warn_at is not None and nbytes >= w.warn_at:
        w.warn_at = _warn(nbytes, tape, where)
    lib.sad_tape_set_mark(c, w.mark())


def record_grew(tape, rec, what):
    """Python record ``rec`` was added: count if that is due.  Its estimate
    costs a few microseconds: with a budget or reports every record is
    estimated, for the memory warning alone one in SAMPLE (times SAMPLE)."""
    w = tape.watch
    if w is None:
        return
    if w.precise:
        n = estimate(rec)
    elif len(tape.py) % SAMPLE == 0:
        n = SAMPLE * estimate(rec)
    else:
        n = 0
    if lib.sad_tape_grew(tape.c, n):
        look(tape, what)


SAMPLE = 16


def finish(tape, what, where=False):
    """With a budget: count now (f has returned, or the sweep has ended), so
    that a call that succeeds never held more than its budget."""
    w = tape.watch
    if w is not None and w.budget is not None:
        look(tape, what, where)


def out_of_memory(tape, what, message=None, where=True):
    """The error of a call that got no memory for ``what``: the budget's if
    it refused, else MemoryError(message)."""
    refused = lib.sad_tape_refused(tape.c)
    if refused:
        return refusal(tape, what, refused, where)
    return MemoryError(message or f"shadowad: out of memory while recording {describe(what)}")


# --------------------------------------------------------------------------
# the estimate of what Python adds (see the module's docstring)

PER_OBJECT = 256  # bytes of Python objects around an array (headers, cells)
_FUNCTION = types.FunctionType
_ATOMS = (int, float, bool, str, type(None))


def estimate(obj, depth=3):
    """The bytes Python holds in ``obj`` that a record may add to the tape:
    the data of arrays that own it, in obj and, to ``depth`` levels, in the
    tuples, lists, closures and slotted objects it holds (a Python record, a
    traced array: what its pullback closes over), plus PER_OBJECT per object."""
    total = 0
    stack = [(obj, depth)]
    while stack:
        o, d = stack.pop()
        t = type(o)
        if t in _ATOMS:
            continue
        total += PER_OBJECT
        if t is np.ndarray:
            if o.base is None:
                total += o.nbytes
            continue
        if d == 0:
            continue
        d -= 1
        if t is _FUNCTION:
            for cell in o.__closure__ or ():
                try:
                    stack.append((cell.cell_contents, d))
                except ValueError:  # an empty cell
                    pass
        elif t is tuple or t is list:
            stack.extend((x, d) for x in o)
        else:
            p = getattr(o, "p", None)  # a traced array: its primal
            if p is not None:
                stack.append((p, d))
            for name in getattr(t, "__slots__", ()):
                stack.append((getattr(o, name, None), d))
    return total


# --------------------------------------------------------------------------
# messages

_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SKIP = (_PACKAGE + os.sep, os.path.dirname(np.__file__) + os.sep)


def frame_of_f():
    """(file, line, function, source line) of the innermost frame outside
    shadowad and numpy: the line of the user's code running now, or None."""
    f = sys._getframe(1)
    while f is not None:
        name = f.f_code.co_filename
        if not os.path.abspath(name).startswith(_SKIP):
            line = linecache.getline(name, f.f_lineno).strip()
            return name, f.f_lineno, f.f_code.co_name, line
        f = f.f_back
    return None


def size(n):
    """n bytes, readably."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


def describe(what):
    """The operation, for messages: a ufunc by its numpy name, a Python
    record (given as its pullback) by the function that made it."""
    if what is None:
        return "an operation"
    if isinstance(what, np.ufunc):
        return f"np.{what.__name__}"
    if type(what) is _FUNCTION:
        return f"a Python record ({what.__qualname__.split('.<locals>')[0]})"
    return str(what)


SUGGESTION = ("Record less: sad.checkpoint_loop(body, n, *state, snapshots=s) runs a time loop "
              "keeping a few snapshots of its state and re-running steps in the reverse sweep "
              "(binomial checkpointing) instead of taping every step, and sad.checkpoint(fn, "
              "*args) recomputes one region in the sweep instead of taping it; or give a "
              "larger tape_budget. tape.stats() (autodiff_split) says what a tape holds.")


def refusal(tape, what, asked, where):
    """The TapeBudgetError of the core's refusal of ``asked`` bytes."""
    held = tape.stats()["nbytes"]
    return budget_error(tape, what, held + asked, held, where)


def budget_error(tape, what, nbytes, held=None, where=True):
    """The TapeBudgetError of ``tape`` when recording ``what`` would make it
    hold ``nbytes`` bytes (``held``: what it holds now, if known)."""
    budget = tape.watch.budget if tape.watch is not None else None
    records = len(tape)
    op = describe(what)
    at = frame_of_f() if where and tape.state == "recording" else None
    over = f"past its budget (tape_budget={budget:,} bytes)"
    count = (f"{records:,} records so far" if tape.state == "recording"
             else f"while sweeping its {records:,} records")
    if held is not None:
        lines = [f"shadowad: tape budget exceeded: {op} needed {size(nbytes - held)} "
                 f"more on a tape holding {size(held)}, {over}; {count}."]
    else:
        lines = [f"shadowad: tape budget exceeded: the tape holds {size(nbytes)}, {over}, "
                 f"counted after {op}; {count}."]
    if at is not None:
        file, line, func, text = at
        lines.append(f"f had got to {file}:{line} (in {func}): {text}")
    lines.append("The driver restores every primal and leaves the shadows untouched. "
                 + SUGGESTION)
    return TapeBudgetError("\n".join(lines), budget=budget, nbytes=nbytes, held=held,
                           records=records, operation=op, where=at)


def _report(report, stats, at):
    where = f"{at[0]}:{at[1]}" if at is not None else None
    if report is True:
        sys.stderr.write(f"shadowad: the tape holds {size(stats['nbytes'])} in "
                         f"{stats['records']:,} records"
                         + (f", f at {where}" if where else "") + "\n")
        return
    report(dict(stats, where=where))


def available_memory():
    """/proc/meminfo's MemAvailable in bytes, or None (not Linux, unreadable)."""
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _warn(nbytes, tape, where):
    """Warn if the tape holds WARN_FRACTION of the memory it could have; the
    next size to look again at (None: warned, or cannot tell)."""
    avail = available_memory()
    if avail is None:
        return None
    threshold = int(WARN_FRACTION * (nbytes + avail))
    if nbytes < threshold:
        return threshold
    at = frame_of_f() if where and tape.state == "recording" else None
    there = f" (f at {at[0]}:{at[1]})" if at is not None else ""
    warnings.warn(
        f"shadowad: the tape holds {size(nbytes)} in {len(tape):,} records{there}, "
        f"{nbytes / (nbytes + avail):.0%} of the memory available to it; recording on may "
        f"run out of memory. {SUGGESTION}", TapeMemoryWarning, stacklevel=_user_level())
    return None


def _user_level():
    """warnings.warn's stacklevel that names f's frame."""
    f, level = sys._getframe(1), 1
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(_SKIP):
        f, level = f.f_back, level + 1
    return level
