"""A differentiation's memory goes when the call ends or its tape is dropped,
without the garbage collector: a tape's Buffers, Vectors and Python records
point back to it, so the driver (or the SplitTape owning it) frees it on
every path, and nothing a tape holds points back at its owner.  Every test
runs with the cyclic GC off, where a cycle would keep the memory for good."""
import gc
import os
import tracemalloc
import weakref

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, BatchDuplicated, Const, Duplicated, Forward
from shadowad.engines.forward import dual
from shadowad.engines.nested import box as nested_box
from shadowad.engines.reverse import buffers, scalar, traced
from shadowad.api import vector
from shadowad.engines.reverse.tape import PyRecord, Tape, current_tape


@pytest.fixture(autouse=True)
def no_cyclic_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# the objects a call makes that point at its tape or Context
HOLDERS = (Tape, dual.Context, buffers.Buffer, traced.TArray, scalar.TScalar, dual.FArray,
           dual.FScalar, PyRecord, vector.TracedVector, dual.DualVector, nested_box.Trace,
           nested_box.Box)


def live_holders():
    counts = {}
    for o in gc.get_objects():
        t = type(o)
        if isinstance(o, HOLDERS):
            counts[t.__name__] = counts.get(t.__name__, 0) + 1
    return counts


def _steps(x, c):
    """In-place writes (saved bytes), a Python record (matmul), a scalar."""
    y = np.sin(x) * c
    for _ in range(3):
        y[1:] += 0.5 * y[:-1]
    z = np.outer(y[:4], y[:4]) @ y[:4]
    return np.sum(y * y) + np.sum(z)


def _raises(x, c):
    _steps(x, c)
    raise KeyError("inside f")


def _pullback_raises(x, c):
    y = x * c
    current_tape().record_py(_fail)
    return np.sum(y * y)


def _fail():
    raise KeyError("in a pullback")


def _vector_f(x, v):
    v.push(x[0] * 2.0)
    v.push(x)
    return np.sum(v[:]) + v.pop() * v[0]


def _x(n=64):
    return np.linspace(0.5, 1.5, n)


def _swallow(call):
    try:
        call()
    except (KeyError, TypeError, ValueError):
        pass


SCENARIOS = {
    "autodiff": lambda: sad.autodiff(_steps, Active(_x()), Const(2.0)),
    "restore": lambda: sad.autodiff(_steps, Duplicated(_x(), np.zeros(64)), Const(2.0),
                                    restore=True),
    "batch": lambda: sad.autodiff(_steps, BatchDuplicated(_x(), (np.zeros(64), np.ones(64))),
                                  Const(2.0)),
    "split dropped": lambda: sad.autodiff_split(_steps, Active(_x()), Const(2.0)),
    "split reversed": lambda: sad.autodiff_split(_steps, Active(_x()), Const(2.0))[1].reverse(),
    "split kept value": lambda: _split_keeping_a_traced_value(),
    "raise in f": lambda: _swallow(lambda: sad.autodiff(_raises, Active(_x()), Const(2.0))),
    "raise in split f": lambda: _swallow(
        lambda: sad.autodiff_split(_raises, Active(_x()), Const(2.0))),
    "raise in a pullback": lambda: _swallow(
        lambda: sad.autodiff(_pullback_raises, Active(_x()), Const(2.0))),
    "raise in a split pullback": lambda: _swallow(
        lambda: sad.autodiff_split(_pullback_raises, Active(_x()), Const(2.0))[1].reverse()),
    "refused argument": lambda: _swallow(
        lambda: sad.autodiff(_steps, Const(_x()), Duplicated(1.0, 1.0))),
    "refused result": lambda: _swallow(lambda: sad.autodiff(lambda x: x * 2.0, Active(_x()))),
    "forward": lambda: sad.autodiff(_steps, Duplicated(_x(), np.ones(64)), Const(2.0),
                                    mode=Forward),
    "forward raises": lambda: _swallow(
        lambda: sad.autodiff(_raises, Duplicated(_x(), np.ones(64)), Const(2.0), mode=Forward)),
    "forward refused argument": lambda: _swallow(
        lambda: sad.autodiff(_steps, Duplicated(_x(), np.ones(64)), Duplicated(_x(), 1.0),
                             mode=Forward)),
    "jacobian reverse": lambda: sad.jacobian(lambda x: np.sum(np.sin(x)) * x[:2], _x(5)),
    "jacobian forward": lambda: sad.jacobian(lambda x: np.sin(x) * x, _x(5)),
    "nested": lambda: sad.autodiff(
        lambda x: np.sum(sad.autodiff(lambda y: np.sum(np.sin(y) * y), Active(x))[0]),
        Active(_x(5))),
    "fwddiff": lambda: sad.autodiff(
        lambda x: np.sum(sad.fwddiff(lambda a: np.sin(a) * a)(x)), Active(_x())),
    "vector": lambda: sad.autodiff(_vector_f, Active(_x(3)), Duplicated(sad.Vector(),
                                                                         sad.Vector())),
    "vector split dropped": lambda: sad.autodiff_split(
        _vector_f, Active(_x(3)), Duplicated(sad.Vector(), sad.Vector())),
    "vector forward": lambda: sad.autodiff(
        _vector_f, Duplicated(_x(3), np.ones(3)), Duplicated(sad.Vector(), sad.Vector()),
        mode=Forward),
}

_kept = []


def _split_keeping_a_traced_value():
    """A traced value kept past the call keeps the Tape object, not its memory."""
    def f(x):
        y = x * 2.0
        _kept.append(y)
        return np.sum(y)
    res = sad.autodiff_split(f, Active(_x()))
    return res


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_nothing_outlives_the_call(name):
    run = SCENARIOS[name]
    run()  # first use: rule tables, registrations, pools
    _kept.clear()
    before = live_holders()
    for _ in range(3):
        run()
    _kept.clear()
    assert live_holders() == before


def _writes(n):
    def f(x, c):
        y = x * c
        for _ in range(4):
            y[1:] += 0.5 * y[:-1]  # saves y's bytes each time
        return np.sum(y * y)
    return f, Active(np.linspace(0.5, 1.5, n)), Const(2.0)


@pytest.mark.parametrize("how", ["dropped", "reversed", "value kept"])
def test_split_tape_memory_goes_back_on_del(how):
    """A tape's large save chunks go back to the thread's pool when it is freed
    (shadowad.engines.reverse.tape): dropping the SplitTape returns them at once, every time."""
    f, *args = _writes(1 << 19)  # 4 MiB a save: pool-sized chunks
    sad.set_memory_pool(256 << 20)
    kept = []
    baseline = None
    for _ in range(4):
        _, st = sad.autodiff_split(f, *args)
        ref = weakref.ref(st._tape)
        in_use = sad.memory_pool_bytes()
        assert st.nbytes >= 4 << 20
        if how == "reversed":
            st.reverse()
        if how == "value kept":
            kept.append(st._target)  # the traced result keeps the Tape object
        del st
        after = sad.memory_pool_bytes()
        assert after >= in_use + (4 << 20)  # back in the pool, not held by the tape
        baseline = after if baseline is None else baseline
        assert after == baseline  # reused by the next call, not grown
        assert (ref() is None) == (how != "value kept")
        if how == "value kept":
            assert ref().state == "freed"


def _rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# AddressSanitizer (make test-asan) holds freed memory in quarantine: the
# process grows whatever is freed, so only what Python traces is compared
SANITIZED = "asan" in os.environ.get("LD_PRELOAD", "")


def test_many_calls_keep_memory_flat():
    """200 calls in a row, a tape dropped unreversed in half of them: were a
    tape kept until the collector runs, each would hold its ~1.5 MiB."""
    f, *args = _writes(1 << 15)
    rss = os.path.exists("/proc/self/statm") and not SANITIZED
    tracemalloc.start()
    try:
        for _ in range(5):  # warm up: pools, numpy's caches
            sad.autodiff(f, *args)
            sad.autodiff_split(f, *args)
        traced, start = tracemalloc.get_traced_memory()[0], _rss() if rss else 0
        for k in range(100):
            sad.autodiff(f, *args)
            res = sad.autodiff_split(f, *args)
            if k % 2:
                res[1].reverse()
            del res
        assert tracemalloc.get_traced_memory()[0] - traced < 4 << 20
        if rss:
            assert _rss() - start < 40 << 20
    finally:
        tracemalloc.stop()
