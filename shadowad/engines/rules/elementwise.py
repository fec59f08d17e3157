"""Elementwise ufuncs: numpy computes the primal, the C core records one
elementwise record whose reverse (and tangent) rules sit beside the kernel in
``csrc/ops/ew_*.c``.  Broadcast inputs are un-broadcast in C by iterating
with stride 0 over their shadow.
"""
import math

import numpy as np

from ..forward import dual
from ..._c import fast, lib
from ...support.naming import qualified_name
from ...primitives import core
from ...primitives.elementwise import BY_UFUNC as ELEMENTWISE_BY_UFUNC
from ...primitives.elementwise_rules import generic_primitive
from ...primitives.inactive import DERIVATIVE_FREE_UFUNCS
from ..reverse.snapshots import held
from ..reverse.tape import tape_var
from ..reverse.buffers import TEMPORARY, Buffer, check_writable, materialize, promote, shadow_of
from ..reverse.errors import detach_error, mixed_tapes_error
from ..reverse.scalar import TScalar, real_value
from ..reverse.traced import LAZY_MAXDIM, TArray, lazy_result, new_array
from ..reverse.untraced import F32, F64
from ..reverse.values import ARRAY_TYPES, SCALAR_TYPES, float32_kernels, primal, takes_generic
from . import registry

# ufunc -> C op code, from the partials table of the elementwise primitives
# (the C kernels are its specialisation, tested bit for bit against it)
# (an entry without a C kernel is a registered primitive: the engines bind its
# generic rule, shadowad.primitives.elementwise_rules)
EW_OPS = {u: entry.op for u, entry in ELEMENTWISE_BY_UFUNC.items() if entry.op is not None}
# those numpy computes in float32 on float32 operands (np.float_power has
# float64 loops only: its float32 calls take the generic rule)
_FLOAT32_LOOPS = frozenset(u for u in EW_OPS if "f" * u.nin + "->f" in u.types)

# ufuncs whose result has no derivative (run on the values)
NONDIFF = frozenset(DERIVATIVE_FREE_UFUNCS)

_KARR, KPAIR, _KCONST = lib.SAD_KX_ARR, lib.SAD_KX_PAIR, lib.SAD_KX_CONST
_SAVE = lib.SAD_F_SAVE
_FRESH = lib.SAD_F_FRESH
_F32_FLAG = lib.SAD_F_F32  # the record's arrays are float32 (its output's dtype)
_ew = fast.ew  # lib.sad_ew without cffi's cost per argument
_MAXDIM = LAZY_MAXDIM  # a block of at most this many dimensions always fits
_TOO_MANY_DIMS = lib.SAD_TOO_MANY_DIMS


def call_out(ufunc, kwargs):
    """The ``out`` of a ufunc call; refuses the keywords the rules do not honour."""
    out = kwargs.pop("out", None)
    if out is not None:
        if len(out) != 1:
            raise TypeError(f"shadowad: {qualified_name(ufunc)} with several outputs "
                            "is not supported")
        out = out[0]
    for k, v in kwargs.items():
        if k == "dtype" and v is not None and np.dtype(v) == F64:
            continue
        if k in ("casting", "order", "subok"):
            continue
        raise TypeError(f"shadowad: {qualified_name(ufunc)}(..., {k}=...) is not "
                        "supported on traced values")
    return out


def _nondiff(ufunc, inputs, out):
    res = ufunc(*[primal(a) for a in inputs])
    if out is not None:
        out[...] = res  # on a traced out, a recorded write of a constant
        return out
    return res


def plain_array(a, dtype=F64):
    """An untraced operand as an aligned array of the call's float type
    (float64, or float32 on the float32 kernels), as numpy's promotion makes
    it (numbers of other kinds refused by name)."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"shadowad: cannot combine a traced value with {type(a).__name__} "
                        f"of dtype {arr.dtype}")
    if arr.dtype != dtype or not arr.flags.aligned:
        arr = np.array(arr, dtype=dtype)
    return arr


def ufunc_operand(a, tape, lazy=False, dtype=F64):
    """(kind, primal array or pair address, shadow array or None, primal value)
    of one ufunc input of a call computed in ``dtype``.  A traced array's
    memory is kept alive by its Buffer; a plain array is kept alive here,
    since a record may point into it.  With ``lazy``, a lazy shadow stays
    lazy: its Buffer stands for the shadow."""
    t = type(a)
    if t is TArray:
        buf = a.buf
        if buf.tape is not tape:
            raise mixed_tapes_error()
        s = a._s
        if s is None:
            if lazy and buf.slot is not None:
                return (_KARR, a.p, buf, a.p)
            s = shadow_of(a)
        return (_KARR, a.p, s, a.p)
    if t is TScalar:
        if a.tape is not tape:
            raise mixed_tapes_error()
        return (KPAIR, a.g, True, a.v)
    if t is float or t is int or isinstance(a, (np.floating, np.integer, bool, np.bool_)):
        return (_KCONST, None, None, a)
    if t in ARRAY_TYPES or t in SCALAR_TYPES:  # forward mode's: only one kept from a call
        raise mixed_tapes_error()
    arr = plain_array(a, dtype)
    if tape is not None:
        tape.keep.append(arr)
    return (_KARR, arr, None, arr)


_rev = fast.rev  # csrc/ext/reverse.c: the common case of apply_ufunc
_rev_out = fast.rev_out  # and its in-place (out=) form


def tape_of_inputs(inputs, out):
    for a in inputs:
        t = type(a)
        if t is TArray:
            return a.buf.tape
        if t is TScalar:
            return a.tape
    if type(out) is TArray:
        return out.buf.tape
    return None


def _without_c_op(ufunc, inputs, out, rules, forward=False):
    """A ufunc with no C kernel: derivative-free ones run on the values; a few
    have a rule of their own in ``rules`` (np.matmul); the rest are errors."""
    if ufunc in NONDIFF:
        return _nondiff(ufunc, inputs, out)
    rule = rules.get(ufunc)
    if rule is None:
        raise registry.no_rule_error(ufunc)
    if forward and ufunc not in registry.ELEMENTWISE:
        registry.check_elementwise(ufunc)
    return rule(*inputs, out=out)


def generic_ufunc(ufunc, inputs, out, engine):
    """A ufunc with a C kernel on operands neither instance of the kernels
    takes (a float32 traced array beside float64 values, np.float_power of
    float32, ...): its entry's generic rule, bound by ``engine``'s binder
    (TArray: reverse, dual.FArray: forward)."""
    entry = ELEMENTWISE_BY_UFUNC[ufunc]
    if len(inputs) != entry.arity:
        raise TypeError(f"{qualified_name(ufunc)} takes {entry.arity} inputs, got "
                        f"{len(inputs)}")
    return core.BINDERS[engine][1](generic_primitive(entry, ufunc), tuple(inputs), {}, out)


def apply_ufunc(ufunc, inputs, out=None):
    op = EW_OPS.get(ufunc)
    if op is None:
        return _without_c_op(ufunc, inputs, out, registry.FUNCTIONS)
    if (op == _MUL and len(inputs) == 2 and inputs[0] is inputs[1] and type(inputs[0]) is TArray
            and (not takes_generic(inputs, out) or float32_kernels(inputs, out))):
        # x * x is np.square(x) for the kernels: the same values, and the sweep
        # adds 2x*g into x's adjoint once instead of x*g twice
        ufunc, op, inputs = np.square, _SQUARE, inputs[:1]
    # traced arrays, arrays of their float type (float64, or float32 with weak
    # numbers) and numbers: all of it in one C call, which declines (before
    # recording anything) every case it does not take
    if out is None:
        res = _rev(ufunc, op, *inputs)
        if res is not NotImplemented:
            return res
    elif type(out) is TArray:  # in place, into active memory: the same, with out=
        res = _rev_out(out, ufunc, op, *inputs)
        if res is not NotImplemented:
            return res
    dtype = F64
    if takes_generic(inputs, out):
        if ufunc not in _FLOAT32_LOOPS or not float32_kernels(inputs, out):
            return generic_ufunc(ufunc, inputs, out, TArray)
        dtype = F32  # the kernels' float32 instance, from this Python path
    if len(inputs) != ufunc.nin:
        raise TypeError(f"{qualified_name(ufunc)} takes {ufunc.nin} inputs, got {len(inputs)}")
    tape = tape_of_inputs(inputs, out)
    x = ufunc_operand(inputs[0], tape, True, dtype)
    if len(inputs) == 2:
        y = ufunc_operand(inputs[1], tape, True, dtype)
        ops = (x, y)
        active = x[2] is not None or y[2] is not None
        prims = (x[3], y[3])
    else:
        ops = (x,)
        active = x[2] is not None
        prims = (x[3],)

    if out is not None:
        if type(out) is not TArray:
            if active:
                raise detach_error(f"{qualified_name(ufunc)}(..., out=<plain ndarray>)")
            return ufunc(*prims, out=out)
        check_writable(out)
        outs = shadow_of(out)
        if outs is None and active:
            outs = promote(out)
        mark = len(tape)
        if outs is None:  # inactive memory: only its old bytes are recorded
            save_inactive(tape, out.p)
        else:
            need = _values_read(op, ops, dtype)
            record_ufunc(tape, op, _held(tape, ops, inputs, need), out.p, outs, _SAVE, need)
        try:
            ufunc(*prims, out=out.p)
        except (FloatingPointError, Warning):
            raise  # numpy wrote the output before it checked: it stands, recorded
        except BaseException:  # e.g. shapes that do not broadcast: leave no record
            lib.sad_truncate(tape.c, mark)
            raise
        return out

    if not active:
        z = ufunc(*prims)
        if type(z) is not np.ndarray:
            return z  # numpy's scalar as it is (scalar.SCALAR_UFUNCS)
        if z.dtype != dtype:  # e.g. integer arithmetic on constants: stays plain
            return z
        return new_array(tape, z, False)

    if x[0] != _KARR and (len(ops) == 1 or ops[1][0] != _KARR):  # scalars only: the lean path
        with np.errstate(all="ignore"):
            z = float(ufunc(*prims))
        a = ops[0]
        ga = a[1] if a[0] == KPAIR else 0
        if len(ops) == 1:
            g = lib.sad_s1(tape.c, op, z, ga, float(a[3]))
        else:
            b = ops[1]
            gb = b[1] if b[0] == KPAIR else 0
            g = lib.sad_s2(tape.c, op, z, ga, float(a[3]), gb, float(b[3]))
        return fast.scalar(z, g, tape)

    z = ufunc(*prims)
    if type(z) is not np.ndarray:  # numpy's scalar of 0-d operands
        z = np.asarray(z, dtype=dtype)
    res = lazy_result(tape, z)
    need = _values_read(op, ops, dtype)
    record_ufunc(tape, op, _held(tape, ops, inputs, need), z,
            res._s if res.buf.slot is None else res.buf.slot, _FRESH, need)
    return res


def _held(tape, ops, inputs, need):
    """ops, each array operand that the record's reverse reads (the mask
    ``need`` of _values_read) as snapshots.held gives it."""
    if not need:
        return ops
    out = list(ops)
    for j, (kind, obj, sh, val) in enumerate(ops):
        if kind == _KARR and need & (1 << j):
            obj = held(tape, inputs[j], obj)
            out[j] = (kind, obj, sh, obj)
    return out


# Which values the partials of op read: x (1), y (2), z (4), from the partials
# table (C's sad_ew_partials_read is generated from the same entries); the
# answer only decides what the tape keeps alive.  Ops whose partials read
# nothing are linear.
_READS = {entry.op: entry.reads for entry in ELEMENTWISE_BY_UFUNC.values()
          if entry.op is not None}
_LINEAR = {op for op, reads in _READS.items() if reads == 0}
_BY_CONSTANT = {lib.SAD_MUL, lib.SAD_DIV}  # linear when an operand is a constant


def _finite_reciprocal(k, dtype):
    """Is dividing by k linear for the sweep (csrc sad_ew_linear: 1/k finite in
    the record's float type)?  By a subnormal k it is not, and the partials
    read x."""
    if dtype == F32:
        with np.errstate(all="ignore"):
            k = np.float32(k)
            return k != 0 and bool(np.isfinite(np.float32(1) / k))
    return k != 0.0 and math.isfinite(1.0 / k)


def _values_read(op, ops, dtype=F64):
    """Which values the reverse sweep of this record (of ``dtype`` arrays)
    reads (the mask above), 0 when its partials are constants."""
    if op in _LINEAR:
        return 0
    if op in _BY_CONSTANT and len(ops) == 2:
        kinds = (ops[0][0], ops[1][0])
        if op == lib.SAD_MUL and _KCONST in kinds:
            return 0
        if op == lib.SAD_DIV and kinds[1] == _KCONST and _finite_reciprocal(float(ops[1][3]),
                                                                            dtype):
            return 0
    # (z overwritten in place: the sweep reads its values back from the save
    # stack, csrc/ops/ew_reverse.c, and needs no more of x and y than the table says)
    return _READS.get(op, 7)


def record_ufunc(tape, op, ops, z, zs, flags, need=None):
    """One elementwise record z = op(*ops) (ops from ufunc_operand).  An output
    shadow given as an int is a lazy slot, an operand's given as a Buffer is
    that buffer's lazy slot (see traced.new_lazy).  ``need``: _values_read's
    answer, when the caller has it.  The record's float type is z's: the
    kernels' float32 instance takes float32 operands only (float32_kernels)."""
    dtype = z.dtype
    if zs is not None:
        if need is None:
            need = _values_read(op, ops, dtype)
        if need:
            keep = tape.keep
            if need & 4:
                keep.append(z)
            for j, (kind, obj, sh, val) in enumerate(ops):
                if kind == _KARR and need & (1 << j):
                    keep.append(obj)
    k = 0.0
    objs = [None, None, None, None]  # arrays, or a pair's address (see _ew)
    slots = [0, 0, 0]
    if type(zs) is int:  # a lazy shadow is laid out as its primal
        slots[0], zs = zs, z
    have_const = False
    j = 0
    for kind, obj, sh, val in ops:
        if kind == _KARR:
            objs[j] = obj
            if type(sh) is Buffer:  # lazy when ufunc_operand ran; maybe not since
                if sh.slot is not None:
                    slots[1 + j // 2], objs[j + 1] = sh.slot, obj
                else:
                    objs[j + 1] = sh.view_shadow(obj)
            elif sh is not None:
                objs[j + 1] = sh
        elif kind == KPAIR:
            objs[j] = obj
        elif have_const:  # one constant slot: pass the second as a 0-d array
            obj = np.array(val, dtype=dtype)
            tape.keep.append(obj)
            kind = _KARR
            objs[j] = obj
        else:
            have_const, k = True, float(val)
        flags |= kind << j
        j += 2
    if dtype == F32:
        flags |= _F32_FLAG
    rc = _ew(tape._tptr, op, flags, z, zs, objs[0], objs[1], objs[2], objs[3], k,
             slots[0], slots[1], slots[2])
    if rc:
        if rc == _TOO_MANY_DIMS:  # (lazy outputs have at most _MAXDIM dimensions)
            ops = [(kind, obj, _materialized(sh, obj), val) for kind, obj, sh, val in ops]
            _record_split(tape, op, ops, z, zs, flags & (_SAVE | lib.SAD_F_PRIMAL | _FRESH))
        else:
            tape.check(rc, "an elementwise operation")


def _materialized(sh, p):
    """The shadow of primal view p when sh is a lazy Buffer, else sh."""
    if type(sh) is not Buffer:
        return sh
    materialize(sh)
    return sh.view_shadow(p)


def _record_split(tape, op, ops, z, zs, flags):
    """More dimensions than the C core iterates over: one record per slice of
    the leading axis (each has one dimension less)."""
    n = z.shape[0]
    for i in range(n):
        sub = []
        for o in ops:
            kind, obj, sh, val = o
            if kind == _KARR and obj.ndim == z.ndim and obj.shape[0] == n:
                o = (kind, obj[i], None if sh is None else sh[i], obj[i])
            elif kind == _KARR and obj.ndim == z.ndim:  # broadcast along axis 0
                o = (kind, obj[0], None if sh is None else sh[0], obj[0])
            sub.append(o)
        record_ufunc(tape, op, sub, z[i], None if zs is None else zs[i], flags)


def save_inactive(tape, z):
    """Record the bytes of inactive memory z that are about to be overwritten
    (no derivative work): earlier pullbacks may read z, and the sweeps must
    put it back for restore=True and when f raises."""
    record_ufunc(tape, lib.SAD_COPY, [(_KCONST, None, None, 0.0)], z, None, _SAVE)


# --------------------------------------------------------------------------
# forward mode: numpy computes the primal, one C call computes every lane's
# tangent from the same partials the reverse sweep uses

_LANES = lib.SAD_F_LANES
_LANES_XY = _LANES | _KARR | _KARR << 2    # flags of two array operands
_LANES_XK = _LANES | _KARR | _KCONST << 2  # an array and a constant
_LANES_KY = _LANES | _KCONST | _KARR << 2
_POW, _SQUARE, _MUL = lib.SAD_POW, lib.SAD_SQUARE, lib.SAD_MUL
_ew_tangent = fast.tangent  # lib.sad_ew_tangent without cffi's cost per argument
_FArray, _FScalar = dual.FArray, dual.FScalar
_NUMBERS = (np.floating, np.integer, bool, np.bool_)


_fwd = fast.fwd  # csrc/ext/forward.c: the common case of forward_apply


def _fwd_result(ctx, z):
    """numpy's result z in Context ctx when it is not C-contiguous (numpy keeps
    a transposed input's layout): its tangent is laid out like it.  The C fast
    path wraps every other result itself, as a temporary Buffer with fresh
    tangent lanes."""
    return dual.new_array(ctx, z, True)


# what the C fast paths know of the forward-mode types (see csrc/ext/forward.c)
fast.register_forward(_FArray, _FScalar, Buffer, dual.Context, np.float64, np.empty, _fwd_result,
                      tape_var, TEMPORARY, np.add)


def ufunc_forward_operand(a, lanes, dtype=F64):
    """(primal, tangent with its lanes axis or None) of one ufunc input of a
    call computed in ``dtype``."""
    t = type(a)
    if t is _FArray:
        s = a._s
        return a.p, (s if s is not None else shadow_of(a))
    if t is np.ndarray and a.dtype == dtype and a.flags.aligned:  # the common constant
        return a, None
    if t is _FScalar:
        d = a.d
        # C takes an array of lanes: one lane's tangent is a number (float, or
        # a numpy scalar from user arithmetic), several lanes' an array
        return np.array(a.v), (d if type(d) is np.ndarray else np.full(lanes, float(d)))
    if t is float or t is int or isinstance(a, _NUMBERS):
        return a, None
    if t is TArray or t is TScalar:
        raise mixed_tapes_error()
    return plain_array(a, dtype), None


def tangent_kernel(op, z, zt, operands):
    """zt = the tangent lanes of z = op(*operands) (operands from
    ufunc_forward_operand, of z's float type).  z is not written; where the
    partials read the value (the table's ``reads`` has z), z must hold
    numpy's primal."""
    f32 = _F32_FLAG if z.dtype == F32 else 0
    if len(operands) == 2:  # the common cases first: arrays, or an array and a number
        (xp, xt), (yp, yt) = operands
        tx, ty = type(xp), type(yp)
        if tx is np.ndarray and ty is np.ndarray:
            rc = _ew_tangent(op, _LANES_XY | f32, z, zt, xp, xt, yp, yt, 0.0)
        elif tx is np.ndarray and (ty is float or ty is int):
            rc = _ew_tangent(op, _LANES_XK | f32, z, zt, xp, xt, None, None, float(yp))
        elif ty is np.ndarray and (tx is float or tx is int):
            rc = _ew_tangent(op, _LANES_KY | f32, z, zt, None, None, yp, yt, float(xp))
        else:
            rc = None
        if rc == 0:
            return
    flags, k, objs = _LANES | f32, None, [None, None, None, None]
    for j, (p, t) in enumerate(operands):
        if type(p) is not np.ndarray:
            if k is None:  # the one constant slot
                k = float(p)
                flags |= _KCONST << (2 * j)
                continue
            p = np.array(p, dtype=z.dtype)
            operands[j] = (p, t)  # keeps the converted array alive through the call
        flags |= _KARR << (2 * j)
        objs[2 * j] = p
        objs[2 * j + 1] = t
    rc = _ew_tangent(op, flags, z, zt, objs[0], objs[1], objs[2], objs[3],
                     0.0 if k is None else k)
    if rc == _TOO_MANY_DIMS:  # one call per slice of the leading axis
        n = z.shape[0]
        for i in range(n):
            sub = []
            for p, t in operands:
                if type(p) is np.ndarray and p.ndim == z.ndim:
                    j = i if p.shape[0] == n else 0
                    p, t = p[j], (None if t is None else t[:, j])
                sub.append((p, t))
            tangent_kernel(op, z[i], zt[:, i], sub)
    elif rc:
        raise MemoryError("shadowad: out of memory in a tangent kernel")


def context_of_inputs(inputs, out):
    """The Context of a forward-mode operation: the running one, which every
    dual operand must belong to (one kept from an earlier call is refused:
    its tangents are of another computation)."""
    ctx = dual.current_tape()
    for a in inputs:
        t = type(a)
        if (t is _FArray and a.buf.tape is not ctx) or (t is _FScalar and a.ctx is not ctx):
            raise dual.finished_error() if ctx is None else mixed_tapes_error()
    if type(out) is _FArray and out.buf.tape is not ctx:
        raise dual.finished_error() if ctx is None else mixed_tapes_error()
    return ctx


def forward_apply(ufunc, inputs, out=None):
    op = EW_OPS.get(ufunc)
    if op is None:
        return _without_c_op(ufunc, inputs, out, registry.JVPS, forward=True)
    if (op == _POW and len(inputs) == 2 and type(inputs[1]) in (int, float)
            and inputs[1] == 2 and ufunc is np.power):
        # x ** 2 is np.square(x), as in numpy's ndarray.__pow__: the same values, a cheaper
        # kernel (not np.float_power's, whose value is float64 whatever the operands)
        ufunc, op, inputs = np.square, _SQUARE, inputs[:1]
    if out is None:  # dual arrays, arrays of their float type and numbers: in one C call
        res = _fwd(ufunc, op, *inputs)
        if res is not NotImplemented:
            return res
    dtype = F64
    if takes_generic(inputs, out):
        if ufunc not in _FLOAT32_LOOPS or not float32_kernels(inputs, out):
            return generic_ufunc(ufunc, inputs, out, _FArray)
        dtype = F32  # the kernels' float32 instance
    if len(inputs) != ufunc.nin:
        raise TypeError(f"{qualified_name(ufunc)} takes {ufunc.nin} inputs, got {len(inputs)}")
    if out is None and type(inputs[0]) is not _FArray and (
            len(inputs) == 1 or type(inputs[1]) is not _FArray):
        s = _scalar_forward(op, ufunc, inputs)
        if s is not None:
            return s
    ctx = context_of_inputs(inputs, out)
    lanes = ctx.lanes if ctx is not None else 1
    x = ufunc_forward_operand(inputs[0], lanes, dtype)
    if len(inputs) == 2:
        y = ufunc_forward_operand(inputs[1], lanes, dtype)
        operands, prims = [x, y], (x[0], y[0])
        active = x[1] is not None or y[1] is not None
    else:
        operands, prims = [x], (x[0],)
        active = x[1] is not None
    if out is not None:
        if type(out) is not _FArray:
            if active:
                raise detach_error(f"{qualified_name(ufunc)}(..., out=<plain ndarray>)")
            return ufunc(*prims, out=out)
        dual.writable(out)
        zt = shadow_of(out)
        if zt is None and active:
            zt = promote(out)
        np.broadcast_shapes(out.shape, *[np.shape(p) for p in prims])  # refuse before writing
        if zt is None:
            ufunc(*prims, out=out.p)
        elif _READS.get(op, 7) & 4:
            # the partials read numpy's value, and the tangent the inputs' old
            # values: numpy writes out itself, as the caller asked (its loops'
            # last bits depend on the layout), once the inputs out overlaps
            # are copied for the tangent
            operands = [(p.copy(), t) if type(p) is np.ndarray and np.may_share_memory(p, out.p)
                        else (p, t) for p, t in operands]
            ufunc(*prims, out=out.p)
            tangent_kernel(op, out.p, zt, operands)
        else:  # the tangent first: it reads the inputs' old values
            tangent_kernel(op, out.p, zt, operands)
            ufunc(*prims, out=out.p)
        return out
    z = ufunc(*prims)
    if not active:
        if type(z) is not np.ndarray:
            return z  # numpy's scalar as it is (scalar.SCALAR_UFUNCS)
        return dual.new_array(ctx, z, False) if z.dtype == dtype else z
    if type(z) is not np.ndarray:  # numpy's scalar of 0-d operands
        z = np.asarray(z, dtype=dtype)
    res = dual.new_array(ctx, z, True, zero=False)  # the kernel writes every lane
    tangent_kernel(op, z, res._s, operands)
    return res


def _scalar_forward(op, ufunc, inputs):
    """ufunc of dual scalars and numbers: a dual scalar (None: not that case)."""
    vals, ds, ctx = [], [], None
    for a in inputs:
        if type(a) is _FScalar:
            if ctx is not None and a.ctx is not ctx:
                raise mixed_tapes_error()
            ctx = a.ctx
            vals.append(a.v)
            ds.append(a.d)
        else:
            v = real_value(a)
            if v is None:
                return None
            vals.append(v)
            ds.append(None)
    if all(d is None for d in ds):
        return None
    if len(vals) == 1:
        return dual.scalar_op(op, ufunc, vals[0], ds[0], None, None, ctx)
    return dual.scalar_op(op, ufunc, vals[0], ds[0], vals[1], ds[1], ctx)
