"""Const arguments shadowad does not trace: arrays that are not float64 or
float32, or not aligned (an int64 index array, a view of a bytes buffer at
an odd offset).  f gets them as they are, so their writes leave no record
for an undo to swap back.  DESIGN.md §1 still promises them back bit for bit
with restore=True and when f raises, so each writable one is copied at the
call and the copy is put back where the tape (or forward mode's Context)
puts traced memory back.  A read-only array needs no copy: f cannot write
it."""
import numpy as np

from ... import activity as act

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)


def traceable(v):
    """Does shadowad trace ndarray-or-not ``v``?  The engines read and write
    float64 and float32 elements at aligned addresses; an array they cannot is
    passed to f as it is (this module)."""
    return isinstance(v, np.ndarray) and (v.dtype == F64 or v.dtype == F32) and v.flags.aligned


def copies(annotated, traced_float64=True):
    """[(array, copy of its bytes)] for the writable Const arrays among the
    annotated arguments that shadowad does not trace (each array once).
    ``traced_float64=False``: the engine traces no plain memory at all (the
    nested engine), so aligned float64 arrays are copied too."""
    out = []
    seen = set()
    for a in annotated:
        if type(a) is not act.Const:
            continue
        v = a.val
        if not isinstance(v, np.ndarray) or id(v) in seen:
            continue
        if (traced_float64 and traceable(v)) or v.size == 0 or not v.flags.writeable:
            continue
        seen.add(id(v))
        out.append((v, v.copy(order="K")))
    return out


def note(annotated):
    """Which Const arguments shadowad does not trace, and why, for the error
    of writing a differentiated value into one ("" when there are none)."""
    parts = []
    for k, a in enumerate(annotated):
        v = a.val if type(a) is act.Const else None
        if isinstance(v, np.ndarray) and not traceable(v):
            why = v.dtype.name if v.dtype not in (F64, F32) else f"{v.dtype.name} but not aligned"
            parts.append(f"argument {k} ({why})")
    if not parts:
        return ""
    return (f" This call's Const {', '.join(parts)} {'is' if len(parts) == 1 else 'are'} not "
            "traced (shadowad traces aligned float64 and float32 arrays), so a differentiated "
            "value cannot be written into it: if that is the destination, pass an aligned float "
            "copy instead (np.array(c, dtype=float)), or Duplicated to get its gradient.")


def put_back(kept):
    """Every array of ``copies`` back as it was, bit for bit (the last first,
    so an array passed twice through views ends as at the call)."""
    for arr, saved in reversed(kept):
        np.copyto(arr, saved, casting="no")
