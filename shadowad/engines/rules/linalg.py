"""The reverse and forward engines' fast paths for the linear-algebra
primitives (shadowad/primitives/linalg.py defines them; every other case
takes the rule derived from that definition, shadowad/engines/rules/derived.py).

Each is registered as a specialisation of its primitive and tested bit for
bit (or, where C sums in another order than BLAS, to rounding) against the
generic derivation (tests/test_primitives.py):

* the inner product of two vectors (dot, inner, vdot, matmul of 1-D
  operands) is one C record (csrc/ops/reduce.c's SAD_DOT);
* the outer product of two vectors is one C record that also computes the
  primal (csrc/ops/outer.c);
* matmul's record stores a product straight into adjoint memory no record
  has touched yet, computes it transposed for a transposed shadow, and
  takes W6's column sums (``_summed_through``);
* the forward rules of matmul, dot and inner compute every lane in one numpy
  call.

BLAS's products are the zero-factor convention's wherever they hold no NaN
(primitives/contractions.py); where one does, a fast path leaves the product
to the convention's (forward: the generic path, reverse: matmul_times).
"""
import numpy as np

from ..._c import fast, lib
from ...support.memory import data
from ...primitives import linalg as defs
from ...primitives.contractions import matmul_times
from ...primitives.protocol import AugmentedReturn
from ..reverse.snapshots import held
from ..reverse.buffers import adjoint_for_pullback, shadow_of
from ..reverse.scalar import TScalar
from ..reverse.traced import TArray, lazy_result
from ..reverse.untraced import F64
from .derived import SweepDuplicated, record
from .adjoints import accumulate, add_into, unbroadcast

_DOT, _NUMPY = lib.SAD_DOT, lib.SAD_NUMPY


def _swap(m):
    return np.swapaxes(m, -1, -2)


# --------------------------------------------------------------------------
# the inner product of two vectors: one C record

def vector_dot(tape, operands, prims, actives, impl):
    """<a, b> of two arrays of one shape as one C record; None (nothing
    done) for a traced scalar operand, or more dimensions than C takes."""
    a, b = operands
    ap, bp = prims
    ad, bd = actives
    if type(a) is TScalar or type(b) is TScalar or ap.shape != bp.shape:
        return None
    v = float(impl(ap, bp))
    ap, bp = held(tape, a, ap), held(tape, b, bp)
    sa = None if ad is None else shadow_of(ad)
    sb = None if bd is None else shadow_of(bd)
    tape.keep += (ap, bp, sa, sb)
    g = fast.reduce(tape, _DOT, v, ap, sa, bp, sb)
    return fast.scalar(v, g, tape) if g else None


def _vectors_dot(impl):
    def reverse(tape, operands, prims, actives, params):
        if prims[0].ndim != 1 or prims[1].ndim != 1:
            return None
        return vector_dot(tape, operands, prims, actives, impl)
    return reverse


defs.dot.specialise("reverse")(_vectors_dot(np.dot))
defs.inner.specialise("reverse")(_vectors_dot(np.inner))


@defs.vdot.specialise("reverse")
def vdot_reverse(tape, operands, prims, actives, params):
    return vector_dot(tape, operands, prims, actives, np.vdot)


# --------------------------------------------------------------------------
# dot and inner in forward mode: every lane in one tensordot

def _contract_lanes(ib_of):
    def forward(tangents, prims, z, params):
        at, bt = tangents
        ap, bp = prims
        if ap.ndim == 0 or bp.ndim == 0:
            return None
        ib = ib_of(bp.ndim)
        # a term 0 * inf is NaN here and sends the tangent to the generic path:
        # numpy's warning about it would be about a value never returned
        with np.errstate(invalid="ignore"):
            da = None if at is None else np.tensordot(at, bp, axes=([-1], [ib]))
            db = None if bt is None else np.moveaxis(
                np.tensordot(ap, bt, axes=([-1], [ib + 1])), ap.ndim - 1, 0)
            return _ieee_agrees(_terms(da, db))
    return forward


def _ieee_agrees(dz):
    """dz, or None (the generic path) where BLAS's terms may have put a
    0 * inf or 0 * nan: a NaN entry."""
    return None if np.isnan(dz).any() else dz


def _terms(da, db):
    """The tangent of a product: the sum of the terms of its active operands."""
    if da is None:
        return db
    if db is not None:
        da += db
    return da


defs.dot.specialise("forward")(_contract_lanes(defs.dot_axis))
defs.inner.specialise("forward")(_contract_lanes(defs.inner_axis))


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


@defs.outer.specialise("reverse")
def outer_reverse(tape, operands, prims, actives, params):
    """np.outer(a, b) as one C record (csrc/ops/outer.c), which also computes the
    primal; None, having done nothing, for operands it does not take (traced
    scalars, other shapes, numbers, other dtypes)."""
    a, b = operands
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
    rc = fast.outer_record(tape, z, zs, zslot or 0, ap, sa, ka, bp, sb, kb)
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


# --------------------------------------------------------------------------
# matmul

class MatmulRecord:
    """matmul's record with BLAS's products laid out for the shadows: the
    adjoint of each operand is one matmul, stored straight into fresh adjoint
    memory or computed transposed for a transposed shadow
    (_accumulate_product), and W6's column sums (_summed_through)."""

    def augmented_primal(self, config, a, b):
        z = np.matmul(a.val, b.val)
        summed = None
        if type(b) is SweepDuplicated:  # before the result's record joins the tape
            summed = _summed_through(b.traced.buf.tape, b.traced, b.val)
        return AugmentedReturn(primal=z, tape=summed)

    def reverse(self, config, gz, summed, a, b):
        ap, bp = a.val, b.val
        a2 = ap if ap.ndim > 1 else ap[None, :]
        b2 = bp if bp.ndim > 1 else bp[:, None]
        g2 = gz if ap.ndim > 1 else gz[..., None, :]
        if bp.ndim == 1:
            g2 = g2[..., None]
        if type(a) is SweepDuplicated:
            _accumulate_product(a.traced, g2, _swap(b2), a2.shape)
        if type(b) is SweepDuplicated and not (
                summed is not None and _columns_summed(summed, a2, g2)):
            _accumulate_product(b.traced, _swap(a2), g2, b2.shape)
        return (None, None)

    def __repr__(self):
        return "MatmulRecord"


MATMUL_RECORD = MatmulRecord()


@defs.matmul.specialise("reverse")
def matmul_reverse(tape, operands, prims, actives, params):
    if prims[0].ndim == 1 and prims[1].ndim == 1:
        return vector_dot(tape, operands, prims, actives, np.matmul)
    return record(tape, MATMUL_RECORD, operands, prims, actives, params)


def _summed_through(tape, b, bp):
    """(tape, record, slot, axis) when matmul's right operand b is all of a
    lazy temporary, as it is or with its last two axes swapped, that the
    tape's last record may have made; axis is the temporary's axis along b's
    columns.  If that record is linear and its active inputs repeat along
    that axis (W6's x - means, then swapped), they take only the column sums
    of b's adjoint A^T G, which are A^T (G 1): a matrix-vector product
    instead of a matrix product (C checks the record at sweep time).  Else
    None."""
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
    return tape, len(tape) - 1, b.buf.slot, axis


def _columns_summed(summed, a2, g2):
    """Sweep the record that made b (see _summed_through) with the column sums
    A^T (G 1) of b's adjoint, laid out as the temporary with its summed axis
    of length 1.  False when C finds that record is not such a record."""
    tape, rec, slot, axis = summed
    sums = np.matmul(_swap(a2), np.add.reduce(g2, axis=-1)[..., None])  # (..., rows, 1)
    if not np.isfinite(sums).all():
        # an inf or NaN of A met G's row sums, which the convention's terms
        # (per entry of G, zeros dropped) may not: the full product instead
        return False
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
        accumulate(dst, unbroadcast(matmul_times(left, right), shape).reshape(np.shape(dst)))
        return
    s, fresh = adjoint_for_pullback(dst)
    if _product_shape(left, right) != s.shape:  # dst was broadcast: sum the product down
        add_into(s, unbroadcast(matmul_times(left, right), shape).reshape(s.shape), fresh)
        return
    if s.ndim >= 2 and not s.flags.c_contiguous and _swap(s).flags.c_contiguous:
        s, left, right = _swap(s), _swap(right), _swap(left)
    if fresh:  # new memory: the product goes straight into it
        with np.errstate(invalid="ignore"):  # the NaN of a term 0 * inf is replaced below
            np.matmul(left, right, out=s)
        if np.isnan(s).any():  # a term may be 0 * inf: the convention's product
            np.copyto(s, matmul_times(left, right))
        np.add(s, 0.0, out=s)  # as adding into +0.0 would: -0.0 becomes +0.0
    else:
        add_into(s, matmul_times(left, right))


def _lanes_first(t, shape, nd):
    """Tangent lanes t viewed as (lanes,) + shape with unit axes in front of
    shape up to nd axes, so that the lanes never broadcast against a batch axis."""
    return t.reshape(t.shape[:1] + (1,) * (nd - len(shape)) + tuple(shape))


def _lanes_matmul(t, shaped, other, nd, left):
    """The product of tangent lanes t (shape (lanes,) + shaped.shape) with the
    other operand: t @ other (left) or other @ t.  Between two matrices, the
    lanes fold into one matrix product (numpy's stacked matmul does not use
    BLAS when one operand is broadcast over the lanes)."""
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


@defs.matmul.specialise("forward")
def matmul_forward(tangents, prims, z, params):
    at, bt = tangents
    ap, bp = prims
    # as stacks of matrices; the unit axes of 1-D operands are dropped at the end
    a2 = ap if ap.ndim > 1 else ap[None, :]
    b2 = bp if bp.ndim > 1 else bp[:, None]
    nd = max(a2.ndim, b2.ndim)
    with np.errstate(invalid="ignore"):  # as in _contract_lanes
        da = None if at is None else _lanes_matmul(at, a2, b2, nd, left=True)
        db = None if bt is None else _lanes_matmul(bt, b2, a2, nd, left=False)
        dz = _ieee_agrees(_terms(da, db))
    return None if dz is None else dz.reshape(dz.shape[:1] + np.shape(z))
