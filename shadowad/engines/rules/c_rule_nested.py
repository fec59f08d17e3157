"""A C rule inside a nested differentiation (sad.autodiff inside a function
being differentiated).

Each mutated argument's new content is a primitive of the arguments before
the call (as for a mutating Python rule, shadowad/engines/rules/custom.py),
written into it as the nested engine writes any array.  Its value runs the
rule one level down, where the enclosing differentiation differentiates it
with the rule's own C parts.  Its tangent and adjoint are the rule's tangent
and reverse, which are linear in the tangents and adjoints with
coefficients set by the primal values: when those values are plain one level
down (the enclosing differentiation does not reach them), the tangent and
adjoint are linear primitives there, each the transpose of the other, so
every further level differentiates them with the same two C functions.
When the enclosing differentiation does reach them, the derivative of the C
functions themselves would be needed; the rule's ``nested=`` Python
definition is differentiated instead, or the call is refused.
"""
import numpy as np

from ...primitives.core import Primitive, apply
from ..nested.box import Box, bind as nested_bind, plain
from ..nested import writes
from ..nested.writes import inner_into_outer_error
from ..reverse.scalar import TScalar
from ..reverse.traced import TArray
from .c_rule_plain import adjoint, check_aliasing, checked, primal, tangent
from .elementwise import tape_of_inputs
from .custom import mutated_copies

__all__ = ["call"]


def call(rule, values):
    for k in rule.mutates:
        x = values[k]
        if type(x) is not Box:
            if type(x) is np.ndarray:
                raise TypeError(
                    f"{rule.name}: argument {k} is plain memory that the rule overwrites "
                    "inside a nested differentiation, which would drop the derivative of "
                    "what it writes; allocate it with np.zeros_like(x) inside the nested "
                    "function")
            raise inner_into_outer_error()
        if not writes.is_memory(x):
            raise TypeError(f"{rule.name}: argument {k} is declared in mutates, so it must be "
                            "a float64 array the rule can write, got a scalar")
    check_aliasing(rule, values, writes.overlapping)
    if rule.nested is not None and not all(_plain(v) for v in _one_level_down(values)):
        if not getattr(rule, "nested_checked", False):
            _check_definition(rule, values)
        if rule.nested(*values) is not None:
            raise TypeError(f"{rule.name}: its nested= definition returned a value; like the C "
                            "routine it must write the mutated arguments and return None")
        return None
    new = {k: nested_bind(_mutation_primitive(rule, k), values, {}) for k in rule.mutates}
    for k, v in new.items():
        writes.inplace(values[k], v)
    return None


def _check_definition(rule, values):
    """The first time a rule's nested= definition stands in for it: on the
    plain values of this call, it must do what the C primal does."""
    c_args = [np.array(plain(v), dtype=np.float64) for v in values]
    py_args = [np.array(a) for a in c_args]
    primal(rule, c_args)
    if rule.nested(*py_args) is not None:
        raise TypeError(f"{rule.name}: its nested= definition returned a value; like the C "
                        "routine it must write the mutated arguments and return None")
    for k in rule.mutates:
        c, py = c_args[k], py_args[k]
        scale = float(np.max(np.abs(c), initial=0.0))
        if c.shape != py.shape or not np.allclose(py, c, rtol=1e-9, atol=1e-12 * max(scale, 1.0),
                                                  equal_nan=True):
            diff = float(np.max(np.abs(py - c), initial=0.0)) if c.shape == py.shape else None
            raise ValueError(
                f"{rule.name}: its nested= definition does not do what the C primal does: "
                f"argument {k} after the call differs (largest difference {diff}); it must "
                "compute the same routine, writing the same arguments in place")
    rule.nested_checked = True


def _one_level_down(values):
    """The values as the innermost nested differentiation among them sees
    them one level down (a Box of another level is a constant of it)."""
    top = None
    for x in values:
        if type(x) is Box and (top is None or x.level_trace.level > top.level):
            top = x.level_trace
    return [x.v if type(x) is Box and x.level_trace is top else x for x in values]


def _plain(v):
    return type(v) is np.ndarray or (isinstance(v, (float, int, np.floating, np.integer))
                                     and not isinstance(v, bool))


def _snapshot(rule, vals):
    """The plain primal values the linear parts are taken at: copies, since
    a plain array may change before an enclosing sweep reads them."""
    for k, v in enumerate(vals):
        if not _plain(v):
            raise TypeError(
                f"{rule.name}: a C rule's second derivative is needed here: its argument {k} "
                "depends on the enclosing differentiation of a nested autodiff call, and "
                "the derivatives of the rule's C tangent and reverse are unknown.  Pass "
                "nested=<the same routine in numpy, or a sad.custom_rule> to sad.c_rule, which "
                "shadowad differentiates in such calls; or call the rule on values the "
                "enclosing differentiation does not reach")
    return [np.array(checked(rule, k, v, False)) for k, v in enumerate(vals)]


def _mutation_primitive(rule, k):
    """Argument k's content after the call, from all the arguments before it."""
    def impl(*vals):
        work = mutated_copies(rule.mutates, vals)
        rule(*work)
        return work[k]

    def jvp(ts, vals, out, params):
        src = tuple(j for j, t in enumerate(ts) if t is not None)
        return _tangent_map(rule, _snapshot(rule, vals), src, k).impl(*[ts[j] for j in src])

    def vjp(j, g, vals, out, params):
        return _adjoint_map(rule, _snapshot(rule, vals), k, j).impl(g)

    return Primitive(f"{rule.name}[{k}]", impl, jvp, vjp)


def _linear(name, plain_impl, jvp, vjp):
    """A primitive whose impl is C, run on plain values only: on any other
    value the value's engine binds it (and calls it on plain values)."""
    def impl(*xs):
        if all(_plain(x) for x in xs):
            return plain_impl(*xs)
        if any(type(x) is TArray or type(x) is TScalar for x in xs):
            # its C part may fail in the sweep, which then puts the shadows back
            tape_of_inputs(xs, None).user_rules = True
        return apply(prim, xs, {}, numpy_impl=False)
    prim = Primitive(name, impl, jvp, vjp)
    return prim


def _lanes(rule, prims, fill):
    """Zero tangents or adjoints for the mutated arguments, None elsewhere,
    then ``fill``'s entries (position -> array) on top."""
    out = [np.zeros_like(p) if j in rule.mutates else None for j, p in enumerate(prims)]
    for j, v in fill.items():
        out[j] = np.array(np.broadcast_to(v, prims[j].shape), dtype=np.float64)
    return out


def _tangent_map(rule, prims, src, dst):
    """The tangent of argument ``dst`` after the call, as a linear function
    of the tangents of arguments ``src`` before it (the rule's C tangent at
    ``prims``); its transpose is _adjoint_map's."""
    def plain_impl(*ts):
        work = [np.array(p) if j in rule.mutates else p for j, p in enumerate(prims)]
        lanes = _lanes(rule, prims, {j: ts[i] for i, j in enumerate(src)})
        for j in src:
            if lanes[j] is None:
                lanes[j] = np.zeros_like(prims[j])
        tangent(rule, work, lanes)
        return _shaped(lanes[dst], prims[dst])

    def jvp(tts, ts, out, params):
        part = tuple(i for i, t in enumerate(tts) if t is not None)
        return _tangent_map(rule, prims, tuple(src[i] for i in part), dst).impl(
            *[tts[i] for i in part])

    def vjp(i, g, ts, out, params):
        return _adjoint_map(rule, prims, dst, src[i]).impl(g)

    return _linear(f"{rule.name} tangent", plain_impl, jvp, vjp)


def _adjoint_map(rule, prims, src, dst):
    """The adjoint of argument ``dst`` before the call, as a linear function
    of the adjoint ``g`` of argument ``src`` after it (the rule's C reverse
    at ``prims``); its transpose is _tangent_map's."""
    def plain_impl(g):
        shadows = _lanes(rule, prims, {src: g})
        if shadows[dst] is None:
            shadows[dst] = np.zeros_like(prims[dst])
        adjoint(rule, prims, shadows)
        return _shaped(shadows[dst], prims[dst])

    def jvp(ts, gs, out, params):
        return _adjoint_map(rule, prims, src, dst).impl(ts[0])

    def vjp(i, w, gs, out, params):
        return _tangent_map(rule, prims, (dst,), src).impl(w)

    return _linear(f"{rule.name} adjoint", plain_impl, jvp, vjp)


def _shaped(a, like):
    return float(a) if like.ndim == 0 else a
