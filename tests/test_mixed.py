"""sad.fwddiff (mixed mode after ForwardDiffPullbacks): one record per call,
whose partials come from forward mode; same gradient as the plain version."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, Forward
from shadowad.testing import finite_differences, same_bits

rng = np.random.default_rng(5)


def records(f, *args):
    """(number of records, number of Python records, gradients) of one call."""
    _, tape = sad.autodiff_split(f, *args)
    n, npy = len(tape), len(tape._tape.py)
    return n, npy, tape.reverse()


def assert_grads_close(got, want, rtol=1e-13, atol=1e-14):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


# --- (a) the seed log-likelihood ------------------------------------------------------

def loglike(X, data):
    return np.sum(-np.log(X) - data / X)


logpdf = sad.fwddiff(lambda x, d: -np.log(x) - d / x)


def loglike_fwd(X, data):
    return np.sum(logpdf(X, data))


def test_seed_loglikelihood():
    X = 3 * rng.random(1000) + 0.1
    data = rng.random(1000) * 4
    n_plain, py_plain, (g_plain, _) = records(loglike, Active(X), Const(data))
    n_fwd, py_fwd, (g_fwd, _) = records(loglike_fwd, Active(X), Const(data))
    print(f"records: plain {n_plain}, fwddiff {n_fwd}")
    assert (n_plain, n_fwd) == (5, 2)          # log, neg, div, sub, sum  vs  fwddiff, sum
    assert py_fwd == 1                          # the elementwise call is one Python record
    np.testing.assert_allclose(g_fwd, g_plain, rtol=1e-13)
    np.testing.assert_allclose(g_fwd, -1 / X + data / X ** 2, rtol=1e-13)
    # the same through sad.gradient, and the values agree
    g = sad.gradient(loglike_fwd, X, Const(data))
    np.testing.assert_allclose(g[0], g_plain, rtol=1e-13)
    assert g[1] is None
    (_, v_plain) = sad.autodiff(loglike, Active(X), Const(data), mode=sad.ReverseWithPrimal)
    (_, v_fwd) = sad.autodiff(loglike_fwd, Active(X), Const(data), mode=sad.ReverseWithPrimal)
    np.testing.assert_allclose(v_fwd, v_plain, rtol=1e-13)
    # fewer saved bytes too
    _, t1 = sad.autodiff_split(loglike, Active(X), Const(data))
    _, t2 = sad.autodiff_split(loglike_fwd, Active(X), Const(data))
    assert t2.nbytes < t1.nbytes
    t1.reverse(), t2.reverse()


def test_loglikelihood_against_finite_differences():
    X = 3 * rng.random(20) + 0.1
    data = rng.random(20)
    dX = np.zeros(20)
    sad.autodiff(loglike_fwd, Duplicated(X, dX), Const(data))
    fd = finite_differences(loglike, Duplicated(X, np.zeros(20)), Const(data))
    np.testing.assert_allclose(dX, fd[0], rtol=1e-6, atol=1e-8)


# --- (b) scalars, loops, broadcasting ----------------------------------------------------

def g1(a):
    return a * a * np.sin(a) + 1.0 / a


def g2(a, b):
    return a * a * np.sin(b) + b / a


def g3(a, b, c):
    return a * b * np.exp(c) - c / a


h1, h2, h3 = sad.fwddiff(g1), sad.fwddiff(g2), sad.fwddiff(g3)


@pytest.mark.parametrize("g, h, args, c_record", [
    (g1, h1, (0.7,), True),
    (g2, h2, (0.7, 1.3), True),
    (g3, h3, (0.7, 1.3, -0.4), False),
], ids=["one", "two", "three"])
def test_scalar_one_record(g, h, args, c_record):
    n_plain, _, want = records(g, *map(Active, args))
    n, npy, got = records(h, *map(Active, args))
    assert n_plain == 5 and n == 1
    assert npy == (0 if c_record else 1)        # one or two scalars: a C record
    assert_grads_close(got, want)
    fd = finite_differences(g, *map(Active, args))
    assert_grads_close(got, fd, rtol=1e-6, atol=1e-8)


def loop(h, x, y):
    for i in range(1, len(x)):
        y[i] = h(x[i], y[i - 1])
    return y[-1] * y[-1]


@pytest.mark.parametrize("which", ["one", "two"])
def test_scalar_loop(which):
    n = 8
    x = np.linspace(0.5, 1.5, n)
    y0 = np.full(n, 0.3)
    if which == "one":
        g, h = (lambda a, b: g1(a) * b), (lambda a, b: h1(a) * b)     # one active in h
    else:
        g, h = g2, h2
    counts, grads = [], []
    for fn in (g, h):
        dx, dy = np.zeros(n), np.zeros(n)
        y = y0.copy()
        _, tape = sad.autodiff_split(lambda x, y: loop(fn, x, y), Duplicated(x, dx),
                                     Duplicated(y, dy))
        counts.append((len(tape), len(tape._tape.py)))
        tape.reverse()
        grads.append((dx, dy))
        np.testing.assert_array_equal(y[1:], _plain_loop(g, x, y0)[1:])
    # per iteration, g's operations (g1(a)*b: 5 + 1; g2: 5) become h's (h1(a)*b: 1 + 1; h2: 1)
    per_plain, per_fwd = {"one": (6, 2), "two": (5, 1)}[which]
    print(f"{which}: records plain {counts[0][0]}, fwddiff {counts[1][0]}")
    assert counts[0][0] - counts[1][0] == (n - 1) * (per_plain - per_fwd)
    assert counts[1][1] == 0                    # no Python records at all
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-15)
    fd = finite_differences(lambda x, y: loop(g, x, y), Duplicated(x, np.zeros(n)),
                            Duplicated(y0.copy(), np.zeros(n)))
    np.testing.assert_allclose(grads[1][0], fd[0], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grads[1][1], fd[1], rtol=1e-6, atol=1e-8)


def _plain_loop(g, x, y0):
    y = y0.copy()
    loop(g, x, y)
    return y


def test_mixed_active_and_const_inputs():
    c = np.array([2.0, -1.5])
    cases = [
        (lambda a, c: g2(a, c[0]), lambda a, c: h2(a, c[0])),          # Const element
        (lambda a, c: g2(a, 2), lambda a, c: h2(a, 2)),                # Python int
        (lambda a, c: g2(np.float64(1.5), a), lambda a, c: h2(np.float64(1.5), a)),
        (lambda a, c: g3(a, c[1], a), lambda a, c: h3(a, c[1], a)),    # same scalar twice
        (lambda a, c: g2(a, a), lambda a, c: h2(a, a)),
    ]
    for g, h in cases:
        n_plain, _, want = records(g, Active(0.7), Const(c))
        n, npy, got = records(h, Active(0.7), Const(c))
        assert n == 1 and npy == 0
        assert_grads_close(got, want)
        fd = finite_differences(g, Active(0.7), Const(c))
        assert_grads_close(got, fd, rtol=1e-6, atol=1e-8)
    # no active input at all: g runs on the primal values and nothing is recorded
    n, _, got = records(lambda a, c: a * h2(c[0], c[1]), Active(0.7), Const(c))
    assert n == 1
    np.testing.assert_allclose(got[0], g2(2.0, -1.5), rtol=1e-15)


def test_three_actives_mixed_with_const_array():
    x = rng.uniform(0.5, 1.5, 4)
    d = rng.standard_normal(4)

    def plain(x, a, d):
        return np.sum(g3(x, a, d) * d)

    def fwd(x, a, d):
        return np.sum(h3(x, a, d) * d)
    _, _, want = records(plain, Active(x), Active(0.3), Const(d))
    n, npy, got = records(fwd, Active(x), Active(0.3), Const(d))
    assert npy == 1
    assert_grads_close(got, want)
    # three active: x, a and the third argument x again
    _, _, want = records(lambda x, a: np.sum(g3(x, a, x)), Active(x), Active(0.3))
    _, _, got = records(lambda x, a: np.sum(h3(x, a, x)), Active(x), Active(0.3))
    assert_grads_close(got, want)


@pytest.mark.parametrize("shapes", [((5,), ()), ((), (5,)), ((3, 1), (4,)), ((4,), (3, 1)),
                                    ((2, 3), (2, 3)), ((3, 1), ())],
                         ids=lambda s: "x".join(map(str, s)))
def test_broadcasting(shapes):
    sa, sb = shapes
    A = rng.uniform(0.5, 1.5, sa)
    B = rng.uniform(0.5, 1.5, sb)
    A = float(A) if sa == () else A
    B = float(B) if sb == () else B
    w = rng.standard_normal(np.broadcast_shapes(sa, sb))

    def plain(A, B):
        return np.sum(g2(A, B) * w)

    def fwd(A, B):
        return np.sum(h2(A, B) * w)
    n_plain, _, want = records(plain, Active(A), Active(B))
    n, npy, got = records(fwd, Active(A), Active(B))
    assert n < n_plain
    for gv, v in zip(got, (A, B)):
        assert np.shape(gv) == np.shape(v)     # un-broadcast to each input's shape
    assert_grads_close(got, want)
    fd = finite_differences(plain, Active(A), Active(B))
    assert_grads_close(got, fd, rtol=1e-6, atol=1e-8)


def test_array_with_const_array_and_duplicated_output():
    x = rng.uniform(0.5, 1.5, (3, 4))
    d = rng.standard_normal(4)

    def f(x, d, y, h):
        y[...] = h(x, d)            # writes the record's result into a Duplicated output
        return np.sum(y * y)
    grads = []
    for g in (g2, h2):
        dx, dy = np.zeros((3, 4)), np.zeros((3, 4))
        sad.autodiff(f, Duplicated(x, dx), Const(d), Duplicated(np.zeros((3, 4)), dy), g)
        grads.append(dx)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-13)


def test_results_reused_and_mutated():
    """fwddiff results feed later records, are updated in place and partly
    overwritten; scalar records from array elements mix in."""
    x = rng.uniform(0.5, 1.5, 5)
    d = rng.uniform(0.5, 1.5, 5)

    def make(h):
        def f(x, d):
            y = h(x, d)
            y += x
            y[0] = x[1] * 3.0
            y *= h(y, x)
            z = h(x[2], y[3])
            return np.sum(y * y) + z * h(z, 0.5)
        return f
    for ann in (Active(d), Const(d)):
        want = sad.autodiff(make(g2), Active(x), ann)
        got = sad.autodiff(make(h2), Active(x), ann)
        assert_grads_close(got, want, rtol=1e-12, atol=0)


def test_where_and_clip_inside_g():
    """np.where and np.clip are elementwise: fwddiff may run them."""
    def g(a, b):
        return np.where(a > b, a * b, np.clip(a, 0.6, 1.2) * b)
    h = sad.fwddiff(g)
    a = np.array([0.5, 0.9, 1.4, 0.7, 1.1])
    b = np.array([0.8, 0.5, 1.0, 0.9, 1.3])
    want = sad.gradient(lambda a, b: np.sum(g(a, b)), a, b)
    n, _, got = records(lambda a, b: np.sum(h(a, b)), Active(a), Active(b))
    assert n == 2
    assert_grads_close(got, want)
    for s, t in ((0.9, 0.5), (0.5, 0.9), (1.5, 1.6)):
        n, npy, got = records(h, Active(s), Active(t))
        assert (n, npy) == (1, 0)
        assert_grads_close(got, sad.gradient(g, s, t))


def test_restore_and_failure_atomic():
    x = rng.uniform(0.5, 1.5, 5)
    y = rng.standard_normal(5)
    x0, y0 = x.copy(), y.copy()

    def f(x, y):
        y *= h2(x, y)
        return np.sum(y)
    sad.autodiff(f, Duplicated(x, np.zeros(5)), Duplicated(y, np.zeros(5)), restore=True)
    assert same_bits(x, x0) and same_bits(y, y0)

    bad = sad.fwddiff(lambda a, b: np.sum(a) * b)

    def g(x, y):
        y *= h2(x, y)
        return np.sum(bad(x, y))
    dy = np.zeros(5)
    with pytest.raises(TypeError, match="fwddiff"):
        sad.autodiff(g, Duplicated(x, np.zeros(5)), Duplicated(y, dy))
    assert same_bits(y, y0) and not dy.any()


def _writes_its_input(how):
    """g(a, b) = 2 a b, with a doubled in place the way ``how`` says."""
    def g(a, b):
        if how == "iadd":
            a += a
        elif how == "out":
            np.multiply(a, 2.0, out=a)
        elif how == "setitem":
            a[...] = a * 2.0
        return a * b
    return g


@pytest.mark.parametrize("how", ["iadd", "out", "setitem"])
@pytest.mark.parametrize("activity", ["Active", "Duplicated", "strided"])
def test_g_may_write_to_its_inputs(how, activity):
    """g's array inputs are lent to it, not copied, until g writes to one:
    then the memory is copied first, so g still writes to a copy of its own,
    whether the array is read-only (Active), memory f may write (Duplicated)
    or a non-contiguous view, and the same array passed twice is read
    unchanged through the other argument."""
    h = sad.fwddiff(_writes_its_input(how))
    x = rng.uniform(0.5, 1.5, 12)
    x0 = x.copy()
    lent = []

    def spy(a, b):
        lent.append(np.shares_memory(sad.primal(a), x))
        return h.__wrapped__(a, b)
    watched = sad.fwddiff(spy)

    def f(x):
        v = x[::2] if activity == "strided" else x
        return np.sum(watched(v, v) * v)
    ann = Active(x) if activity == "Active" else Duplicated(x, np.zeros(12))
    got = sad.autodiff(f, ann)
    v0 = x0[::2] if activity == "strided" else x0
    want = 6.0 * v0 ** 2  # d/dv sum(2 v v v)
    g = got[0] if activity == "Active" else ann.dval
    if activity == "strided":
        np.testing.assert_allclose(g[::2], want, rtol=1e-14)
        assert not g[1::2].any()
    else:
        np.testing.assert_allclose(g, want, rtol=1e-14)
    assert same_bits(x, x0)
    assert lent == [activity != "strided"]  # a non-contiguous input is copied at once


def test_g_that_returns_an_input_gives_a_copy():
    """A result f then updates in place is g's own memory, even when g returns
    its input unchanged: the caller's array is not written."""
    h = sad.fwddiff(lambda a, b: a)
    x = rng.uniform(0.5, 1.5, 6)
    x0 = x.copy()
    dx = np.zeros(6)

    def f(x, d):
        y = h(x, d)
        y += 1.0
        return np.sum(y * y)
    sad.autodiff(f, Duplicated(x, dx), Const(rng.random(6)))
    assert same_bits(x, x0)
    np.testing.assert_allclose(dx, 2.0 * (x0 + 1.0), rtol=1e-15)


def test_lent_inputs_with_several_lanes():
    """Each active input's lanes are a broadcast of ones and zeros, one lane
    per input, through in-place writes as well."""
    def g(a, b, c):
        b *= c
        return a * b + np.sin(c)
    h = sad.fwddiff(g)
    x, y, z = (rng.uniform(0.5, 1.5, 7) for _ in range(3))
    want = sad.gradient(lambda x, y, z: np.sum(x * (y * z) + np.sin(z)), x, y, z)
    n, npy, got = records(lambda x, y, z: np.sum(h(x, y, z)), Active(x), Active(y), Active(z))
    assert (n, npy) == (2, 1)
    assert_grads_close(got, want, rtol=1e-15, atol=0)


# --- (c) outside reverse mode --------------------------------------------------------------

def test_plain_call_calls_g():
    assert h2(0.7, 1.3) == g2(0.7, 1.3)
    a = np.array([0.5, 1.0, 2.0])
    np.testing.assert_array_equal(h2(a, 1.5), g2(a, 1.5))
    assert sad.fwddiff(lambda x: (x, x))(1.0) == (1.0, 1.0)   # no check at all outside
    assert h2.__name__ == g2.__name__                          # functools.wraps


def test_forward_mode_runs_g_with_duals():
    t_fwd = sad.autodiff(lambda a, b: h2(a, b), Duplicated(0.7, 1.0), Duplicated(1.3, 0.5),
                         mode=Forward)
    t_plain = sad.autodiff(lambda a, b: g2(a, b), Duplicated(0.7, 1.0), Duplicated(1.3, 0.5),
                           mode=Forward)
    assert t_fwd == t_plain
    x = np.array([0.5, 1.0, 2.0])
    dx = rng.standard_normal(3)
    t_fwd = sad.autodiff(lambda x: h2(x, x[::-1]), Duplicated(x, dx.copy()), mode=Forward)
    t_plain = sad.autodiff(lambda x: g2(x, x[::-1]), Duplicated(x, dx.copy()), mode=Forward)
    np.testing.assert_array_equal(t_fwd, t_plain)
    # batch lanes too
    lanes = tuple(np.eye(3))
    t_fwd = sad.autodiff(lambda x: h2(x, 2.0), sad.BatchDuplicated(x, lanes), mode=Forward)
    t_plain = sad.autodiff(lambda x: g2(x, 2.0), sad.BatchDuplicated(x, lanes), mode=Forward)
    for a, b in zip(t_fwd, t_plain):
        np.testing.assert_array_equal(a, b)


# --- (d) errors ----------------------------------------------------------------------------

NOT_ELEMENTWISE = {
    "np.sum": lambda a, b: np.sum(a) * b,
    "cumsum": lambda a, b: np.cumsum(a) * b,
    "index 1-D": lambda a, b: a[0] * b,
    "index 2-D": lambda a, b: a[0, 1] * b,
    "slice": lambda a, b: a[1:] * b[1:],
}


@pytest.mark.parametrize("name", list(NOT_ELEMENTWISE))
@pytest.mark.parametrize("shape", [(3,), (2, 3)], ids=["1d", "2d"])
def test_not_elementwise_is_type_error(name, shape):
    if name == "index 2-D" and shape == (3,) or name == "index 1-D" and shape == (2, 3):
        pytest.skip("index does not fit the shape")
    h = sad.fwddiff(NOT_ELEMENTWISE[name])
    a = rng.uniform(0.5, 1.5, shape)
    b = rng.uniform(0.5, 1.5, shape)
    a0 = a.copy()
    with pytest.raises(TypeError, match="fwddiff"):
        sad.autodiff(lambda a, b: np.sum(h(a, b)), Duplicated(a, np.zeros(shape)), Const(b))
    assert same_bits(a, a0)


def test_indexing_a_scalar_is_type_error():
    h = sad.fwddiff(lambda a, b: a[0] * b)
    with pytest.raises(TypeError):
        sad.autodiff(lambda a: h(a, 2.0), Active(0.5))


@pytest.mark.parametrize("args", ["scalar", "array"])
def test_returning_tuple_is_type_error(args):
    h = sad.fwddiff(lambda a, b: (a * b, a + b))
    if args == "scalar":
        call, arg = (lambda a: h(a, 2.0)), Active(0.5)
    else:
        call, arg = (lambda a: np.sum(h(a, 2.0)[0])), Active(np.ones(3))
    with pytest.raises(TypeError, match="fwddiff.*g must return one scalar or array"):
        sad.autodiff(call, arg)


@pytest.mark.parametrize("bad", ["s", [1.0, 2.0], None, np.array(["a"]), {"a": 1.0}],
                         ids=["str", "list", "None", "str-array", "dict"])
def test_non_numeric_argument_is_type_error(bad):
    with pytest.raises(TypeError, match="fwddiff.*argument 1"):
        sad.autodiff(lambda a: h2(a, bad), Active(0.5))


def test_a_fwddiff_record_keeps_no_copy_of_its_constants():
    """The record's reverse reads only its partials: a Const argument is not
    snapshotted (it would double the memory), and writing it after the call
    changes nothing."""
    n = 50_000
    lp = sad.fwddiff(lambda x, d: -np.log(x) - d / x)
    X, d = np.linspace(0.5, 1.5, n), np.linspace(0.0, 1.0, n)

    def f(X, d):
        r = np.sum(lp(X, d))
        d[...] = 7.0
        return r
    _, tape = sad.autodiff_split(f, sad.Active(X), sad.Const(d.copy()))
    stats = tape.stats()
    # the value, its adjoint and the partials: no copy of d (a fourth array)
    assert stats["kept_bytes"] <= 3 * 8 * n + 4096, stats
    np.testing.assert_array_equal(tape.reverse(1.0)[0], -1.0 / X + d / X ** 2)


def test_fwddiff_is_a_record_protocol_rule():
    from shadowad.engines.mixed import PartialsRule
    rule = PartialsRule(lambda x, y: x * y, "mul")
    aug = rule.augmented_primal(None, sad.Active(2.0), sad.Const(np.arange(3.0)))
    assert isinstance(aug, sad.AugmentedReturn)
    np.testing.assert_array_equal(aug.primal, [0.0, 2.0, 4.0])
    grads = rule.reverse(None, np.ones(3), aug.tape, sad.Active(2.0), sad.Const(np.arange(3.0)))
    assert grads[1] is None and np.sum(grads[0]) == 3.0


@pytest.mark.parametrize("case", ["array", "scalars", "scalar and array", "array result of scalars"])
def test_the_specialised_records_are_the_rule_bit_for_bit(case):
    """fwddiff's C scalar record and its direct array record are
    specialisations of PartialsRule's protocol record (generic_only)."""
    from shadowad.primitives.core import generic_only
    g = sad.fwddiff(lambda x, y: np.exp(x) * y - x / (y + 2.0))
    x = np.linspace(-1.0, 1.0, 5)
    y = np.linspace(0.5, 2.0, 5)
    programs = {
        "array": (lambda x, y: np.sum(g(x, y) * x), (x, y)),
        "scalars": (lambda x, y: sum(g(x[i], y[i]) * y[i] for i in range(5)), (x, y)),
        "scalar and array": (lambda x, y: np.sum(g(x[1], y) ** 2), (x, y)),
        "array result of scalars": (lambda x, y: np.sum(g(x[0], y[1]) * np.ones(3) * x[:3]),
                                    (x, y)),
    }
    f, args = programs[case]
    fast = sad.gradient(f, *[a.copy() for a in args])
    with generic_only():
        generic = sad.gradient(f, *[a.copy() for a in args])
    for a, b in zip(fast, generic):
        assert a.tobytes() == b.tobytes(), (case, a, b)
