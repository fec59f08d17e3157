"""Nested differentiation: ``sad.autodiff`` and ``sad.jacobian`` called while
another differentiation is running (a gradient inside a function being
differentiated: Hessian-vector products, argmin over an objective that itself
takes a gradient, ...).

The entry points ask ``running()`` first: one context-variable read.  When no
differentiation is running the C engine takes the call as always.  Otherwise
the inner call runs on a trace (``nested_trace``) whose derivative formulas are
numpy on the values it is given (``nested_rules``), so the enclosing
differentiation -- C engine or another trace -- records and differentiates
everything the inner one does.  Every combination of modes nests, at any depth.

Semantics are those of DESIGN.md, in-place writes and views included
(shadowad.engines.nested.writes): an argument f writes receives its final
value when f and its derivative have succeeded.  One difference is refused
with an error rather than silently changed: a ``Duplicated`` shadow must be
able to hold the gradient it receives (a traced buffer from
``np.zeros_like(x)`` when the gradient depends on the enclosing
differentiation), and so must any memory f writes a value of this
differentiation into.
"""
import numpy as np

from ... import activity as act
from ..forward import dual
from . import rules as nested_rules  # noqa: F401  (binds the handlers: rules, writes, views)
from .box import Box, level_var, shape_of
from .trace import ForwardTrace, ReverseTrace
from ..reverse.tape import tape_var
from ..reverse.values import ARRAY_TYPES, SCALAR_TYPES, primal
from ...primitives.values import plain as plain_value


def _engine_traced(x):
    """A value of the C engine's differentiations (TArray, TScalar, FArray, FScalar)."""
    t = type(x)
    return t in ARRAY_TYPES or t in SCALAR_TYPES


# The annotations accept these as values and shadows (see activity.NESTABLE).
act.NESTABLE.update(ARRAY_TYPES | SCALAR_TYPES | {Box})


def running():
    """Whether a differentiation is running in this context, so that a call of
    sad.autodiff now is nested inside it."""
    return tape_var.get() is not None or level_var.get() > 0


_ndarray = np.ndarray
_NESTABLE = act.NESTABLE


def wanted(annotated):
    """Whether ``autodiff`` must run nested; a traced value given to a call
    when nothing is running has outlived its differentiation.  (On every call
    of sad.autodiff: two context-variable reads and a type test per argument.)"""
    if tape_var.get() is not None or level_var.get() > 0:
        return True
    for a in annotated:
        t = type(a.val)
        if t is not float and t is not _ndarray and t in _NESTABLE:
            raise RuntimeError("shadowad: a traced value was passed to sad.autodiff after "
                               "the differentiation it belongs to had returned; traced "
                               "values exist only while their function runs")
    return False


# --------------------------------------------------------------------------
# arguments

def _lift(trace, v):
    """A Const argument as the inner f sees it.  Values of the C engine and of
    an enclosing nested call become constant Boxes of this trace, so that
    ``w * x`` dispatches to this trace whichever side the outer value is on,
    and a write into them is this call's, stored one level down only when f
    returns (``_write_back``).  Plain arrays stay themselves (written in place
    at once, put back by sad.autodiff if f raises)."""
    if _engine_traced(v) or type(v) is Box:
        return Box(trace, v, None)
    if type(v) is tuple or type(v) is list:
        return type(v)(_lift(trace, e) for e in v)
    return v


def _forward_mode_error(k):
    return TypeError(f"argument {k}: Active is not allowed in forward mode: forward mode "
                     "propagates tangents; pass Duplicated(x, dx) with the tangent dx")


_F32 = np.dtype(np.float32)


def _as_float(g):
    """A plain scalar result as a float, or numpy's np.float32 for a float32
    one (as the C engine returns it); an outer-traced one stays as it is."""
    if isinstance(g, (float, np.floating)) or (isinstance(g, np.ndarray) and g.ndim == 0):
        return np.float32(g) if getattr(g, "dtype", None) == _F32 else float(g)
    return g


def _unit(v):
    """The seed 1 of a result of value v: a float, or a 0-d float32 array for a
    float32 result, so that its adjoints are computed in float32."""
    return np.ones((), _F32) if getattr(plain_value(v), "dtype", None) == _F32 else 1.0


def _added_to_zero(g):
    """g as a zero shadow holds it once g is added (the Duplicated contract,
    and every other engine's adjoint): an exact -0.0 becomes +0.0
    (docs/conventions-nonelementwise.md, "signed zeros")."""
    return g + 0.0


def _float_of(v):
    return _F32 if getattr(plain_value(v), "dtype", None) == _F32 else np.float64


def _zero_like(v):
    shape = shape_of(v)
    dt = getattr(plain_value(v), "dtype", None)
    if dt == _F32:
        return np.float32(0.0) if shape == () else np.zeros(shape, _F32)
    return 0.0 if shape == () else np.zeros(shape)


def _active_lock(k):
    return (f"argument {k}: an Active array is read-only inside f (its gradient is "
            "returned, not accumulated into memory); pass Duplicated(x, dx) to let f "
            "write to it")


def _memory(v):
    """What identifies v's memory: the root Box of an enclosing call's value,
    else the plain array under a traced one."""
    if type(v) is Box:
        return v if v.root is None else v.root
    p = primal(v)
    return p if isinstance(p, np.ndarray) else None


def _overlap(u, v):
    mu, mv = _memory(u), _memory(v)
    if mu is None or mv is None:
        return False
    if type(mu) is Box or type(mv) is Box:
        return mu is mv
    return np.may_share_memory(mu, mv)


def _changed(owned, annotated):
    """(k, annotation, Box) of the arguments f wrote to.  Inside the nested
    call every argument is a value of its own: a write to memory passed
    twice would not show in the other argument, so it is refused (before
    anything is written back)."""
    changed = [(k, a, box) for k, a, box in owned if box.v is not a.val]
    for k, a, _ in changed:
        for j, b in enumerate(annotated):
            if j != k and _overlap(a.val, b.val):
                raise NotImplementedError(
                    f"argument {k}: f wrote it, and it shares memory with argument {j}; "
                    "inside a nested differentiation the arguments are separate values, so "
                    "the write would not show in the other one. Pass that memory once "
                    "(one argument) to a nested call that writes it")
    return changed


def _check_store(mem, value, what):
    if isinstance(mem, np.ndarray) and not isinstance(value, (np.ndarray, float, np.floating)):
        raise TypeError(
            f"{what} is a plain numpy array, and f wrote into it a value that depends on "
            "the enclosing differentiation, which plain memory cannot hold. Allocate it "
            "with np.zeros_like(...) inside the function being differentiated, or let f "
            "return the new value")


def _store(mem, value, what):
    """mem[...] = value, one level down: an enclosing call's Box records it as
    its own write, a traced array of the C engine on its tape."""
    _check_store(mem, value, what)
    mem[...] = value


def _write_back(changed, shadows, restore):
    """The final values of the arguments f wrote into the memory they came
    from, and ``shadows`` ((memory, value, what) of the written shadows):
    after f and its derivative succeeded, and all checked before anything is
    written, so nothing is if anything fails.  restore=True leaves the
    primals as they were."""
    primals = [] if restore else [(a.val, box.v, f"argument {k}") for k, a, box in changed]
    for mem, value, what in shadows + primals:
        _check_store(mem, value, what)
    for mem, value, what in shadows + primals:
        _store(mem, value, what)


def _run(f, args):
    """f(*args), with numpy's message for a value it could not store into a
    plain array explained (a Box looks like a sequence to numpy, so
    ``plain[i] = box`` fails as "setting an array element with a sequence")."""
    try:
        return f(*args)
    except ValueError as e:
        if "array element with a sequence" not in str(e):
            raise
        raise TypeError(
            "shadowad: numpy could not store a value into a plain array inside a nested "
            "differentiation; if it is a value of that differentiation, storing it would "
            "silently drop its derivative. Write into a buffer of the nested function "
            "instead (np.zeros_like(x), x.copy(), x one of its values), or build arrays "
            "with np.stack / np.concatenate") from e


# --------------------------------------------------------------------------
# forward mode

def _tangent(res, trace):
    """(tangent, value) of the inner f's result; tuples and lists item by item."""
    if res is None:
        return None, None
    if type(res) is Box and res.level_trace is trace:
        t = res.d
        if t is None:
            return _zero_like(res.v), res.v
        # a copy, so that the result is never the caller's own tangent array
        return (t.copy() if type(t) is np.ndarray else _as_float(t)), res.v
    if type(res) is tuple or type(res) is list:
        pairs = [_tangent(r, trace) for r in res]
        return type(res)(a for a, _ in pairs), type(res)(b for _, b in pairs)
    return _zero_like(res), res


def _forward_lane(f, annotated, lane):
    """(tangent, value, arguments f wrote) of one run of f."""
    trace = ForwardTrace()
    args, owned = [], []
    for k, a in enumerate(annotated):
        t = type(a)
        if t is act.Active:
            raise _forward_mode_error(k)
        if t is act.Const:
            args.append(_lift(trace, a.val))
            if type(args[-1]) is Box:
                owned.append((k, a, args[-1]))
            continue
        args.append(trace.new(a.val, a.dvals[lane] if t is act.BatchDuplicated else a.dval))
        owned.append((k, a, args[-1]))
    token = trace.enter()
    try:
        tangent, value = _tangent(_run(f, args), trace)
        changed = _changed(owned, annotated)
        # the final tangents, before the trace closes (a copy: never a Box's own)
        finals = [(k, a, None if box.d is None else np.copy(box.d)) for k, a, box in changed]
        return tangent, value, changed, finals
    finally:
        trace.leave(token)
        trace.alive = False


def _forward(f, annotated, with_primal, restore):
    lanes = act.lane_count(annotated, "forward mode")
    if not any(type(a) is act.BatchDuplicated for a in annotated):
        runs = [_forward_lane(f, annotated, 0)]
        tangent, value = runs[0][:2]
    else:  # one run per lane: a Box carries one tangent
        runs = [_forward_lane(f, annotated, lane) for lane in range(lanes)]
        tangent, value = tuple(r[0] for r in runs), runs[0][1]
    # a written Duplicated argument's shadow becomes the tangent of its final value
    shadows = [(a.dvals[lane] if type(a) is act.BatchDuplicated else a.dval,
                0.0 if t is None else t, f"argument {k}'s shadow")
               for lane, run in enumerate(runs) for k, a, t in run[3] if type(a) is not act.Const]
    _write_back(runs[0][2], shadows, restore)
    return (tangent, value) if with_primal else tangent


# --------------------------------------------------------------------------
# reverse mode

def _result_node(res, trace):
    """(value, node to seed or None) of the inner f's result."""
    if res is None:
        return None, None
    node = None
    value = res
    if type(res) is Box and res.level_trace is trace:
        value, node = res.v, res.d
    if shape_of(value) != ():
        raise TypeError(f"f returned an array of shape {shape_of(value)}; reverse mode "
                        "needs a scalar result (seeded with 1.0) or None. Return e.g. "
                        "np.sum(...), or use sad.jacobian for array results")
    return value, node


def _accumulate(k, dval, g):
    """dval += g, the Duplicated contract, where dval can hold g."""
    if isinstance(dval, np.ndarray) and not isinstance(g, (np.ndarray, float, np.floating)):
        raise TypeError(
            f"argument {k}: the gradient of this Duplicated argument depends on the "
            "enclosing differentiation, but its shadow is a plain numpy array, which "
            "cannot hold it. Allocate the shadow with np.zeros_like(x) inside the "
            "function being differentiated (it returns a traced buffer there), or pass "
            "Active(x) and use the returned gradient")
    dval += g


def _seeds(node, changed, lane, value=None):
    """(node, adjoint) pairs a backward sweep starts from: f's result (of
    value ``value``), and the final value of every Duplicated argument f
    wrote, seeded with its shadow (the adjoint after the call)."""
    seeds = [] if node is None else [(node, _unit(value))]
    for k, a, box in changed:
        if type(a) is act.Const or box.d is None:
            continue
        dval = a.dvals[lane] if type(a) is act.BatchDuplicated else a.dval
        seeds.append((box.d, dval if type(dval) is float else
                      (np.copy(dval) if type(dval) is np.ndarray else dval * 1.0)))
    return seeds


def _reverse(f, annotated, with_primal, restore):
    lanes = act.lane_count(annotated, "reverse mode")
    trace = ReverseTrace()
    args, inputs, owned = [], [], []
    for k, a in enumerate(annotated):
        t = type(a)
        if t is act.Const:
            args.append(_lift(trace, a.val))
            if type(args[-1]) is Box:
                owned.append((k, a, args[-1]))
            continue
        if t is not act.Active and shape_of(a.val) == () and not _engine_traced(a.val) \
                and type(a.val) is not Box:
            raise TypeError(f"argument {k}: {t.__name__}(float, ...) is for forward mode; "
                            "in reverse mode pass a float as Active(x) to get its gradient")
        box = trace.new(a.val)
        if t is act.Active:
            box.lock = _active_lock(k)
        else:
            owned.append((k, a, box))
        args.append(box)
        inputs.append((k, box.d))
    token = trace.enter()
    try:
        value, node = _result_node(_run(f, args), trace)
        changed = _changed(owned, annotated)
        written = {k for k, a, _ in changed if type(a) is not act.Const}
        nodes = [n for _, n in inputs]
        # a written shadow's seed differs by lane: one sweep per lane then
        sweeps = lanes if written else 1
        found = [trace.backward(_seeds(node, changed, lane, value), nodes)
                 for lane in range(sweeps)]
    finally:
        trace.leave(token)
        trace.alive = False
    grads = [None] * len(annotated)
    shadows = []  # written shadows: stored with the primals
    for i, (k, _) in enumerate(inputs):
        a = annotated[k]
        t = type(a)
        g = found[0][i]
        if t is act.Active:
            grads[k] = _zero_like(a.val) if g is None else _as_float(_added_to_zero(g))
            if lanes > 1:
                grads[k] = (grads[k],) * lanes  # Active arguments are never written
            continue
        dvals = a.dvals if t is act.BatchDuplicated else (a.dval,)
        for lane, dval in enumerate(dvals):
            g = found[lane if k in written else 0][i]
            if k in written:  # the shadow becomes the adjoint before the call
                shadows.append((dval, 0.0 if g is None else _added_to_zero(g),
                                f"argument {k}'s shadow"))
            elif g is not None:
                _accumulate(k, dval, g)
    _write_back(changed, shadows, restore)
    grads = tuple(grads)
    return (grads, _as_float(value)) if with_primal else grads


def autodiff(f, annotated, mode, restore=False):
    """``sad.autodiff`` nested inside a running differentiation."""
    if mode.reverse:
        return _reverse(f, annotated, mode.with_primal, restore)
    return _forward(f, annotated, mode.with_primal, restore)


# --------------------------------------------------------------------------
# jacobian

def _columns(f, x, consts):
    """Forward mode: one run per input direction."""
    n = int(np.prod(shape_of(x)))
    cols, value = [], None
    for j in range(n):
        e = np.zeros(n, _float_of(x))  # (a float32 x: its tangents are float32)
        e[j] = 1.0
        seed = 1.0 if shape_of(x) == () else e.reshape(shape_of(x))
        t, value = _forward_lane(f, [_Seeded(x, seed)] + consts, 0)[:2]
        cols.append(t)
    if n == 0:
        value = _forward_lane(f, [_Seeded(x, np.zeros(shape_of(x)))] + consts, 0)[1]
        return np.zeros(shape_of(value) + shape_of(x))
    out_shape = shape_of(value)
    return np.reshape(np.stack(cols, axis=-1), out_shape + shape_of(x))


class _Seeded:
    """A Duplicated annotation built without the annotation's checks (x may be
    any traced value; the seed is a plain unit vector)."""

    __slots__ = ("val", "dval")

    def __init__(self, val, dval):
        self.val, self.dval = val, dval


def _rows(f, x, consts, tall_to_forward):
    """Reverse mode: record once, one backward sweep per output.  None when
    ``tall_to_forward`` and the output is at least as large as the input."""
    trace = ReverseTrace()
    xb = trace.new(x)
    x_node = xb.d  # f may write to x, rebinding xb: its gradient is at the value given
    args = [xb] + [_lift(trace, c.val) for c in consts]
    token = trace.enter()
    try:
        res = _run(f, args)
        if isinstance(res, (tuple, list)) or res is None:
            raise TypeError(f"sad.jacobian: f must return one float or array, got "
                            f"{type(res).__name__}")
        mine = type(res) is Box and res.level_trace is trace
        out_shape = shape_of(res.v if mine else res)
        m = int(np.prod(out_shape))
        if tall_to_forward and m >= int(np.prod(shape_of(x))):
            return None
        if not mine or res.d is None or m == 0:
            return np.zeros(out_shape + shape_of(x))
        rows = []
        for i in range(m):
            e = np.zeros(m, _float_of(res.v))  # (a float32 result: its adjoints are float32)
            e[i] = 1.0
            seed = _unit(res.v) if out_shape == () else e.reshape(out_shape)
            g, = trace.backward([(res.d, seed)], [x_node])
            rows.append(_zero_like(x) if g is None else _added_to_zero(g))
    finally:
        trace.leave(token)
        trace.alive = False
    return np.reshape(np.stack(rows), out_shape + shape_of(x))


def jacobian(f, x, consts, mode):
    """``sad.jacobian`` nested inside a running differentiation; ``consts`` are
    Const annotations.  Forward mode by columns when the output is at least
    as large as the input (or ``mode=Forward``), else reverse mode by rows."""
    if isinstance(x, np.ndarray):
        act._check_float_array(x, "sad.jacobian: x")
    elif not (_engine_traced(x) or type(x) is Box or act.is_real_scalar(x)):
        raise TypeError(f"sad.jacobian: x must be a float or a float64 array, got "
                        f"{type(x).__name__}")
    n = int(np.prod(shape_of(x)))
    if mode is act.Forward or (mode is None and n == 1):
        return _columns(f, x, consts)
    J = _rows(f, x, consts, tall_to_forward=mode is None)
    return _columns(f, x, consts) if J is None else J  # tall: columns are cheaper
