"""sad.checkpoint_loop's untaped steps on plain arrays.

A step that touches nothing traced but its state runs on the state's numpy
arrays, as the plain loop; a step that touches the tape (a parameter read, a
traced value written, an error) is taken back and the loop goes on recorded
from the last snapshot.  Either way the gradient, the final values, the
counts and the two rules are those of the recorded loop."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated
from shadowad.support import revolve

rng = np.random.default_rng(11)


def kpp(v):
    v[1:-1] += 0.1 * (v[2:] - 2 * v[1:-1] + v[:-2]) + 0.01 * v[1:-1] * (1 - v[1:-1])


def whole_gradient(body, u, n, *extra):
    """The gradient of sum(u*u) after the loop taped whole (no checkpointing)."""
    du = np.zeros_like(u)

    def f(v, *xs):
        for i in range(n):
            body(i, v, *xs)
        return np.sum(v * v)
    grads = sad.autodiff(f, Duplicated(u.copy(), du), *extra)
    return du, grads


def checkpointed_gradient(body, u, n, s, *extra):
    du = np.zeros_like(u)

    def f(v, *xs):
        sad.checkpoint_loop(lambda i, a: body(i, a, *xs), n, v, snapshots=s)
        return np.sum(v * v)
    grads, tape = sad.autodiff_split(f, Duplicated(u.copy(), du), *extra)
    grads = tape.reverse()
    st = tape.stats()
    assert (st["advances"], st["taped_steps"]) == revolve.counts(n, s)
    return du, grads


class Kinds:
    """The types of state a body saw, by step."""

    def __init__(self):
        self.seen = []

    def __call__(self, v):
        self.seen.append(type(v).__name__)


@pytest.mark.parametrize("n, s", [(1, 1), (9, 2), (40, 3), (101, 5)])
def test_a_body_of_the_state_alone_runs_plain_and_gives_the_recorded_gradient(n, s):
    u = rng.random(50)
    kinds = Kinds()

    def body(i, v):
        kinds(v)
        kpp(v)
    want, _ = whole_gradient(body, u, n)
    kinds.seen.clear()
    got, _ = checkpointed_gradient(body, u, n, s)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    advances, taped = revolve.counts(n, s)
    assert kinds.seen.count("ndarray") == advances  # every untaped step ran plain
    assert kinds.seen.count("TArray") == taped


def test_a_parameter_read_takes_the_first_step_back_and_records_from_then_on():
    u, w = rng.random(40), rng.random(40)
    kinds = Kinds()

    def body(i, v, p):
        kinds(v)
        v *= 1 - 0.01 * p

    want, wg = whole_gradient(body, u, 30, Duplicated(w.copy(), np.zeros(40)))
    kinds.seen.clear()
    dw = np.zeros(40)
    got, _ = checkpointed_gradient(body, u, 30, 4, Duplicated(w.copy(), dw))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    wdw = np.zeros(40)
    whole_gradient(body, u, 30, Duplicated(w.copy(), wdw))
    np.testing.assert_allclose(dw, wdw, rtol=1e-12)
    assert kinds.seen.count("ndarray") == 1  # the first step only, taken back


@pytest.mark.parametrize("touch", ["a parameter", "an active scalar", "a traced constant"])
def test_a_step_that_touches_the_tape_half_way_is_taken_back_from_its_snapshot(touch):
    """Plain steps run until step 17, which touches the tape after it has
    already written part of the state: the loop puts the snapshot back,
    records from there, and the gradient and counts stay exact."""
    u, w = rng.random(30), rng.random(30)
    kinds = Kinds()

    def body(i, v, p, d, c):
        kinds(v)
        v[:10] *= 0.99
        if i == 17:
            other = {"a parameter": p[10:], "an active scalar": d,
                     "a traced constant": c[10:]}[touch]
            v[10:] += 0.01 * other
        kpp(v)

    extra = (Duplicated(w.copy(), np.zeros(30)), Active(0.3), Const(w.copy()))
    want, wg = whole_gradient(body, u, 25, *extra)
    kinds.seen.clear()
    extra = (Duplicated(w.copy(), np.zeros(30)), Active(0.3), Const(w.copy()))
    got, g = checkpointed_gradient(body, u, 25, 3, *extra)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(g[2], wg[2], rtol=1e-12)
    assert "ndarray" in kinds.seen and "TArray" in kinds.seen


def test_the_final_state_and_value_are_the_plain_loops_bit_for_bit():
    u = rng.random(64)
    a = u.copy()
    for i in range(57):
        kpp(a)
    want = np.sum(a * a)

    def f(v):
        sad.checkpoint_loop(lambda i, x: kpp(x), 57, v, snapshots=4)
        return np.sum(v * v)
    b = u.copy()
    _, value = sad.autodiff(f, Duplicated(b, np.zeros(64)), mode=sad.ReverseWithPrimal)
    assert value == want and np.array_equal(a, b)


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
@pytest.mark.parametrize("where", ["forward part", "sweep"])
def test_an_error_in_a_plain_step_restores_primals_and_leaves_shadows(error, where):
    u = rng.random(32)
    u0 = u.copy()
    runs = {}

    def body(i, v):
        runs[i] = runs.get(i, 0) + 1
        v *= 1.01  # written before the error
        if (where == "forward part" and i == 6) or (where == "sweep" and i == 2 and runs[i] >= 2):
            raise error("step")  # in the sweep: first on the plain re-run
        kpp(v)

    def f(v):
        sad.checkpoint_loop(body, 12, v, snapshots=3)
        return np.sum(v * v)
    du = np.full_like(u, 0.25)
    with pytest.raises(error):
        sad.autodiff(f, Duplicated(u, du))
    assert np.array_equal(u, u0)
    assert np.all(du == 0.25)


def test_an_error_only_the_plain_run_meets_is_the_recorded_runs_to_decide():
    """A body that needs a traced value's attribute fails on the plain array;
    the step runs again recorded, where it succeeds."""
    u = rng.random(20)

    def body(i, v):
        v.buf  # a TArray's attribute: an AttributeError on a numpy array
        kpp(v)
    want, _ = whole_gradient(body, u, 10)
    got, _ = checkpointed_gradient(body, u, 10, 2)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_a_plain_step_cannot_hide_a_write_outside_the_state():
    u, w = rng.random(16), rng.random(16)
    w0 = w.copy()

    def f(v, x):
        def body(i, a):
            a *= 1.01
            if i == 4:
                x[0] = 2.0  # x is traced and not state: the step touches the tape
        sad.checkpoint_loop(body, 8, v, snapshots=2)
        return np.sum(v) + np.sum(x)
    u0 = u.copy()
    du, dw = np.zeros(16), np.zeros(16)
    with pytest.raises(sad.StateRuleError, match="state"):
        sad.autodiff(f, Duplicated(u, du), Duplicated(w, dw))
    assert np.array_equal(u, u0) and np.array_equal(w, w0)
    assert not du.any() and not dw.any()


def test_plain_steps_with_several_state_arrays_views_and_float32():
    x0, y0 = rng.random(24), rng.random(12)

    def step(i, x, y):
        x += 0.1 * np.sin(y).repeat(2)
        y -= 0.05 * x[::2] * x[1::2]

    xs0 = np.concatenate([rng.random(2), x0])
    ys0 = np.concatenate([rng.random(1), y0])
    for dt, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        def f(x, y, ck):
            if ck:
                sad.checkpoint_loop(step, 21, x[2:], y[1:], snapshots=3)
            else:
                for i in range(21):
                    step(i, x[2:], y[1:])
            return np.sum(x * x) + np.sum(y)
        grads = []
        for ck in (False, True):
            dx, dy = np.zeros(26, dt), np.zeros(13, dt)
            xs, ys = xs0.astype(dt), ys0.astype(dt)
            sad.autodiff(f, Duplicated(xs.copy(), dx), Duplicated(ys.copy(), dy), Const(ck))
            grads.append((dx, dy))
        for g, h in zip(*grads):
            assert g.dtype == dt
            np.testing.assert_allclose(g, h, rtol=rtol)


def test_plain_steps_leave_nothing_on_the_tape():
    """The tape after a loop of 50 steps holds what it holds after 2: the
    loop's record and copies, the last step's records, the objective."""
    u = rng.random(1000)
    held = []
    for n in (2, 50):
        def f(v):
            sad.checkpoint_loop(lambda i, x: kpp(x), n, v, snapshots=4)
            return np.sum(v * v)
        _, tape = sad.autodiff_split(f, Duplicated(u.copy(), np.zeros(1000)))
        st = tape.stats()
        held.append((st["records"], st["python_records"]))
        tape.reverse()
    assert held[0] == held[1]


@pytest.mark.parametrize("how", ["assign", "promote", "view"])
def test_a_write_to_memory_f_computed_is_refused_after_a_plain_step_is_taken_back(how):
    """The step that writes y is first tried plain and taken back; the
    recorded run must still see the write (y is pinned again)."""
    u, w = rng.random(12), rng.random(12)

    def f(v, x, c):
        y = (c if how == "promote" else x) * 1.0  # from a Const: inactive until written

        def body(i, a):
            if how == "view":
                y[2:][...] = 0.9 * y[2:] + 0.1 * a[2:]
            else:
                y[...] = 0.9 * y + 0.1 * a
            a *= 1 + 0.1 * y
        sad.checkpoint_loop(body, 12, v, snapshots=2)
        return np.sum(v * v)
    u0, w0 = u.copy(), w.copy()
    du, dw = np.zeros(12), np.zeros(12)
    with pytest.raises(sad.StateRuleError, match="state"):
        sad.autodiff(f, Duplicated(u, du), Duplicated(w, dw), Const(w0.copy()))
    assert np.array_equal(u, u0) and np.array_equal(w, w0)
    assert not du.any() and not dw.any()


@pytest.mark.parametrize("keep", ["the array", "a view", "a reshaped view"])
def test_a_step_that_keeps_its_state_arrays_runs_recorded(keep):
    """What a step keeps of its arguments must be the traced state: kept from
    a plain step it would be a constant, and f's use of it would lose its
    derivative.  Such a step is taken back and the loop goes on recorded."""
    u = rng.random(6)
    kinds = Kinds()

    def f(v, ck):
        held = {}

        def body(i, a):
            kinds(a)
            a *= 1.1 - 0.1 * a
            if i == 3:
                held["u"] = {"the array": a, "a view": a[1:],
                             "a reshaped view": a.reshape(2, 3)}[keep]
        if ck:
            sad.checkpoint_loop(body, 7, v, snapshots=2)
        else:
            for i in range(7):
                body(i, v)
        return np.sum(held["u"] ** 2) + np.sum(v)
    grads = []
    for ck in (False, True):
        du = np.zeros(6)
        sad.autodiff(f, Duplicated(u.copy(), du), Const(ck))
        grads.append(du)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12)
    assert "ndarray" in kinds.seen


def test_counts_of_a_step_taken_back_are_taken_back():
    """A region inside a plain step counts an advance before the step is
    taken back; the counts stay revolve's."""
    u = rng.random(8)

    def body(i, a):
        sad.checkpoint(lambda b: b.__imul__(0.99), a)

    def f(v):
        sad.checkpoint_loop(body, 20, v, snapshots=3)
        return np.sum(v * v)
    _, tape = sad.autodiff_split(f, Duplicated(u.copy(), np.zeros(8)))
    tape.reverse()
    st = tape.stats()
    advances, taped = revolve.counts(20, 3)
    # each step's region adds one untaped run and one taped run of its own
    assert st["taped_steps"] == taped + taped
    assert st["advances"] == advances + advances + taped
