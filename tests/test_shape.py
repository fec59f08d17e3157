"""Shape functions: views share memory and shadow with their base, copies and
combinations are differentiable, *_like buffers are promoted by active writes.

Most programs write their result into a Duplicated output, so the checkers
seed its shadow at random and the objective needs no reduction; every program
runs through check_gradient, check_restore (which also compares the primal
state with an untraced call: views must write where numpy's views write) and
check_accumulate_once.
"""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, Forward, autodiff
from shadowad import testing
from shadowad.testing import check_rule, check_gradient, same_bits

rng = np.random.default_rng(7)
X = rng.standard_normal((3, 4))


def dup(a):
    a = np.array(a, dtype=float)
    return Duplicated(a, np.zeros_like(a))


check_all = check_rule


def into_out(fn):
    """f(x, out): out[...] = fn(x)**2 (squared, so primal values matter)."""
    def f(x, out):
        r = fn(x)
        out[...] = r * r
    return f


def check_fn(fn, x=X):
    shape = np.shape(fn(x.copy()))
    check_all(into_out(fn), dup(x), dup(np.zeros(shape)))


# --------------------------------------------------------------------------
# views: the same numpy function on primal and shadow

VIEWS = {
    "transpose": lambda x: np.transpose(x),
    "transpose_axes": lambda x: np.transpose(x[None], (2, 0, 1)),
    "T": lambda x: x.T,
    "method_transpose": lambda x: x.transpose(1, 0),
    "swapaxes": lambda x: np.swapaxes(x, 0, 1),
    "moveaxis": lambda x: np.moveaxis(x[None], 0, -1),
    "flip": lambda x: np.flip(x, 1),
    "squeeze": lambda x: np.squeeze(x[:, None, :, None]),
    "squeeze_axis": lambda x: np.squeeze(x[None], axis=0),
    "expand_dims": lambda x: np.expand_dims(x, 1),
    "diagonal": lambda x: np.diagonal(x),
    "diagonal_offset": lambda x: np.diagonal(x, -1),
    "method_diagonal": lambda x: x.diagonal(1),
    "reshape_view": lambda x: np.reshape(x, (2, 6)),
    "reshape_minus1": lambda x: x.reshape(-1, 3),
    "reshape_F": lambda x: np.reshape(x, (6, 2), order="F"),
    "reshape_copy_of_T": lambda x: np.reshape(x.T, (2, 6)),
    "reshape_strided": lambda x: np.reshape(x[:, ::2], (6,)),
    "reshape_copy_kw": lambda x: np.reshape(x, (12,), copy=True),
    "ravel": lambda x: np.ravel(x),
    "ravel_of_T": lambda x: np.ravel(x.T),
    "ravel_F": lambda x: np.ravel(x, order="F"),
    "ravel_A": lambda x: np.ravel(x.T, order="A"),
    "ravel_K": lambda x: np.ravel(x.T[::-1], order="K"),
    "flatten": lambda x: x.flatten(),
    "broadcast_row": lambda x: np.broadcast_to(x[1], (5, 4)),
    "broadcast_column": lambda x: np.broadcast_to(x[:, 2:3], (3, 6)),
    "broadcast_new_axis": lambda x: np.broadcast_to(x, (2, 3, 4)),
    "broadcast_scalar": lambda x: np.broadcast_to(x[1, 1] * 2.0, (2, 3)),
    "atleast_1d": lambda x: np.atleast_1d(x[0, 0] * x[1, 1]),
    "atleast_2d": lambda x: np.atleast_2d(x[1]),
    "atleast_2d_scalar": lambda x: np.atleast_2d(x[1, 2]),
    "reshape_scalar": lambda x: np.reshape(x[0, 1], (1, 1)),
    "view_of_view": lambda x: np.diagonal(np.transpose(x)[::-1])[None],
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_view_gradients(name):
    check_fn(VIEWS[name])


EDGES = {
    "reshape_empty": lambda x: np.reshape(x[:0], (0, 2, 2)),
    "ravel_empty": lambda x: np.ravel(x[:, :0].T),
    "concatenate_empty": lambda x: np.concatenate([x[:0], x, x[2:2]]),
    "stack_empty": lambda x: np.stack([x[:0], x[:0] * 2.0]),
    "where_empty": lambda x: np.where(np.zeros((0, 4), bool), x[:0], 1.0),
    "clip_empty": lambda x: np.clip(x[:0], 0.0, 1.0),
    "copy_empty": lambda x: np.copy(x[:0]),
    "broadcast_to_empty": lambda x: np.broadcast_to(x[0], (0, 4)),
    "squeeze_scalar": lambda x: np.squeeze(x[0, 0]),
    "transpose_scalar": lambda x: np.transpose(x[0, 0] * 3.0),
    "expand_dims_scalar": lambda x: np.expand_dims(x[1, 1], (0, 1)),
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_zero_size_and_scalar_inputs(name):
    fn = EDGES[name]
    shape = np.shape(fn(X.copy()))

    def f(x, out):
        out[...] = fn(x)
    check_all(f, dup(X), dup(np.zeros(shape)))


def test_views_share_memory_with_their_base():
    seen = {}

    def f(x, y):
        for name, fn in [("t", np.transpose), ("r", lambda v: v.reshape(12)),
                         ("d", np.diagonal), ("b", lambda v: np.broadcast_to(v, (2, 3, 4))),
                         ("e", lambda v: np.expand_dims(v, 0)),
                         ("m", lambda v: np.moveaxis(v, 0, 1))]:
            seen[name] = np.may_share_memory(fn(y), y)
        y[0] = x[0] * 2.0

    autodiff(f, dup(X), dup(X))
    assert all(seen.values()), seen


def test_writes_through_views_reach_the_base():
    def f(x, y):
        np.transpose(y)[0, 1:] = x[0, :2] * x[1, :2]    # y[1:, 0]
        y.reshape(2, 6)[1, ::5] = x[2, 1:3]               # y[1, 2] and y[2, 3]
        np.swapaxes(y[None], 0, 2)[3, 0, 0] = x[0, 0] * 3.0
        v = np.moveaxis(y, 1, 0)[::-1]
        v[0, 1:] = np.squeeze(np.expand_dims(x[2, :2], 0)) * 2.0
        y.ravel()[0] = x[1, 3]
        return y[1, 0] * y[2, 3] + y[0, 0] * y[1, 2]
    check_all(f, dup(X), dup(X + 1.0))


def test_fortran_order_argument():
    # numpy's view-or-copy decisions follow the layout: C reshape of a Fortran
    # array copies, of its transpose views; ravel("K") reads in memory order
    def f(x, out):
        r = x.reshape(-1)
        s = x.T.reshape(-1)
        out[...] = r * s + np.ravel(x, "K")
        x.T.reshape(-1)[0] = out[1]          # writes x[0, 0]
        x.reshape(-1)[1] = out[2]            # writes a copy only
    x = np.asfortranarray(X)
    check_all(f, Duplicated(x.copy(order="K"), np.zeros_like(x)), dup(np.zeros(12)))


def test_reshape_that_copies_does_not_write_back():
    # numpy copies here; the copy is independent of y afterwards (the untraced
    # call run by check_restore is the reference)
    def f(x, y):
        c = y.T.reshape(12)
        c[0] = x[0, 0] * 5.0
        y[0, 0] = c[1] * c[0]
    check_all(f, dup(X), dup(X + 1.0))


def test_reads_through_a_view_see_later_writes_to_the_base():
    def f(x, y, out):
        v = np.transpose(y)          # made before the writes
        d = np.diagonal(y)
        y[1] = x[0] * x[1]
        y[0, 0] = x[2, 2]
        out[...] = v[:3] * d[None, :]
    check_all(f, dup(X), dup(X + 1.0), dup(np.zeros((3, 3))))


def test_diagonal_and_broadcast_views_are_read_only():
    def write_diag(y):
        np.diagonal(y)[0] = 1.0

    def write_broadcast(x, y):
        np.broadcast_to(y[0], (2, 4))[0, 0] = x[0, 0]

    with pytest.raises(ValueError, match="read-only"):
        autodiff(write_diag, dup(X))
    with pytest.raises(ValueError, match="read-only"):
        autodiff(write_broadcast, dup(X), dup(X))
    # and numpy keeps the primal view read-only
    flags = {}

    def f(x):
        flags["d"] = np.diagonal(x).p.flags.writeable
        flags["b"] = np.broadcast_to(x, (2, 3, 4)).p.flags.writeable
    autodiff(f, dup(X))
    assert flags == {"d": False, "b": False}


def test_broadcast_to_accumulates_over_the_broadcast_axes():
    x, dx = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    out, dout = np.zeros((4, 3)), np.arange(12.0).reshape(4, 3)

    def f(x, out):
        out[...] = np.broadcast_to(x, (4, 3)) * 2.0
    autodiff(f, Duplicated(x, dx), Duplicated(out, dout))
    assert dx.tolist() == [2.0 * (0 + 3 + 6 + 9), 2.0 * (1 + 4 + 7 + 10), 2.0 * (2 + 5 + 8 + 11)]
    assert out.tolist() == [[2.0, 4.0, 6.0]] * 4


@pytest.mark.parametrize("reader", ["ufunc", "where", "gather", "copy", "concat", "slice"])
def test_broadcast_view_feeds_every_kind_of_pullback(reader):
    # the C records, the Python records' accumulate and np.add.at must all sum
    # the adjoint through the stride-0 shadow
    mask = np.array([[True, False, True, True]] * 5)
    read = {
        "ufunc": lambda b: b * b,
        "where": lambda b: np.where(mask, b, 0.5),
        "gather": lambda b: b[[0, 0, 4, 2, 1]],
        "copy": lambda b: np.copy(b),
        "concat": lambda b: np.concatenate([b, b[:1]])[1:],
        "slice": lambda b: b[1:, ::-1],
    }[reader]
    check_fn(lambda x: read(np.broadcast_to(x[1], (5, 4))))


def test_views_of_an_active_array_are_read_only():
    def f(x):
        np.transpose(x)[0, 0] = 1.0
    with pytest.raises(TypeError, match="Duplicated"):
        autodiff(f, Active(X.copy()))

    def g(x):
        return np.reshape(x, (12,))[5] * np.diagonal(x)[1]
    (gx,) = autodiff(g, Active(X.copy()))
    want = np.zeros((3, 4))
    want[1, 1] += X[1, 1]
    want[1, 1] += X[1, 1]
    assert np.array_equal(gx, want)


def test_reshape_errors():
    def no_copy(x):
        np.reshape(x.T, (12,), copy=False)
    with pytest.raises(ValueError, match="copy"):
        autodiff(no_copy, dup(X))

    def bad_shape(x):
        np.reshape(x, (5, 5))
    with pytest.raises(ValueError):
        autodiff(bad_shape, dup(X))

    def reshape_y(x, y):
        y.reshape(12)[0] = x[0, 0]
    # a view of the primal whose shadow (another layout) numpy would copy
    with pytest.raises(ValueError, match="layout"):
        autodiff(reshape_y, dup(X), Duplicated(X.copy(), np.zeros((3, 4), order="F")))


def test_view_of_const_memory_promoted_later():
    # the view exists before c is promoted: its shadow is found at first use
    def f(x, c, out):
        v = np.transpose(c)
        d = np.broadcast_to(c[0], (2, 4))
        r = c.reshape(2, 6)
        c[0, 1] = x[0] * x[1]
        np.transpose(c)[2, 2] = x[2]
        r[1, 0] = x[0] * 3.0                     # c[1, 2], through the reshaped view
        out[...] = v[1:3] * 2.0 + d[:, :3] + r[:, 3:]
    x = np.array([1.5, -2.0, 0.5])
    check_all(f, dup(x), Const(X.copy()), dup(np.zeros((2, 3))))


# --------------------------------------------------------------------------
# copies

def test_copy_is_independent_of_later_writes():
    def f(x, y, out):
        c = np.copy(y)
        d = y.copy()
        y[0] = x[0] * x[1]
        out[...] = (c - 1.0) * d + y
    check_all(f, dup(X), dup(X + 1.0), dup(np.zeros((3, 4))))


def test_copy_exact_values():
    x, dx = np.array([1.0, 2.0]), np.zeros(2)
    out, dout = np.zeros(2), np.array([3.0, 5.0])

    def f(x, out):
        c = np.copy(x)
        out[...] = c * c
    autodiff(f, Duplicated(x, dx), Duplicated(out, dout))
    assert dx.tolist() == [6.0, 20.0]
    assert out.tolist() == [1.0, 4.0]


def test_copy_of_a_traced_scalar_and_of_constants():
    def f(x, c, out):
        t = np.copy(x[0] * x[1])         # a 0-d array
        k = np.copy(c)                   # constant: no record
        out[...] = t * k
    check_all(f, dup([2.0, 3.0]), Const(np.array([1.0, -1.0, 0.5])), dup(np.zeros(3)))


@pytest.mark.parametrize("like", ["zeros_like", "ones_like", "empty_like", "full_like"])
def test_like_buffers_are_promoted_by_active_writes(like):
    make = {
        "zeros_like": np.zeros_like, "ones_like": np.ones_like,
        "full_like": lambda a: np.full_like(a, 2.5),
        "empty_like": lambda a: np.empty_like(a),
    }[like]

    def f(x, out):
        z = make(x)
        if like == "empty_like":
            z[...] = 0.0
        z[1] = x[0] * x[2]
        z[2:4] = x[:2] * 3.0
        out[...] = z * z
    check_all(f, dup([1.0, -2.0, 0.5, 4.0]), dup(np.zeros(4)))


def test_like_buffers_are_inactive_until_written():
    state = {}

    def f(x):
        z = np.zeros_like(x)
        state["z"] = sad.primal(np.zeros_like(x[0]))
        state["active"] = repr(z)
        z[0] = x[0]
        state["after"] = repr(z)
        return z[0] * x[1]
    (g,) = autodiff(f, Active(np.array([2.0, 3.0])))
    assert g.tolist() == [3.0, 2.0]
    assert "inactive" in state["active"] and "inactive" not in state["after"]
    assert state["z"].shape == ()


def test_like_with_other_dtype_or_shape():
    got = {}

    def f(x):
        got["int"] = np.zeros_like(x, dtype=np.int64)
        got["bool"] = np.ones_like(x, dtype=bool)
        got["shape"] = np.zeros_like(x, shape=(2, 5)).shape
        got["full"] = np.full_like(x, 7, dtype=np.int32)
        return x[0] * 1.0
    autodiff(f, Active(np.ones(3)))
    assert type(got["int"]) is np.ndarray and got["int"].dtype == np.int64
    assert got["bool"].dtype == bool and got["bool"].all()
    assert got["shape"] == (2, 5)
    assert got["full"].tolist() == [7, 7, 7]

    def bad(x):
        np.full_like(x, x[0], dtype=np.int64)
    with pytest.raises(TypeError, match="derivative"):
        autodiff(bad, Active(np.ones(3)))


def test_full_like_with_a_traced_fill_value():
    def f(x, out):
        out[...] = np.full_like(out, x[0] * x[1]) + np.full_like(out, x[2:4])
    check_all(f, dup([1.0, 2.0, 3.0, -1.0]), dup(np.zeros((3, 2))))


# --------------------------------------------------------------------------
# combinations

@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_concatenate(axis):
    plain = np.ones((3, 2)) if axis in (1, -1) else np.ones((2, 4))
    if axis is None:
        plain = np.ones(5)

    def fn(x):
        first = x[:2] * x[:2] if axis in (0, None) else x[:, :1]
        return np.concatenate([x, first, plain, x], axis=axis)
    check_fn(fn)


def test_concatenate_with_const_and_out():
    def f(x, c, out):
        np.concatenate([c, x * 2.0], out=out)
    check_all(f, dup([1.0, 2.0]), Const(np.array([5.0])), dup(np.zeros(3)))

    def g(x, c):
        r = np.concatenate([c, c])
        assert not isinstance(r, sad.TArray) or "inactive" in repr(r)
        return x[0] * r[1]
    check_gradient(g, dup([1.0, 2.0]), Const(np.array([5.0, 6.0])))

    def zero_d(x):
        np.concatenate([x[0], x[1]])
    with pytest.raises(ValueError, match="zero-dimensional"):
        autodiff(zero_d, dup([1.0, 2.0]))


def test_stack_of_traced_scalars_builds_an_array():
    x, dx = np.array([2.0, 3.0, 4.0]), np.zeros(3)

    def f(x):
        v = np.stack([x[0] * x[1], x[2], 5.0, x[0]])
        return v[0] + v[1] * v[3] + v[2]
    grads = autodiff(f, Duplicated(x, dx))
    assert grads == (None,)
    assert dx.tolist() == [3.0 + 4.0, 2.0, 2.0]
    check_all(into_out(lambda x: np.stack([x[0] * x[1], x[2], 5.0])), dup([2.0, 3.0, 4.0]),
              dup(np.zeros(3)))


def test_stack_of_active_scalars():
    def f(a, b):
        v = np.stack([a * b, a, 2.0])
        return v[0] * v[1] + v[2] * b
    grads = autodiff(f, Active(3.0), Active(5.0))
    assert grads == (2 * 3.0 * 5.0, 3.0 * 3.0 + 2.0)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack_arrays(axis):
    check_fn(lambda x: np.stack([x, x * x, np.ones((3, 4))], axis=axis))


def test_stack_of_0d_arrays_and_out():
    def f(x, out):
        t = np.copy(x[0])                # a 0-d traced array
        np.stack([t, x[1] * 2.0, t], out=out)
    check_all(f, dup([1.5, -2.0]), dup(np.zeros(3)))

    def bad(x):
        np.stack([x, x], dtype=np.int64)
    with pytest.raises(TypeError, match="derivative"):
        autodiff(bad, dup([1.0]))


def test_hstack_vstack():
    check_fn(lambda x: np.hstack([x, x[:, :1] * 2.0]))
    check_fn(lambda x: np.hstack([x[0], x[1, 0] * x[2, 1], 2.0, x[2]]))
    check_fn(lambda x: np.vstack([x, x[0] * 2.0, np.ones(4)]))
    check_fn(lambda x: np.vstack([x[0, 0], x[1, 1], 1.0]))


def test_atleast_several_arguments():
    def fn(x):
        a, b, c = np.atleast_1d(x[0, 0], x[1], 3.0)
        d, e = np.atleast_2d(x[2], x)
        return np.concatenate([a, b, c, d.ravel(), e.ravel()])
    check_fn(fn)
    got = {}

    def same(x):
        got["same"] = np.atleast_1d(x) is x and np.atleast_2d(x) is x
    autodiff(same, dup(X))
    assert got["same"]


def test_where():
    cond = X > 0
    check_fn(lambda x: np.where(cond, x * x, 3.0))
    check_fn(lambda x: np.where(x > 0.2, x[0], x[:, 1:2]))             # broadcast x and y
    check_fn(lambda x: np.where([True, False, False, True], x, x[2, 2]))
    check_fn(lambda x: np.where(cond, 1.0, -x))


def test_where_exact_and_scalar_forms():
    x, dx = np.array([1.0, -2.0, 3.0]), np.zeros(3)
    out, dout = np.zeros(3), np.array([1.0, 10.0, 100.0])

    def f(x, out):
        out[...] = np.where(x > 0, x * 2.0, x * 5.0)
    autodiff(f, Duplicated(x, dx), Duplicated(out, dout))
    assert dx.tolist() == [2.0, 50.0, 200.0]

    def g(x):
        a = np.where(x[0] > 0, x[0], x[1])      # scalars: the chosen value itself
        b = np.where(False, 1.0, x[2])
        return a * b
    (gx,) = autodiff(g, Active(np.array([1.0, -2.0, 3.0])))
    assert gx.tolist() == [3.0, 0.0, 1.0]


def test_where_one_argument_gives_indices():
    got = {}

    def f(x):
        got["idx"] = np.where(x > 0)
        return x[0] * 1.0
    autodiff(f, Active(np.array([1.0, -1.0, 2.0])))
    assert [i.tolist() for i in got["idx"]] == [[0, 2]]

    def bad(x):
        np.where(x > 0, x)
    with pytest.raises(ValueError, match="both or neither"):
        autodiff(bad, dup([1.0]))


def test_where_mask_is_copied():
    # the caller reuses its mask array after the call
    def f(x, out):
        m = np.array([True, False, True])
        r = np.where(m, x, 0.0)
        m[:] = False
        out[...] = r * r
    check_all(f, dup([1.0, 2.0, 3.0]), dup(np.zeros(3)))


def test_clip():
    check_fn(lambda x: np.clip(x, -0.5, 0.5))
    check_fn(lambda x: np.clip(x, x[0, 0], x[1:2] + 0.5))               # traced bounds
    check_fn(lambda x: x.clip(None, 0.2))
    check_fn(lambda x: np.clip(x, a_min=-0.3, a_max=None))
    check_fn(lambda x: np.clip(x, 0.5, -0.5))                             # lo > hi: hi


def test_clip_boundaries_pass_the_gradient_to_a():
    # torch.clamp convention: a == lo or a == hi counts as inside
    x, dx = np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), np.zeros(5)
    out, dout = np.zeros(5), np.ones(5)
    lo, hi = np.array([-1.0]), np.array([1.0])
    dlo, dhi = np.zeros(1), np.zeros(1)

    def f(x, lo, hi, out):
        out[...] = np.clip(x, lo, hi)
    autodiff(f, Duplicated(x, dx), Duplicated(lo, dlo), Duplicated(hi, dhi),
             Duplicated(out, dout))
    assert dx.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert dlo.tolist() == [1.0] and dhi.tolist() == [1.0]
    assert out.tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]


def test_clip_scalars_and_in_place():
    def g(x):
        a = np.clip(x[0], 0.0, 1.0)             # inside: x[0] itself
        b = np.clip(x[1], x[2], 10.0)           # below: the traced bound
        c = np.clip(x[2], -1.0, 0.0)            # above: a constant
        return a * b + c
    (gx,) = autodiff(g, Active(np.array([0.5, -3.0, 2.0])))
    assert gx.tolist() == [2.0, 0.0, 0.5]

    def h(x, y):
        np.clip(y, -0.5, x[0], out=y)
        y[0] = y[0] * y[1]
    check_all(h, dup([0.3]), dup(X))


def test_clip_rejects_unknown_arguments():
    def f(x):
        np.clip(x, 0.0, 1.0, where=True)
    with pytest.raises(TypeError, match="np.clip"):
        autodiff(f, dup([1.0]))


def test_many_dimensions():
    # more dimensions than the C core iterates over: records are split
    y = rng.standard_normal((3, 3, 3, 3, 3))

    def f(x, out):
        v = np.transpose(x, (4, 2, 0, 1, 3))[::2, :, ::2, :, ::2]
        out[...] = np.copy(v) * v
    check_all(f, dup(y), dup(np.zeros((2, 3, 2, 3, 2))))


# --------------------------------------------------------------------------
# forward mode: tangents against finite differences and against reverse mode
# (the dot-product test), lanes against one-lane calls

def check_forward(fn, x=X):
    """Forward mode of fn at x: finite differences, the dot-product test, lanes."""
    testing.check_forward(fn, x)


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_view_forward(name):
    check_forward(VIEWS[name])


@pytest.mark.parametrize("name", sorted(EDGES))
def test_zero_size_and_scalar_inputs_forward(name):
    check_forward(EDGES[name])


def _written_like(make):
    """A *_like buffer written with active values after its creation."""
    def fn(x):
        z = make(x)
        z[1] = x[0] * x[2]
        z[2, 1:] = x[1, :3] * 3.0
        return z * z
    return fn


def _empty_filled(x):
    z = np.empty_like(x)
    z[...] = 0.5        # an inactive write: z stays constant
    return z


MASK = X > 0
FORWARD = {
    "copy": lambda x: np.copy(x.T) * x.T,
    "copy_method": lambda x: x[::-1].copy() * 2.0,
    "copy_scalar": lambda x: np.copy(x[0, 0] * x[1, 1]),
    "copy_F": lambda x: np.copy(x.T, order="F").reshape(-1),
    "zeros_like": _written_like(np.zeros_like),
    "ones_like": _written_like(np.ones_like),
    "empty_like": _written_like(_empty_filled),
    "full_like": _written_like(lambda x: np.full_like(x, 2.5)),
    "full_like_traced": lambda x: np.full_like(x, x[0, 0] * x[0, 1]) + np.full_like(x, x[2]),
    "zeros_like_of_scalar": lambda x: np.zeros_like(x[0, 0] * 1.0) + x[1, 1],
    "concatenate_0": lambda x: np.concatenate([x, x[:2] * x[:2], np.ones((2, 4)), x]),
    "concatenate_1": lambda x: np.concatenate([x, x[:, :1], np.ones((3, 2))], axis=1),
    "concatenate_minus1": lambda x: np.concatenate([x.T, x[:1].T * 3.0], axis=-1),
    "concatenate_None": lambda x: np.concatenate([x, x[:2] * x[:2], np.ones(5)], axis=None),
    "hstack": lambda x: np.hstack([x, x[:, :1] * 2.0]),
    "hstack_scalars": lambda x: np.hstack([x[0], x[1, 0] * x[2, 1], 2.0, x[2]]),
    "vstack": lambda x: np.vstack([x, x[0] * 2.0, np.ones(4)]),
    "vstack_scalars": lambda x: np.vstack([x[0, 0], x[1, 1], 1.0]),
    "stack_0": lambda x: np.stack([x, x * x, np.ones((3, 4))]),
    "stack_1": lambda x: np.stack([x, x * x], axis=1),
    "stack_minus1": lambda x: np.stack([x.T, np.ones((4, 3))], axis=-1),
    "stack_scalars": lambda x: np.stack([x[0, 0] * x[0, 1], x[1, 2], 5.0, x[0, 0]]),
    "stack_0d_arrays": lambda x: np.stack([np.copy(x[0, 0]), x[1, 1] * 2.0]),
    "where": lambda x: np.where(MASK, x * x, 3.0),
    "where_broadcast": lambda x: np.where(x > 0.2, x[0], x[:, 1:2]),
    "where_list_mask": lambda x: np.where([True, False, False, True], x, x[2, 2]),
    "where_const_x": lambda x: np.where(MASK, 1.0, -x),
    "where_scalars": lambda x: np.where(x > 0, x[0, 0] * 2.0, x[1, 1]),
    "where_scalar_cond": lambda x: np.stack([np.where(x[0, 0] > 0, x[0, 1], x[1, 1])]),
    "clip": lambda x: np.clip(x, -0.5, 0.5),
    "clip_traced_bounds": lambda x: np.clip(x, x[0, 0], x[1:2] + 0.5),
    "clip_upper_only": lambda x: x.clip(None, 0.2),
    "clip_lower_only": lambda x: np.clip(x, a_min=-0.3, a_max=None),
    "clip_crossed": lambda x: np.clip(x, 0.5, -0.5),
    "clip_scalars": lambda x: np.stack([np.clip(x[0, 0], 0.0, 1.0),
                                        np.clip(x[0, 1], x[1, 1], 9.0)]),
    "atleast": lambda x: np.concatenate([np.atleast_1d(x[0, 0], x[1], 3.0)[0],
                                         np.atleast_2d(x[2], x)[1].ravel()]),
}


@pytest.mark.parametrize("name", sorted(FORWARD))
def test_copies_and_combinations_forward(name):
    check_forward(FORWARD[name])


def _out_programs():
    """Results written through out= into fresh, Const-like (zeros_like) memory
    and in place."""
    def concat(x):
        out = np.zeros_like(x[:, :3], shape=(3, 5))
        np.concatenate([x, x[:, :1] * 2.0], axis=1, out=out)
        return out

    def stack(x):
        out = np.zeros_like(x, shape=(2, 3, 4))
        np.stack([x, x * x], out=out)
        return out

    def clip_in_place(x):
        y = x * 1.0
        np.clip(y, -0.5, x[0, 0], out=y)
        return y * y
    return {"concat": concat, "stack": stack, "clip_in_place": clip_in_place}


@pytest.mark.parametrize("name", sorted(_out_programs()))
def test_out_forward(name):
    check_forward(_out_programs()[name])


def test_fortran_order_argument_forward():
    x = np.asfortranarray(X)
    for fn in (lambda x: x.reshape(-1) * x.T.reshape(-1), lambda x: np.ravel(x, "K"),
               lambda x: np.ravel(x, "F"), lambda x: np.reshape(x, (2, 6), order="F")):
        check_forward(fn, x)


def test_forward_views_share_tangent_memory():
    """A write through a view of the argument reaches the base's tangent, and
    forward read-only views stay read-only."""
    x, y = X.copy(), X + 1.0
    dx, dy = rng.standard_normal((3, 4)), np.zeros((3, 4))
    flags = {}

    def f(x, y):
        np.transpose(y)[0, 1:] = x[0, :2] * x[1, :2]
        y.reshape(2, 6)[1, ::5] = x[2, 1:3]
        flags["d"] = np.diagonal(x).p.flags.writeable
        flags["b"] = np.broadcast_to(x, (2, 3, 4)).p.flags.writeable
    autodiff(f, Duplicated(x, dx.copy()), Duplicated(y, dy), mode=Forward)
    want = np.zeros((3, 4))
    want[1:, 0] = dx[0, :2] * X[1, :2] + X[0, :2] * dx[1, :2]
    want[1, 2], want[2, 3] = dx[2, 1], dx[2, 2]
    np.testing.assert_allclose(dy, want, rtol=1e-15)
    assert flags == {"d": False, "b": False}
    with pytest.raises(ValueError, match="read-only"):
        autodiff(lambda y: np.diagonal(y).__setitem__(0, 1.0), Duplicated(X.copy(), dy),
                 mode=Forward)


def test_forward_rules_inside_fwddiff():
    """copy, the *_like functions, where and clip are elementwise: fwddiff runs
    them; concatenate is not."""
    def g(a, b):
        z = np.zeros_like(a)
        z[...] = np.copy(a) * b
        return np.where(a > b, z, np.clip(a, 0.6, 1.2) * np.ones_like(b))
    a = np.array([0.5, 0.9, 1.4, 0.7, 1.1])
    b = np.array([0.8, 0.5, 1.0, 0.9, 1.3])
    want = sad.gradient(lambda a, b: np.sum(g(a, b)), a, b)
    got = sad.gradient(lambda a, b: np.sum(sad.fwddiff(g)(a, b)), a, b)
    for w, v in zip(want, got):
        np.testing.assert_allclose(v, w, rtol=1e-14)
    bad = sad.fwddiff(lambda a, b: np.concatenate([a, b]))
    with pytest.raises(TypeError, match="not elementwise"):
        sad.gradient(lambda a, b: np.sum(bad(a, b)), a, b)


def test_reshape_forward_errors_and_shadow_layouts():
    """copy=False that numpy cannot honour is refused; a shadow laid out unlike
    its primal is fine in forward mode (its lanes are copied in the primal's
    layout), where reverse mode refuses it."""
    with pytest.raises(ValueError, match="copy"):
        autodiff(lambda x: np.reshape(x.T, (12,), copy=False), dup(X), mode=Forward)
    y, dy = X.copy(), np.asfortranarray(rng.standard_normal((3, 4)))
    want = dy.ravel().copy()
    want[0] = 2.0

    def f(x, y):
        y.reshape(12)[0] = x[0, 0] * 2.0
    autodiff(f, Duplicated(X.copy(), np.ones((3, 4))), Duplicated(y, dy), mode=Forward)
    assert same_bits(dy.ravel(), want)
