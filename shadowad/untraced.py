"""Const arguments shadowad does not trace: arrays that are not float64, or
not aligned (an int64 index array, float32 data, a view of a bytes buffer at
an odd offset).  f gets them as they are, so their writes leave no record
for an undo to swap back.  DESIGN.md §1 still promises them back bit for bit
with restore=True and when f raises, so each writable one is copied at the
call and the copy is put back where the tape (or forward mode's Context)
puts traced memory back.  A read-only array needs no copy: f cannot write
it."""
import numpy as np

from . import activity as act

_F64 = np.dtype(np.float64)


def copies(annotated):
    """[(array, copy of its bytes)] for the writable Const arrays among the
    annotated arguments that shadowad does not trace (each array once)."""
    out = []
    seen = set()
    for a in annotated:
        if type(a) is not act.Const:
            continue
        v = a.val
        if not isinstance(v, np.ndarray) or id(v) in seen:
            continue
        if (v.dtype == _F64 and v.flags.aligned) or v.size == 0 or not v.flags.writeable:
            continue
        seen.add(id(v))
        out.append((v, v.copy(order="K")))
    return out


def put_back(kept):
    """Every array of ``copies`` back as it was, bit for bit (the last first,
    so an array passed twice through views ends as at the call)."""
    for arr, saved in reversed(kept):
        np.copyto(arr, saved, casting="no")
