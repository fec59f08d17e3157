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

from .nested_box import Box, Trace
from .snapshots import Snapshots


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
            if type(a) is Box and a.trace is self:
                vals.append(a.v)
                t = a.d
                ts.append(t)
                if t is not None:
                    active = True
            else:
                vals.append(a)
                ts.append(None)
        out = scalar(rule.impl(*vals, **params))
        if not active:
            return Box(self, out, None)
        return Box(self, out, formula(rule.jvp, ts, vals, out, params))


class ReverseTrace(Trace):
    __slots__ = ("nodes", "snaps")

    def __init__(self):
        super().__init__()
        self.nodes = []  # (rule, vals, out, params, ((argnum, parent node), ...))
        # backward reads a node's plain array operands after f may have
        # written to them: it reads snapshots (shadowad/snapshots.py)
        self.snaps = Snapshots()

    def new(self, value):
        """An input of the inner call: a node with no parents."""
        self.nodes.append(None)
        return Box(self, scalar(value), len(self.nodes) - 1)

    def apply(self, rule, operands, params):
        vals, parents = [], []
        for k, a in enumerate(operands):
            if type(a) is Box and a.trace is self:
                vals.append(a.v)
                if a.d is not None:
                    parents.append((k, a.d))
            else:
                vals.append(a)
        out = scalar(rule.impl(*vals, **params))
        if not parents:
            return Box(self, out, None)
        for k, a in enumerate(operands):
            if isinstance(a, np.ndarray):
                vals[k] = self.snaps.hold(np.asarray(a))
        self.nodes.append((rule, vals, out, params, parents))
        return Box(self, out, len(self.nodes) - 1)

    def backward(self, root, seed, inputs):
        """Adjoints of the ``inputs`` nodes (None where nothing reached them)
        for adjoint ``seed`` on node ``root``."""
        adj = [None] * (root + 1)
        adj[root] = scalar(seed)
        for k in range(root, -1, -1):
            g = adj[k]
            node = self.nodes[k]
            if g is None or node is None:
                continue
            adj[k] = None  # consumed (inputs have no node and keep theirs)
            rule, vals, out, params, parents = node
            for argnum, p in parents:
                c = formula(rule.vjp, argnum, g, vals, out, params)
                if c is not None:
                    adj[p] = c if adj[p] is None else adj[p] + c
        return [adj[i] if i <= root else None for i in inputs]
