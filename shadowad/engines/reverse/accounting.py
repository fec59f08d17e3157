"""What a tape holds: the bytes behind ``tape.nbytes`` and ``tape.stats()``.

The C core keeps its own counters as it allocates (csrc sad_tape_sizes: the
record array, arenas, save stack and lazy-shadow slots, each a running
total).  What Python holds for the tape is counted by ``Holdings``, which
walks each object once, when a look (stats(), nbytes, the summary after the
sweep) first finds it: from the tape's append-only lists (kept operands,
shadows of temporaries, Python records, copies of untraced constants) it
walks only the entries added since the last look, through containers,
closures and traced values, remembering every object it reached.  So all
the looks at one tape together cost one walk of what it holds, whatever
their number, plus per look a walk of the snapshots' index (one entry per
memory region records read as a plain array: usually a few): a budget
check after every record costs O(1) per record, amortized.  An array's
data is counted once, with the object that owns it (numpy points every view
at its owner): views of one buffer, and snapshots shared by several records,
cost their memory once.

What can change after it was reached is measured again at every look: the
tape's own lists, its snapshots (shadowad/engines/reverse/snapshots.py: its
index of regions is replaced as it goes), and objects whose class defines
``__sizeof__`` for memory it manages (a sad.Vector's C buffer).  Other
containers are measured when first reached: the tape's records do not grow
them afterwards.  ``recount`` walks everything from scratch (the same rules,
the definition the incremental count must equal: tests/test_accounting.py).

Nothing the tape holds is released before the tape is freed (arenas and
lazy-shadow blocks are reused, never given back; a Python record's swap
replaces what it saved by as many bytes), so ``nbytes`` only grows while
recording and sweeping, and its high-water mark is its value as the sweep
ends.  The summary then (Tape.final_stats) is a recount: the sweep changes
objects the looks walked (swaps, adjoints of lazy temporaries), which
reports to no list.

Not counted: the memory of ``f``'s arguments (values and shadows the caller
passed: alive whether or not the tape is), what the C core counts (lazy
shadows viewed from Python), and objects that belong to the program rather
than to one call (modules, classes, functions' code and globals, numpy
ufuncs).  An object the tape references that the program also holds for
other reasons (a global array handed to a kernel) is counted: the tape
cannot tell.
"""
import gc
import sys
import types

import numpy as np

from ..._c import ffi, lib

_STOP = (type, types.ModuleType, types.CodeType, types.FrameType, types.GeneratorType,
         types.CoroutineType, str, int, type(None), np.ufunc, np.dtype, type(lib), type(ffi))
_BUILTIN = types.BuiltinFunctionType
_NDARRAY, _getsizeof = np.ndarray, sys.getsizeof


def owned_ids(objects):
    """ids of what ``objects`` (f's arguments) hold: every array's owner of its
    data as well as the objects themselves."""
    out = set()
    for o in objects:
        out.add(id(o))
        if isinstance(o, np.ndarray):
            owner = _owner(o)
            out.add(id(owner))
    return out


def _owner(a):
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


def resizable(t):
    """Does an object of type t change size after it was reached?  A Python
    class that defines __sizeof__ manages memory of its own (sad.Vector)."""
    return bool(t.__flags__ & _HEAPTYPE) and "__sizeof__" in t.__dict__


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made at run time, not a builtin


def held_bytes(roots, seen, stop_types=(), fixed=(), grown=None):
    """Bytes of the objects reachable from ``roots`` that are not in ``seen``
    or ``fixed`` (ids; those reached are added to ``seen``).  ``grown``: a
    list that receives the resizable objects reached (see resizable), with
    the size counted."""
    total = 0
    stack = list(roots)
    while stack:
        o = stack.pop()
        i = id(o)
        if i in seen or i in fixed:
            continue
        seen.add(i)
        t = type(o)
        if t is _NDARRAY:  # most of what a tape holds: first, as below
            total += _getsizeof(o)
            if o.base is not None:
                stack.append(o.base)
            continue
        if isinstance(o, _STOP) or t in stop_types:
            continue
        if isinstance(o, np.ndarray):
            total += sys.getsizeof(o)  # the header, and the data if it owns it
            if o.base is not None:
                stack.append(o.base)
            continue
        if t is types.FunctionType:
            total += sys.getsizeof(o)
            if o.__closure__:
                stack.extend(o.__closure__)
            if o.__defaults__:
                stack.append(o.__defaults__)
            if o.__kwdefaults__:
                stack.append(o.__kwdefaults__)
            continue
        if t is _BUILTIN:  # e.g. a bound array method: its array, not its module
            total += sys.getsizeof(o)
            if isinstance(getattr(o, "__self__", None), np.ndarray):
                stack.append(o.__self__)
            continue
        size = sys.getsizeof(o)  # a sad.Vector's includes its C memory
        total += size
        if grown is not None and resizable(t):
            grown.append([o, size])
        skip = getattr(t, "ACCOUNTING_SKIPS", None)
        if skip is None:
            stack.extend(gc.get_referents(o))
        else:  # attributes its class counts otherwise (a cached view: TArray._s), left out
            names = skip if type(skip) is tuple else (skip,)
            left = [getattr(o, name, None) for name in names]
            stack.extend(r for r in gc.get_referents(o) if not any(r is x for x in left))
    return total


# the tape's append-only lists, in the order their new entries are walked
# (what a Python record saved counts as saved bytes, shadows of temporaries
# as shadow bytes, the rest as kept bytes)
LISTS = ("py", "shadows", "keep", "untraced")


class Holdings:
    """The bytes Python holds for one tape, by kind, counted incrementally
    (see the module's docstring).  ``update(tape)`` walks what was added
    since the last update and returns (saved, shadows, kept)."""

    __slots__ = ("seen", "stop", "cursors", "saved", "shadows", "kept", "grown")

    def __init__(self, arguments, stop_types):
        self.seen = owned_ids(arguments)
        self.stop = stop_types
        self.cursors = dict.fromkeys(LISTS, 0)
        self.saved = self.shadows = self.kept = 0
        self.grown = []  # [object, size counted] of resizable objects reached

    def _new(self, tape, name, upto=None):
        items = getattr(tape, name)
        start = self.cursors[name]
        if len(items) < start:  # the count would miss what replaced the dropped entries
            raise AssertionError(f"shadowad: tape.{name} shrank; the tape's lists only grow "
                                 "until it is freed (accounting.Holdings relies on it)")
        end = len(items) if upto is None else max(start, min(upto, len(items)))
        self.cursors[name] = end
        return items[start:end]

    def before(self, seg):
        """Has this count walked nothing the records since Segment ``seg``
        hold (so that dropping them leaves it right)?"""
        c = self.cursors
        return c["py"] <= seg.py and c["shadows"] <= seg.shadows and c["keep"] <= seg.keep

    def segment_bytes(self, tape, seg):
        """What the entries since ``seg`` hold beyond what this count has
        reached, counted without remembering them (they are about to be
        dropped: Tape.drop)."""
        py, shadows = tape.py[seg.py:], tape.shadows[seg.shadows:]
        saved = [r.saved for r in py if r.saved is not None]
        return held_bytes(saved + shadows + tape.keep[seg.keep:] + py, set(), self.stop,
                          fixed=self.seen)

    def update(self, tape, upto=None):
        """``upto``: a Segment; the entries since it are left unwalked."""
        seen, stop, grown = self.seen, self.stop, self.grown
        py = self._new(tape, "py", upto and upto.py)
        shadows = self._new(tape, "shadows", upto and upto.shadows)
        keep = self._new(tape, "keep", upto and upto.keep)
        untraced = self._new(tape, "untraced")
        if py or shadows or keep or untraced:  # (a look after every drop often finds none)
            self.saved += held_bytes([r.saved for r in py if r.saved is not None], seen,
                                     stop, grown=grown)
            self.shadows += held_bytes(shadows, seen, stop, grown=grown)
            self.kept += held_bytes(keep + py + untraced, seen, stop, grown=grown)
        for entry in grown:  # a Vector's C buffer may have grown since
            size = sys.getsizeof(entry[0])
            self.kept += size - entry[1]
            entry[1] = size
        lists = [getattr(tape, name) for name in LISTS]
        # measured afresh: the lists themselves, and the snapshots (what a
        # record also holds otherwise is counted there, once)
        fresh = sum(sys.getsizeof(x) for x in lists)
        fresh += held_bytes([tape.snaps], set(), stop, fixed=seen)
        return self.saved, self.shadows, self.kept + fresh


def recount(tape, stop_types):
    """(saved, shadows, kept) as Holdings counts them, walked from scratch:
    the definition Holdings must equal, for tests and debugging (it costs a
    walk of everything the tape holds)."""
    seen = owned_ids(tape.arguments)
    saved = held_bytes([r.saved for r in tape.py if r.saved is not None], seen, stop_types)
    shadows = held_bytes(tape.shadows, seen, stop_types)
    lists = [getattr(tape, name) for name in LISTS]
    kept = held_bytes(lists, seen, stop_types) + held_bytes([tape.snaps], seen, stop_types)
    return saved, shadows, kept
