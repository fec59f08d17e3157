"""Bad input is a Python exception that names the problem and the fix: a
table of bad calls (exception type and the words the message must hold),
then the errors of a few classes in depth: split-tape seeds, traced values
of an earlier call, ndarray attributes traced arrays lack, the names of
functions without a rule, and library functions that convert their inputs."""
import math
import statistics

import numpy as np
import pytest

import shadowad as sad
from shadowad import (Active, BatchDuplicated, Const, Duplicated, DuplicatedNoNeed, Forward,
    ForwardWithPrimal, Reverse, ReverseWithPrimal, autodiff)
from shadowad.support.naming import qualified_name
from shadowad.engines.reverse.errors import NoRuleError

X = np.array([1.0, 2.0, 3.0])


def x():
    return X.copy()


def _split_reverse(**kw):
    _, tape = sad.autodiff_split(lambda a: np.sum(a * a), Duplicated(x(), np.zeros(3)))
    return tape.reverse(**kw)


def _misaligned():
    raw = np.zeros(4 * 8 + 1, np.uint8)
    return np.frombuffer(raw.data, dtype=np.float64, offset=1, count=3)


BAD = [
    # annotations
    ("Active(str)", lambda: Active("x"), TypeError, ["Active takes a float or a float64 or float32 array",
                                                     "str"]),
    ("Active(list)", lambda: Active([1.0, 2.0]), TypeError, ["float32 array", "list"]),
    ("Active(None)", lambda: Active(None), TypeError, ["NoneType"]),
    ("Active(complex)", lambda: Active(1j), TypeError, ["complex"]),
    ("Active(int array)", lambda: Active(np.arange(3)), TypeError,
     ["dtype float64 or float32", "int64", "x.astype(float)"]),
    ("Active(float16 array)", lambda: Active(np.ones(3, np.float16)), TypeError,
     ["float16", "astype(float)"]),
    ("Active(object array)", lambda: Active(np.array([1, "a"], dtype=object)), TypeError,
     ["dtype float64 or float32", "object"]),
    ("Active(misaligned)", lambda: Active(_misaligned()), ValueError,
     ["not aligned", "np.array(x)"]),
    ("Active(Vector)", lambda: Active(sad.Vector([1.0])), TypeError, ["Vector"]),
    ("Duplicated(x, None)", lambda: Duplicated(x(), None), TypeError,
     ["Duplicated shadow", "float64 or float32 numpy array", "NoneType"]),
    ("Duplicated(x, list)", lambda: Duplicated(x(), [0.0] * 3), TypeError, ["shadow", "list"]),
    ("Duplicated shape", lambda: Duplicated(x(), np.zeros(4)), ValueError,
     ["shape (4,)", "shape (3,)", "congruent"]),
    ("Duplicated dtype", lambda: Duplicated(x(), np.zeros(3, np.float32)), TypeError,
     ["shadow has dtype float32", "primal has dtype float64", "np.zeros_like(x)"]),
    ("Duplicated float16 shadow", lambda: Duplicated(x(), np.zeros(3, np.float16)), TypeError,
     ["shadow", "float16", "astype(float)"]),
    ("Duplicated int primal", lambda: Duplicated(np.arange(3), np.zeros(3)), TypeError,
     ["primal", "int64", "astype(float)"]),
    ("Duplicated readonly shadow",
     lambda: Duplicated(x(), np.broadcast_to(np.zeros(1), (3,))), ValueError, ["writeable"]),
    ("Duplicated(x, x)", lambda: (lambda a: Duplicated(a, a))(x()), ValueError,
     ["shares memory with its primal", "np.zeros_like(x)"]),
    ("Duplicated(Vector, ndarray)", lambda: Duplicated(sad.Vector([1.0]), np.zeros(1)),
     TypeError, ["shadow of a Vector must be a Vector", "ndarray"]),
    ("Duplicated(Vector) length", lambda: Duplicated(sad.Vector([1.0]), sad.Vector([0.0, 0])),
     ValueError, ["length 2", "length 1"]),
    ("Duplicated(float, str)", lambda: Duplicated(2.0, "a"), TypeError,
     ["tangent of a float must be a float", "str"]),
    ("Duplicated(str, str)", lambda: Duplicated("a", "b"), TypeError,
     ["float32 array, a Vector or a float", "str"]),
    ("DuplicatedNoNeed shape", lambda: DuplicatedNoNeed(x(), np.zeros(2)), ValueError,
     ["DuplicatedNoNeed", "congruent"]),
    ("BatchDuplicated(x, ())", lambda: BatchDuplicated(x(), ()), TypeError,
     ["non-empty tuple of shadows", "an empty one"]),
    ("BatchDuplicated(x, array)", lambda: BatchDuplicated(x(), np.zeros(3)), TypeError,
     ["tuple of shadows", "ndarray"]),
    ("BatchDuplicated lane shape", lambda: BatchDuplicated(x(), (np.zeros(3), np.zeros(2))),
     ValueError, ["BatchDuplicated shadow 1", "shape (2,)"]),
    # drivers
    ("f not callable", lambda: autodiff(3, Active(1.0)), TypeError,
     ["sad.autodiff: f must be callable", "int"]),
    ("split f not callable", lambda: sad.autodiff_split("f", Active(1.0)), TypeError,
     ["sad.autodiff_split: f must be callable"]),
    ("gradient f not callable", lambda: sad.gradient(None, 1.0), TypeError,
     ["sad.gradient: f must be callable", "sad.gradient(f, *args)"]),
    ("jacobian f not callable", lambda: sad.jacobian(None, x()), TypeError,
     ["sad.jacobian: f must be callable", "sad.jacobian(f, x, *consts)"]),
    ("mode typo", lambda: autodiff(lambda a: a, Active(1.0), mode="Forward"), TypeError,
     ["mode must be one of Reverse, ReverseWithPrimal, Forward, ForwardWithPrimal",
      "'Forward'"]),
    ("mode None", lambda: autodiff(lambda a: a, Active(1.0), mode=None), TypeError,
     ["mode must be one of"]),
    ("restore not a bool", lambda: autodiff(lambda a: a, Active(1.0), restore="yes"),
     TypeError, ["restore must be True or False", "'yes'"]),
    ("Active in Forward", lambda: autodiff(lambda a: a, Active(X), mode=Forward), TypeError,
     ["argument 0", "Active is not allowed", "Duplicated(x, dx)"]),
    ("Duplicated float in Reverse", lambda: autodiff(lambda a: a, Duplicated(1.0, 1.0)),
     TypeError, ["argument 0", "forward mode", "Active(x)"]),
    ("batch widths", lambda: autodiff(lambda a, b: a, BatchDuplicated(1.0, (1.0, 0.0)),
                                      BatchDuplicated(2.0, (1.0,)), mode=Forward),
     ValueError, ["different numbers of shadows", "[1, 2]"]),
    ("batch mixed with Duplicated",
     lambda: autodiff(lambda a, b: a, BatchDuplicated(1.0, (1.0, 0.0)), Duplicated(2.0, 1.0),
                      mode=Forward), TypeError, ["argument 1", "cannot be mixed"]),
    ("split of a batch",
     lambda: sad.autodiff_split(lambda a: None, BatchDuplicated(x(), (np.zeros(3),))),
     TypeError, ["autodiff_split", "BatchDuplicated is not supported", "sad.autodiff"]),
    ("annotation changed before the call",
     lambda: (lambda a: (setattr(a, "dval", np.zeros(2)), autodiff(lambda v: None, a)))(
         Duplicated(x(), np.zeros(3))), ValueError, ["argument 0", "congruent"]),
    # results
    ("Reverse returns an array", lambda: autodiff(lambda a: a * 2.0, Active(X)), TypeError,
     ["f returned an array of shape (3,)", "scalar result", "np.sum", "sad.jacobian"]),
    ("Reverse returns a str", lambda: autodiff(lambda a: "s", Active(X)), TypeError,
     ["f returned a str", "scalar result"]),
    ("Reverse returns an object", lambda: autodiff(lambda a: object(), Active(X)), TypeError,
     ["f returned an object"]),
    ("Reverse returns complex", lambda: autodiff(lambda a: 1j, Active(X)), TypeError,
     ["f returned a complex"]),
    ("Reverse returns a list", lambda: autodiff(lambda a: [a[0]], Active(X)), TypeError,
     ["f returned a list"]),
    ("Reverse returns a Vector",
     lambda: autodiff(lambda v: v, Duplicated(sad.Vector([1.0]), sad.Vector([0.0]))),
     TypeError, ["f returned a TracedVector"]),
    ("Forward returns a str",
     lambda: autodiff(lambda a: "s", Duplicated(x(), np.ones(3)), mode=Forward), TypeError,
     ["f returned a str", "forward mode differentiates float and array results"]),
    ("Forward returns a Vector",
     lambda: autodiff(lambda v: v, Duplicated(sad.Vector([1.0]), sad.Vector([0.0])),
                      mode=Forward), TypeError, ["traced Vector", "v[:]"]),
    # jacobian
    ("jacobian x str", lambda: sad.jacobian(lambda a: a, "x"), TypeError,
     ["sad.jacobian: x must be a float or a float64 or float32 array", "str"]),
    ("jacobian x int array", lambda: sad.jacobian(lambda a: a, np.arange(3)), TypeError,
     ["int64", "astype(float)"]),
    ("jacobian mode", lambda: sad.jacobian(lambda a: a, x(), mode="fwd"), TypeError,
     ["mode must be None, Forward or Reverse"]),
    ("jacobian Active const", lambda: sad.jacobian(lambda a, b: a, x(), Active(1.0)),
     TypeError, ["consts[0] is Active", "constants"]),
    ("jacobian returns a str", lambda: sad.jacobian(lambda a: "s", x()), TypeError,
     ["f must return one float or array", "a str"]),
    ("jacobian returns None", lambda: sad.jacobian(lambda a: None, x(), mode=Forward),
     TypeError, ["f must return one float or array"]),
    ("jacobian returns a str array", lambda: sad.jacobian(lambda a: np.array(["s"]), x()),
     TypeError, ["f must return one float or array", "dtype <U1"]),
    # split tapes
    ("seed str", lambda: _split_reverse(seed="2"), TypeError,
     ["seed must be a real scalar", "str ('2')"]),
    ("seed array", lambda: _split_reverse(seed=np.ones(3)), TypeError,
     ["seed must be a real scalar", "array of shape (3,)", "not supported yet"]),
    ("seed list", lambda: _split_reverse(seed=[1.0]), TypeError, ["seed must be a real scalar"]),
    ("seed bool", lambda: _split_reverse(seed=True), TypeError, ["seed must be a real scalar"]),
    ("seed complex", lambda: _split_reverse(seed=1j), TypeError, ["seed must be a real scalar"]),
    ("seed None", lambda: _split_reverse(seed=None), TypeError, ["seed must be a real scalar"]),
    ("split restore", lambda: _split_reverse(restore="no"), TypeError,
     ["tape.reverse: restore must be True or False"]),
    # kernels, Vector, fwddiff, memory pool
    ("axpy a str", lambda: sad.axpy("a", x(), x()), TypeError,
     ["sad.axpy: a must be a real scalar", "str"]),
    ("axpy shapes", lambda: sad.axpy(1.0, x(), np.zeros(4)), ValueError,
     ["sad.axpy", "does not broadcast"]),
    ("scal a str", lambda: sad.scal("a", x()), TypeError, ["sad.scal: a must be a real scalar or array", "str"]),
    ("Vector of str", lambda: sad.Vector(["a"]), TypeError, ["real numbers", "<U1"]),
    ("Vector 2-D", lambda: sad.Vector(np.zeros((2, 2))), ValueError, ["1-D", "(2, 2)"]),
    ("Vector float index", lambda: sad.Vector([1.0])[1.5], TypeError, ["integers", "float"]),
    ("Vector pop empty", lambda: sad.Vector().pop(), IndexError, ["empty Vector"]),
    ("fwddiff not callable", lambda: sad.fwddiff(3), TypeError,
     ["sad.fwddiff: g must be callable"]),
    ("memory pool too large", lambda: sad.set_memory_pool(2 ** 70), ValueError,
     ["max_bytes", "2**63 - 1"]),
    ("memory pool float", lambda: sad.set_memory_pool(1.5), TypeError,
     ["max_bytes must be an int"]),
]


@pytest.mark.parametrize("call, exc, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as e:
        call()
    for w in words:
        assert w in str(e.value), (w, str(e.value))


# --------------------------------------------------------------------------
# split tapes: the seed

@pytest.mark.parametrize("seed", [2, 2.0, np.float32(2.0), np.int64(2), np.array(2.0)])
def test_real_scalar_seeds_scale_the_gradient(seed):
    dx = np.zeros(3)
    _, tape = sad.autodiff_split(lambda a: np.sum(a * a), Duplicated(x(), dx))
    tape.reverse(seed=seed)
    assert dx.tolist() == (4.0 * X).tolist()


def test_a_refused_seed_leaves_the_tape_usable():
    dx = np.zeros(3)
    _, tape = sad.autodiff_split(lambda a: np.sum(a * a), Duplicated(x(), dx))
    with pytest.raises(TypeError):
        tape.reverse(seed="2")
    assert dx.tolist() == [0.0, 0.0, 0.0]
    tape.reverse(seed=0.5)
    assert dx.tolist() == X.tolist()


# --------------------------------------------------------------------------
# a traced value kept from an earlier call

ESCAPED = {
    "array": lambda kept, a: a * kept,
    "array_left": lambda kept, a: kept + a,
    "scalar": lambda kept, a: a[0] * kept,
    "ufunc": lambda kept, a: np.maximum(a, kept),
    "store": lambda kept, a: a.__setitem__(0, kept),
    "inplace": lambda kept, a: a.__iadd__(kept),
    "sum": lambda kept, a: np.sum(kept) + a[0],
}


def _escape(kind, mode, split):
    kept = []

    def f(a):
        kept.append(a * 2.0 if kind.startswith("array") or kind in ("ufunc", "inplace", "sum")
                    else a[0] * 2.0)
        return np.sum(a)
    if mode is Forward:
        autodiff(f, Duplicated(x(), np.ones(3)), mode=Forward)
    elif split:
        sad.autodiff_split(f, Duplicated(x(), np.zeros(3)))  # its tape is never reversed
    else:
        autodiff(f, Duplicated(x(), np.zeros(3)))
    return kept[0]


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("mode", [Reverse, Forward])
@pytest.mark.parametrize("kind", list(ESCAPED))
def test_escaped_traced_value_is_named(kind, mode, split):
    if mode is Forward and split:
        pytest.skip("forward mode has no split")
    kept = _escape(kind, mode, split)
    y = x()
    with pytest.raises(RuntimeError) as e:
        autodiff(lambda a: (ESCAPED[kind](kept, a), None)[1], Duplicated(y, np.zeros(3)),
                 mode=mode)
    msg = str(e.value)
    if "after its autodiff call finished" not in msg:  # the freed tape's own error
        assert "escaped from an earlier autodiff call" in msg
        assert "sad.primal(t)" in msg and "return it from f" in msg
    assert "nested differentiation is not supported" not in msg
    assert y.tolist() == X.tolist()


@pytest.mark.parametrize("later", [Reverse, Forward])
@pytest.mark.parametrize("mode", [Reverse, Forward])
@pytest.mark.parametrize("kind", list(ESCAPED))
def test_escaped_value_in_a_call_of_the_other_mode(kind, mode, later):
    """A value kept from a call of one mode, used in a later call of either
    mode: the RuntimeError that names it, never another type's error."""
    kept = _escape(kind, mode, False)
    y = x()
    with pytest.raises(RuntimeError, match="after its autodiff call finished|escaped from an "
                                           "earlier autodiff call"):
        autodiff(lambda a: (ESCAPED[kind](kept, a), None)[1], Duplicated(y, np.zeros(3)),
                 mode=later)
    assert y.tolist() == X.tolist()


OUTSIDE = {
    "sum": lambda k: np.sum(k), "method": lambda k: k.sum(), "index": lambda k: k[0],
    "slice": lambda k: np.sum(k[::-1]), "times": lambda k: k * 2.0, "minus": lambda k: 1.0 - k,
    "plus": lambda k: k + 1.0, "matmul": lambda k: k @ k, "asarray": lambda k: np.asarray(k),
}


@pytest.mark.parametrize("mode", [Reverse, Forward])
@pytest.mark.parametrize("op", list(OUTSIDE))
def test_escaped_value_used_outside_any_call(op, mode):
    """After its call, a kept traced value (array or scalar) is refused."""
    for kind in ("array", "scalar"):
        kept = _escape(kind, mode, False)
        if kind == "scalar" and op in ("index", "slice", "matmul"):
            continue
        with pytest.raises((RuntimeError, TypeError), match="after its autodiff call finished"):
            OUTSIDE[op](kept)


# --------------------------------------------------------------------------
# ndarray attributes that traced arrays do not have

PUBLIC = sorted(n for n in dir(np.ndarray) if not n.startswith("_"))


def _inside(mode, body):
    """body(traced array) inside f, in the given mode."""
    out = []

    def f(a):
        out.append(body(a))
    if mode == "nested":
        def outer(w):
            autodiff(lambda a: f(a) and None, Active(w))
        autodiff(outer, Active(x()))
    else:
        autodiff(f, Duplicated(x(), np.zeros(3)), mode=mode)
    return out[0]


@pytest.mark.parametrize("what", ["array", "scalar"])
@pytest.mark.parametrize("mode", [Reverse, Forward, "nested"])
def test_every_ndarray_attribute_is_there_or_named(mode, what):
    """Every public ndarray attribute either works on a traced array or raises
    an error that names it and says it has no rule (never a bare
    AttributeError), and hasattr stays False for the missing ones."""
    def probe(a):
        seen = {}
        for name in PUBLIC:
            try:
                getattr(a, name)
                seen[name] = "ok"
            except NoRuleError as e:
                assert f"x.{name}" in str(e), str(e)
                assert isinstance(e, NotImplementedError) and isinstance(e, AttributeError)
                assert hasattr(a, name) is False
                seen[name] = "named"
        return seen
    if what == "scalar" and mode == "nested":
        pytest.skip("values of a nested call are one type (Box), probed as arrays")
    seen = _inside(mode, probe if what == "array" else lambda a: probe(a[0] * 1.0))
    assert set(seen) == set(PUBLIC)
    for name in ("choose", "compress", "partition", "tobytes"):
        assert seen[name] == "named"
    for name in ("sum", "reshape", "shape", "dtype", "copy", "item", "round", "std", "var",
                 "cumprod", "astype", "sort", "put"):
        assert seen[name] == "ok"


@pytest.mark.parametrize("mode", [Reverse, Forward])
@pytest.mark.parametrize("call", [lambda t: t.item(), lambda t: t.tolist()])
def test_item_of_a_traced_scalar_is_the_detach_error(call, mode):
    with pytest.raises(TypeError, match="would silently drop the derivative.*sad.primal"):
        _inside(mode, lambda a: call(a[0] * 2.0))


@pytest.mark.parametrize("mode", [Reverse, Forward])
@pytest.mark.parametrize("name", ["choose", "compress", "partition", "tobytes"])
def test_missing_method_message(mode, name):
    with pytest.raises(NotImplementedError, match=rf"x\.{name}\(\) has no derivative rule in "
                                                  r"shadowad.*sad\.primal\(x\)"):
        _inside(mode, lambda a: getattr(a, name)())


@pytest.mark.parametrize("mode", [Reverse, Forward])
def test_methods_whose_function_has_a_rule_call_it(mode):
    got = _inside(mode, lambda a: (a.round(), a.any(), a.all(), a.nonzero(),
                                   a.searchsorted(2.5)))
    r, any_, all_, nz, ss = got
    assert r.tolist() == [1.0, 2.0, 3.0] and any_ and all_
    assert nz[0].tolist() == [0, 1, 2] and ss == 2


@pytest.mark.parametrize("mode", [Reverse, Forward])
def test_numpy_duck_typing_is_unchanged(mode):
    def probe(a):
        return (hasattr(a, "__array_interface__"), hasattr(a, "__array_struct__"),
                hasattr(a, "__array_priority__"), hasattr(a, "compress"), hasattr(a, "shape"),
                np.shape(a), np.ndim(a), np.size(a))
    assert _inside(mode, probe) == (False, False, True, False, True, (3,), 1, 3)


# --------------------------------------------------------------------------
# names of functions without a rule

NAMES = [
    (np.fft.rfft, "np.fft.rfft"), (np.fft.fftshift, "np.fft.fftshift"),
    (np.linalg.eigvals, "np.linalg.eigvals"), (np.polyval, "np.polyval"),
    (np.lib.stride_tricks.sliding_window_view, "np.lib.stride_tricks.sliding_window_view"),
    (np.random.normal, "np.random.normal"),
    (np.random.Generator.normal, "np.random.Generator.normal"),
    (np.ma.sum, "np.ma.sum"), (np.exp, "np.exp"), (np.add, "np.add"),
    (np.polynomial.polynomial.polyval, "np.polynomial.polynomial.polyval"),
    (statistics.fmean, "statistics.fmean"), (math.exp, "math.exp"), (len, "len"),
]


@pytest.mark.parametrize("func, name", NAMES, ids=[n for _, n in NAMES])
def test_qualified_names(func, name):
    assert qualified_name(func) == name


@pytest.mark.parametrize("mode", [Reverse, Forward])
@pytest.mark.parametrize("call, name", [
    (lambda a: np.fft.rfft(a), "np.fft.rfft"),
    (lambda a: np.linalg.eigvals(np.outer(a, a)), "np.linalg.eigvals"),
    (lambda a: np.unwrap(a), "np.unwrap"),
    (lambda a: np.spacing(a), "np.spacing"),
    (lambda a: np.logaddexp.reduce(a), "np.logaddexp.reduce"),
])
def test_no_rule_errors_name_the_function(call, name, mode):
    with pytest.raises(NotImplementedError, match=rf"shadowad: {name} has no derivative rule"):
        _inside(mode, call)


def test_scipy_names():
    special = pytest.importorskip("scipy.special")
    assert qualified_name(special.expit) == "scipy.special.expit"
    assert qualified_name(special.gammaln) == "scipy.special.gammaln"
    assert qualified_name(special.logsumexp) == "scipy.special.logsumexp"
    for mode in (Reverse, Forward):
        with pytest.raises(NotImplementedError, match="shadowad: scipy.special.gamma has no "
                                                      "derivative rule"):
            _inside(mode, lambda a: special.gamma(a))


# --------------------------------------------------------------------------
# a library function that converts its inputs with np.asarray

@pytest.mark.parametrize("mode", [Reverse, Forward])
def test_scipy_log_softmax_is_named_not_zeros_like(mode):
    special = pytest.importorskip("scipy.special")
    with pytest.raises(TypeError) as e:
        _inside(mode, lambda a: special.log_softmax(a))
    msg = str(e.value)
    assert "scipy.special.log_softmax has no derivative rule" in msg
    assert "np.asarray" in msg and "sad.primal(x)" in msg
    assert "zeros_like" not in msg


@pytest.mark.parametrize("mode", [Reverse, Forward])
def test_stdlib_function_converting_is_named(mode):
    with pytest.raises(TypeError, match="statistics.fmean has no derivative rule"):
        _inside(mode, lambda a: statistics.fmean(a))


@pytest.mark.parametrize("mode", [Reverse, Forward])
@pytest.mark.parametrize("call, words", [
    (lambda a: np.asarray(a), "converting a traced array to a plain numpy array"),
    (lambda a: np.zeros(3).__setitem__(0, a[0]), "np.zeros_like"),
    (lambda a: float(a[0]), "float() of a traced scalar"),
    # a rule's own numpy call converts (clip's list of bounds): no library is blamed
    (lambda a: np.clip(a, [a[0] * 0.5, 0.0, 0.0], 2.5), "np.stack"),
])
def test_own_conversions_keep_the_detach_advice(call, words, mode):
    """The user's own conversion is not a library's: the advice stays
    np.zeros_like / np.stack / sad.primal."""
    with pytest.raises(TypeError) as e:
        _inside(mode, call)
    assert words in str(e.value) and "has no derivative rule" not in str(e.value)


def test_nested_missing_method_and_ufunc_are_named():
    special = pytest.importorskip("scipy.special")
    with pytest.raises(NotImplementedError, match=r"x\.compress\(\) is not supported inside a "
                                                  "nested differentiation"):
        _inside("nested", lambda a: a.compress())
    with pytest.raises(TypeError, match="scipy.special.gamma is not supported inside a nested"):
        _inside("nested", lambda a: special.gamma(a))


def test_modes_left_alone():
    """Good calls around the bad ones still work (no state is left behind)."""
    g, = autodiff(lambda a: np.sum(a * a), Active(x()))
    assert g.tolist() == (2 * X).tolist()
    t = autodiff(lambda a: np.sum(a * a), Duplicated(x(), np.ones(3)), mode=ForwardWithPrimal)
    assert t == (12.0, 14.0)
    (g,), v = autodiff(lambda a: np.sum(a), Active(x()), mode=ReverseWithPrimal)
    assert v == 6.0
    assert Const(1.0).val == 1.0


@pytest.mark.parametrize("kind", ["scalar", "0-d array"])
def test_returning_a_value_of_an_earlier_call(kind):
    kept = []

    def f(a):
        kept.append(a[0] * 2.0 if kind == "scalar" else np.reshape(a[:1] * 2.0, ()))
        return np.sum(a)
    autodiff(f, Active(x()))
    kept.clear()
    sad.autodiff_split(f, Active(x()))  # a tape still alive, never reversed
    with pytest.raises(RuntimeError, match="escaped from an earlier autodiff call"):
        autodiff(lambda a: kept[0], Active(x()))


@pytest.mark.parametrize("change", ["pop shadow", "push shadow", "pop primal", "push primal",
                                    "pop const"])
def test_split_tape_refuses_vectors_whose_length_changed(change):
    """The records of a split tape pop and push Vectors by position: a Vector
    argument whose length changed before tape.reverse is refused (a shadow
    popped in between made gradients vanish) and the tape stays usable."""
    def f(v, c):
        v.push(v[0] * c[1])
        t = v.pop()
        v[1] = t * v[1]
        return v[1] + v[0]
    v, w = sad.Vector(np.array([1.5, 2.0])), sad.Vector(np.zeros(2))
    c = sad.Vector(np.array([3.0, 4.0]))
    _, tape = sad.autodiff_split(f, Duplicated(v, w), Const(c))
    target = {"pop shadow": w, "push shadow": w, "pop primal": v, "push primal": v,
              "pop const": c}[change]
    if change.startswith("pop"):
        kept = target.pop()
    else:
        target.push(9.0)
    with pytest.raises(ValueError, match=r"tape.reverse: argument [01] is a Vector of length "
                                         r".* when autodiff_split returned"):
        tape.reverse()
    if change.startswith("pop"):
        target.push(kept)
    else:
        target.pop()
    tape.reverse()
    # d/dv0 (v0 + v0 * c1 * v1) = 1 + c1 * v1, d/dv1 = v0 * c1
    assert w[:].tolist() == [1.0 + 4.0 * 2.0, 1.5 * 4.0]


def test_scalar_methods_with_a_rule():
    """ndarray methods on a traced scalar, as numpy scalars have them: the
    derivative goes through (reshape with varargs, sum, clip, copy)."""
    def body(a):
        t = a[0] * 2.0
        return np.sum(t.reshape(1, 1) * 3.0) + t.sum() + t.clip(0.0, 1.0) + t.copy()

    g, = autodiff(lambda a: body(a), Active(np.array([0.25, 1.0])))
    assert g.tolist() == [2.0 * (3.0 + 1.0 + 1.0 + 1.0), 0.0]
    t = autodiff(lambda a: body(a), Duplicated(np.array([0.25, 1.0]), np.array([1.0, 0.0])),
                 mode=Forward)
    assert t == 12.0


@pytest.mark.parametrize("mode", [Reverse, Forward])
@pytest.mark.parametrize("name", ["sort", "partition", "resize", "put", "byteswap"])
def test_in_place_methods_are_never_the_numpy_function(name, mode):
    """x.sort() sorts x in place, np.sort(x) returns a sorted copy: an
    in-place method must not be mapped to the function (x would be left
    unsorted, silently), even once the function has a rule.  x.sort() and
    x.put() have their own in-place definitions (test below); the others
    stay refused."""
    from shadowad.engines.reverse.interface import IN_PLACE_METHODS, complete_ndarray_interface

    assert name in IN_PLACE_METHODS

    class Probe:
        pass
    complete_ndarray_interface(Probe, has_rule=lambda func: True)
    assert type(Probe.__dict__[name]).__name__ != "_ByFunction"
    if name == "sort":
        def sort_reversed(a):
            b = a[::-1] * 1.0
            b.sort()
            return sad.primal(b).tolist()
        assert _inside(mode, sort_reversed) == [1.0, 2.0, 3.0]
    if name in ("sort", "put"):
        return
    with pytest.raises(NotImplementedError, match=name):
        _inside(mode, lambda a: getattr(a, name)(1) if name in ("partition", "resize")
                else getattr(a, name)())


# --------------------------------------------------------------------------
# a function without a rule: the error names a supported alternative and how
# to add a rule

@pytest.mark.parametrize("mode", [sad.Reverse, sad.Forward])
def test_no_rule_error_names_the_alternative_and_custom_rule(mode):
    x = np.array([1.0, np.nan, 3.0])
    with pytest.raises(NotImplementedError) as e:
        sad.autodiff(lambda x: np.nanprod(x), sad.Duplicated(x.copy(), np.zeros(3)), mode=mode)
    msg = str(e.value)
    assert "np.nanprod has no derivative rule" in msg
    assert "np.prod(np.where(np.isnan(x), 1.0, x))" in msg
    assert "sad.custom_rule(implements=np.nanprod)" in msg and "sad.primal" in msg
    # the alternative it names runs, with the derivative nanprod would have
    g = sad.gradient(lambda x: np.prod(np.where(np.isnan(x), 1.0, x)), x.copy())[0]
    np.testing.assert_array_equal(g, [3.0, 0.0, 1.0])


def test_no_rule_error_of_a_ufunc_says_to_call_a_rule():
    with pytest.raises(NotImplementedError, match=r"np\.fmod.*np\.trunc.*call the rule inside f"):
        sad.gradient(lambda x: np.sum(np.fmod(x, 2.0)), np.ones(3))


def test_no_rule_error_of_a_converting_library_function_says_to_wrap_it():
    pytest.importorskip("scipy")
    import scipy.stats
    with pytest.raises(TypeError, match=r"scipy\.stats\.\w+ has no derivative rule.*custom_rule"):
        sad.gradient(lambda x: np.sum(scipy.stats.zscore(x)), np.arange(3.0))


def test_nested_unsupported_error_points_to_the_list():
    with pytest.raises(TypeError, match="Supported numpy operations.*custom_rule"):
        sad.jacobian(lambda x: sad.gradient(lambda y: np.nanprod(y), x)[0], np.ones(3))


@pytest.mark.parametrize("mode", [Reverse, Forward, "nested"])
def test_sort_and_put_methods_write_in_place(mode):
    def probe(a):
        y = a[::-1] * 1.0
        assert y.sort() is None
        assert y.put([0], 5.0) is None
        from shadowad.primitives.values import plain
        return np.array(plain(y))  # under every level
    got = _inside(mode, probe)
    assert np.array_equal(got[1:], np.sort(got[1:])) and got[0] == 5.0
