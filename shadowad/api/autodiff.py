"""The drivers: autodiff, autodiff_split, gradient.

Reverse mode wraps each annotated argument as a traced value, runs ``f`` once
while the C tape records, seeds the result, runs the reverse sweep (one C call
that hands control to Python only for Python records), then re-applies the
primal effects (redo) unless ``restore=True``.
"""
import weakref

import numpy as np

from .. import activity as act
from ..engines.nested import engine as nested
from ..engines.reverse import untraced
from ..support.aliasing import check_call, sharing_groups, span
from .._c import lib
from ..engines.reverse import watch
from ..engines.reverse.tape import Tape, tape_var
from ..engines.reverse.buffers import Buffer, shadow_of
from ..engines.reverse.errors import mixed_tapes_error
from ..engines.reverse.scalar import TScalar
from ..engines.reverse.traced import TArray
from .vector import Vector, TracedVector


def _annotate(a):
    return a if isinstance(a, act.ANNOTATIONS) else act.Const(a)


_CALLS = {"jacobian": "sad.jacobian(f, x, *consts)", "gradient": "sad.gradient(f, *args)"}


def check_function(f, driver):
    if not callable(f):
        call = _CALLS.get(driver, f"sad.{driver}(f, *annotated_args)")
        raise TypeError(f"sad.{driver}: f must be callable (the function to "
                        f"differentiate), got {type(f).__name__}; the call is {call}")


def _check_mode(mode):
    if not isinstance(mode, act.Mode):
        raise TypeError(f"mode must be one of Reverse, ReverseWithPrimal, Forward, "
                        f"ForwardWithPrimal; got {mode!r}")


class _Arg:
    """How one annotated argument was passed to f, and where its gradient is.
    ``before``: a Vector shadow's contents at the call, for a failed sweep to
    put back (recording changes its length; see _shadow_copies)."""

    __slots__ = ("ann", "traced", "grad", "before")

    def __init__(self, ann, traced, grad=None):
        self.ann, self.traced, self.grad = ann, traced, grad
        self.before = None

    def gradient(self):
        if type(self.ann) is not act.Active:
            return None
        if type(self.traced) is TScalar:
            return lib.sad_pair_grad(self.traced.g)
        return self.grad


def _wrap(k, ann, tape, shared):
    label = f"argument {k}"
    t = type(ann)
    if t is act.Const:
        v = ann.val
        if untraced.traceable(v):
            buf = shared.get(k) or Buffer(tape, v, None, label=label)
            return _Arg(ann, TArray(v, None, buf))
        if isinstance(v, Vector):
            key = ("vector", id(v))  # one traced Vector however often it is passed
            if key not in shared:
                shared[key] = TracedVector(tape, v, None, label)
            return _Arg(ann, shared[key])
        return _Arg(ann, v)
    if t is act.Active:
        v = ann.val
        if isinstance(v, float):
            s, _ = _new_active_scalar(tape, v)
            return _Arg(ann, s)
        g = np.zeros(v.shape, v.dtype)
        p = v.view()
        p.flags.writeable = False
        return _Arg(ann, TArray(p, g, Buffer(tape, p, g, readonly=True, label=label)), g)
    if t is act.Duplicated or t is act.DuplicatedNoNeed:
        v = ann.val
        if isinstance(v, float):
            raise TypeError(f"{label}: Duplicated(float, float) is for forward mode; "
                            "in reverse mode pass a float as Active(x) to get its gradient")
        if isinstance(v, Vector):
            arg = _Arg(ann, TracedVector(tape, v, ann.dval, label))
            if tape.budget and isinstance(ann.dval, Vector):
                arg.before = ann.dval[:]
            return arg
        return _Arg(ann, TArray(v, ann.dval, Buffer(tape, v, ann.dval, label=label)))
    if t is act.BatchDuplicated:
        v = ann.val
        if isinstance(v, float):
            raise TypeError(f"{label}: BatchDuplicated(float, ...) is for forward mode; in "
                            "reverse mode pass a float as Active(x) (its gradients come "
                            "back one per lane)")
        if isinstance(v, Vector):
            raise NotImplementedError(f"{label}: BatchDuplicated of a Vector is not "
                                      "supported in reverse mode; pass Duplicated(v, dv) "
                                      "and call autodiff once per seed")
        buf = shared.get(k)
        if buf is not None:
            s = buf.view_shadow(v)
            return _Arg(ann, TArray(v, s, buf), s)
        s = np.zeros_like(v)  # one lane's shadow at a time (see _finish_batch)
        return _Arg(ann, TArray(v, s, Buffer(tape, v, s, label=label)), s)
    raise TypeError(f"{label}: unknown annotation {ann!r}")


def _new_active_scalar(tape, v):
    from ..engines.reverse.scalar import new_scalar
    return new_scalar(tape, v)


def _shared_buffers(annotated, tape):
    """{argument index: Buffer} for arguments that share memory with another
    argument of the same activity, one Buffer per group (check_call has made
    sure their shadows correspond).  Const arrays: an active value written
    through one of them promotes the memory and is seen when reading through
    another.  BatchDuplicated arrays: one lane's shadow at a time (see
    _finish_batch) is one memory for the whole group."""
    shared = {}
    for kinds, active in (((act.Const,), False), ((act.BatchDuplicated,), True)):
        for members in sharing_groups(annotated, kinds):
            members = [k for k in members if untraced.traceable(annotated[k].val)]
            if len(members) < 2:
                continue
            first = annotated[members[0]].val
            buf = Buffer(tape, first, None, label=f"argument {members[0]}",
                         span=span([annotated[k].val for k in members]))
            if active:
                buf.promote()
            shared.update((k, buf) for k in members)
    return shared


def _caller_memory(annotated):
    """What the caller passed: values and shadows (the tape does not count
    their memory, tape.stats)."""
    out = []
    for a in annotated:
        out.append(a.val)
        if type(a) is act.BatchDuplicated:
            out.extend(a.dvals)
        elif type(a) is not act.Const and type(a) is not act.Active:
            out.append(a.dval)
    return out


def record_call(f, args, tape):
    """Run f on traced arguments, recording on ``tape``; if anything fails
    (a refused argument, f itself), the primals are put back and the tape
    freed before the exception propagates."""
    try:
        annotated = [_annotate(a) for a in args]
        check_call(annotated)
        # first: what the tape counts (stats) leaves the caller's memory out
        tape.arguments = _caller_memory(annotated)
        shared = _shared_buffers(annotated, tape)
        wrapped = [_wrap(k, a, tape, shared) for k, a in enumerate(annotated)]
        tape.untraced = untraced.copies(annotated)
        tape.untraced_note = untraced.note(annotated)
        # with a budget: what the arguments cost the tape, counted
        watch.finish(tape, "wrapping the arguments")
        token = tape_var.set(tape)
        try:
            res = f(*[w.traced for w in wrapped])
        finally:
            tape_var.reset(token)
        watch.finish(tape, "f returned")  # with a budget: what f left, counted
    except BaseException:
        tape.undo()
        tape.free()
        raise
    return wrapped, res


def _value_of(v):
    """f's scalar value as autodiff returns it: a float, or numpy's float32
    for a float32 result (the value numpy computed, in its dtype)."""
    if getattr(v, "dtype", None) == np.float32:
        return np.float32(v)
    return float(v)


def _result_value(res, tape):
    """(primal value, seed target) of f's result in reverse mode."""
    if res is None:
        return None, None
    t = type(res)
    if t is TScalar:
        if res.tape is not tape:
            raise mixed_tapes_error()
        return res.v, res
    if t is TArray and res.ndim == 0:
        if res.buf.tape is not tape:
            raise mixed_tapes_error()
        return _value_of(res.p), res
    if isinstance(res, (float, int, np.floating, np.integer)) and not isinstance(res, bool):
        return _value_of(res), None
    if isinstance(res, np.ndarray) and res.ndim == 0 and res.dtype.kind in "iuf":
        return _value_of(res), None
    shape = getattr(res, "shape", None)
    name = type(res).__name__
    what = (f"an array of shape {shape}" if shape is not None
            else f"{'an' if name[:1] in 'aeiouAEIOU' else 'a'} {name}")
    raise TypeError(f"f returned {what}; reverse mode needs a scalar result (seeded with "
                    "1.0) or None (then the shadows of mutated arguments seed the sweep). "
                    "Return e.g. np.sum(...), or use sad.jacobian for array results")


def _seed(target, seed):
    if target is None:
        return
    if type(target) is TScalar:
        lib.sad_pair_add(target.g, float(seed))
    else:
        s = shadow_of(target)
        if s is not None:
            s[...] += seed


# The last redo copies back every byte the sweep restored, once per record
# that overwrote it: an in-place LU of an n x n matrix saves about n/3 times
# the matrix.  Where that is more than this many times the memory f wrote
# into, a copy of that memory taken before the sweep is put back instead.
FINAL_COPY_RATIO = 2


def _final_copies(tape):
    """Copies of the memory f wrote (the tape's kept, writable roots), taken
    before the sweep, when putting them back is cheaper than the last redo
    (see FINAL_COPY_RATIO); None to redo."""
    redo = lib.sad_tape_redo_bytes(tape.c, lib.sad_tape_restore_floor(tape.c))
    if redo <= 0:
        return None
    roots = {id(b.root): b.root for b in tape.keep
             if type(b) is Buffer and b.kept and not b.readonly and b.root.flags.writeable}
    if redo <= FINAL_COPY_RATIO * sum(r.nbytes for r in roots.values()):
        return None
    return [(r, r.copy(order="K")) for r in roots.values()]


def _leave_final(tape, copies):
    """After the sweep: leave f's final values in memory, as the last redo
    would (the tape is freed next and never undone)."""
    if copies is None:
        tape.redo(last=True)
        return
    for root, final in copies:
        np.copyto(root, final)
    tape.applied = None


def _finish(tape, wrapped, target, seed, restore):
    # a custom rule's reverse, or the budget, may stop the sweep half-way:
    # the arguments' shadows are then put back as they were (the primals are)
    shadows = _shadow_copies(wrapped) if tape.user_rules or tape.budget else ()
    try:
        _seed(target, seed)
        copies = None if restore else _final_copies(tape)
        tape.final_sweep = True
        tape.reverse()
        if restore:
            tape.undo()  # what the sweep left applied (Tape.reverse)
        else:
            _leave_final(tape, copies)
        grads = tuple(w.gradient() for w in wrapped)
    except BaseException:
        _put_back(shadows)
        raise
    finally:
        tape.free()
    return grads


def _shadow_copies(wrapped):
    """(shadow, its contents before the call) of every Duplicated array
    argument, and of every Duplicated Vector argument copied at the call."""
    out = []
    for w in wrapped:
        if isinstance(w.ann, act.Duplicated):
            if isinstance(w.ann.dval, np.ndarray):
                out.append((w.ann.dval, np.array(w.ann.dval)))
            elif w.before is not None:
                out.append((w.ann.dval, w.before))
    return out


def _put_back(shadows):
    """Every shadow of _shadow_copies back as it was."""
    for dval, before in shadows:
        if isinstance(dval, Vector):
            dval._reset(before)
        else:
            dval[...] = before


def _adjoint_memory(tape):
    """(arrays, traced Vectors) whose adjoints the tape's records accumulate
    into, besides the C core's own pairs."""
    arrays = list(tape.shadows)
    vectors = []
    for o in tape.keep:
        if type(o) is Buffer and o.shadow is not None:
            arrays.append(o.mem if o.mem is not None else o.shadow)
        elif type(o) is TracedVector:
            vectors.append(o)
    return arrays, vectors


def _zero_adjoints(tape, memory):
    """Zero every adjoint the tape's records accumulate into, before sweeping
    the same tape again for another seed (``memory`` from _adjoint_memory)."""
    lib.sad_tape_zero_adjoints(tape.c)
    arrays, vectors = memory
    for a in arrays:
        a.fill(0.0)
    for v in vectors:
        if v.vs is not None:  # as long as the Vector f left (the sweep made it as before f)
            v.vs._reset(np.zeros(len(v.v)))


def _copied(g):
    return g.copy() if isinstance(g, np.ndarray) else g


def sweep_lanes(tape, lanes, before, after, restore):
    """Sweep one recorded tape once per lane: ``before(lane)`` seeds, the
    reverse sweep runs, ``after(lane)`` collects; the primal effects are
    re-applied between lanes, and at the end unless ``restore``."""
    memory, sizes = None, None
    copies = None if restore else _final_copies(tape)
    for lane in range(lanes):
        if lane:
            tape.redo()
            # gathered again only when the tape has grown: a pullback gave a
            # lazy shadow numpy memory, or promoted memory, in the last sweep
            if sizes != (len(tape.shadows), len(tape.keep)):
                sizes = (len(tape.shadows), len(tape.keep))
                memory = _adjoint_memory(tape)
            _zero_adjoints(tape, memory)
        before(lane)
        tape.final_sweep = lane == lanes - 1
        tape.reverse()
        after(lane)
    if restore:
        tape.undo()  # what the last sweep left applied (Tape.reverse)
    else:
        _leave_final(tape, copies)


def _finish_batch(tape, wrapped, target, lanes, restore):
    """BatchDuplicated in reverse mode: k seeds swept over one tape; each
    Active argument gets a tuple of k gradients."""
    batch = [w for w in wrapped if type(w.ann) is act.BatchDuplicated]
    per_lane, shadows = [], []

    def before(lane):
        for w in batch:
            w.grad[...] = w.ann.dvals[lane]
        _seed(target, 1.0)

    def after(lane):
        # kept aside: the caller's shadows change only once every lane's sweep
        # has succeeded (failure atomicity)
        shadows.append([w.grad.copy() for w in batch])
        per_lane.append([_copied(w.gradient()) for w in wrapped])

    try:
        sweep_lanes(tape, lanes, before, after, restore)
    finally:
        tape.free()
    for lane, grads in enumerate(shadows):
        for w, g in zip(batch, grads):
            w.ann.dvals[lane][...] = g
    return tuple(None if per_lane[0][k] is None else tuple(g[k] for g in per_lane)
                 for k in range(len(wrapped)))


def autodiff(f, *args, mode=act.Reverse, restore=False, tape_budget=None):
    """Differentiate ``f`` at the annotated arguments ``args``.

    Reverse: returns one entry per argument, the gradient for Active arguments
    and None for the others; the gradients of Duplicated arguments are *added*
    to their shadows.  ReverseWithPrimal returns (gradients, primal result).
    After the call, mutated arrays hold what ``f`` left in them, or, with
    ``restore=True``, their values before the call, bit for bit.  If ``f``
    raises, every primal is restored, shadows are untouched, and the exception
    propagates.

    ``tape_budget``: the most bytes the tape may hold (``tape.stats()``'s
    ``nbytes``, over recording and the reverse sweep), a positive int, or
    None.  Before it would hold more, ``sad.TapeBudgetError`` (a MemoryError)
    is raised, with every primal restored and the shadows untouched; its
    message says what was needed, how far ``f`` got and how to record less
    (``sad.checkpoint_loop``).  Forward mode records no tape, and a call
    nested inside a running differentiation records on the enclosing tape,
    which the enclosing call's budget bounds: there it bounds nothing.
    """
    check_function(f, "autodiff")
    _check_mode(mode)
    _check_restore(restore, "sad.autodiff")
    budget = watch.check_budget(tape_budget, "sad.autodiff")
    annotated = [_annotate(a) for a in args]
    if nested.wanted(annotated):  # inside a running differentiation
        check_call(annotated)
        kept = untraced.copies(annotated, traced_float64=False)  # it traces no plain memory
        try:
            out = nested.autodiff(f, annotated, mode, restore)
        except BaseException:
            untraced.put_back(kept)
            raise
        if restore:
            untraced.put_back(kept)
        return out
    if not mode.reverse:
        for k, a in enumerate(annotated):
            if type(a) is act.Active:
                raise TypeError(f"argument {k}: Active is not allowed in {mode}: forward "
                                "mode propagates tangents; pass Duplicated(x, dx) with the "
                                "tangent dx")
        from ..engines.forward.forward import forward
        return forward(f, annotated, mode.with_primal, restore)
    lanes = act.lane_count(annotated, "reverse mode")
    tape, wrapped, value, target = _recorded(f, annotated, budget)
    if any(type(a) is act.BatchDuplicated for a in annotated):
        grads = _finish_batch(tape, wrapped, target, lanes, restore)
    else:
        grads = _finish(tape, wrapped, target, 1.0, restore)
    return (grads, value) if mode.with_primal else grads


def _seed_value(seed):
    """``tape.reverse``'s seed as a float: a real scalar, the adjoint of f's
    scalar result (of no effect when f returned None, as generic callers
    such as shadowad.testing seed every tape)."""
    if isinstance(seed, np.ndarray) and seed.ndim == 0 and seed.dtype.kind in "iuf":
        seed = seed[()]
    if isinstance(seed, (bool, np.bool_)) or not act.is_real_scalar(seed):
        shape = getattr(seed, "shape", None)
        what = (f"an array of shape {shape}" if shape is not None
                else f"a {type(seed).__name__} ({seed!r})")
        raise TypeError(
            f"tape.reverse: seed must be a real scalar (the adjoint of f's scalar result), "
            f"got {what}. f's result is a scalar, so its seed is one number (array seeds, "
            "pulling back array results, are not supported yet); to seed arrays f "
            "mutates, pre-fill the shadows of their Duplicated arguments")
    return float(seed)


def _check_restore(restore, where):
    if not isinstance(restore, (bool, np.bool_)):
        raise TypeError(f"{where}: restore must be True or False, got "
                        f"{type(restore).__name__} {restore!r}")


def _vector_lengths(wrapped):
    """{argument index: (length of the Vector, of its shadow)} of the Vector
    arguments: the records of a split tape pop and push them by position."""
    out = {}
    for k, w in enumerate(wrapped):
        v = w.ann.val if type(w.ann) is not act.Active else None
        if isinstance(v, Vector):
            dv = getattr(w.ann, "dval", None)
            out[k] = (len(v), None if dv is None else len(dv))
    return out


def _check_lengths(before, now):
    for k, (n, m) in before.items():
        if now[k] != (n, m):
            what = f"length {n}" if m is None else f"length {n} (its shadow {m})"
            was = f"{now[k][0]}" if m is None else f"{now[k][0]} (its shadow {now[k][1]})"
            raise ValueError(
                f"tape.reverse: argument {k} is a Vector of {what} when autodiff_split "
                f"returned and of length {was} now; the records pop and push it by "
                "position, so reverse a split tape with its arguments as f left them")


class SplitTape:
    """The tape of ``autodiff_split``: reverse it once, with the seed you choose."""

    def __init__(self, tape, wrapped, target):
        self._tape, self._wrapped, self._target = tape, wrapped, target
        self._used = False
        self._lengths = _vector_lengths(wrapped)
        # Dropped without reverse(): its memory goes at once (see Tape.free).
        # Nothing the tape holds points back here, so the drop is seen then.
        weakref.finalize(self, tape.free)

    def __len__(self):
        """Its number of records (after the sweep: those it had)."""
        return self._tape.stats()["records"] if self._used else len(self._tape)

    @property
    def nbytes(self):
        """Every byte the tape holds (0 after the sweep, which frees it)."""
        return self._tape.nbytes

    def stats(self):
        """What the tape holds: records and bytes, and the peak over recording
        and the sweep (see Tape.stats in shadowad/engines/reverse/tape.py for each key).
        After reverse() the tape holds nothing: its bytes are 0, its records
        and peak_nbytes stay as they were."""
        return self._tape.stats()

    def _check(self):
        if self._used:
            raise RuntimeError("this tape has been reversed already; a tape is used once")

    def reverse(self, seed=1.0, restore=False):
        """Run the reverse sweep and return the gradients as Reverse does:
        ``seed`` is the adjoint of f's scalar result."""
        self._check()
        seed = _seed_value(seed)
        _check_restore(restore, "tape.reverse")
        _check_lengths(self._lengths, _vector_lengths(self._wrapped))
        self._used = True
        self._tape.summarize = True  # stats() after the sweep
        return _finish(self._tape, self._wrapped, self._target, seed, restore)


def autodiff_split(f, *args, tape_budget=None):
    """Run ``f`` recording a tape; return ``(result, tape)``.  The primal
    effects of ``f`` are visible; ``tape.reverse(seed=1.0)`` then returns the
    gradients.  Do not modify the arguments in between.  ``tape_budget``
    bounds the tape's bytes over recording and its sweep, as for autodiff."""
    check_function(f, "autodiff_split")
    budget = watch.check_budget(tape_budget, "sad.autodiff_split")
    if nested.running():
        raise TypeError("sad.autodiff_split is not supported inside a function being "
                        "differentiated (nested differentiation); use sad.autodiff")
    if any(type(a) is act.BatchDuplicated for a in args):
        raise TypeError("sad.autodiff_split: BatchDuplicated is not supported (a split "
                        "tape is reversed once, with one seed); use sad.autodiff")
    tape, wrapped, value, target = _recorded(f, args, budget)
    return value, SplitTape(tape, wrapped, target)


def _recorded(f, annotated, budget=None):
    """f recorded on a new tape of that budget: (tape, traced arguments, f's
    value, the value the sweep seeds); a result that cannot be seeded undoes
    and frees the tape before its error propagates."""
    tape = Tape(budget)
    wrapped, res = record_call(f, annotated, tape)
    try:
        value, target = _result_value(res, tape)
    except BaseException:
        tape.undo()
        tape.free()
        raise
    return tape, wrapped, value, target


def gradient(f, *args, tape_budget=None):
    """Gradients of scalar-valued ``f``: bare floats and arrays are Active,
    ``Const(...)`` stays constant.  Returns the tuple of gradients.
    ``tape_budget``: as for autodiff."""
    check_function(f, "gradient")
    watch.check_budget(tape_budget, "sad.gradient")
    anns = []
    for a in args:
        if isinstance(a, act.ANNOTATIONS):
            anns.append(a)
        else:
            anns.append(act.Active(a))
    return autodiff(f, *anns, tape_budget=tape_budget)
