"""The two traces of nested differentiation.

Both compute an operation's value with the rule's ``impl`` on the values one
level down, and its derivative with the rule's numpy formulas on those same
values.  So whatever differentiation encloses this one (the C engine's traced
values, or another trace) sees and differentiates every step of it.

* ``ForwardTrace``: tangents travel with the values (a dual number whose
  parts are any numpy-like values).
* ``ReverseTrace``: a closure tape.  Each active operation appends a node
  (rule, input values, output value, which inputs are active); ``backward``
  walks the nodes newest first and sums each input's adjoint out of place,
  so the enclosing differentiation records the sums too.
"""
import numpy as np

from .box import Box, Trace
from ..reverse.snapshots import Snapshots
from ...support.memory import bounds, same_bytes
from ..reverse.buffers import shadow_of
from ..reverse.traced import TArray
from ..reverse.values import ARRAY_TYPES


def scalar(v):
    """Plain scalars are Python floats here, never numpy scalars: an np.float64
    on the left of an outer traced scalar hands the operation to numpy's
    dispatch, and the C engine's forward scalars then carry numpy-scalar
    values and tangents, which its kernels do not expect."""
    return float(v) if type(v) is np.float64 else v


def _f64(v):
    return np.float64(v) if type(v) is float else v


def formula(fn, *args):
    """A jvp or vjp formula.  On plain Python scalars ``1.0 / 0.0`` raises
    where numpy gives inf: then it runs again on numpy scalars, for the IEEE
    results (inf, nan) that shadowad gives everywhere else."""
    try:
        return scalar(fn(*args))
    except (ZeroDivisionError, OverflowError):
        args = [[_f64(v) for v in a] if type(a) is list else _f64(a) for a in args]
        with np.errstate(all="ignore"):
            return scalar(fn(*args))


class ForwardTrace(Trace):
    __slots__ = ()

    def new(self, value, tangent):
        return Box(self, scalar(value), scalar(tangent))

    def apply(self, rule, operands, params):
        vals, ts, active = [], [], False
        for a in operands:
            if type(a) is Box and a.level_trace is self:
                vals.append(a.v)
                t = a.d
                ts.append(t)
                if t is not None:
                    active = True
            else:
                vals.append(a)
                ts.append(None)
        out = scalar(self.below(rule.impl, *vals, **params))
        if not active:
            return Box(self, out, None)
        return Box(self, out, self.below(formula, rule.jvp, ts, vals, out, params))


def _frozen(v):
    """What a node keeps of a Box of an enclosing nested call: a Box of its
    value as it is now.  A write rebinds the Box object the program holds
    (shadowad.engines.nested.writes); the backward pass needs the value the
    operation read."""
    if type(v) is not Box:
        return v
    return Box(v.level_trace, v.v, v.d)


class OverwrittenError(RuntimeError):
    """Memory a nested differentiation read, carrying a derivative of the
    enclosing one, was written before the nested call finished."""


def overwritten_error():
    return OverwrittenError(
        "shadowad: an array that an operation of a nested differentiation (sad.autodiff, "
        "sad.gradient or sad.jacobian called inside a function being differentiated) read "
        "was overwritten before that nested call finished, and its values carry a "
        "derivative of the enclosing differentiation, which the nested call's backward "
        "pass needs as they were when read. Let the nested function read a copy "
        "(np.copy(a)), or write the new values into a fresh array (np.zeros_like(a), or "
        "out of place) instead of overwriting this one while the nested call runs")


def _root(a):
    """What identifies a's memory: the Buffer of a traced array, the base
    ndarray of a plain one."""
    if type(a) is np.ndarray:
        while type(a.base) is np.ndarray:
            a = a.base
        return a
    return a.buf


class ReverseTrace(Trace):
    __slots__ = ("nodes", "snaps", "reachable", "start")

    def __init__(self):
        super().__init__()
        # (rule, vals, out, params, ((argnum, parent node), ...), guards)
        self.nodes = []
        # backward reads a node's operands after f may have written to them:
        # constant ones are read from snapshots (shadowad/engines/reverse/snapshots.py), ones
        # carrying an enclosing derivative are checked (see _read)
        self.snaps = Snapshots()
        # id -> memory f can write: the inputs' and constants' memory (not the
        # fresh results of this trace's operations, which only Boxes hold)
        self.reachable = {}
        self.start = {}  # id(tape) -> its length when a node first read its memory

    def new(self, value):
        """An input of the inner call: a node with no parents."""
        self.nodes.append(None)
        self._reach(value)
        return Box(self, scalar(value), len(self.nodes) - 1)

    def _reach(self, v):
        while type(v) is Box:
            v = v.v
        if type(v) is np.ndarray or type(v) in ARRAY_TYPES:
            r = _root(v)
            self.reachable[id(r)] = r

    def apply(self, rule, operands, params):
        vals, parents = [], []
        for k, a in enumerate(operands):
            if type(a) is Box and a.level_trace is self:
                vals.append(a.v)
                if a.d is not None:
                    parents.append((k, a.d))
            else:
                vals.append(a)
        out = scalar(self.below(rule.impl, *vals, **params))
        if not parents:
            return Box(self, out, None)
        guards = []
        for k, a in enumerate(operands):
            if not (type(a) is Box and a.level_trace is self):
                self._reach(a)
            vals[k] = self._read(_frozen(vals[k]), guards)
        held = self._read(_frozen(out), guards)
        self.nodes.append((rule, vals, held, params, parents, guards))
        return Box(self, out, len(self.nodes) - 1)

    def _read(self, v, guards):
        """What a node keeps of value ``v`` for its backward pass.  f may
        write memory it can reach (an input's or a constant's, or a view of
        one) before this call finishes.  A value constant at every enclosing
        level is kept as a snapshot of its bytes (one copy per distinct
        content); one that carries an enclosing differentiation's derivative
        cannot be (the copy would drop it), so its bytes are checked when
        backward reads it (``guards``)."""
        b, active = v, False
        while type(b) is Box:
            if b.d is not None:
                active = True
            b = b.v
        t = type(b)
        if t is not np.ndarray and t not in ARRAY_TYPES:
            return v  # a scalar: a value, not memory
        r = _root(b)
        if id(r) not in self.reachable:
            return v  # a fresh result: only a Box holds it, and Boxes are never written
        tangent = tape = None
        if t is not np.ndarray:
            buf = b.buf
            if buf.shadow is not None or buf.slot is not None:
                active = True
                if t is TArray:
                    # reverse mode: equal bytes may still carry another
                    # derivative; the tape knows whether a record wrote them
                    tape = buf.tape
                    self.start.setdefault(id(tape), len(tape))
                else:  # forward mode: the tangent is memory too
                    tangent = shadow_of(b)
            b = b.p
        if not active:
            return self.snaps.hold(b)
        hold = self.snaps.hold  # one copy per distinct content, as for plain arrays
        guards.append((b, hold(b), tangent, None if tangent is None else hold(tangent),
                       tape, None if tape is None else len(tape)))
        return v

    def _last_write(self, writes, tape, a):
        """The last record of ``tape`` since this trace first read its memory
        that may have written a's memory (memo: ``writes``), or -1."""
        lo, hi = bounds(a)
        key = (id(tape), lo, hi)
        w = writes.get(key)
        if w is None:
            w = writes[key] = tape.last_write(self.start[id(tape)], lo, hi)
        return w

    def backward(self, seeds, inputs):
        """Adjoints of the ``inputs`` nodes (None where nothing reached them)
        for the adjoints ``seeds``, (node, adjoint) pairs."""
        if not seeds:
            return [None] * len(inputs)
        root = max(n for n, _ in seeds)
        adj = [None] * (root + 1)
        for n, seed in seeds:
            adj[n] = scalar(seed) if adj[n] is None else adj[n] + scalar(seed)
        writes = {}  # (tape, memory) -> its last write since this trace's first read
        for k in range(root, -1, -1):
            g = adj[k]
            node = self.nodes[k]
            if g is None or node is None:
                continue
            adj[k] = None  # consumed (inputs have no node and keep theirs)
            rule, vals, out, params, parents, guards = node
            for a, was, t, t_was, tape, n in guards:
                if not same_bytes(a, was) or (t is not None and not same_bytes(t, t_was)):
                    raise overwritten_error()
                if tape is not None and self._last_write(writes, tape, a) >= n:
                    raise overwritten_error()
            for argnum, p in parents:
                c = self.below(formula, rule.vjp, argnum, g, vals, out, params)
                if c is not None:
                    adj[p] = c if adj[p] is None else adj[p] + c
        return [adj[i] if i <= root else None for i in inputs]
