"""The shape-and-selection family of issue #16 (shadowad/primitives/arrange.py
and scatter.py): check_rule on each function (finite differences, restore,
accumulate-once, dot product), values bit for bit against numpy, the
degenerate points (ties, zeros in multiply.at, repeated indices, aliasing of
a written array with its values), every keyword form, the errors, and third
derivatives through the nested engine."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Duplicated, Forward, Reverse
from shadowad.testing import check_failure_atomic, check_rule, same_bits

RNG = np.random.default_rng(16)
X6 = np.round(RNG.standard_normal(6), 3) + 0.25
X23 = np.round(RNG.standard_normal((2, 3)), 3) - 0.125


def W(shape):
    n = int(np.prod(shape))
    return (np.arange(1.0, n + 1.0) / 3.0 - (np.arange(n) % 2)).reshape(shape)


def ws(r):
    return np.sum(r * W(np.shape(r)))


def _weighted(parts, axis=0):
    """The parts of a split put back together, each scaled differently."""
    return np.concatenate([p * (i + 1.0) for i, p in enumerate(parts)], axis=axis)


# --------------------------------------------------------------------------
# every function and keyword form, as numpy users write them: (program of x
# returning an array, input).  The same program runs on plain arrays (numpy's
# value) and traced ones.

FORMS = {
    "diag_vector": (lambda x: np.diag(x), X6),
    "diag_vector_k": (lambda x: np.diag(x[:4], 2) + np.diag(x, -1)[1:, :-1][:6, :6], X6),
    "diag_matrix": (lambda x: np.concatenate([np.diag(x), np.diag(x, 1), np.diag(x, -1)]), X23),
    "diagflat": (lambda x: np.diagflat(x, -1), X23),
    "tril": (lambda x: np.tril(x), X23),
    "tril_k": (lambda x: np.tril(x, 1) + np.tril(x, -3), X23),
    "triu_k": (lambda x: np.triu(x, -1) * np.triu(x), X23),
    "tril_1d": (lambda x: np.tril(x), X6),
    "roll_int": (lambda x: np.roll(x, 4), X6),
    "roll_negative_big": (lambda x: np.roll(x, -13), X6),
    "roll_axis_none_2d": (lambda x: np.roll(x, 2), X23),
    "roll_tuple": (lambda x: np.roll(x, (1, 2), axis=(0, 1)), X23),
    "roll_repeated_axis": (lambda x: np.roll(x, (1, 1), axis=(1, 1)), X23),
    "roll_zero": (lambda x: np.roll(x, 0), X6),
    "tile_int": (lambda x: np.tile(x, 3), X6),
    "tile_tuple": (lambda x: np.tile(x, (2, 1, 2)), X23),
    "tile_short_reps": (lambda x: np.tile(x, 2), X23),
    "repeat_int": (lambda x: np.repeat(x, 2), X23),
    "repeat_array_axis": (lambda x: np.repeat(x, [0, 3, 1], axis=1), X23),
    "repeat_method": (lambda x: x.repeat(2, axis=0), X23),
    "pad_constant": (lambda x: np.pad(x, ((1, 2), (0, 3))), X23),
    "pad_constant_values": (lambda x: np.pad(x, 2, constant_values=((1.5, -2.0), (0.25, 7.0))),
                            X23),
    "pad_edge": (lambda x: np.pad(x, (2, 1), mode="edge"), X23),
    "pad_reflect_wide": (lambda x: np.pad(x, ((4, 5), (7, 2)), mode="reflect"), X23),
    "pad_symmetric": (lambda x: np.pad(x, 3, mode="symmetric"), X23),
    "pad_wrap_wide": (lambda x: np.pad(x, ((3, 4), (5, 1)), mode="wrap"), X23),
    "pad_zero": (lambda x: np.pad(x, 0), X23),
    "split": (lambda x: _weighted(np.split(x, 3)), X6),
    "split_indices": (lambda x: _weighted(np.split(x, [2, -1, 9])), X6),
    "array_split_axis": (lambda x: _weighted(np.array_split(x, 2, axis=1), axis=1), X23),
    "hsplit": (lambda x: _weighted(np.hsplit(x, 3), axis=1), X23),
    "hsplit_1d": (lambda x: _weighted(np.hsplit(x, [2, 5])), X6),
    "vsplit": (lambda x: _weighted(np.vsplit(x, 2)), X23),
    "dsplit": (lambda x: _weighted(np.dsplit(np.reshape(x, (1, 2, 3)), [1]), axis=2), X23),
    "append": (lambda x: np.append(x, x[0] * 2.0), X23),
    "append_axis": (lambda x: np.append(x, x[::-1] ** 2, axis=1), X23),
    "delete": (lambda x: np.delete(x, [0, -2]), X23),
    "delete_axis_slice": (lambda x: np.delete(x, slice(1, None), axis=1), X23),
    "delete_mask": (lambda x: np.delete(x, np.array([True, False, True, True, False, False])), X6),
    "fliplr": (lambda x: np.fliplr(x), X23),
    "flipud": (lambda x: np.flipud(x), X6),
    "take_clip": (lambda x: np.take(x, [[0, 9], [-8, 2]], mode="clip"), X6),
    "take_wrap_axis": (lambda x: np.take(x, [4, -1, 3], axis=1, mode="wrap"), X23),
    "take_along_axis": (lambda x: np.take_along_axis(x, np.array([[2, 2, 0, -1]]), 1), X23),
    "take_along_axis_none": (lambda x: np.take_along_axis(x, np.array([5, 0, 5]), None), X23),
    "sort": (lambda x: np.sort(x), X23),
    "sort_axis0": (lambda x: np.sort(x, axis=0), X23),
    "sort_none": (lambda x: np.sort(x, axis=None), X23),
    "sort_kind": (lambda x: np.sort(x, kind="mergesort"), X6),
    "rot90": (lambda x: np.concatenate([np.rot90(x, k).ravel() for k in range(-2, 6)]), X23),
    "rot90_axes": (lambda x: np.rot90(np.reshape(x, (1, 2, 3)), 1, axes=(2, 0)), X23),
    "kron": (lambda x: np.kron(x, x.T), X23),
    "kron_mixed_ndim": (lambda x: np.kron(x[0], x), X23),
    "kron_plain": (lambda x: np.kron(np.eye(2), x) + np.kron(x, np.ones((2, 2))), X23),
    "sum_where": (lambda x: np.sum(x, axis=1, where=np.array([True, False, True])), X23),
    "mean_where": (lambda x: np.mean(x * x, axis=0, where=np.array([[True], [False]])), X23),
}


def _apply(form):
    prog, _ = FORMS[form]

    def f(x):
        return ws(prog(x))
    return f


@pytest.mark.parametrize("form", sorted(FORMS))
def test_check_rule(form):
    f = _apply(form)
    x = FORMS[form][1]
    check_rule(f, Duplicated(x.copy(), np.zeros_like(x)))


@pytest.mark.parametrize("form", sorted(FORMS))
def test_values_are_numpys(form):
    prog, x = FORMS[form]
    seen = {}

    def f(x):
        r = prog(x)
        seen["v"] = np.array(sad.primal(r), dtype=float)
        return ws(r)
    sad.autodiff(f, Duplicated(x.copy(), np.zeros_like(x)))
    want = np.asarray(prog(x.copy()), dtype=float)
    if form in ("sum_where", "mean_where"):  # numpy's masked loop may round otherwise
        np.testing.assert_allclose(seen["v"], want, rtol=1e-15)
    else:
        assert same_bits(seen["v"], want), form


# --------------------------------------------------------------------------
# the mutating ones: np.put, put_along_axis, x.put, ufunc.at, x.sort()

def _put(x):
    y = x * 1.0
    np.put(y, [0, -1, 0], x[1:3] ** 2)  # repeated: the last write wins
    np.put(y, np.array([[7, -9]]), 3.0 * x[0], mode="wrap")
    np.put(y, [10, -10], x[3:5], mode="clip")
    y.put([2], x[4] * x[5])
    np.put(y, [1, 2, 3], x[:2])  # values repeated as needed
    return y


def _put_along_axis(x):
    y = np.reshape(x * 2.0, (2, 3))
    np.put_along_axis(y, np.array([[1, 1], [0, 2]]), y[:, :2] ** 2, 1)
    np.put_along_axis(y, np.array([[0, 1, 1]]), -x[0] * 0.5, axis=0)
    np.put_along_axis(y, np.array([4, 0]), x[1:3], None)
    return y


def _ufunc_at(x):
    y = x * 1.0
    np.add.at(y, [0, 1, 1, 5, 1], x[:5] ** 2)
    np.subtract.at(y, [2, 2], 3.0 * x[0])
    np.add.at(y, 4, 1.5)
    np.multiply.at(y, [3, 3, 4, 3], x[1:5])
    np.add.at(y, slice(1, 3), y[3:5])  # values that are a view of the written array
    return y


def _ufunc_at_2d(x):
    y = np.zeros_like(np.reshape(x, (2, 3)))
    np.add.at(y, (np.array([0, 1, 0, 0]), np.array([2, 2, 2, 0])), x[:4] * x[2:])
    np.subtract.at(y, (slice(None), 1), x[:2])
    np.multiply.at(y, (np.array([0, 0]), np.array([2, 2])), x[4:])
    return y


def _sort_method(x):
    y = x * 1.0
    y.sort()
    z = np.reshape(x * x, (2, 3))
    z.sort(axis=0)
    return np.concatenate([y, z.ravel()])


def _aliased_writes(x):
    y = x * 1.0
    np.multiply.at(y, [1, 2, 3], y[:3])
    np.put(y, [1, 2, 3], y[:3])
    np.put_along_axis(y, np.array([2, 3, 4]), y[1:4], 0)
    return y


MUTATING = {"put": _put, "put_along_axis": _put_along_axis, "ufunc_at": _ufunc_at,
            "ufunc_at_2d": _ufunc_at_2d, "sort_method": _sort_method,
            "aliased_writes": _aliased_writes}


@pytest.mark.parametrize("name", sorted(MUTATING))
def test_mutating_check_rule(name):
    prog = MUTATING[name]
    check_rule(lambda x: ws(prog(x)), Duplicated(X6.copy(), np.zeros(6)))


@pytest.mark.parametrize("name", sorted(MUTATING))
def test_mutating_values_are_numpys(name):
    prog = MUTATING[name]
    seen = {}

    def f(x):
        r = prog(x)
        seen["v"] = np.array(sad.primal(r), dtype=float)
        return ws(r)
    sad.autodiff(f, Duplicated(X6.copy(), np.zeros(6)))
    assert same_bits(seen["v"], np.asarray(prog(X6.copy()), dtype=float))


def _into_argument(x, y):
    """Writes into an argument (Duplicated y): its shadow turns into the adjoint
    of its value before the call."""
    np.add.at(y, [0, 0, 2], x[:3])
    np.multiply.at(y, [1, 1], x[3:5])
    np.put(y, [3], x[5])
    np.put_along_axis(y, np.array([4]), x[0] * x[1], 0)
    y.sort()
    return ws(y)


def test_writes_into_an_argument():
    check_rule(_into_argument, Duplicated(X6.copy(), np.zeros(6)),
               Duplicated(X6[::-1] * 2.0, np.zeros(6)))


def test_writes_into_an_argument_shadow_semantics():
    x, y = X6.copy(), np.arange(1.0, 7.0)
    dx, dy = np.zeros(6), np.ones(6)
    sad.autodiff(lambda x, y: np.add.at(y, [0, 0, 1], x[:3]), Duplicated(x, dx),
                 Duplicated(y, dy))
    assert same_bits(dx, np.array([1.0, 1.0, 1.0, 0, 0, 0]))
    assert same_bits(dy, np.ones(6))  # every entry of y still reaches y after the call
    want = np.arange(1.0, 7.0)
    np.add.at(want, [0, 0, 1], X6[:3])
    assert same_bits(y, want)


def test_many_calls_in_a_row():
    def f(x):
        y = x * 1.0
        for k in range(50):
            np.add.at(y, [k % 6, (k * 5) % 6], x[k % 3: k % 3 + 2] * 0.01)
            np.multiply.at(y, [(k * 7) % 6], 1.0 + 0.001 * x[k % 6])
            y = np.roll(y, 1)
        return ws(y)
    check_rule(f, Duplicated(X6.copy(), np.zeros(6)))


def test_exception_half_way_restores():
    def f(x, y):
        np.add.at(y, [0, 1], x[:2])
        np.multiply.at(y, [2, 2], x[2:4])
        np.put(y, [1, 9], x[:2])  # out of bounds: numpy's IndexError
        return np.sum(y)
    check_failure_atomic(f, Duplicated(X6.copy(), np.zeros(6)),
                         Duplicated(X6 * 3.0, np.ones(6)), exc=IndexError)


# --------------------------------------------------------------------------
# degenerate points

def test_sort_ties_follow_the_stable_permutation():
    x = np.array([1.0, 3.0, 1.0, 0.0, 1.0])
    g, = sad.gradient(lambda x: np.sum(np.sort(x) * np.arange(1.0, 6.0)), x)
    # sorted: x[3], x[0], x[2], x[4], x[1]
    assert same_bits(g, np.array([2.0, 5.0, 3.0, 1.0, 4.0]))
    t = sad.autodiff(lambda x: np.sort(x)[1], Duplicated(x, np.array([1.0, 0, 0, 0, 0])),
                     mode=Forward)
    assert t == 1.0


def test_sort_nans_go_last_with_their_derivative():
    x = np.array([np.nan, 2.0, -np.inf, 1.0])
    g, = sad.gradient(lambda x: np.sum(np.sort(x) * np.arange(1.0, 5.0)), x)
    assert same_bits(g, np.array([4.0, 3.0, 1.0, 2.0]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # 0 * inf in the value, as numpy's
@pytest.mark.parametrize("mode", [Reverse, Forward])
def test_multiply_at_with_zeros_gives_products_never_nan(mode):
    def f(b):
        y = np.ones_like(b)[:2] * 2.0
        np.multiply.at(y, [0, 0, 0, 1], b)
        return y[0] + 10.0 * y[1]
    cases = {(0.0, 2.0, 3.0, 1.0): [12.0, 0.0, 0.0, 20.0],
             (0.0, 0.0, 3.0, 0.0): [0.0, 0.0, 0.0, 20.0],
             (0.0, np.inf, 1.0, 5.0): [np.inf, 0.0, np.nan, 20.0]}
    for b, want in cases.items():
        b = np.array(b)
        if mode is Reverse:
            g, = sad.gradient(f, b)
        else:
            g = np.array([sad.autodiff(f, Duplicated(b.copy(), e), mode=Forward)
                          for e in np.eye(4)])
        if np.isinf(b).any():  # 0 * inf in the value: the product rule of numpy's products
            assert not np.isnan(g[:2]).any() and g[3] == 20.0
        else:
            assert same_bits(g, np.array(want)), (b, g)


def test_add_at_repeated_indices_accumulate():
    g, = sad.gradient(lambda b: np.sum(_add_into_zeros(b) * np.array([1.0, 10.0, 100.0])),
                      np.array([1.0, 2.0, 3.0, 4.0]))
    assert same_bits(g, np.array([10.0, 10.0, 10.0, -100.0]))


def _add_into_zeros(b):
    y = np.zeros_like(b)[:3]
    np.add.at(y, [1, 1, 1], b[:3])
    np.subtract.at(y, [2], b[3:])
    return y


def test_add_at_values_are_numpys_sequential_sums():
    b = np.array([1e16, 1.0, -1e16, 1.0, 3.0])
    want = np.zeros(2)
    np.add.at(want, [0, 0, 0, 0, 1], b)
    seen = {}

    def f(b):
        y = np.zeros_like(b)[:2]
        np.add.at(y, [0, 0, 0, 0, 1], b)
        seen["v"] = np.array(sad.primal(y))
        return np.sum(y)
    sad.gradient(f, b)
    assert same_bits(seen["v"], want)


def test_put_last_write_wins():
    g, = sad.gradient(lambda v: np.sum(_put_twice(v) * np.array([1.0, 10.0, 100.0])),
                      np.array([1.0, 2.0, 3.0]))
    assert same_bits(g, np.array([0.0, 1.0, 100.0]))


def _put_twice(v):
    y = np.zeros_like(v)
    np.put(y, [0, 0, 2], v)
    return y


def test_diag_round_trip_and_signed_zeros():
    x = np.array([-0.0, 2.0, np.inf])
    seen = {}

    def f(x):
        m = np.diag(x, 1)
        seen["m"] = np.array(sad.primal(m))
        return np.sum(np.diag(m, 1) * np.array([1.0, 2.0, 3.0]))
    g, = sad.gradient(f, x)
    assert same_bits(seen["m"], np.diag(x, 1))
    assert same_bits(g, np.array([1.0, 2.0, 3.0]))


def test_empty_arrays():
    for prog in (lambda x: np.roll(x, 3), lambda x: np.tile(x, 2), lambda x: np.repeat(x, 2),
                 lambda x: np.pad(x, 2), lambda x: np.sort(x), lambda x: np.diag(x),
                 lambda x: np.kron(x, x)):
        g, = sad.gradient(lambda x: np.sum(prog(x)) + np.sum(x), np.zeros(0))
        assert g.shape == (0,)


# --------------------------------------------------------------------------
# refusals name the problem

@pytest.mark.parametrize("prog,exc,words", [
    (lambda x: np.pad(x, 1, mode="mean"), NotImplementedError, "mode='mean'"),
    (lambda x: np.pad(x, 1, mode="reflect", reflect_type="odd"), NotImplementedError, "odd"),
    (lambda x: np.pad(x, 1, constant_values=x[0]), NotImplementedError, "constant_values"),
    (lambda x: np.pad(x, 1.5), TypeError, "pad_width"),
    (lambda x: np.sort(x, order="a"), ValueError, "order"),
    (lambda x: np.put(x * 1.0, [7], 1.0), IndexError, "out of bounds"),
    (lambda x: np.put(x * 1.0, [1], 1.0, mode="bogus"), ValueError, "clipmode"),
    (lambda x: np.maximum.at(x * 1.0, [0], 1.0), NotImplementedError, "np.maximum.at"),
    (lambda x: np.add.at(x * 1.0, [0.5], 1.0), IndexError, "only integers"),
    (lambda x: np.split(x, 4), ValueError, "equal division"),
    (lambda x: np.repeat(x, 1.5), TypeError, "repeats"),
    (lambda x: np.roll(x, 1.5), TypeError, "shift"),
    (lambda x: np.diag(np.reshape(x, (1, 2, 3))), ValueError, "1- or 2-d"),
    (lambda x: np.take_along_axis(x, np.array([[0]]), 0), ValueError, "same number"),
    (lambda x: np.vsplit(x, 2), ValueError, "2 or more dimensions"),
    (lambda x: np.fliplr(x), ValueError, "2-d"),
    (lambda x: np.delete(x, [1.5]), IndexError, "integer"),
    (lambda x: np.delete(x, 9), IndexError, "out of bounds"),
])
def test_refusals(prog, exc, words):
    with pytest.raises(exc, match=words.replace("(", r"\(")):
        sad.gradient(lambda x: np.sum(prog(x)), X6.copy())


@pytest.mark.parametrize("mode", [Reverse, Forward, "nested"])
@pytest.mark.parametrize("write", [
    lambda buf, x: np.add.at(buf, [0, 0], x[:2]),
    lambda buf, x: np.multiply.at(buf, [1], x[0]),
    lambda buf, x: np.put(buf, [0], x[0]),
    lambda buf, x: np.put_along_axis(buf, np.array([1]), x[:1], 0),
], ids=["add.at", "multiply.at", "put", "put_along_axis"])
def test_writing_traced_values_into_a_plain_buffer_says_how(write, mode):
    def f(x):
        buf = np.zeros(6)
        write(buf, x)
        return np.sum(buf)
    with pytest.raises(TypeError, match=r"plain numpy array.*np\.zeros_like"):
        if mode == "nested":
            sad.gradient(lambda s: sad.gradient(f, X6 * s)[0][0], 1.0)
        elif mode is Forward:
            sad.autodiff(f, Duplicated(X6.copy(), np.ones(6)), mode=Forward)
        else:
            sad.gradient(f, X6.copy())


def test_active_array_cannot_be_written_by_put():
    with pytest.raises(Exception, match="Duplicated"):
        sad.gradient(lambda x: np.put(x, [0], 1.0) or np.sum(x), X6.copy())


# --------------------------------------------------------------------------
# third derivatives through the nested engine, all mode triples on two cases

def derivative(g, mode):
    if mode is Reverse:
        return lambda s: sad.autodiff(g, Active(s))[0]
    return lambda s: sad.autodiff(g, Duplicated(s, 1.0), mode=Forward)


def _linear_cubed(s):
    # phi(s) = s**3 * c, each op linear in x: phi''' = 6 c
    x = X6 * s
    r = (ws(np.roll(x, 2) ** 3) + ws(np.tile(x[:2], 2) ** 3) + ws(np.pad(x, 1, mode="reflect") ** 3)
         + ws(np.diag(x[:3], 1) ** 3) + ws(np.sort(x) ** 3) + ws(np.repeat(x, 2) ** 3))
    return r


def _mutated(s):
    # y0 = s**3, y1 = 2 s**2 + s, y2 = -3 s: phi''' = 6 * w0
    y = np.ones(3) * s
    np.multiply.at(y, [0, 0, 1], np.stack([s, s, 2.0 * s]))
    np.add.at(y, [1, 2, 2], np.stack([s * 0.0 + 0.0, -2.0 * s, -2.0 * s]))
    np.put(y, [2], -3.0 * s)
    return ws(y)


C_LINEAR = 6.0 * (ws(np.roll(X6, 2) ** 3) + ws(np.tile(X6[:2], 2) ** 3)
                  + ws(np.pad(X6, 1, mode="reflect") ** 3) + ws(np.diag(X6[:3], 1) ** 3)
                  + ws(np.sort(X6) ** 3) + ws(np.repeat(X6, 2) ** 3))


@pytest.mark.parametrize("modes", [(a, b, c) for a in (Forward, Reverse) for b in (Forward, Reverse)
                                   for c in (Forward, Reverse)],
                         ids=lambda m: "-".join("F" if x is Forward else "R" for x in m))
def test_third_derivatives_nested(modes):
    a, b, c = modes
    d3 = derivative(derivative(derivative(_linear_cubed, c), b), a)
    np.testing.assert_allclose(d3(0.7), C_LINEAR, rtol=1e-12)
    d3 = derivative(derivative(derivative(_mutated, c), b), a)
    np.testing.assert_allclose(d3(0.7), 6.0 * W((3,))[0], rtol=1e-12)
