"""float32 conformance of every primitive in reverse mode: each case of the
conformance suite (tests/conformance_cases.py ``CASES``) run on float32 data.

At the ordinary input (``inputs[0]``, rounded to float32) each case checks

* the gradient: float32, and equal to the float64 gradient of the same
  program at the same point to a float32 tolerance,
* the value and the final primal (f may write x) bit for bit and dtype for
  dtype against numpy running f on a plain float32 copy (numpy's float32
  result is np.float32 here too: no silent float64),
* restore=True gives x back bit for bit,
* float32 arithmetic: no adjoint is computed in float64 from float32 values
  (the checker below watches every primitive's vjp and every addition into a
  float32 shadow).

Each case runs twice: as written (``wsum`` weights its result with float64
weights, so numpy promotes the result to float64) and with the weights in
float32, which makes most programs float32 from end to end.  The edge inputs
check that the float32 gradient is finite where the float64 one is and NaN
where it is NaN (an input float32 does not hold -- a float64 subnormal
flushes to zero, 1e200 overflows -- is a skip saying so).  Every entry of the
elementwise partials table runs too, at edge and ordinary points.

numpy's own float32 rules are the reference where it computes in float64:
np.linalg runs LAPACK in float64 and rounds the results to float32, np.interp
and np.float_power compute in float64, scipy's polygamma has no float32
loop; shadowad's formulas call the same functions.

A known failure is a strict xfail naming the primitive."""
import contextlib
import itertools
import sys
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Duplicated
from shadowad.engines.rules import adjoints, derived, linalg as linalg_rules
from shadowad.primitives.protocol import DerivedRule

import conformance_cases
from conformance_cases import CASES

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
VARIANTS = ("as written", "float32 weights")

_weights64 = conformance_cases.weights


@contextlib.contextmanager
def variant(name):
    """Run the cases with wsum's weights in float64 (as written) or float32."""
    if name == "as written":
        yield
        return
    conformance_cases.weights = lambda shape: _weights64(shape).astype(F32)
    try:
        yield
    finally:
        conformance_cases.weights = _weights64


# --------------------------------------------------------------------------
# the float32-arithmetic checker

def _float_dtypes(values):
    """The dtypes of the floating arrays and numpy scalars among values."""
    out = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out.extend(_float_dtypes(v))
        elif isinstance(v, (np.ndarray, np.generic)) and v.dtype.kind == "f":
            out.append(v.dtype)
    return out


class Float64Watch:
    """Records (primitive, operand) whose adjoint came out float64 though
    every floating value it was computed from was float32, and every
    float64 adjoint added into a float32 shadow (legitimate only where the
    program itself promotes: numpy's float32 * float64 is float64)."""

    def __init__(self):
        self.vjps, self.additions = set(), set()
        self.rule = None  # the primitive whose reverse is running

    @contextlib.contextmanager
    def watching(self):
        watch = self
        reverse, add_into = DerivedRule.reverse, adjoints.add_into

        def checked_reverse(rule, config, dret, tape, *args, **params):
            prim = rule.prim
            vjp = prim.vjp

            def checked_vjp(k, g, vals, out, params):
                c = vjp(k, g, vals, out, params)
                inputs = _float_dtypes([g, vals, out])
                if inputs and all(d == F32 for d in inputs) and F64 in _float_dtypes([c]):
                    watch.vjps.add((prim.name, k))
                return c
            prim.vjp, watch.rule = checked_vjp, prim.name
            try:
                return reverse(rule, config, dret, tape, *args, **params)
            finally:
                prim.vjp, watch.rule = vjp, None

        def checked_add_into(s, g, fresh=False):
            if s.dtype == F32 and F64 in _float_dtypes([g]):
                watch.additions.add(watch.rule or _caller())
            return add_into(s, g, fresh)

        DerivedRule.reverse = checked_reverse
        adjoints.add_into = checked_add_into
        linalg_rules.add_into = checked_add_into
        try:
            yield self
        finally:
            DerivedRule.reverse = reverse
            adjoints.add_into = add_into
            linalg_rules.add_into = add_into


def _caller():
    """Where a float64 adjoint came from: the first frame outside adjoints.py
    and the protocol's delivery."""
    f = sys._getframe(2)
    while f is not None and f.f_code.co_filename.endswith(
            ("adjoints.py", "protocol.py", "derived.py")):
        f = f.f_back
    return "?" if f is None else f"{f.f_code.co_filename.split('shadowad/')[-1]}:{f.f_code.co_name}"


# --------------------------------------------------------------------------
# running a case

def _f32(x):
    return x.astype(F32, order="K")


def representable(x):
    """Does float32 hold x exactly (NaN, inf and signed zeros included)?"""
    with np.errstate(all="ignore"):
        back = _f32(x).astype(F64)
    return (np.array_equal(back, x, equal_nan=True)
            and np.array_equal(np.signbit(back), np.signbit(x)))


def numpy_run(f, x):
    """f on a plain copy of x: (value, x after)."""
    xn = x.copy(order="K")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = f(xn)
    return v, xn


def shadowad_run(f, x, watch=None):
    """Reverse mode on a copy of x: (gradient, value, x after)."""
    xs, dx = x.copy(order="K"), np.zeros_like(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with (watch.watching() if watch else contextlib.nullcontext()):
            _, v = sad.autodiff(f, Duplicated(xs, dx), mode=sad.ReverseWithPrimal)
    return dx, v, xs


def reads_only(c):
    x = c.inputs[0].copy(order="K")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c.f(x)
    return x.tobytes() == c.inputs[0].tobytes()


_RUNS = {}


def run(c, var):
    """The float32 and float64 runs of case c at its ordinary input (once)."""
    key = (c.name, var)
    if key not in _RUNS:
        x32 = _f32(c.inputs[0])
        watch = Float64Watch()
        with variant(var):
            _RUNS[key] = dict(
                x32=x32, numpy=numpy_run(c.f, x32), float32=shadowad_run(c.f, x32, watch),
                float64=shadowad_run(c.f, x32.astype(F64, order="K")), watch=watch)
    return _RUNS[key]


# --------------------------------------------------------------------------
# known failures: (case name, check or "*" for every check, variant or None
# for both) -> reason

KNOWN = {
    ("tests_of_values", "gradient", None): (
        "not a failure of a primitive: the program branches on np.result_type(x) == float64, "
        "so float32 takes the other branch (the float64 gradient is of another program)"),
    ("lstsq", "primal", None): (
        "np.linalg.lstsq: shadowad's residuals are the sum of squares of b - A x, numpy's come "
        "from LAPACK's gelsd: equal to rounding only, as in float64"),
}


# numpy's own float32 results that changed between versions: the rule follows the
# numpy of the machine that wrote it (its float64 results agree on every version)
_OLD_NUMPY = np.lib.NumpyVersion(np.__version__) < "2.4.0"
VERSIONED = {
    ("quantile_percentile", "primal"): (
        _OLD_NUMPY, "numpy < 2.4 rounds float32 quantiles' interpolation otherwise (the "
                    "rule follows numpy 2.4; float64 agrees on every version)"),
}


def _marks(name, check, var):
    for key in ((name, check, var), (name, check, None), (name, "*", None)):
        if key in KNOWN:
            return [pytest.mark.xfail(strict=True, reason=KNOWN[key])]
    old, why = VERSIONED.get((name, check), (False, ""))
    return [pytest.mark.skip(reason=why)] if old else []


def _params(check, cases=CASES):
    for c in cases:
        for var in VARIANTS:
            yield pytest.param(c, var, id=f"{c.name}-{var.replace(' ', '_')}",
                               marks=_marks(c.name, check, var))


def _tolerance(c):
    return TOLERANCE.get(c.name, 1e-3)


# Per-case loosening of the float32 tolerance (relative to max(1, max|g64|)), with why.
TOLERANCE = {
}


@pytest.mark.parametrize("c,var", list(_params("gradient")))
def test_gradient_matches_float64(c, var):
    r = run(c, var)
    g32, g64 = r["float32"][0], r["float64"][0]
    assert g32.dtype == F32
    assert np.array_equal(np.isnan(g32), np.isnan(g64)), (g32.tolist(), g64.tolist())
    fin = np.isfinite(g64)
    assert np.array_equal(np.isfinite(g32), fin), (g32.tolist(), g64.tolist())
    scale = max(1.0, float(np.max(np.abs(g64[fin]), initial=0.0)))
    err = float(np.max(np.abs(g32[fin].astype(F64) - g64[fin]), initial=0.0))
    assert err <= _tolerance(c) * scale, (f"{c.name}: |g32 - g64| = {err:.3g} (scale {scale:.3g}):"
                                          f" {g32.tolist()} vs {g64.tolist()}")


@pytest.mark.parametrize("c,var", list(_params("active", [c for c in CASES if reads_only(c)])))
def test_active_gradient_is_float32(c, var):
    x32 = run(c, var)["x32"]
    with variant(var), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        g = sad.autodiff(c.f, Active(x32.copy(order="K")))[0]
    assert type(g) is np.ndarray and g.dtype == F32
    assert np.array_equal(g, run(c, var)["float32"][0], equal_nan=True)


def _same(a, b):
    """Bit for bit: dtype, shape and values (NaN where NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("c,var", list(_params("primal")))
def test_value_and_primal_as_numpy(c, var):
    r = run(c, var)
    vn, xn = r["numpy"]
    _, v, xs = r["float32"]
    assert _same(xs, xn), f"x after f: {xs.tolist()} vs numpy's {xn.tolist()}"
    # numpy's float32 result is np.float32 here too (no silent float64)
    want = np.result_type(vn) if isinstance(vn, (np.generic, np.ndarray)) else F64
    assert np.result_type(v) == want, f"value {v!r} ({type(v).__name__}), numpy's {vn!r}"
    if type(vn) is np.float32:
        assert type(v) is np.float32, f"value {v!r} ({type(v).__name__}), numpy's {vn!r}"
    assert _same(v, np.asarray(vn, dtype=want)), f"value {v!r}, numpy's {vn!r}"


@pytest.mark.parametrize("c,var", list(_params("restore")))
def test_restore_bit_for_bit(c, var):
    x32 = run(c, var)["x32"]
    xs = x32.copy(order="K")
    with variant(var), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sad.autodiff(c.f, Duplicated(xs, np.zeros_like(xs)), restore=True)
    assert xs.dtype == F32 and xs.tobytes() == x32.tobytes()


@pytest.mark.parametrize("c,var", list(_params("float32 arithmetic")))
def test_adjoints_in_float32(c, var):
    """No vjp turns float32 values into a float64 adjoint; and where numpy
    keeps the whole program in float32 (its result is float32), no float64
    adjoint reaches a float32 shadow."""
    r = run(c, var)
    watch = r["watch"]
    assert not watch.vjps, f"vjps computing in float64 from float32 values: {sorted(watch.vjps)}"
    vn = r["numpy"][0]
    if np.result_type(vn) == F32:
        assert not watch.additions, ("float64 adjoints added into float32 shadows (from "
                                     f"{sorted(watch.additions)})")


def _edge_params():
    for c in CASES:
        for k, x in enumerate(c.inputs[1:], 1):
            for var in VARIANTS:
                marks = _marks(c.name, f"edge {k}", var)
                if not representable(x):
                    marks = [pytest.mark.skip(reason="float32 does not hold this input (a float64 "
                                                     "subnormal flushes to 0, 1e200 overflows)")]
                yield pytest.param(c, k, var, id=f"{c.name}-{k}-{var.replace(' ', '_')}",
                                   marks=marks)


@pytest.mark.parametrize("c,k,var", list(_edge_params()))
def test_edge_inputs_finite_and_nan_alike(c, k, var):
    x64 = c.inputs[k]
    with variant(var):
        g32 = shadowad_run(c.f, _f32(x64))[0]
        g64 = shadowad_run(c.f, x64)[0]
    assert g32.dtype == F32
    assert np.array_equal(np.isnan(g32), np.isnan(g64)), (g32.tolist(), g64.tolist())
    assert np.array_equal(np.isfinite(g32), np.isfinite(g64)), (g32.tolist(), g64.tolist())


# --------------------------------------------------------------------------
# the elementwise primitives (tests/test_conformance_elementwise.py runs the
# partials table in float64): every entry and spelling on float32 operands,
# at edge values float32 holds and ordinary ones

def _elementwise_params():
    from shadowad.primitives.elementwise import TABLE
    for name in sorted(TABLE):
        for u in TABLE[name].ufuncs:
            yield pytest.param(TABLE[name], u, id=f"{name}-{u.__name__}")


_EW_POINTS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -2.5, 2.0, 0.3, 0.7, -0.4]


@pytest.mark.parametrize("entry,ufunc", list(_elementwise_params()))
def test_elementwise_entries(entry, ufunc):
    pts = ([(v,) for v in _EW_POINTS] if entry.arity == 1
           else list(itertools.product(_EW_POINTS, _EW_POINTS)))
    x64 = np.array([p[k] for k in range(entry.arity) for p in pts])
    n = len(pts)

    def f(x):
        return np.sum(ufunc(*[x[k * n:(k + 1) * n] for k in range(entry.arity)]))
    x32 = _f32(x64)
    watch = Float64Watch()
    g32, v, xs = shadowad_run(f, x32, watch)
    g64 = shadowad_run(f, x64)[0]
    vn = numpy_run(f, x32)[0]
    assert g32.dtype == F32 and _same(v, vn), (v, vn)
    # np.float_power computes in float64 (numpy's own loop does): its adjoint is float64 and
    # rounds once, where it reaches the float32 input's memory, as a cast's adjoint does
    additions = set() if ufunc is np.float_power else watch.additions
    assert not watch.vjps and not additions, (sorted(watch.vjps), sorted(additions))
    assert np.array_equal(np.isnan(g32), np.isnan(g64))
    fin = np.isfinite(g64) & np.isfinite(g32)
    assert np.array_equal(np.isfinite(g32), np.isfinite(g64)), [
        (p, a, b) for p, a, b in zip(np.tile(pts, (entry.arity, 1)).tolist(), g32, g64)
        if np.isfinite(a) != np.isfinite(b)][:5]
    err = np.abs(g32[fin].astype(F64) - g64[fin]) / np.maximum(1.0, np.abs(g64[fin]))
    assert err.max(initial=0.0) <= 1e-3, err.max()
