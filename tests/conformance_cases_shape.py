"""Conformance cases of the shape-and-selection family (issue #16, item 1):
np.diag, diagflat, tril, triu, roll, tile, repeat, pad, split, array_split,
take_along_axis, put, put_along_axis, ufunc.at, sort, rot90, kron and
sum/mean(where=).  Each case: an ordinary input first, then edge values
(NaN, inf, signed zeros, ties, zeros, empty arrays where numpy allows)."""
import numpy as np

from conformance_cases import SEVERAL_PATHS, TINY, arr, case, inf, nan, ordinary, wsum

EDGE6 = arr(0.0, -0.0, inf, -inf, nan, TINY)

case("diag", ["np.diag"],
     lambda x: wsum(np.diag(x[:3], 1)) + wsum(np.diag(x[3:], -2)) + wsum(np.diag(x[:4])),
     [ordinary(6), EDGE6])
case("diag_of_matrix", ["np.diag"],
     lambda x: wsum(np.diag(x)) + wsum(np.diag(x, 1)) + wsum(np.diag(x, -1)) + wsum(np.diag(x, 5)),
     [ordinary(3, 4), arr(inf, -0.0, nan, 0.0, 1.0, -inf, shape=(2, 3)), np.zeros((0, 2))])
case("diagflat", ["np.diagflat"],
     lambda x: wsum(np.diagflat(x)) + wsum(np.diagflat(x[0], -1)),
     [ordinary(2, 2), arr(0.0, -0.0, inf, nan, shape=(2, 2))])
case("tril_triu", ["np.tril", "np.triu"],
     lambda x: wsum(np.tril(x)) + wsum(np.triu(x, 1)) + wsum(np.tril(x, -1) * 2.0)
     + wsum(np.triu(np.stack([x, 2.0 * x]), -1)),
     [ordinary(3, 4), arr(inf, -0.0, nan, 0.0, -inf, TINY, shape=(2, 3)), np.zeros((0, 3))])
case("roll", ["np.roll"],
     lambda x: wsum(np.roll(x, 2)) + wsum(np.roll(x, -7))
     + wsum(np.roll(np.reshape(x, (2, 3)), (1, -1), (0, 1)))
     + wsum(np.roll(np.reshape(x, (2, 3)), 4)) + wsum(np.roll(np.reshape(x, (2, 3)), (1, 1), (1, 1))),
     [ordinary(6), EDGE6])
case("roll_empty", ["np.roll"], lambda x: wsum(np.roll(x, 3)) + np.sum(x),
     [ordinary(3), np.zeros(0)])
case("tile", ["np.tile"],
     lambda x: wsum(np.tile(x, 2)) + wsum(np.tile(x, (2, 1, 2))) + wsum(np.tile(x, 1)),
     [ordinary(2, 2), arr(inf, -0.0, nan, 0.0, shape=(2, 2)), np.zeros((0, 2))])
case("repeat", ["np.repeat", "method:repeat"],
     lambda x: wsum(np.repeat(x, 2)) + wsum(x.repeat(2, axis=0))
     + wsum(np.repeat(x, [2, 0, 1], axis=1)) + wsum(np.repeat(x, 3, axis=0)),
     [ordinary(2, 3), arr(inf, -0.0, nan, 0.0, -inf, TINY, shape=(2, 3))])
case("pad", ["np.pad"],
     lambda x: sum(wsum(np.pad(x, w, mode=m))
                   for m in ("constant", "edge", "reflect", "symmetric", "wrap")
                   for w in (1, ((1, 2), (0, 3)), ((3, 0), (4, 5))))
     + wsum(np.pad(x, 2, constant_values=((1.5, -2.0), (0.0, 7.0)))),
     [ordinary(2, 3), arr(inf, -0.0, nan, 0.0, -inf, TINY, shape=(2, 3))])
case("pad_empty", ["np.pad"], lambda x: wsum(np.pad(x, (2, 1), constant_values=3.0)) + np.sum(x),
     [ordinary(2), np.zeros(0)])
case("split", ["np.split", "np.array_split"],
     lambda x: sum(wsum(p) * (i + 1.0) for i, p in enumerate(np.split(x, 3)))
     + sum(wsum(p * p) for p in np.array_split(x, 4))
     + sum(wsum(p) for p in np.split(x, [1, -2, 10]))
     + sum(wsum(p) for p in np.array_split(np.reshape(x, (2, 3)), 2, axis=1)),
     [ordinary(6), EDGE6])
case("take_along_axis", ["np.take_along_axis"],
     lambda x: wsum(np.take_along_axis(x, np.array([[2, 0, 0, 2], [1, 1, 1, -1]]), 1))
     + wsum(np.take_along_axis(x, np.array([[1, 0, 1]]), axis=0))
     + wsum(np.take_along_axis(x, np.array([5, 5, 0]), None)),
     [ordinary(2, 3), arr(inf, -0.0, nan, 0.0, -inf, TINY, shape=(2, 3))])
case("sort", ["np.sort"],
     lambda x: wsum(np.sort(x)) + wsum(np.sort(x, axis=0)) + wsum(np.sort(x, axis=None) ** 2),
     [ordinary(3, 2), arr(1.0, 1.0, 2.0, 1.0, -1.0, 2.0, shape=(3, 2)),
      arr(inf, nan, -inf, 0.0, nan, 1.0, shape=(3, 2)), np.zeros((0, 2))])
case("sort_ties_of_signed_zeros", ["np.sort"], lambda x: wsum(np.sort(x * 1.0)),
     [arr(3.0, 1.0, 2.0, 0.5), arr(0.0, -0.0, 0.0, -0.0)])


def _sort_method(x):
    y = x * 1.0
    y.sort()
    z = np.reshape(x * 2.0, (2, 3))
    z.sort(axis=0)
    return wsum(y) + wsum(z)


case("sort_method", ["method:sort"], _sort_method,
     [ordinary(6), arr(1.0, 1.0, nan, -inf, 1.0, 0.0)])


def _put(x):
    y = x * 1.0
    np.put(y, [0, -1, 0], x[1:3] ** 2)       # repeated index: the last write wins
    np.put(y, np.array([[7, -9]]), 3.0 * x[0], mode="wrap")
    np.put(y, [10], x[3], mode="clip")
    y.put([2], x[4])
    np.put(y, [], x[0])
    return wsum(y)


case("put", ["np.put", "method:put"], _put, [ordinary(6), EDGE6])


def _put_along_axis(x):
    y = x * 2.0
    np.put_along_axis(y, np.array([[1, 1], [0, 2]]), x[:, :2] ** 2, 1)
    np.put_along_axis(y, np.array([[0, 1, 1]]), -x[0] * 0.5, axis=0)
    np.put_along_axis(y, np.array([4, 0]), x[1, :2], None)
    return wsum(y)


case("put_along_axis", ["np.put_along_axis"], _put_along_axis,
     [ordinary(2, 3), arr(inf, -0.0, nan, 0.0, -inf, TINY, shape=(2, 3))])


def _ufunc_at(x):
    y = x * 1.0
    np.add.at(y, [0, 1, 1, 5, 1], x[:5] ** 2)
    np.subtract.at(y, [2, 2], 3.0 * x[0])
    np.add.at(y, 4, 1.5)
    np.multiply.at(y, [3, 3, 4, 3], x[1:5])
    return wsum(y)


# the written x entries reach the result along several paths
case("ufunc_at", ["setitem:fancy"], _ufunc_at, [ordinary(6), EDGE6], **SEVERAL_PATHS)


def _multiply_at_zeros(x):
    y = np.ones_like(x) * 2.0
    np.multiply.at(y, [0, 0, 0, 1], x[:4])
    np.multiply.at(y, (np.array([2, 2]),), x[4])
    return wsum(y)


case("multiply_at_zeros", ["setitem:fancy"], _multiply_at_zeros,
     [ordinary(6), arr(0.0, 3.0, 0.0, 2.0, 0.0, 1.0), arr(0.0, 0.0, -0.0, 5.0, inf, 1.0)],
     **SEVERAL_PATHS)


def _add_at_2d(x):
    y = np.zeros_like(x)
    np.add.at(y, (np.array([0, 1, 0, 0]), np.array([2, 2, 2, 0])), x[0, :4] * x[1, 1:])
    np.subtract.at(y, (slice(None), 1), x[:, 0])
    return wsum(y)


case("add_at_2d", ["setitem:fancy"], _add_at_2d,
     [ordinary(2, 5), arr(inf, -0.0, nan, 0.0, -inf, TINY, 1.0, 2.0, 0.0, -0.0, shape=(2, 5))])
case("rot90", ["np.rot90"],
     lambda x: sum(wsum(np.rot90(x, k)) for k in range(-1, 5))
     + wsum(np.rot90(np.stack([x, x * 2.0]), 1, (2, 0))),
     [ordinary(2, 3), arr(inf, -0.0, nan, 0.0, -inf, TINY, shape=(2, 3))])
case("kron", ["np.kron"],
     lambda x: wsum(np.kron(x, x[::-1])) + wsum(np.kron(x[0], x)) + wsum(np.kron(2.0, x))
     + wsum(np.kron(np.eye(2), x)),
     [ordinary(2, 2), arr(inf, -0.0, nan, 0.0, shape=(2, 2)),
      arr(0.0, 0.0, 1.0, 0.0, shape=(2, 2))],
     **SEVERAL_PATHS)
case("sum_mean_where", ["np.sum", "np.mean", "method:sum", "method:mean"],
     lambda x: np.sum(x, where=np.array([True, False, True, True, False, True]))
     + wsum(np.sum(np.reshape(x, (2, 3)), axis=1, where=np.array([True, False, True])))
     + x.sum(where=np.array([False, True] * 3)) + np.mean(x * x, where=np.arange(6) > 2)
     + wsum(np.mean(np.reshape(x, (2, 3)), axis=0, keepdims=True,
                    where=np.array([[True], [False]])))
     + x.mean(where=np.arange(6) < 2),
     [ordinary(6), EDGE6], **SEVERAL_PATHS)
case("hsplit_vsplit_dsplit", ["np.hsplit", "np.vsplit", "np.dsplit"],
     lambda x: sum(wsum(p) * (i + 1.0) for i, p in enumerate(np.hsplit(x, 3)))
     + sum(wsum(p * p) for p in np.vsplit(x, [1]))
     + sum(wsum(p) * (i + 2.0) for i, p in enumerate(np.dsplit(np.reshape(x, (1, 2, 3)), 3)))
     + sum(wsum(p) * (i + 3.0) for i, p in enumerate(np.hsplit(np.ravel(x), 2))),
     [ordinary(2, 3), arr(inf, -0.0, nan, 0.0, -inf, TINY, shape=(2, 3))])
case("append_delete", ["np.append", "np.delete"],
     lambda x: wsum(np.append(x, x[0] * 2.0)) + wsum(np.append(x, [1.5, 2.5]))
     + wsum(np.append(x, x[:1], axis=0)) + wsum(np.delete(x, 1, axis=1))
     + wsum(np.delete(x, [0, -1])) + wsum(np.delete(x, slice(None, None, 2), axis=1))
     + wsum(np.delete(x, np.array([True, False]), axis=0)) + wsum(np.delete(x, [])),
     [ordinary(2, 3), arr(inf, -0.0, nan, 0.0, -inf, TINY, shape=(2, 3))])
case("fliplr_flipud", ["np.fliplr", "np.flipud"],
     lambda x: wsum(np.fliplr(x)) + wsum(np.flipud(x) ** 2) + wsum(np.flipud(x[0])),
     [ordinary(2, 3), arr(inf, -0.0, nan, 0.0, -inf, TINY, shape=(2, 3))])
case("take_modes", ["np.take", "method:take"],
     lambda x: wsum(np.take(x, [0, 9, -8, 2], mode="clip")) + wsum(x.take([7, -1, 13], mode="wrap"))
     + wsum(np.take(np.reshape(x, (2, 3)), [4, -1], axis=1, mode="wrap")),
     [ordinary(6), EDGE6])
