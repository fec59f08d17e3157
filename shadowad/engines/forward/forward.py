"""The forward-mode driver: ``autodiff(f, ..., mode=Forward)``.

Each argument becomes a value that carries its tangent lanes (one lane for
``Duplicated``, k for ``BatchDuplicated``); ``f`` runs once and every
operation propagates the tangents right away (no tape).  The tangent of the
result is returned, and the tangent memory of arrays ``f`` mutated holds
their output tangents.
"""
import numpy as np

from ... import activity as act
from ..reverse import untraced
from ...support.aliasing import check_call, sharing_groups, span
from ...support.memory import data
from .dual import Context, DualVector, FArray, FScalar
from ..reverse.tape import tape_var
from ..reverse.buffers import TEMPORARY, Buffer, shadow_of
from ..reverse.errors import mixed_tapes_error
from ...api.vector import Vector

_F32 = np.dtype(np.float32)


def _keeper(arr):
    """A snapshot-taker for the Context: copies arr now, returns the put-back."""
    def take():
        saved = arr.copy()

        def put_back():
            arr[...] = saved
        return put_back
    return take


def _vector_keeper(vec):
    def take():
        saved = vec[:]

        def put_back():
            vec._reset(saved)
        return put_back
    return take


class _Lanes:
    """The tangent memory of array arguments: the user's shadow itself (one
    argument, one lane, same layout as the primal) or a lanes buffer copied in
    and out.  Arguments that share memory (``members``: (primal, shadows)
    pairs, check_call has made sure their shadows correspond) share one
    Buffer and one lanes buffer over all of their memory, so that what is
    written through one is seen through the others."""

    __slots__ = ("buf", "members", "copied")

    def __init__(self, ctx, members, label):
        x, dvals = members[0]
        d = dvals[0]
        self.members = members
        self.copied = not (len(members) == 1 and len(dvals) == 1 and x.flags.c_contiguous
                           and d.flags.c_contiguous)
        self.buf = buf = Buffer(ctx, x, None, label=label,
                                span=span([m for m, _ in members]) if len(members) > 1 else None)
        if self.copied:
            buf.promote()
            for p, dvs in members:
                t = buf.view_shadow(p)
                for lane, dv in enumerate(dvs):
                    t[lane] = dv
            ctx.unsaved[buf] = [(_keeper(p), False) for p, _ in members]
        else:
            buf.attach(d.reshape(1, -1), data(x))
            ctx.unsaved[buf] = [(_keeper(x), False), (_keeper(d), True)]

    def finish(self):
        if self.copied:
            for p, dvs in self.members:
                t = self.buf.view_shadow(p)
                for lane, dv in enumerate(dvs):
                    dv[...] = t[lane]


def _wrap(k, ann, ctx, lanes, shared, finishers):
    t = type(ann)
    v = ann.val
    if t is act.Const:
        if untraced.traceable(v):
            buf = shared.get(k)
            if buf is None:
                buf = Buffer(ctx, v, None, label=f"argument {k}")
                ctx.unsaved[buf] = [(_keeper(v), False)]
            return FArray(v, None, buf)
        if isinstance(v, Vector):
            key = ("vector", id(v))
            if key not in shared:
                shared[key] = DualVector(ctx, v, None, f"argument {k}")
                ctx.unsaved[shared[key]] = [(_vector_keeper(v), False)]
            return shared[key]
        return v
    dvals = _dvals(ann)
    if isinstance(v, float):  # the tangent of one lane is a float (the rules rely on it)
        return FScalar(v, float(dvals[0]) if lanes == 1 else np.array(dvals, dtype=np.float64),
                       ctx)
    label = f"argument {k}"
    if isinstance(v, Vector):  # (check_call has compared the lengths)
        dv = DualVector(ctx, v, list(dvals), label)
        ctx.unsaved[dv] = [(_vector_keeper(v), False)] + [(_vector_keeper(d), True) for d in dvals]
        return dv
    lanes_of = shared.get(k)
    if lanes_of is None:
        lanes_of = _Lanes(ctx, [(v, dvals)], label)
        finishers.append(lanes_of)
    buf = lanes_of.buf
    return FArray(v, buf.shadow if v is buf.root else buf.view_shadow(v), buf)


def _shared(annotated, ctx, finishers):
    """{argument index: Buffer (Const) or _Lanes (the others)} for the array
    arguments that share memory with another of the same activity."""
    shared = {}
    for members in sharing_groups(annotated, (act.Const,)):
        members = [k for k in members if untraced.traceable(annotated[k].val)]
        if len(members) < 2:
            continue
        buf = Buffer(ctx, annotated[members[0]].val, None, label=f"argument {members[0]}",
                     span=span([annotated[k].val for k in members]))
        ctx.unsaved[buf] = [(_keeper(annotated[k].val), False) for k in members]
        shared.update((k, buf) for k in members)
    for members in sharing_groups(annotated, (act.Duplicated, act.DuplicatedNoNeed,
                                              act.BatchDuplicated)):
        lanes_of = _Lanes(ctx, [(annotated[k].val, _dvals(annotated[k])) for k in members],
                          f"argument {members[0]}")
        finishers.append(lanes_of)
        shared.update((k, lanes_of) for k in members)
    return shared


def _dvals(ann):
    return ann.dvals if type(ann) is act.BatchDuplicated else (ann.dval,)


def _fresh_root(res, given):
    """Is dual array ``res`` all of a temporary f made (its root, in memory of
    its own), returned for the first time?  Then its primal and its tangent
    lanes are memory nothing else will see once f has returned, and they are
    handed over as they are: copying a large result cost as much as computing
    it.  Arguments' memory, views, and a temporary returned again (the
    results must not share memory) are copied."""
    buf = res.buf
    if buf.label is not TEMPORARY or res.p is not buf.root or res.p.base is not None \
            or id(buf) in given:
        return False
    given.add(id(buf))
    return True


def _tangent(res, ctx, lanes, batched, with_primal, given):
    """(tangent, primal) of f's result; tuples and lists element by element.
    A batch call gives a tuple of ``lanes`` tangents, even of one lane.  The
    primal is None unless ``with_primal``; ``given`` holds the Buffers whose
    memory an earlier result took over (see _fresh_root)."""
    t = type(res)
    if res is None:
        return None, None
    if (t is FScalar and res.ctx is not ctx) or (t is FArray and res.buf.tape is not ctx):
        raise mixed_tapes_error()
    if t is FScalar:
        d = res.d
        if not batched:
            return float(d), res.v
        return tuple(float(x) for x in np.broadcast_to(d, (lanes,))), res.v
    if t is FArray:
        tan = shadow_of(res)
        fresh = _fresh_root(res, given)
        p = None
        if with_primal:  # a copy is in C order
            p = res.p if fresh and res.p.flags.c_contiguous else res.p.copy()
        if tan is None:
            tan = np.zeros((lanes,) + res.shape, res.p.dtype)
            fresh = True
        if res.p.dtype == _F32 and res.ndim == 0:  # numpy's scalar, as numpy gives it
            if with_primal:
                p = np.float32(res.p)
            if not batched:
                return np.float32(tan[0]), p
            return tuple(np.float32(tan[lane]) for lane in range(lanes)), p
        take = (lambda a: a) if fresh and tan[0].flags.c_contiguous else np.copy
        if not batched:
            return take(tan[0]), p
        return tuple(take(tan[lane]) for lane in range(lanes)), p
    if t is tuple or t is list:
        pairs = [_tangent(r, ctx, lanes, batched, with_primal, given) for r in res]
        return t(a for a, _ in pairs), t(b for _, b in pairs)
    if type(res) is np.float32:  # a constant float32 scalar: numpy's, as it is
        return ((np.float32(0.0),) * lanes if batched else np.float32(0.0)), res
    if isinstance(res, (float, int, np.floating, np.integer)) and not isinstance(res, bool):
        return ((0.0,) * lanes if batched else 0.0), float(res)
    if isinstance(res, np.ndarray) and res.dtype.kind in "iuf":
        z = np.zeros(res.shape, _F32 if res.dtype == _F32 else np.float64)
        return (tuple(z.copy() for _ in range(lanes)) if batched else z), \
            (res.copy() if with_primal else None)
    if t is DualVector:
        raise TypeError("f returned a traced Vector; return v[:] (an array) instead")
    raise TypeError(f"f returned a {t.__name__}; forward mode differentiates float and "
                    "array results (or tuples of them), or None")


def _scan(annotated):
    """(how many arguments are arrays or Vectors, whether one is a batch).
    Only two pieces of memory can alias (an argument's own shadow was checked
    when it was annotated); a batch returns its tangents one per lane."""
    memory, batched = 0, False
    for a in annotated:
        if isinstance(a.val, (np.ndarray, Vector)):
            memory += 1
        if type(a) is act.BatchDuplicated:
            batched = True
    return memory, batched


def forward(f, annotated, with_primal, restore, checked=False):
    """``checked``: the caller built the annotations from values it checked
    (sad.jacobian's passes), so check_call is skipped."""
    memory, batched = _scan(annotated)
    lanes = act.lane_count(annotated, "forward mode") if batched else 1
    if not checked:
        check_call(annotated)
    ctx = Context(lanes)
    try:
        finishers = []
        shared = _shared(annotated, ctx, finishers) if memory > 1 else {}
        traced = [_wrap(k, a, ctx, lanes, shared, finishers) for k, a in enumerate(annotated)]
        kept = untraced.copies(annotated)
        ctx.untraced_note = untraced.note(annotated)
        if kept:  # put back after the traced memory (Context.restore goes backwards)
            ctx.saved.insert(0, (lambda: untraced.put_back(kept), False))
        token = tape_var.set(ctx)
        try:
            res = f(*traced)
            tangent, value = _tangent(res, ctx, lanes, batched, with_primal, set())
        finally:
            tape_var.reset(token)
    except BaseException:
        ctx.restore()
        raise
    finally:
        ctx.close()  # its Buffers point back to it: no cycle keeps the call's memory
    for fin in finishers:
        fin.finish()
    if restore and ctx.saved:
        ctx.restore(shadows=False)
    return (tangent, value) if with_primal else tangent
