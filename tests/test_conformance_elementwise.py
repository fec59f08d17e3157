"""Cross-engine conformance of the elementwise primitives, generated from the
partials table (shadowad.primitives.elementwise): for every primitive, every
engine gives the table's derivative at the same edge inputs -- 0, -0.0,
±inf, NaN, subnormals, ties of max/min, the kinks of abs, sqrt/log at 0, pow
with a negative base.  The engines: the C reverse sweep (and autodiff_split),
forward mode one direction at a time and as BatchDuplicated lanes,
sad.jacobian both ways, the nested engine's first derivative (autodiff,
forward mode and jacobian inside a function an outer autodiff differentiates,
in reverse or forward mode), sad.fwddiff, and traced scalars (Python-float scalar loops
in both modes, and ``x[i]`` elements).

The table's partial is the reference: one elementwise operation seeded with
ones gives each operand exactly its partial (1 * p = p), so the engines are
compared with it value for value, NaN positions included.  The exception is
a libm function's last bit (see tests/test_elementwise_table.py): numpy's
SIMD routines and the platform's libm may differ there."""
import itertools
import operator
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, BatchDuplicated, Const, Duplicated
from shadowad.primitives.elementwise import SELECTS, TABLE, clip_sources, partial_at, where_sources

from test_elementwise_table import LIBM, agree
from test_engine_agreement import nested

inf, nan = np.inf, np.nan
TINY, SUBNORMAL = 5e-324, 1e-310
EDGES = [0.0, -0.0, inf, -inf, nan, TINY, -SUBNORMAL, 1.0, -1.0, 0.5, -2.5, 4.0, 1e308]
PAIR_EDGES = [0.0, -0.0, inf, -inf, nan, TINY, 1.0, -1.0, 0.5, -2.5, 2.0]
PAIRS = list(itertools.product(PAIR_EDGES, PAIR_EDGES))  # ties, signed zeros, NaNs, ...

# Python's operator spellings, which traced scalars and arrays take their own
# fast paths for
OPERATORS = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
             "divide": operator.truediv, "power": operator.pow, "negative": operator.neg,
             "positive": operator.pos, "absolute": abs}

# every ufunc of every entry (np.fabs is absolute, np.float_power is power),
# and the operators
SPELLINGS = [(name, u.__name__) for name in sorted(TABLE) for u in TABLE[name].ufuncs] + [
    (name, "operator") for name in sorted(OPERATORS)]


def spelled(name, how):
    if how == "operator":
        return OPERATORS[name]
    return next(u for u in TABLE[name].ufuncs if u.__name__ == how)


def operands(entry):
    pts = [(x,) for x in EDGES] if entry.arity == 1 else PAIRS
    return [np.array([p[k] for p in pts]) for k in range(entry.arity)]


def table(entry, xs):
    """The table's partials at numpy's value, one array per operand."""
    with np.errstate(all="ignore"):
        z = entry.ufunc(*xs)
    return [np.array([float(partial_at(entry, k, *[x[i] for x in xs], z[i]))
                      for i in range(z.size)]) for k in range(entry.arity)]


def same(name, got, want):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape:
        return False
    if name in LIBM:
        return all(a == b or agree(name, a, b) for a, b in zip(got, want))
    return np.array_equal(got, want, equal_nan=True)


# --------------------------------------------------------------------------
# the engines: each gives [d/d operand k at every point, for each k]

def summed(fn):
    return lambda *a: np.sum(fn(*a))


def reverse(fn, xs):
    return list(sad.gradient(summed(fn), *[x.copy() for x in xs]))


def reverse_with_constants(fn, xs):
    """Each operand active alone, the others constant."""
    out = []
    for k in range(len(xs)):
        args = [Const(x.copy()) for x in xs]
        args[k] = Active(xs[k].copy())
        out.append(sad.autodiff(summed(fn), *args)[k])
    return out


def split(fn, xs):
    _, tape = sad.autodiff_split(summed(fn), *[Active(x.copy()) for x in xs])
    return list(tape.reverse(seed=1.0))


def forward(fn, xs):
    """One direction at a time: a unit tangent on every entry of operand k
    (the operation is elementwise, so this is the diagonal)."""
    out = []
    for k in range(len(xs)):
        args = [Const(x.copy()) for x in xs]
        args[k] = Duplicated(xs[k].copy(), np.ones(xs[k].size))
        out.append(sad.autodiff(fn, *args, mode=sad.Forward))
    return out


def forward_both(fn, xs):
    """Every operand active, one direction at a time."""
    out = []
    for k in range(len(xs)):
        args = [Duplicated(x.copy(), np.full(x.size, 1.0 if j == k else 0.0))
                for j, x in enumerate(xs)]
        out.append(sad.autodiff(fn, *args, mode=sad.Forward))
    return out


def batch(fn, xs):
    """All operands' directions as lanes of one BatchDuplicated call."""
    n = len(xs)
    args = [BatchDuplicated(x.copy(), tuple(np.full(x.size, 1.0 if j == k else 0.0)
                                            for k in range(n)))
            for j, x in enumerate(xs)]
    return list(sad.autodiff(fn, *args, mode=sad.Forward))


def jacobian(mode):
    def run(fn, xs):
        out = []
        for k in range(len(xs)):
            consts = [x.copy() for x in xs]

            def g(v, *rest):
                args = list(rest)
                args.insert(k, v)
                return fn(*args)
            J = sad.jacobian(g, xs[k].copy(), *consts[:k], *consts[k + 1:], mode=mode)
            off = J - np.diag(np.diag(J))
            assert not np.any(off[~np.isnan(off)]), "an elementwise jacobian off its diagonal"
            out.append(np.diag(J))
        return out
    return run


def fwddiff(fn, xs):
    h = sad.fwddiff(fn)
    return list(sad.gradient(summed(h), *[x.copy() for x in xs]))


def scalars(fn, xs):
    """Python-float scalar loops: TScalar in reverse mode, FScalar forward."""
    n = xs[0].size
    rev = [np.empty(n) for _ in xs]
    fwd = [np.empty(n) for _ in xs]
    for i in range(n):
        a = [float(x[i]) for x in xs]
        g = sad.gradient(fn, *a)
        for k in range(len(xs)):
            rev[k][i] = g[k]
            fwd[k][i] = sad.autodiff(fn, *[Duplicated(v, 1.0 if j == k else 0.0)
                                           for j, v in enumerate(a)], mode=sad.Forward)
    return rev, fwd


def elements(fn, xs):
    """``x[i]`` elements of traced arrays in a Python loop."""
    def f(*arrays):
        out = np.zeros_like(arrays[0])
        for i in range(arrays[0].shape[0]):
            out[i] = fn(*[a[i] for a in arrays])
        return np.sum(out)
    return list(sad.gradient(f, *[x.copy() for x in xs]))


def nested_in_forward(run):
    """run() while an outer forward-mode differentiation is running."""
    box = {}

    def outer(s):
        box["v"] = run()
        return s * 2.0
    sad.autodiff(outer, Duplicated(1.0, 1.0), mode=sad.Forward)
    return box["v"]


ENGINES = {
    "reverse": reverse,
    "reverse, others constant": reverse_with_constants,
    "autodiff_split": split,
    "forward": forward,
    "forward, all active": forward_both,
    "batch": batch,
    "jacobian(Forward)": jacobian(sad.Forward),
    "jacobian(Reverse)": jacobian(sad.Reverse),
    "fwddiff": fwddiff,
    "nested reverse": lambda fn, xs: nested(lambda: reverse(fn, xs)),
    "nested forward": lambda fn, xs: nested(lambda: forward(fn, xs)),
    "nested batch": lambda fn, xs: nested(lambda: batch(fn, xs)),
    "nested jacobian": lambda fn, xs: nested(lambda: jacobian(None)(fn, xs)),
    "nested reverse, outer forward": lambda fn, xs: nested_in_forward(lambda: reverse(fn, xs)),
    "elements": elements,
}


def check(name, engine, got, want, xs):
    for k, (g, w) in enumerate(zip(got, want)):
        if not same(name, g, w):
            bad = [i for i in range(w.size) if not same(name, [g[i]], [w[i]])]
            pts = [tuple(float(x[i]) for x in xs) for i in bad[:4]]
            raise AssertionError(
                f"{name} by {engine}: d/d operand {k} at {pts} is "
                f"{[float(g[i]) for i in bad[:4]]}, the table says "
                f"{[float(w[i]) for i in bad[:4]]}")


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("name,how", SPELLINGS)
def test_engine_gives_the_table(name, how, engine):
    entry = TABLE[name]
    fn = spelled(name, how)
    xs = operands(entry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's, on the primal values
        want = table(entry, xs)
        got = ENGINES[engine](fn, xs)
    check(name, engine, got, want, xs)


@pytest.mark.parametrize("name,how", SPELLINGS)
def test_scalar_loops_give_the_table(name, how):
    entry = TABLE[name]
    fn = spelled(name, how)
    xs = operands(entry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = table(entry, xs)
        rev, fwd = scalars(fn, xs)
        nested_rev = nested(lambda: scalars(fn, xs)[0])
    check(name, "scalar reverse", rev, want, xs)
    check(name, "scalar forward", fwd, want, xs)
    check(name, "nested scalar reverse", nested_rev, want, xs)


def test_every_entry_states_its_convention_or_has_none_to_state():
    """The entries with a kink or an edge that the textbook formula leaves
    open carry their convention (docs/conventions.md is written from these)."""
    for name in ("absolute", "sqrt", "log", "power", "arctan2", "hypot", "maximum",
                 "minimum", "fmax", "fmin", "divide", "reciprocal"):
        assert TABLE[name].convention, name
    assert set(SELECTS) == {"where", "clip"}


# --------------------------------------------------------------------------
# the selects: where and clip (kinks written with them)

WHERE_X = np.array([0.0, -0.0, 1.0, -1.0, inf, -inf, nan, TINY, 4.0])


def where_kink(x):
    return np.where(x >= 0.0, np.sqrt(x), -x)


def where_engines(f, x):
    return {
        "reverse": sad.gradient(lambda v: np.sum(f(v)), x.copy())[0],
        "forward": sad.autodiff(f, Duplicated(x.copy(), np.ones(x.size)), mode=sad.Forward),
        "batch": sad.autodiff(f, BatchDuplicated(x.copy(), (np.ones(x.size),)),
                              mode=sad.Forward)[0],
        "jacobian(Forward)": np.diag(sad.jacobian(f, x.copy(), mode=sad.Forward)),
        "jacobian(Reverse)": np.diag(sad.jacobian(f, x.copy(), mode=sad.Reverse)),
        "nested reverse": nested(lambda: sad.gradient(lambda v: np.sum(f(v)), x.copy())[0]),
        "nested forward": nested(lambda: sad.autodiff(f, Duplicated(x.copy(), np.ones(x.size)),
                                                      mode=sad.Forward)),
        "fwddiff": sad.gradient(lambda v: np.sum(sad.fwddiff(f)(v)), x.copy())[0],
    }


def test_where_takes_the_chosen_branch_and_nothing_from_the_other():
    """np.where(x >= 0, sqrt(x), -x): the derivative of the branch chosen at
    the point (sqrt'(0) = inf at 0, sqrt'(-0.0) = -inf: -0.0 >= 0), and the
    unchosen branch's NaN or inf never reaches it."""
    x = WHERE_X
    from_a, _ = where_sources(x >= 0.0)
    with np.errstate(all="ignore"):
        want = np.where(from_a, partial_at(TABLE["sqrt"], 0, x, np.sqrt(x)), -1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for engine, got in where_engines(where_kink, x).items():
            assert np.array_equal(got, want, equal_nan=True), (engine, got, want)


@pytest.mark.parametrize("lo,hi", [(0.0, 1.0), (-1.0, -1.0), (1.0, 0.0), (None, 0.5),
                                   (-0.0, None), (-inf, inf), (nan, 1.0), (0.0, nan),
                                   (nan, nan)])
def test_clip_passes_the_boundaries_to_its_operand(lo, hi):
    x = np.array([-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 2.0, inf, -inf, nan])
    from_lo, from_hi = clip_sources(x, lo, hi)
    want = np.where(np.logical_or(from_lo, from_hi), 0.0, 1.0)

    def f(v):
        return np.clip(v, lo, hi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = {
            "reverse": sad.gradient(lambda v: np.sum(f(v)), x.copy())[0],
            "forward": sad.autodiff(f, Duplicated(x.copy(), np.ones(x.size)), mode=sad.Forward),
            "jacobian(Reverse)": np.diag(sad.jacobian(f, x.copy(), mode=sad.Reverse)),
            "fwddiff": sad.gradient(lambda v: np.sum(sad.fwddiff(f)(v)), x.copy())[0],
            "nested reverse": nested(lambda: sad.gradient(lambda v: np.sum(f(v)), x.copy())[0]),
            "nested forward": nested(lambda: sad.autodiff(
                f, Duplicated(x.copy(), np.ones(x.size)), mode=sad.Forward)),
        }
    for engine, g in got.items():
        assert np.array_equal(g, want), (engine, lo, hi, g, want)


def test_clip_bounds_take_what_they_clip():
    """The bounds' derivatives, where they are arrays: lo where a < lo, hi
    where maximum(a, lo) > hi, in every engine."""
    a = np.array([-1.0, 0.0, 0.5, 2.0, 3.0, 0.5])
    lo = np.array([0.0, 0.0, 0.0, 0.0, 4.0, 1.0])
    hi = np.array([1.0, 1.0, 1.0, 1.0, 2.0, 0.0])
    from_lo, from_hi = clip_sources(a, lo, hi)
    want = (np.where(np.logical_or(from_lo, from_hi), 0.0, 1.0), np.where(from_lo, 1.0, 0.0),
            np.where(from_hi, 1.0, 0.0))

    def f(a, lo, hi):
        return np.sum(np.clip(a, lo, hi))
    args = (a.copy(), lo.copy(), hi.copy())
    for engine, got in (("reverse", sad.gradient(f, *args)),
                        ("nested reverse", nested(lambda: sad.gradient(f, *args)))):
        for g, w in zip(got, want):
            assert np.array_equal(g, w), (engine, got, want)


# --------------------------------------------------------------------------
# the two divergences issue #14 measured between the engines

ALL_MODES = {
    "reverse": lambda f, x: sad.gradient(f, x.copy())[0],
    "forward": lambda f, x: np.array([
        sad.autodiff(f, Duplicated(x.copy(), np.eye(x.size)[j]), mode=sad.Forward)
        for j in range(x.size)]),
    "batch": lambda f, x: np.array(sad.autodiff(f, BatchDuplicated(x.copy(), tuple(np.eye(x.size))),
                                                mode=sad.Forward)),
    "jacobian(Forward)": lambda f, x: sad.jacobian(f, x.copy(), mode=sad.Forward),
    "jacobian(Reverse)": lambda f, x: sad.jacobian(f, x.copy(), mode=sad.Reverse),
}


def every_engine(f, x):
    got = {}
    for name, run in ALL_MODES.items():
        got[name] = run(f, x)
        got["nested " + name] = nested(lambda: run(f, x))
    return got


def test_a_zero_adjoint_through_sqrt_at_zero_contributes_nothing():
    """np.sqrt(x)[0] at x = [4, 0]: sqrt'(0) = inf meets the zero adjoint of
    the unused entry; the gradient is [0.25, 0], not NaN, in every engine."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning either
        for engine, g in every_engine(lambda x: np.sqrt(x)[0], np.array([4.0, 0.0])).items():
            assert np.array_equal(g, [0.25, 0.0]), (engine, g)


@pytest.mark.parametrize("x,want", [([1.0, nan, 3.0], [0.0, 1.0, 0.0]),
                                    ([3.0, 1.0, 3.0], [0.5, 0.0, 0.5]),
                                    ([nan, 2.0, nan], [0.5, 0.0, 0.5])])
def test_max_gives_its_derivative_to_the_nan(x, want):
    """np.max([1, nan, 3]) is the NaN, which takes the derivative ([0, 1, 0]):
    no NaN gradient and no RuntimeWarning, in every engine; ties split."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for engine, g in every_engine(np.max, np.array(x)).items():
            assert np.array_equal(g, want), (engine, g)
        for engine, g in every_engine(lambda v: -np.min(-v), np.array(x)).items():
            assert np.array_equal(g, want), ("min", engine, g)


# --------------------------------------------------------------------------
# second derivatives: the nested engine differentiates the table's formulas,
# and the table's formulas run on the other engines' traced values too

REGULAR = [0.3, 0.7, -0.4, 0.9]  # inside every entry's domain (arcsin, log of |x|, ...)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_second_derivatives_are_the_derivatives_of_the_partials(name):
    """d/dx of the gradient (the nested engine over the C engine, both
    jacobian modes) equals the derivative of the table's partial computed by
    forward and reverse mode running the partial's own formula."""
    entry = TABLE[name]
    x = np.array(REGULAR)
    ys = [np.array([1.3, 0.6, 2.0, 0.8])][:entry.arity - 1]

    def grad(v, *c):
        return sad.gradient(lambda u: np.sum(entry.ufunc(u, *c)), v)[0]

    def partial(v, *c):
        return partial_at(entry, 0, v, *c, entry.ufunc(v, *c))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sqrt(-0.4) and the like
        want = np.diag(sad.jacobian(partial, x.copy(), *ys, mode=sad.Forward))
        by_reverse = np.diag(sad.jacobian(partial, x.copy(), *ys, mode=sad.Reverse))
        assert np.allclose(by_reverse, want, rtol=1e-13, atol=0.0, equal_nan=True)
        for mode in (sad.Forward, sad.Reverse):
            H = sad.jacobian(grad, x.copy(), *ys, mode=mode)
            assert np.allclose(np.diag(H), want, rtol=1e-12, atol=1e-300, equal_nan=True), (
                mode, np.diag(H), want)
            off = H - np.diag(np.diag(H))
            assert not np.any(off[~np.isnan(off)])


BINARY = sorted(name for name, e in TABLE.items() if e.arity == 2)


@pytest.mark.parametrize("name", BINARY)
def test_number_operands_give_the_table(name):
    """A Python number as one operand: the C record keeps it as an immediate
    constant, and x * k, x / k (and k * x) become linear records whose
    coefficient may be 0, inf or NaN -- still the table's partial, in
    reverse and forward mode and through traced scalars."""
    entry = TABLE[name]
    fn = entry.ufunc
    x = np.array(PAIR_EDGES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in PAIR_EDGES:
            for right in (True, False):
                def f(v):
                    return fn(v, k) if right else fn(k, v)
                xs = [x, np.full(x.size, k)] if right else [np.full(x.size, k), x]
                want = table(entry, xs)[0 if right else 1]
                got = {
                    "reverse": sad.gradient(lambda v: np.sum(f(v)), x.copy())[0],
                    "forward": sad.autodiff(f, Duplicated(x.copy(), np.ones(x.size)),
                                            mode=sad.Forward),
                    "scalars": np.array([sad.gradient(f, float(v))[0] for v in x]),
                    "nested reverse": nested(
                        lambda: sad.gradient(lambda v: np.sum(f(v)), x.copy())[0]),
                }
                for engine, g in got.items():
                    assert same(name, g, want), (name, k, right, engine, g, want)
