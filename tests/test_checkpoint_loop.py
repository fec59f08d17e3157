"""sad.checkpoint_loop: binomial checkpointing of in-place loops (DESIGN.md
section 4).  Gradients equal the uncheckpointed loop's, the counts are
revolve's exactly, memory holds the snapshots and one step, primals and
shadows behave as for any record (restore, failure atomicity, split mode,
several sweeps), and a write outside the state is refused."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, BatchDuplicated, Const, Duplicated
from shadowad.support import revolve

rng = np.random.default_rng(7)


def fisher_kpp(i, u, d, w):
    """A nonlinear in-place step reading a traced scalar d and an array w."""
    u[1:-1] += d * (u[2:] - 2 * u[1:-1] + u[:-2]) + 0.01 * w[1:-1] * u[1:-1] * (1 - u[1:-1])


def plain(u, d, w, n):
    for i in range(n):
        fisher_kpp(i, u, d, w)
    return np.sum(u * u) + np.sum(w * u)


def checkpointed(u, d, w, n, s):
    sad.checkpoint_loop(lambda i, v: fisher_kpp(i, v, d, w), n, u, snapshots=s)
    return np.sum(u * u) + np.sum(w * u)


def args(m=64):
    return rng.random(m), 0.2, rng.random(m)


def run(f, u, d, w, *extra, **kw):
    du, dw = np.zeros_like(u), np.zeros_like(w)
    out = sad.autodiff(f, Duplicated(u, du), Active(d), Duplicated(w, dw), *extra,
                       mode=sad.ReverseWithPrimal, **kw)
    (grads, value) = out
    return grads[1], du, dw, value


@pytest.mark.parametrize("n, s", [(1, 1), (2, 1), (7, 1), (7, 2), (13, 3), (37, 4), (100, 10),
                                  (64, 6), (23, 30)])
def test_gradients_equal_the_plain_loop_and_counts_are_revolves(n, s):
    u, d, w = args()
    want = run(plain, u.copy(), d, w.copy(), Const(n))
    grads, tape = sad.autodiff_split(checkpointed, Duplicated(u.copy(), np.zeros_like(u)),
                                     Active(d), Duplicated(w.copy(), np.zeros_like(w)),
                                     Const(n), Const(s))
    got = tape.reverse()
    stats = tape.stats()
    advances, taped = revolve.counts(n, s)
    assert (stats["advances"], stats["taped_steps"]) == (advances, taped) == (
        advances, n)
    assert stats["peak_snapshots"] <= s
    np.testing.assert_allclose(got[1], want[0], rtol=1e-12)
    du = np.zeros_like(u)
    dw = np.zeros_like(w)
    g = run(checkpointed, u.copy(), d, w.copy(), Const(n), Const(s))
    for a, b in zip(g, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-300)


def test_the_contracts_example_counts():
    """T = 1000 steps, s = 10 snapshots: 3 636 untaped runs, 1 000 taped."""
    assert revolve.counts(1000, 10) == (3636, 1000)
    u = rng.random(8)
    grads, tape = sad.autodiff_split(
        lambda v: (sad.checkpoint_loop(lambda i, x: x.__imul__(0.999), 1000, v, snapshots=10),
                   np.sum(v))[1], Duplicated(u.copy(), np.zeros(8)))
    tape.reverse()
    st = tape.stats()
    assert (st["advances"], st["taped_steps"], st["peak_snapshots"]) == (3636, 1000, 10)


def test_values_and_final_state_are_the_plain_loops():
    u, d, w = args()
    u1, u2 = u.copy(), u.copy()
    v1 = run(plain, u1, d, w.copy(), Const(25))[3]
    v2 = run(checkpointed, u2, d, w.copy(), Const(25), Const(3))[3]
    assert v1 == v2 and np.array_equal(u1, u2)


def test_outside_autodiff_and_in_forward_mode_it_is_the_plain_loop():
    u, d, w = args()
    a, b = u.copy(), u.copy()
    assert plain(a, d, w, 9) == checkpointed(b, d, w, 9, 2)
    assert np.array_equal(a, b)
    t1 = sad.autodiff(plain, Duplicated(u.copy(), np.ones_like(u)), Duplicated(d, 1.0),
                      Const(w), Const(9), mode=sad.Forward)
    t2 = sad.autodiff(checkpointed, Duplicated(u.copy(), np.ones_like(u)), Duplicated(d, 1.0),
                      Const(w), Const(9), Const(2), mode=sad.Forward)
    assert t1 == t2


def test_restore_true_gives_the_primals_back_bit_for_bit():
    u, d, w = args()
    u0, w0 = u.copy(), w.copy()
    run(checkpointed, u, d, w, Const(17), Const(3), restore=True)
    assert np.array_equal(u, u0) and np.array_equal(w, w0)


class Boom(Exception):
    pass


@pytest.mark.parametrize("when", ["forward part", "last step", "sweep", "after the loop"])
def test_an_exception_anywhere_restores_primals_and_leaves_shadows(when):
    u, d, w = args()
    u0 = u.copy()
    runs = {}

    def body(i, v):
        runs[i] = runs.get(i, 0) + 1
        if when == "forward part" and i == 5:
            raise Boom()
        if when == "last step" and i == 11:
            raise Boom()
        if when == "sweep" and i == 3 and runs[i] == 2:
            raise Boom()
        fisher_kpp(i, v, d, w)

    def f(v):
        sad.checkpoint_loop(body, 12, v, snapshots=3)
        if when == "after the loop":
            raise Boom()
        return np.sum(v * v)
    du = np.full_like(u, 0.5)
    with pytest.raises(Boom):
        sad.autodiff(f, Duplicated(u, du))
    assert np.array_equal(u, u0)
    assert np.all(du == 0.5)


def test_several_sweeps_of_one_tape():
    """A batch in reverse mode sweeps one tape once per lane, redoing in
    between: the loop's snapshots are made again for each sweep, and each
    lane equals its own call."""
    u, d, w = args()
    seeds = (rng.random(u.size), rng.random(u.size))

    def f(x, v):
        sad.checkpoint_loop(lambda i, a: fisher_kpp(i, a, x[0], w), 15, v, snapshots=3)
        return np.sum(v * v)
    x = np.array([d])
    gx, _ = sad.autodiff(f, Active(x.copy()), BatchDuplicated(u.copy(), tuple(s.copy() for s in seeds)))
    for lane, seed in enumerate(seeds):
        alone = sad.autodiff(f, Active(x.copy()), Duplicated(u.copy(), seed.copy()))
        np.testing.assert_allclose(gx[lane], alone[0], rtol=1e-12)


def test_a_write_outside_the_state_is_refused():
    u, d, w = args()

    def f(v, x):
        def body(i, a):
            a *= 1.01
            x[0] = a[0]  # x is not state
        sad.checkpoint_loop(body, 5, v, snapshots=2)
        return np.sum(v) + np.sum(x)
    u0, w0 = u.copy(), w.copy()
    du, dw = np.zeros_like(u), np.zeros_like(w)
    with pytest.raises(sad.StateRuleError, match="state"):
        sad.autodiff(f, Duplicated(u, du), Duplicated(w, dw))
    assert np.array_equal(u, u0) and np.array_equal(w, w0)
    assert not du.any() and not dw.any()


def test_a_step_may_write_memory_it_made():
    u, d, w = args()

    def f(v):
        def body(i, a):
            t = a * 2.0
            t[1:] += a[:-1]
            a += 0.01 * np.tanh(t)
        sad.checkpoint_loop(body, 9, v, snapshots=2)
        return np.sum(v * v)

    def f_plain(v):
        for i in range(9):
            t = v * 2.0
            t[1:] += v[:-1]
            v += 0.01 * np.tanh(t)
        return np.sum(v * v)
    np.testing.assert_allclose(grad(f, u), grad(f_plain, u), rtol=1e-12)


def grad(f, *xs):
    """f's gradient with respect to arrays it mutates (Duplicated copies)."""
    ds = [np.zeros_like(x) for x in xs]
    sad.autodiff(f, *[Duplicated(x.copy(), d) for x, d in zip(xs, ds)])
    return ds if len(ds) > 1 else ds[0]


def test_several_state_arrays_and_float32():
    a, b = rng.random(16), rng.random(16)

    def step(i, x, y):
        x += 0.1 * np.sin(y)
        y -= 0.1 * x * x

    def f(x, y):
        sad.checkpoint_loop(step, 20, x, y, snapshots=4)
        return np.sum(x * y)

    def f_plain(x, y):
        for i in range(20):
            step(i, x, y)
        return np.sum(x * y)
    for dt, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        got = grad(f, a.astype(dt), b.astype(dt))
        want = grad(f_plain, a.astype(dt), b.astype(dt))
        for g, h in zip(got, want):
            assert g.dtype == dt
            np.testing.assert_allclose(g, h, rtol=rtol)


def test_memory_holds_the_snapshots_and_one_step():
    m, n, s = 20_000, 200, 5
    u = rng.random(m)
    state_bytes = u.nbytes

    def step(i, v):
        v[1:-1] += 0.1 * (v[2:] - 2 * v[1:-1] + v[:-2]) + 0.01 * v[1:-1] * (1 - v[1:-1])

    def f(v):
        sad.checkpoint_loop(step, n, v, snapshots=s)
        return np.sum(v * v)

    def f_plain(v):
        for i in range(n):
            step(i, v)
        return np.sum(v * v)
    _, t1 = sad.autodiff_split(f, Duplicated(u.copy(), np.zeros(m)))
    _, t2 = sad.autodiff_split(f_plain, Duplicated(u.copy(), np.zeros(m)))
    held, plain_held = t1.stats()["nbytes"], t2.stats()["nbytes"]
    t1.reverse()
    t2.reverse()
    assert plain_held > 50 * state_bytes
    assert held < (s + 1 + 8) * state_bytes  # snapshots, the swap's copy, one step's tape


@pytest.mark.parametrize("m", [20_000, 100_000])
def test_the_peak_counts_the_snapshots_and_one_steps_tape(m):
    """stats()'s peak over the sweep holds the s snapshots, the record's copy
    and the last step's save, and one step's tape as it is alone: no less
    (every drop of a step's records counts what the tape holds then) and no
    more (the last step's kept values go once swept in the last sweep)."""
    n, s = 60, 5
    u = rng.random(m)

    def step(i, v):
        v[1:-1] += 0.1 * (v[2:] - 2 * v[1:-1] + v[:-2]) + 0.01 * v[1:-1] * (1 - v[1:-1])

    def f(v):
        sad.checkpoint_loop(step, n, v, snapshots=s)
        return np.sum(v * v)

    def one(v):
        step(0, v)
        return np.sum(v * v)
    peaks = []
    for g in (f, one):
        _, tape = sad.autodiff_split(g, Duplicated(u.copy(), np.zeros(m)))
        tape.reverse()
        peaks.append(tape.stats()["peak_nbytes"])
    loop, alone = peaks
    assert loop >= (s + 1) * u.nbytes + alone
    assert loop <= (s + 2) * u.nbytes + alone + (64 << 10)


def test_empty_loop_and_arguments():
    u = rng.random(4)
    g = grad(lambda v: (sad.checkpoint_loop(lambda i, x: None, 0, v), np.sum(v))[1], u)
    assert np.all(g == 1)
    with pytest.raises(TypeError, match="Active"):
        sad.gradient(lambda v: (sad.checkpoint_loop(lambda i, x: None, 1, v), np.sum(v))[1], u)
    with pytest.raises(TypeError, match="callable"):
        sad.checkpoint_loop(3, 2, u)
    with pytest.raises(TypeError, match="int"):
        sad.checkpoint_loop(lambda i, x: None, 2.0, u)
    with pytest.raises(ValueError, match=">= 1"):
        sad.checkpoint_loop(lambda i, x: None, 2, u, snapshots=0)
    with pytest.raises(ValueError, match=">= 0"):
        sad.checkpoint_loop(lambda i, x: None, -1, u)


# -- sad.checkpoint: one region recomputed in the sweep ----------------------

def region(u, w):
    u *= np.tanh(w)
    u[1:] += 0.3 * u[:-1] * w[1:]
    return np.sum(u * w), np.exp(u) * 2


def use(a, b, u):
    return a * 3 + np.sum(b * u) + np.sum(u)


@pytest.mark.parametrize("w_activity", ["Duplicated", "Active"])
def test_a_checkpointed_region_gives_the_plain_gradient(w_activity):
    u, w = rng.random(40), rng.random(40)

    def run_f(ck):
        def f(x, y):
            a, b = (sad.checkpoint(region, x, y) if ck else region(x, y))
            return use(a, b, x)
        du, x = np.zeros_like(u), u.copy()
        if w_activity == "Active":
            g, v = sad.autodiff(f, Duplicated(x, du), Active(w.copy()), mode=sad.ReverseWithPrimal)
            return du, g[1], v, x
        dw = np.zeros_like(w)
        g, v = sad.autodiff(f, Duplicated(x, du), Duplicated(w.copy(), dw),
                            mode=sad.ReverseWithPrimal)
        return du, dw, v, x
    got, want = run_f(True), run_f(False)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    assert got[2] == want[2] and np.array_equal(got[3], want[3])


def test_a_region_returning_its_argument_a_scalar_or_nothing():
    u = rng.random(10)

    def f(x):
        y = sad.checkpoint(lambda a: a.__imul__(1.5), x)     # returns its argument
        s = sad.checkpoint(lambda a: np.sum(a * a), x)       # a traced scalar
        sad.checkpoint(lambda a: None, x)
        return s + np.sum(y)

    def f_plain(x):
        x *= 1.5
        return np.sum(x * x) + np.sum(x)
    np.testing.assert_allclose(grad(f, u), grad(f_plain, u), rtol=1e-12)


def test_a_region_restores_and_is_atomic():
    u = rng.random(12)
    runs, fail_on = [], [2]  # the re-run in the sweep

    def fn(a):
        runs.append(1)
        if len(runs) == fail_on[0]:
            raise Boom()
        a *= 2.0
        return a * a

    def f(x):
        return np.sum(sad.checkpoint(fn, x))
    x, du = u.copy(), np.full_like(u, 0.25)
    with pytest.raises(Boom):
        sad.autodiff(f, Duplicated(x, du))
    assert np.array_equal(x, u) and np.all(du == 0.25)
    x = u.copy()
    fail_on[0] = None
    sad.autodiff(f, Duplicated(x, np.zeros_like(u)), restore=True)
    assert np.array_equal(x, u)


def test_outside_autodiff_and_forward_mode_a_region_is_the_plain_call():
    u = rng.random(6)
    assert sad.checkpoint(lambda a: np.sum(a * 2), u) == np.sum(u * 2)
    t = sad.autodiff(lambda a: sad.checkpoint(lambda b: b * b, a),
                     Duplicated(u.copy(), np.ones(6)), mode=sad.Forward)
    np.testing.assert_allclose(t, 2 * u)


def test_parameters_computed_by_f_and_views_as_state():
    """body reads a large temporary f computed before the loop (its shadow a
    lazy slot of the tape, which the re-runs in the sweep add into), and the
    state is a view of an argument."""
    m = 6000  # a temporary of 48 KB: a lazy shadow
    u, w = rng.random(m), rng.random(m)

    def f(x, y, ck):
        c = np.exp(0.1 * y)
        core = x[1:-1]

        def body(i, v):
            v *= 0.99
            v += 0.001 * c[1:-1] * np.sin(v)
        if ck:
            sad.checkpoint_loop(body, 12, core, snapshots=3)
        else:
            for i in range(12):
                body(i, core)
        return np.sum(x * x) + np.sum(c)
    got = grad(lambda x, y: f(x, y, True), u, w)
    want = grad(lambda x, y: f(x, y, False), u, w)
    for g, h in zip(got, want):
        np.testing.assert_allclose(g, h, rtol=1e-12)


def test_a_budget_the_whole_tape_exceeds_and_the_checkpointed_loop_fits():
    """The budget counts the snapshots and the step being taped: the loop
    taped whole does not fit (everything is put back), the checkpointed
    one does, with the same gradient."""
    m, n = 20_000, 100
    u = rng.random(m)

    def step(i, v):
        v[1:-1] += 0.1 * (v[2:] - 2 * v[1:-1] + v[:-2]) + 0.01 * v[1:-1] * (1 - v[1:-1])

    def whole(v):
        for i in range(n):
            step(i, v)
        return np.sum(v * v)

    def checkpointed(v):
        sad.checkpoint_loop(step, n, v, snapshots=5)
        return np.sum(v * v)
    budget = 20 * u.nbytes
    x, dx = u.copy(), np.full(m, 0.5)
    with pytest.raises(sad.TapeBudgetError, match="checkpoint_loop"):
        sad.autodiff(whole, Duplicated(x, dx), tape_budget=budget)
    assert np.array_equal(x, u) and np.all(dx == 0.5)
    want = grad(whole, u)
    x, dx = u.copy(), np.zeros(m)
    sad.autodiff(checkpointed, Duplicated(x, dx), tape_budget=budget)
    np.testing.assert_allclose(dx, want, rtol=1e-12)
    _, tape = sad.autodiff_split(checkpointed, Duplicated(u.copy(), np.zeros(m)),
                                 tape_budget=budget)
    tape.reverse()
    assert tape.stats()["peak_nbytes"] <= budget
    # a budget below the snapshots themselves is refused, with everything put back
    x, dx = u.copy(), np.full(m, 0.5)
    with pytest.raises(sad.TapeBudgetError):
        sad.autodiff(checkpointed, Duplicated(x, dx), tape_budget=3 * u.nbytes)
    assert np.array_equal(x, u) and np.all(dx == 0.5)


def test_the_state_rule_within_one_array_and_nested_regions():
    """A write to the part of an array outside the state view is outside the
    state; a loop, or a region, nested in a loop's body writes only its own
    state (the records say which memory they write); the sweep re-runs a
    body inside f's call (a gradient taken in the body works there too)."""
    x = np.array([1.5, 1.0, 2.0])

    def f(a):
        core = a[1:]

        def body(i, v):
            v *= a[0]
            a[0] = a[0] * 2.0
        sad.checkpoint_loop(body, 3, core, snapshots=1)
        return np.sum(a)
    with pytest.raises(sad.StateRuleError, match="argument 0"):
        sad.autodiff(f, Duplicated(x.copy(), np.zeros(3)))

    def nested(u, w):
        inner = lambda j, v: v.__imul__(1.01 + 0.01 * np.sin(v))
        outer = lambda i, v: sad.checkpoint_loop(inner, 3, v, snapshots=2)
        sad.checkpoint_loop(outer, 4, u, snapshots=2)
        v2 = sad.checkpoint(lambda a, b: np.sin(a) * b, u, w)
        return np.sum(u * w) + np.sum(v2)

    def nested_plain(u, w):
        for i in range(4):
            for j in range(3):
                u *= 1.01 + 0.01 * np.sin(u)
        return np.sum(u * w) + np.sum(np.sin(u) * w)
    u, w = rng.random(5), rng.random(5)
    for g, h in zip(grad(nested, u, w), grad(nested_plain, u, w)):
        np.testing.assert_allclose(g, h, rtol=1e-12)

    def flow(v):
        def body(i, a):
            a -= 0.01 * sad.gradient(lambda b: np.sum(b ** 4) * 0.25, a)[0]
        sad.checkpoint_loop(body, 3, v, snapshots=1)
        return np.sum(v * v)

    def flow_plain(v):
        for i in range(3):
            v -= 0.01 * sad.gradient(lambda b: np.sum(b ** 4) * 0.25, v)[0]
        return np.sum(v * v)
    u = np.linspace(0.1, 1, 4)
    np.testing.assert_allclose(grad(flow, u), grad(flow_plain, u), rtol=1e-12)


def test_a_regions_result_outlives_the_region_and_is_checked():
    """The result is made after the region's records go, so the tape keeps
    it (its shadow counted and held); a result of another kind is refused
    with the arguments put back."""
    u = rng.random(6)

    def f(x):
        r = sad.checkpoint(lambda a: a * 2.0, x)
        return np.sum(r * r)
    np.testing.assert_allclose(grad(f, u), 8 * u, rtol=1e-14)
    x = u.copy()
    with pytest.raises(TypeError, match="returns None, an array"):
        sad.autodiff(lambda a: sad.checkpoint(lambda b: (b.__imul__(3.0), "text")[1], a),
                     Duplicated(x, np.zeros(6)))
    assert np.array_equal(x, u)
    assert sad.autodiff(lambda a: (sad.checkpoint_loop(lambda i, b: None, 0, a),
                                   np.sum(a))[1], Duplicated(u.copy(), np.zeros(6)))[0] is None
