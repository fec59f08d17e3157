"""Cross-engine conformance (issue #14, item 2): for every primitive
(tests/conformance_cases.py lists them from the registries, with their
cases), on ordinary and edge inputs, every engine gives the same derivative:

* ``reverse``        -- the C reverse sweep (the reference below),
* ``forward``        -- forward mode, one unit direction per call,
* ``batch``          -- forward mode, all unit directions as BatchDuplicated lanes,
* ``jacobian(F)``, ``jacobian(R)`` -- sad.jacobian in both modes,
* ``nested reverse``, ``nested forward``, ``nested jacobian(F|R)`` -- the same calls
  while an outer differentiation is running (the nested engine), and
  ``nested, x from the outer`` -- the inner gradient at a value of the outer
  differentiation (for the cases that do not write to x).

"The same" is bit for bit (NaN positions and signed zeros included) for
cases whose engines evaluate the same arithmetic; for ``exact=False`` cases
(products, linalg, and programs where x reaches the result along several
paths: forward and reverse mode add their terms in different orders) NaN, inf
and zero sit at the same places and finite values agree to 1e-12.  At the ordinary input every case also gets
finite differences (when smooth), the dot-product test, restore=True bit for
bit and accumulate-once (shadowad.testing).

An engine that lacks a primitive, or a known divergence, is a strict xfail
naming it: the mark fails once support lands or the divergence is fixed."""
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, BatchDuplicated, Duplicated
from shadowad.testing import (check_accumulate_once, check_dot_product, check_forward,
    check_gradient, check_restore)

from conformance_cases import (CASES, nested_unsupported, primitives,
                               registered_functions)

# numpy warns about the primal values (log(0), an unselected sqrt(-1), ...): expected here
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

ENGINES = ["forward", "batch", "jacobian(F)", "jacobian(R)", "nested reverse", "nested forward",
           "nested jacobian(F)", "nested jacobian(R)"]


def reverse(f, x):
    dx = np.zeros_like(x)
    sad.autodiff(f, Duplicated(x.copy(order="K"), dx))
    return dx


def forward(f, x):
    if x.size == 0:  # no direction, but f still runs (with an empty tangent)
        sad.autodiff(f, Duplicated(x.copy(order="K"), np.zeros_like(x)), mode=sad.Forward)
    out = np.empty(x.shape)
    for j in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[j] = 1.0
        out[j] = sad.autodiff(f, Duplicated(x.copy(order="K"), e), mode=sad.Forward)
    return out


def batch(f, x):
    if x.size == 0:
        return np.zeros(x.shape)
    eye = np.eye(x.size).reshape((x.size,) + x.shape)
    t = sad.autodiff(f, BatchDuplicated(x.copy(order="K"), tuple(eye)), mode=sad.Forward)
    return np.array(t, dtype=float).reshape(x.shape)


def nested(run):
    """run() while an outer differentiation is running (the nested engine)."""
    box = {}

    def outer(s):
        box["v"] = run()
        return s * 2.0
    sad.gradient(outer, 1.0)
    return box["v"]


def nested_traced(f, x):
    """The inner gradient of f at x * s, a value of the outer differentiation
    (s = 1.0, so x * s is x bit for bit); f must not write to x (Active)."""
    box = {}

    def outer(s):
        g = sad.autodiff(f, Active(x * s))[0]
        box["v"] = np.array(sad.primal(g), dtype=float)
        return np.sum(g) * 0.0 + s
    sad.gradient(outer, 1.0)
    return box["v"]


def derivative(engine, f, x):
    try:
        return _derivative(engine, f, x)
    except (TypeError, NotImplementedError) as e:
        # The same exception, raised afresh: pytest formats the traceback of every
        # expected failure, and the nested engine's are deep (30 s for the suite).
        raise type(e)(*e.args) from None


def _derivative(engine, f, x):
    if engine == "reverse":
        return reverse(f, x)
    if engine == "forward":
        return forward(f, x)
    if engine == "batch":
        return batch(f, x)
    if engine == "jacobian(F)":
        return sad.jacobian(f, x.copy(order="K"), mode=sad.Forward)
    if engine == "jacobian(R)":
        return sad.jacobian(f, x.copy(order="K"), mode=sad.Reverse)
    if engine == "nested reverse":
        return nested(lambda: reverse(f, x))
    if engine == "nested forward":
        return nested(lambda: forward(f, x))
    if engine == "nested jacobian(F)":
        return nested(lambda: sad.jacobian(f, x.copy(order="K"), mode=sad.Forward))
    if engine == "nested jacobian(R)":
        return nested(lambda: sad.jacobian(f, x.copy(order="K"), mode=sad.Reverse))
    if engine == "nested, x from the outer":
        return nested_traced(f, x)
    raise ValueError(engine)


def same_bits(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def same_values(a, b):
    """Equal values, signed zeros told apart, NaN where NaN (of any sign or payload)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return (a.shape == b.shape and np.array_equal(a, b, equal_nan=True) and
            np.array_equal(np.signbit(a) | np.isnan(a), np.signbit(b) | np.isnan(b)))


def same_specials(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return (a.shape == b.shape and np.array_equal(np.isnan(a), np.isnan(b)) and
            np.array_equal(np.where(np.isinf(a), a, 0.0), np.where(np.isinf(b), b, 0.0)) and
            np.array_equal(a == 0.0, b == 0.0) and
            np.allclose(a, b, rtol=1e-12, atol=1e-300, equal_nan=True))


def _marks(c, k, engine):
    if engine.startswith("nested") and c.nested:
        return [pytest.mark.xfail(strict=True, raises=nested_unsupported(c.nested_raises_name),
                                  reason=c.nested)]
    for (e, kk), reason in c.diverge.items():
        if e == engine and kk in (None, k):
            reason, raises = reason if type(reason) is tuple else (reason, AssertionError)
            return [pytest.mark.xfail(strict=True, raises=raises, reason=reason)]
    return []


def _reads_only(c):
    x = c.inputs[0].copy(order="K")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        c.f(x)
    return same_bits(x, c.inputs[0])


# The nested engine once more, with x a value of the outer differentiation (the
# inner Box then wraps a traced array): for the cases that only read x
NESTED_TRACED = "nested, x from the outer"
AGREEMENT = [pytest.param(c, k, e, id=f"{c.name}-{k}-{e}", marks=_marks(c, k, e))
             for c in CASES for k in range(len(c.inputs))
             for e in ENGINES + ([NESTED_TRACED] if _reads_only(c) else [])]


@pytest.mark.parametrize("c,k,engine", AGREEMENT)
def test_engines_agree(c, k, engine):
    x = c.inputs[k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's, on the primal values
        want = reverse(c.f, x)
        try:
            got = derivative(engine, c.f, x)
        except Exception as e:
            if engine.startswith("nested") and c.nested and c.nested_message not in str(e):
                raise AssertionError(f"the nested engine was expected to refuse "
                                     f"{c.nested_message!r}, but raised {e!r}") from None
            raise
    agree = same_bits if c.exact else same_specials
    assert agree(got, want), (f"{c.name} at x={x.tolist()}: {engine} gives {np.asarray(got).tolist()}, "
                              f"reverse mode {want.tolist()}")


ORDINARY = [pytest.param(c, id=c.name) for c in CASES]


@pytest.mark.parametrize("c", [pytest.param(c, id=c.name) for c in CASES if c.smooth])
def test_finite_differences(c):
    check_gradient(c.f, Duplicated(c.inputs[0].copy(order="K"), np.zeros_like(c.inputs[0])))


@pytest.mark.parametrize("c", [pytest.param(c, id=c.name) for c in CASES if c.smooth])
def test_forward_finite_differences_and_lanes(c):
    check_forward(c.f, c.inputs[0].copy(order="K"))


@pytest.mark.parametrize("c", ORDINARY)
def test_dot_product(c):
    check_dot_product(c.f, Duplicated(c.inputs[0].copy(order="K"), np.zeros_like(c.inputs[0])))


@pytest.mark.parametrize("c", ORDINARY)
def test_restore_and_accumulate_once(c):
    check_restore(c.f, Duplicated(c.inputs[0].copy(order="K"), np.zeros_like(c.inputs[0])))
    check_accumulate_once(c.f, Duplicated(c.inputs[0].copy(order="K"), np.zeros_like(c.inputs[0])))


@pytest.mark.parametrize("c", [pytest.param(c, id=c.name) for c in CASES if _reads_only(c)])
def test_nonzero_initial_shadow_is_added_to(c):
    """A pre-filled shadow of an x that f only reads comes back as itself
    plus the gradient (to rounding: the sweep adds record by record)."""
    x = c.inputs[0]
    start = np.linspace(-1.0, 1.0, x.size).reshape(x.shape) + 0.25
    dx = start.copy()
    sad.autodiff(c.f, Duplicated(x.copy(order="K"), dx))
    # the sweep adds each record's contribution in turn: rounding may differ from one sum
    np.testing.assert_allclose(dx, start + reverse(c.f, x), rtol=1e-13, atol=1e-15)


def test_every_primitive_has_a_case():
    covered = {p for c in CASES for p in c.covers}
    missing = sorted(primitives() - covered)
    assert not missing, f"primitives with no conformance case: {missing}"


def test_nested_engine_runs_what_it_supports():
    """A function in the nested engine's table is run there by some case (not
    only by cases it must refuse for another primitive)."""
    run = {p for c in CASES if not c.nested for p in c.covers}
    missing = sorted(set(registered_functions("nested").values()) - run)
    assert not missing, f"nested-supported functions no case runs in the nested engine: {missing}"


def test_cases_cover_only_primitives():
    """A covers entry that names no primitive is a typo (or a primitive that left)."""
    stale = sorted({p for c in CASES for p in c.covers} - primitives())
    assert not stale, f"cases cover names that are not primitives: {stale}"


@pytest.mark.parametrize("method", ["item", "tolist"])
def test_detaching_methods_raise(method):
    """x.item() and x.tolist() would drop the derivative: they raise instead."""
    def f(x):
        getattr(x, method)()
        return np.sum(x)
    with pytest.raises(TypeError, match=method):
        sad.gradient(f, np.ones(2))
    with pytest.raises(TypeError, match=method):
        sad.autodiff(f, Duplicated(np.ones(2), np.ones(2)), mode=sad.Forward)


def _last_write_wins(x):
    y = np.zeros_like(x)
    y[[0, 0]] = x[1:3]
    return np.sum(y)


# docs/conventions-nonelementwise.md: each convention's values, in every engine
CONVENTIONS = {
    "max ties split evenly": (np.max, [3.0, 1.0, 3.0], [0.5, 0.0, 0.5]),
    "max: a NaN takes the derivative": (np.max, [1.0, np.nan, 3.0], [0.0, 1.0, 0.0]),
    "max: NaNs split it": (np.max, [np.nan, np.nan, 3.0], [0.5, 0.5, 0.0]),
    "max: signed zeros tie": (np.max, [-0.0, 0.0], [0.5, 0.5]),
    "min ties split evenly": (np.min, [1.0, 1.0, 3.0], [0.5, 0.5, 0.0]),
    "max over an axis, per slice": (lambda x: np.sum(np.max(x, axis=0)), [[1.0, 2.0], [1.0, 0.0]],
                                    [[0.5, 1.0], [0.5, 0.0]]),
    "argmax indexing: numpy's first": (lambda x: x[np.argmax(x)], [3.0, 1.0, 3.0], [1.0, 0.0, 0.0]),
    "clip: 1 inside and at the bounds, 0 outside, NaN passes": (
        lambda x: np.sum(np.clip(x, -1.0, 1.0)), [-1.0, 1.0, 0.5, -2.0, 2.0, np.nan],
        [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]),
    "where: the unselected branch gives nothing": (
        lambda x: np.sum(np.where(x > 0.0, np.log(x), 0.0)), [0.0, -1.0, 2.0], [0.0, 0.0, 0.5]),
    "sort ties: argsort's (stable) order": (
        lambda x: np.sum(x[np.argsort(x, kind="stable")] * np.array([1.0, 2.0, 3.0])),
        [2.0, 1.0, 2.0], [2.0, 1.0, 3.0]),
    "det at a singular matrix: the cofactors": (np.linalg.det, [[1.0, 2.0], [2.0, 4.0]],
                                                [[4.0, -2.0], [-2.0, 1.0]]),
    "det at zero": (np.linalg.det, [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]),
    "det with an infinite entry: the minors": (np.linalg.det, [[np.inf, 0.0], [0.0, 1.0]],
                                                [[1.0, 0.0], [0.0, np.inf]]),
    "det with a subnormal determinant: the cofactors": (
        np.linalg.det, np.diag([2.5e-310, 1.0, 2.0]), np.diag([2.0, 5e-310, 2.5e-310])),
    "slogdet at a nearly singular matrix: inv(A)^T, inf only where it overflows": (
        lambda x: np.linalg.slogdet(x)[1], [[2.5e-310, 1e-300], [0.0, 1.0]],
        [[np.inf, 0.0], [-4e9, 1.0]]),
    "slogdet with an infinite entry: inv(A)^T": (lambda x: np.linalg.slogdet(x)[1],
                                                 [[np.inf, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 1.0]]),
    "slogdet at a singular matrix: NaN": (lambda x: np.linalg.slogdet(x)[1],
                                          [[1.0, 2.0], [2.0, 4.0]], [[np.nan] * 2] * 2),
    "a derivative of -0.0 is +0.0 (added into a zero shadow)": (
        lambda x: np.sum(x * x), [-0.0, -0.0], [0.0, 0.0]),
    "prod: the product of the others": (np.prod, [0.0, np.inf, 3.0], [np.inf, 0.0, np.nan]),
    "2-norm written out, at zero: 0": (lambda x: np.sqrt(np.sum(x * x)), [0.0, 0.0], [0.0, 0.0]),
    "clip at an array bound: x takes it all": (lambda x: np.sum(np.clip(x[:1], x[1:], 5.0)),
                                               [1.0, 1.0], [1.0, 0.0]),
    "clip with a NaN bound: the bound takes it": (lambda x: np.sum(np.clip(x[:1], x[1:], 5.0)),
                                                  [1.0, np.nan], [0.0, 1.0]),
    "clip with NaN x and a NaN bound: the bound": (
        lambda x: np.sum(np.clip(x[:2], x[2:4], x[4:])), [np.nan, 1.0, np.nan, 0.0, 5.0, np.nan],
        [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]),
    "clip of scalars with a NaN bound: the bound": (
        lambda x: np.clip(x[0], x[1], x[2]) + 2.0 * np.clip(x[3], x[4], x[5]),
        [np.nan, np.nan, 5.0, 1.0, 0.0, np.nan], [0.0, 1.0, 0.0, 0.0, 0.0, 2.0]),
    "clip with a NaN x: x takes it": (lambda x: np.sum(np.clip(x, -1.0, 1.0)) + np.clip(x[0], -1.0, 1.0),
                                      [np.nan, 0.5], [2.0, 1.0]),
    "fancy reads: repeats add up": (lambda x: np.sum(x[[0, 0, 1]]), [1.0, 2.0, 3.0], [2.0, 1.0, 0.0]),
    "fancy writes: the last write wins": (_last_write_wins, [1.0, 2.0, 3.0], [0.0, 0.0, 1.0]),
}
NESTED_LACKS = {}
NESTED_RAISES = {}


CONVENTION_DIVERGENCES = {
}


def _convention_params():
    for name, (f, x, want) in CONVENTIONS.items():
        for engine in ["reverse"] + ENGINES:
            marks = []
            if (name, engine) in CONVENTION_DIVERGENCES:
                marks = [pytest.mark.xfail(strict=True, raises=AssertionError,
                                           reason=CONVENTION_DIVERGENCES[name, engine])]
            if engine.startswith("nested") and NESTED_LACKS.get(name):
                raises = nested_unsupported(NESTED_RAISES.get(name, "UnsupportedError"))
                marks = [pytest.mark.xfail(strict=True, raises=raises,
                                           reason=f"nested engine lacks {NESTED_LACKS[name]} (#14)")]
            yield pytest.param(name, engine, id=f"{name}-{engine}", marks=marks)


@pytest.mark.parametrize("name,engine", list(_convention_params()))
def test_documented_conventions(name, engine):
    f, x, want = CONVENTIONS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = derivative(engine, f, np.array(x, dtype=float))
    # det's cofactors come from an SVD at singular matrices: to rounding
    assert same_specials(got, want) if "det" in name else same_values(got, want), (
        f"{name}: {engine} gives {np.asarray(got).tolist()}, the convention says {want}")


@pytest.mark.parametrize("fn", [np.linalg.inv, lambda a: np.linalg.solve(a, np.ones(2))],
                         ids=["inv", "solve"])
@pytest.mark.parametrize("engine", ["reverse", "forward", "batch", "jacobian(F)", "jacobian(R)"])
def test_singular_inverse_raises_in_every_engine(fn, engine):
    """numpy raises LinAlgError on a singular matrix: so does every engine
    (never a gradient of inf/NaN made up after the fact)."""
    with pytest.raises(np.linalg.LinAlgError):
        derivative(engine, lambda x: np.sum(fn(x)), np.array([[1.0, 2.0], [2.0, 4.0]]))


@pytest.mark.parametrize("engine", ["reverse", "forward", "batch", "jacobian(F)", "jacobian(R)",
                                    "nested reverse", "nested forward"])
def test_det_at_non_finite_matrices_takes_the_minors(engine):
    """At a matrix holding NaN (where an SVD fails) every engine gives the
    cofactors as numpy's determinants of the minors: no LinAlgError from
    inside the sweep, and an entry whose minor is finite keeps its derivative."""
    x = np.array([[0.0, -np.inf, 1.0], [np.nan, np.nan, 0.0], [0.0, -0.0, 0.0]])
    want = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            minor = np.delete(np.delete(x, i, axis=0), j, axis=1)
            want[i, j] = (-1.0) ** (i + j) * np.linalg.det(minor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = derivative(engine, np.linalg.det, x)
    assert same_specials(got, want), (engine, got.tolist(), want.tolist())
    assert np.isnan(got).any() and not np.isnan(got).all()


@pytest.mark.parametrize("x", [np.eye(3) * 1e200, np.diag([1e200, 1e200, 2.0]),
                               np.array([[1e200, 1.0], [2.0, 1e200]]),
                               np.array([[1e-200, 0.0], [3.0, 1e-200]])],
                         ids=["eye*1e200", "diag", "2x2 huge", "2x2 tiny"])
@pytest.mark.parametrize("engine", ["reverse", "forward", "batch", "jacobian(F)", "jacobian(R)",
                                    "nested reverse", "nested forward"])
def test_det_whose_value_overflows_has_the_minors_as_cofactors(engine, x):
    """det(A) overflows (or underflows) while A is finite: the cofactors are
    the minors' determinants, never inf * 0 = NaN from det * inv(A), and not
    an SVD's, whose error is relative to the largest cofactor."""
    want = np.empty(x.shape)
    n = x.shape[0]
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(x, i, axis=0), j, axis=1)
            want[i, j] = (-1.0) ** (i + j) * np.linalg.det(minor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = derivative(engine, np.linalg.det, x)
    assert not np.isnan(got).any(), (engine, got.tolist())
    np.testing.assert_allclose(got, want, rtol=1e-13)
