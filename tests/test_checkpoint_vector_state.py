"""sad.checkpoint_loop with a sad.Vector in its state (reverse mode).

A Vector's length changes with its steps, and so does its shadow: a push
adds a zero to it, a pop takes its last element away (the pop's pullback
hands it back).  The loop stores and restores the Vector's elements, length
and shadow, so that every re-run of a step sees what the plain loop's step
saw and the pops of a step taped in the sweep find the shadow the first run
found.  Each test compares with the loop taped whole (uncheckpointed)."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import BatchDuplicated, Const, Duplicated
from shadowad.support import revolve

rng = np.random.default_rng(23)
LENGTH = 40  # the Vector's length at the call: pops reach into it


# -- bodies: body(i, v, u, p) with Vector v, array u (state), parameters p --

def pushes(i, v, u, p):
    v.push(np.tanh(u[i % 2]) * p[0] + 0.5 * v[-1])
    u *= 1.0 + 0.01 * np.sin(v[-1] * p[1])


def pops(i, v, u, p):
    a = v.pop()
    u[0] = u[0] * 0.9 + a * p[1] * u[1]
    u[1] += 0.1 * np.cos(a) * p[0]


def pushes_and_pops(i, v, u, p):
    """Pops below the length the loop began with, then pushes again
    (scalars and an array), stores into an element and reads them all."""
    for _ in range(min((5 * i) % 4, len(v) - 1)):
        a = v.pop()
        u[i % 2] += 0.1 * a * p[0]
    for _ in range((3 * i) % 4):
        v.push(u[0] * p[1] + np.sin(v[-1]))
    if i % 3 == 0:
        v.push(u * p[0])
    v[0] = v[0] * 0.9 + u[1] * p[1]
    u += 0.001 * np.sum(v[:] * v[:])
    u *= 0.99


BODIES = {"pushes": pushes, "pops": pops, "pushes and pops": pushes_and_pops}
SCHEDULES = [(1, 1), (2, 1), (7, 2), (13, 3), (23, 4), (37, 5), (20, 30)]


def inputs():
    return {"v": rng.random(LENGTH), "dv": rng.random(LENGTH) - 0.5,
            "u": rng.random(2) + 0.5, "p": rng.random(2)}


def run(body, n, s, data, kind="Duplicated", checkpointed=True, with_array=True, **kw):
    """autodiff_split of a program that pushes before the loop and reads
    the whole Vector after it; the loop checkpointed or taped whole.  ``kind``:
    the Vector is a Duplicated argument (its shadow seeded), a Const one, or
    made in f from a Duplicated array."""
    v = sad.Vector(data["v"].copy())
    dv = sad.Vector(data["dv"].copy())
    u, du = data["u"].copy(), np.zeros(2)
    p, dp = data["p"].copy(), np.zeros(2)
    dv0 = np.zeros(LENGTH)

    def f(vec, a, q):
        if kind == "made in f":
            vec = sad.Vector(vec * 1.0)
        vec.push(a[0] * 0.5)
        if with_array:
            step, state = (lambda i, x, y: body(i, x, y, q)), (vec, a)
        else:  # the array only read: the body writes a copy the step makes
            step, state = (lambda i, x: body(i, x, a * 1.0, q)), (vec,)
        if checkpointed:
            sad.checkpoint_loop(step, n, *state, snapshots=s)
        else:
            for i in range(n):
                step(i, *state)
        w = vec[:]
        return np.sum(w * w) + vec[0] * vec[-1] + np.sum(a * a)
    vec = {"Duplicated": Duplicated(v, dv), "Const": Const(v),
           "made in f": Duplicated(data["v"].copy(), dv0)}[kind]
    res, tape = sad.autodiff_split(f, vec, Duplicated(u, du), Duplicated(p, dp), **kw)
    tape.reverse()
    st = tape.stats()
    return {"value": res, "v": v[:], "dv": dv[:] if kind == "Duplicated" else dv0,
            "u": u, "du": du, "dp": dp, "counts": (st["advances"], st["taped_steps"])}


def assert_same(got, want):
    assert got["value"] == want["value"]
    for k in ("v", "u"):  # the primals: bit for bit
        assert got[k].shape == want[k].shape and np.array_equal(got[k], want[k]), k
    for k in ("dv", "du", "dp"):  # the shadow of the Vector with its length
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-300, err_msg=k)


@pytest.mark.parametrize("n, s", SCHEDULES)
@pytest.mark.parametrize("name", list(BODIES))
def test_gradients_equal_the_whole_loops_and_counts_are_revolves(name, n, s):
    data = inputs()
    want = run(BODIES[name], n, s, data, checkpointed=False)
    got = run(BODIES[name], n, s, data)
    assert_same(got, want)
    assert got["counts"] == revolve.counts(n, s)


@pytest.mark.parametrize("kind", ["Const", "made in f"])
@pytest.mark.parametrize("name", list(BODIES))
def test_a_const_vector_or_one_made_in_f(name, kind):
    """The Vector has no shadow when the loop begins (the loop gives it one)
    or a shadow of zeros; a Vector made in f sends its gradient into the
    array it was made from."""
    data = inputs()
    want = run(BODIES[name], 13, 3, data, kind=kind, checkpointed=False)
    assert_same(run(BODIES[name], 13, 3, data, kind=kind), want)


@pytest.mark.parametrize("n, s", [(7, 2), (23, 4)])
@pytest.mark.parametrize("name", list(BODIES))
def test_a_vector_alone_in_the_state(name, n, s):
    data = inputs()
    want = run(BODIES[name], n, s, data, checkpointed=False, with_array=False)
    got = run(BODIES[name], n, s, data, with_array=False)
    assert_same(got, want)
    assert got["counts"] == revolve.counts(n, s)


def test_every_run_of_a_step_sees_what_the_plain_loops_step_saw():
    """The snapshots hold the Vector's elements and length: each untaped and
    taped run of step i starts from the Vector and array the plain loop's
    step i started from, bit for bit."""
    data = inputs()
    seen = {}

    def logged(i, v, u, p):
        seen.setdefault(i, []).append((sad.primal(v[:]).copy(), sad.primal(u).copy()))
        pushes_and_pops(i, v, u, p)
    run(logged, 23, 3, data, checkpointed=False)
    plain = {i: runs[0] for i, runs in seen.items()}
    seen.clear()
    run(logged, 23, 3, data)
    assert sorted(seen) == sorted(plain)
    assert sum(len(r) for r in seen.values()) == sum(revolve.counts(23, 3))
    for i, runs in seen.items():
        for v, u in runs:
            assert np.array_equal(v, plain[i][0]) and np.array_equal(u, plain[i][1]), i


def test_restore_true_gives_the_vector_back_with_its_length():
    data = inputs()

    def call(checkpointed):
        v, dv = sad.Vector(data["v"].copy()), sad.Vector(data["dv"].copy())
        u, du = data["u"].copy(), np.zeros(2)

        def f(a, b):
            step = lambda i, x, y: pushes_and_pops(i, x, y, data["p"])
            if checkpointed:
                sad.checkpoint_loop(step, 17, a, b, snapshots=3)
            else:
                for i in range(17):
                    step(i, a, b)
            return a[-1] * a[0] + np.sum(b)
        sad.autodiff(f, Duplicated(v, dv), Duplicated(u, du), restore=True)
        return v[:], u, dv[:], du
    got, want = call(True), call(False)
    assert np.array_equal(got[0], data["v"]) and np.array_equal(got[1], data["u"])
    for g, w in zip(got[2:], want[2:]):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-300)


class Boom(Exception):
    pass


@pytest.mark.parametrize("when", ["forward part", "last step", "sweep", "after the loop"])
def test_an_exception_anywhere_puts_the_vector_back_and_leaves_shadows(when):
    """The Vector's elements and length bit for bit, its shadow (seeded,
    popped below its length at the call, read after the loop: the sweep has
    added into it when the loop's re-run fails) and the array's untouched."""
    data = inputs()
    v, dv = sad.Vector(data["v"].copy()), sad.Vector(data["dv"].copy())
    u, du = data["u"].copy(), np.full(2, 0.5)
    runs = {}

    def body(i, x, y):
        runs[i] = runs.get(i, 0) + 1
        if (when == "forward part" and i == 5 or when == "last step" and i == 11
                or when == "sweep" and i == 3 and runs[i] == 2):
            x.pop()  # half-way through the step
            raise Boom()
        pushes_and_pops(i, x, y, data["p"])

    def f(a, b):
        a.pop()
        a.push(b[0] * 2.0)
        sad.checkpoint_loop(body, 12, a, b, snapshots=3)
        if when == "after the loop":
            raise Boom()
        return a[0] * a[-1] + a[1] + np.sum(b * b)
    with pytest.raises(Boom):
        sad.autodiff(f, Duplicated(v, dv), Duplicated(u, du))
    assert np.array_equal(v[:], data["v"]) and np.array_equal(u, data["u"])
    assert np.array_equal(dv[:], data["dv"]) and np.all(du == 0.5)


@pytest.mark.parametrize("checkpointed", [True, False])
def test_several_sweeps_of_one_tape(checkpointed):
    """A batch sweeps one tape once per lane, redoing in between: the
    Vector's shadow starts each sweep as long as f left the Vector, the
    loop makes its snapshots again, and each lane equals its own call."""
    data = inputs()
    seeds = (rng.random(2), rng.random(2))

    def f(a, q):
        w = sad.Vector(q * 2.0)
        for k in range(6):
            w.push(q[k % 2] * k)
        step = lambda i, x, y: pushes_and_pops(i, x, y, data["p"])
        if checkpointed:
            sad.checkpoint_loop(step, 15, w, a, snapshots=3)
        else:
            for i in range(15):
                step(i, w, a)
        return w[0] * w[-1] + np.sum(a * a)
    q = data["p"]
    lanes = tuple(np.zeros(2) for _ in seeds)
    sad.autodiff(f, BatchDuplicated(data["u"].copy(), tuple(s.copy() for s in seeds)),
                 BatchDuplicated(q.copy(), lanes))
    for lane, seed in enumerate(seeds):
        alone = np.zeros(2)
        sad.autodiff(f, Duplicated(data["u"].copy(), seed.copy()), Duplicated(q.copy(), alone))
        np.testing.assert_allclose(lanes[lane], alone, rtol=1e-12)


def test_a_write_to_a_vector_outside_the_state_is_refused():
    """Pushing into, popping from or storing into a Vector that is not state
    (directly, or through a loop nested in the step) raises StateRuleError
    with everything put back; reading it is allowed, and a Vector the step
    makes is the step's own."""
    data = inputs()

    def writes(how):
        def f(a, other, b):
            def body(i, x, y):
                x.push(y[0] * other[0])  # reading another Vector: allowed
                if how == "push" and i == 2:
                    other.push(1.0)
                if how == "pop" and i == 2:
                    other.pop()
                if how == "store" and i == 2:
                    other[1] = y[0]
                if how == "nested loop" and i == 2:
                    # the inner loop's last step writes nothing: only its
                    # record (the state it stores) writes `other`
                    inner = lambda j, z: z.push(z[0] * 0.5) if j == 0 else None
                    sad.checkpoint_loop(inner, 2, other, snapshots=1)
                y *= 0.9
            sad.checkpoint_loop(body, 6, a, b, snapshots=2)
            return a[-1] + other[0] + np.sum(b)
        return f
    for how in ("push", "pop", "store", "nested loop"):
        v, dv = sad.Vector(data["v"].copy()), sad.Vector(data["dv"].copy())
        w, dw = sad.Vector(data["v"][:5].copy()), sad.Vector(np.full(5, 0.25))
        u, du = data["u"].copy(), np.zeros(2)
        with pytest.raises(sad.StateRuleError, match="sad.Vector"):
            sad.autodiff(writes(how), Duplicated(v, dv), Duplicated(w, dw), Duplicated(u, du))
        assert np.array_equal(v[:], data["v"]) and np.array_equal(w[:], data["v"][:5])
        assert np.array_equal(dv[:], data["dv"]) and np.all(dw[:] == 0.25) and not du.any()

    def own(checkpointed):
        def f(a, other, b):
            def body(i, x, y):
                t = sad.Vector()  # made by the step: its own
                t.push(y * other[i % 5])
                x.push(t.pop() + t.pop())
                y *= 0.95
            if checkpointed:
                sad.checkpoint_loop(body, 9, a, b, snapshots=2)
            else:
                for i in range(9):
                    body(i, a, b)
            return a[-1] * a[-2] + np.sum(b)
        v, dv = sad.Vector(data["v"].copy()), sad.Vector(data["dv"].copy())
        w, dw = sad.Vector(data["v"][:5].copy()), sad.Vector(np.zeros(5))
        u, du = data["u"].copy(), np.zeros(2)
        sad.autodiff(f, Duplicated(v, dv), Duplicated(w, dw), Duplicated(u, du))
        return dv[:], dw[:], du
    for g, h in zip(own(True), own(False)):
        np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-300)


def test_nested_loops_over_one_vector():
    data = inputs()

    def f(a, b, checkpointed):
        inner = lambda j, x, y: pushes(j, x, y, data["p"])

        def outer(i, x, y):
            if checkpointed:
                sad.checkpoint_loop(inner, 3, x, y, snapshots=2)
            else:
                for j in range(3):
                    inner(j, x, y)
            pops(i, x, y, data["p"])
        if checkpointed:
            sad.checkpoint_loop(outer, 7, a, b, snapshots=2)
        else:
            for i in range(7):
                outer(i, a, b)
        return a[-1] * a[0] + np.sum(b * b)

    def grads(checkpointed):
        v, dv = sad.Vector(data["v"].copy()), sad.Vector(data["dv"].copy())
        u, du = data["u"].copy(), np.zeros(2)
        sad.autodiff(f, Duplicated(v, dv), Duplicated(u, du), Const(checkpointed))
        return v[:], dv[:], du
    got, want = grads(True), grads(False)
    assert np.array_equal(got[0], want[0])
    for g, h in zip(got[1:], want[1:]):
        np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-300)


def test_a_rerun_that_changes_the_vectors_length_is_an_error():
    """A step whose re-run pushes more than its first run would make the
    sweep pop elements the shadow does not have: refused, all put back."""
    data = inputs()
    runs = {}

    def body(i, x, y):
        runs[i] = runs.get(i, 0) + 1
        pushes(i, x, y, data["p"])
        if i == 1 and runs[i] > 1:
            x.push(0.0)
    v, dv = sad.Vector(data["v"].copy()), sad.Vector(data["dv"].copy())
    u, du = data["u"].copy(), np.zeros(2)

    def f(a, b):
        sad.checkpoint_loop(body, 9, a, b, snapshots=2)
        return a[-1] + np.sum(b)
    with pytest.raises(RuntimeError, match="re-run of step"):
        sad.autodiff(f, Duplicated(v, dv), Duplicated(u, du))
    assert np.array_equal(v[:], data["v"]) and np.array_equal(u, data["u"])
    assert np.array_equal(dv[:], data["dv"]) and not du.any()


def test_the_tape_counts_the_vectors_copies():
    """Each snapshot holds the Vector's elements and its shadow: the tape's
    bytes (and so a budget) see them.  A budget below them is refused with
    everything put back; one above them gives the whole loop's gradient."""
    m, n, s = 20_000, 30, 4
    x = rng.random(m)

    def body(i, v, u):
        v.push(v.pop() * 0.99 + u[0] * 0.01)
        u *= 0.999

    def f(v, u, checkpointed=True):
        if checkpointed:
            sad.checkpoint_loop(body, n, v, u, snapshots=s)
        else:
            for i in range(n):
                body(i, v, u)
        return v[-1] + v[0] * np.sum(u)

    def args(dv=None):
        return (Duplicated(sad.Vector(x.copy()), sad.Vector(np.zeros(m) if dv is None else dv)),
                Duplicated(np.ones(3), np.zeros(3)))
    _, tape = sad.autodiff_split(f, *args())
    stored = sum(type(a) is revolve.Store for a in revolve.forward_part(n, s))
    # snapshot 0 is the initial copy; the record's own copy holds the elements
    assert tape.stats()["nbytes"] >= (2 * stored + 1) * 8 * m
    tape.reverse()
    assert tape.stats()["peak_nbytes"] < (2 * s + 1 + 4) * 8 * m

    dv0 = np.full(m, 0.5)
    vec, arr = args(dv0.copy())
    with pytest.raises(sad.TapeBudgetError):
        sad.autodiff(f, vec, arr, tape_budget=4 * 8 * m)
    assert np.array_equal(vec.val[:], x) and np.array_equal(vec.dval[:], dv0)
    assert np.all(arr.val == 1) and not arr.dval.any()
    got, want = args(), args()
    sad.autodiff(f, *got, tape_budget=(2 * s + 6) * 8 * m)
    sad.autodiff(lambda v, u: f(v, u, False), *want)
    np.testing.assert_allclose(got[0].dval[:], want[0].dval[:], rtol=1e-12)
    np.testing.assert_allclose(got[1].dval, want[1].dval, rtol=1e-12)


def test_outside_autodiff_and_in_forward_mode_it_is_the_plain_loop():
    data = inputs()

    def f(v, u, checkpointed):
        step = lambda i, x, y: pushes_and_pops(i, x, y, data["p"])
        if checkpointed:
            sad.checkpoint_loop(step, 11, v, u, snapshots=2)
        else:
            for i in range(11):
                step(i, v, u)
        return v[-1] * v[0] + np.sum(u)
    a, b = sad.Vector(data["v"].copy()), sad.Vector(data["v"].copy())
    ua, ub = data["u"].copy(), data["u"].copy()
    assert f(a, ua, True) == f(b, ub, False)
    assert np.array_equal(a[:], b[:]) and np.array_equal(ua, ub)
    tangents = []
    for checkpointed in (True, False):
        v, dv = sad.Vector(data["v"].copy()), sad.Vector(data["dv"].copy())
        tangents.append(sad.autodiff(f, Duplicated(v, dv), Duplicated(data["u"].copy(), np.ones(2)),
                                     Const(checkpointed), mode=sad.Forward))
    assert tangents[0] == tangents[1]


def test_the_state_is_checked():
    data = inputs()
    v = sad.Vector(data["v"].copy())

    def twice(a):
        sad.checkpoint_loop(lambda i, x, y: x.push(1.0), 2, a, a)
        return a[0]
    with pytest.raises(ValueError, match="share memory"):
        sad.autodiff(twice, Duplicated(v, sad.Vector(np.zeros(LENGTH))))

    def plain_vector(a):  # a Vector made outside f and not passed: not traced
        sad.checkpoint_loop(lambda i, x, y: None, 2, a, v)
        return np.sum(a)
    with pytest.raises(TypeError, match="sad.Vector traced"):
        sad.autodiff(plain_vector, Duplicated(np.ones(2), np.zeros(2)))
