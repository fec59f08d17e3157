"""Checks of the annotated arguments at the call, before anything is traced.

Python validates, C trusts: the engines read and write memory through the
pointers they are given, so whatever cannot give a right gradient is refused
here, with the positions of the arguments and the fix.

Annotations check themselves when built (activity.py), but what they hold
can change before the call: a Vector shadow is popped, an array reshaped in
place.  So each annotation is checked again (``recheck``).  Then memory:

* a shadow (any lane) must not share memory with any argument's primal:
  gradients would be added into values ``f`` reads;
* memory passed twice must be passed with one activity;
* shadows must correspond one-to-one with primal memory.  Two arguments that
  share primal memory must reach it through the same shadow memory (the same
  array, or views of one shadow laid out as the primals are); arguments whose
  primals do not share memory must not share shadow memory (the same shadow
  for two memories would mix their adjoints, and a write to one zeroes the
  other's).  Partly overlapping shadows are allowed exactly where the
  primals overlap the same way, element for element;
* no two lanes of a BatchDuplicated share memory (each lane is an output).
"""
import numpy as np

from .. import activity as act
from .memory import bounds, data, element_addresses, shares_memory

__all__ = ["check_call", "sharing_groups", "span"]


def recheck(annotated):
    """Run every annotation's own checks again, naming its position."""
    for k, a in enumerate(annotated):
        try:
            act.check(a)
        except (TypeError, ValueError) as e:
            raise type(e)(f"argument {k}: {e}") from None


class _Mem:
    """One argument's memory: its primal and its shadow lanes (() when it has
    none).  ``vector``: a sad.Vector and Vector shadows, compared by identity."""

    __slots__ = ("k", "ann", "p", "lanes", "vector")

    def __init__(self, k, ann, p, lanes, vector):
        self.k, self.ann, self.p, self.lanes, self.vector = k, ann, p, lanes, vector


def _memories(annotated):
    out = []
    for k, a in enumerate(annotated):
        v = getattr(a, "val", None)
        vector = act.is_vector(v)
        if not (isinstance(v, np.ndarray) or vector):
            continue
        if isinstance(a, act.Duplicated):
            lanes = (a.dval,)
        elif type(a) is act.BatchDuplicated:
            lanes = a.dvals
        else:  # Const, or Active (its gradient is memory of the engine's own)
            lanes = ()
        if not all(isinstance(d, np.ndarray) or act.is_vector(d) for d in lanes):
            lanes = ()  # a value of a running differentiation (nested): not memory of ours
        out.append(_Mem(k, a, v, lanes, vector))
    return out


def _apart(mems):
    """Do all primals and shadow lanes lie in byte ranges that do not meet?
    Then nothing can be shared, and the exact checks have nothing to find
    (the common call: a few separate arrays, checked in a sort)."""
    spans = []
    for m in mems:
        if m.vector:
            return False  # Vectors are compared by identity in the checks
        spans.append(bounds(m.p))
        spans.extend(bounds(d) for d in m.lanes)
    spans.sort()
    return all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def _overlap(a, b, vector):
    return a is b if vector else shares_memory(a, b)


def _one_to_one(p1, s1, p2, s2):
    """Do the primal elements of two arguments and their shadow elements
    correspond one-to-one (equal primal addresses exactly where the shadow
    addresses are equal)?"""
    d1, d2 = data(s1) - data(p1), data(s2) - data(p2)
    if d1 == d2 and s1.strides == p1.strides and s2.strides == p2.strides:
        return True  # each shadow lies at one offset from its primal: views taken alike
    p = np.concatenate([element_addresses(p1).ravel(), element_addresses(p2).ravel()])
    s = np.concatenate([element_addresses(s1).ravel(), element_addresses(s2).ravel()])
    return _function_of(p, s) and _function_of(s, p)


def _function_of(a, b):
    """Are equal entries of ``a`` paired with equal entries of ``b``?"""
    order = np.argsort(a, kind="stable")
    a, b = a[order], b[order]
    same = a[1:] == a[:-1]
    return bool(np.all(b[1:][same] == b[:-1][same]))


def _lane(m, lane):
    return "the shadow" if len(m.lanes) == 1 else f"shadow {lane}"


def _name(m):
    return type(m.ann).__name__


def _shadows_vs_primals(mems):
    for ms in mems:
        for lane, s in enumerate(ms.lanes):
            for mp in mems:
                if mp.vector == ms.vector and _overlap(s, mp.p, ms.vector):
                    what = (f"is the primal Vector of argument {mp.k}" if ms.vector else
                            f"shares memory with the primal of argument {mp.k}")
                    raise ValueError(
                        f"{_lane(ms, lane)} of argument {ms.k} {what}; gradients would be "
                        "added into values f reads. Give every shadow memory of its own, "
                        "e.g. " + ("sad.Vector(np.zeros(len(v)))" if ms.vector
                                   else "np.zeros_like(x)"))


def _activities(mems):
    for i, mi in enumerate(mems):
        for mj in mems[i + 1:]:
            if mi.vector == mj.vector and type(mi.ann) is not type(mj.ann) \
                    and _overlap(mi.p, mj.p, mi.vector):
                what = "are the same Vector" if mi.vector else "share memory"
                raise ValueError(
                    f"arguments {mi.k} and {mj.k} {what} but are annotated {_name(mi)} and "
                    f"{_name(mj)}; pass shared memory with one activity (reads through "
                    "one would miss what is written through the other)")


def _lanes_apart(mems):
    """No two different lanes share memory, of one argument or of two.  (A
    jacobian pass has 64 lanes: candidates come from a sort of byte bounds,
    not from every pair.)"""
    if all(len(m.lanes) < 2 for m in mems):
        return
    spans, seen = [], {}
    for m in mems:
        for lane, s in enumerate(m.lanes):
            if m.vector:
                other = seen.setdefault(id(s), (m, lane))
                if other[1] != lane:
                    _lanes_error(other[0], other[1], m, lane)
            else:
                spans.append((*bounds(s), m, lane, s))
    spans.sort(key=lambda t: t[0])
    for i, (lo, hi, mi, li, si) in enumerate(spans):
        for lo2, _, mj, lj, sj in spans[i + 1:]:
            if lo2 >= hi:
                break
            if li != lj and shares_memory(si, sj):
                _lanes_error(mi, li, mj, lj)


def _lanes_error(mi, li, mj, lj):
    where = f"argument {mi.k}" if mi.k == mj.k else f"arguments {mi.k} and {mj.k}"
    raise ValueError(
        f"{where}: shadow {li} and shadow {lj} share memory; each lane of a "
        "BatchDuplicated is an output of its own: give every lane its own memory")


def _correspondence(mems):
    shadowed = [m for m in mems if m.lanes]
    for i, mi in enumerate(shadowed):
        for mj in shadowed[i + 1:]:
            if mi.vector != mj.vector:
                continue
            primals = _overlap(mi.p, mj.p, mi.vector)
            for lane, (si, sj) in enumerate(zip(mi.lanes, mj.lanes)):
                shadows = _overlap(si, sj, mi.vector)
                if not primals and not shadows:
                    continue
                if mi.vector:
                    ok = primals and shadows
                else:
                    ok = primals and shadows and _one_to_one(mi.p, si, mj.p, sj)
                if ok:
                    continue
                lane_txt = "" if len(mi.lanes) == 1 else f" (lane {lane})"
                if primals and mi.vector:
                    raise ValueError(
                        f"arguments {mi.k} and {mj.k} pass the same Vector with different "
                        f"shadows{lane_txt}; a Vector has one adjoint, so pass the same "
                        "shadow Vector with it each time")
                if primals:
                    raise ValueError(
                        f"arguments {mi.k} and {mj.k} pass the same memory with different "
                        f"shadows{lane_txt}; memory has one adjoint, so pass the same shadow "
                        "for it (the same array, or views of one shadow taken as the "
                        "primals are taken: Duplicated(x[a], dx[a]), Duplicated(x[b], dx[b]))")
                raise ValueError(
                    f"arguments {mi.k} and {mj.k} have shadows that share memory{lane_txt} "
                    "but primals that do not; the adjoints of two different memories would "
                    "be mixed: give each argument a shadow of its own")


def check_call(annotated):
    """Refuse, with the positions and the fix, arguments for which no engine
    could give a right gradient (see the module's docstring)."""
    recheck(annotated)
    mems = _memories(annotated)
    if (len(mems) > 1 or any(len(m.lanes) > 1 for m in mems)) and not _apart(mems):
        _shadows_vs_primals(mems)
        _activities(mems)
        _lanes_apart(mems)
        _correspondence(mems)


def sharing_groups(annotated, kinds):
    """Lists (of two or more) of the positions of the ndarray arguments of the
    annotation types ``kinds`` whose primals share memory, directly or through
    others of the list.  The engines give each list one Buffer, so that what
    is written through one argument is seen through the others."""
    ks = [k for k, a in enumerate(annotated)
          if type(a) in kinds and isinstance(a.val, np.ndarray)]
    if len(ks) < 2:
        return []
    group = {k: k for k in ks}
    for i, ki in enumerate(ks):
        for kj in ks[i + 1:]:
            if group[ki] != group[kj] and shares_memory(annotated[ki].val, annotated[kj].val):
                old, new = group[kj], group[ki]
                group = {k: (new if g == old else g) for k, g in group.items()}
    members = {}
    for k in ks:
        members.setdefault(group[k], []).append(k)
    return [m for m in members.values() if len(m) > 1]


def span(arrays):
    """(lowest, highest) byte bounds of ``arrays`` together."""
    spans = [bounds(a) for a in arrays]
    return min(b[0] for b in spans), max(b[1] for b in spans)
