"""The C kernels are the fast specialisation of the elementwise partials table
(shadowad.primitives.elementwise): for every primitive and every point of a
grid of edge values, C's partials (``lib.sad_partial``, and the full reverse
and tangent kernels through autodiff) equal the table's bit for bit, NaN
positions included; and the two list the same operations."""
import importlib.util
import itertools
import pathlib
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import Const, Duplicated
from shadowad._c import ffi, lib
from shadowad.primitives.elementwise import BY_OP, BY_UFUNC, TABLE, operands_read, partial_at
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
LIBM = {"sin", "cos", "sinh", "cosh", "power", "logaddexp", "logaddexp2"}

ULPS = 4  # a libm difference of one unit, times a partial's few roundings

OPS = sorted(name for name, e in TABLE.items() if e.op is not None)  # with a C kernel
# the elementwise op codes of the C core, by name (SAD_COPY .. below SAD_N_EW)
C_OPS = dict(ffi.typeof("enum sad_ew_op").relements)
# every other record kind
OTHER_KINDS = dict(ffi.typeof("enum sad_op").relements)


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
    for entry in BY_OP.values():
        assert C_OPS[entry.c_name] == entry.op, entry
    for entry in TABLE.values():  # the others have no C name (their generic rule runs)
        assert (entry.op is None) == (entry.c_name is None), entry
    assert min(OTHER_KINDS.values()) >= lib.SAD_N_EW, "an elementwise op code is a record kind's"


def _generator():
    path = pathlib.Path(__file__).resolve().parent.parent / "tools" / "ew_ops.py"
    spec = importlib.util.spec_from_file_location("ew_ops_generator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_c_facts_are_the_tables():
    """csrc/core/ew_ops.h and csrc/ops/ew_ops.c are checked in; they must be
    exactly what tools/ew_ops.py makes of the table now."""
    for path, text in _generator().generated().items():
        assert path.read_text() == text, (
            f"{path.name} is stale: the partials table changed; run python tools/ew_ops.py")


def test_the_generator_refuses_op_codes_c_cannot_take():
    gen = _generator()
    bad = dict(gen.load_table(), extra=type("E", (), {"op": 40, "name": "x", "c_name": "SAD_X"})())
    with pytest.raises(ValueError, match="op codes"):
        gen.header(bad)


@pytest.mark.parametrize("partial, arity, reads", [
    (lambda x, z: 1.0, 1, 0),
    (lambda x, z: z, 1, 4),                        # returned as it is
    (lambda x, z: np.cos(x), 1, 1),
    (lambda x, y, z: np.where(x > 0, y, 0.0), 2, 3),
    (lambda x, y, z: z * np.log(x), 2, 5),
])
def test_operands_read_sees_every_read(partial, arity, reads):
    others = [lambda *a: 1.0] * (arity - 1)
    assert operands_read((partial, *others)) == reads


def test_operands_read_refuses_a_partial_that_is_not_numpy():
    import math
    with pytest.raises(TypeError, match="numpy ufuncs and functions only"):
        operands_read((lambda x, z: math.cos(x),))


@pytest.mark.parametrize("name", OPS)
def test_c_partials_read_only_what_the_table_says(name):
    """The tape keeps only the values entry.reads names (C's
    sad_ew_partials_read is generated from it): C's partials must not change
    when any other value is garbage."""
    entry = TABLE[name]
    garbage = [12345.678, -0.0, nan]
    for args in grid(entry)[::3]:
        z = value(entry, args)
        want = c_partials(entry, args, z)
        x, y = args[0], (args[1] if entry.arity == 2 else 0.0)
        for g in garbage:
            xx = x if entry.reads & 1 else g
            yy = y if entry.reads & 2 else g
            zz = z if entry.reads & 4 else g
            got = [lib.sad_partial(entry.op, k, xx, yy, zz) for k in range(entry.arity)]
            assert all(identical(a, b) for a, b in zip(got, want)), (name, args, g)


def test_engines_dispatch_exactly_the_table():
    assert EW_OPS == {u: e.op for u, e in BY_UFUNC.items() if e.op is not None}
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
@pytest.mark.parametrize("out", [False, True], ids=["result", "out="])
def test_c_tangent_kernel_is_the_table(name, out):
    """Forward mode's tangent kernel with a unit tangent on one operand gives
    that operand's partial at every point, at numpy's value (the one reverse
    mode reads), also when the result goes to an ``out=`` argument."""
    entry = TABLE[name]
    xs = _arrays(entry)

    def f(*a):
        if not out:
            return entry.ufunc(*a)
        r = np.zeros_like(a[0])
        entry.ufunc(*a, out=r)
        return r
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in range(entry.arity):
            args = [Const(x.copy()) for x in xs]
            args[k] = Duplicated(xs[k].copy(), np.ones(xs[k].size))
            t = sad.autodiff(f, *args, mode=sad.Forward)
            assert _same(name, t, _want(entry, xs, k)), (name, k)


def _written(ufunc, how):
    """ufunc as f would call it: its result (how = "result"), written into
    a buffer (out=, the record saves what it overwrites), or into its own
    first operand's memory (out= an operand)."""
    def f(*a):
        if how == "result":
            return ufunc(*a)
        if how == "out":
            r = a[0] * 0.0
            ufunc(*a, out=r)
            return r
        first = a[0] * 1.0
        ufunc(first, *a[1:], out=first)
        return first
    return f


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("how", ["result", "out", "in place"])
def test_forward_and_reverse_partials_agree_bit_for_bit(name, how):
    """At ordinary points, where numpy's libm and C's may round a value
    differently (tanh on this machine), forward mode's unit tangents and
    reverse mode's gradients are the same partials at numpy's value z, also
    where the reverse sweep finds z among the bytes it saved."""
    entry = TABLE[name]
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal(2000) * 2 for _ in range(entry.arity)]
    if name in ("arcsin", "arccos"):
        xs = [np.tanh(x) for x in xs]
    f = _written(entry.ufunc, how)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        grads = sad.gradient(lambda *a: np.sum(f(*a)), *[x.copy() for x in xs])
        for k in range(entry.arity):
            args = [Const(x.copy()) for x in xs]
            args[k] = Duplicated(xs[k].copy(), np.ones(xs[k].size))
            t = sad.autodiff(lambda *a: entry.ufunc(*a), *args, mode=sad.Forward)
            assert np.array_equal(t, grads[k], equal_nan=True), (
                name, k, int(np.sum(t != grads[k])))


@pytest.mark.parametrize("name", OPS)
def test_forward_primal_is_numpys_bit_for_bit(name):
    """ForwardWithPrimal's value is numpy's at every edge point, NaN bits
    included, whichever operands carry tangents, and the same in reverse mode."""
    entry = TABLE[name]
    xs = _arrays(entry)
    with np.errstate(all="ignore"):
        want = entry.ufunc(*xs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in range(entry.arity):
            args = [Const(x.copy()) for x in xs]
            args[k] = Duplicated(xs[k].copy(), np.ones(xs[k].size))
            _, primal = sad.autodiff(lambda *a: entry.ufunc(*a), *args,
                                     mode=sad.ForwardWithPrimal)
            assert np.array_equal(primal.view(np.uint64), want.view(np.uint64)), (name, k)
        _, value = sad.autodiff(lambda *a: np.sum(entry.ufunc(*a)),
                                *[sad.Active(x.copy()) for x in xs], mode=sad.ReverseWithPrimal)
        assert identical(value, np.sum(want)), name


def test_each_entry_states_its_ufuncs_once():
    seen = {}
    for entry in TABLE.values():
        for u in entry.ufuncs:
            assert u not in seen, f"{u} in {seen.get(u)} and {entry}"
            seen[u] = entry
