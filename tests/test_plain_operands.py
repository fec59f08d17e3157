"""Plain (untraced) arrays that a recorded operation reads and ``f`` changes
afterwards (issue 13, item 1).

A plain ndarray -- ``np.ones``/``np.empty`` scratch that ``f`` makes, a global
or closure, an index array, ``sad.primal(t)`` -- is read by the pullbacks at
sweep time, and a later write to it never reaches the tape.  The tape reads a
snapshot instead (shadowad/engines/reverse/snapshots.py), one per distinct content.

The oracle is the same program with the plain operand passed as a ``Const``
argument of the same layout (traced memory, which the snapshots never
touch) and not written afterwards: the gradients must agree bit for bit.
Every operation family that reads an operand's values, every way of writing
the memory afterwards (in place, through another view, through its base),
every kind of view (transposed, reversed, strided, broadcast, a subclass),
NaN and signed-zero contents, loops that reuse a buffer, and every mode
that keeps a tape (reverse, split, batch, jacobian, nested), plus the modes
that keep none (forward, fwddiff).  And the cost: a constant operand used in
every step of a loop is held once.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import shadowad as sad
from shadowad import Active, BatchDuplicated, Const, Duplicated, autodiff
from shadowad.testing import check_gradient, same_bits

N = 4
rng = np.random.default_rng(13)
X0 = rng.uniform(0.5, 1.5, N)
V0 = rng.uniform(0.5, 2.0, N)         # the plain vector's values when read
V1 = rng.uniform(-3.0, -1.0, N)       # what f writes there afterwards
M0 = rng.uniform(0.5, 1.5, (N, N)) + 3 * np.eye(N)
M1 = rng.uniform(-2.0, 2.0, (N, N))


class Sub(np.ndarray):
    """An ndarray subclass: the C fast paths leave it to the Python rules."""


# --------------------------------------------------------------------------
# operations that read a plain operand w (x traced)

VEC_OPS = {
    "x*w": lambda x, w: x * w,
    "w*x": lambda x, w: w * x,
    "x/w": lambda x, w: x / w,
    "w/x": lambda x, w: w / x,
    "sin(x)*w": lambda x, w: np.sin(x) * w,
    "maximum": lambda x, w: np.maximum(x, w),
    "x**w": lambda x, w: x ** w,
    "w**x": lambda x, w: w ** x,
    "arctan2": lambda x, w: np.arctan2(x, w),
    "hypot": lambda x, w: np.hypot(w, x),
    "scalar*w": lambda x, w: x[1] * w,
    "w/scalar": lambda x, w: w / x[2],
    "dot": lambda x, w: np.dot(w, x),
    "vdot": lambda x, w: np.vdot(x, w),
    "inner": lambda x, w: np.inner(w, x),
    "w@x": lambda x, w: w @ x,
    "outer": lambda x, w: np.outer(x, w),
    "outer(w,x)": lambda x, w: np.outer(w, x),
    "multiply.outer": lambda x, w: np.multiply.outer(x, w),
    "cross": lambda x, w: np.cross(x[:3], w[:3]),
    "clip": lambda x, w: np.clip(x, w, None),
    "x*=w": lambda x, w: _inplace(x, w),
    "out=": lambda x, w: np.multiply(np.sin(x), w, out=np.zeros_like(x)),
    "axpy": lambda x, w: sad.axpy(x[0], w, np.zeros_like(x)),
    "5-d": lambda x, w: (x.reshape(2, 1, 2, 1, 1) * w.reshape(1, 2, 1, 2, 1)
                         * x.reshape(1, 1, 1, 1, 4)),
}

MAT_OPS = {
    "W@x": lambda x, W: W @ x,
    "x@W": lambda x, W: x @ W,
    "W@sin(x)": lambda x, W: W @ np.sin(x),
    "dot(W,x)": lambda x, W: np.dot(W, x),
    "inner(W,x)": lambda x, W: np.inner(W, x),
    "outer-matrix": lambda x, W: np.outer(W, x),
    "W@X": lambda x, W: W @ np.outer(x, x),
    "solve": lambda x, W: np.linalg.solve(W, x),
    "x*W": lambda x, W: x * W,
    "W*x[1]": lambda x, W: W * x[1],
}


def _inplace(x, w):
    y = x * 1.0
    y *= w
    return y


def _loss(z):
    """A scalar of every entry of z, weighted so that no entry is lost."""
    z = z if np.ndim(z) else z * 1.0
    return np.sum(z * np.arange(1.0, np.size(z) + 1).reshape(np.shape(z)))


# --------------------------------------------------------------------------
# plain operands: a kind of view of some base memory, and ways to write it

def _vector(kind, values):
    """(plain vector with these values, its base array)."""
    if kind == "array":
        base = values.copy()
        return base, base
    if kind == "reversed":
        base = values[::-1].copy()
        return base[::-1], base
    if kind == "strided":
        base = np.zeros(2 * N)
        base[::2] = values
        return base[::2], base
    if kind == "broadcast":
        base = np.array([values[0]])
        return np.broadcast_to(base, (N,)), base
    if kind == "subclass":
        base = values.copy()
        return base.view(Sub), base
    raise ValueError(kind)


def _matrix(kind, values):
    if kind == "array":
        base = values.copy()
        return base, base
    if kind == "T":
        base = values.T.copy()
        return base.T, base
    if kind == "strided":
        base = np.zeros((N, 2 * N))
        base[:, 1::2] = values
        return base[:, 1::2], base
    if kind == "broadcast":
        base = values[:1].copy()
        return np.broadcast_to(base, (N, N)), base
    if kind == "subclass":
        base = values.copy()
        return base.view(Sub), base
    raise ValueError(kind)


def _write(how, w, base, new):
    """Change plain operand w (a view of base) to hold ``new``'s values."""
    if not w.flags.writeable:  # a broadcast view: through its base
        how = "base"
    if how == "setitem":
        w[...] = new
    elif how == "iadd":
        w += new - np.array(w)
    elif how == "copyto":
        np.copyto(w, new)
    elif how == "out":
        np.add(new, 0.0, out=w)
    elif how == "base":
        base[...] = 7.5
    elif how == "other view":
        base.reshape(-1)[::-1][...] = np.arange(base.size, dtype=float)
    else:
        raise ValueError(how)


WRITES = ["setitem", "iadd", "copyto", "out", "base", "other view"]
VIEWS = ["array", "reversed", "strided", "broadcast", "subclass"]
MAT_VIEWS = ["array", "T", "strided", "broadcast", "subclass"]


def _programs(op, make, kind, values, new, how):
    """(f with w plain and written after op reads it, oracle with w a Const
    argument of the same layout)."""
    def f(x):
        w, base = make(kind, values)
        z = op(x, w)
        _write(how, w, base, new)
        return _loss(z)

    def oracle(x, c):
        return _loss(op(x, c))
    return f, oracle


def _oracle_grad(oracle, make, kind, values, x0):
    w, _ = make(kind, values)
    return autodiff(oracle, Active(x0.copy()), Const(np.asarray(w)))[0]


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize("name", sorted(VEC_OPS))
def test_vector_operand_written_after_use(name, how):
    f, oracle = _programs(VEC_OPS[name], _vector, "array", V0, V1, how)
    got = autodiff(f, Active(X0.copy()))[0]
    assert same_bits(got, _oracle_grad(oracle, _vector, "array", V0, X0))


@pytest.mark.parametrize("kind", VIEWS)
@pytest.mark.parametrize("name", sorted(VEC_OPS))
def test_vector_views(name, kind):
    f, oracle = _programs(VEC_OPS[name], _vector, kind, V0, V1, "setitem")
    got = autodiff(f, Active(X0.copy()))[0]
    want = _oracle_grad(oracle, _vector, kind, V0, X0)
    if kind == "subclass":  # f takes the generic rule (BLAS), the oracle the C record
        assert np.allclose(got, want, rtol=1e-14, atol=0)
    else:
        assert same_bits(got, want)


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize("name", sorted(MAT_OPS))
def test_matrix_operand_written_after_use(name, how):
    f, oracle = _programs(MAT_OPS[name], _matrix, "array", M0, M1, how)
    got = autodiff(f, Active(X0.copy()))[0]
    assert same_bits(got, _oracle_grad(oracle, _matrix, "array", M0, X0))


@pytest.mark.parametrize("kind", MAT_VIEWS)
@pytest.mark.parametrize("name", sorted(MAT_OPS))
def test_matrix_views(name, kind):
    if name == "solve" and kind == "broadcast":
        pytest.skip("a broadcast matrix is singular")
    f, oracle = _programs(MAT_OPS[name], _matrix, kind, M0, M1, "setitem")
    got = autodiff(f, Active(X0.copy()))[0]
    want = _oracle_grad(oracle, _matrix, kind, M0, X0)
    if kind in ("strided", "subclass"):  # a C-ordered copy, or the generic rule
        assert np.allclose(got, want, rtol=1e-14, atol=0)
    else:
        assert same_bits(got, want)


@pytest.mark.parametrize("name", ["x*w", "W@x", "outer", "dot", "axpy", "clip"])
def test_against_finite_differences(name):
    op = VEC_OPS.get(name) or MAT_OPS[name]
    values, new = (M0, M1) if name in MAT_OPS else (V0, V1)

    def f(x):
        w = values.copy()
        z = op(x, w)
        w[...] = new
        return _loss(z)
    check_gradient(f, Active(X0.copy()))


def test_issue_reproducers():
    def f(x):
        w = np.ones(3)
        y = x * w
        w[...] = 2.0
        return np.sum(y)
    assert np.array_equal(autodiff(f, Active(np.array([1., 2., 3.])))[0], np.ones(3))

    def g(x):
        W = np.eye(3)
        y = W @ x
        W[...] = 0.0
        return np.sum(y)
    assert np.array_equal(autodiff(g, Active(np.array([1., 2., 3.])))[0], np.ones(3))


# --------------------------------------------------------------------------
# contents: bytes are compared, not values

def test_signed_zero_is_a_change():
    """w = +0.0 is held, then f writes -0.0: equal as values, not as bytes;
    x / w must see -0.0 (a gradient of -inf, not +inf)."""
    def f(x):
        w = np.zeros(N)
        x * w  # holds w = +0.0
        w[...] = -0.0
        z = x / w
        w[...] = 5.0
        return np.sum(z)
    with np.errstate(divide="ignore"):
        g = autodiff(f, Active(X0.copy()))[0]
    assert np.all(g == -np.inf)


def test_nan_contents_are_held_once():
    """A NaN equals itself byte for byte: a constant operand holding NaNs is
    one snapshot however often it is read, and its NaN bits reach the
    gradient as the oracle's do."""
    w0 = V0.copy()
    w0[1] = np.nan
    w0[2] = -np.nan

    def f(x, T):
        w = w0.copy()
        acc = 0.0
        for _ in range(T):
            acc = acc + np.sum(x * w)
        w[...] = 1.0
        return acc
    sizes = []
    for T in (2, 8):
        _, tape = sad.autodiff_split(f, Active(X0.copy()), T)
        sizes.append(tape._tape.snaps.taken)
        g = tape.reverse()[0]
    assert sizes == [1, 1]
    want = autodiff(lambda x, c, T: sum(np.sum(x * c) for _ in range(T)),
                    Active(X0.copy()), Const(w0.copy()), 8)[0]
    assert same_bits(g, want)


def test_nan_payload_change_is_seen():
    a = np.array([np.nan])
    b = a.view(np.uint64).copy()
    b[0] ^= 1  # another NaN: equal as "nan", different bytes
    b = b.view(np.float64)

    def f(x):
        w = np.full(N, a[0])
        x * w
        w[...] = b[0]
        z = x * w
        w[...] = 0.0
        return np.sum(z)
    g = autodiff(f, Active(X0.copy()))[0]
    want = autodiff(lambda x, c: np.sum(x * c), Active(X0.copy()), Const(np.full(N, b[0])))[0]
    assert same_bits(g, want)


# --------------------------------------------------------------------------
# loops: a scratch buffer given new values each step, a constant read each step

def stepper(x, T, W, b, buf_of):
    """x <- tanh(W @ (s_k * x) + b), with s_k written into a reused buffer."""
    buf = buf_of()
    for k in range(T):
        buf[...] = np.cos(k + np.arange(x.shape[0]))
        x = np.tanh(W @ (buf * x) + b)
    return np.sum(x * x)


def stepper_fresh(x, T, W, b):
    """The same with a fresh array each step, nothing written after use."""
    for k in range(T):
        x = np.tanh(W @ (np.cos(k + np.arange(x.shape[0])) * x) + b)
    return np.sum(x * x)


@pytest.mark.parametrize("scratch", ["np.empty", "global", "T view"])
def test_time_stepper_reusing_a_buffer(scratch):
    n, T = 6, 12
    W = rng.standard_normal((n, n)) / n
    b = rng.standard_normal(n)
    glob = np.empty(n)
    bufs = {"np.empty": lambda: np.empty(n), "global": lambda: glob,
            "T view": lambda: np.empty((1, n)).T[:, 0]}

    def f(x):
        return stepper(x, T, W, b, bufs[scratch])
    x0 = rng.standard_normal(n)
    got = autodiff(f, Active(x0.copy()))[0]
    want = autodiff(lambda x, W, b: stepper_fresh(x, T, W, b),
                    Active(x0.copy()), Const(W.copy()), Const(b.copy()))[0]
    assert np.allclose(got, want, rtol=1e-13, atol=0)
    check_gradient(f, Active(x0.copy()))


def test_scratch_reused_by_the_scalar_fast_paths():
    """A traced scalar times a plain buffer that the loop rewrites."""
    def f(x):
        buf = np.empty(N)
        acc = 0.0
        for k in range(5):
            buf[...] = k + 1.0
            acc = acc + np.sum(x[k % N] * buf)
        return acc
    g = autodiff(f, Active(X0.copy()))[0]
    want = np.zeros(N)
    for k in range(5):
        want[k % N] += N * (k + 1.0)
    assert np.array_equal(g, want)


@pytest.mark.parametrize("how", ["W", "W.T", "W[::-1]"])
def test_constant_operand_in_a_loop_is_held_once(how):
    """W @ x in every step: one snapshot of W, whatever view the step takes
    (W.T is a new view object each step), so the tape does not grow by W's
    size per step; tape.nbytes counts the snapshot."""
    n = 64
    W = rng.standard_normal((n, n)) / n

    def f(x, T):
        for _ in range(T):
            V = {"W": W, "W.T": W.T, "W[::-1]": W[::-1]}[how]
            x = np.tanh(V @ x)
        return np.sum(x)
    sizes, taken = [], []
    for T in (5, 10, 20):
        _, tape = sad.autodiff_split(f, Active(np.ones(n)), T)
        sizes.append(tape.nbytes)
        taken.append(tape._tape.snaps.taken)
        assert tape._tape.snaps.nbytes == W.nbytes
        tape.reverse()
    assert taken == [1, 1, 1]
    assert sizes[0] > W.nbytes  # the snapshot is counted
    per_step = (sizes[2] - sizes[1]) / 10
    assert per_step < W.nbytes / 4, per_step


def test_w_and_its_transpose_share_one_snapshot():
    W = M0.copy()

    def f(x):
        return np.sum(W @ x) + np.sum(W.T @ x) + np.sum(W[::-1, ::-1] @ x)
    _, tape = sad.autodiff_split(f, Active(X0.copy()))
    assert tape._tape.snaps.taken == 1
    tape.reverse()


def test_operands_that_are_not_read_are_not_copied():
    """x + w and x - w: the pullback never reads w, so no snapshot (and the
    write afterwards cannot matter)."""
    def f(x):
        w = V0.copy()
        z = (x + w) - w + np.sin(x)
        w[...] = 0.0
        return np.sum(z)
    _, tape = sad.autodiff_split(f, Active(X0.copy()))
    assert tape._tape.snaps.taken == 0
    assert np.allclose(tape.reverse()[0], 1.0 + np.cos(X0))


def test_changed_contents_take_a_new_snapshot_each_time():
    def f(x):
        w = np.empty(N)
        acc = 0.0
        for k in range(6):
            w[...] = k % 2 + 1.0  # alternating contents: a copy per change
            acc = acc + np.sum(x * w)
        return acc
    _, tape = sad.autodiff_split(f, Active(X0.copy()))
    assert tape._tape.snaps.taken == 6
    assert np.array_equal(tape.reverse()[0], np.full(N, 9.0))


def test_layout_set_in_place_is_a_new_layout():
    """numpy lets shape and strides be set on an array object: the same
    object with another layout is not the view held before."""
    def f(x):
        w = V0.copy()
        z1 = x * w
        w.shape = (2, 2)
        z2 = x.reshape(2, 2) * w[::-1]
        w[...] = 0.0
        return np.sum(z1) + _loss(z2)
    got = autodiff(f, Active(X0.copy()))[0]
    want = autodiff(lambda x, c: np.sum(x * c) + _loss(x.reshape(2, 2) * c.reshape(2, 2)[::-1]),
                    Active(X0.copy()), Const(V0.copy()))[0]
    assert same_bits(got, want)


def test_a_snapshot_is_read_only_and_not_the_users_memory():
    from shadowad.engines.reverse.snapshots import Snapshots
    s = Snapshots()
    w = V0.copy()
    h = s.hold(w)
    assert same_bits(h, w) and not h.flags.writeable
    assert not np.shares_memory(h, w)
    assert s.hold(w) is h and s.hold(w.copy()) is not h
    w[0] = 9.0
    h2 = s.hold(w)
    assert h2[0] == 9.0 and h[0] == V0[0] and s.taken == 3


# --------------------------------------------------------------------------
# index arrays, masks and the other arrays records index with

def test_index_array_changed_after_a_gather():
    def f(x):
        idx = np.array([0, 0, 3])
        y = x[idx]
        idx[...] = 1
        return np.sum(y * np.array([1.0, 2.0, 3.0]))
    assert np.array_equal(autodiff(f, Active(X0.copy()))[0], [3.0, 0.0, 0.0, 3.0])


def test_index_list_changed_after_a_gather():
    def f(x):
        idx = [2, 1]
        y = x[idx]
        idx[0] = 0
        return np.sum(y * np.array([1.0, 5.0]))
    assert np.array_equal(autodiff(f, Active(X0.copy()))[0], [0.0, 5.0, 1.0, 0.0])


def test_mask_changed_after_a_gather():
    def f(x):
        m = np.array([True, False, True, False])
        y = x[m]
        m[...] = ~m
        return np.sum(y)
    assert np.array_equal(autodiff(f, Active(X0.copy()))[0], [1.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("restore", [False, True])
def test_index_array_changed_after_an_advanced_write(restore):
    """y[idx] = v: the sweep's swaps index with idx too; a changed idx would
    restore the wrong entries."""
    def f(x, y):
        idx = np.array([1, 3])
        y[idx] = x[:2] * 2.0
        idx[...] = 0
        return np.sum(y * y)
    y0 = np.arange(1.0, N + 1)
    y = y0.copy()
    dy = np.zeros(N)
    g = autodiff(f, Active(X0.copy()), Duplicated(y, dy), restore=restore)[0]
    want_y = y0.copy()
    want_y[[1, 3]] = X0[:2] * 2.0
    assert np.array_equal(y, y0 if restore else want_y)
    assert np.allclose(g[:2], 8.0 * X0[:2]) and np.all(g[2:] == 0.0)
    assert np.array_equal(dy, [2.0, 0.0, 6.0, 0.0])


def test_where_mask_changed_after_use():
    def f(x):
        m = np.array([True, False, True, False])
        z = np.where(m, x, 0.0)
        m[...] = True
        return np.sum(z)
    assert np.array_equal(autodiff(f, Active(X0.copy()))[0], [1.0, 0.0, 1.0, 0.0])


def test_zero_dimensional_plain_array():
    def f(x):
        c = np.array(2.0)
        z = x * c
        c[...] = 5.0
        return np.sum(z)
    assert np.array_equal(autodiff(f, Active(X0.copy()))[0], np.full(N, 2.0))


@pytest.mark.parametrize("mode", [sad.Reverse, sad.Forward])
@pytest.mark.parametrize("whose", ["const", "duplicated", "temporary"])
@pytest.mark.parametrize("write", ["setitem", "iadd", "out", "copyto"])
def test_primal_of_a_traced_value_is_read_only(mode, whose, write):
    """sad.primal(t) is a view of traced memory: a write through it would
    bypass the tape (no undo, a sweep reading values f never had), so the
    view is read-only and the write raises; the primals are put back."""
    def f(x, c, d):
        t = {"const": c, "duplicated": d, "temporary": x * 2.0}[whose]
        p = sad.primal(t)
        _ = x * p
        if write == "setitem":
            p[0] = 100.0
        elif write == "iadd":
            p += 1.0
        elif write == "out":
            np.add(p, 1.0, out=p)
        else:
            np.copyto(p, 3.0)
        return np.sum(x)
    c, d = V0.copy(), V0.copy()
    xa = Active(X0.copy()) if mode is sad.Reverse else Duplicated(X0.copy(), np.ones(N))
    with pytest.raises(ValueError, match="read-only"):
        autodiff(f, xa, Const(c), Duplicated(d, np.zeros(N)), mode=mode)
    assert same_bits(c, V0) and same_bits(d, V0)


def test_primal_view_read_after_traced_writes():
    """A record reading sad.primal(c) reads c's values of that moment, even
    when f writes c (through the traced value) afterwards."""
    def f(x, c):
        z = x * sad.primal(c)
        c[...] = 0.0
        return np.sum(z)
    c = V0.copy()
    g = autodiff(f, Active(X0.copy()), Const(c))[0]
    assert np.array_equal(g, V0)


# --------------------------------------------------------------------------
# modes

def _w_after_use(x):
    w = V0.copy()
    W = M0.copy()
    z = np.sin(x) * w + W @ x
    w[...] = V1
    W[...] = M1
    return z


def test_reverse_with_primal_and_restore():
    x, dx = X0.copy(), np.zeros(N)
    _, r = autodiff(lambda x: _loss(_w_after_use(x)), Duplicated(x, dx),
                    mode=sad.ReverseWithPrimal, restore=True)
    assert r == pytest.approx(float(_loss(np.sin(X0) * V0 + M0 @ X0)))
    J = np.diag(np.cos(X0) * V0) + M0
    assert np.allclose(dx, J.T @ np.arange(1.0, N + 1), rtol=1e-14, atol=0)
    assert same_bits(x, X0)


def test_split_tape_written_between_recording_and_sweep():
    """autodiff_split, then user code changes the global the tape read."""
    W = M0.copy()
    w = V0.copy()

    def f(x):
        return _loss(W @ x + w * np.sin(x))
    _, tape = sad.autodiff_split(f, Active(X0.copy()))
    W[...] = M1
    w[...] = V1
    g = tape.reverse()[0]
    want = autodiff(lambda x, W, w: _loss(W @ x + w * np.sin(x)), Active(X0.copy()),
                    Const(M0.copy()), Const(V0.copy()))[0]
    assert same_bits(g, want)


@pytest.mark.parametrize("mode", [sad.Reverse, sad.Forward, None])
def test_jacobian(mode):
    J = sad.jacobian(_w_after_use, X0.copy(), mode=mode)
    want = np.diag(np.cos(X0) * V0) + M0
    assert np.allclose(J, want, rtol=1e-14, atol=1e-14)


def test_jacobian_of_a_wide_function_sweeps_one_tape_per_row():
    def f(x):
        W = M0[:2].copy()
        z = W @ (x * x)
        W[...] = 0.0
        return z
    J = sad.jacobian(f, X0.copy(), mode=sad.Reverse)
    assert np.allclose(J, M0[:2] * (2 * X0), rtol=1e-14, atol=0)


def test_batch_reverse_sweeps_each_lane_over_the_snapshots():
    seeds = (np.ones(N), np.arange(1.0, N + 1))
    x = X0.copy()
    dxs = tuple(np.zeros(N) for _ in seeds)

    def f(x, y):
        y[...] = _w_after_use(x)
    y = np.zeros(N)
    autodiff(f, BatchDuplicated(x, dxs), BatchDuplicated(y, tuple(s.copy() for s in seeds)))
    J = np.diag(np.cos(X0) * V0) + M0
    for s, dx in zip(seeds, dxs):
        assert np.allclose(dx, J.T @ s, rtol=1e-14, atol=1e-14)


def test_forward_mode_is_unaffected():
    """Forward mode keeps no tape: tangents are computed when w is read."""
    t = autodiff(lambda x: _loss(_w_after_use(x)), Duplicated(X0.copy(), V0.copy()),
                 mode=sad.Forward)
    J = np.diag(np.cos(X0) * V0) + M0
    assert t == pytest.approx(float(np.arange(1.0, N + 1) @ J @ V0), rel=1e-13)


def test_fwddiff_partials_do_not_read_w_later():
    @sad.fwddiff
    def g(a, b):
        return a * b + np.sin(a)

    def f(x):
        w = V0.copy()
        z = g(x, w)
        w[...] = V1
        return np.sum(z)
    assert np.allclose(autodiff(f, Active(X0.copy()))[0], V0 + np.cos(X0), rtol=1e-14)


def _inner_plain(y):
    w = V0.copy()
    W = M0.copy()
    r = np.sum(y * y * w) + np.sum(W @ (y * y))
    w[...] = V1
    W[...] = M1
    return r


def _inner_grad(x):  # d/dy of _inner_plain: 2 y w + 2 y (W^T 1)
    return 2 * x * V0 + 2 * x * M0.sum(axis=0)


def test_nested_reverse_over_reverse():
    def f(x):
        return np.sum(sad.gradient(_inner_plain, x)[0] * np.arange(1.0, N + 1))
    g = autodiff(f, Active(X0.copy()))[0]
    assert np.allclose(g, 2 * (V0 + M0.sum(axis=0)) * np.arange(1.0, N + 1), rtol=1e-13)


def test_nested_forward_over_reverse():
    def f(x):
        return np.sum(sad.gradient(_inner_plain, x)[0])
    t = autodiff(f, Duplicated(X0.copy(), np.ones(N)), mode=sad.Forward)
    assert t == pytest.approx(float(np.sum(2 * (V0 + M0.sum(axis=0)))), rel=1e-13)


def test_nested_inner_gradient_alone():
    assert np.allclose(sad.gradient(_inner_plain, X0.copy())[0], _inner_grad(X0), rtol=1e-14)


# --------------------------------------------------------------------------
# random programs: a plain buffer rewritten between the operations that read it

STEP_OPS = [
    lambda x, w: x * w,
    lambda x, w: np.sin(x) * w + x,
    lambda x, w: x / (1.0 + w * w),
    lambda x, w: np.tanh(w[:, None] * np.outer(x, w)).sum(axis=1),
    lambda x, w: np.maximum(x, w),
    lambda x, w: x[2] * w + x,
]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(STEP_OPS) - 1),
                          st.sampled_from(WRITES + ["none"]),
                          st.lists(st.floats(-2, 2), min_size=N, max_size=N)),
                min_size=1, max_size=6),
       st.sampled_from(["array", "reversed", "strided"]))
def test_random_programs_against_fresh_arrays(steps, kind):
    """Each step writes the buffer (some way), then an operation reads it; the
    oracle gives each step a fresh Const array with the values read."""
    def f(x):
        w, base = _vector(kind, np.zeros(N))
        for op, how, vals in steps:
            if how != "none":
                _write(how, w, base, np.array(vals))
            x = STEP_OPS[op](x, w)
        return _loss(x)

    read = []  # what each step reads: the plain program run without tracing
    w, base = _vector(kind, np.zeros(N))
    for op, how, vals in steps:
        if how != "none":
            _write(how, w, base, np.array(vals))
        read.append(np.array(w))

    def oracle(x, *ws):
        for (op, _, _), c in zip(steps, ws):
            x = STEP_OPS[op](x, c)
        return _loss(x)
    got = autodiff(f, Active(X0.copy()))[0]
    want = autodiff(oracle, Active(X0.copy()), *[Const(r) for r in read])[0]
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_split_tape_keeps_snapshots_not_the_users_arrays():
    """Once f has returned, the tape holds the snapshots its records read and
    no longer the user's plain arrays (a split tape lives until reverse())."""
    import gc
    import weakref
    refs = []

    def f(x):
        s = 0.0
        for k in range(3):
            w = np.full(x.shape, k + 1.0)
            refs.append(weakref.ref(w))
            s = s + np.sum(x * w)
        return s
    enabled = gc.isenabled()
    gc.disable()
    try:
        _, tape = sad.autodiff_split(f, Active(np.ones(1000)))
        assert all(r() is None for r in refs)
        np.testing.assert_array_equal(tape.reverse()[0], np.full(1000, 6.0))
    finally:
        if enabled:
            gc.enable()


# Every family reads a list operand as a new array, once: changing the list
# afterwards changes nothing (snapshots.held: a fresh conversion is not copied
# again); a tuple and a numpy scalar likewise.
LIST_OPS = {
    "x*w": lambda x, w: x * w,
    "x/w": lambda x, w: x / w,
    "w@x": lambda x, w: np.dot(w, x),
    "outer": lambda x, w: np.outer(x, w),
    "clip": lambda x, w: np.clip(x, w, 10.0),
    "maximum": lambda x, w: np.maximum(x, w),
}


@pytest.mark.parametrize("container", [list, tuple])
@pytest.mark.parametrize("name", sorted(LIST_OPS))
def test_list_operand_changed_after_use(name, container):
    op = LIST_OPS[name]

    def f(x):
        w = [float(v) for v in V0]
        z = op(x, container(w) if container is tuple else w)
        w[:] = [float(v) for v in V1]
        return _loss(z)

    def oracle(x, c):
        return _loss(op(x, c))
    got = autodiff(f, Active(X0.copy()))[0]
    want = autodiff(oracle, Active(X0.copy()), Const(V0.copy()))[0]
    assert same_bits(got, want)


@pytest.mark.parametrize("name", ["x*w", "x/w", "maximum", "clip"])
def test_numpy_scalar_operand(name):
    op = LIST_OPS[name]
    w = np.float64(V0[1])
    got = autodiff(lambda x: _loss(op(x, w)), Active(X0.copy()))[0]
    want = autodiff(lambda x, c: _loss(op(x, c)), Active(X0.copy()), Const(np.full(N, w)))[0]
    assert same_bits(got, want)


# --------------------------------------------------------------------------
# an ndarray subclass passed as Const or Duplicated: numpy hands the rules
# subclass results (x @ W is a Sub), which the records must take as arrays

SUB_OPS = {
    "x@W": lambda x, W: x @ W,
    "W@x": lambda x, W: W @ x,
    "dot": lambda x, W: np.dot(W, x),
    "inner": lambda x, W: np.inner(W, x),
    "solve": lambda x, W: np.linalg.solve(W, x),
    "inv": lambda x, W: np.linalg.inv(W * x[0]),
    "det": lambda x, W: np.linalg.det(W * x[0]),
    "outer": lambda x, W: np.outer(W[0], x),
    "cross": lambda x, W: np.cross(W, x),
    "max": lambda x, W: np.max(W * x, axis=0),
    "take": lambda x, W: x[np.array([0, 2])] * W[0, :2],
}


@pytest.mark.parametrize("activity", ["Const", "Duplicated"])
@pytest.mark.parametrize("name", sorted(SUB_OPS))
def test_subclass_operand_in_every_mode(name, activity):
    op = SUB_OPS[name]
    W0 = M0[:3, :3] + 3.0 * np.eye(3)
    x0 = X0[:3]

    def loss(x, W):
        return _loss(op(x, W))

    def wrap(W):
        W = W.copy().view(Sub)
        return Const(W) if activity == "Const" else Duplicated(W, np.zeros(W.shape).view(Sub))

    want = autodiff(loss, Active(x0.copy()), Const(W0.copy()))[0]
    got = {"reverse": autodiff(loss, Active(x0.copy()), wrap(W0))[0],
           "forward": np.array([autodiff(loss, Duplicated(x0.copy(), e), wrap(W0),
                                         mode=sad.Forward) for e in np.eye(3)]),
           "split": sad.autodiff_split(loss, Active(x0.copy()), wrap(W0))[1].reverse(1.0)[0]}
    for engine, g in got.items():
        assert np.allclose(g, want, rtol=1e-13, atol=1e-13), (engine, g, want)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.parametrize("make", [lambda: np.asmatrix(np.eye(2)),
                                  lambda: np.ma.masked_array(np.eye(2), mask=np.eye(2))])
@pytest.mark.parametrize("annotate", [Const, Active, lambda v: Duplicated(v, np.zeros((2, 2))),
                                      lambda v: Duplicated(np.zeros((2, 2)), v)])
def test_subclasses_whose_arithmetic_differs_are_refused(make, annotate):
    with pytest.raises(TypeError, match=r"np\.asarray\(m\)|m\.filled"):
        annotate(make())


def test_a_subclass_set_after_the_annotation_was_built_is_refused():
    a = Duplicated(np.ones(2), np.zeros(2))
    a.val = np.ones(2).view(Sub)
    with pytest.raises(TypeError, match="build a new Duplicated"):
        autodiff(lambda x: np.sum(x * x), a)


def test_a_subclass_annotation_writes_into_the_callers_memory():
    x, dx = np.ones(3).view(Sub), np.zeros(3).view(Sub)

    def f(y):
        y *= 2.0
        return np.sum(y * y)
    autodiff(f, Duplicated(x, dx))
    assert same_bits(np.asarray(x), np.full(3, 2.0)) and same_bits(np.asarray(dx), np.full(3, 8.0))
