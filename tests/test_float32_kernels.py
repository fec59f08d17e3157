"""The float32 elementwise kernels and the generic rule beside them: whichever
computes a float32 elementwise record (the C kernels' float instance, or the
generic numpy rule that mixed calls take), its partials are the elementwise
table's computed in float32.

* Reverse and tangent kernels = the table, at float32 edge values: every
  spelling of every entry with a C kernel, its result, out= and in-place
  forms, all operands active or one constant, seeds and tangents that
  include zeros against infinite partials (the zero-factor convention), and
  batch lanes.  Equal values at every point, NaN where the table has NaN
  (a zero adjoint may come out of a sum as +0.0, so the sign of a zero is
  not compared); partials that call a transcendental function of an
  operand (LIBM) within a few float32 ulps.
* Forward and reverse agree bit for bit on the same program.
* The layouts a C walker handles otherwise than a contiguous array give
  what contiguous copies give, bit for bit: strides, negative strides,
  transposes, Fortran order, more than four dimensions after merging,
  broadcasting, 0-d and empty arrays, out= into an operand or into a view
  overlapping an input, chains of (lazy-shadowed) temporaries.
* Restore, accumulate-once and failure atomicity bit for bit, NaN payloads
  and -0.0 included; numpy's promotions with float64 operands; memory flat
  over repeated calls.
* A marker that float32 elementwise ufuncs run the C kernels' float32
  instance, not the generic rule; the generic rule itself (which mixed
  dtypes and np.float_power still take) is held to the same table.

tests/test_elementwise_table.py is the float64 counterpart;
tests/test_float32_conformance.py compares float32 gradients with float64
ones to a tolerance, this file with the table bit for bit."""
import itertools
import tracemalloc

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, BatchDuplicated, Const, Duplicated
from shadowad.engines.rules import elementwise as ew_rules
from shadowad.primitives.elementwise import TABLE, partial_at

# The float32 C kernels and the generic rule, which a float32 call takes when
# the kernels cannot (mixed dtypes, np.float_power): both must be the table.
PATHS = ["kernels", "generic rule"]


def take(path, monkeypatch):
    if path == "generic rule":
        monkeypatch.setattr(ew_rules, "float32_kernels", lambda *args: False)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
inf, nan = np.inf, np.nan
TINY = 1e-45                  # float32's smallest subnormal
SUBNORMAL = 1e-40
MIN_NORMAL = float(np.finfo(np.float32).tiny)
EDGES = [0.0, -0.0, inf, -inf, nan, TINY, -TINY, SUBNORMAL, MIN_NORMAL, 1.0, -1.0, 0.5, -2.5,
         2.0, 3e38, -3e38]
# pairs: every combination, so ties, signed zeros against each other and one or two NaNs occur
PAIR_EDGES = [0.0, -0.0, inf, -inf, nan, TINY, SUBNORMAL, 1.0, -1.0, -2.5, 2.0, 0.5, 3e38]

# Partials that call cos, sin, cosh, sinh, pow, log, exp or exp2 of an
# operand: numpy's float32 loops and a C kernel's libm may differ in the last
# bits.  Every other partial is IEEE arithmetic (+ - * / sqrt, selects) of the
# same float32 operands and value, and must agree exactly.
LIBM = {"sin", "cos", "sinh", "cosh", "power", "logaddexp", "logaddexp2"}
ULPS = 4  # a libm difference of one unit, times a partial's few roundings

OPS = sorted(name for name, e in TABLE.items() if e.op is not None)  # those with a C kernel
# every ufunc spelling of them; np.float_power computes in float64 (see the promotions)
SPELLINGS = [(name, u) for name in OPS for u in TABLE[name].ufuncs if u is not np.float_power]
SPELLING_IDS = [u.__name__ for _, u in SPELLINGS]
BINARY = [name for name in OPS if TABLE[name].arity == 2]

# seeds and tangents beside 1: zeros against the partials' infinities and NaNs
# (the product is 0 by the zero-factor convention), a subnormal, inf and NaN
FACTORS = np.array([1.0, 0.0, -0.0, 0.5, -3.0, 2.0, TINY, inf, nan], F32)


def edge_operands(entry):
    if entry.arity == 1:
        return [np.array(EDGES, F32)]
    pts = list(itertools.product(PAIR_EDGES, PAIR_EDGES))
    return [np.array([p[k] for p in pts], F32) for k in range(2)]


def factors(n, shift=0):
    return np.resize(np.roll(FACTORS, shift), n)


def numpy_value(ufunc, xs):
    with np.errstate(all="ignore"):
        return ufunc(*xs)


def table_partial(entry, ufunc, xs, k):
    """The table's partial of operand k at every point, on numpy float32
    scalars and numpy's float32 value there (the value the engines record)."""
    z = numpy_value(ufunc, xs)
    assert z.dtype == F32
    out = np.empty(z.shape, F32)
    for i in range(z.size):
        p = partial_at(entry, k, *[x.flat[i] for x in xs], z.flat[i])
        # a partial of the values is a float32 (a constant one a Python number, weak)
        assert type(p) in (float, int) or p.dtype == F32, (entry, k, type(p), p.dtype)
        out.flat[i] = p
    return out


def times(a, b):
    """The chain rule's product under the zero-factor convention: a zero
    factor gives zero, also against inf or NaN; IEEE's product elsewhere."""
    with np.errstate(all="ignore"):
        r = a * b
    return np.where(np.isnan(r) & ((a == 0) | (b == 0)), r.dtype.type(0), r)


def ulps_apart(a, b, n):
    big = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1).astype(a.dtype)
    with np.errstate(all="ignore"):
        return (np.isfinite(a) & np.isfinite(b) & (a != 0) & (b != 0)
                & (np.abs(a - b) <= n * np.spacing(big)))


def same(name, got, want, libm=LIBM):
    """The same dtype and shape, equal values at every point (+0.0 == -0.0)
    or, for a LIBM entry, within ULPS units in the last place; NaN exactly
    where want is NaN."""
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        return False
    ok = (got == want) | (np.isnan(got) & np.isnan(want))
    if name in libm:
        ok |= ulps_apart(got, want, ULPS)
    return bool(np.all(ok))


def mismatches(name, got, want, xs, n=5):
    """The first few points where ``same`` fails: (operands, got, want)."""
    bad = ~((got == want) | (np.isnan(got) & np.isnan(want)))
    if name in LIBM:
        bad &= ~ulps_apart(got, want, ULPS)
    return [(tuple(float(x.flat[i]) for x in xs), float(got.flat[i]), float(want.flat[i]))
            for i in np.flatnonzero(bad)[:n]]


def bits(a):
    a = np.asarray(a)
    return a.view({4: np.uint32, 8: np.uint64}[a.itemsize])


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(bits(a), bits(b))


def written(ufunc, how):
    """ufunc as f would call it: its result, written into a fresh buffer
    (out=, the record saves what it overwrites), or into the memory of its
    first or second operand (out= an operand)."""
    def f(*a):
        if how == "result":
            return ufunc(*a)
        if how == "out":
            r = np.zeros_like(a[0])
            ufunc(*a, out=r)
            return r
        k = 0 if how == "into x" else 1
        a = list(a)
        a[k] = a[k] * 1.0
        ufunc(*a, out=a[k])
        return a[k]
    return f


HOWS = ["result", "out", "into x", "into y"]


def spelling_how_params():
    for (name, u), sid in zip(SPELLINGS, SPELLING_IDS):
        for how in HOWS:
            if how != "into y" or TABLE[name].arity == 2:
                yield pytest.param(name, u, how, id=f"{sid}-{how}")


SPELLING_HOW = list(spelling_how_params())


# --------------------------------------------------------------------------
# 1. the reverse kernel is the table

def _reverse(f, xs, active, seed):
    """(gradients of the active operands, value) of sum(f(*xs) * seed)
    (seed None: sum(f(*xs)), whose seed is 1)."""
    def loss(*a):
        z = f(*a)
        return np.sum(z if seed is None else z * seed)
    anns = [Active(x.copy()) if k in active else Const(x.copy()) for k, x in enumerate(xs)]
    grads, value = sad.autodiff(loss, *anns, mode=sad.ReverseWithPrimal)
    return grads, value


def _check_reverse(name, ufunc, how, seeded, active):
    entry = TABLE[name]
    xs = edge_operands(entry)
    seed = None if seeded == "ones" else factors(xs[0].size)
    z = numpy_value(ufunc, xs)
    grads, value = _reverse(written(ufunc, how), xs, active, seed)
    assert same_bits(value, np.sum(z if seed is None else z * seed)), (name, value)
    for k in active:
        p = table_partial(entry, ufunc, xs, k)
        want = p if seed is None else times(seed, p)
        assert grads[k].dtype == F32, (name, k, grads[k].dtype)
        assert same(name, grads[k], want), (name, k, mismatches(name, grads[k], want, xs))


@pytest.mark.parametrize("name, ufunc, how", SPELLING_HOW)
@pytest.mark.parametrize("seeded", ["ones", "factors"])
def test_reverse_kernel_is_the_table(name, ufunc, how, seeded):
    """Each operand's gradient is its partial times the seed, at every edge
    point, all operands active."""
    _check_reverse(name, ufunc, how, seeded, tuple(range(TABLE[name].arity)))


def _binary_params():
    for p in SPELLING_HOW:
        name, ufunc, how = p.values
        if TABLE[name].arity != 2:
            continue
        for k in (0, 1):
            yield pytest.param(name, ufunc, how, k, id=f"{p.id}-{'xy'[k]} active")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name, ufunc, how, k", list(_binary_params()))
def test_reverse_kernel_with_the_other_operand_constant(name, ufunc, how, k, path, monkeypatch):
    """One operand active, the other a float32 constant: the kernel keeps
    what the active operand's partial reads, and gives that partial."""
    take(path, monkeypatch)
    for seeded in ("ones", "factors"):
        _check_reverse(name, ufunc, how, seeded, (k,))


# --------------------------------------------------------------------------
# 2. the tangent kernel is the table

@pytest.mark.parametrize("name, ufunc, how", SPELLING_HOW)
def test_tangent_kernel_is_the_table(name, ufunc, how):
    """A unit float32 tangent on one operand gives that operand's partial;
    tangents on every operand the sum of partial times tangent (zeros against
    infinite partials give 0); numpy's value, bit for bit, beside them."""
    entry = TABLE[name]
    xs = edge_operands(entry)
    n = xs[0].size
    f = written(ufunc, how)
    z = numpy_value(ufunc, xs)
    ps = [table_partial(entry, ufunc, xs, k) for k in range(entry.arity)]
    for k in range(entry.arity):
        args = [Const(x.copy()) for x in xs]
        args[k] = Duplicated(xs[k].copy(), np.ones(n, F32))
        t, value = sad.autodiff(f, *args, mode=sad.ForwardWithPrimal)
        assert same_bits(value, z), (name, k)
        assert t.dtype == F32 and same(name, t, ps[k]), (name, k)
    ts = [factors(n, shift=k) for k in range(entry.arity)]
    t = sad.autodiff(f, *[Duplicated(x.copy(), tk.copy()) for x, tk in zip(xs, ts)],
                     mode=sad.Forward)
    want = times(ts[0], ps[0])
    if entry.arity == 2:
        want = want + times(ts[1], ps[1])
    assert t.dtype == F32 and same(name, t, want), name


@pytest.mark.parametrize("name, ufunc, how", SPELLING_HOW)
def test_batch_tangent_lanes_are_the_table(name, ufunc, how):
    """Two tangent lanes at once (BatchDuplicated): each lane is its own
    partial times tangent, whichever operands carry lanes."""
    entry = TABLE[name]
    xs = edge_operands(entry)
    n = xs[0].size
    f = written(ufunc, how)
    ps = [table_partial(entry, ufunc, xs, k) for k in range(entry.arity)]
    lanes = [(np.ones(n, F32), factors(n, shift=3 + k)) for k in range(entry.arity)]
    for active in [tuple(range(entry.arity))] + ([(1,)] if entry.arity == 2 else []):
        args = [BatchDuplicated(x.copy(), tuple(t.copy() for t in lanes[k])) if k in active
                else Const(x.copy()) for k, x in enumerate(xs)]
        ts = sad.autodiff(f, *args, mode=sad.Forward)
        assert len(ts) == 2
        for lane in range(2):
            terms = [times(lanes[k][lane], ps[k]) for k in active]
            want = terms[0] if len(terms) == 1 else terms[0] + terms[1]
            assert ts[lane].dtype == F32 and same(name, ts[lane], want), (name, active, lane)


@pytest.mark.parametrize("name, ufunc", SPELLINGS, ids=SPELLING_IDS)
def test_batch_reverse_lanes_are_the_table(name, ufunc):
    """Reverse mode's lanes (one tape, one sweep per lane, the primal
    effects redone between them): ufunc written into its first operand,
    each lane's shadow of it the seed of the final value: that operand's
    lane is seed times partial, the other operand's is added to once."""
    entry = TABLE[name]
    xs = edge_operands(entry)
    n = xs[0].size
    ps = [table_partial(entry, ufunc, xs, k) for k in range(entry.arity)]
    seeds = (factors(n), factors(n, shift=4))
    olds = (np.full(n, 0.25, F32), np.full(n, -0.75, F32))

    def f(*a):
        ufunc(*a, out=a[0])
    args = [BatchDuplicated(xs[0].copy(), tuple(t.copy() for t in seeds))]
    if entry.arity == 2:
        args.append(BatchDuplicated(xs[1].copy(), tuple(t.copy() for t in olds)))
    sad.autodiff(f, *args)
    assert same_bits(args[0].val, numpy_value(ufunc, xs))
    for lane in range(2):
        got = args[0].dvals[lane]
        assert got.dtype == F32 and same(name, got, times(seeds[lane], ps[0])), (name, lane)
        if entry.arity == 2:
            got = args[1].dvals[lane]
            want = olds[lane] + times(seeds[lane], ps[1])
            assert got.dtype == F32 and same(name, got, want), (name, lane)


# --------------------------------------------------------------------------
# 3. forward and reverse agree

def _ordinary_points(name, seed, n=2000):
    x = (np.random.default_rng(seed).standard_normal(n) * 2).astype(F32)
    if name in ("arcsin", "arccos", "arctanh"):
        x = np.tanh(x)
    elif name == "arccosh":
        x = 1 + np.abs(x)
    return x


@pytest.mark.parametrize("name, ufunc, how", SPELLING_HOW)
def test_forward_and_reverse_agree_bit_for_bit(name, ufunc, how):
    """At ordinary points, where numpy's libm and C's may round a value
    differently, forward mode's unit tangents and reverse mode's gradients
    are the same partials at numpy's value z, bit for bit."""
    entry = TABLE[name]
    xs = [_ordinary_points(name, 7 + k) for k in range(entry.arity)]
    f = written(ufunc, how)
    grads = sad.gradient(lambda *a: np.sum(f(*a)), *[x.copy() for x in xs])
    for k in range(entry.arity):
        args = [Const(x.copy()) for x in xs]
        args[k] = Duplicated(xs[k].copy(), np.ones_like(xs[k]))
        t = sad.autodiff(f, *args, mode=sad.Forward)
        assert t.dtype == grads[k].dtype == F32
        assert np.array_equal(t, grads[k], equal_nan=True), (
            name, k, int(np.sum(t != grads[k])))


# --------------------------------------------------------------------------
# 4. layouts: what contiguous copies give, bit for bit

def prog_mixed(a, b):
    """Unary and binary kernels, lazy results, an in-place write."""
    c = np.sin(a) * b + np.exp(a * 0.5)
    c *= np.maximum(a, b)
    return c / (np.hypot(a, b) + 1.0)


def prog_in_place(a, b):
    """out= into the operands themselves (strided if they are)."""
    a *= b
    np.tanh(a, out=a)
    b += a
    np.multiply(b, a, out=b)
    return a - np.square(b)


def prog_selects(a, b):
    np.fmax(a, b * 0.5, out=a)
    return np.copysign(a, b) + np.arctan2(a, b) * np.cbrt(b)


PROGRAMS = [prog_mixed, prog_in_place, prog_selects]

# (shape of the base arrays, their orders, the views of them taken for a and b)
LAYOUTS = {
    "strided": ((40,), "CC", lambda u: u[::2], lambda u: u[1::2]),
    "reversed columns": ((6, 8), "CC", lambda u: u[:, ::-1], lambda u: u[::-1]),
    "transposed": ((8, 6), "CC", lambda u: u.T, lambda u: u.T),
    "fortran against c": ((6, 8), "FC", lambda u: u, lambda u: u),
    "transposed against strided": ((6, 12), "CC", lambda u: u[:, ::2].T, lambda u: u[:, 1::2]),
    "3-d permuted": ((3, 4, 5), "CC", lambda u: u.transpose(2, 0, 1),
                     lambda u: u.transpose(2, 0, 1)[::-1]),
    "4-d strided": ((4, 6, 4, 6), "CC", lambda u: u[:, ::2, :, ::3],
                    lambda u: u[::-1, 1::2, :, ::3]),
    "5-d unmergeable": ((4, 4, 4, 4, 4), "CC", lambda u: u[::2, ::2, ::2, ::2, ::2],
                        lambda u: u[1::2, ::2, 1::2, ::2, ::-2]),
    "6-d permuted": ((2, 3, 2, 3, 2, 4), "CF", lambda u: u.transpose(5, 3, 1, 0, 2, 4),
                     lambda u: u[..., ::-1].transpose(5, 3, 1, 0, 2, 4)),
}


def _layout(layout, seed=0):
    """Bases and shadow bases (the shadows' filled with a nonzero value, to
    be added to), and the views a and b of them with their shadows."""
    shape, orders, *views = LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    bases = [np.asarray(rng.uniform(-1.5, 1.5, shape), F32, order=o) for o in orders]
    sbases = [np.full(shape, v, F32, order=o) for v, o in zip((0.25, -0.75), orders)]
    prims = [v(u) for v, u in zip(views, bases)]
    shadows = [v(u) for v, u in zip(views, sbases)]
    holes = []
    for v, o in zip(views, orders):
        covered = np.zeros(shape, bool, order=o)
        v(covered)[...] = True
        holes.append(~covered)
    return bases, sbases, prims, shadows, holes


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_layout_is_what_contiguous_copies_give(layout, prog, mode):
    """Gradients (added to the shadows given), tangents, the values and the
    final arguments bit for bit as on contiguous copies; the bytes of the
    bases outside the views untouched."""
    bases, sbases, prims, shadows, holes = _layout(layout)
    assert all(p.shape == prims[0].shape for p in prims)
    assert not all(p.flags.c_contiguous for p in prims)
    plain = _layout(layout)[2]
    want_value = prog(*plain)     # numpy on the same layout
    before = [b.copy() for b in bases], [s.copy() for s in sbases]
    copies = [np.array(p, order="C") for p in prims]
    scopies = [np.array(s, order="C") for s in shadows]
    if mode == "reverse":
        def f(a, b):
            return np.sum(prog(a, b))
        _, value = sad.autodiff(f, *map(Duplicated, prims, shadows), mode=sad.ReverseWithPrimal)
        sad.autodiff(f, *map(Duplicated, copies, scopies))
        assert same_bits(value, np.sum(want_value))
    else:
        t, value = sad.autodiff(prog, *map(Duplicated, prims, shadows),
                                mode=sad.ForwardWithPrimal)
        ct, cvalue = sad.autodiff(prog, *map(Duplicated, copies, scopies),
                                  mode=sad.ForwardWithPrimal)
        assert same_bits(value, want_value) and same_bits(cvalue, value)
        assert t.dtype == F32 and same_bits(np.ascontiguousarray(t), ct), "result tangent"
    for k in range(2):
        assert same_bits(np.ascontiguousarray(prims[k]), copies[k]), ("argument", k)
        assert same_bits(np.ascontiguousarray(prims[k]), plain[k]), ("argument", k)
        assert same_bits(np.ascontiguousarray(shadows[k]), scopies[k]), ("shadow", k)
        assert same_bits(bases[k][holes[k]], before[0][k][holes[k]]), ("primal hole", k)
        assert same_bits(sbases[k][holes[k]], before[1][k][holes[k]]), ("shadow hole", k)


def _exact(shape, seed):
    """Multiples of 1/8 of a few units: products and sums of a few of them
    are exact in float32, so an un-broadcast sum does not depend on its order."""
    return np.asarray(np.random.default_rng(seed).integers(-16, 17, shape) / 8, F32)


def unbroadcast_sum(g, shape):
    """g summed over the axes along which an operand of ``shape`` was broadcast."""
    padded = (1,) * (g.ndim - len(shape)) + tuple(shape)
    axes = tuple(i for i, n in enumerate(padded) if n == 1 and g.shape[i] != 1)
    return np.sum(g, axis=axes, keepdims=True).reshape(shape)


BROADCASTS = {
    "column by row": ((3, 1), (1, 4)),
    "row by matrix": ((5,), (3, 5)),
    "0-d by vector": ((), (7,)),
    "3-d by 1-d": ((2, 1, 3), (3,)),
    "5-d by 2-d": ((2, 1, 2, 1, 3), (2, 3)),
}


def _broadcast_prog(ufunc):
    return lambda a, b: np.sum(ufunc(a, b) * 1.5)


@pytest.mark.parametrize("case", BROADCASTS)
@pytest.mark.parametrize("ufunc", [np.add, np.subtract, np.multiply, np.maximum, np.minimum],
                         ids=lambda u: u.__name__)
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_broadcasting_is_what_broadcast_copies_give(case, ufunc, mode):
    """Each operand's gradient sums its broadcast copy's over the broadcast
    axes (at exact values, in any order); the tangent is the copies'."""
    sa, sb = BROADCASTS[case]
    a, b = _exact(sa, 1), _exact(sb, 2)
    shape = np.broadcast_shapes(sa, sb)
    ca, cb = np.broadcast_to(a, shape).copy(), np.broadcast_to(b, shape).copy()
    f = _broadcast_prog(ufunc)
    if mode == "reverse":
        (ga, gb), value = sad.autodiff(f, Active(a.copy()), Active(b.copy()),
                                       mode=sad.ReverseWithPrimal)
        (gca, gcb), cvalue = sad.autodiff(f, Active(ca), Active(cb), mode=sad.ReverseWithPrimal)
        assert ga.dtype == gb.dtype == F32
        assert ga.shape == sa and gb.shape == sb
        assert np.array_equal(ga, unbroadcast_sum(gca, sa))
        assert np.array_equal(gb, unbroadcast_sum(gcb, sb))
    else:
        ta, tb = _exact(sa, 3), _exact(sb, 4)
        t, value = sad.autodiff(f, Duplicated(a.copy(), ta), Duplicated(b.copy(), tb),
                                mode=sad.ForwardWithPrimal)
        ct, cvalue = sad.autodiff(f, Duplicated(ca, np.broadcast_to(ta, shape).copy()),
                                  Duplicated(cb, np.broadcast_to(tb, shape).copy()),
                                  mode=sad.ForwardWithPrimal)
        assert t.dtype == F32 and same_bits(t, ct)
    assert same_bits(value, cvalue)


def broadcast_into(a, b):
    a *= b
    np.add(a, b, out=a)
    np.maximum(b, a, out=a)
    np.subtract(a, b * 0.5, out=a)
    return np.sum(a * 1.5)


@pytest.mark.parametrize("sb", [(1, 4), (4,), (3, 1), ()], ids=str)
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_writes_into_an_operand_with_a_broadcast_one(sb, mode):
    """out= into a (3, 4) operand beside a broadcast one: what its
    broadcast copy gives (at exact values, the sums in any order)."""
    a, b = _exact((3, 4), 5), _exact(sb, 6)
    cb = np.broadcast_to(b, (3, 4)).copy()
    seed = 0.25 if mode == "reverse" else 1.0
    da, db = np.full((3, 4), seed, F32), np.full(sb, -seed, F32)
    dca, dcb = da.copy(), np.broadcast_to(db, (3, 4)).copy()
    run = sad.ReverseWithPrimal if mode == "reverse" else sad.ForwardWithPrimal
    ga, gb, ca = a.copy(), b.copy(), a.copy()
    t, value = sad.autodiff(broadcast_into, Duplicated(ga, da), Duplicated(gb, db), mode=run)
    ct, cvalue = sad.autodiff(broadcast_into, Duplicated(ca, dca), Duplicated(cb, dcb), mode=run)
    assert same_bits(value, cvalue) and same_bits(ga, ca) and same_bits(da, dca)
    if mode == "reverse":  # b's shadow: its given value, plus the broadcast copy's terms
        want = unbroadcast_sum(dcb + seed, sb) - seed
        assert db.dtype == F32 and np.array_equal(db, want)
    else:
        assert t.dtype == F32 and same_bits(t, ct)


@pytest.mark.parametrize("ufunc", [np.multiply, np.divide, np.power, np.maximum, np.arctan2],
                         ids=lambda u: u.__name__)
@pytest.mark.parametrize("side", ["left", "right"])
def test_weak_python_scalars_are_float32_constant_arrays(ufunc, side):
    """x op 2.5 with a Python float is float32 (numpy's weak scalar): the
    same value, gradient and tangent as x op a float32 array of 2.5s."""
    x = _ordinary_points("power", 3, 50)
    x = np.abs(x) + 0.25

    def at(c):
        return (lambda u: ufunc(u, c)) if side == "left" else (lambda u: ufunc(c, u))
    scalar, array = at(2.5), at(np.full(x.size, 2.5, F32))
    g, v = sad.autodiff(lambda u: np.sum(scalar(u)), Active(x.copy()), mode=sad.ReverseWithPrimal)
    gw, vw = sad.autodiff(lambda u: np.sum(array(u)), Active(x.copy()),
                          mode=sad.ReverseWithPrimal)
    assert same_bits(v, vw) and v.dtype == F32
    assert g[0].dtype == F32 and np.array_equal(g[0], gw[0], equal_nan=True)
    t, tv = sad.autodiff(scalar, Duplicated(x.copy(), np.ones_like(x)), mode=sad.ForwardWithPrimal)
    tw = sad.autodiff(array, Duplicated(x.copy(), np.ones_like(x)), mode=sad.Forward)
    assert t.dtype == tv.dtype == F32 and same_bits(t, tw)


def test_zero_dimensional_is_a_one_element_array():
    def f(a, b):
        c = np.sin(a) * b
        c += np.exp(a)
        np.sqrt(c, out=c)
        return np.sum(c / b)
    a, b = np.array(0.7, F32), np.array(-1.3, F32)
    (g0, h0), v0 = sad.autodiff(f, Active(a.copy()), Active(b.copy()), mode=sad.ReverseWithPrimal)
    (g1, h1), v1 = sad.autodiff(f, Active(a.reshape(1).copy()), Active(b.reshape(1).copy()),
                                mode=sad.ReverseWithPrimal)
    assert g0.shape == h0.shape == () and g0.dtype == h0.dtype == F32
    assert same_bits(g0.reshape(1), g1) and same_bits(h0.reshape(1), h1) and same_bits(v0, v1)
    t0 = sad.autodiff(f, Duplicated(a.copy(), np.array(1, F32)),
                      Duplicated(b.copy(), np.array(-2, F32)), mode=sad.Forward)
    t1 = sad.autodiff(f, Duplicated(a.reshape(1).copy(), np.ones(1, F32)),
                      Duplicated(b.reshape(1).copy(), np.full(1, -2, F32)), mode=sad.Forward)
    assert same_bits(t0, t1)


def empty_fresh(a, b):
    return np.sum(np.exp(a) * b + np.maximum(a, 2.0) - np.sin(a))


def empty_in_place(a, b):
    a *= b
    np.sin(a, out=a)
    return np.sum(a)


def _empty_params():
    for mode in ("reverse", "forward"):
        for prog in (empty_fresh, empty_in_place):
            for shape in ((0,), (3, 0), (0, 4, 2)):
                yield pytest.param(mode, prog, shape, id=f"{mode}-{prog.__name__}-{shape}")


@pytest.mark.parametrize("mode, prog, shape", list(_empty_params()))
@pytest.mark.parametrize("path", PATHS)
def test_empty_arrays(mode, prog, shape, path, monkeypatch):
    take(path, monkeypatch)
    a, b = np.zeros(shape, F32), np.ones(shape, F32)
    want = prog(a.copy(), b.copy())
    if mode == "reverse":
        da, db = np.zeros_like(a), np.zeros_like(b)
        _, value = sad.autodiff(prog, Duplicated(a, da), Duplicated(b, db),
                                mode=sad.ReverseWithPrimal)
        assert da.shape == db.shape == shape and da.dtype == db.dtype == F32
    else:
        t, value = sad.autodiff(prog, Duplicated(a, np.ones_like(a)),
                                Duplicated(b, np.ones_like(b)), mode=sad.ForwardWithPrimal)
        assert same_bits(t, np.float32(0))
    assert same_bits(value, want)


# in place into an operand and into views overlapping an input, against the
# same computation written without overwriting anything (every adjoint a sum
# of at most two terms: the same bits in either order)

def _w(n):
    return _exact(n, 11) + np.float32(0.0625)


def add_into_overlap(a):
    a[1:] += a[:-1]
    return np.sum(a * _w(a.size))


def add_into_overlap_ref(a):
    b = np.concatenate([a[:1], a[1:] + a[:-1]])
    return np.sum(b * _w(a.size))


def multiply_into_overlap(a):
    np.multiply(a[:-1], a[1:], out=a[1:])
    return np.sum(a * _w(a.size))


def multiply_into_overlap_ref(a):
    b = np.concatenate([a[:1], a[:-1] * a[1:]])
    return np.sum(b * _w(a.size))


def backwards_overlap(a):
    np.subtract(a[1:], a[:-1], out=a[:-1])
    return np.sum(a * _w(a.size))


def backwards_overlap_ref(a):
    b = np.concatenate([a[1:] - a[:-1], a[-1:]])
    return np.sum(b * _w(a.size))


def into_operands(x, y):
    x += y
    np.sin(x, out=x)
    np.multiply(y, x, out=y)
    return np.sum(x * _w(x.size) + y)


def into_operands_ref(x, y):
    s = np.sin(x + y)
    return np.sum(s * _w(x.size) + y * s)


OVERWRITES = {
    "a[1:] += a[:-1]": (add_into_overlap, add_into_overlap_ref, 1),
    "np.multiply(a[:-1], a[1:], out=a[1:])": (multiply_into_overlap, multiply_into_overlap_ref, 1),
    "np.subtract(a[1:], a[:-1], out=a[:-1])": (backwards_overlap, backwards_overlap_ref, 1),
    "x += y; np.sin(x, out=x); y *= x": (into_operands, into_operands_ref, 2),
}


@pytest.mark.parametrize("case", OVERWRITES)
@pytest.mark.parametrize("n", [9, 10000], ids=["small", "large"])
def test_writes_into_operands_are_the_computation_without_them(case, n):
    f, ref, nargs = OVERWRITES[case]
    xs = [_ordinary_points("sin", 5 + k, n) for k in range(nargs)]
    final = [x.copy() for x in xs]
    want_value = f(*final)
    grads = [np.zeros_like(x) for x in xs]
    _, value = sad.autodiff(f, *[Duplicated(x.copy(), g) for x, g in zip(xs, grads)],
                            mode=sad.ReverseWithPrimal)
    rgrads, rvalue = sad.autodiff(ref, *[Active(x.copy()) for x in xs], mode=sad.ReverseWithPrimal)
    assert same_bits(value, want_value) and same_bits(rvalue, value)
    for g, rg in zip(grads, rgrads):
        assert g.dtype == F32 and np.array_equal(g, rg), int(np.sum(g != rg))
    ts = [np.random.default_rng(20 + k).standard_normal(n).astype(F32) for k in range(nargs)]
    anns = [Duplicated(x.copy(), t.copy()) for x, t in zip(xs, ts)]
    t, v = sad.autodiff(f, *anns, mode=sad.ForwardWithPrimal)
    rt = sad.autodiff(ref, *[Duplicated(x.copy(), t.copy()) for x, t in zip(xs, ts)],
                      mode=sad.Forward)
    assert same_bits(v, want_value)
    assert t.dtype == F32 and same_bits(t, rt)
    for ann, fin in zip(anns, final):
        assert same_bits(ann.val, fin)


def _chain_sweep(x, w, square):
    """The reverse sweep of sum(w * (y*y + tanh(y))), y = exp(x) * x, by
    hand in float32: records from the last, each operand's term added to its
    adjoint in order (x's, then y's).  y*y is the table's multiply with y
    on both sides (two terms) or, as the float64 kernels record it, square
    (one term 2y)."""
    e = np.exp(x)
    y = e * x
    t = np.tanh(y)
    gz = times(np.ones_like(x), w)                    # w * (...): the second operand's w
    gy = times(gz, np.float32(1) - t * t)             # tanh
    if square:
        gy = gy + times(gz, np.float32(2) * y)
    else:
        gy = gy + times(gz, y)
        gy = gy + times(gz, y)
    ge = times(gy, x)
    gx = times(gy, e) + times(ge, e)                  # multiply's y term, then exp's
    return gx


@pytest.mark.parametrize("n", [100, 20000], ids=["small", "lazy"])
def test_chain_of_temporaries_is_the_hand_sweep(n):
    """Temporaries large enough for lazy shadows, one used three times, y * y:
    the gradient is the table's sweep by hand, bit for bit (one of the two
    ways of recording y * y, the same way at every point)."""
    x = _ordinary_points("exp", 2, n)
    w = factors(n)

    def f(u):
        y = np.exp(u) * u
        z = y * y + np.tanh(y)
        return np.sum(w * z)
    g, = sad.gradient(f, x.copy())
    assert g.dtype == F32
    as_multiply = np.array_equal(g, _chain_sweep(x, w, square=False), equal_nan=True)
    as_square = np.array_equal(g, _chain_sweep(x, w, square=True), equal_nan=True)
    assert as_multiply or as_square, int(np.sum(g != _chain_sweep(x, w, square=False)))


@pytest.mark.parametrize("n", [100, 20000], ids=["small", "lazy"])
def test_an_argument_times_itself(n):
    """x * x of an argument: 2x, with the same adjoint in reverse and
    forward mode; a temporary times itself likewise (2s, however y * y is
    recorded: its adjoint has no other term)."""
    x = _ordinary_points("square", 4, n)
    g, = sad.gradient(lambda u: np.sum(u * u), x.copy())
    assert g.dtype == F32 and np.array_equal(g, np.float32(2) * x)
    t = sad.autodiff(lambda u: u * u, Duplicated(x.copy(), np.ones_like(x)), mode=sad.Forward)
    assert same_bits(t, np.float32(2) * x)
    def f(u):
        s = np.sin(u)
        return np.sum(s * s)
    g2, = sad.gradient(f, x.copy())
    assert same("sin", g2, times(np.float32(2) * np.sin(x), np.cos(x)))


# --------------------------------------------------------------------------
# 5. restore, accumulate once, failure atomicity

def _with_payloads(n, seed):
    """Ordinary float32 values with -0.0, +0.0 and NaNs of several payloads
    and both signs, quiet and signalling, among them."""
    x = _ordinary_points("sin", seed, n)
    specials = np.array([0x80000000, 0x00000000, 0x7fc00001, 0xffc12345, 0x7f800001,
                         0xff800123, 0x7fbfffff], np.uint32).view(np.float32)
    x[1:1 + 3 * specials.size:3] = specials
    return x


def overwrite_x(x, y):
    x *= y
    np.sin(x, out=x)
    return np.sum(x)


@pytest.mark.parametrize("restore", [False, True])
def test_restore_and_accumulate_once_bit_for_bit(restore):
    """f overwrites x: x's shadow on entry is the seed of x's final value and
    y's is added to once; restore=True gives the primals' bytes back, the
    NaN payloads and -0.0 included."""
    x, y = _with_payloads(64, 1), _with_payloads(64, 2)[::-1].copy()
    dx, dy = np.full(64, 0.25, F32), factors(64).copy()
    dx0, dy0 = dx.copy(), dy.copy()
    x0, y0 = x.copy(), y.copy()
    sad.autodiff(overwrite_x, Duplicated(x, dx), Duplicated(y, dy), restore=restore)
    x1 = x0 * y0
    g = times(dx0 + np.float32(1), np.cos(x1))  # x1's adjoint: the seed, plus sum's 1, by sin's
    assert same("sin", dx, times(g, y0))  # (cos: libm's, within a few ulps)
    assert same("sin", dy, dy0 + times(g, x0))
    assert same_bits(y, y0)
    assert same_bits(x, x0 if restore else np.sin(x1))


def reads_only(x, y):
    return np.sum(np.sin(x) * np.exp(y))


def test_shadows_of_arguments_read_only_are_added_to_once():
    x, y = _with_payloads(64, 3), _ordinary_points("exp", 4, 64)
    dx, dy = np.full(64, 0.25, F32), factors(64).copy()
    dx0, dy0 = dx.copy(), dy.copy()
    gx, gy = sad.gradient(reads_only, x.copy(), y.copy())
    x0, y0 = x.copy(), y.copy()
    sad.autodiff(reads_only, Duplicated(x, dx), Duplicated(y, dy), restore=True)
    assert np.array_equal(dx, dx0 + gx, equal_nan=True)
    assert np.array_equal(dy, dy0 + gy, equal_nan=True)
    assert same_bits(x, x0) and same_bits(y, y0)


def fails_half_way(x, y):
    x *= y
    np.sin(x, out=x)
    y[::2] += x[::2]
    np.maximum(y, x, out=y)
    z = np.exp(x) * y
    z += x
    raise RuntimeError("half-way")


@pytest.mark.parametrize("mode", [sad.Reverse, sad.Forward], ids=str)
def test_failure_half_way_restores_primals_and_leaves_shadows(mode):
    x, y = _with_payloads(40, 5), _with_payloads(40, 6)
    dx, dy = np.full(40, 0.25, F32), factors(40).copy()
    before = [a.copy() for a in (x, y, dx, dy)]
    with pytest.raises(RuntimeError, match="half-way"):
        sad.autodiff(fails_half_way, Duplicated(x, dx), Duplicated(y, dy), mode=mode)
    for a, b in zip((x, y, dx, dy), before):
        assert same_bits(a, b)


# --------------------------------------------------------------------------
# 6. numpy's promotions with float64 operands

def _partial64(entry, xs, k):
    """The table's partial where numpy computes in float64: at the operands
    promoted to float64."""
    xs = [x.astype(F64) for x in xs]
    z = numpy_value(entry.ufunc, xs)
    return np.array([float(partial_at(entry, k, *[x[i] for x in xs], z[i]))
                     for i in range(z.size)])


def _pair(name):
    x = _ordinary_points(name, 8, 64)
    y = _ordinary_points(name, 9, 64).astype(F64)
    if name == "power":
        x = np.abs(x) + 0.25
    return x, y


@pytest.mark.parametrize("name", BINARY)
def test_float32_with_float64_array_is_float64(name):
    """x32 op y64 is float64: the result, its tangent and y's gradient are
    float64; x's gradient is float32, the float64 partial rounded once."""
    entry = TABLE[name]
    x, y = _pair(name)
    z = numpy_value(entry.ufunc, [x, y])
    assert z.dtype == F64
    (gx, gy), value = sad.autodiff(lambda a, b: np.sum(entry.ufunc(a, b)), Active(x.copy()),
                                   Active(y.copy()), mode=sad.ReverseWithPrimal)
    assert same_bits(value, np.sum(z))
    px, py = _partial64(entry, [x, y], 0), _partial64(entry, [x, y], 1)
    assert gx.dtype == F32 and same(name, gx, px.astype(F32))
    assert gy.dtype == F64 and same(name, gy, py)
    t = sad.autodiff(entry.ufunc, Duplicated(x.copy(), np.ones_like(x)),
                     Duplicated(y.copy(), np.ones_like(y)), mode=sad.Forward)
    assert t.dtype == F64 and same(name, t, px + py)


def _constant_params():
    for k in (0, 1):
        for name in BINARY:
            yield pytest.param(name, k, id=f"{'xy'[k]} active-{name}")


@pytest.mark.parametrize("name, k", list(_constant_params()))
def test_float64_with_a_float32_constant_is_float64(name, k):
    """A float64 operand beside a float32 constant: numpy computes in
    float64, and the gradient is the float64 partial there."""
    entry = TABLE[name]
    x, y = _pair(name)
    xs = [x, y] if k == 1 else [y.copy(), x]  # the active operand float64
    if name == "power":
        xs = [np.abs(v) + np.float32(0.25) for v in xs]
    args = [Const(v.copy()) for v in xs]
    args[k] = Active(xs[k].copy())
    g = sad.autodiff(lambda a, b: np.sum(entry.ufunc(a, b)), *args)[k]
    assert g.dtype == F64 and same(name, g, _partial64(entry, xs, k))


def _scalar_params():
    for scalar in ("np.float64", "python float", "np.float32"):
        for name in BINARY:
            yield pytest.param(name, scalar, id=f"{scalar}-{name}")


@pytest.mark.parametrize("name, scalar", list(_scalar_params()))
def test_float32_with_a_scalar_keeps_numpys_dtype(name, scalar):
    """A np.float64 scalar is strong (float64), a Python float weak
    (float32), as in numpy; x's gradient is float32 either way."""
    entry = TABLE[name]
    x, _ = _pair(name)
    s = {"np.float64": np.float64(1.7), "python float": 1.7, "np.float32": np.float32(1.7)}[scalar]
    dtype = np.result_type(x, s)
    assert dtype == (F64 if scalar == "np.float64" else F32)
    z = numpy_value(entry.ufunc, [x, s])
    assert z.dtype == dtype
    (gx,), value = sad.autodiff(lambda a: np.sum(entry.ufunc(a, s)), Active(x.copy()),
                                mode=sad.ReverseWithPrimal)
    assert same_bits(value, np.sum(z))
    sx = np.full(x.size, s, dtype)
    if dtype == F64:
        want = _partial64(entry, [x, sx], 0).astype(F32)
    else:
        want = table_partial(entry, entry.ufunc, [x, sx], 0)
    assert gx.dtype == F32 and same(name, gx, want)
    t = sad.autodiff(lambda a: entry.ufunc(a, s), Duplicated(x.copy(), np.ones_like(x)),
                     mode=sad.Forward)
    assert t.dtype == dtype and same(name, t, want if dtype == F32 else
                                     _partial64(entry, [x, sx], 0))


def test_float_power_of_float32_computes_in_float64():
    x = np.abs(_ordinary_points("power", 1, 64)) + 0.25
    y = _ordinary_points("power", 2, 64)
    (gx, gy), value = sad.autodiff(lambda a, b: np.sum(np.float_power(a, b)), Active(x.copy()),
                                   Active(y.copy()), mode=sad.ReverseWithPrimal)
    assert same_bits(np.float64(value), np.sum(np.float_power(x, y)))
    entry = TABLE["power"]
    assert gx.dtype == gy.dtype == F32
    assert same("power", gx, _partial64(entry, [x, y], 0).astype(F32))
    assert same("power", gy, _partial64(entry, [x, y], 1).astype(F32))


# --------------------------------------------------------------------------
# 7. memory

def churn(x, y):
    for _ in range(3):
        x *= np.float32(0.5)
        np.sin(x, out=x)
        x[1:] += x[:-1] * y[1:]
        y = np.exp(x) * y + np.maximum(x, y)
    return np.sum(np.sqrt(y * y + 1.0))


def test_memory_stays_flat_over_many_calls():
    x, y = _ordinary_points("sin", 1, 10000), _ordinary_points("sin", 2, 10000)

    def once():
        dx, dy = np.zeros_like(x), np.zeros_like(y)
        sad.autodiff(churn, Duplicated(x.copy(), dx), Duplicated(y.copy(), dy))
        sad.autodiff(churn, Duplicated(x.copy(), np.ones_like(x)),
                     Duplicated(y.copy(), np.ones_like(y)), mode=sad.Forward)
    for _ in range(5):
        once()
    tracemalloc.start()
    try:
        once()
        first = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            once()
        growth = tracemalloc.get_traced_memory()[0] - first
    finally:
        tracemalloc.stop()
    assert growth < 200_000, growth  # one call's arrays alone are 40 kB each


# --------------------------------------------------------------------------
# 8. the float32 elementwise work runs in the kernels, not the generic rule

def marker_program(x, y):
    z = np.add(x, y) * np.sin(x)
    z = np.exp(z * 0.1) + np.maximum(z, y)
    np.sqrt(np.abs(z), out=z)
    np.multiply(z, y, out=z)
    x += z
    return np.sum(x * y)


def test_float32_elementwise_ufuncs_do_not_run_the_generic_rule(monkeypatch):
    def refuse(ufunc, *args, **kwargs):
        raise AssertionError(f"float32 {ufunc.__name__} ran the generic rule")
    monkeypatch.setattr(ew_rules, "generic_ufunc", refuse)
    x, y = _ordinary_points("sin", 1, 100), _ordinary_points("sin", 2, 100)
    want = marker_program(x.copy(), y.copy())
    dx, dy = np.zeros_like(x), np.zeros_like(y)
    _, value = sad.autodiff(marker_program, Duplicated(x.copy(), dx), Duplicated(y.copy(), dy),
                            mode=sad.ReverseWithPrimal)
    assert same_bits(value, want)
    t, value = sad.autodiff(marker_program, Duplicated(x.copy(), np.ones_like(x)),
                            Duplicated(y.copy(), np.ones_like(y)), mode=sad.ForwardWithPrimal)
    assert same_bits(value, want) and t.dtype == F32


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("ufunc", [np.rad2deg, np.deg2rad], ids=lambda u: u.__name__)
def test_linear_factors_are_numpys_own_in_float32(ufunc, path, monkeypatch):
    """deg2rad and rad2deg multiply by a constant numpy computes in the
    array's type (180.0f / pi_f for float32, which is not float32(180 / pi)):
    the derivative is that constant, the slope of the values numpy gives."""
    take(path, monkeypatch)
    x = np.linspace(-3, 3, 50, dtype=F32)
    g = sad.gradient(lambda a: np.sum(ufunc(a)), x)[0]
    assert g.dtype == F32 and np.all(g == ufunc(np.float32(1)))
    t = sad.autodiff(ufunc, Duplicated(x.copy(), np.ones_like(x)), mode=sad.Forward)
    assert np.all(t == ufunc(np.float32(1)))
