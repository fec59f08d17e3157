"""Tape budgets (DESIGN.md section 4, issue 17): ``tape_budget=`` raises
sad.TapeBudgetError before the tape holds more than its budget, with every
primal restored bit for bit and the shadows untouched; a budget the program
fits in changes nothing.  Also the tape's progress report and memory warning.

The programs each grow the tape a different way: C records with saves and
kept temporaries (in-place elementwise steps), C records only (traced
scalars), Python records (matrix products, fancy indexing), promoted Const
memory, lazy shadows that only the reverse sweep allocates."""
import gc
import tracemalloc
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import (Active, BatchDuplicated, Const, Duplicated, Reverse, ReverseWithPrimal,
                      TapeBudgetError)
from shadowad.engines.reverse import watch
from shadowad.engines.reverse.tape import fused_sweeps


# --------------------------------------------------------------------------
# programs: (f, a function making fresh annotated arguments)

M = 2000


def fisher(u):
    """Fisher-KPP steps: nonlinear, in place; saves and kept temporaries."""
    for _ in range(40):
        u[1:-1] += 0.1 * (u[2:] - 2 * u[1:-1] + u[:-2]) + 0.01 * u[1:-1] * (1 - u[1:-1])
    return np.sum(u * u)


def fisher_args():
    return [Duplicated(np.sin(np.linspace(0, 3, M)), np.linspace(-1, 1, M))]


def scalars(x, y):
    """Traced scalars: every byte in C (pairs and records)."""
    for i in range(1, 3000):
        y[i] = x[i] * x[i] + 0.5 * y[i - 1]
    return y[2999] * 1.0


def scalars_args():
    return [Active(np.linspace(0, 1, 3000)), Duplicated(np.zeros(3000), np.full(3000, 0.25))]


def products(a, x):
    """Matrix products: Python records."""
    for _ in range(30):
        x = np.tanh(a @ x)
    return np.sum(x)


def products_args():
    rng = np.random.default_rng(1)
    return [Active(rng.standard_normal((60, 60)) / 8), Active(rng.standard_normal((60, 40)))]


def gather(x, y):
    """Fancy indexing: gathers and scatters, Python records."""
    idx = np.arange(0, x.size, 3)
    for _ in range(30):
        y[idx] += x[idx] * y[idx]
    return np.sum(y * y)


def gather_args():
    return [Active(np.linspace(0, 0.1, 900)), Duplicated(np.linspace(1, 2, 900), np.ones(900))]


def promoted(x, c):
    """A Const array written with active values: its memory is promoted."""
    for _ in range(30):
        c[:] = c * 0.5 + x * c
    return np.sum(c * c)


def promoted_args():
    return [Duplicated(np.linspace(0, 1, 500), np.zeros(500)), Const(np.linspace(1, 2, 500))]


PROGRAMS = {"c_records": (fisher, fisher_args), "scalars": (scalars, scalars_args),
            "matmul": (products, products_args), "fancy_indexing": (gather, gather_args),
            "promoted_const": (promoted, promoted_args)}


def memory(args):
    """Every primal and shadow array of annotated args (Active: the value;
    a Vector's are checked by the tests that pass one)."""
    out = []
    for a in args:
        if isinstance(a.val, sad.Vector):
            continue
        out.append(a.val)
        if isinstance(a, BatchDuplicated):
            out.extend(a.dvals)
        elif isinstance(a, Duplicated):
            out.append(a.dval)
    return out


def bits(arrays):
    return [a.tobytes() for a in arrays]


def need(f, make):
    """(peak_nbytes, gradients, f's value) of f without a budget (split mode,
    to read the tape's statistics after the sweep)."""
    value, tape = sad.autodiff_split(f, *make())
    grads = tape.reverse()
    return tape.stats()["peak_nbytes"], grads, value


def same(a, b):
    if a is None or b is None:
        return a is b
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


# --------------------------------------------------------------------------
# exceeding: the error, everything restored

@pytest.mark.parametrize("name", PROGRAMS)
@pytest.mark.parametrize("mode", [Reverse, ReverseWithPrimal])
@pytest.mark.parametrize("restore", [False, True])
def test_exceeding_raises_with_everything_restored(name, mode, restore):
    f, make = PROGRAMS[name]
    peak = need(f, make)[0]
    args = make()
    before = bits(memory(args))
    with pytest.raises(TapeBudgetError) as err:
        sad.autodiff(f, *args, mode=mode, restore=restore, tape_budget=peak // 2)
    assert isinstance(err.value, MemoryError)
    assert bits(memory(args)) == before  # primals and shadows, bit for bit
    assert err.value.budget == peak // 2 and err.value.nbytes > peak // 2


@pytest.mark.parametrize("name", PROGRAMS)
def test_split_recording_over_budget(name):
    f, make = PROGRAMS[name]
    peak = need(f, make)[0]
    args = make()
    before = bits(memory(args))
    with pytest.raises(TapeBudgetError):
        sad.autodiff_split(f, *args, tape_budget=peak // 3)
    assert bits(memory(args)) == before


@pytest.mark.parametrize("name", PROGRAMS)
def test_budget_the_program_fits_in_changes_nothing(name):
    """A budget of exactly the peak an unbounded run holds: the same
    gradients, value and final memory, bit for bit, and the tape never held
    more than its budget."""
    f, make = PROGRAMS[name]
    peak, grads, value = need(f, make)
    free_args, args = make(), make()
    free = sad.autodiff(f, *free_args, mode=ReverseWithPrimal)
    got = sad.autodiff(f, *args, mode=ReverseWithPrimal, tape_budget=peak)
    assert all(same(g, h) for g, h in zip(free[0], got[0])) and same(free[1], got[1])
    assert bits(memory(args)) == bits(memory(free_args))
    assert all(same(g, h) for g, h in zip(grads, got[0])) and same(value, got[1])
    value, tape = sad.autodiff_split(f, *make(), tape_budget=peak)
    tape.reverse()
    assert tape.stats()["peak_nbytes"] <= peak


@pytest.mark.parametrize("name", ["c_records", "scalars", "matmul"])
def test_a_call_that_succeeds_held_at_most_its_budget(name):
    """Whatever the budget, a call either raises or its tape's peak (counted
    from scratch after the sweep) stayed within it."""
    f, make = PROGRAMS[name]
    peak = need(f, make)[0]
    outcomes = set()
    for budget in np.linspace(0.5 * peak, 1.2 * peak, 15).astype(int):
        try:
            _, tape = sad.autodiff_split(f, *make(), tape_budget=int(budget))
            tape.reverse()
        except TapeBudgetError as e:
            assert e.nbytes > budget
            outcomes.add("raised")
            continue
        assert tape.stats()["peak_nbytes"] <= budget
        outcomes.add("fit")
    assert outcomes == {"raised", "fit"}


def squares(u):
    """In-place products of an argument with itself: each step saves it in C
    and keeps nothing in Python but views of it."""
    for _ in range(40):
        np.multiply(u, u, out=u)
        u *= 0.999
    return np.sum(u)


def squares_args():
    return [Duplicated(np.linspace(0.5, 1.0, 50_000), np.ones(50_000))]


@pytest.mark.parametrize("f, make", [(scalars, scalars_args), (squares, squares_args)])
def test_the_core_refuses_before_allocating(f, make):
    """Traced scalars' records and in-place saves are C memory: the error is a
    refusal by the C core (in the fast paths), which says what the tape held
    and what the record needed."""
    peak = need(f, make)[0]
    with pytest.raises(TapeBudgetError) as err:
        sad.autodiff(f, *make(), tape_budget=peak // 2)
    e = err.value
    assert e.held is not None and e.held <= e.budget < e.nbytes
    assert "needed" in str(e) and "more on a tape holding" in str(e)


def test_big_inplace_loop_stops_at_the_budget():
    """An in-place nonlinear loop on one large array: each step saves the
    array on the C save stack and keeps the factor it multiplied by; the
    budget stops it as the tape reaches it, not when f returns."""
    def f(u):
        for _ in range(50):
            u *= 0.5 + 0.5 * u
        return np.sum(u)

    def make():
        return [Duplicated(np.linspace(0.1, 0.9, 100_000), np.ones(100_000))]
    peak = need(f, make)[0]
    args = make()
    before = bits(memory(args))
    with pytest.raises(TapeBudgetError) as err:
        sad.autodiff(f, *args, tape_budget=peak // 4)
    assert bits(memory(args)) == before
    e = err.value
    # at most the factor the failed step kept on top of the budget
    assert (e.held if e.held is not None else e.nbytes) <= e.budget + args[0].val.nbytes + (64 << 10)
    assert e.records < 0.4 * len_of(f, make)


# --------------------------------------------------------------------------
# the reverse sweep: lazy shadows count too

def lazy(x, a, y):
    """Temporaries of 64 KiB have lazy shadows, allocated in the sweep; the
    sweep changes y's shadow (its last record) before it needs them."""
    t = x
    for _ in range(4):
        t = np.sin(t) * t
    q = t.reshape(-1, 64) @ a  # its pullback reads the adjoint of t: memory in the sweep
    out = np.sum(np.cos(q) * q)
    y *= 2.0
    return out


def lazy_args():
    return [Duplicated(np.linspace(0, 1, 8192), np.full(8192, 0.5)),
            Active(np.linspace(-1, 1, 64 * 64).reshape(64, 64)),
            Duplicated(np.linspace(1, 2, 50), np.linspace(3, 4, 50))]


def sweep_budgets(f, make, run, n=12, measured=None):
    """Budgets from what recording f holds to its sweep's peak (measured on
    the arguments ``measured()`` makes, by default make's): each call
    ``run(args, budget)`` raises TapeBudgetError with every primal and
    shadow as before the call, or fits; and some raise in the sweep."""
    value, tape = sad.autodiff_split(f, *(measured or make)())
    recorded = tape.nbytes
    tape.reverse()
    peak = tape.stats()["peak_nbytes"]
    assert peak > recorded  # the program does allocate in the sweep
    in_sweep = 0
    for budget in np.linspace(recorded, peak, n).astype(int):
        args = make()
        before = bits(memory(args))
        try:
            run(args, int(budget))
        except TapeBudgetError as e:
            assert bits(memory(args)) == before
            in_sweep += e.where is None and "reverse sweep" in e.operation
    assert in_sweep > 0


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("split", [False, True], ids=["autodiff", "split"])
def test_budget_covers_the_sweep(fused, split):
    """Budgets between what recording holds and the sweep's peak: where the
    sweep would pass the budget it raises, the primals are put back as they
    were before the call and the shadows are untouched; where it fits, the
    tape never held more than its budget."""
    def run(args, budget):
        if split:
            _, tape = sad.autodiff_split(lazy, *args, tape_budget=budget)
            tape.reverse()
            assert tape.stats()["peak_nbytes"] <= budget
        else:
            sad.autodiff(lazy, *args, tape_budget=budget)
    with fused_sweeps(fused):
        sweep_budgets(lazy, lazy_args, run)


def test_batch_duplicated_over_budget_in_the_sweep():
    """Several seeds swept over one tape: a sweep that exceeds the budget
    leaves every shadow, of every lane, untouched."""
    def make():
        x = np.linspace(0, 1, 8192)
        return [BatchDuplicated(x, (np.ones(8192), np.full(8192, 2.0))),
                Active(np.linspace(-1, 1, 64 * 64).reshape(64, 64)),
                BatchDuplicated(np.linspace(1, 2, 50), (np.linspace(3, 4, 50), np.ones(50)))]

    def one_lane():
        args = make()
        return [Duplicated(args[0].val, args[0].dvals[0]), args[1],
                Duplicated(args[2].val, args[2].dvals[0])]
    sweep_budgets(lazy, make, lambda args, budget: sad.autodiff(lazy, *args, tape_budget=budget),
                  measured=one_lane)


def test_vector_shadow_untouched_when_the_sweep_exceeds():
    """A Duplicated Vector's shadow is put back too when the sweep fails."""
    def f(v, x):
        s = lazy(x, np.eye(64), np.ones(3))
        for k in range(8):  # swept first: the shadow changes before the sweep fails
            v.push(x[k] * x[k])
        v[0] = v[1] * v[2]
        return s + v.pop()

    def make():
        v, dv = sad.Vector(np.arange(3.0)), sad.Vector(np.array([1.0, 2.0, 3.0]))
        return [Duplicated(v, dv), Duplicated(np.linspace(0, 1, 8192), np.full(8192, 0.5))]

    def run(args, budget):
        vectors = (args[0].val[:].tobytes(), args[0].dval[:].tobytes())
        try:
            sad.autodiff(f, *args, tape_budget=budget)
        except TapeBudgetError:
            assert (args[0].val[:].tobytes(), args[0].dval[:].tobytes()) == vectors
            raise
    sweep_budgets(f, make, run)


# --------------------------------------------------------------------------
# nested calls, forward mode

def test_nested_call_records_on_the_outer_budget():
    """A gradient taken inside f records on the enclosing tape: the enclosing
    budget bounds it; a budget given to the inner call is accepted (checked)
    and bounds nothing there."""
    def inner(x):
        return np.sum(np.sin(x) * x)

    def f(x):
        g = x
        for _ in range(15):
            (g,) = sad.autodiff(inner, Active(g), tape_budget=1 << 40)
        return np.sum(g * g)

    def make():
        return [Active(np.linspace(0, 1, 400))]
    peak = need(f, make)[0]
    args = make()
    before = bits(memory(args))
    with pytest.raises(TapeBudgetError):
        sad.autodiff(f, *args, tape_budget=peak // 2)
    assert bits(memory(args)) == before
    assert same(sad.autodiff(f, *make(), tape_budget=peak)[0], need(f, make)[1][0])

    def bad(x):
        sad.autodiff(inner, Active(x), tape_budget=-1)
        return np.sum(x)
    with pytest.raises(ValueError, match="tape_budget"):
        sad.autodiff(bad, *make())


def test_forward_mode_accepts_a_budget():
    """Forward mode records no tape: a budget, checked, bounds nothing."""
    x, dx = np.linspace(0, 1, 10), np.ones(10)
    t = sad.autodiff(lambda x: np.sum(x * x), Duplicated(x, dx), mode=sad.Forward, tape_budget=1)
    assert t == pytest.approx(np.sum(2 * x))
    with pytest.raises(TypeError, match="tape_budget"):
        sad.autodiff(lambda x: np.sum(x), Duplicated(x, dx), mode=sad.Forward, tape_budget=1.0)


# --------------------------------------------------------------------------
# the message

def test_message_says_what_was_needed_how_far_f_got_and_what_to_do():
    f, make = PROGRAMS["c_records"]
    peak = need(f, make)[0]
    with pytest.raises(TapeBudgetError) as err:
        sad.autodiff(f, *make(), tape_budget=peak // 2)
    e, text = err.value, str(err.value)
    assert f"tape_budget={peak // 2:,} bytes" in text
    assert f"{e.nbytes:,} bytes" in text
    assert f"{e.records:,} records so far" in text and 0 < e.records < len_of(f, make)
    file, line, function, source = e.where
    assert file == __file__ and function == "fisher"
    assert source == "u[1:-1] += 0.1 * (u[2:] - 2 * u[1:-1] + u[:-2]) + 0.01 * u[1:-1] * (1 - u[1:-1])"
    assert f"{__file__}:{line} (in fisher): {source}" in text
    assert e.operation.startswith("np.") and e.operation in text
    assert "sad.checkpoint_loop(" in text and "sad.checkpoint(" in text


def len_of(f, make):
    value, tape = sad.autodiff_split(f, *make())
    n = len(tape)
    tape.reverse()
    return n


def test_message_names_python_records_and_the_sweep():
    f, make = PROGRAMS["matmul"]
    peak = need(f, make)[0]
    with pytest.raises(TapeBudgetError) as err:
        sad.autodiff(f, *make(), tape_budget=peak // 2)
    assert err.value.where[2] == "products" and "a @ x" in err.value.where[3]
    value, tape = sad.autodiff_split(lazy, *lazy_args())
    recorded = tape.nbytes
    tape.reverse()
    budget = (recorded + tape.stats()["peak_nbytes"]) // 2
    with pytest.raises(TapeBudgetError) as err:
        sad.autodiff(lazy, *lazy_args(), tape_budget=budget)
    assert err.value.where is None and "reverse sweep" in err.value.operation


# --------------------------------------------------------------------------
# the argument

@pytest.mark.parametrize("bad, error", [(0, ValueError), (-5, ValueError), (2 ** 63, ValueError),
                                        (1.5, TypeError), (1e9, TypeError), ("100", TypeError),
                                        (True, TypeError), (np.float64(1e6), TypeError),
                                        ([100], TypeError)])
@pytest.mark.parametrize("driver", ["autodiff", "autodiff_split", "gradient"])
def test_budget_argument_is_checked(bad, error, driver):
    x = np.linspace(0, 1, 5)
    call = {"autodiff": lambda: sad.autodiff(np.sum, Active(x), tape_budget=bad),
            "autodiff_split": lambda: sad.autodiff_split(np.sum, Active(x), tape_budget=bad),
            "gradient": lambda: sad.gradient(np.sum, x, tape_budget=bad)}[driver]
    with pytest.raises(error, match=f"sad.{driver}.*tape_budget"):
        call()


@pytest.mark.parametrize("ok", [None, 10 ** 9, np.int64(10 ** 9), np.uint32(10 ** 9), 2 ** 63 - 1])
def test_budget_argument_accepts_ints_and_none(ok):
    x = np.linspace(0, 1, 5)
    (g,) = sad.gradient(lambda x: np.sum(x * x), x, tape_budget=ok)
    assert np.array_equal(g, 2 * x)


# --------------------------------------------------------------------------
# failures leak nothing

def test_repeated_failures_leak_nothing():
    f, make = PROGRAMS["c_records"]
    budget = need(f, make)[0] // 2
    args = make()

    def fail():
        try:
            sad.autodiff(f, *args, tape_budget=budget)
        except TapeBudgetError:
            pass
    for _ in range(3):
        fail()
    gc.collect()
    objects = len(gc.get_objects())
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            fail()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 64 << 10
    assert len(gc.get_objects()) - objects < 50


# --------------------------------------------------------------------------
# progress reports and the memory warning

@pytest.fixture
def settings():
    """Put the global watch settings back after the test."""
    saved = dict(watch._settings)
    yield
    watch._settings.update(saved)


def test_reports_are_off_by_default(settings, capsys):
    f, make = PROGRAMS["c_records"]
    sad.autodiff(f, *make())
    assert capsys.readouterr().err == ""


def test_report_to_a_callback(settings):
    f, make = PROGRAMS["c_records"]
    peak = need(f, make)[0]
    every = peak // 8
    seen = []
    sad.set_tape_report(seen.append, every_bytes=every)
    sad.autodiff(f, *make())
    assert len(seen) >= 4
    sizes = [s["nbytes"] for s in seen]
    assert sizes == sorted(sizes) and len({n // every for n in sizes}) == len(sizes)
    assert all(s["records"] > 0 and s["where"].startswith(f"{__file__}:") for s in seen)
    sad.set_tape_report(None)
    seen.clear()
    sad.autodiff(f, *make())
    assert seen == []


def test_report_to_stderr(settings, capsys):
    f, make = PROGRAMS["c_records"]
    peak = need(f, make)[0]
    sad.set_tape_report(True, every_bytes=peak // 4)
    sad.autodiff(f, *make())
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("shadowad: the tape holds") and __file__ in line for line in lines)


def test_report_settings_are_checked(settings):
    with pytest.raises(TypeError, match="report"):
        sad.set_tape_report("yes")
    with pytest.raises(ValueError, match="every_bytes"):
        sad.set_tape_report(True, every_bytes=0)
    with pytest.raises(TypeError, match="memory_warning"):
        sad.set_tape_report(None, memory_warning="no")


def test_memory_warning_once_past_half_of_available_memory(settings, monkeypatch):
    f, make = PROGRAMS["c_records"]
    peak = need(f, make)[0]
    # a machine with little memory left: the tape passes half of what it
    # could have (its bytes plus what is available) at about 2/3 of its peak
    monkeypatch.setattr(watch, "available_memory", lambda: peak // 3)
    monkeypatch.setattr(watch, "WARN_FROM", peak // 10)
    with pytest.warns(sad.TapeMemoryWarning) as caught:
        sad.autodiff(f, *make())
    assert len(caught) == 1
    assert "sad.checkpoint_loop(" in str(caught[0].message)
    assert caught[0].filename == __file__  # the warning points at f's line
    with warnings.catch_warnings():
        warnings.simplefilter("error", sad.TapeMemoryWarning)
        sad.set_tape_report(None, memory_warning=False)
        sad.autodiff(f, *make())
        sad.set_tape_report(None, memory_warning=True)
        monkeypatch.setattr(watch, "available_memory", lambda: None)  # not Linux
        sad.autodiff(f, *make())
        monkeypatch.setattr(watch, "available_memory", lambda: 100 * peak)
        sad.autodiff(f, *make())
    assert issubclass(sad.TapeMemoryWarning, RuntimeWarning)


def test_available_memory_reads_meminfo():
    avail = watch.available_memory()
    try:
        with open("/proc/meminfo") as fh:
            has = any(line.startswith("MemAvailable:") for line in fh)
    except OSError:
        has = False
    assert (avail is not None) == has
    if has:
        assert avail > 0
