"""Indexing: element reads and writes (scalar records, with fast paths for
``x[i]`` and ``y[i] = t``), basic slices (views; writes are C copy records
that save the overwritten bytes) and advanced indexing (gather / scatter
Python records).

Every program runs through check_gradient, check_restore (restore=True is bit
for bit, and the default leaves exactly what an untraced numpy call leaves, so
numpy's semantics -- e.g. "the last of repeated writes wins" -- are checked
too) and check_accumulate_once.
"""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, autodiff
from shadowad.testing import check_rule, check_failure_atomic

rng = np.random.default_rng(3)
X = rng.standard_normal((3, 4))
V = rng.standard_normal(6)


def dup(a):
    a = np.array(a, dtype=float)
    return Duplicated(a, np.zeros_like(a))


check_all = check_rule


# --------------------------------------------------------------------------
# reads

READS = {
    "int": lambda x: x[1],
    "negative_int": lambda x: x[-1],
    "numpy_int": lambda x: x[np.int64(2)],
    "element": lambda x: x[1, 2],
    "negative_element": lambda x: x[-1, -3],
    "element_numpy_ints": lambda x: x[np.int32(2), np.int64(-1)],
    "slice": lambda x: x[1:3],
    "slice_step": lambda x: x[::2, 1::2],
    "negative_step": lambda x: x[::-1, 3:0:-2],
    "ellipsis": lambda x: x[..., 1],
    "ellipsis_element": lambda x: x[1, ...],
    "newaxis": lambda x: x[np.newaxis, :, None, 1],
    "bool_mask": lambda x: x[X > 0],
    "bool_row_mask": lambda x: x[np.array([True, False, True])],
    "int_array": lambda x: x[[2, 0]],
    "int_array_repeated": lambda x: x[[1, 1, 0, 1]],
    "int_array_2d_repeated": lambda x: x[np.array([[0, 2], [2, 2]])],
    "pairs": lambda x: x[[0, 1, 1], [3, 3, 0]],
    "mixed_slice_array": lambda x: x[1:, [0, 2, 0]],
    "mixed_array_slice": lambda x: x[[2, 0, 2], 1:3],
    "mixed_newaxis_array": lambda x: x[:, None, [1, 1]],
    "zero_d_int_array": lambda x: x[np.array(1), np.array(2)],
    "row_then_element": lambda x: x[2][1],
    "view_of_view": lambda x: x[::-1][1:, ::-1][0],
    "bool_list": lambda x: x[[True, False, True]],
    "empty_list": lambda x: x[[]],
    "empty_mask": lambda x: x[X > 100],
    "empty_slice": lambda x: x[2:2, 1:],
}


@pytest.mark.parametrize("name", sorted(READS))
def test_read(name):
    read = READS[name]
    shape = np.shape(read(X.copy()))

    def f(x, out):
        r = read(x)
        out[...] = r * r                     # squared: primal values matter
    check_all(f, dup(X), dup(np.zeros(shape)))


def test_read_scalar_result():
    def f(x):
        return x[0, 1] * x[-1, -1] + x[1][2] - x[[2], [0]][0] * x[X > 1][0]
    check_all(f, dup(X))


def test_repeated_reads_add_up():
    x, dx = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    out, dout = np.zeros(4), np.array([1.0, 10.0, 100.0, 1000.0])

    def f(x, out):
        out[...] = x[[2, 0, 2, 2]]
    autodiff(f, Duplicated(x, dx), Duplicated(out, dout))
    assert dx.tolist() == [10.0, 0.0, 1101.0]
    assert out.tolist() == [3.0, 1.0, 3.0, 3.0]


def test_element_reads_are_traced_scalars():
    got = {}

    def f(x, c):
        got["x"] = type(x[1, 0]), type(x[1, 1:][0]), type(x[-1, 2])
        got["c"] = type(c[0]), type(c[0, 0])
        z = np.copy(x[0, 0])                 # a 0-d array: () names its element
        got["z"] = type(z), type(z[()]), type(z[...])
        return z[()] * 1.0
    autodiff(f, dup(X), Const(X.copy()))
    assert got["x"] == (sad.TScalar,) * 3
    # an element of inactive memory is numpy's scalar type, as outside f
    assert got["c"][0] is sad.TArray and got["c"][1] is np.float64
    assert got["z"] == (sad.TArray, sad.TScalar, sad.TArray)


# --------------------------------------------------------------------------
# writes

WRITES = {
    "int_scalar": lambda x, y: y.__setitem__(1, x[0, 0] * x[1, 1]),
    "negative_int": lambda x, y: y.__setitem__(-1, x[2] * 2.0),
    "element_traced": lambda x, y: y.__setitem__((1, -2), x[0, 1] * x[0, 2]),
    "element_float": lambda x, y: y.__setitem__((2, 3), 4.0),
    "element_int": lambda x, y: y.__setitem__((0, 0), 7),
    "element_0d_array": lambda x, y: y.__setitem__((0, 1), np.copy(x[1, 1]) * 3.0),
    "row": lambda x, y: y.__setitem__(0, x[1] * x[2]),
    "slice_array": lambda x, y: y.__setitem__(slice(1, 3), x[:2] * 2.0),
    "negative_step": lambda x, y: y.__setitem__((slice(None, None, -1), slice(3, 0, -2)),
                                                x[:, :2]),
    "broadcast_row": lambda x, y: y.__setitem__((slice(None), slice(1, 3)), x[0, :2]),
    "broadcast_column": lambda x, y: y.__setitem__(Ellipsis, x[:, 1:2] * x[:, 2:3]),
    "broadcast_traced_scalar": lambda x, y: y.__setitem__((slice(1, None), 2), x[0, 0]),
    "fill_all_traced": lambda x, y: y.__setitem__(Ellipsis, x[2, 3] * x[1, 0]),
    "fill_float": lambda x, y: y.__setitem__(slice(None, 2), 2.5),
    "list_value": lambda x, y: y.__setitem__((0, slice(None)), [1.0, 2.0, 3.0, 4.0]),
    "plain_array_value": lambda x, y: y.__setitem__(1, np.arange(4.0)),
    "newaxis": lambda x, y: y.__setitem__((None, 1), x[2][None]),
    "bool_mask_array": lambda x, y: y.__setitem__(X > 0, x[X > 0] * 2.0),
    "bool_mask_scalar": lambda x, y: y.__setitem__(X < 0, x[0, 0]),
    "bool_mask_float": lambda x, y: y.__setitem__(X < 0, 0.0),
    "int_array": lambda x, y: y.__setitem__([2, 0], x[:2]),
    "int_array_repeated_last_wins": lambda x, y: y.__setitem__([1, 0, 1], x * x),
    "int_array_repeated_scalar": lambda x, y: y.__setitem__(([1, 1], [2, 2]), x[0, 3]),
    "pairs_repeated": lambda x, y: y.__setitem__(([0, 2, 0], [1, 3, 1]), x[1, :3]),
    "mixed_slice_array": lambda x, y: y.__setitem__((slice(1, None), [0, 2]), x[:2, :2]),
    "mixed_array_slice_broadcast": lambda x, y: y.__setitem__(([0, 2], slice(1, 3)),
                                                             x[1, 2:]),
    "advanced_plain_value": lambda x, y: y.__setitem__([0, 2], np.ones(4)),
    "advanced_into_view": lambda x, y: y.T.__setitem__([1, 3], x[:, :2].T),
    "bool_list": lambda x, y: y.__setitem__([True, False, True], x[[True, True, False]] * 2.0),
    "empty_list": lambda x, y: y.__setitem__([], x[0, 0]),
    "empty_mask": lambda x, y: y.__setitem__(X > 100, x[X > 100] * 2.0),
    "empty_slice": lambda x, y: y.__setitem__(slice(2, 2), x[:0]),
}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_write(name):
    write = WRITES[name]

    def f(x, y):
        write(x, y)
        return y[0, 0] * y[1, 2] + y[2, 1] * x[1, 1]   # reads after the write
    check_all(f, dup(X), dup(X + 1.0))


def test_element_write_with_a_sequence_is_an_error():
    # numpy >= 2 no longer converts a size-1 array to an element
    def f(x, y):
        y[0, 0] = x[0, :1]
    with pytest.raises(ValueError):
        autodiff(f, dup(X), dup(X))


def test_enzyme_overwrite_semantics():
    x, dx = np.array([2.0, 2.0]), np.zeros(2)
    y, dy = np.array([5.0, 6.0]), np.array([1.0, 1.0])

    def f(x, y):
        y[0] = x[0] * x[0] + x[1] * x[0]
        y[1:] = x[1:] * 3.0
    autodiff(f, Duplicated(x, dx), Duplicated(y, dy))
    assert dx.tolist() == [6.0, 5.0]
    assert dy.tolist() == [0.0, 0.0]       # overwritten: the shadow is consumed
    assert y.tolist() == [8.0, 6.0]


def test_repeated_advanced_write_last_wins():
    x, dx = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    y, dy = np.zeros(2), np.array([10.0, 100.0])

    def f(x, y):
        y[[0, 0, 1]] = x * 2.0
    autodiff(f, Duplicated(x, dx), Duplicated(y, dy))
    assert y.tolist() == [4.0, 6.0]
    assert dx.tolist() == [0.0, 20.0, 200.0]
    assert dy.tolist() == [0.0, 0.0]


def test_writes_into_views_of_views():
    def f(x, y):
        v = y[1:]
        w = v[:, ::-1]
        w[0] = x[0] * 2.0                    # y[1, ::-1]
        w[1, 1:3] = x[2, :2]                 # y[2, 2:0:-1]
        u = w[..., None][:, 0]
        u[0, 0] = x[1, 1] * x[1, 2]          # y[1, 3]
        return y[1, 3] * y[2, 1] + v[0, 0]
    check_all(f, dup(X), dup(X + 1.0))


def test_writes_that_read_their_own_target():
    def f(x, y):
        y[1:] = y[:-1] * x[:5]
        y[::-1] = y
        y[[0, 1, 2]] = y[[2, 1, 0]]
        y[2:] = y[:-2]
        y[0] = y[0] * y[1]
    check_all(f, dup(V[:5]), dup(V))


def test_augmented_assignment_on_slices():
    def f(x, y):
        y[1:3] += x[:2] * x[1:]
        y[::2, :2] *= x[:2, :2]
        y[0] -= x[2]
        y[[0, 2]] += 1.0
        y[1, 1] *= x[0, 0]
    check_all(f, dup(X), dup(X + 1.0))


def test_fast_paths_match_the_general_path():
    def f(x, y):
        for i in range(len(x)):
            y[i] = x[i] * x[-1 - i]          # the scalar-loop fast paths
        y[-2] = x[0]
        y[np.int64(0)] = x[np.int64(1)]
        return y[0] * y[-1]
    check_all(f, dup(V), dup(V + 1.0))


def test_many_dimensions_copy():
    # more dimensions than the C core iterates over: the copy record is split
    # per leading index and each part must still compute its primal
    y = rng.standard_normal((3, 3, 3, 3, 3))

    def f(x, out):
        out[::2, ::2, ::2, ::2, ::2] = x[::2, ::2, ::2, ::2, 1::2]
    check_all(f, dup(y), dup(y + 1.0))


def test_zero_d_arrays():
    def f(x, out):
        z = np.copy(x[0])
        z[()] = z[()] * x[1]
        z[...] = z * 2.0
        out[1] = z[()]
        out[0] = z
    check_all(f, dup([1.5, -2.0]), dup(np.zeros(2)))


def test_sad_setindex_kernel():
    def f(x, y):
        sad.setindex(y, (slice(None), 0), x[:, 1] * 2.0)
        sad.setindex(y, (0, 1), x[2, 2])
    check_all(f, dup(X), dup(X + 1.0))
    y = np.zeros(3)
    assert sad.setindex(y, 1, 5.0) is y and y.tolist() == [0.0, 5.0, 0.0]


# --------------------------------------------------------------------------
# Const memory receiving active values is promoted

def test_const_promotion_by_element_write():
    x, dx = np.array([2.0, 3.0]), np.zeros(2)
    c = np.array([1.0, 5.0])

    def f(x, c):
        c[0] = x[0]
        return c[0] * c[1] + c[0] * x[1]
    autodiff(f, Duplicated(x, dx), Const(c))
    assert dx.tolist() == [5.0 + 3.0, 2.0]
    assert c.tolist() == [2.0, 5.0]


@pytest.mark.parametrize("how", ["element", "fast", "slice", "advanced", "mask", "broadcast"])
def test_const_promotion(how):
    def f(x, c, out):
        if how == "element":
            c[1, 2] = x[0] * x[1]
        elif how == "fast":
            c[1][2] = x[0] * x[1]
        elif how == "slice":
            c[1:, ::2] = x[:4].reshape(2, 2)
        elif how == "advanced":
            c[[0, 2], [1, 1]] = x[2:4]
        elif how == "mask":
            c[X > 0] = x[0]
        else:
            c[...] = x[:4]
        out[...] = c * c                     # read through the promoted memory
        out[0] = c[1] * x[1]
    check_all(f, dup([1.5, -2.0, 0.5, 3.0]), Const(X.copy()), dup(np.zeros((3, 4))))


def test_const_writes_of_constants():
    # inactive values written into Const memory: no gradient flows, and
    # restore=True still gives the memory back bit for bit
    def f(x, c):
        c[0] = 3.0
        c[1:] = c[:-1] * 2.0
        c[[0, 1]] = 1.0
        c[c > 1.5] = 0.5
        np.transpose(c[None])[2:] = 7.0
        return x[0] * c[1] + c[2] * x[0]
    check_all(f, dup([2.0]), Const(np.arange(4.0)))


# --------------------------------------------------------------------------
# errors

@pytest.mark.parametrize("bad", [
    lambda x, y: x[6],
    lambda x, y: x[-7],
    lambda x, y: y.reshape(2, 3)[1, 3],
    lambda x, y: x[[0, 6]],
    lambda x, y: y.__setitem__(6, x[0]),
    lambda x, y: y.__setitem__(-7, 1.0),
    lambda x, y: y.reshape(2, 3).__setitem__((2, 0), x[0]),
    lambda x, y: y.__setitem__([0, 9], x[:2]),
    lambda x, y: y.__setitem__([0, 9], 1.0),
])
def test_out_of_bounds(bad):
    def f(x, y):
        y[0] = x[1] * 2.0                    # a write before the error
        bad(x, y)
    with pytest.raises(IndexError):
        autodiff(f, dup(V), dup(V))
    check_failure_atomic(f, dup(V), dup(V), exc=IndexError)


@pytest.mark.parametrize("bad", [
    lambda x, y: y.__setitem__(slice(0, 2), x[:3]),
    lambda x, y: y.__setitem__(slice(None), x[:, None]),
    lambda x, y: y.__setitem__([0, 1], x[:3]),
    lambda x, y: y.__setitem__(slice(0, 2), np.ones(3)),
    lambda x, y: y.__setitem__(0, x[:2]),
])
def test_shape_mismatch(bad):
    def f(x, y):
        y[1] = x[0] * 2.0
        bad(x, y)
    with pytest.raises(ValueError):
        autodiff(f, dup(V), dup(V))
    check_failure_atomic(f, dup(V), dup(V), exc=ValueError)


@pytest.mark.parametrize("write", [
    lambda x, t: x.__setitem__(0, t),        # the y[i] = t fast path
    lambda x, t: x.__setitem__(0, 1.0),
    lambda x, t: x.__setitem__(slice(1, 3), 1.0),
    lambda x, t: x.__setitem__([0, 1], t),
    lambda x, t: x[::2].__setitem__(0, t),
    lambda x, t: x.__iadd__(1.0),
])
def test_writing_into_an_active_array_suggests_duplicated(write):
    def f(x):
        write(x, x[1] * 2.0)
    with pytest.raises(TypeError, match="Duplicated"):
        autodiff(f, Active(V.copy()))


@pytest.mark.parametrize("view", [
    lambda y: np.diagonal(y),
    lambda y: np.broadcast_to(y[0], (2, 4)),
    lambda y: np.diagonal(y)[::-1],
])
@pytest.mark.parametrize("value", ["traced", "float", "array"])
def test_writing_into_a_read_only_view(view, value):
    def f(x, y):
        v = view(y)
        t = {"traced": x[0, 0] * 2.0, "float": 1.0, "array": x[0, :2]}[value]
        if value == "array":
            v[:2] = t
        else:
            v[0] = t
    with pytest.raises(ValueError, match="read-only"):
        autodiff(f, dup(X), dup(X))


def test_failure_after_python_records_restores_everything():
    def f(x, y):
        r = np.concatenate([x, x[[0, 0]]])
        y[[1, 2]] = r[:2] * r[2:4]
        y[:2] = r                            # shape mismatch
    check_failure_atomic(f, dup(V), dup(V), exc=ValueError)


def test_traced_values_cannot_be_indices_or_silently_detached():
    def index_with_traced(x):
        return x[x[0]]

    def set_with_traced_index(x, y):
        y[x[0]] = 1.0

    def into_plain(x):
        buf = np.zeros(2)
        buf[0] = x[0]

    def to_array(x):
        np.array([x[0], x[1]])
    with pytest.raises(TypeError, match="index"):
        autodiff(index_with_traced, dup([0.0, 1.0]))
    with pytest.raises(TypeError, match="index"):
        autodiff(set_with_traced_index, dup([0.0, 1.0]), dup([0.0, 1.0]))
    with pytest.raises(TypeError, match="zeros_like"):
        autodiff(into_plain, dup([0.0, 1.0]))
    with pytest.raises(TypeError, match="np.stack"):
        autodiff(to_array, dup([0.0, 1.0]))


# --------------------------------------------------------------------------
# numpy behaviours

def test_len_and_iteration():
    got = {}

    def f(x, v):
        got["len"] = len(x), len(v), len(x[0]), len(x[:, None])
        rows = list(x)
        got["rows"] = [type(r) for r in rows], [r.shape for r in rows]
        total = 0.0
        for row in x:
            for e in row:
                total = total + e * e
        for e in v:
            total = total + e
        return total
    x, dx = X.copy(), np.zeros((3, 4))
    v, dv = V.copy(), np.zeros(6)
    autodiff(f, Duplicated(x, dx), Duplicated(v, dv))
    assert got["len"] == (3, 6, 4, 3)
    assert got["rows"] == ([sad.TArray] * 3, [(4,)] * 3)
    assert np.allclose(dx, 2 * X) and dv.tolist() == [1.0] * 6
    check_all(f, dup(X), dup(V))


def test_iteration_over_const_yields_plain_values():
    got = []

    def f(x, c):
        for e in c:
            got.append(type(e))
        return x[0] * c[0]
    autodiff(f, dup([2.0]), Const(np.array([1.0, 2.0])))
    assert got == [np.float64, np.float64]  # numpy's scalar type, as outside f


def test_len_of_0d_is_an_error_as_in_numpy():
    def f(x):
        len(np.copy(x[0]))
    with pytest.raises(TypeError):
        autodiff(f, dup([1.0]))


def test_gather_of_distinct_and_repeated_positions():
    # distinct positions take a plain += in the pullback, repeated ones np.add.at:
    # both must add every term
    a = rng.standard_normal((5, 4))

    def f(a):
        p = a[:, [2, 0, 3, 1]]             # a permutation of the columns
        q = a[[4, 1, 1, 0]]                # a repeated row
        r = a[np.array([3, 0]), 1:]        # two arrays would be 2 items: one array and a slice
        return np.sum(p * p) + np.sum(q * q * q) + np.sum(r)

    check_rule(f, Duplicated(a, np.zeros_like(a)))


# --------------------------------------------------------------------------
# the C indexing paths (csrc/ext/index.c): views and write-backs

def _index_program(A, b):
    n = A.shape[0]
    for k in range(n - 1):                     # an in-place LU: views and write-backs
        A[k + 1:, k] /= A[k, k]
        A[k + 1:, k + 1:] -= np.outer(A[k + 1:, k], A[k, k + 1:])
    b[1:] += A[0, 1:] * A[1:, 0]               # a row, a column
    b[:2] = b[1:3]                             # same shape, another view: a real copy
    b[...] *= A[-1][::-1]                      # an int index of a 2-D array: a row
    c = A[1:, None, 0][:, 0] + A[(1, slice(1, None))] + A[..., 2][1:]
    return np.sum(c * b[1:]) + np.sum(A[1] * A[2:3][0])


def test_c_views_and_write_backs_match_the_python_path(monkeypatch):
    from shadowad.engines.reverse import traced
    A0 = np.eye(4) * 4.0 + rng.uniform(-1, 1, (4, 4))
    b0 = rng.standard_normal(4)

    def run():
        A, b = dup(A0), dup(b0)
        v = autodiff(_index_program, A, b)
        return [v, A.val, b.val, A.dval, b.dval]
    calls = []
    real_view, real_back = traced._view, traced._c_writes_back
    monkeypatch.setattr(traced, "_view", lambda *a: calls.append("v") or real_view(*a))
    monkeypatch.setattr(traced, "_c_writes_back",
                        lambda *a: calls.append("w") or real_back(*a))
    fast = run()
    assert "v" in calls and "w" in calls
    monkeypatch.setattr(traced, "_view", lambda *a: NotImplemented)
    monkeypatch.setattr(traced, "_c_writes_back", lambda *a: None)
    slow = run()
    for a, b in zip(fast, slow):
        assert sad.testing.same_bits(np.asarray(a[0] if isinstance(a, tuple) else a),
                                     np.asarray(b[0] if isinstance(b, tuple) else b))
    monkeypatch.undo()
    check_all(_index_program, dup(A0), dup(b0))


def test_c_write_back_tells_views_apart():
    from shadowad._c import fast
    p = np.arange(12.0).reshape(3, 4)
    assert fast.writes_back(p, (slice(1, None), 0), p[1:, 0]) is True
    assert fast.writes_back(p, (slice(1, None), 0), p[1:, 1]) is False  # other memory
    assert fast.writes_back(p, slice(0, 2), p[1:3]) is False            # shifted
    assert fast.writes_back(p, (slice(None), 0), p[:, 0].copy()) is False
    assert fast.writes_back(p, 1, p[1]) is True
    assert fast.writes_back(p, (1, 2), p[1:2, 2]) is None  # an element: Python's
    assert fast.writes_back(p, [0, 1], p[:2]) is None      # advanced: Python's
    assert fast.writes_back(p, (np.int64(1), slice(None)), p[1]) is None
    with pytest.raises(IndexError):
        fast.writes_back(p, (slice(None), 7), p[:, 0])


def test_c_views_of_lazy_and_inactive_memory():
    def f(x, c):
        t = np.exp(x) * 2.0                    # a large temporary: a lazy shadow
        u = t[::2] + t[1::2]                   # views of it
        k = c[1:]                              # a constant's view stays constant
        return np.sum(u[: k.size] * k)
    x = rng.standard_normal(9000)
    c = rng.standard_normal(4501)
    g = autodiff(f, Active(x), Const(c))[0]
    e = np.exp(x) * 2.0
    want = np.zeros_like(x)
    want[::2][:4500] = e[::2][:4500] * c[1:]
    want[1::2][:4500] = e[1::2][:4500] * c[1:]
    assert np.allclose(g, want)


def test_c_view_index_errors_are_numpys():
    def f(x):
        return x[1:, 5]
    with pytest.raises(IndexError, match="out of bounds"):
        autodiff(f, dup(X))
    from shadowad._c import fast
    with pytest.raises(TypeError, match="register_reverse takes 8 arguments"):
        fast.register_reverse(1, 2)
    with pytest.raises(TypeError, match="argument 0 must be a subclass of .*ArrayBase"):
        fast.register_reverse(int, np.ndarray, int, int, None, None, None, None)
