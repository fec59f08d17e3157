"""The reverse and forward engines' fast paths for the reductions
(shadowad/primitives/reductions.py defines sum, mean, max, min, prod, cumsum
and trace; every other case takes the rule derived from that definition,
shadowad/rules/derived.py), and the ufuncs' reduce/accumulate/outer methods.

Each fast path is registered as a specialisation of its primitive and tested
bit for bit against the generic derivation (tests/test_primitives.py):

* the full sum of an active array is one C record (csrc/reduce.c's
  SAD_SUM), or of a lazy temporary one that leaves its shadow lazy
  (``sad_reduce_lazy``): the sweep stores the adjoint into it, or never
  allocates it when the sum is swept fused with its producers;
* the full mean is that sum record and a C division record;
* a sum over axes of all of a lazy temporary passes its adjoint straight
  through the elementwise record that made it (``SumThroughRecord``);
* the full sum of a dual array, value and tangents, is computed in C
  (``fast.fsum``);
* in forward mode sum, mean, max and min compute the tangents of all lanes
  in one numpy call, along their leading axis.
"""
import numpy as np

from ..._c import fast, lib
from ...support.memory import data
from ...support.naming import qualified_name
from ...primitives import reductions as defs
from ...primitives.protocol import AugmentedReturn, add_to_shadow
from ...primitives.reductions import options
from ...primitives.scatter import ufunc_at
from ...support.products import times
from ..reverse.buffers import shadow_of
from ..reverse.traced import TArray
from ..reverse.values import ARRAY_TYPES, SCALAR_TYPES, primal
from .derived import SweepDuplicated, record
from .elementwise import EW_OPS, NONDIFF, apply_ufunc, forward_apply
from .operands import forward_result  # noqa: F401  (engines/rules/shape.py imports it from here)
from . import registry

_SUM, _DIV = lib.SAD_SUM, lib.SAD_DIV
# what np.sum calls on a plain ndarray, without its Python layers
_add_reduce = np.add.reduce
_reduce, _reduce_lazy = fast.reduce, fast.reduce_lazy  # csrc/ext/arrays.c


# --------------------------------------------------------------------------
# the full sum and mean as C records

def _sum_record(tape, p, s, v):
    """sum(p) = v as one C record (0 when the C core cannot iterate p)."""
    tape.keep.append(p)
    tape.keep.append(s)
    return _reduce(tape, _SUM, v, p, s, None, None)


def _full_sum(a, params):
    """The C record of the full sum of TArray a, or None."""
    if params["axis"] is not None or params["keepdims"] or type(a) is not TArray:
        return None
    tape, p = a.buf.tape, a.p
    if a._s is None and a.buf.slot is not None:
        # a lazy shadow stays lazy: the sweep stores the adjoint into it, or
        # never allocates it when the sum is swept fused with its producers
        v = float(_add_reduce(p, axis=None))
        g = _reduce_lazy(tape, v, p, a.buf.slot)
        if g == lib.SAD_BAD_SLOT:
            tape.check(g, "np.sum")
        if g:
            return fast.scalar(v, g, tape)
    s = shadow_of(a)
    if s is not None:
        v = float(_add_reduce(p, axis=None))
        g = _sum_record(tape, p, s, v)
        if g:
            return fast.scalar(v, g, tape)
    return None


@defs.reduce_sum.specialise("reverse")
def sum_reverse(tape, operands, prims, actives, params):
    res = _full_sum(operands[0], params)
    if res is not None:
        return res
    if _through(tape, operands[0]) is not None:
        return record(tape, SUM_THROUGH_RECORD, operands, prims, actives, params)
    return None


@defs.mean.specialise("reverse")
def mean_reverse(tape, operands, prims, actives, params):
    """The sum record, then a scalar division record carrying numpy's value."""
    a = operands[0]
    if (params["axis"] is not None or params["keepdims"] or type(a) is not TArray
            or not a.p.size):
        return None
    s = shadow_of(a)
    if s is None:
        return None
    p = a.p
    v, n = float(np.mean(p)), float(p.size)
    g = _sum_record(tape, p, s, v * n)
    if not g:
        return None
    return fast.scalar(v, lib.sad_s2(tape.c, _DIV, v, g, v * n, 0, n), tape)


# --------------------------------------------------------------------------
# a sum's adjoint passed straight through the record that made its operand

def _through(tape, a):
    """(record, slot) when a is all of a lazy temporary in C order (itself or
    a reshape of it) that the tape's last record may have made: the record
    this reduction's pullback can pass its adjoint through (C checks that the
    record made it, and that no other record has added into it by then);
    else None."""
    if type(a) is not TArray or a._s is not None or a.buf.slot is None:
        return None
    p, root = a.p, a.buf.root
    if p is root or (p.size == root.size and p.flags.c_contiguous
                     and data(p) == data(root)):
        return len(tape) - 1, a.buf.slot
    return None


class SumThroughRecord:
    """sum's record when its operand is all of a lazy temporary that the
    tape's last record may have made: the adjoint, broadcast, goes straight
    through that elementwise record without reaching memory (csrc
    fast.reverse_through); when C finds it cannot, the generic reverse adds
    it into the operand's adjoint, and that record reads it from there."""

    def augmented_primal(self, config, a, **params):
        z = defs.reduce_sum.impl(a.val, **params)
        through = None
        if type(a) is SweepDuplicated:  # before the result's record joins the tape
            tape = a.traced.buf.tape
            through = _through(tape, a.traced)
            if through is not None:
                through = (tape,) + through
        return AugmentedReturn(primal=z, tape=through)

    def reverse(self, config, dret, through, a, **params):
        if through is not None:
            tape, rec, slot = through
            # the broadcast is passed as the object: the call holds it while C reads it
            if not fast.reverse_through(
                    tape, rec, slot, np.broadcast_to(defs.kept(dret, a.val, params), a.val.shape)):
                return (None,)
        add_to_shadow(a, defs.reduce_sum.vjp(0, dret, [a.val], None, params))
        return (None,)

    def __repr__(self):
        return "SumThroughRecord"


SUM_THROUGH_RECORD = SumThroughRecord()


# --------------------------------------------------------------------------
# forward mode: every lane in one numpy call

def _lane_axes(params, nd):
    axes = params["axis"]
    return tuple(range(1, nd + 1)) if axes is None else tuple(d + 1 for d in axes)


@defs.reduce_sum.specialise("forward")
def sum_forward(tangents, prims, z, params):
    return _add_reduce(tangents[0], axis=_lane_axes(params, prims[0].ndim),
                       keepdims=params["keepdims"])


@defs.mean.specialise("forward")
def mean_forward(tangents, prims, z, params):
    return np.mean(tangents[0], axis=_lane_axes(params, prims[0].ndim),
                   keepdims=params["keepdims"])


def extreme_forward(tangents, prims, z, params):
    w = defs.extreme_weights(prims[0], z, params)
    return _add_reduce(times(w, tangents[0]), axis=_lane_axes(params, prims[0].ndim),
                       keepdims=params["keepdims"])


defs.reduce_max.specialise("forward")(extreme_forward)
defs.reduce_min.specialise("forward")(extreme_forward)


@defs.reduce_sum.specialise("forward_call")
def sum_forward_call(operands, params, out):
    """np.sum(x) and x.sum() of a dual array, value and tangents in C; None
    when it is not that case."""
    if params["axis"] is not None or params["keepdims"] or out is not None:
        return None
    a = operands[0]
    if _SUM_BY_BUFFER and np.size(getattr(a, "p", None)) > np.getbufsize():
        return None
    res = _fsum(a)
    return None if res is NotImplemented else res


_fsum = fast.fsum  # csrc/ext/forward.c


def _sums_by_buffer():
    """Does numpy's full sum of contiguous memory run its add loop over one
    buffer (np.getbufsize() items) at a time and add up the partial sums
    (numpy < 2.3), rather than over the whole run at once?  _fsum runs the
    loop once, so it has numpy's bits only for sums of at most one buffer
    there.  Asked of numpy, not of its version: its sums of varied arrays of
    a few buffers all equal their buffer-by-buffer sums when it works so;
    otherwise the bits differ for most of them.  Either way a wrong answer is
    a True, which only declines the fast path."""
    n = np.getbufsize()
    i = np.arange(2 * n + 5)
    for k in range(1, 9):  # values of all signs and magnitudes 2**-30 .. 2**30
        x = np.ldexp(np.sin(i * (k + 0.5)), (i * (7919 * k)) % 61 - 30)
        acc = 0.0
        for j in range(0, x.size, n):
            acc += float(_add_reduce(x[j:j + n]))
        if float(_add_reduce(x)) != acc:
            return False
    return True


_SUM_BY_BUFFER = _sums_by_buffer()


# --------------------------------------------------------------------------
# ufunc methods (np.add.reduce, ...), reached from ufuncs.array_ufunc
# and ufuncs.forward_ufunc: the numpy function each one is

def _out_arg(kwargs):
    out = kwargs.pop("out", None)
    if type(out) is tuple:  # numpy hands __array_ufunc__ a tuple of outputs
        if len(out) != 1:
            raise TypeError("shadowad: several outputs are not supported")
        out = out[0]
    return out


def ufunc_method(ufunc, method, inputs, kwargs):
    """np.<ufunc>.<method>(...) on traced values."""
    return _ufunc_method(ufunc, method, inputs, kwargs, registry.FUNCTIONS, apply_ufunc)


def forward_ufunc_method(ufunc, method, inputs, kwargs):
    """np.<ufunc>.<method>(...) on dual values: the same methods, forward rules."""
    return _ufunc_method(ufunc, method, inputs, kwargs, registry.JVPS, forward_apply)


def _ufunc_method(ufunc, method, inputs, kwargs, functions, apply):
    """The supported methods, through the numpy-function rules of one mode
    (np.add.reduce is np.sum along axis 0, np.add.accumulate np.cumsum along
    an axis) and its elementwise apply."""
    name = f"{qualified_name(ufunc)}.{method}"
    kwargs = dict(kwargs)
    out = _out_arg(kwargs)
    if method == "reduce" and ufunc in defs.REDUCE_OF and len(inputs) == 1:
        func, axis, kwargs = defs.reduce_call(ufunc, kwargs)
        return functions[func](inputs[0], axis, out=out, **kwargs)
    if method == "accumulate" and ufunc is np.add and len(inputs) == 1:
        axis = kwargs.pop("axis", 0)
        options(name, kwargs.pop("dtype", None))
        if kwargs:
            raise TypeError(f"shadowad: {name}(..., {next(iter(kwargs))}=...) is not supported")
        if axis is None:
            raise TypeError(f"shadowad: {name}(..., axis=None) is not supported; "
                            "flatten first")
        return functions[np.cumsum](inputs[0], axis=axis, out=out)
    if method == "at" and out is None:
        return ufunc_at(ufunc, inputs, kwargs)
    if method == "outer" and len(inputs) == 2 and ufunc in EW_OPS and not kwargs:
        return _outer(apply, ufunc, inputs[0], inputs[1], out)
    if ufunc in NONDIFF and out is None:  # no derivative: run on the values
        return getattr(ufunc, method)(*[primal(x) for x in inputs], **kwargs)
    raise NotImplementedError(
        f"shadowad: {name} has no derivative rule in shadowad. Supported ufunc methods: "
        "np.add/np.multiply/np.maximum/np.minimum.reduce, np.add.accumulate, "
        "np.add/np.subtract/np.multiply.at and the "
        ".outer of differentiable binary ufuncs (e.g. np.multiply.outer); write the "
        "computation with those, or take values without derivative with sad.primal(x)")


def _outer(apply, ufunc, a, b, out):
    """ufunc.outer(a, b) is ufunc(a[..., None, ..., None], b): one elementwise
    record (in forward mode, one tangent kernel)."""
    nb = np.ndim(primal(b))
    if nb:
        new = (Ellipsis,) + (None,) * nb
        if type(a) in ARRAY_TYPES:
            a = a[new]
        elif type(a) not in SCALAR_TYPES:
            a = np.asarray(a)[new]
    return apply(ufunc, (a, b), out)
