"""tape.nbytes and tape.stats(): every byte the tape keeps alive, and nothing
else.  The measurement is independent of the code it checks: what the
allocators give back when the tape goes (glibc's mallinfo2 for everything
malloc serves -- the C core, numpy's data, large Python objects -- and
tracemalloc for the small Python objects pymalloc serves)."""
import ctypes
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, autodiff, autodiff_split
from shadowad.engines.reverse import accounting
from shadowad.engines.reverse.tape import Tape, current_tape

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks", "gradbench"))
from modules import gmm  # noqa: E402


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]


def _libc_mallinfo():
    try:
        f = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None
    f.restype = _Mallinfo2
    return f


_MALLINFO = _libc_mallinfo()
# Under AddressSanitizer (make test-asan preloads it) malloc is ASan's, which
# glibc's mallinfo2 does not see: the measurements would read nothing.
_UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")
needs_glibc = pytest.mark.skipif(_MALLINFO is None or _UNDER_ASAN,
                                 reason="measures with glibc's mallinfo2 (not under ASan)")
PYMALLOC_MAX = 512  # requests up to this many bytes are pymalloc's, not malloc's


def _malloc_used():
    m = _MALLINFO()
    return m.uordblks + m.hblkhd


def _small_python():
    snap = tracemalloc.take_snapshot()
    total = sum(t.size for t in snap.traces if t.domain == 0 and t.size <= PYMALLOC_MAX)
    del snap
    return total


def measure(scenario):
    """Run ``scenario(probe)`` twice, the same way: it calls probe(name) at
    points of its life.  Returns {name: bytes in use} (malloc's, then the
    small Python objects', each measured in its own run so that neither
    measurement disturbs the other)."""
    marks = {}

    def by_malloc(name):
        gc.collect()
        marks[name] = _malloc_used()
    scenario(by_malloc)
    small = {}

    def by_tracemalloc(name):
        gc.collect()
        small[name] = _small_python()
    tracemalloc.start()
    try:
        scenario(by_tracemalloc)
    finally:
        tracemalloc.stop()
    return {k: marks[k] + small[k] for k in marks}


def close(reported, measured, rel=0.03, slack=6 << 10):
    return abs(reported - measured) <= rel * measured + slack


# --------------------------------------------------------------------------
# programs, one kind of kept memory each (and all of them together)

N = 4000


def gmm_like(alphas, means, x):
    """A GMM objective's shape: matmul, broadcasts, exp/log, reductions."""
    xc = x[None, :, :] - means[:, None, :]                  # (K, n, d)
    q = np.matmul(xc, np.eye(x.shape[1]) * 1.5)               # a Python record
    main = alphas[:, None] - 0.5 * np.sum(q * q, axis=2)      # (K, n)
    mx = np.max(main, axis=0)
    return np.sum(np.log(np.sum(np.exp(main - mx), axis=0)) + mx)


def gmm_args():
    rng = np.random.default_rng(0)
    return (Active(rng.standard_normal(5)), Active(rng.random((5, 2))),
            Const(rng.standard_normal((1000, 2))))


def gradbench_gmm_args():
    """GradBench's gmm module (d = 2, k = 5, n = 1000), its own function."""
    rng = np.random.default_rng(2)
    d, k, n = 2, 5, 1000
    alpha, mu, q = rng.normal(size=k), rng.uniform(size=(k, d)), rng.normal(size=(k, d))
    l, x = rng.normal(size=(k, d * (d - 1) // 2)), rng.normal(size=(n, d))
    return (Active(alpha), Active(mu), Active(q), Active(l), Const(x), Const(gmm.tri_index(d)),
            Const(2), Const(1.3))


def stepper(u, c):
    """In-place steps whose saves the tape holds."""
    for _ in range(6):
        u[1:-1] += c * (u[2:] - 2.0 * u[1:-1] + u[:-2])
        u *= 0.999
    return np.sum(u * u)


def stepper_args():
    return Duplicated(np.linspace(0.0, 1.0, N), np.zeros(N)), Const(0.2)


M = np.arange(16.0).reshape(4, 4) / 16


def lazy(x):
    """Temporaries above the lazy-shadow threshold: their shadows are the
    sweep's to allocate (the matrix product's, which its Python pullback
    reads; the fused elementwise sweep needs no memory for the others)."""
    q = x.reshape(-1, 4) @ M
    t = np.exp(q) * q
    return np.sum(np.sin(t) + t * t)


def lazy_args():
    return (Duplicated(np.linspace(-1.0, 1.0, 3 * N), np.zeros(3 * N)),)


def fancy(x, y, idx):
    y[idx] = x[idx[::-1]] * 2.0       # a Python record that saves what it overwrites
    return np.sum(y[idx] * x[:len(idx)])


def fancy_args():
    idx = np.arange(0, N, 2)
    return (Duplicated(np.linspace(0.0, 1.0, N), np.zeros(N)),
            Duplicated(np.ones(N), np.zeros(N)), Const(idx))


def vectors(x):
    v = sad.Vector()                   # made inside f: its C memory is the tape's
    for k in range(5):
        v.push(x * float(k + 1))
    s = 0.0
    for _ in range(2):
        s = s + v.pop()
    return s + np.sum(v[:]) + x[0]


def vector_args():
    return (Duplicated(np.linspace(0.0, 1.0, N), np.zeros(N)),)


W = np.random.default_rng(1).standard_normal((60, 60))


def plain_operands(x):
    """Plain arrays the records read: the tape holds snapshots of them."""
    scratch = np.ones(60)
    s = 0.0
    for k in range(4):
        scratch[:] = k + 1.0          # new values each step: a new snapshot each step
        y = W @ x                     # W, unchanged: one snapshot for all steps
        s = s + np.sum(y * scratch)
    return s


def plain_args():
    return (Duplicated(np.linspace(0.0, 1.0, 60), np.zeros(60)),)


def everything(x, y, idx):
    return fancy(x, y, idx) + lazy(np.concatenate([x, x, x])) + stepper(y, 0.2)


PROGRAMS = {
    "gmm": (gmm_like, gmm_args),
    "gradbench_gmm": (gmm.log_posterior, gradbench_gmm_args),
    "stepper": (stepper, stepper_args),
    "lazy": (lazy, lazy_args),
    "fancy": (fancy, fancy_args),
    "vector": (vectors, vector_args),
    "snapshots": (plain_operands, plain_args),
    "everything": (everything, fancy_args),
}


def held_while_recorded(f, make_args):
    """(tape.stats() after recording, bytes freed when the tape goes)."""
    seen = []

    def scenario(probe):
        args = make_args()
        _, tape = autodiff_split(f, *args)
        seen.append(tape.stats())
        probe("recorded")
        del tape
        probe("gone")
    marks = measure(scenario)
    return seen[0], marks["recorded"] - marks["gone"]


@needs_glibc
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_nbytes_is_what_the_tape_holds(name):
    f, make_args = PROGRAMS[name]
    stats, measured = held_while_recorded(f, make_args)
    assert close(stats["nbytes"], measured), (stats, measured)


@needs_glibc
@pytest.mark.parametrize("name", ["lazy", "everything"])
def test_peak_is_what_the_tape_held_at_the_end_of_the_sweep(name, monkeypatch):
    """The sweep allocates lazy shadows: the peak counts them."""
    f, make_args = PROGRAMS[name]
    free = Tape.free
    seen = []

    def scenario(probe):
        def measured_free(tape):
            if tape.state != "freed":
                probe("swept")
            free(tape)
        monkeypatch.setattr(Tape, "free", measured_free)
        args = make_args()
        _, tape = autodiff_split(f, *args)
        recorded = tape.stats()
        tape.reverse()
        monkeypatch.setattr(Tape, "free", free)
        seen.append((recorded, tape.stats()))
        del tape
        probe("gone")
    marks = measure(scenario)
    recorded, after = seen[0]
    at_peak = marks["swept"] - marks["gone"]
    assert after["peak_nbytes"] > recorded["nbytes"]   # the lazy shadows
    # the C part as the sweep ends, the Python part as stats() measured it
    # before the sweep (what the sweep adds in Python, such as Active
    # gradients, is not walked again: Tape.final_stats)
    assert after["peak_nbytes"] <= at_peak * 1.02, (after, at_peak)
    assert after["peak_nbytes"] >= at_peak * 0.9, (after, at_peak)


# --------------------------------------------------------------------------
# each kind of memory: left out, the totals above would fail; here each shows
# where it is counted

def _stats(f, args):
    _, tape = autodiff_split(f, *args)
    out = tape.stats()
    tape.reverse()
    return out


def test_saved_bytes_are_the_overwritten_bytes():
    n1, n2 = 100, 1100

    def f(x, y):
        y *= x
    s1 = _stats(f, (Duplicated(np.ones(n1), np.zeros(n1)), Duplicated(np.ones(n1), np.zeros(n1))))
    s2 = _stats(f, (Duplicated(np.ones(n2), np.zeros(n2)), Duplicated(np.ones(n2), np.zeros(n2))))
    assert s2["saved_bytes"] - s1["saved_bytes"] == 8 * (n2 - n1)


def test_python_records_saves_count_as_saved():
    s = _stats(fancy, fancy_args())
    assert s["python_records"] >= 1
    assert s["saved_bytes"] >= 8 * (N // 2)      # y[idx]'s old values


def test_kept_operands_count():
    """x * x reads x again in the sweep: a temporary it multiplies is kept."""
    def f(x):
        t = np.sin(x)
        return np.sum(t * t)
    n = 2000
    s = _stats(f, (Duplicated(np.ones(n), np.zeros(n)),))
    assert s["kept_bytes"] >= 8 * n               # sin(x), read by the square's sweep


def test_arguments_memory_is_not_counted():
    """f's arguments are the caller's: the bytes do not grow with them."""
    def f(x, c):
        return x[0] * c[0]
    small = _stats(f, (Duplicated(np.ones(10), np.zeros(10)), Const(np.ones(10))))
    large = _stats(f, (Duplicated(np.ones(100000), np.zeros(100000)), Const(np.ones(100000))))
    assert large["nbytes"] == small["nbytes"]


def test_active_gradients_and_promoted_shadows_count():
    """An Active array's gradient and a Const array's hidden shadow are the tape's."""
    n = 5000

    def f(a, c):
        c[0] = a[0]                      # promotes c: a zero shadow of c's size
        return np.sum(a * 2.0)
    s = _stats(f, (Active(np.ones(n)), Const(np.zeros(n))))
    assert s["kept_bytes"] >= 2 * 8 * n


def test_snapshots_count_once_per_content():
    s = _stats(plain_operands, plain_args())
    # W once (60 x 60), the scratch once per value (4 x 60)
    assert s["kept_bytes"] >= W.nbytes + 4 * 60 * 8


def test_views_of_one_buffer_count_once():
    """Many records reading views of one temporary cost its memory once."""
    n = 4000

    def f(x, k):
        t = np.sin(x)
        s = 0.0
        for _ in range(k):
            s = s + np.sum(t[1:] * t[:-1])
        return s
    args = lambda: (Duplicated(np.ones(n), np.zeros(n)),)
    one = _stats(lambda x: f(x, 1), args())
    ten = _stats(lambda x: f(x, 10), args())
    # nine more products: their temporaries (n each, read by the sums), not t again
    assert ten["kept_bytes"] - one["kept_bytes"] < 9 * 8 * n + 9 * 8 * n


def test_lazy_shadows_are_allocated_by_the_sweep():
    _, tape = autodiff_split(lazy, *lazy_args())
    before = tape.stats()
    tape.reverse()
    after = tape.stats()
    assert before["shadow_bytes"] == 0            # lazy: nothing while recording
    assert after["peak_nbytes"] - before["nbytes"] >= 8 * 3 * N


def test_vector_memory_counts():
    _, tape = autodiff_split(vectors, *vector_args())
    s = tape.stats()
    tape.reverse()
    assert s["kept_bytes"] >= 5 * 8 * N           # the Vector's contents


# --------------------------------------------------------------------------
# stats: keys, types, consistency, before and after the sweep

KEYS = ("records", "python_records", "record_bytes", "saved_bytes", "shadow_bytes",
        "kept_bytes", "nbytes", "peak_nbytes", "advances", "taped_steps", "peak_snapshots")


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_stats_keys_types_and_sums(name):
    f, make_args = PROGRAMS[name]
    _, tape = autodiff_split(f, *make_args())
    s = tape.stats()
    assert set(KEYS) <= set(s)
    assert all(type(s[k]) is int and s[k] >= 0 for k in KEYS)
    assert s["nbytes"] == (s["record_bytes"] + s["saved_bytes"] + s["shadow_bytes"]
                           + s["kept_bytes"])
    assert s["records"] == len(tape) and s["nbytes"] == tape.nbytes
    assert 0 < s["python_records"] <= s["records"] or name in ("stepper", "lazy", "vector")
    assert s["peak_nbytes"] >= s["nbytes"]
    assert (s["advances"], s["taped_steps"], s["peak_snapshots"]) == (0, 0, 0)
    tape.reverse()
    after = tape.stats()
    assert set(KEYS) <= set(after)
    assert after["records"] == s["records"] == len(tape)
    assert after["python_records"] == s["python_records"]
    assert after["nbytes"] == tape.nbytes == 0
    assert all(after[k] == 0 for k in ("record_bytes", "saved_bytes", "shadow_bytes",
                                       "kept_bytes"))
    assert after["peak_nbytes"] >= s["nbytes"]


def test_empty_tape_holds_only_its_c_memory():
    _, tape = autodiff_split(lambda x: None, Duplicated(np.ones(3), np.zeros(3)))
    s = tape.stats()
    assert s["records"] == 0 and s["saved_bytes"] == 0 and s["shadow_bytes"] == 0
    assert s["nbytes"] == s["record_bytes"] + s["kept_bytes"] > 0
    tape.reverse()


def test_nested_differentiation_inside_a_split_tape():
    """A nested reverse call inside f records on the outer tape like any
    operation: its memory counts there."""
    def inner(x):
        return np.sum(x * x)

    def f(x):
        g = np.zeros_like(x)
        sad.autodiff(inner, Duplicated(x, g))
        return np.sum(g * x)
    x = np.linspace(0.0, 1.0, 500)
    _, tape = autodiff_split(f, Duplicated(x, np.zeros(500)))
    s = tape.stats()
    assert s["records"] > 0 and s["nbytes"] == tape.nbytes
    tape.reverse()
    assert tape.stats()["peak_nbytes"] >= s["nbytes"]


def test_forward_mode_has_no_tape():
    """Forward mode propagates tangents as it goes: there is nothing to count,
    and a forward call inside a recorded f leaves the outer tape's count
    honest."""
    def g(x):
        return np.sum(np.sin(x))

    def f(x):
        t = autodiff(g, Duplicated(sad.primal(x).copy(), np.ones(100)), mode=sad.Forward)
        return x[0] * t
    _, tape = autodiff_split(f, Duplicated(np.ones(100), np.zeros(100)))
    assert tape.stats()["records"] == len(tape) == 2   # the load and the product
    tape.reverse()


@needs_glibc
def test_memory_stays_flat_over_many_calls():
    f, make_args = PROGRAMS["everything"]
    sizes = []

    def call():
        _, tape = autodiff_split(f, *make_args())
        sizes.append(tape.nbytes)
        tape.reverse()
        sizes.append(tape.stats()["peak_nbytes"])
        autodiff(f, *make_args())
    for _ in range(5):
        call()
    gc.collect()
    before = _malloc_used()
    for _ in range(60):
        call()
    gc.collect()
    assert len(set(sizes[::2])) == len(set(sizes[1::2])) == 1  # the same program, the same
    assert _malloc_used() - before < 16 << 10, _malloc_used() - before


def test_stats_cost_nothing_while_recording(monkeypatch):
    """Nothing is walked while recording: a tape with many Python records
    records as fast with accounting as without (the walk runs on demand)."""
    calls = []
    real = accounting.held_bytes

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(accounting, "held_bytes", counting)
    autodiff(gmm_like, *gmm_args())
    assert calls == []
    _, tape = autodiff_split(gmm_like, *gmm_args())
    tape.stats()
    assert calls, "the check above would pass with the walk patched out of reach"
    tape.reverse()


# --------------------------------------------------------------------------
# the running count: each look walks only what is new, equals a recount from
# scratch after every kind of record, and its high-water mark is exact

LOGPDF = sad.fwddiff(lambda x, d: -np.log(x) - d / x)
M12 = np.arange(12.0).reshape(3, 4) / 12


def many_kinds(look, x, y, c, idx, a):
    """One statement per kind of record or held memory, a look after each."""
    t = np.sin(x)                          # a C record; t is a temporary
    look()
    u = t * t                              # reads t again: t is kept
    look()
    y += 0.5 * x                           # in place: the overwritten bytes saved
    look()
    y[3] = x[1] * c[0]                     # setindex of a scalar product
    look()
    y[idx] = x[idx[::-1]] * 2.0            # a Python record that saves what it overwrites
    look()
    q = np.reshape(x[:12], (4, 3)) @ M12   # BLAS: a Python record, M12 a snapshot
    look()
    scratch = np.ones(x.size)
    for k in range(3):
        scratch[:] = k + 1.0               # a plain array given new values: a snapshot each
        u = u + x * scratch
        look()
    v = sad.Vector()                       # C memory of the tape's, which grows
    v.push(x[:50])
    look()
    v.push(x[5])
    v.push(x[:200])
    look()
    s = v.pop() + np.sum(v[:])
    look()
    r = 0.0
    for i in range(30):                    # scalar records: pairs in C
        r = r * 0.5 + x[i] * x[i]
    look()
    big = np.exp(np.concatenate([x] * 20))  # temporaries with lazy shadows,
    big = np.reshape(big, (-1, 4)) @ M     # which the sweep allocates (and gives
    look()                                 # the matmul's pullback)
    c[0] = x[0]                            # promotes c: a hidden shadow
    look()
    sad.axpy(2.0, x, y)
    look()
    w = np.where(x > 0.5, np.clip(x, 0.1, 0.9), np.maximum(x, 0.2))
    look()
    lp = LOGPDF(x[:40] + 1.5, 0.5)         # mixed mode: one record
    look()
    g = np.sum(a * x[:a.size])             # an Active array's gradient
    look()
    del t                                  # f drops a temporary the tape read
    look()
    return (np.sum(u) + np.sum(q) + s + r + np.sum(np.sin(big)) + np.sum(y) + np.sum(w)
            + np.sum(lp) + g)


def many_kinds_args():
    n = 600
    return (Duplicated(np.linspace(0.1, 1.0, n), np.zeros(n)),
            Duplicated(np.linspace(1.0, 2.0, n), np.zeros(n)), Const(np.full(n, 0.5)),
            Const(np.arange(0, n, 3)), Active(np.linspace(0.0, 1.0, 40)))


def _looking(trace, check=True):
    def look():
        tape = current_tape()
        s = tape.stats()
        if check:  # the running count is the count from scratch
            r = tape.recount()
            assert s["nbytes"] == r["nbytes"], (len(trace), s, r)
            assert (s["saved_bytes"] + s["shadow_bytes"] + s["kept_bytes"]
                    == r["saved_bytes"] + r["shadow_bytes"] + r["kept_bytes"])
        trace.append(s["nbytes"])
    return look


@pytest.mark.parametrize("look_inside", [True, False], ids=["looks", "no looks"])
def test_running_count_is_a_recount_and_its_peak_the_high_water_mark(look_inside,
                                                                      monkeypatch):
    trace, at_free, free = [], [], Tape.free

    def measured_free(tape):
        if tape.state != "freed":
            at_free.append(tape.recount()["nbytes"])
        free(tape)
    monkeypatch.setattr(Tape, "free", measured_free)
    look = _looking(trace) if look_inside else (lambda: None)
    _, tape = autodiff_split(lambda *a: many_kinds(look, *a), *many_kinds_args())
    recorded = tape.stats()
    tape.reverse()
    after = tape.stats()
    assert len(trace) == (20 if look_inside else 0)
    assert recorded["nbytes"] >= max(trace, default=0)
    # nothing is released before the tape is freed: the count only grows, also
    # where f dropped a temporary (the last look), and the sweep's lazy shadows
    # make the end of the sweep the high-water mark, which the peak is exactly
    assert trace == sorted(trace)
    assert at_free[0] > recorded["nbytes"]
    assert after["peak_nbytes"] == max(trace + [recorded["nbytes"]] + at_free) == at_free[0]


def test_every_program_counts_as_a_recount():
    for name, (f, make_args) in sorted(PROGRAMS.items()):
        _, tape = autodiff_split(f, *make_args())
        s = tape.stats()
        assert s["nbytes"] == tape._tape.recount()["nbytes"], name
        tape.reverse()


def test_looks_after_every_record_walk_each_object_once(monkeypatch):
    """The looks of one tape together walk what it holds once: k Python
    records with a look after each cost O(k), not O(k**2)."""
    sizes = []
    real = sys.getsizeof

    class Counting:
        @staticmethod
        def getsizeof(o):
            sizes.append(1)
            return real(o)
    monkeypatch.setattr(accounting, "sys", Counting)

    def f(x, k):
        look = _looking([], check=False)
        s = 0.0
        for i in range(k):
            s = s + np.sum(x[[i, i + 1]] * x[i])   # a gather: a Python record
            look()
        return s

    def walked(k):
        sizes.clear()
        _, tape = autodiff_split(lambda x: f(x, k), Duplicated(np.ones(400), np.zeros(400)))
        n = len(sizes)
        tape.reverse()
        return n
    small, large = walked(40), walked(160)
    assert large < 5 * small, (small, large)   # quadratic would be 16x


def test_a_look_finds_a_vector_grown_after_it_was_walked():
    def f(x):
        v = sad.Vector()
        v.push(x[:10])
        current_tape().stats()
        for _ in range(50):
            v.push(x)
        return np.sum(v[:])
    _, tape = autodiff_split(f, Duplicated(np.ones(1000), np.zeros(1000)))
    s = tape.stats()
    assert s["nbytes"] == tape._tape.recount()["nbytes"]
    assert s["kept_bytes"] >= 50 * 8 * 1000
    tape.reverse()
