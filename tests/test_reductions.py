"""Reductions (sum, mean, prod, max/min, cumsum, trace and the ufunc methods):
finite differences, restore, accumulate-once, exact values at ties and zeros,
primals equal to numpy's bit for bit, and the errors of unsupported arguments."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import (Active, Const, Duplicated, Forward, ForwardWithPrimal, ReverseWithPrimal,
    autodiff)
from shadowad.testing import check_forward, check_rule, same_bits

rng = np.random.default_rng(42)


check_all = check_rule


def dup(a):
    return Duplicated(a.copy(), np.zeros_like(a))


AXIS_REDUCTIONS = [np.sum, np.mean, np.prod, np.max, np.min, np.amax, np.amin]
SHAPE_AXES = [((5,), None), ((5,), 0), ((5,), -1), ((3, 4), None), ((3, 4), 0),
              ((3, 4), 1), ((3, 4), (0, 1)), ((2, 3, 4), 1), ((2, 3, 4), (0, 2)),
              ((2, 3, 4), ()), ((), None)]


def _data(shape, fn):
    x = rng.standard_normal(shape)
    if fn is np.prod:  # keep products moderate
        x = 0.5 + 0.5 * np.abs(x)
    return np.array(x)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape,axis", SHAPE_AXES)
@pytest.mark.parametrize("fn", AXIS_REDUCTIONS, ids=lambda f: f.__name__)
def test_axis_reduction_in_place_program(fn, shape, axis, keepdims):
    x = _data(shape, fn)
    y = np.array(rng.standard_normal(np.shape(fn(x, axis=axis, keepdims=keepdims))))

    def f(x, y):
        r = fn(x * x, axis=axis, keepdims=keepdims)
        y *= 0.5
        y += r                      # mutate an argument with the reduction
        return np.sum(y * fn(x, axis=axis, keepdims=keepdims))

    check_all(f, dup(x), dup(y))
    check_all(f, Active(x), dup(y))
    check_all(f, Const(x), dup(y))


@pytest.mark.parametrize("fn", AXIS_REDUCTIONS, ids=lambda f: f.__name__)
def test_primal_equals_numpy_bit_for_bit(fn):
    x = _data((7, 5), fn)
    for axis in (None, 0, 1):
        def f(x, y):
            r = fn(x, axis=axis)
            y[...] = r
            return fn(x)

        y = np.zeros(np.shape(fn(x, axis=axis)))
        dy = np.zeros_like(y)
        _, value = autodiff(f, Duplicated(x.copy(), np.zeros_like(x)), Duplicated(y, dy),
                            mode=ReverseWithPrimal)
        assert same_bits(y, fn(x, axis=axis))
        assert same_bits(value, fn(x))


def test_full_reductions_return_traced_scalars():
    seen = []

    def f(x):
        for fn in AXIS_REDUCTIONS:
            seen.append(type(fn(x)))
        seen.append(type(np.trace(x)))
        return np.sum(x)

    autodiff(f, Active(rng.standard_normal((3, 3))))
    assert all(t is sad.TScalar for t in seen)


def test_inactive_reductions_are_plain():
    seen = []

    def f(c, x):
        seen.append(type(np.sum(c)))
        seen.append(type(np.max(c, axis=0)))
        seen.append(np.sum(c, axis=0).p is not None)
        return np.sum(x)

    autodiff(f, Const(np.ones((2, 3))), Active(np.ones(2)))
    assert seen == [np.float64, sad.TArray, True]


# --------------------------------------------------------------------------
# sum: the C record, its fallback, and shadows of other layouts

def test_sum_of_a_view_with_many_dimensions():
    # 6 dimensions that do not coalesce: more than the C core iterates over
    x = rng.standard_normal((3, 2, 3, 2, 3, 2))

    def f(x):
        v = x[::2, :, ::2, :, ::2, :]
        return np.sum(v * v) + np.sum(v)

    check_all(f, dup(x))


def test_sum_with_fortran_ordered_shadow():
    x = rng.standard_normal((3, 4))
    dx = np.asfortranarray(np.ones((3, 4)))

    def f(x):
        return np.sum(x * x) + np.sum(x[:, 1:], axis=0)[0] + np.mean(x)

    autodiff(f, Duplicated(x, dx))
    want = 1 + 2 * x + 1 / 12
    want[:, 1] += 1
    np.testing.assert_allclose(dx, want, rtol=1e-14)


def test_sum_and_mean_exact_gradients():
    x, dx = np.arange(6.0).reshape(2, 3), np.zeros((2, 3))
    y, dy = np.zeros(3), np.array([1.0, 2.0, 3.0])

    def f(x, y):
        y[...] = np.sum(x, axis=0)
        return np.mean(x)

    autodiff(f, Duplicated(x, dx), Duplicated(y, dy))
    assert dx.tolist() == [[1 + 1 / 6, 2 + 1 / 6, 3 + 1 / 6]] * 2
    assert dy.tolist() == [0.0, 0.0, 0.0]  # y was overwritten: its shadow is consumed
    assert y.tolist() == [3.0, 5.0, 7.0]


# --------------------------------------------------------------------------
# prod with zeros, max/min with ties and NaN

@pytest.mark.parametrize("axis", [None, 0, 1])
def test_prod_with_zeros(axis):
    x = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 5.0], [1.5, -2.0, 0.5]])

    def f(x):
        return np.sum(np.prod(x, axis=axis))

    check_all(f, dup(x))
    (g,) = autodiff(f, Active(x))
    assert np.all(np.isfinite(g))
    if axis == 1:
        assert g[0].tolist() == [6.0, 0.0, 0.0]
        assert g[1].tolist() == [0.0, 0.0, 0.0]
        assert g[2].tolist() == [-1.0, 0.75, -3.0]


def test_max_min_ties_split_evenly():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    assert autodiff(lambda x: np.max(x), Active(x))[0].tolist() == [[0, .5, .5], [0, 0, 0]]
    g = autodiff(lambda x: np.sum(np.max(x, axis=1)), Active(x))[0]
    np.testing.assert_allclose(g, [[0, .5, .5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-15)
    g = autodiff(lambda x: np.sum(np.min(x, axis=0, keepdims=True)), Active(x))[0]
    assert g.tolist() == [[1, 0, 0], [0, 1, 1]]


def test_max_with_nan_sends_the_adjoint_to_the_nan():
    x = np.array([1.0, np.nan, 3.0])
    g = autodiff(lambda x: np.max(x), Active(x))[0]
    assert g.tolist() == [0.0, 1.0, 0.0]


# --------------------------------------------------------------------------
# cumsum and trace

@pytest.mark.parametrize("shape,axis", [((5,), None), ((5,), 0), ((3, 4), None),
                                        ((3, 4), 0), ((3, 4), -1), ((2, 3, 2), 1)])
def test_cumsum(shape, axis):
    x = rng.standard_normal(shape)
    y = rng.standard_normal(np.cumsum(x, axis=axis).shape)

    def f(x, y):
        y += np.cumsum(x * x, axis=axis)
        return np.sum(y * np.cumsum(x, axis=axis))

    check_all(f, dup(x), dup(y))
    check_all(f, Active(x), dup(y))


@pytest.mark.parametrize("shape,offset,axis1,axis2", [
    ((3, 3), 0, 0, 1), ((3, 4), 1, 0, 1), ((4, 3), -1, 0, 1), ((3, 3), 5, 0, 1),
    ((2, 3, 3), 0, 1, 2), ((3, 2, 3), 1, 2, 0), ((3, 2, 3), 0, -1, 0)])
def test_trace(shape, offset, axis1, axis2):
    x = rng.standard_normal(shape)
    y = rng.standard_normal(np.shape(np.trace(x, offset, axis1, axis2)))

    def f(x, y):
        y += np.trace(x * x, offset, axis1, axis2)
        return np.sum(y * np.trace(x, offset=offset, axis1=axis1, axis2=axis2))

    check_all(f, dup(x), dup(y))


def test_trace_exact():
    x, dx = rng.standard_normal((3, 3)), np.zeros((3, 3))
    autodiff(lambda x: np.trace(x) + x.trace(1), Duplicated(x, dx))
    assert dx.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]


@pytest.mark.skipif(np.broadcast_to not in sad.engines.rules.registry.FUNCTIONS,
                    reason="np.broadcast_to has no rule yet")
def test_reductions_of_broadcast_views():
    # a broadcast view's shadow has stride 0: each adjoint term must land
    x = rng.standard_normal(3)

    def f(x):
        B = np.broadcast_to(x, (4, 3))
        return (np.trace(B) + np.trace(B, 1) + np.sum(B) + np.mean(B) + np.sum(np.max(B, axis=0))
                + np.sum(np.prod(B, axis=1)) + np.sum(np.cumsum(B, axis=0) * B)
                + np.sum(np.min(B, axis=1)) + np.sum(np.mean(B, axis=0) ** 2))

    check_all(f, dup(x))


# --------------------------------------------------------------------------
# traced scalars, array methods, out=

def test_mixing_with_traced_scalars():
    x = rng.standard_normal((3, 4))
    y = rng.standard_normal(4)

    def f(a, x, y):
        t = x[0, 1] * a                         # a traced scalar
        y[...] = np.sum(x, axis=0) * t          # an in-place write of a reduction
        s = np.max(x) * t + np.sum(x) / t + np.prod(x[1]) - np.mean(x[2]) * a
        return s + np.sum(np.cumsum(y)) + np.sum(t) + np.max(t) + np.mean(t)

    check_all(f, Active(1.3), dup(x), dup(y))
    check_all(f, Active(0.7), Active(x), dup(y))


def test_reductions_of_traced_scalars():
    def f(a):
        t = a * 2.0
        return np.sum(t) + np.prod(t) + np.max(t) + np.min(t) + np.sum(np.cumsum(t))

    (g,) = autodiff(f, Active(1.5))
    assert g == 10.0


def test_array_methods():
    x = rng.standard_normal((3, 4))

    def f(x):
        return (x.sum() + x.mean(axis=0)[1] + x.prod(axis=1)[2] + x.max(axis=1)[0]
                + x.min() + x.cumsum(axis=1)[2, 3] + x[:, :3].trace()
                + x.sum(0, keepdims=True)[0, 0])

    check_all(f, dup(x))


def test_out_argument():
    x = rng.standard_normal((3, 4))

    def f(x, y, z):
        np.sum(x * x, axis=0, out=y)
        np.max(x, axis=1, out=z[:3])
        return np.sum(y) + np.sum(z)

    check_all(f, dup(x), dup(np.zeros(4)), dup(np.ones(5)))

    def bad(x, y):
        np.sum(x, axis=0, out=y)

    with pytest.raises(ValueError, match="out has shape"):
        autodiff(bad, dup(x), dup(np.zeros(3)))
    def plain_out(x):
        np.sum(x, axis=0, out=np.zeros(4))

    with pytest.raises(TypeError, match=r"out=<plain ndarray>"):
        autodiff(plain_out, dup(x))


def test_inactive_reduction_into_active_out():
    x = rng.standard_normal((3, 4))

    def f(x, c, y):
        np.sum(c, axis=0, out=y)            # inactive input into active memory
        return np.sum(x * y)

    check_all(f, dup(x), Const(np.ones((2, 4))), dup(np.zeros(4)))


# --------------------------------------------------------------------------
# ufunc methods

def test_ufunc_reduce_and_accumulate():
    x = 0.5 + rng.random((3, 4))
    y = rng.standard_normal(4)

    def f(x, y):
        y += np.add.reduce(x * x)                      # numpy's default: axis 0
        y *= np.multiply.reduce(x, axis=0)
        s = np.add.reduce(x, axis=None) + np.maximum.reduce(x, axis=1, keepdims=True)[1, 0]
        s = s + np.minimum.reduce(x, axis=(0, 1)) + np.add.accumulate(x, axis=1)[2, 3]
        return s + np.sum(y * np.add.accumulate(x)[-1])

    check_all(f, dup(x), dup(y))
    _, v = autodiff(lambda x: np.add.reduce(x, axis=None), Active(x), mode=ReverseWithPrimal)
    assert same_bits(v, np.add.reduce(x, axis=None))


def test_ufunc_outer():
    a, b = rng.standard_normal(3), rng.standard_normal((2, 2))

    def f(a, b, y):
        y += np.multiply.outer(a, b)
        y -= np.add.outer(a, b) ** 2
        return np.sum(y * np.subtract.outer(a, b)) + np.sum(np.multiply.outer(a[0], b))

    check_all(f, dup(a), dup(b), dup(rng.standard_normal((3, 2, 2))))
    check_all(f, Const(a), Active(b), dup(rng.standard_normal((3, 2, 2))))


def test_unsupported_ufunc_methods_name_themselves():
    x = np.ones(4)
    with pytest.raises(NotImplementedError, match=r"np\.maximum\.at"):
        autodiff(lambda x: np.maximum.at(x, [0, 1], 1.0), dup(x))
    with pytest.raises(NotImplementedError, match=r"np\.add\.reduceat"):
        autodiff(lambda x: np.sum(np.add.reduceat(x, [0, 2])), dup(x))
    with pytest.raises(NotImplementedError, match=r"np\.subtract\.reduce"):
        autodiff(lambda x: np.subtract.reduce(x), dup(x))
    with pytest.raises(NotImplementedError, match=r"np\.multiply\.accumulate"):
        autodiff(lambda x: np.sum(np.multiply.accumulate(x)), dup(x))


# --------------------------------------------------------------------------
# unsupported arguments are errors, never a silently wrong gradient

@pytest.mark.parametrize("call,exc,match", [
    (lambda x: np.sum(x, dtype=int), TypeError, r"np\.sum.*dtype"),
    (lambda x: np.mean(x, dtype=np.float16), TypeError, r"np\.mean.*dtype"),
    (lambda x: np.cumsum(x, dtype=int), TypeError, r"np\.cumsum.*dtype"),
    (lambda x: np.sum(x, initial=1.0), NotImplementedError, r"np\.sum.*initial"),
    (lambda x: np.max(x, initial=0.0), NotImplementedError, r"np\.max.*initial"),
    (lambda x: np.prod(x, where=np.array([True, False, True])), NotImplementedError,
     r"np\.prod.*where"),
    (lambda x: np.add.reduce(x, initial=2.0), NotImplementedError, r"np\.add\.reduce.*initial"),
    (lambda x: np.maximum.reduce(x, dtype=int), TypeError, r"np\.maximum\.reduce.*dtype"),
])
@pytest.mark.parametrize("forward", [False, True], ids=["reverse", "forward"])
def test_unsupported_arguments(call, exc, match, forward):
    with pytest.raises(exc, match=match):
        if forward:
            autodiff(call, Duplicated(np.ones(3), np.ones(3)), mode=Forward)
        else:
            autodiff(call, dup(np.ones(3)))


def test_bad_axis_raises_numpys_error_and_leaves_no_record():
    x = np.ones((2, 3))

    def f(x):
        x *= 2.0
        return np.sum(x, axis=2)

    before = x.copy()
    with pytest.raises(ValueError, match="axis 2 is out of bounds"):
        autodiff(f, Duplicated(x, np.zeros_like(x)))
    assert same_bits(x, before)


# --------------------------------------------------------------------------
# forward mode: tangents against finite differences and against reverse mode
# (the dot-product test), and lanes against single-lane calls

@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape,axis", SHAPE_AXES)
@pytest.mark.parametrize("fn", AXIS_REDUCTIONS, ids=lambda f: f.__name__)
def test_forward_axis_reduction(fn, shape, axis, keepdims):
    check_forward(lambda x: fn(x, axis=axis, keepdims=keepdims), _data(shape, fn))


@pytest.mark.parametrize("fn", AXIS_REDUCTIONS, ids=lambda f: f.__name__)
def test_forward_primal_equals_numpy_bit_for_bit(fn):
    x = _data((7, 5), fn)
    for axis in (None, 0, 1):
        _, value = autodiff(lambda x: fn(x, axis=axis), Duplicated(x.copy(), np.ones_like(x)),
                            mode=ForwardWithPrimal)
        assert same_bits(value, fn(x, axis=axis))


def test_forward_results_of_reductions():
    seen = []

    def f(c, x):
        seen.extend([type(np.sum(x)), type(np.max(x, axis=0)), type(np.trace(x)),
                     type(np.sum(c)), type(np.max(c, axis=0)), sad.engines.reverse.buffers.shadow_of(np.sum(c, 0))])
        return np.sum(x)

    autodiff(f, Const(np.ones((2, 3))), Duplicated(np.ones((3, 3)), np.ones((3, 3))), mode=Forward)
    assert seen == [sad.engines.forward.dual.FScalar, sad.engines.forward.dual.FArray, sad.engines.forward.dual.FScalar, np.float64, sad.engines.forward.dual.FArray,
                    None]


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_forward_prod_with_zeros(axis):
    x = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 5.0], [1.5, -2.0, 0.5]])
    check_forward(lambda x: np.prod(x, axis=axis), x)
    t = autodiff(lambda x: np.prod(x, axis=1), Duplicated(x, np.ones_like(x)), mode=Forward)
    assert t.tolist() == [6.0, 0.0, -1.0 + 0.75 - 3.0]


def test_forward_max_min_ties_and_nan():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    dx = np.array([[1.0, 2.0, 4.0], [3.0, 6.0, 9.0]])
    assert autodiff(lambda x: np.max(x), Duplicated(x, dx.copy()), mode=Forward) == 3.0
    t = autodiff(lambda x: np.max(x, axis=1), Duplicated(x, dx.copy()), mode=Forward)
    assert t.tolist() == [3.0, 6.0]
    t = autodiff(lambda x: np.min(x, axis=0, keepdims=True), Duplicated(x, dx.copy()),
                 mode=Forward)
    assert t.tolist() == [[1.0, 6.0, 9.0]]
    t = autodiff(lambda x: np.max(x), Duplicated(np.array([1.0, np.nan, 3.0]),
                                                 np.array([1.0, 2.0, 4.0])), mode=Forward)
    assert t == 2.0
    # ties: forward and reverse split alike, so the dot-product test holds exactly
    ybar = np.array([0.5, -2.0])
    (g,) = autodiff(lambda x: np.sum(np.max(x, axis=1) * ybar), Active(x))
    t = autodiff(lambda x: np.max(x, axis=1), Duplicated(x, dx.copy()), mode=Forward)
    assert np.sum(t * ybar) == pytest.approx(np.sum(dx * g), rel=1e-15)


@pytest.mark.parametrize("shape,axis", [((5,), None), ((5,), 0), ((3, 4), None),
                                        ((3, 4), 0), ((3, 4), -1), ((2, 3, 2), 1), ((), None)])
def test_forward_cumsum(shape, axis):
    check_forward(lambda x: np.cumsum(x, axis=axis), rng.standard_normal(shape))
    check_forward(lambda x: np.cumsum(x * x, axis=axis) + x.cumsum(axis),
                  rng.standard_normal(shape))


@pytest.mark.parametrize("shape,offset,axis1,axis2", [
    ((3, 3), 0, 0, 1), ((3, 4), 1, 0, 1), ((4, 3), -1, 0, 1), ((3, 3), 5, 0, 1),
    ((2, 3, 3), 0, 1, 2), ((3, 2, 3), 1, 2, 0), ((3, 2, 3), 0, -1, 0), ((2, 3, 3), 0, -2, -1)])
def test_forward_trace(shape, offset, axis1, axis2):
    check_forward(lambda x: np.trace(x * x, offset, axis1, axis2), rng.standard_normal(shape))


def test_forward_dual_scalars_and_methods():
    x = rng.standard_normal((3, 4))

    def f(x):
        t = x[0, 1] * x[2, 2]                   # a dual scalar
        s = np.sum(t) + np.prod(t) + np.max(t) + np.min(t) + np.mean(t) + np.cumsum(t)[0]
        return (s * np.sum(x, axis=0) + x.mean(axis=1)[1] + x.prod(axis=1)[2] + x.max()
                + x.min(axis=0) + x[:, :3].trace() + x.sum(0, keepdims=True)[0])

    check_forward(f, x)


def test_forward_out_argument():
    x = rng.standard_normal((3, 4))

    def f(x, y, z):
        np.sum(x * x, axis=0, out=y)
        np.max(x, axis=1, out=z[:3])
        np.cumsum(x[0], out=z[1:])
        np.trace(x, out=z[0, ...])
        return y * np.mean(z)

    check_forward(f, x, np.zeros(4), np.ones(5))
    check_forward(f, x, Const(np.zeros(4)), Const(np.ones(5)))

    def inactive_into_active(x, c, y):
        np.sum(c, axis=0, out=y)        # an inactive result zeroes y's tangent
        return x * y

    check_forward(inactive_into_active, x, Const(np.ones((2, 4))), np.zeros(4))
    t = autodiff(inactive_into_active, Const(x), Const(np.ones((2, 4))),
                 Duplicated(np.zeros(4), np.ones(4)), mode=Forward)
    assert t.tolist() == [[0.0] * 4] * 3

    def plain_out(x):
        np.sum(x, axis=0, out=np.zeros(4))

    with pytest.raises(TypeError, match=r"out=<plain ndarray>"):
        autodiff(plain_out, Duplicated(x, np.ones_like(x)), mode=Forward)
    with pytest.raises(ValueError, match="out has shape"):
        autodiff(lambda x, y: np.sum(x, axis=0, out=y), Duplicated(x, np.ones_like(x)),
                 Duplicated(np.zeros(3), np.zeros(3)), mode=Forward)


def test_forward_ufunc_methods():
    x = 0.5 + rng.random((3, 4))

    def f(x):
        y = np.add.reduce(x * x) * np.multiply.reduce(x, axis=0)
        s = np.add.reduce(x, axis=None) + np.maximum.reduce(x, axis=1, keepdims=True)[1, 0]
        s = s + np.minimum.reduce(x, axis=(0, 1)) + np.add.accumulate(x, axis=1)[2, 3]
        return s + y * np.add.accumulate(x)[-1]

    check_forward(f, x)
    a, b = rng.standard_normal(3), rng.standard_normal((2, 2))

    def g(a, b):
        return (np.multiply.outer(a, b) - np.add.outer(a, b) ** 2 + np.subtract.outer(a, b)
                + np.multiply.outer(a[0], b))

    check_forward(g, a, b)
    check_forward(g, Const(a), b)
    check_forward(g, a, Const(b))


def test_forward_unsupported_ufunc_methods_name_themselves():
    x = Duplicated(np.ones(4), np.ones(4))
    with pytest.raises(NotImplementedError, match=r"np\.subtract\.reduce"):
        autodiff(lambda x: np.subtract.reduce(x), x, mode=Forward)
    with pytest.raises(NotImplementedError, match=r"np\.multiply\.accumulate"):
        autodiff(lambda x: np.multiply.accumulate(x), x, mode=Forward)


# --------------------------------------------------------------------------
# an axis sum's adjoint passed straight through the elementwise record that
# made its operand (csrc sad_ew_reverse_through): no broadcast in memory

def _through_programs():
    def squares(x, y):          # the GMM's sum over an axis of Qxc * Qxc
        t = x * y
        return np.sum(np.sum(t * t, axis=1) * y[:, 0, :])

    def exp_last(x, y):         # broadcast along the last axis; keepdims
        e = np.exp(x * 0.1 - y)
        return np.sum(np.log(np.sum(e, axis=-1, keepdims=True)) * x[..., :1])

    def reshaped(x, y):         # a reshape of the temporary; two axes
        s = np.sin(x + y).reshape(x.shape[0], -1)
        return np.sum(np.sum(s.reshape(x.shape), axis=(0, 2)) ** 2)

    def used_again(x, y):       # another consumer after the sum: the slot is written
        t = np.tanh(x * y)
        s = np.sum(t, axis=0)
        return np.sum(s * s) + np.sum(t * x)

    def not_last(x, y):         # a record after the temporary's: no shortcut
        t = np.cos(x)
        u = t * 3.0
        return np.sum(np.sum(t, axis=1) ** 2) + np.sum(u)

    def scalar_operand(x, y):   # a traced scalar and a constant in the record
        k = x[0, 0, 0] * 2.0
        return np.sum(np.sum((x - k) * 1.5, axis=2) ** 2)
    return {f.__name__: f for f in (squares, exp_last, reshaped, used_again, not_last,
                                    scalar_operand)}


THROUGH = _through_programs()
TAKES = {"squares": True, "exp_last": True, "reshaped": True, "used_again": False,
         "not_last": False, "scalar_operand": True}


def _count_through(monkeypatch):
    """Record which pullbacks took the shortcut (C returned SAD_OK)."""
    from shadowad.engines.rules import reductions
    real, taken = reductions.fast, []

    class Fast:
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def reverse_through(*a):
            rc = real.reverse_through(*a)
            taken.append(rc == 0)
            return rc
    monkeypatch.setattr(reductions, "fast", Fast())
    return taken


@pytest.mark.parametrize("name", sorted(THROUGH))
def test_sum_through_its_operands_record_equals_the_slot_path(name, monkeypatch):
    from shadowad.engines.reverse import traced
    from shadowad.engines.rules import reductions
    monkeypatch.setattr(traced, "LAZY_MIN", 0)  # every temporary lazy, at any size
    f = THROUGH[name]
    rng = np.random.default_rng(21)
    x0, y0 = rng.uniform(0.5, 1.5, (4, 5, 6)), rng.uniform(0.5, 1.5, (4, 1, 6))

    def grads():
        x, y = Duplicated(x0.copy(), np.zeros_like(x0)), Duplicated(y0.copy(), np.zeros_like(y0))
        sad.autodiff(f, x, y)
        return x.dval, y.dval
    taken = _count_through(monkeypatch)
    through = grads()
    assert any(taken) == TAKES[name]
    monkeypatch.setattr(reductions, "_through", lambda tape, a: None)
    plain = grads()
    for a, b in zip(through, plain):
        assert same_bits(a, b)
    monkeypatch.undo()
    monkeypatch.setattr(traced, "LAZY_MIN", 0)
    check_rule(f, Duplicated(x0.copy(), np.zeros_like(x0)), Duplicated(y0.copy(), np.zeros_like(y0)))


def test_sum_through_over_several_sweeps(monkeypatch):
    """A reverse Jacobian sweeps one tape once per output: the shortcut runs
    in every sweep, and the slot it bypasses stays unwritten each time."""
    from shadowad.engines.reverse import traced
    monkeypatch.setattr(traced, "LAZY_MIN", 0)
    f = THROUGH["squares"]
    rng = np.random.default_rng(22)
    x0, y0 = rng.uniform(0.5, 1.5, (4, 5, 6)), rng.uniform(0.5, 1.5, (4, 1, 6))
    taken = _count_through(monkeypatch)
    seeds = np.array([1.0, -2.5])
    J = sad.jacobian(lambda x: f(x, y0) * seeds, x0, mode=sad.Reverse)
    assert sum(taken) >= 2  # once per sweep
    J1 = sad.jacobian(lambda x: f(x, y0) * seeds, x0, mode=sad.Forward)
    np.testing.assert_allclose(J, J1, rtol=1e-12, atol=1e-12)


def test_dtype_float32_casts_in_reverse_and_forward_mode():
    """np.mean(x, dtype=np.float32) is numpy's mean of x cast to float32: the
    cast primitive (its adjoint cast back to float64, its tangent cast)."""
    x = np.array([1.0, 2.0, 4.0])
    dx = np.zeros(3)
    _, v = autodiff(lambda x: np.mean(x, dtype=np.float32), Duplicated(x, dx),
                    mode=sad.ReverseWithPrimal)
    assert type(v) is np.float32 and v == np.mean(x, dtype=np.float32)
    assert dx.dtype == np.float64 and np.allclose(dx, 1.0 / 3.0, rtol=1e-7)
    t = autodiff(lambda x: np.mean(x, dtype=np.float32), Duplicated(x, np.ones(3)), mode=Forward)
    assert t == pytest.approx(1.0, rel=1e-7)
