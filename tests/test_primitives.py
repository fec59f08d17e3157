"""The primitives framework (shadowad/primitives): one definition per
primitive, from which every engine derives its rules.  (The nested engine's
derivatives of the primitives: tests/test_nested.py.)

* each engine's fast path (a specialisation) agrees with the generic
  derivation, bit for bit (to rounding where C sums in another order);
* the record protocol works on plain activity objects, and refuses a rule
  that breaks it.
"""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, Forward, Reverse
from shadowad.activity import Mode
from shadowad.primitives import core, linalg as defs
from shadowad.primitives.protocol import AugmentedReturn, Config, DerivedRule

F = Forward

rng = np.random.default_rng(2026)
M = rng.standard_normal((2, 2)) + 3 * np.eye(2)


# --------------------------------------------------------------------------
# specialisations against the generic derivation

def _reverse(f, *args):
    """The gradients of every argument (Duplicated arrays, Active scalars)."""
    anns = [Duplicated(a.copy(), np.zeros_like(a)) if isinstance(a, np.ndarray) else Active(a)
            for a in args]
    r = sad.autodiff(f, *anns)
    return [a.dval if isinstance(a, Duplicated) else g for a, g in zip(anns, r)]


def _both(run):
    fast = run()
    with core.generic_only():
        generic = run()
    return fast, generic


def _same_bits(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


EDGE = np.array([0.0, -0.0, 1.5, -2.25, 5e-324, 1e300])

VECTOR_DOTS = {
    "dot": lambda a, b: np.dot(a, b) * 2.0,
    "inner": lambda a, b: np.inner(a, b) * 2.0,
    "vdot": lambda a, b: np.vdot(a, b) * 2.0,
    "matmul": lambda a, b: (a @ b) * 2.0,
    "vdot-2d": lambda a, b: np.vdot(a.reshape(2, 3), b.reshape(2, 3)) * 2.0,
}


@pytest.mark.parametrize("name", sorted(VECTOR_DOTS))
def test_vector_dot_record_is_the_generic_rule_bit_for_bit(name):
    f = VECTOR_DOTS[name]
    a, b = rng.standard_normal(6), EDGE.copy()
    fast, generic = _both(lambda: _reverse(f, a, b))
    for x, y in zip(fast, generic):
        assert _same_bits(x, y)
    fast, generic = _both(lambda: _reverse(lambda a: f(a, b), a))
    assert _same_bits(fast[0], generic[0])


def test_outer_record_agrees_with_the_generic_rule():
    """The C record computes numpy's primal bits; its adjoint sums run in C's
    order, BLAS's in its own: equal to rounding on finite values."""
    a, b = rng.standard_normal(7), rng.standard_normal(5)
    w = rng.standard_normal((7, 5))

    def f(a, b):
        return np.sum(np.outer(a, b) * w)
    fast, generic = _both(lambda: _reverse(f, a, b))
    for x, y in zip(fast, generic):
        np.testing.assert_allclose(x, y, rtol=1e-14, atol=1e-15)


    def written(a, b, out):  # the primal the record computes, kept in out
        z = np.outer(a, b)
        out[...] = z * 1.0
        return np.sum(z * w)

    def run():
        out = np.zeros((7, 5))
        sad.autodiff(written, Duplicated(a.copy(), np.zeros(7)), Const(b),
                     Duplicated(out, np.zeros((7, 5))))
        return out
    fast, generic = _both(run)
    assert _same_bits(fast, generic) and _same_bits(fast, np.outer(a, b))


MATMULS = {
    "matrices": ((3, 4), (4, 5), lambda a, b: np.sum(np.tanh(a @ b))),
    "transposed": ((4, 3), (4, 5), lambda a, b: np.sum(np.tanh(a.T @ b))),
    "batch": ((2, 3, 4), (4, 5), lambda a, b: np.sum(np.sin(np.matmul(a, b)))),
    "broadcast": ((3, 4), (2, 4, 5), lambda a, b: np.sum(np.matmul(a, b) ** 2)),
    "row": ((4,), (4, 5), lambda a, b: np.sum(np.exp(a @ b))),
    "column": ((3, 4), (4,), lambda a, b: np.sum(np.exp(a @ b))),
    "big": ((60, 70), (70, 80), lambda a, b: np.sum(np.cos(a @ b))),
}


@pytest.mark.parametrize("name", sorted(MATMULS))
def test_matmul_record_is_the_generic_rule_bit_for_bit(name):
    sa, sb, f = MATMULS[name]
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    fast, generic = _both(lambda: _reverse(f, a, b))
    for x, y in zip(fast, generic):
        assert _same_bits(x, y), name


FORWARDS = {
    "matmul": ((3, 4), (4, 5), lambda a, b: a @ b),
    "matmul-batch": ((2, 3, 4), (4, 5), lambda a, b: np.matmul(a, b)),
    "matmul-row": ((4,), (4, 5), lambda a, b: a @ b),
    "dot": ((3, 4), (4, 5), lambda a, b: np.dot(a, b)),
    "dot-nd": ((2, 4), (3, 4, 2), lambda a, b: np.dot(a, b)),
    "inner": ((3, 4), (5, 4), lambda a, b: np.inner(a, b)),
}


@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("name", sorted(FORWARDS))
def test_forward_lanes_are_the_per_lane_jvp(name, lanes):
    """The batched tangent (every lane in one numpy call) against one JVP per
    lane: bit for bit where numpy's products are the same products, to
    rounding where BLAS blocks a larger matrix differently."""
    sa, sb, f = FORWARDS[name]
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    da = tuple(rng.standard_normal(sa) for _ in range(lanes))
    db = tuple(rng.standard_normal(sb) for _ in range(lanes))

    def run():
        if lanes == 1:
            return [sad.autodiff(f, Duplicated(a.copy(), da[0]), Duplicated(b.copy(), db[0]),
                                 mode=F)]
        return sad.autodiff(f, sad.BatchDuplicated(a.copy(), da),
                            sad.BatchDuplicated(b.copy(), db), mode=F)
    fast, generic = _both(run)
    for x, y in zip(fast, generic):
        np.testing.assert_allclose(x, y, rtol=1e-14, atol=1e-14)
        if lanes == 1:
            assert _same_bits(x, y) or name.startswith("dot-nd")


def test_specialisations_are_taken_and_generic_only_turns_them_off():
    for prim in (defs.dot, defs.inner, defs.vdot, defs.outer, defs.matmul):
        assert core.specialised(prim, "reverse") is prim.specialisations["reverse"]
        with core.generic_only():
            assert core.specialised(prim, "reverse") is None
    assert core.specialised(defs.solve, "reverse") is None


def test_columns_summed_is_a_specialisation():
    """W6's shortcut runs only in the specialised record."""
    xc0 = rng.standard_normal((50, 3))
    q0 = rng.standard_normal((4, 3, 3))

    def f(m):
        xc = xc0[None] - m[:, None, :]
        z = np.matmul(q0, np.swapaxes(xc, 1, 2))
        return np.sum(z * z)
    m0 = rng.standard_normal((4, 3))
    fast, generic = _both(lambda: _reverse(f, m0))
    np.testing.assert_allclose(fast[0], generic[0], rtol=1e-13, atol=1e-13)


# --------------------------------------------------------------------------
# the record protocol

CONFIG = Config(needs_primal=True, width=1, mode=Reverse)


def test_derived_rule_follows_the_protocol_on_plain_activities():
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    da = np.full((3, 4), 0.5)
    rule = DerivedRule(defs.matmul)
    args = (Duplicated(a, da), Const(b))
    aug = rule.augmented_primal(CONFIG, *args)
    assert type(aug) is AugmentedReturn and _same_bits(aug.primal, a @ b)
    assert aug.tape is None  # matmul's vjp reads no result: nothing kept
    g = rng.standard_normal((3, 2))
    assert rule.reverse(CONFIG, g, aug.tape, *args) == (None, None)
    np.testing.assert_array_equal(da, 0.5 + g @ b.T)       # accumulated, +=

    rule = DerivedRule(defs.inv)
    m = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    aug = rule.augmented_primal(CONFIG, Active(m))
    assert aug.tape is aug.primal  # inv's vjp reads its result
    grads = rule.reverse(CONFIG, np.eye(3), aug.tape, Active(m))
    z = np.linalg.inv(m)
    np.testing.assert_allclose(grads[0], -z.T @ z.T, rtol=1e-13)


FORWARD_CONFIG = Config(needs_primal=True, width=1, mode=Forward)


@pytest.mark.parametrize("name", ["matmul", "inv", "det", "solve", "outer"])
def test_derived_rule_forward_and_reverse_halves_are_transposes(name):
    """The protocol's two halves of one primitive on plain activities: the
    dot-product test <J t, g> = <t, J^T g>, and width 2 is width 1 per lane."""
    prim = getattr(defs, name)
    rule = DerivedRule(prim)
    m = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    ops = {"matmul": (m, rng.standard_normal((3, 2))), "inv": (m,), "det": (m,),
           "solve": (m, rng.standard_normal(3)),
           "outer": (rng.standard_normal(3), rng.standard_normal(2))}[name]
    ts = [rng.standard_normal(np.shape(v)) for v in ops]
    z, dz = rule.forward(FORWARD_CONFIG, *[Duplicated(v, t) for v, t in zip(ops, ts)])
    g = rng.standard_normal(np.shape(z))
    aug = rule.augmented_primal(CONFIG, *[Duplicated(v, np.zeros(np.shape(v))) for v in ops])
    args = [Duplicated(v, np.zeros(np.shape(v))) for v in ops]
    assert rule.reverse(CONFIG, g, aug.tape, *args) == (None,) * len(ops)
    lhs = np.sum(np.asarray(dz) * g)
    rhs = sum(np.sum(t * a.dval) for t, a in zip(ts, args))
    assert np.isclose(lhs, rhs, rtol=1e-12)
    assert _same_bits(np.asarray(z), np.asarray(aug.primal))

    lanes = [[rng.standard_normal(np.shape(v)) for v in ops] for _ in range(2)]
    batch = [sad.BatchDuplicated(v, tuple(lane[k] for lane in lanes)) for k, v in enumerate(ops)]
    z2, dz2 = rule.forward(Config(needs_primal=True, width=2, mode=Forward), *batch)
    assert type(dz2) is tuple and len(dz2) == 2
    for lane, got in zip(lanes, dz2):
        _, want = rule.forward(FORWARD_CONFIG, *[Duplicated(v, t) for v, t in zip(ops, lane)])
        assert _same_bits(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("width", [1, 2])
def test_a_mutating_rule_forward_writes_value_and_tangent(width):
    """put (a[idx] = v) through the forward half: a's new content and its new
    tangent land in a's memory; the call returns None."""
    from shadowad.primitives import indexing
    rule = DerivedRule(indexing.put)
    idx = np.array([2, 0])
    a, v = rng.standard_normal(4), rng.standard_normal(2)
    ta = [rng.standard_normal(4) for _ in range(width)]
    tv = [rng.standard_normal(2) for _ in range(width)]
    want_a, want_t = a.copy(), [t.copy() for t in ta]
    want_a[idx] = v
    for w, t in zip(want_t, tv):
        w[idx] = t
    if width == 1:
        args = (Duplicated(a, ta[0]), Duplicated(v, tv[0]))
    else:
        args = (sad.BatchDuplicated(a, tuple(ta)), sad.BatchDuplicated(v, tuple(tv)))
    config = Config(needs_primal=True, width=width, mode=Forward)
    assert rule.forward(config, *args, idx=idx) is None
    assert _same_bits(a, want_a)
    for got, want in zip(ta, want_t):
        assert _same_bits(got, want)


def test_config_and_augmented_return_describe_themselves():
    assert "needs_primal=True" in repr(CONFIG) and isinstance(CONFIG.mode, Mode)
    assert AugmentedReturn(primal=1.0).tape is None


def test_a_record_returning_a_gradient_for_a_duplicated_argument_is_refused(monkeypatch):
    rule = DerivedRule(defs.inv)

    class Wrong:
        def augmented_primal(self, config, a):
            return rule.augmented_primal(config, a)

        def reverse(self, config, dret, tape, a):
            return (np.ones((2, 2)),)

        def __repr__(self):
            return "Wrong"
    from shadowad.engines.rules import derived
    monkeypatch.setattr(derived, "derived_rule", lambda prim: Wrong())
    x = M.copy()
    with pytest.raises(TypeError, match="not Active"):
        sad.autodiff(lambda x: np.sum(np.linalg.inv(x)), Duplicated(x, np.zeros((2, 2))))
    assert _same_bits(x, M)


def test_sweep_dval_of_a_lazy_shadow_reads_zero_and_accumulates(monkeypatch):
    """A hand-written rule adding into .dval of a lazy temporary's shadow
    sees zeros first (not uninitialised memory)."""
    from shadowad.engines.reverse import traced
    from shadowad.engines.rules import derived
    monkeypatch.setattr(traced, "LAZY_MIN", 0)

    class ByHand:
        def augmented_primal(self, config, a):
            return AugmentedReturn(primal=np.linalg.inv(a.val), tape=np.linalg.inv(a.val))

        def reverse(self, config, dret, z, a):
            a.dval += -z.T @ dret @ z.T
            return (None,)
    monkeypatch.setattr(derived, "derived_rule", lambda prim: ByHand())

    def f(x):
        return np.sum(np.linalg.inv(x * 1.0) * M)
    x = M + 2 * np.eye(2)
    got, = sad.autodiff(f, Active(x.copy()))
    monkeypatch.undo()
    want, = sad.autodiff(f, Active(x.copy()))
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_every_linalg_function_has_one_entry_for_all_engines():
    from shadowad.engines.nested.rules import FUNCTIONS as NESTED, UFUNCS
    from shadowad.engines.rules.registry import FUNCTIONS, JVPS
    for func, _ in core.registered():
        assert func in FUNCTIONS and func in JVPS
        assert func in (UFUNCS if isinstance(func, np.ufunc) else NESTED)


def test_dval_of_a_broadcast_view_is_refused_and_add_to_shadow_sums(monkeypatch):
    """`.dval += c` through a shadow with a zero stride would keep one term of
    each sum: reading it is an error, and add_to_shadow adds every term."""
    from shadowad.primitives.protocol import add_to_shadow
    from shadowad.engines.rules import derived
    from shadowad.engines.rules.adjoints import add_into
    mem = np.zeros(3)
    view = np.lib.stride_tricks.as_strided(mem, (4, 3), (0, 8))
    monkeypatch.setattr(derived, "adjoint_for_pullback", lambda traced: (view, False))
    # what accumulate does with memory it finds so (shadowad/engines/rules/indexing.py)
    monkeypatch.setattr(derived, "accumulate", lambda traced, c: add_into(view, c))
    arg = derived.SweepDuplicated(np.ones((4, 3)), None)
    with pytest.raises(ValueError, match="broadcast view"):
        arg.dval += np.ones((4, 3))
    add_to_shadow(arg, np.ones((4, 3)))
    assert mem.tolist() == [4.0, 4.0, 4.0]


# --------------------------------------------------------------------------
# the reductions' fast paths against their generic derivation

REDUCE_EDGE = np.array([0.0, -0.0, 1.5, -2.25, 5e-324, 1e300, 3.0, 3.0, -7.5, 1e-300, 2.0, -1.0])

SUM_PROGRAMS = {   # the record each takes when specialised
    "sum of an input": lambda x: np.sum(x) * 3.0,                         # C SAD_SUM
    "sum of a temporary": lambda x: np.sum(x * x) + np.sum(x.reshape(3, 4) ** 2),  # lazy
    "sum of an input, axis": lambda x: np.sum(np.sum(x.reshape(3, 4), axis=0) ** 2),
    "sum through, axis 1": lambda x: np.sum(np.sum(np.sin(x).reshape(3, 4), axis=1) ** 2),
    "sum through, keepdims": lambda x: np.sum(
        np.sum(np.exp(x * 0.1).reshape(2, 3, 2), axis=(0, 2), keepdims=True) ** 3),
    "sum, out=": lambda x: _sum_into(x.reshape(3, 4)),
    "method and ufunc.reduce": lambda x: (x * x).sum() + np.sum(np.add.reduce(x.reshape(3, 4))
                                                                ** 2),
    "mean": lambda x: np.mean(x) * 2.0 + np.mean(x * x) + x.mean(),
    "mean, axis": lambda x: np.sum(np.mean(x.reshape(3, 4), axis=1) ** 2),
}


def _sum_into(m):
    out = np.zeros_like(m[0])
    np.sum(m * m, axis=0, out=out)
    return np.sum(out * m[1])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # 1e300 squared
@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
@pytest.mark.parametrize("name", sorted(SUM_PROGRAMS))
def test_sum_and_mean_records_are_the_generic_rule_bit_for_bit(name, lazy, monkeypatch):
    from shadowad.engines.reverse import traced
    if lazy:  # every temporary's shadow lazy: the lazy sum and the through records
        monkeypatch.setattr(traced, "LAZY_MIN", 0)
    f = SUM_PROGRAMS[name]
    for x in (REDUCE_EDGE, rng.standard_normal(12)):
        fast, generic = _both(lambda: _reverse(f, x))
        assert _same_bits(fast[0], generic[0]), (name, fast[0], generic[0])
        fast, generic = _both(lambda: _leaves(sad.autodiff(f, Active(x.copy()),
                                                             mode=sad.ReverseWithPrimal)))
        assert all(_same_bits(u, v) for u, v in zip(fast, generic)) and len(fast) == 2


def test_reduction_specialisations_are_registered():
    from shadowad.primitives import reductions as red
    for prim, engines in ((red.reduce_sum, ("reverse", "forward", "forward_call")),
                          (red.mean, ("reverse", "forward")), (red.reduce_max, ("forward",)),
                          (red.reduce_min, ("forward",))):
        for engine in engines:
            assert core.specialised(prim, engine) is prim.specialisations[engine]
            with core.generic_only():
                assert core.specialised(prim, engine) is None


FORWARD_REDUCTIONS = {
    "sum": lambda x: np.sum(x * 1.5),                   # the C full sum (fsum)
    "sum of an input": lambda x: np.sum(x),
    "sum axis": lambda x: np.sum(x.reshape(3, 4), axis=0),
    "sum axes keepdims": lambda x: np.sum(x.reshape(2, 3, 2), axis=(0, 2), keepdims=True),
    "mean": lambda x: np.mean(x * 1.5),
    "mean axis": lambda x: np.mean(x.reshape(3, 4), axis=1),
    "max": lambda x: np.max(x),
    "max axis": lambda x: np.max(x.reshape(3, 4), axis=0),
    "min keepdims": lambda x: np.min(x.reshape(3, 4), axis=1, keepdims=True),
    "amax method": lambda x: np.amax(x.reshape(4, 3), 1) + x.reshape(4, 3).min(axis=1),
    "ufunc reduce": lambda x: np.maximum.reduce(x.reshape(3, 4)) * np.minimum.reduce(
        x.reshape(3, 4), axis=1, keepdims=True),
}


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("name", sorted(FORWARD_REDUCTIONS))
def test_forward_reductions_are_the_per_lane_jvp_bit_for_bit(name, lanes):
    f = FORWARD_REDUCTIONS[name]
    tangents = np.stack([REDUCE_EDGE[::-1], rng.standard_normal(12), REDUCE_EDGE * 0.5])[:lanes]
    for x in (REDUCE_EDGE, rng.standard_normal(12)):
        def run():
            if lanes == 1:
                ann = Duplicated(x.copy(), tangents[0].copy())
            else:
                ann = sad.BatchDuplicated(x.copy(), tuple(tangents.copy()))
            return _leaves(sad.autodiff(f, ann, mode=sad.ForwardWithPrimal))
        fast, generic = _both(run)
        assert len(fast) == len(generic)
        for u, v in zip(fast, generic):
            assert _same_bits(u, v), (name, u, v)


def _leaves(r):
    """The arrays and numbers of a nested tuple, in order."""
    if type(r) is tuple or type(r) is list:
        return [leaf for item in r for leaf in _leaves(item)]
    return [r]


def test_the_sum_and_mean_c_records_are_taken(monkeypatch):
    """The comparisons above compare something: the fast paths make no Python
    record, the generic path one."""
    from shadowad.engines.reverse import traced

    def python_records(f, x):
        _, tape = sad.autodiff_split(f, Duplicated(x.copy(), np.zeros_like(x)))
        return len(tape._tape.py)
    x = rng.standard_normal(12)
    for lazy_min in (traced.LAZY_MIN, 0):
        monkeypatch.setattr(traced, "LAZY_MIN", lazy_min)
        for f in (lambda x: np.sum(x) * 3.0, lambda x: np.mean(x) * 3.0,
                  lambda x: np.sum(x * x), lambda x: (x * x).sum()):
            assert python_records(f, x) == 0
            with core.generic_only():
                assert python_records(f, x) == 1
