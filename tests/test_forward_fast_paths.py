"""Forward mode's fast paths against the general Python path, bit for bit:
the elementwise C path (csrc/ext/forward.c ``_fast.fwd``) with dual scalars,
dual arrays, plain arrays and numbers, float64 or float32 (and what numpy
promotes out of float32 left to Python), its C primal of exact operations,
the full sum (``_fast.fsum``), and the dual scalars' inlined division and
direct hand-over to dual arrays (shadowad/engines/forward/dual.py).

Each case runs twice, once with the fast path and once with it switched off
(the rule module's entry replaced by one that declines), and compares values
and tangents byte for byte.
"""
import contextvars
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import BatchDuplicated, Const, Duplicated, ForwardWithPrimal
from shadowad.engines.forward import dual
from shadowad.engines.rules import elementwise, reductions
from shadowad.engines.rules.elementwise import EW_OPS
from shadowad.testing import same_bits
from shadowad._c import fast, lib

rng = np.random.default_rng(11)
BINARY = [u for u in EW_OPS if u.nin == 2]
UNARY = [u for u in EW_OPS if u.nin == 1]
FLOATS = [np.float64, np.float32]


def _declined(*args):
    return NotImplemented


class Spy:
    """Counts the calls a fast path took (did not decline)."""

    def __init__(self, monkeypatch, module, name):
        self.taken = 0
        fast = getattr(module, name)

        def spy(*args):
            res = fast(*args)
            self.taken += res is not NotImplemented
            return res
        monkeypatch.setattr(module, name, spy)


def run_both(monkeypatch, f, *anns):
    """(fast, python) results of f in ForwardWithPrimal, each (tangent, value),
    with the fast paths on, then off; the annotations' values are copied."""
    def fresh():
        out = []
        for a in anns:
            if type(a) is BatchDuplicated:
                out.append(BatchDuplicated(_copy(a.val), tuple(_copy(d) for d in a.dvals)))
            elif type(a) is Duplicated:
                out.append(Duplicated(_copy(a.val), _copy(a.dval)))
            else:
                out.append(Const(_copy(a.val)))
        return out

    fast = sad.autodiff(f, *fresh(), mode=ForwardWithPrimal)
    with monkeypatch.context() as m:
        m.setattr(elementwise, "_fwd", _declined)
        m.setattr(reductions, "_fsum", _declined)
        slow = sad.autodiff(f, *fresh(), mode=ForwardWithPrimal)
    return fast, slow


def _copy(v):
    return v.copy() if isinstance(v, np.ndarray) else v


def assert_same(fast, slow):
    (tf, vf), (ts, vs) = fast, slow
    assert same_bits(vf, vs), (vf, vs)
    assert type(vf) is type(vs)
    if type(tf) is tuple:
        assert len(tf) == len(ts)
        for a, b in zip(tf, ts):
            assert same_bits(a, b), (a, b)
            assert type(a) is type(b)
    else:
        assert same_bits(tf, ts), (tf, ts)
        assert type(tf) is type(ts)


def scalar_ann(lanes, v=0.37):
    if lanes == 1:
        return Duplicated(v, 1.0)
    return BatchDuplicated(v, tuple(rng.standard_normal(lanes)))


def array_ann(lanes, shape, dtype=np.float64):
    x = rng.uniform(0.2, 0.9, shape).astype(dtype)
    if lanes == 1:
        return Duplicated(x, rng.standard_normal(shape).astype(dtype))
    return BatchDuplicated(x, tuple(rng.standard_normal(shape).astype(dtype)
                                    for _ in range(lanes)))


def pow_op(ufunc):
    """np.power and np.float_power: the fast path leaves them to Python."""
    return EW_OPS[ufunc] == lib.SAD_POW


# --------------------------------------------------------------------------
# dual scalars in the elementwise fast path

@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("ufunc", BINARY, ids=lambda u: u.__name__)
def test_dual_scalar_with_a_plain_array(monkeypatch, ufunc, lanes):
    c = rng.uniform(0.2, 0.9, (2, 5))

    def f(x, c):
        return ufunc(c, x) + ufunc(x, c) * 0.5

    fast, slow = run_both(monkeypatch, f, scalar_ann(lanes), Const(c))
    assert_same(fast, slow)


@pytest.mark.parametrize("lanes", [1, 4])
@pytest.mark.parametrize("ufunc", BINARY, ids=lambda u: u.__name__)
def test_dual_scalar_with_a_dual_array(monkeypatch, ufunc, lanes):
    def f(s, a, c):
        return ufunc(a, s) - ufunc(s, a) + ufunc(s, c) * ufunc(c, s)

    fast, slow = run_both(monkeypatch, f, scalar_ann(lanes), array_ann(lanes, (3, 4)),
                          Const(rng.uniform(0.2, 0.9, 4)))
    assert_same(fast, slow)


def test_the_fast_path_takes_dual_scalars(monkeypatch):
    spy = Spy(monkeypatch, elementwise, "_fwd")
    grid = np.arange(-3.0, 4.0)

    def f(x, d):
        d0 = np.exp(-1.5 * (grid - x) ** 2)
        return d - np.sum(d * d0) / np.sum(d0 * d0) * d0

    sad.autodiff(f, Duplicated(0.3, 1.0), Const(rng.random(7)), mode=sad.Forward)
    assert spy.taken == 8  # every elementwise operation: grid - x and q * d0 included


@pytest.mark.parametrize("tangent", ["float", "float64", "int", "lanes", "strided lanes"])
def test_kinds_of_dual_scalar_tangents(monkeypatch, tangent):
    """A tangent is a float, a numpy float, or an array of lanes (any stride);
    an int tangent goes the Python way.  All give the Python path's bits."""
    lanes = 3 if "lanes" in tangent else 1

    def f(x, c):
        d = {"float": 0.75, "float64": np.float64(0.75), "int": 2,
             "lanes": np.array([0.5, -1.0, 2.0]),
             "strided lanes": np.array([0.5, 9.0, -1.0, 9.0, 2.0, 9.0])[::2]}[tangent]
        s = dual.FScalar(0.61, d, dual.current_tape())
        return (c - s) * s + s / c

    ann = scalar_ann(lanes)
    fast, slow = run_both(monkeypatch, f, ann, Const(rng.uniform(0.2, 0.9, 6)))
    assert_same(fast, slow)


def test_numbers_numpy_scalars_and_zero_d_arrays(monkeypatch):
    def f(x, a, z):
        r = x * 2 + 3 - a * 2 + np.float64(1.5) * a + a * np.int64(3) + 2 ** x
        r = r + z * x + x * z + np.multiply(z, a)   # a 0-d array: a scalar result, Python's
        return r + np.float32(0.5) * a + True * a

    fast, slow = run_both(monkeypatch, f, Duplicated(0.4, 1.0), Const(rng.random(5)),
                          Const(np.array(0.7)))
    assert_same(fast, slow)


@pytest.mark.parametrize("lanes", [1, 2])
def test_broadcasting_and_non_contiguous_operands(monkeypatch, lanes):
    def f(s, a, c):
        r = a.T * s + s - a[::-1].T                          # Fortran-ordered results
        r = r + ((c[::-1] - s)[:6, None] + c[::2, None] / s)  # strided, broadcast
        return r * (a[0] - s)[:4] + np.exp(s * c[1:5])

    fast, slow = run_both(monkeypatch, f, scalar_ann(lanes), array_ann(lanes, (4, 6)),
                          Const(rng.uniform(0.2, 0.9, 12)))
    assert_same(fast, slow)


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("ufunc", UNARY + BINARY, ids=lambda u: u.__name__)
def test_dual_arrays_and_constants(monkeypatch, ufunc, lanes, dtype):
    """Dual arrays, plain arrays and one number, the result built in C: in
    float64, and in float32 (numbers weak), where it takes the kernels'
    float32 instance.  np.float_power computes float32 in float64, and its
    result, Python's, is float64: the sums of its results are float64 calls."""
    spy = Spy(monkeypatch, elementwise, "_fwd")

    def f(a, c):
        args = (a,) if ufunc.nin == 1 else (a, c)
        r = ufunc(*args)
        if ufunc.nin == 2:
            r = r + ufunc(c, a) + ufunc(a, 0.5) + ufunc(0.75, a)
        return r

    fast, slow = run_both(monkeypatch, f, array_ann(lanes, (3, 5), dtype),
                          Const(rng.uniform(0.2, 0.9, 5).astype(dtype)))
    assert_same(fast, slow)
    want = np.float64 if ufunc is np.float_power else dtype
    assert fast[1].dtype == want
    calls = 1 if ufunc.nin == 1 else 7  # 4 of the ufunc and 3 sums
    assert spy.taken == calls - 4 * pow_op(ufunc)


# What numpy computes in another type than float32 (NEP 50: strong scalars and
# arrays of other dtypes promote; a dual scalar is a float64 value; np.float_power
# has no float32 loop), and a number numpy warns it cannot cast to float32:
# the float32 call declines them all to Python's path.
DECLINED32 = {
    "np.float64": lambda a, c, s: a * np.float64(2.0),
    "np.float32": lambda a, c, s: np.float32(2.0) - a,
    "dual scalar": lambda a, c, s: a * s,
    "float64 array": lambda a, c, s: a / c.astype(np.float64),
    "int array": lambda a, c, s: np.arange(5) + a,
    "float_power": lambda a, c, s: np.float_power(a, c),
    "float overflow": lambda a, c, s: a * 1e39,
}


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("case", DECLINED32)
def test_float32_calls_decline_what_numpy_promotes(monkeypatch, case, lanes):
    spy = Spy(monkeypatch, elementwise, "_fwd")
    f = DECLINED32[case]
    c = rng.uniform(0.2, 0.9, 5).astype(np.float32)
    ann = array_ann(lanes, (3, 5), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast, slow = run_both(monkeypatch, f, ann, Const(c), scalar_ann(lanes))
        want = f(ann.val, c, np.float64(0.37))  # a dual scalar computes as np.float64
    assert spy.taken == 0
    assert_same(fast, slow)
    assert fast[1].dtype == want.dtype and same_bits(fast[1], want)


def test_values_of_another_call_are_refused_on_both_paths(monkeypatch):
    kept = {}

    def record(x):
        kept["t"] = x * 2.0
        return np.sum(kept["t"])

    sad.autodiff(record, Duplicated(np.ones(3), np.zeros(3)))   # reverse: a TArray
    for use in (lambda s, x: x * kept["t"], lambda s, x: (x * s) - kept["t"]):
        with pytest.raises(RuntimeError, match="two different autodiff calls"):
            sad.autodiff(use, Duplicated(0.5, 1.0), Duplicated(np.ones(3), np.ones(3)),
                         mode=sad.Forward)
    with pytest.raises(TypeError, match="cannot combine a traced value with str"):
        sad.autodiff(lambda s: np.ones(2) * s * "abc", Duplicated(0.5, 1.0), mode=sad.Forward)
    with pytest.raises(ValueError, match="could not be broadcast"):
        sad.autodiff(lambda s: (np.ones(3) * s) * np.ones(4), Duplicated(0.5, 1.0),
                     mode=sad.Forward)


# --------------------------------------------------------------------------
# the C primal of + - * / negative square

EXACT = [np.add, np.subtract, np.multiply, np.divide]
# numbers a float32 call rounds to float as numpy casts them (the int through
# a double, as numpy converts it), and edge values of float
NUMBERS32 = [0.1, -1e-45, 3.4e38, 1e-40, 2**60 + 2**36 + 1, -7, 1e39, np.inf]
EDGES32 = [0.0, -0.0, 1.5, -2.25, 1e-40, 1e-45, 3e38, -3.4e38, 0.1, 7.0, np.inf]


@pytest.mark.parametrize("ufunc", EXACT, ids=lambda u: u.__name__)
def test_exact_primal_is_numpys(monkeypatch, ufunc):
    """Special values included: C computes numpy's bits, and whatever raises
    a floating-point exception is left to numpy (checked below)."""
    x = np.array([0.0, -0.0, 1.5, -2.25, 1e-310, 3e300, np.inf, -np.inf, np.nan, 7.0])
    y = np.array([2.0, -3.0, -0.0, 0.0, 1e-300, 1e10, 1.0, np.inf, 1.0, 7.0])

    def f(a, b, s):
        with np.errstate(all="ignore"):
            return ufunc(a, b) + ufunc(a, s) - ufunc(s, b) + -a + a ** 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast, slow = run_both(monkeypatch, f, Duplicated(x, np.ones(10)),
                              Duplicated(y, np.ones(10)), Duplicated(0.5, 1.0))
    assert_same(fast, slow)


@pytest.mark.parametrize("ufunc", EXACT, ids=lambda u: u.__name__)
def test_float32_exact_primal_is_numpys(monkeypatch, ufunc):
    """C computes float32's exact operations in float, with a number rounded
    to float first, as numpy does (1e39 overflows float: numpy warns of the
    cast, and Python takes that call).  Every other call is the fast path's."""
    spy = Spy(monkeypatch, elementwise, "_fwd")
    x = np.array(EDGES32, dtype=np.float32)
    y = np.array(EDGES32[::-1], dtype=np.float32)

    def f(a, b):
        with np.errstate(all="ignore"):
            r = ufunc(a, b) + -a + a ** 2
            for k in NUMBERS32:
                r = r + ufunc(a, k) - ufunc(k, b)
        return r

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast, slow = run_both(monkeypatch, f, Duplicated(x, np.ones(x.size, np.float32)),
                              Duplicated(y, np.ones(y.size, np.float32)))
        want = f(x, y)
    assert_same(fast, slow)
    assert fast[1].dtype == np.float32 and same_bits(fast[1], want)
    assert spy.taken == 5 + 4 * len(NUMBERS32) - 2  # 1e39 twice: Python's


def nan_bits(dtype, payload, negative):
    """A quiet NaN of dtype with the given payload and sign."""
    mant, bits = np.finfo(dtype).nmant, np.dtype(dtype).itemsize * 8
    exponent = ((1 << (bits - 1 - mant)) - 1) << mant
    word = (negative << (bits - 1)) | exponent | (1 << (mant - 1)) | payload
    return np.array([word], dtype=f"u{bits // 8}").view(dtype)[0]


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("at", [0, 255, 256, 511, 999])
@pytest.mark.parametrize("ufunc", [np.add, np.multiply], ids=lambda u: u.__name__)
def test_exact_primal_leaves_a_nan_result_to_numpy(ufunc, at, dtype):
    """Which of two NaNs a sum or product gives is up to the machine code,
    and C's loop and numpy's pick differently (numpy itself by position):
    a NaN anywhere in C's result, found tile by tile (256 elements), hands
    the primal to numpy, whose bits come back."""
    nan_a, nan_b = nan_bits(dtype, 1, 0), nan_bits(dtype, 2, 1)
    assert np.isnan(nan_a) and np.isnan(nan_b) and not same_bits(nan_a, nan_b)
    x = rng.uniform(0.5, 1.5, 1000).astype(dtype)
    y = rng.uniform(0.5, 1.5, 1000).astype(dtype)
    x[at], y[at] = nan_a, nan_b
    _, v = sad.autodiff(lambda a: ufunc(a, y), Duplicated(x, np.ones(1000, dtype)),
                        mode=ForwardWithPrimal)
    assert v.dtype == dtype and same_bits(v, ufunc(x, y))


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
def test_exact_primal_layouts_follow_numpy(monkeypatch, dtype):
    """The C primal only takes operands whose result layout it knows (one
    shape, C order); numpy makes the others, in its layout."""
    layouts = []

    def f(a, b):
        for r in (a * b, a.T * b.T, a[:, :1] * b, a[::2] - b[::2], a * 2.0, b.T / 3.0):
            p = sad.primal(r)
            layouts.append((p.shape, p.strides, p.dtype))
        return a

    a, b = rng.random((4, 3)).astype(dtype), rng.random((4, 3)).astype(dtype)
    fast, slow = run_both(monkeypatch, f, Duplicated(a, np.ones((4, 3), dtype)), Const(b))
    assert layouts[:6] == layouts[6:]
    assert_same(fast, slow)


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("case", ["overflow", "divide", "invalid", "underflow"])
def test_exact_primal_keeps_numpys_floating_point_errors(case, dtype):
    big, tiny = (1e300, 1e-300) if dtype is np.float64 else (1e30, 1e-30)
    x = np.array([1.0, big, 0.0] if case != "underflow" else [1.0, tiny], dtype)
    f = {"overflow": lambda a: a * big, "divide": lambda a: 1.0 / a,
         "invalid": lambda a: a * np.inf - np.inf, "underflow": lambda a: a * 1e-20}[case]
    ann = lambda: Duplicated(x.copy(), np.ones(x.shape, dtype))  # noqa: E731
    name = {"overflow": "over", "divide": "divide", "invalid": "invalid",
            "underflow": "under"}[case]
    with pytest.raises(FloatingPointError):
        with np.errstate(**{name: "raise"}):
            sad.autodiff(f, ann(), mode=sad.Forward)
    if case != "underflow":  # numpy ignores underflow by default
        with pytest.warns(RuntimeWarning):
            sad.autodiff(f, ann(), mode=sad.Forward)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="ignore"):
            sad.autodiff(f, ann(), mode=sad.Forward)


# --------------------------------------------------------------------------
# the full sum

@pytest.mark.parametrize("lanes", [1, 2, 5])
@pytest.mark.parametrize("shape", [(), (0,), (1,), (7,), (8,), (21,), (129,), (1000,), (8193,),
                                   (3, 4), (2, 1, 9), (17, 33)])
def test_full_sum_is_numpys(monkeypatch, shape, lanes):
    spy = Spy(monkeypatch, reductions, "_fsum")

    def f(a):
        b = a * 1.5   # a fresh, C-ordered dual array
        return np.sum(b) + b.sum() + np.sum(a)

    ann = array_ann(lanes, shape)
    ann.val[...] = rng.standard_normal(shape) * 10.0 ** rng.uniform(-8, 8, shape)
    if shape == (1,):  # signed zeros: a sum starts from numpy's identity, +0
        ann.val[...] = -0.0
    fast, slow = run_both(monkeypatch, f, ann)
    assert_same(fast, slow)
    in_one_buffer = not reductions._SUM_BY_BUFFER or int(np.prod(shape)) <= np.getbufsize()
    assert spy.taken >= 2 * in_one_buffer


@pytest.mark.parametrize("bufsize", [16, 1024, 8192])
@pytest.mark.parametrize("n", [15, 16, 17, 100, 1023, 1025, 3000, 8192, 8193, 20000])
def test_full_sum_is_numpys_whatever_its_buffer(monkeypatch, bufsize, n):
    """numpy's own sum, not one version's bits: numpy < 2.3 sums buffer by
    buffer (np.getbufsize()), later ones the whole run; both, at any size."""
    ann = array_ann(2, (n,))
    ann.val[...] = rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8, n)
    for d in ann.dvals:
        d[...] = rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8, n)

    def run():
        old = np.setbufsize(bufsize)
        try:
            return run_both(monkeypatch, lambda a: np.sum(a * 1.5), ann), np.sum(ann.val * 1.5)
        finally:
            np.setbufsize(old)
    # in a context of its own: numpy keeps its settings in a context variable,
    # and a new value of it, even an equal one, would outlive the test
    (fast, slow), want = contextvars.copy_context().run(run)
    assert_same(fast, slow)
    assert same_bits(fast[1], want)


def test_full_sum_of_views_inactive_and_scalars(monkeypatch):
    def f(a, c, s):
        return (np.sum(a[::2]) + np.sum(a.T) + np.sum(a[1]) + np.sum(c) + np.sum(s)
                + np.sum(a, axis=0)[1] + np.sum(a, keepdims=True)[0, 0])

    fast, slow = run_both(monkeypatch, f, array_ann(3, (4, 6)), Const(rng.random(5)),
                          scalar_ann(3))
    assert_same(fast, slow)


def test_full_sum_keeps_numpys_warnings():
    big = np.array([1e308, 1e308])
    with pytest.warns(RuntimeWarning, match="overflow"):
        t = sad.autodiff(lambda a: np.sum(a * 1.0), Duplicated(big, np.ones(2)),
                         mode=sad.ForwardWithPrimal)
    assert t == (2.0, np.inf)


# --------------------------------------------------------------------------
# dual scalars: division inlined, arrays handed to the array's rule

EDGES = [0.0, -0.0, 1.0, -2.5, 3e-200, 1e-310, 5e-324, 1e200, 1e308, np.inf, -np.inf, np.nan]


def test_inlined_division_equals_scalar_op():
    """FScalar / FScalar inlines the C partials 1/y and -x/y² where they are
    finite; elsewhere it is scalar_op itself."""
    values = EDGES + list(rng.standard_normal(6) * 10.0 ** rng.uniform(-5, 5, 6))
    tangents = [0.0, 1.0, -0.5, np.inf, 1e300]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in values:
            for y in values:
                for dx, dy in zip(tangents, tangents[::-1]):
                    got = dual.FScalar(x, dx, None) / dual.FScalar(y, dy, None)
                    want = dual.scalar_op(dual._DIV, dual._div, x, dx, y, dy, None)
                    assert same_bits(got.v, want.v) and same_bits(got.d, want.d), (x, y, dx, dy)
                    assert type(got.v) is type(want.v) and type(got.d) is type(want.d)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "truediv", "pow"])
def test_dual_scalar_hands_a_dual_array_to_its_rule(monkeypatch, name):
    ufunc = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.divide,
             "pow": np.power}[name]
    op = getattr(dual.FScalar, f"__{name}__")
    rop = getattr(dual.FScalar, f"__r{name}__")

    def f(s, a):
        return (op(s, a), rop(s, a), ufunc(s, a), ufunc(a, s))

    (t, v), _ = run_both(monkeypatch, f, Duplicated(0.6, 1.0), array_ann(1, (5,)))
    assert same_bits(t[0], t[2]) and same_bits(v[0], v[2])
    assert same_bits(t[1], t[3]) and same_bits(v[1], v[3])


# --------------------------------------------------------------------------
# what forward mode registers with the extension

def test_registration_refuses_classes_without_the_c_bases():
    class Loose:
        pass

    args = [dual.FArray, dual.FScalar, Loose, dual.Context, np.float64, np.empty,
            elementwise._fwd_result, elementwise.tape_var, "a temporary array", np.add]
    with pytest.raises(TypeError, match="argument 2 must be a subclass of .*BufferBase"):
        fast.register_forward(*args)
    args[2] = elementwise.Buffer
    args[9] = np.isnan  # no float64 loop of two operands
    with pytest.raises(TypeError, match="float64 loop"):
        fast.register_forward(*args)
    with pytest.raises(TypeError, match="takes 10 arguments"):
        fast.register_forward(*args[:3])
    with pytest.raises(TypeError, match="fsum takes 1 argument"):
        fast.fsum(object(), np.ones(2))
