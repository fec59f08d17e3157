"""The C kernels are the fast specialisation of the elementwise partials table
(shadowad.primitives.elementwise): for every primitive and every point of a
grid of edge values, C's partials (``lib.sad_partial``, and the full reverse
and tangent kernels through autodiff) equal the table's bit for bit, NaN
positions included; and the two list the same operations."""
import itertools
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import Const, Duplicated
from shadowad._c import ffi, lib
from shadowad.primitives.elementwise import BY_OP, BY_UFUNC, TABLE, partial_at
from shadowad.engines.rules.elementwise import EW_OPS

inf, nan = np.inf, np.nan
TINY = 5e-324                    # the smallest subnormal
SUBNORMAL = 1e-310
MIN_NORMAL = 2.2250738585072014e-308
EDGES = [0.0, -0.0, inf, -inf, nan, TINY, -TINY, SUBNORMAL, MIN_NORMAL, 1.0, -1.0, 0.5,
         -2.5, 2.0, 1e308, -1e308]
# pairs: every combination, so ties (x == y), signed zeros against each other
# and one or two NaNs all occur
PAIR_EDGES = [0.0, -0.0, inf, -inf, nan, TINY, SUBNORMAL, 1.0, -1.0, -2.5, 2.0, 0.5, 1e308]

# Partials that call a transcendental function of an operand (cos, sin,
# cosh, sinh, pow, log): numpy evaluates it with its own SIMD routines, C with
# the platform's libm, and the two may differ in the last bit at ordinary
# values.  Everything else is IEEE arithmetic (+ - * / sqrt, selects) of the
# same operands and value, and must agree exactly.
LIBM = {"sin", "cos", "sinh", "cosh", "power"}

# Forward mode's tangent kernel computes the value z its partials read (exp,
# expm1, tan, tanh, pow) with C's libm, the primal it returns is numpy's: the
# tangent's bits do not depend on which numpy runs, and may differ from the
# table's at numpy's z in the last bit.
LIBM_VALUE = LIBM | {"exp", "expm1", "tan", "tanh"}
ULPS = 4  # a libm difference of one unit, times a partial's few roundings

OPS = sorted(TABLE)
# the elementwise op codes of the C core, by name (SAD_COPY .. below SAD_N_EW)
C_OPS = {name: code for name, code in ffi.typeof("enum sad_op").relements.items()
         if code < lib.SAD_N_EW}


def grid(entry):
    if entry.arity == 1:
        return [(x,) for x in EDGES]
    return list(itertools.product(PAIR_EDGES, PAIR_EDGES))


def value(entry, args):
    with np.errstate(all="ignore"):
        return float(entry.ufunc(*args))


def bits(v):
    return np.float64(v).view(np.uint64)


def identical(a, b):
    """The same double bit for bit, or both NaN (a NaN's sign and payload
    carry no meaning: IEEE leaves them to the hardware's operand order)."""
    return (a != a and b != b) or bits(a) == bits(b)


def agree(name, a, b, libm=LIBM):
    if identical(a, b):
        return True
    if name not in libm or not (np.isfinite(a) and np.isfinite(b)) or a == 0.0 or b == 0.0:
        return False
    # (expm1' = z + 1 and tanh' = 1 - z*z cancel against 1: z's last bit is
    # one of 1's there)
    return abs(a - b) <= ULPS * np.spacing(max(abs(a), abs(b), 1.0))


def c_partials(entry, args, z):
    y = args[1] if entry.arity == 2 else 0.0
    return [lib.sad_partial(entry.op, k, args[0], y, z) for k in range(entry.arity)]


def table_partials(entry, args, z):
    return [float(partial_at(entry, k, *args, z)) for k in range(entry.arity)]


def test_every_c_op_has_an_entry_and_every_entry_a_c_op():
    c_ops = set(C_OPS.values())
    assert c_ops == set(range(lib.SAD_N_EW)), "op codes below SAD_N_EW without a name"
    assert c_ops == set(BY_OP), (
        f"C ops without a table entry: {sorted(c_ops - set(BY_OP))}; table entries "
        f"without a C op: {sorted(set(BY_OP) - c_ops)}")
    for entry in TABLE.values():
        # the C ops are unary below SAD_ADD, binary from it
        assert entry.arity == (1 if entry.op < lib.SAD_ADD else 2), entry


def test_engines_dispatch_exactly_the_table():
    assert EW_OPS == {u: e.op for u, e in BY_UFUNC.items()}
    for u, entry in BY_UFUNC.items():
        assert u.nin == entry.arity, (u, entry)


@pytest.mark.parametrize("name", OPS)
def test_c_partials_are_the_table(name):
    entry = TABLE[name]
    for args in grid(entry):
        z = value(entry, args)
        pairs = zip(c_partials(entry, args, z), table_partials(entry, args, z))
        for k, (c, t) in enumerate(pairs):
            assert agree(name, c, t), (
                f"{name}{args}: d/d{'xy'[k]} is {c!r} in C, {t!r} in the table")


@pytest.mark.parametrize("name", OPS)
def test_c_partials_are_the_table_at_random_points(name):
    entry = TABLE[name]
    rng = np.random.default_rng(len(name))
    pts = np.concatenate([rng.standard_normal(200) * 3, rng.uniform(-1.2, 1.2, 100),
                          np.exp(rng.uniform(-700, 700, 50))])
    others = rng.permutation(pts)
    for x, y in zip(pts, others):
        args = (float(x),) if entry.arity == 1 else (float(x), float(y))
        z = value(entry, args)
        for c, t in zip(c_partials(entry, args, z), table_partials(entry, args, z)):
            assert agree(name, c, t), f"{name}{args}: {c!r} in C, {t!r} in the table"


def _arrays(entry):
    pts = grid(entry)
    return [np.array([p[k] for p in pts]) for k in range(entry.arity)]


def _want(entry, xs, k):
    """The table's partial of operand k at every grid point, at numpy's value
    of the primitive there (the value the engines record)."""
    with np.errstate(all="ignore"):
        z = entry.ufunc(*xs)
    return np.array([float(partial_at(entry, k, *[x[i] for x in xs], z[i]))
                     for i in range(z.size)])


def _same(name, got, want, libm=LIBM):
    """Equal values at every point (a zero partial may come out of a sum as
    +0.0), NaN where the table has NaN."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if name in libm:
        return all(a == b or agree(name, a, b, libm) for a, b in zip(got, want))
    return np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize("name", OPS)
def test_c_reverse_kernel_is_the_table(name):
    """The reverse sweep of one elementwise record seeded with ones gives each
    operand exactly its partial (1 * p = p), in the general loop (all operands
    active) and with the other operand constant."""
    entry = TABLE[name]
    xs = _arrays(entry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        grads = sad.gradient(lambda *a: np.sum(entry.ufunc(*a)), *[x.copy() for x in xs])
        for k in range(entry.arity):
            assert _same(name, grads[k], _want(entry, xs, k)), (name, k)
            if entry.arity == 2:
                args = [Const(x.copy()) for x in xs]
                args[k] = sad.Active(xs[k].copy())
                g = sad.autodiff(lambda *a: np.sum(entry.ufunc(*a)), *args)[k]
                assert _same(name, g, _want(entry, xs, k)), (name, k, "other operand constant")


@pytest.mark.parametrize("name", OPS)
def test_c_tangent_kernel_is_the_table(name):
    """Forward mode's tangent kernel with a unit tangent on one operand gives
    that operand's partial at every point."""
    entry = TABLE[name]
    xs = _arrays(entry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in range(entry.arity):
            args = [Const(x.copy()) for x in xs]
            args[k] = Duplicated(xs[k].copy(), np.ones(xs[k].size))
            t = sad.autodiff(lambda *a: entry.ufunc(*a), *args, mode=sad.Forward)
            assert _same(name, t, _want(entry, xs, k), LIBM_VALUE), (name, k)


def test_each_entry_states_its_ufuncs_once():
    seen = {}
    for entry in TABLE.values():
        for u in entry.ufuncs:
            assert u not in seen, f"{u} in {seen.get(u)} and {entry}"
            seen[u] = entry
