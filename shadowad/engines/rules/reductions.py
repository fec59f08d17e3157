"""Reductions: sum, mean, max/min, and the reduce, accumulate and outer
methods of ufuncs (prod, cumsum and trace, with np.multiply.reduce and
np.add.accumulate, are defined once in shadowad/primitives/reductions.py).

numpy computes every primal, so results equal numpy's bit for bit.  The full
sum and mean are C records; the other rules are Python records whose pullback
sits right below the primal computation.  A pullback reads its input from
memory at sweep time (later records have restored it by then) and adds into
its shadow; it saves nothing.  Each forward-mode rule sits beside its reverse
twin and computes the tangents of all lanes at once, along their leading axis.

The helpers ``operand``, ``result``, ``const_result``, their forward twins,
and ``finish_out`` are shared with the linear-algebra rules.
"""
import numpy as np

from ..forward import dual
from ..._c import fast, lib
from ...support.memory import data
from ...support.naming import qualified_name
from ...primitives.reductions import NOVALUE as _NOVALUE, options
from ...support.products import times
from ..reverse.buffers import shadow_of
from ..reverse.errors import detach_error, mixed_tapes_error
from ..reverse.scalar import TScalar, new_scalar
from ..reverse.traced import TArray, new_array
from ..reverse.untraced import F64
from ..reverse.values import ARRAY_TYPES, SCALAR_TYPES, primal
from .elementwise import (EW_OPS, NONDIFF, context_of_inputs, ufunc_forward_operand, tape_of_inputs, apply_ufunc,
    forward_apply)
from .adjoints import accumulate
from . import registry
from .registry import implements, implements_jvp

try:
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.numeric import normalize_axis_tuple

_SUM, _DIV = lib.SAD_SUM, lib.SAD_DIV
# what np.sum, np.max, ... call on a plain ndarray, without their Python layers
_add_reduce, _max_reduce, _min_reduce = np.add.reduce, np.maximum.reduce, np.minimum.reduce


# --------------------------------------------------------------------------
# shared helpers

def operand(a, tape):
    """(primal float64 ndarray, ``a`` if it is active else None) of one operand.
    A traced scalar's primal is a 0-d array; constants become float64."""
    t = type(a)
    if t is TArray:
        if a.buf.tape is not tape:
            raise mixed_tapes_error()
        # a lazy shadow (an active temporary) is not given memory before the
        # sweep needs it (see traced.adjoint_for_pullback)
        active = a._s is not None or a.buf.slot is not None or shadow_of(a) is not None
        return a.p, (a if active else None)
    if t is TScalar:
        if a.tape is not tape:
            raise mixed_tapes_error()
        return np.array(a.v), a
    p = np.asarray(a)
    if p.dtype != F64 or not p.flags.aligned:
        if p.dtype.kind not in "biuf":
            raise TypeError(f"shadowad: cannot combine a traced value with "
                            f"{type(a).__name__} of dtype {p.dtype}")
        p = np.array(p, dtype=F64)
    return p, None


def forward_context(inputs, out=None):
    """The Context of a forward-mode call: its dual arrays', else the running
    one."""
    return context_of_inputs(inputs, out)


def forward_operand(a, ctx):
    """(primal float64 ndarray, tangent with its leading lanes axis or None) of
    one operand in forward mode.  A dual scalar's primal is a 0-d array.  The
    tangent may be the operand's own memory: the rules only read it."""
    t = type(a)
    if t is dual.FArray:
        if a.buf.tape is not ctx:
            raise mixed_tapes_error()
        s = a._s
        return a.p, (s if s is not None else shadow_of(a))
    if t is dual.FScalar:
        return ufunc_forward_operand(a, ctx.lanes)
    return operand(a, None)


def result(tape, z):
    """numpy's result z as a fresh active value, and a view of its adjoint
    (0-d for a scalar) for the pullback to read."""
    if type(z) is np.ndarray:
        res = new_array(tape, z, True)
        return res, res._s
    return new_scalar(tape, float(z))


def forward_result(ctx, z, dz):
    """numpy's result z with the tangent lanes dz (shape (lanes,) + z's): a
    dual array, or a dual scalar whose tangent is a float for one lane."""
    if type(z) is np.ndarray:
        res = dual.new_array(ctx, z, True, zero=False)
        res._s[...] = dz
        return res
    if ctx.lanes == 1:
        return dual.FScalar(float(z), float(dz[0]), ctx)
    return dual.FScalar(float(z), np.array(dz, dtype=F64), ctx)


def const_result(tape, z):
    """numpy's result z of inactive inputs: an inactive traced array, or
    numpy's scalar as it is (an np.float64 is not a Python float: see
    traced.SCALAR_UFUNCS)."""
    if type(z) is np.ndarray:
        return new_array(tape, z, False) if z.dtype == F64 else z
    return z


def forward_const(ctx, z):
    """const_result in forward mode."""
    if type(z) is np.ndarray:
        return dual.new_array(ctx, z, False) if z.dtype == F64 else z
    return z


def finish_out(res, out, fname):
    """Honour ``out=``: copy the result into it (a recorded copy, or in forward
    mode a copy of the tangent lanes too, when out is traced)."""
    if out is None:
        return res
    shape = np.shape(primal(res))
    if tuple(np.shape(primal(out))) != shape:
        raise ValueError(f"shadowad: {fname}(..., out=...): out has shape "
                         f"{np.shape(primal(out))} but the result has shape {shape}")
    if type(out) in ARRAY_TYPES:
        out[...] = res
    elif type(res) in SCALAR_TYPES or (type(res) in ARRAY_TYPES and shadow_of(res) is not None):
        raise detach_error(f"{fname}(..., out=<plain ndarray>)")
    else:
        out[...] = primal(res)
    return out


def _keepdims(keepdims):
    return False if keepdims is _NOVALUE else bool(keepdims)


def _axes(axis, ndim):
    """The reduced axes, non-negative (numpy has validated axis already)."""
    if axis is None:
        return tuple(range(ndim))
    if type(axis) is int:
        return (axis + ndim if axis < 0 else axis,)
    return normalize_axis_tuple(axis, ndim)


# --------------------------------------------------------------------------
# the shared frame of the axis reductions

def _reduce(fname, npfn, a, axis, keepdims, out, grad):
    """numpy's primal, then a record whose pullback adds grad(p, axes, zk, gk)
    into a's shadow; zk and gk are the result and its adjoint with the reduced
    axes kept (length 1), so they broadcast against a."""
    tape = tape_of_inputs((a,), out)
    p, dst = operand(a, tape)
    z = npfn(p, axis=axis, keepdims=keepdims)
    if dst is None:
        return finish_out(const_result(tape, z), out, fname)
    res, gz = result(tape, z)
    axes = _axes(axis, p.ndim)
    kd = tuple(1 if d in axes else n for d, n in enumerate(p.shape))
    gk = gz.reshape(kd)  # a view: it sees the adjoint as the sweep leaves it
    zk = res.p.reshape(kd) if type(res) is TArray else z
    through = _through(tape, a) if grad is _sum_grad else None

    def pullback():
        # a sum's adjoint, broadcast, goes straight through the elementwise
        # record that made its operand, without reaching memory (csrc
        # sad_ew_reverse_through); otherwise it is added into the operand's
        # adjoint, and that record reads it from there.  The broadcast is
        # passed as the object: the call holds it while C reads it
        if through is not None and not fast.reverse_through(
                tape, through[0], through[1], np.broadcast_to(gk, p.shape)):
            return
        accumulate(dst, grad(p, axes, zk, gk))
    tape.record_py(pullback)
    return finish_out(res, out, fname)


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


def _forward_reduce(fname, npfn, a, axis, keepdims, out, grad):
    """numpy's primal, and as tangent the sum over the reduced axes of w * t,
    where w = grad(p, axes, zk, 1) are the partials the pullback scales by
    (grad None: the sum, whose weights are all 1)."""
    ctx = forward_context((a,), out)
    p, t = forward_operand(a, ctx)
    z = npfn(p, axis=axis, keepdims=keepdims)
    if t is None:
        return finish_out(forward_const(ctx, z), out, fname)
    axes = _axes(axis, p.ndim)
    lane_axes = tuple(d + 1 for d in axes)
    if grad is None:
        dz = _add_reduce(t, axis=lane_axes, keepdims=keepdims)
    else:
        kd = tuple(1 if d in axes else n for d, n in enumerate(p.shape))
        w = grad(p, axes, np.asarray(z).reshape(kd), 1.0)
        if type(w) is float:  # one weight for all: scale the (smaller) sum
            dz = _add_reduce(t, axis=lane_axes, keepdims=keepdims) * w
        else:
            dz = _add_reduce(times(w, t), axis=lane_axes, keepdims=keepdims)
    return finish_out(forward_result(ctx, z, dz), out, fname)


def _full(a, out, keepdims, axis):
    """The active TArray whose reduction to a scalar can be a C record, or None."""
    if axis is None and out is None and not keepdims and type(a) is TArray:
        s = shadow_of(a)
        if s is not None:
            return s
    return None


def _sum_record(tape, p, s, v):
    """sum(p) = v as one C record (0 when the C core cannot iterate p)."""
    tape.keep.append(p)
    tape.keep.append(s)
    return lib.sad_reduce(tape.c, _SUM, v, id(p), id(s), 0, 0)


# --------------------------------------------------------------------------
# sum and mean: the adjoint is spread evenly over the reduced entries

def _sum_grad(p, axes, zk, gk):
    return gk


@implements(np.sum)
def sum_(a, axis=None, dtype=None, out=None, keepdims=_NOVALUE, initial=_NOVALUE,
         where=_NOVALUE):
    options("np.sum", dtype, initial, where)
    keepdims = _keepdims(keepdims)
    if (axis is None and out is None and not keepdims and type(a) is TArray
            and a._s is None and a.buf.slot is not None):
        # a lazy shadow stays lazy: the sweep stores the adjoint into it, or
        # never allocates it when the sum is swept fused with its producers
        tape, p = a.buf.tape, a.p
        v = float(_add_reduce(p, axis=None))
        g = lib.sad_reduce_lazy(tape.c, v, id(p), a.buf.slot)
        if g:
            return TScalar(v, g, tape)
    s = _full(a, out, keepdims, axis)
    if s is not None:
        tape, p = a.buf.tape, a.p
        v = float(_add_reduce(p, axis=None))
        g = _sum_record(tape, p, s, v)
        if g:
            return TScalar(v, g, tape)
    return _reduce("np.sum", _add_reduce, a, axis, keepdims, out, _sum_grad)


@implements_jvp(np.sum)
def sum_jvp(a, axis=None, dtype=None, out=None, keepdims=_NOVALUE, initial=_NOVALUE,
            where=_NOVALUE):
    if (axis is None and out is None and (keepdims is _NOVALUE or keepdims is False)
            and dtype is None and initial is _NOVALUE and where is _NOVALUE):
        if not _SUM_BY_BUFFER or np.size(getattr(a, "p", None)) <= np.getbufsize():
            res = _fsum(a)  # np.sum(x) and x.sum() of a dual array: in C
            if res is not NotImplemented:
                return res
    options("np.sum", dtype, initial, where)
    return _forward_reduce("np.sum", _add_reduce, a, axis, _keepdims(keepdims), out, None)


_fsum = fast.fsum  # csrc/ext/forward.c: the common case of sum_jvp


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


def _mean_grad(p, axes, zk, gk):
    n = 1
    for d in axes:
        n *= p.shape[d]
    return gk / n if n else gk


@implements(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=_NOVALUE, *, where=_NOVALUE):
    options("np.mean", dtype, where=where)
    keepdims = _keepdims(keepdims)
    s = _full(a, out, keepdims, axis)
    if s is not None and a.p.size:
        # sum record, then a scalar division record carrying numpy's value
        tape, p = a.buf.tape, a.p
        v, n = float(np.mean(p)), float(p.size)
        g = _sum_record(tape, p, s, v * n)
        if g:
            return TScalar(v, lib.sad_s2(tape.c, _DIV, v, g, v * n, 0, n), tape)
    return _reduce("np.mean", np.mean, a, axis, keepdims, out, _mean_grad)


@implements_jvp(np.mean)
def mean_jvp(a, axis=None, dtype=None, out=None, keepdims=_NOVALUE, *, where=_NOVALUE):
    options("np.mean", dtype, where=where)
    return _forward_reduce("np.mean", np.mean, a, axis, _keepdims(keepdims), out, _mean_grad)


# --------------------------------------------------------------------------
# max and min: ties share the adjoint evenly (as JAX does)

def extreme_entries(p, axes, zk):
    """(mask, count): the entries of p equal to the max/min zk (the reduced
    axes kept) and how many share each result.  A NaN result: numpy
    propagates NaN, so the NaNs win.  (The nested engine's rule uses it too.)"""
    mask = p == zk
    count = mask.sum(axis=axes, keepdims=True)
    if not count.all():
        mask |= np.isnan(p) & np.isnan(zk)
        count = mask.sum(axis=axes, keepdims=True)
    return mask, count


def _extreme_grad(p, axes, zk, gk):
    mask, count = extreme_entries(p, axes, zk)
    return times(mask, gk / count)  # an entry that is not extreme gets 0, even of inf


def _extreme(fname, npfn, frame=_reduce):
    def rule(a, axis=None, out=None, keepdims=_NOVALUE, initial=_NOVALUE, where=_NOVALUE):
        options(fname, None, initial, where)
        return frame(fname, npfn, a, axis, _keepdims(keepdims), out, _extreme_grad)
    return rule


max_ = implements(np.max)(_extreme("np.max", _max_reduce))
implements(np.amax)(_extreme("np.amax", _max_reduce))
min_ = implements(np.min)(_extreme("np.min", _min_reduce))
implements(np.amin)(_extreme("np.amin", _min_reduce))
max_jvp = implements_jvp(np.max)(_extreme("np.max", _max_reduce, _forward_reduce))
implements_jvp(np.amax)(_extreme("np.amax", _max_reduce, _forward_reduce))
min_jvp = implements_jvp(np.min)(_extreme("np.min", _min_reduce, _forward_reduce))
implements_jvp(np.amin)(_extreme("np.amin", _min_reduce, _forward_reduce))


# --------------------------------------------------------------------------
# ufunc methods (np.add.reduce, ...), reached from elementwise.array_ufunc
# and elementwise.forward_ufunc

def _prod(a, axis, **kwargs):
    return registry.FUNCTIONS[np.prod](a, axis, **kwargs)


def _prod_jvp(a, axis, **kwargs):
    return registry.JVPS[np.prod](a, axis, **kwargs)


_REDUCE = {np.add: sum_, np.multiply: _prod, np.maximum: max_, np.minimum: min_}
_FORWARD_REDUCE = {np.add: sum_jvp, np.multiply: _prod_jvp, np.maximum: max_jvp,
                   np.minimum: min_jvp}
_REDUCE_KW = {"axis", "dtype", "out", "keepdims", "initial", "where"}


def _out_arg(kwargs):
    out = kwargs.pop("out", None)
    if type(out) is tuple:  # numpy hands __array_ufunc__ a tuple of outputs
        if len(out) != 1:
            raise TypeError("shadowad: several outputs are not supported")
        out = out[0]
    return out


def ufunc_method(ufunc, method, inputs, kwargs):
    """np.<ufunc>.<method>(...) on traced values."""
    return _ufunc_method(ufunc, method, inputs, kwargs, _REDUCE, registry.FUNCTIONS,
                         apply_ufunc)


def forward_ufunc_method(ufunc, method, inputs, kwargs):
    """np.<ufunc>.<method>(...) on dual values: the same methods, forward rules."""
    return _ufunc_method(ufunc, method, inputs, kwargs, _FORWARD_REDUCE, registry.JVPS,
                         forward_apply)


def _ufunc_method(ufunc, method, inputs, kwargs, reduce_rules, functions, apply):
    """The supported methods, through the rules of one mode: the reduce table,
    the numpy-function table (np.add.accumulate is np.cumsum along an axis)
    and the elementwise apply."""
    name = f"{qualified_name(ufunc)}.{method}"
    kwargs = dict(kwargs)
    out = _out_arg(kwargs)
    if method == "reduce" and ufunc in reduce_rules and len(inputs) == 1:
        bad = set(kwargs) - _REDUCE_KW
        if bad:
            raise TypeError(f"shadowad: {name}(..., {bad.pop()}=...) is not supported")
        options(name, kwargs.pop("dtype", None), kwargs.pop("initial", _NOVALUE),
                kwargs.pop("where", _NOVALUE))
        axis = kwargs.pop("axis", 0)
        return reduce_rules[ufunc](inputs[0], axis, out=out, **kwargs)
    if method == "accumulate" and ufunc is np.add and len(inputs) == 1:
        axis = kwargs.pop("axis", 0)
        options(name, kwargs.pop("dtype", None))
        if kwargs:
            raise TypeError(f"shadowad: {name}(..., {next(iter(kwargs))}=...) is not supported")
        if axis is None:
            raise TypeError(f"shadowad: {name}(..., axis=None) is not supported; "
                            "flatten first")
        return functions[np.cumsum](inputs[0], axis=axis, out=out)
    if method == "outer" and len(inputs) == 2 and ufunc in EW_OPS and not kwargs:
        return _outer(apply, ufunc, inputs[0], inputs[1], out)
    if ufunc in NONDIFF and out is None:  # no derivative: run on the values
        return getattr(ufunc, method)(*[primal(x) for x in inputs], **kwargs)
    raise NotImplementedError(
        f"shadowad: {name} has no derivative rule in shadowad. Supported ufunc methods: "
        "np.add/np.multiply/np.maximum/np.minimum.reduce, np.add.accumulate and the "
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
