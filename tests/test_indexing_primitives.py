"""Indexing defined once (shadowad/primitives/indexing.py): take (a[idx]),
its transpose scatter_add, and the mutating put (a[idx] = v).

* every fast path (the reverse engine's advanced read and write records, its
  C element loads, element stores and basic-slice copies; the forward
  engine's lanes-at-once reads and writes) gives the generic derivation's
  bits, including signed zeros, subnormals and huge adjoints;
* the nested engine differentiates fancy and boolean indexing and np.take:
  second derivatives in the four pairs of modes, third in all eight, against
  finite differences;
* the record protocol's ``mutates``: memory as before the call in reverse,
  the written entries' adjoint moved to the value and zeroed.
"""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, Forward, Reverse
from shadowad.primitives import core, indexing as defs
from shadowad.primitives.protocol import Config, DerivedRule
from shadowad.engines.rules import indexing
from test_nested import c_gradient, nested_gradient

F, R = Forward, Reverse
rng = np.random.default_rng(14)
X = rng.standard_normal((3, 4))
X[0, 1], X[2, 2] = -0.0, 5e-324
# adjoint weights: zeros of both signs, a subnormal, huge values
W = rng.standard_normal((3, 4))
W[0, 0], W[1, 1], W[2, 3], W[1, 3] = 0.0, -0.0, 5e-324, 1e300


def _same_bits(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def _both(run):
    fast = run()
    with core.generic_only():
        generic = run()
    return fast, generic


def _put(y, idx, v):
    y[idx] = v
    return y


READS = {
    "distinct": lambda x: x[:, [2, 0, 1]] * W[:, :3],
    "repeated": lambda x: x[[0, 0, 2, 0], 1:] * W[[1, 2, 0, 1], :3],
    "mask": lambda x: x[x > 0] ** 2,
    "two-arrays": lambda x: x[[0, 2, 2, 1], [1, 3, 1, 1]] * W[1],
    "bool-row": lambda x: x[np.array([True, False, True])] * W[:2],
    "np.take": lambda x: np.take(x, [3, 0, 3], axis=1) * W[:, :3],
    "np.take-flat": lambda x: np.take(x, [5, 5, 0, 11]) * W[0],
    "separated": lambda x: x[[0, 2], :, None][:, 1:] * 2.0,
}

WRITES = {
    "distinct": lambda x: _put(x * 1.0, (slice(None), [1, 3]), x[:, :2] ** 2),
    "repeated": lambda x: _put(x * 2.0, [0, 0, 1], x[[2, 1, 0]] ** 2),
    "mask": lambda x: _put(x * 1.5, x > 0, x[x > 0] ** 3),
    "broadcast": lambda x: _put(x * 1.0, [0, 2], x[1] * 3.0),
    "constant-value": lambda x: _put(x * 1.0, [2, 0], np.ones(4)),
    "into-constant": lambda x: _put(np.zeros_like(x) + X, [1], x[0] * x[2]),
    "element": lambda x: _put(x * 1.0, (1, 2), x[0, 0] * x[2, 3]),
    "element-constant": lambda x: _put(x * 1.0, (2, 0), 4.0),
    "basic": lambda x: _put(x * 1.0, (slice(1, None), slice(None, None, 2)),
                            x[:2, 1::2] ** 2),
    "repeated-pairs": lambda x: _put(x * 1.0, ([0, 1, 0], [2, 2, 2]), x[2, :3] * 5.0),
}


def _reverse(f, x, s=None):
    dx = np.zeros_like(x)
    anns = [Duplicated(x.copy(), dx)] + ([] if s is None else [Active(s)])
    r = sad.autodiff(f, *anns)
    return [dx] + ([] if s is None else [r[1]]) + [anns[0].val]


@pytest.mark.parametrize("name", sorted(READS))
def test_reverse_reads_are_the_generic_rule_bit_for_bit(name):
    g = READS[name]
    fast, generic = _both(lambda: _reverse(lambda x: np.sum(g(x) * 1.0), X))
    for a, b in zip(fast, generic):
        assert _same_bits(a, b), name


@pytest.mark.parametrize("name", sorted(WRITES))
def test_reverse_writes_are_the_generic_rule_bit_for_bit(name):
    g = WRITES[name]
    fast, generic = _both(lambda: _reverse(lambda x: np.sum(g(x) * W), X))
    for a, b in zip(fast, generic):
        assert _same_bits(a, b), name


def test_writes_of_an_active_scalar_are_the_generic_rule_bit_for_bit():
    def f(x, s):
        y = x * 1.0
        y[[0, 2, 0], [1, 1, 1]] = s * 2.0  # repeated: the last write wins
        y[1, 3] = s * s
        return np.sum(y * W)
    fast, generic = _both(lambda: _reverse(f, X, 0.75))
    for a, b in zip(fast, generic):
        assert _same_bits(a, b)


def test_element_loads_in_c_are_the_generic_take_bit_for_bit():
    """x[i, j] of an active array is a C load; the take primitive's generic
    record (gather under generic_only) gives the same bits."""
    def fast(x):
        return x[1, 2] * x[0, 1] + x[1, 2] * x[2, 2] + x[-1, -1] * 1e300

    def generic(x):
        with core.generic_only():
            a, b, c, d = (indexing.gather(x, i) for i in ((1, 2), (0, 1), (2, 2), (-1, -1)))
        return a * b + a * c + d * 1e300
    for p, q in zip(_reverse(fast, X), _reverse(generic, X)):
        assert _same_bits(p, q)


def test_vector_element_stores_in_c_are_the_generic_put_bit_for_bit():
    """y[i] = t of a traced vector is TArray's own C store; the put
    primitive's generic record (setindex under generic_only) gives the same
    bits, and so does a constant written over an active entry."""
    def fast(x):
        y = x[0] * 1.0
        for i in range(4):
            y[i] = y[i - 1] * x[1, i] + y[i]
        y[2] = 7.0
        return y * W[2]

    def generic(x):
        y = x[0] * 1.0
        with core.generic_only():
            for i in range(4):
                indexing.setindex(y, i, y[i - 1] * x[1, i] + y[i])
            indexing.setindex(y, 2, 7.0)
        return y * W[2]
    for p, q in zip(_reverse(lambda x: np.sum(fast(x)), X),
                    _reverse(lambda x: np.sum(generic(x)), X)):
        assert _same_bits(p, q)


def test_specialisations_are_registered_and_turned_off():
    for prim, engines in ((defs.take, ("reverse", "forward")), (defs.put, ("reverse", "forward"))):
        for e in engines:
            assert core.specialised(prim, e) is prim.specialisations[e]
            with core.generic_only():
                assert core.specialised(prim, e) is None
    assert defs.put.mutates == (0,) and defs.take.mutates == ()


@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("name", sorted(set(READS) | {"w-" + k for k in WRITES}))
def test_forward_lanes_are_the_generic_jvp_bit_for_bit(name, lanes):
    if name.startswith("w-"):
        g = WRITES[name[2:]]

        def f(x):
            return g(x) * W
    else:
        f = READS[name]
    tangents = tuple(rng.standard_normal(X.shape) for _ in range(lanes))

    def run():
        if lanes == 1:
            return [sad.autodiff(f, Duplicated(X.copy(), tangents[0]), mode=F)]
        return list(sad.autodiff(f, sad.BatchDuplicated(X.copy(), tangents), mode=F))
    fast, generic = _both(run)
    for a, b in zip(fast, generic):
        assert _same_bits(a, b), name


def test_forward_write_of_a_dual_scalar_per_lane():
    def f(x, s):
        y = x * 1.0
        y[[0, 2], [1, 3]] = s * 3.0
        return y
    def run():
        return list(sad.autodiff(f, Const(X.copy()), sad.BatchDuplicated(0.5, (1.0, 2.0)),
                                 mode=F))
    fast, generic = _both(run)
    for a, b in zip(fast, generic):
        assert _same_bits(a, b)
    assert fast[1][2, 3] == 6.0 and fast[0][0, 1] == 3.0 and fast[0][0, 0] == 0.0


# --------------------------------------------------------------------------
# the nested engine: fancy and boolean indexing, np.take

X0 = np.array([0.9, 0.45, 1.3, 0.7])
U = rng.standard_normal(4)
V = rng.standard_normal(4)


def _mat(x):
    return np.reshape(x, (2, 2)) + 2.0 * np.eye(2)


PROGRAMS = {
    "fancy": lambda x: np.sum(x[[0, 2, 2, 3]] ** 3 * x[[1, 1, 0, 3]]),
    "mask": lambda x: np.sum(np.sin(x[x > 0.5]) * x[x > 0.5] ** 2),
    "np.take": lambda x: np.sum(np.take(_mat(x), [1, 1, 0], axis=1) ** 3),
    "two-arrays": lambda x: np.sum(_mat(x)[[0, 1, 1], [1, 0, 1]] ** 3),
    "fancy-of-fancy": lambda x: np.sum(np.exp(x[[3, 3, 1]][[2, 0, 0, 1]]) * x[[0, 1, 2, 0]]),
}


def uHv(f, outer, inner, x):
    if inner is R:
        def inner_fn(x):
            g, = sad.autodiff(f, Active(x))
            return np.sum(g * U)
        direction = V
    else:
        def inner_fn(x):
            return sad.autodiff(f, Duplicated(x, V), mode=F)
        direction = U
    if outer is R:
        g, = sad.autodiff(inner_fn, Active(x.copy()))
        return float(np.dot(g, direction))
    return sad.autodiff(inner_fn, Duplicated(x.copy(), direction.copy()), mode=F)


@pytest.mark.parametrize("outer,inner", [(F, F), (F, R), (R, F), (R, R)])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_nested_second_derivatives_against_finite_differences(name, outer, inner):
    f, h = PROGRAMS[name], 1e-6
    fd = (c_gradient(f, X0 + h * V) - c_gradient(f, X0 - h * V)) / (2 * h)
    np.testing.assert_allclose(uHv(f, outer, inner, X0), np.dot(U, fd), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_nested_first_derivatives_are_the_c_engines(name):
    f = PROGRAMS[name]
    np.testing.assert_allclose(nested_gradient(f, X0), c_gradient(f, X0), rtol=1e-14, atol=1e-15)


D0, D1 = rng.standard_normal((2, 3, 3))
SCALAR_PROGRAMS = {
    "fancy": lambda t: np.sum((D0 + t * D1)[[0, 2, 2], [1, 1, 0]] ** 3),
    "mask": lambda t: np.sum(np.sin((D0 + t * D1)[D0 > 0]) ** 2),
    "np.take": lambda t: np.sum(np.take(D0 * t + D1, [2, 2, 0], axis=0) ** 3 * D1),
}


def derivative(g, mode):
    if mode is R:
        return lambda t: sad.autodiff(g, Active(t))[0]
    return lambda t: sad.autodiff(g, Duplicated(t, 1.0), mode=F)


@pytest.mark.parametrize("m1", [F, R])
@pytest.mark.parametrize("m2", [F, R])
@pytest.mark.parametrize("m3", [F, R])
@pytest.mark.parametrize("name", sorted(SCALAR_PROGRAMS))
def test_nested_third_derivatives_against_finite_differences(name, m1, m2, m3):
    g, t, h = SCALAR_PROGRAMS[name], 0.3, 1e-5
    second = derivative(derivative(g, R), R)
    fd = (second(t + h) - second(t - h)) / (2 * h)
    got = derivative(derivative(derivative(g, m1), m2), m3)(t)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)
    first = derivative(g, m1)
    np.testing.assert_allclose(first(t), (g(t + h) - g(t - h)) / (2 * h), rtol=1e-6,
                               atol=1e-8)


def test_nested_index_arrays_are_kept_as_used():
    """f changes its index array after using it; the backward pass reads the
    index as it was."""
    def f(x):
        i = np.array([0, 0, 3])
        y = x[i]
        i[:] = 1
        return np.sum(y ** 2)
    for outer in (F, R):
        got = uHv(f, outer, R, X0)
        np.testing.assert_allclose(got, 2 * (2 * U[0] * V[0] + U[3] * V[3]), rtol=1e-12)


def test_nested_index_by_a_nested_value_is_refused():
    def f(x):
        return sad.autodiff(lambda y: np.sum(y[y]), Active(x))[0][0]
    with pytest.raises(TypeError, match="indices must be plain"):
        sad.autodiff(f, Active(X0.copy()))


def test_nested_index_by_a_traced_value_is_refused():
    def f(x):
        return sad.autodiff(lambda y: np.sum(y[x]), Active(np.ones(3)))[0][0]
    with pytest.raises(TypeError, match="indexing with a traced value"):
        sad.autodiff(f, Active(np.zeros(2)))


def test_nested_index_of_floats_is_refused():
    def f(x):
        return sad.autodiff(lambda y: np.sum(y[np.array([0.5])]), Active(x))[0][0]
    with pytest.raises(IndexError, match="integer or boolean arrays"):
        sad.autodiff(f, Active(X0.copy()))


# --------------------------------------------------------------------------
# the record protocol's mutates, on plain activities

CONFIG = Config(needs_primal=True, width=1, mode=Reverse)


def test_put_follows_the_protocol_on_plain_activities():
    a0 = rng.standard_normal((3, 4))
    a, da = a0.copy(), rng.standard_normal((3, 4))
    v, dv = rng.standard_normal(4), np.full(4, 0.5)
    idx = ([0, 2, 0],)
    rule = DerivedRule(defs.put)
    assert rule.mutates == (0,)
    args = (Duplicated(a, da), Duplicated(v, dv))
    aug = rule.augmented_primal(CONFIG, *args, idx=idx)
    assert aug.primal is None and aug.tape is None
    expect = a0.copy()
    expect[idx] = v
    assert _same_bits(a, expect)
    a[...] = a0  # the engine restores memory before reverse
    after = da.copy()
    assert rule.reverse(CONFIG, None, aug.tape, *args, idx=idx) == (None, None)
    assert np.all(da[[0, 2]] == 0.0) and _same_bits(da[1], after[1])
    assert _same_bits(dv, 0.5 + after[0] + after[2])  # row 0 written twice: once counted

    s = Active(1.5)  # a scalar value: its gradient is returned
    da = after.copy()
    grads = DerivedRule(defs.put).reverse(CONFIG, None, None, Duplicated(a, da), s, idx=idx)
    assert grads[0] is None
    np.testing.assert_allclose(grads[1], np.sum(after[[0, 2]]), rtol=1e-15)


def test_a_mutated_const_argument_moves_no_adjoint():
    a = np.zeros(3)
    rule = DerivedRule(defs.put)
    aug = rule.augmented_primal(CONFIG, Const(a), Const(2.0), idx=[1])
    assert a[1] == 2.0
    assert rule.reverse(CONFIG, None, aug.tape, Const(a), Const(2.0), idx=[1]) == (None, None)


def test_generic_writes_restore_primals_in_the_sweep():
    """Earlier records read the memory a generic put overwrote: the engine
    swaps the old bytes back before the sweep reaches them."""
    def f(x):
        y = x * 1.0
        z = np.sin(y)             # reads y before the write
        y[[0, 2]] = x[1] * 4.0
        return np.sum(z * y)
    with core.generic_only():
        got = _reverse(f, X)[0]
    fast = _reverse(f, X)[0]
    assert _same_bits(got, fast)
    h, e = 1e-6, np.zeros_like(X)
    e[0, 0] = 1.0
    fd = (f(X + h * e) - f(X - h * e)) / (2 * h)
    np.testing.assert_allclose(got[0, 0], fd, rtol=1e-6)


def test_take_bad_options_are_refused_clearly():
    with pytest.raises(ValueError, match="clipmode"):
        sad.autodiff(lambda x: np.sum(np.take(x, [0, 9], mode="bogus")), Active(X0.copy()))
    with pytest.raises(IndexError, match="must be integers"):
        sad.autodiff(lambda x: np.sum(np.take(x, [0.5])), Active(X0.copy()))


# --------------------------------------------------------------------------
# one definition: every engine agrees

@pytest.mark.parametrize("name", sorted(set(READS) | {"w-" + k for k in WRITES}))
def test_forward_and_reverse_are_transposes(name):
    """<w, J v> from forward mode equals <J^T w, v> from reverse mode."""
    if name.startswith("w-"):
        g = WRITES[name[2:]]
    else:
        g = READS[name]
    v = rng.standard_normal(X.shape)
    out = g(X.copy())
    w = rng.standard_normal(np.shape(out))
    jv = sad.autodiff(g, Duplicated(X.copy(), v.copy()), mode=F)
    jtw = _reverse(lambda x: np.sum(g(x) * w), X)[0]
    np.testing.assert_allclose(np.sum(w * jv), np.sum(jtw * v), rtol=1e-12, atol=1e-12)


def _overwrite_inf(x):
    y = x * 1.0
    y[[0, 0]] = x[1] * 2.0  # y[0] held inf; nothing of it reaches the result
    return np.sum(y[[0, 1, 1]] * np.array([1.0, 0.0, 3.0]))


@pytest.mark.parametrize("engine", ["reverse", "generic", "forward", "nested"])
def test_overwritten_and_unread_infinities_contribute_nothing(engine):
    x = np.array([np.inf, 0.5, -np.inf])
    expect = np.array([0.0, 5.0, 0.0])
    if engine == "forward":
        got = [sad.autodiff(_overwrite_inf, Duplicated(x.copy(), e), mode=F)
               for e in np.eye(3)]
    elif engine == "nested":  # no writes inside a nested call: the read alone
        seen = []

        def outer(w):
            g, = sad.autodiff(lambda y: np.sum(y[[0, 1, 1]] * np.array([0.0, 2.0, 3.0])),
                              Active(x + w))
            seen.append(np.array(sad.primal(g)))
            return np.sum(g)
        with np.errstate(invalid="ignore"):  # the primal's inf * 0
            sad.autodiff(outer, Active(0.0))
        got = seen[0]
    elif engine == "generic":
        with core.generic_only():
            got, = sad.autodiff(_overwrite_inf, Active(x.copy()))
    else:
        got, = sad.autodiff(_overwrite_inf, Active(x.copy()))
    np.testing.assert_array_equal(got, expect)
