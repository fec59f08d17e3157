"""Linear algebra: dot, vdot, inner, outer, matmul (also ``a @ b``), and
np.linalg's solve, inv, det and slogdet.

numpy (BLAS, LAPACK) computes the primals but one.  The inner product of two
vectors is a C record, and so is their outer product (whose primal C computes,
numpy's bits: csrc/ops/outer.c); the rest are Python records whose pullback, right
below the primal computation, reads the operands from memory at sweep time (restored by
then) and adds into their shadows.  Nothing is saved: the solve and
determinant pullbacks refactor the matrix instead of keeping factors.  The
forward rules, beside them, compute each term of a tangent for all lanes in
one numpy call, the lanes axis leading.
"""
import numpy as np

from .._c import fast, lib
from ..memory import data
from ..snapshots import held
from ..traced import (F64, TArray, TScalar, adjoint_for_pullback, lazy_result, new_scalar,
                      output_pullback, shadow_of)
from .elementwise import _tape_of, apply_ufunc, forward_apply
from .indexing import accumulate, add_into, unbroadcast
from .reductions import (const_result, finish_out, forward_const, forward_context,
                         forward_operand, forward_result, operand, prod_others, result)
from .registry import implements, implements_jvp

_DOT, _NUMPY = lib.SAD_DOT, lib.SAD_NUMPY
# numpy 2 reads solve's b as a vector only when it is 1-D (numpy 1: a.ndim - 1)
_SOLVE_VECTOR_1D = int(np.__version__.split(".")[0]) >= 2


def _operands(a, b, out):
    """The tape and (primal, active operand or None) of both operands."""
    tape = _tape_of((a, b), out)
    ap, ad = operand(a, tape)
    bp, bd = operand(b, tape)
    return tape, ap, ad, bp, bd


def _forward_operands(a, b, out):
    """The Context and (primal, tangent lanes or None) of both operands."""
    ctx = forward_context((a, b), out)
    ap, at = forward_operand(a, ctx)
    bp, bt = forward_operand(b, ctx)
    return ctx, ap, at, bp, bt


def _swap(m):
    return np.swapaxes(m, -1, -2)


def _lanes_first(t, shape, nd):
    """Tangent lanes t viewed as (lanes,) + shape with unit axes in front of
    shape up to nd axes, so that the lanes never broadcast against a batch axis."""
    return t.reshape(t.shape[:1] + (1,) * (nd - len(shape)) + tuple(shape))


def _terms(da, db):
    """The tangent of a product: the sum of the terms of its active operands."""
    if da is None:
        return db
    if db is not None:
        da += db
    return da


# --------------------------------------------------------------------------
# the inner product of two vectors: one C record

def _vector_dot(tape, a, ap, ad, b, bp, bd, v):
    """<a, b> = v of two arrays of one shape."""
    if type(a) is not TScalar and type(b) is not TScalar and ap.shape == bp.shape:
        sa = None if ad is None else shadow_of(ad)
        sb = None if bd is None else shadow_of(bd)
        tape.keep += (ap, bp, sa, sb)
        g = lib.sad_reduce(tape.c, _DOT, v, id(ap), 0 if sa is None else id(sa),
                           id(bp), 0 if sb is None else id(sb))
        if g:
            return TScalar(v, g, tape)
    # scalars, vdot of differently shaped arrays, or more dimensions than C takes
    t, g = new_scalar(tape, v)

    def pullback():
        if ad is not None:
            accumulate(ad, g * bp.reshape(ap.shape))
        if bd is not None:
            accumulate(bd, g * ap.reshape(bp.shape))
    tape.record_py(pullback)
    return t


# --------------------------------------------------------------------------
# dot and inner: one axis of a (its last) contracted with axis ib of b

def _contract(tape, z, ap, ad, bp, bd, ib):
    """z = tensordot(a, b, ([-1], [ib])), whose axes are a's free axes then b's."""
    res = lazy_result(tape, z)
    na, nb = ap.ndim, bp.ndim
    zb = list(range(na - 1, z.ndim))            # z's axes that come from b
    bfree = [d for d in range(nb) if d != ib]
    afree = list(range(na - 1))

    def pullback(gz):
        if ad is not None:
            accumulate(ad, np.tensordot(gz, bp, axes=(zb, bfree)))
        if bd is not None:
            accumulate(bd, np.moveaxis(np.tensordot(ap, gz, axes=(afree, afree)), 0, ib))
    tape.record_py(output_pullback(res, pullback))
    return res


def _contract_jvp(ctx, z, ap, at, bp, bt, ib):
    """The tangent lanes of z = tensordot(a, b, ([-1], [ib]))."""
    da = None if at is None else np.tensordot(at, bp, axes=([-1], [ib]))
    db = None if bt is None else np.moveaxis(
        np.tensordot(ap, bt, axes=([-1], [ib + 1])), ap.ndim - 1, 0)
    return forward_result(ctx, z, _terms(da, db))


@implements(np.dot)
def dot(a, b, out=None):
    tape, ap, ad, bp, bd = _operands(a, b, out)
    if ap.ndim == 0 or bp.ndim == 0:  # numpy: a product with a scalar
        return apply_ufunc(np.multiply, (a, b), out)
    z = np.dot(ap, bp)
    if ad is None and bd is None:
        return finish_out(const_result(tape, z), out, "np.dot")
    ap, bp = held(tape, a, ap), held(tape, b, bp)
    if ap.ndim == 1 and bp.ndim == 1:
        res = _vector_dot(tape, a, ap, ad, b, bp, bd, float(z))
    else:
        res = _contract(tape, z, ap, ad, bp, bd, max(bp.ndim - 2, 0))
    return finish_out(res, out, "np.dot")


@implements_jvp(np.dot)
def dot_jvp(a, b, out=None):
    ctx, ap, at, bp, bt = _forward_operands(a, b, out)
    if ap.ndim == 0 or bp.ndim == 0:
        return forward_apply(np.multiply, (a, b), out)
    z = np.dot(ap, bp)
    if at is None and bt is None:
        return finish_out(forward_const(ctx, z), out, "np.dot")
    res = _contract_jvp(ctx, z, ap, at, bp, bt, max(bp.ndim - 2, 0))
    return finish_out(res, out, "np.dot")


@implements(np.inner)
def inner(a, b):
    tape, ap, ad, bp, bd = _operands(a, b, None)
    if ap.ndim == 0 or bp.ndim == 0:
        return apply_ufunc(np.multiply, (a, b))
    z = np.inner(ap, bp)
    if ad is None and bd is None:
        return const_result(tape, z)
    ap, bp = held(tape, a, ap), held(tape, b, bp)
    if ap.ndim == 1 and bp.ndim == 1:
        return _vector_dot(tape, a, ap, ad, b, bp, bd, float(z))
    return _contract(tape, z, ap, ad, bp, bd, bp.ndim - 1)


@implements_jvp(np.inner)
def inner_jvp(a, b):
    ctx, ap, at, bp, bt = _forward_operands(a, b, None)
    if ap.ndim == 0 or bp.ndim == 0:
        return forward_apply(np.multiply, (a, b))
    z = np.inner(ap, bp)
    if at is None and bt is None:
        return forward_const(ctx, z)
    return _contract_jvp(ctx, z, ap, at, bp, bt, bp.ndim - 1)


@implements(np.vdot)
def vdot(a, b):
    tape, ap, ad, bp, bd = _operands(a, b, None)
    v = float(np.vdot(ap, bp))
    if ad is None and bd is None:
        return v
    ap, bp = held(tape, a, ap), held(tape, b, bp)
    return _vector_dot(tape, a, ap, ad, b, bp, bd, v)


def _flat_lanes(t):
    """Tangent lanes of a flattened operand (vdot flattens both)."""
    return None if t is None else t.reshape(t.shape[0], -1)


@implements_jvp(np.vdot)
def vdot_jvp(a, b):
    ctx, ap, at, bp, bt = _forward_operands(a, b, None)
    v = float(np.vdot(ap, bp))
    if at is None and bt is None:
        return v
    return _contract_jvp(ctx, v, ap.ravel(), _flat_lanes(at), bp.ravel(), _flat_lanes(bt), 0)


# --------------------------------------------------------------------------
# the outer product of two vectors: one C record

def _outer_operand(x, tape):
    """(primal, shadow or None, lazy slot or 0) of an operand that the C
    record takes: a 1-D traced array of ``tape`` or a 1-D float64 ndarray.  A
    lazy shadow is passed as the primal (which has its layout) and its slot."""
    t = type(x)
    if t is TArray:
        p = x.p
        if x.buf.tape is not tape or p.ndim != 1:
            return None
        s = x._s
        if s is None and x.buf.slot is not None:
            return p, p, x.buf.slot
        return p, (s if s is not None else shadow_of(x)), 0
    if t is np.ndarray and x.ndim == 1 and x.dtype == F64 and x.flags.aligned:
        return x, None, 0
    return None


def _outer_record(a, b):
    """np.outer(a, b) as one C record (csrc/ops/outer.c), which also computes the
    primal; None, having done nothing, for operands it does not take (traced
    scalars, other shapes, numbers, other dtypes, no active operand): the
    general path below handles (or refuses) those."""
    tape = a.buf.tape if type(a) is TArray else (b.buf.tape if type(b) is TArray else None)
    if tape is None:
        return None
    oa, ob = _outer_operand(a, tape), _outer_operand(b, tape)
    if oa is None or ob is None or (oa[1] is None and ob[1] is None):
        return None
    (ap, sa, ka), (bp, sb, kb) = oa, ob
    ap, bp = held(tape, a, ap), held(tape, b, bp)  # the sweep reads both
    z = np.empty((ap.shape[0], bp.shape[0]))
    res = lazy_result(tape, z)
    zslot = res.buf.slot
    zs = z if zslot is not None else res._s
    tape.keep += (ap, bp, sa, sb)  # the sweep reads the values and adds into the shadows
    c = tape.c
    rc = lib.sad_outer(c, id(z), id(zs), zslot or 0, id(ap), 0 if sa is None else id(sa), ka,
                       id(bp), 0 if sb is None else id(sb), kb)
    if rc == _NUMPY:
        outer_by_numpy(tape, ap, bp, z)
    elif rc:
        tape.check(rc, "np.outer")
    return res


def outer_by_numpy(tape, ap, bp, z):
    """numpy's np.outer into z, for the outer record just made, where C left
    the primal to numpy (its warnings, or error per np.errstate, and NaN
    bits); if numpy raises, the record goes.  The C fast path
    (_fast.outer, called by TArray.__array_function__) calls it too."""
    try:
        np.outer(ap, bp, out=z)
    except BaseException:
        c = tape.c
        lib.sad_truncate(c, lib.sad_tape_len(c) - 1)  # the record just made
        raise


@implements(np.outer)
def outer(a, b, out=None):
    res = _outer_record(a, b)
    if res is not None:
        return finish_out(res, out, "np.outer")
    tape, ap, ad, bp, bd = _operands(a, b, out)
    z = np.outer(ap, bp)
    if ad is None and bd is None:
        return finish_out(const_result(tape, z), out, "np.outer")
    ap, bp = held(tape, a, ap), held(tape, b, bp)
    res = lazy_result(tape, z)

    def pullback(gz):
        if ad is not None:
            accumulate(ad, np.dot(gz, bp.ravel()).reshape(ap.shape))
        if bd is not None:
            accumulate(bd, np.dot(ap.ravel(), gz).reshape(bp.shape))
    tape.record_py(output_pullback(res, pullback))
    return finish_out(res, out, "np.outer")


@implements_jvp(np.outer)
def outer_jvp(a, b, out=None):
    ctx, ap, at, bp, bt = _forward_operands(a, b, out)
    z = np.outer(ap, bp)
    if at is None and bt is None:
        return finish_out(forward_const(ctx, z), out, "np.outer")
    da = None if at is None else at.reshape(at.shape[0], -1, 1) * bp.reshape(-1)
    db = None if bt is None else ap.reshape(-1, 1) * bt.reshape(bt.shape[0], 1, -1)
    return finish_out(forward_result(ctx, z, _terms(da, db)), out, "np.outer")


# --------------------------------------------------------------------------
# cross products of 3-vectors: d(a x b) = da x b + a x db, so the adjoint of a
# is b x g and that of b is g x a.  Vector axes are counted from the end, where
# broadcasting aligns them (numpy moves them last before broadcasting).

def _cross_axes(fname, ap, bp, axisa, axisb, axisc, axis):
    """The vector axes of a, b and the result, negative."""
    if axis is not None:
        axisa = axisb = axisc = axis
    na = _negative_axis(axisa, ap.ndim)
    nb = _negative_axis(axisb, bp.ndim)
    if ap.shape[na] != 3 or bp.shape[nb] != 3:
        raise ValueError(f"shadowad: {fname} of traced values takes 3-vectors, got vectors "
                         f"of length {ap.shape[na]} and {bp.shape[nb]}")
    nc = _negative_axis(axisc, max(ap.ndim, bp.ndim))
    return na, nb, nc


def _negative_axis(axis, ndim):
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(axis, ndim)
    return axis - ndim if axis >= 0 else axis


@implements(np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    tape, ap, ad, bp, bd = _operands(a, b, None)
    na, nb, nc = _cross_axes("np.cross", ap, bp, axisa, axisb, axisc, axis)
    z = np.cross(ap, bp, axisa=na, axisb=nb, axisc=nc)
    if ad is None and bd is None:
        return const_result(tape, z)
    ap, bp = held(tape, a, ap), held(tape, b, bp)
    res, gz = result(tape, z)

    def pullback():
        if ad is not None:
            accumulate(ad, unbroadcast(np.cross(bp, gz, axisa=nb, axisb=nc, axisc=na), ap.shape))
        if bd is not None:
            accumulate(bd, unbroadcast(np.cross(gz, ap, axisa=nc, axisb=na, axisc=nb), bp.shape))
    tape.record_py(pullback)
    return res


@implements_jvp(np.cross)
def cross_jvp(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    ctx, ap, at, bp, bt = _forward_operands(a, b, None)
    na, nb, nc = _cross_axes("np.cross", ap, bp, axisa, axisb, axisc, axis)
    z = np.cross(ap, bp, axisa=na, axisb=nb, axisc=nc)
    if at is None and bt is None:
        return forward_const(ctx, z)
    nd = max(ap.ndim, bp.ndim)  # the lanes axis in front of every batch axis of both
    da = None if at is None else np.cross(_lanes_first(at, ap.shape, nd), bp,
                                          axisa=na, axisb=nb, axisc=nc)
    db = None if bt is None else np.cross(ap, _lanes_first(bt, bp.shape, nd),
                                          axisa=na, axisb=nb, axisc=nc)
    lanes = (at if at is not None else bt).shape[:1]
    return forward_result(ctx, z, np.broadcast_to(_terms(da, db), lanes + z.shape))


# --------------------------------------------------------------------------
# matmul: stacks of matrices with broadcast batch axes; a 1-D operand is a
# row (left) or column (right) vector whose axis is dropped from the result

@implements(np.matmul)
def matmul(a, b, out=None):
    tape, ap, ad, bp, bd = _operands(a, b, out)
    z = np.matmul(ap, bp)
    if ad is None and bd is None:
        return finish_out(const_result(tape, z), out, "np.matmul")
    ap, bp = held(tape, a, ap), held(tape, b, bp)
    if ap.ndim == 1 and bp.ndim == 1:
        return finish_out(_vector_dot(tape, a, ap, ad, b, bp, bd, float(z)), out, "np.matmul")
    summed = _summed_through(tape, bd, bp)  # before res's record joins the tape
    res = lazy_result(tape, z)
    a2 = ap if ap.ndim > 1 else ap[None, :]
    b2 = bp if bp.ndim > 1 else bp[:, None]

    def pullback(gz):
        g2 = gz if ap.ndim > 1 else gz[..., None, :]
        if bp.ndim == 1:
            g2 = g2[..., None]
        if ad is not None:
            _accumulate_product(ad, g2, _swap(b2), a2.shape)
        if bd is not None and not (summed is not None and _columns_summed(tape, summed, a2, g2)):
            _accumulate_product(bd, _swap(a2), g2, b2.shape)
    tape.record_py(output_pullback(res, pullback))
    return finish_out(res, out, "np.matmul")


def _summed_through(tape, b, bp):
    """(record, slot, axis) when matmul's right operand b is all of a lazy
    temporary, as it is or with its last two axes swapped, that the tape's last
    record may have made; axis is the temporary's axis along b's columns.  If
    that record is linear and its active inputs repeat along that axis (W6's
    x - means, then swapped), they take only the column sums of b's adjoint
    A^T G, which are A^T (G 1): a matrix-vector product instead of a matrix
    product (C checks the record at sweep time).  Else None."""
    if type(b) is not TArray or b._s is not None or b.buf.slot is None or bp.ndim < 2:
        return None
    root = b.buf.root
    if root.ndim != bp.ndim or data(bp) != data(root):
        return None
    if bp.shape == root.shape and bp.strides == root.strides:
        axis = root.ndim - 1
    elif bp.shape == _swap(root).shape and bp.strides == _swap(root).strides:
        axis = root.ndim - 2
    else:
        return None
    return len(tape) - 1, b.buf.slot, axis


def _columns_summed(tape, summed, a2, g2):
    """Sweep the record that made b (see _summed_through) with the column sums
    A^T (G 1) of b's adjoint, laid out as the temporary with its summed axis
    of length 1.  False when C finds that record is not such a record."""
    rec, slot, axis = summed
    sums = np.matmul(_swap(a2), np.add.reduce(g2, axis=-1)[..., None])  # (..., rows, 1)
    if axis != sums.ndim - 1:
        sums = _swap(sums)
    length = g2.shape[-1]
    return fast.reverse_summed(tape, rec, slot, axis, length, sums) == lib.SAD_OK


def _product_shape(left, right):
    """The shape of left @ right (stacks of matrices)."""
    batch = np.broadcast_shapes(left.shape[:-2], right.shape[:-2])
    return batch + (left.shape[-2], right.shape[-1])


def _accumulate_product(dst, left, right, shape):
    """dst += left @ right, un-broadcast to ``shape`` (dst's shape as a stack of
    matrices).  When dst's shadow is a transposed view (``x.T`` or
    ``swapaxes`` as matmul's operand), the product is computed transposed,
    right.T @ left.T, so that the sum runs over contiguous memory instead of
    striding across it (the same values: each entry is the same dot product)."""
    if type(dst) is not TArray:
        accumulate(dst, unbroadcast(np.matmul(left, right), shape).reshape(np.shape(dst)))
        return
    s, fresh = adjoint_for_pullback(dst)
    if _product_shape(left, right) != s.shape:  # dst was broadcast: sum the product down
        add_into(s, unbroadcast(np.matmul(left, right), shape).reshape(s.shape), fresh)
        return
    if s.ndim >= 2 and not s.flags.c_contiguous and _swap(s).flags.c_contiguous:
        s, left, right = _swap(s), _swap(right), _swap(left)
    if fresh:  # new memory: the product goes straight into it
        np.matmul(left, right, out=s)
        np.add(s, 0.0, out=s)  # as adding into +0.0 would: -0.0 becomes +0.0
    else:
        add_into(s, np.matmul(left, right))


def _lanes_matmul(t, shaped, other, nd, left):
    """The product of tangent lanes t (shape (lanes,) + shaped.shape) with the
    other operand: t @ other (left) or other @ t.  Between two matrices, the
    lanes fold into one matrix product (numpy's stacked matmul does not use
    BLAS when one operand is broadcast over the lanes, and was 10x slower)."""
    lanes = t.shape[0]
    if shaped.ndim == 2 and other.ndim == 2:
        p, q = shaped.shape
        if left:  # rows of every lane on top of each other
            return (t.reshape(lanes * p, q) @ other).reshape(lanes, p, other.shape[1])
        cols = np.transpose(t.reshape(lanes, p, q), (1, 0, 2)).reshape(p, lanes * q)
        return np.transpose((other @ cols).reshape(other.shape[0], lanes, q), (1, 0, 2))
    if left:
        return np.matmul(_lanes_first(t, shaped.shape, nd), other)
    return np.matmul(other, _lanes_first(t, shaped.shape, nd))


@implements_jvp(np.matmul)
def matmul_jvp(a, b, out=None):
    ctx, ap, at, bp, bt = _forward_operands(a, b, out)
    z = np.matmul(ap, bp)
    if at is None and bt is None:
        return finish_out(forward_const(ctx, z), out, "np.matmul")
    # as stacks of matrices; the unit axes of 1-D operands are dropped at the end
    a2 = ap if ap.ndim > 1 else ap[None, :]
    b2 = bp if bp.ndim > 1 else bp[:, None]
    nd = max(a2.ndim, b2.ndim)
    da = None if at is None else _lanes_matmul(at, a2, b2, nd, left=True)
    db = None if bt is None else _lanes_matmul(bt, b2, a2, nd, left=False)
    dz = _terms(da, db)
    return finish_out(forward_result(ctx, z, dz.reshape(dz.shape[:1] + np.shape(z))), out,
                      "np.matmul")


# --------------------------------------------------------------------------
# np.linalg

@implements(np.linalg.solve)
def solve(a, b):
    tape, ap, ad, bp, bd = _operands(a, b, None)
    x = np.linalg.solve(ap, bp)
    if ad is None and bd is None:
        return const_result(tape, x)
    ap, bp = held(tape, a, ap), held(tape, b, bp)
    res, gx = result(tape, x)
    xp = res.p
    vector = bp.ndim == 1 if _SOLVE_VECTOR_1D else bp.ndim == ap.ndim - 1

    def pullback():
        # bbar = A^-T xbar, Abar = -bbar x^T
        g = np.linalg.solve(_swap(ap), gx[..., None] if vector else gx)
        if ad is not None:
            xm = xp[..., None] if vector else xp
            accumulate(ad, -np.matmul(g, _swap(xm)))
        if bd is not None:
            accumulate(bd, g[..., 0] if vector else g)
    tape.record_py(pullback)
    return res


@implements_jvp(np.linalg.solve)
def solve_jvp(a, b):
    ctx, ap, at, bp, bt = _forward_operands(a, b, None)
    x = np.linalg.solve(ap, bp)
    if at is None and bt is None:
        return forward_const(ctx, x)
    vector = bp.ndim == 1 if _SOLVE_VECTOR_1D else bp.ndim == ap.ndim - 1
    xm = x[..., None] if vector else x
    # dx = A^-1 (db - dA x), every lane a matrix right-hand side of one solve
    bshape = bp.shape + (1,) if vector else bp.shape
    rhs = None if bt is None else _lanes_first(bt, bshape, xm.ndim)
    if at is not None:
        dax = np.matmul(_lanes_first(at, ap.shape, xm.ndim), xm)
        rhs = -dax if rhs is None else rhs - dax
    dx = np.linalg.solve(ap, rhs)
    return forward_result(ctx, x, dx[..., 0] if vector else dx)


@implements(np.linalg.inv)
def inv(a):
    tape = _tape_of((a,), None)
    ap, ad = operand(a, tape)
    z = np.linalg.inv(ap)
    if ad is None:
        return const_result(tape, z)
    res, gz = result(tape, z)
    zp = res.p

    def pullback():
        # Abar = -Z^T Zbar Z^T
        zt = _swap(zp)
        accumulate(ad, -np.matmul(zt, np.matmul(gz, zt)))
    tape.record_py(pullback)
    return res


@implements_jvp(np.linalg.inv)
def inv_jvp(a):
    ctx = forward_context((a,))
    ap, at = forward_operand(a, ctx)
    z = np.linalg.inv(ap)
    if at is None:
        return forward_const(ctx, z)
    return forward_result(ctx, z, -np.matmul(z, np.matmul(at, z)))  # dZ = -Z dA Z


def _cofactors(a, d):
    """d * inv(a)^T, the cofactor matrix of a, also where a is singular."""
    d = np.asarray(d)
    if d.all():
        try:
            return d[..., None, None] * _swap(np.linalg.inv(a))
        except np.linalg.LinAlgError:
            pass
    # a = u diag(s) vt, adj(a) = det(u) det(vt) vt^T diag(prod_{j != i} s_j) u^T
    u, s, vt = np.linalg.svd(a)
    c = np.linalg.det(u) * np.linalg.det(vt)
    adj = np.matmul(_swap(vt) * prod_others(s)[..., None, :], _swap(u))
    return c[..., None, None] * _swap(adj)


@implements(np.linalg.det)
def det(a):
    tape = _tape_of((a,), None)
    ap, ad = operand(a, tape)
    d = np.linalg.det(ap)
    if ad is None:
        return const_result(tape, d)
    res, gd = result(tape, d)

    def pullback():
        accumulate(ad, gd[..., None, None] * _cofactors(ap, d))
    tape.record_py(pullback)
    return res


def _inner_jvp(ctx, z, at, partials):
    """The tangent lanes sum(partials * dA) over the matrix axes."""
    return forward_result(ctx, z, np.einsum("...ij,...ij->...", at, partials))


@implements_jvp(np.linalg.det)
def det_jvp(a):
    ctx = forward_context((a,))
    ap, at = forward_operand(a, ctx)
    d = np.linalg.det(ap)
    if at is None:
        return forward_const(ctx, d)
    return _inner_jvp(ctx, d, at, _cofactors(ap, d))


def _inv_t(a, singular):
    """inv(a)^T; NaN where a is singular (log|det| = -inf has no derivative)."""
    if not np.any(singular):
        return _swap(np.linalg.inv(a))
    eye = np.eye(a.shape[-1])
    r = _swap(np.linalg.inv(np.where(singular[..., None, None], eye, a)))
    r[singular] = np.nan
    return r


def _slogdet(ap):
    """numpy's (sign, logdet) of ap and the packer of numpy's result type."""
    r = np.linalg.slogdet(ap)
    sign, logdet = r
    if np.ndim(sign) == 0:
        sign = float(sign)
    # numpy >= 2 returns a named tuple (sign, logabsdet), numpy 1 a tuple
    pack = type(r) if hasattr(r, "_fields") else (lambda *v: v)
    return sign, logdet, pack


@implements(np.linalg.slogdet)
def slogdet(a):
    tape = _tape_of((a,), None)
    ap, ad = operand(a, tape)
    sign, logdet, pack = _slogdet(ap)
    if ad is None:
        return pack(sign, const_result(tape, logdet))
    res, gl = result(tape, logdet)
    singular = np.asarray(sign) == 0

    def pullback():
        accumulate(ad, gl[..., None, None] * _inv_t(ap, singular))
    tape.record_py(pullback)
    return pack(sign, res)


@implements_jvp(np.linalg.slogdet)
def slogdet_jvp(a):
    ctx = forward_context((a,))
    ap, at = forward_operand(a, ctx)
    sign, logdet, pack = _slogdet(ap)
    if at is None:
        return pack(sign, forward_const(ctx, logdet))
    return pack(sign, _inner_jvp(ctx, logdet, at, _inv_t(ap, np.asarray(sign) == 0)))
