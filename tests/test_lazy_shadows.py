"""Lazy shadows of large temporaries (csrc/core/slot.c, traced.new_lazy): the C
tape allocates them when the reverse sweep first needs them and reuses their
memory once the temporary's record is swept.  Every program here gives the
same gradients, bit for bit, as with eager shadows."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import BatchDuplicated, Duplicated
from shadowad.engines.reverse import buffers, traced
from shadowad._c import ffi, lib
from shadowad.testing import same_bits

N = 6000  # 48 KB: above LAZY_MIN


def heat(u):
    for _ in range(20):
        u[1:-1] += 0.25 * (u[2:] - 2.0 * u[1:-1] + u[:-2])
    return np.sum(u * u)


def chain_with_reuse(u):
    t = np.sin(u) * 2.0          # t feeds three consumers
    a = t * t + t
    b = (t - u)[::2]             # a view of a lazy temporary
    c = np.exp(-a) * 0.5
    u * 3.0                      # a temporary whose shadow is never written
    return np.sum(c) + np.sum(b * b)


def materialized(u):
    t = u * u
    s = t[5] * t[7]              # an element read makes the shadow an array
    m = np.sum((u + 1.0).reshape(2, -1), axis=1)  # a Python record's input
    w = u - 1.0
    w *= np.cos(u)               # writes into a temporary pin it
    return s + m[0] * m[1] + np.sum(w * t)


def mutating(u, y):
    y[...] = np.tanh(u * 1.5) - u
    y[::3] *= (u[::3] + 2.0)
    return None


def python_records(u):
    # Python pullbacks reach lazy shadows only during the sweep: new memory
    # stored into whole (axis sums), memory the C sweep already allocated
    # (t also feeds C records swept first), a part (zeros around it) and
    # views made by shape rules (swapaxes for matmul)
    t = np.exp(u * 0.5)
    a = np.sum(t.reshape(60, -1), axis=0)          # memory the C sweep allocated
    a = a + np.sum(np.sin(u).reshape(60, -1), axis=0)  # whole: a store
    b = np.sum((t * t)[10:70].reshape(3, 20), axis=1)  # a part of a lazy temporary
    m = (u * 2.0).reshape(3, 40, 50)
    q = np.matmul(np.swapaxes(m, 1, 2), m[:, :, :4])   # a transposed lazy operand
    return np.sum(a * a) + np.sum(b) + np.sum(q * q) + np.sum(t * u)


PROGRAMS = {"heat": (heat, 1), "chain": (chain_with_reuse, 1), "python": (python_records, 1),
            "materialized": (materialized, 1), "mutating": (mutating, 2)}


def _gradients(f, nargs, seed):
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.1, 0.9, N)
    args = [Duplicated(u.copy(), np.zeros(N))]
    if nargs == 2:
        args.append(Duplicated(rng.uniform(-1, 1, N), rng.standard_normal(N)))
    sad.autodiff(f, *args)
    return [a.dval for a in args] + [a.val for a in args]


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_lazy_equals_eager_bit_for_bit(name, monkeypatch):
    f, nargs = PROGRAMS[name]
    made = []
    monkeypatch.setattr(traced, "new_lazy",
                        lambda tape, z, real=traced.new_lazy: made.append(1) or real(tape, z))
    lazy = _gradients(f, nargs, 1)
    assert made  # the lazy path ran
    monkeypatch.setattr(traced, "LAZY_MIN", 1 << 62)
    eager = _gradients(f, nargs, 1)
    for a, b in zip(lazy, eager):
        assert same_bits(a, b)


def test_slot_memory_stays_small():
    """The heat equation's 80 temporaries' shadows come from a handful of
    reused blocks, not one block each."""
    u = np.random.default_rng(2).uniform(0, 1, N)
    _, tape = sad.autodiff_split(heat, Duplicated(u, np.zeros(N)))
    recorded = tape.nbytes
    inner = tape._tape
    inner.reverse()
    swept = inner.nbytes
    assert swept - recorded <= 6 * N * 8  # reused, not 80 shadows of N doubles
    inner.redo()
    inner.free()


def test_multi_sweep_batch_and_jacobian_with_lazy_shadows(monkeypatch):
    rng = np.random.default_rng(3)
    u = rng.uniform(0.1, 0.9, N)
    seeds = tuple(rng.standard_normal(N) for _ in range(3))

    def f(u, y):
        mutating(u, y)

    def run():
        dus = tuple(np.zeros(N) for _ in seeds)
        sad.autodiff(f, BatchDuplicated(u.copy(), dus),
                     BatchDuplicated(np.zeros(N), tuple(s.copy() for s in seeds)))
        return dus
    lazy = run()
    monkeypatch.setattr(traced, "LAZY_MIN", 1 << 62)
    eager = run()
    for a, b in zip(lazy, eager):
        assert same_bits(a, b)

    def g(x):
        return np.sum(np.sin(x * 2.0) * (x - 1.0))
    monkeypatch.undo()
    x = rng.uniform(0, 1, N)
    grad = sad.gradient(g, x)[0]
    J = sad.jacobian(lambda v: np.sum(np.sin(v * 2.0) * (v - 1.0)), x, mode=sad.Reverse)
    np.testing.assert_allclose(J, grad, rtol=1e-14)


def test_restore_and_failure_with_lazy_shadows():
    rng = np.random.default_rng(4)
    u = rng.uniform(0.1, 0.9, N)
    before = u.copy()
    sad.autodiff(heat, Duplicated(u, np.zeros(N)), restore=True)
    assert same_bits(u, before)

    def boom(u):
        heat(u)
        raise ArithmeticError("stop")
    du = np.full(N, 0.5)
    with pytest.raises(ArithmeticError):
        sad.autodiff(boom, Duplicated(u, du))
    assert same_bits(u, before) and (du == 0.5).all()


def test_five_dimensions(monkeypatch):
    """Broadcasting to more dimensions than the C core iterates over makes
    lazy inputs materialize before the record is split."""
    x = np.random.default_rng(5).uniform(0.1, 0.9, (2, 3, 2, 2, 3000))
    c = np.ones((1, 3, 1, 2, 3000))

    def f(x):
        t = x[0, 0] * 2.0         # lazy (3-D, 96 KB)
        return np.sum(t * x + c)  # 5-D: split into slices
    lazy = sad.gradient(f, x)[0]
    monkeypatch.setattr(traced, "LAZY_MIN", 1 << 62)
    assert same_bits(lazy, sad.gradient(f, x)[0])


# --------------------------------------------------------------------------
# Python records with large results (matmul, outer, dot): their shadows are
# lazy too, and their pullbacks read them through buffers.output_pullback

def python_outputs(u):
    m = u.reshape(3, 40, 50)
    q = np.matmul(np.swapaxes(m, 1, 2), m)             # read by a C record
    o = np.outer(u[:100], u[100:200])                  # read by a Python record
    w = u.reshape(60, 100)
    d = np.dot(w.T, w)                                 # never reached: adjoint zero
    e = np.matmul(u.reshape(100, 60), w)               # an element of it read
    s = np.sum(o, axis=0)
    return np.sum(q * q) + np.sum(s * s) + e[3, 4] * e[5, 6] + 0.0 * d.shape[0]


def test_python_record_outputs_lazy_equals_eager(monkeypatch):
    made = []
    monkeypatch.setattr(traced, "new_lazy",
                        lambda tape, z, real=traced.new_lazy: made.append(z.shape) or real(tape, z))
    lazy = _gradients(python_outputs, 1, 6)
    assert {(3, 50, 50), (100, 100)} <= set(made) and len(made) >= 4
    monkeypatch.setattr(traced, "LAZY_MIN", 1 << 62)
    eager = _gradients(python_outputs, 1, 6)
    for a, b in zip(lazy, eager):
        assert same_bits(a, b)
    u = np.random.default_rng(6).uniform(0.1, 0.9, N)
    v, h = np.random.default_rng(9).standard_normal(N), 1e-6  # a directional derivative
    slope = (python_outputs(u + h * v) - python_outputs(u - h * v)) / (2 * h)
    assert abs(lazy[0] @ v - slope) <= 1e-6 * abs(slope)


def test_python_record_outputs_over_several_sweeps(monkeypatch):
    """A lazy adjoint the sweep allocated goes back to the tape after its
    pullback: the next sweep of the same tape starts it from zero."""
    rng = np.random.default_rng(7)
    x = rng.uniform(0.1, 0.9, (60, 50))

    def f(x):
        q = np.matmul(x.T, x)                 # (50, 50): 20 KB, so also 2x wider
        r = np.matmul(x, np.stack([x, x * 2.0])[1].T)  # (60, 60)
        return np.sum(np.tanh(q[:8, :8]) * 0.1, axis=1)[:4] + np.sum(r * r)
    J = sad.jacobian(f, x, mode=sad.Reverse)
    monkeypatch.setattr(traced, "LAZY_MIN", 8)
    assert same_bits(sad.jacobian(f, x, mode=sad.Reverse), J)
    monkeypatch.setattr(traced, "LAZY_MIN", 1 << 62)
    assert same_bits(sad.jacobian(f, x, mode=sad.Reverse), J)
    np.testing.assert_allclose(J, sad.jacobian(f, x, mode=sad.Forward), rtol=1e-12)


def test_a_transposed_fresh_adjoint_gets_no_negative_zeros():
    """matmul stores its operand's adjoint straight into new memory; entries
    that are -0.0 become +0.0, as accumulating into zeros would give."""
    x = np.random.default_rng(8).uniform(0.1, 0.9, (2, 300, 30))

    def f(x, w):
        xc = x * 1.0                                         # lazy
        return np.sum(np.matmul(w, np.swapaxes(xc, 1, 2)) * -1.0)
    dx = sad.autodiff(f, Duplicated(x, np.zeros_like(x)), sad.Const(np.zeros((2, 4, 30))))
    g = sad.gradient(lambda x: f(x, np.zeros((2, 4, 30))), x)[0]
    assert (g == 0).all() and not np.signbit(g).any()
    del dx


@pytest.mark.parametrize("view, whole", [
    (lambda r: r, True), (lambda r: r.reshape(6, 20), True), (lambda r: r.T, True),
    (lambda r: np.swapaxes(r.reshape(2, 3, 20), 0, 2), True), (lambda r: r[1:], False),
    (lambda r: r[:, ::2], False), (lambda r: r[::-1], False),
    (lambda r: np.broadcast_to(r[:1], r.shape), False), (lambda r: r[:, :1], False)])
def test_whole_view(view, whole):
    root = np.arange(120.0).reshape(12, 10)
    assert buffers._whole_view(view(root), root) is whole


# --------------------------------------------------------------------------
# the bounds of the slots (csrc/core/slot.c: windows in a reserved range)

def _limited_tapes(monkeypatch, max_slots, max_bytes=0):
    """Every Tape made from now on bounds its slots so."""
    from shadowad.engines.reverse.tape import Tape
    real = Tape.__init__

    def init(self, *a, **k):
        real(self, *a, **k)
        lib.sad_tape_set_slot_limits(self.c, max_slots, max_bytes)
    monkeypatch.setattr(Tape, "__init__", init)


@pytest.mark.parametrize("max_slots, max_bytes", [(1, 0), (3, 0), (0, 2 * N * 8)])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_past_the_bound_temporaries_get_eager_shadows(name, max_slots, max_bytes, monkeypatch):
    """A tape that may make no more slots gives later temporaries shadows of
    their own: the same gradients, bit for bit, as with no bound."""
    f, nargs = PROGRAMS[name]
    free = _gradients(f, nargs, 3)
    made = []
    monkeypatch.setattr(traced, "new_temporary",
                        lambda tape, z, zs, real=traced.new_temporary:
                        made.append(1) or real(tape, z, zs))
    _limited_tapes(monkeypatch, max_slots, max_bytes)
    bounded = _gradients(f, nargs, 3)
    assert made  # some temporaries went past the bound
    for a, b in zip(free, bounded):
        assert same_bits(a, b)


def test_slots_at_the_bound_are_refused_not_aliased():
    """Slot 2**20 + 1 and beyond (where a shifted slot number wrapped and
    aliased slot 1) get windows of their own; past the bound, a clear status."""
    from shadowad._c import fast
    from shadowad.engines.reverse.tape import Tape
    t = Tape()
    z = np.zeros(2)
    n = (1 << 20) + 2
    lib.sad_tape_set_slot_limits(t.c, n, 0)
    slots = [fast.slot_new(t, z) for _ in range(n)]
    assert slots == list(range(1, n + 1))
    assert fast.slot_new(t, z) == lib.SAD_SLOTS_FULL
    t.free()
    # windows: 64 bytes each (2 doubles rounded up to a cache line), in order
    big = np.zeros(1000)
    t2 = Tape()
    lib.sad_tape_set_slot_limits(t2.c, 0, 3 * 8000)
    assert [fast.slot_new(t2, big) for _ in range(4)] == [1, 2, 3, lib.SAD_SLOTS_FULL]
    t2.free()

