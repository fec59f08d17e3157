"""What a tape holds: the bytes behind ``tape.nbytes`` and ``tape.stats()``.

The C core reports its own memory as allocated (csrc sad_tape_sizes).  What
Python holds for the tape is found on demand, never while recording: a walk
from the tape's lists (kept operands, shadows of temporaries, Python records,
snapshots, copies of untraced constants) through containers, closures and
traced values, adding up each object reached once.  An array's data is
counted once, with the object that owns it (numpy points every view at its
owner): views of one buffer, and snapshots shared by several records, cost
their memory once.

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


def held_bytes(roots, seen, stop_types=()):
    """Bytes of the objects reachable from ``roots`` that are not in ``seen``
    (ids; those reached are added to it)."""
    total = 0
    stack = list(roots)
    while stack:
        o = stack.pop()
        i = id(o)
        if i in seen:
            continue
        seen.add(i)
        t = type(o)
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
        total += sys.getsizeof(o)  # a sad.Vector's includes its C memory
        stack.extend(gc.get_referents(o))
    return total
