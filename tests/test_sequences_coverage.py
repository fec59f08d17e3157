"""np.polyval, np.interp, np.trapezoid, np.correlate and np.convolve (#16):
check_rule on every mode and keyword form, values numpy's bit for bit
(non-finite inputs included), the derivative of interp at its knots and
outside, third derivatives through nested, and the errors."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Duplicated, Forward, Reverse
from shadowad.testing import check_rule, same_bits
from coverage_helpers import check_third_derivative, dup, weights, wsum, value  # noqa: F401

rng = np.random.default_rng(161)


# --------------------------------------------------------------------------
# correlate and convolve

@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("fn", [np.correlate, np.convolve], ids=["correlate", "convolve"])
@pytest.mark.parametrize("na,nv", [(1, 1), (5, 1), (1, 4), (5, 3), (3, 5), (4, 4), (2, 6), (6, 2)])
def test_correlate_convolve(fn, mode, na, nv):
    a, v = rng.standard_normal(na), rng.standard_normal(nv)
    r = fn(a, v, mode)
    check_rule(lambda a, v: wsum(fn(a, v, mode)), dup(a), dup(v))
    assert same_bits(value(lambda a, v: fn(a, v, mode), a, v), r)


def test_correlate_zero_adjoint_against_inf_gives_zero():
    # only the first output entry is used; v's inf meets a's zero adjoint
    a, v = np.array([1.0, 2.0, 3.0]), np.array([np.inf, 1.0])
    g, = sad.gradient(lambda a: np.correlate(a, v, "valid")[0], a)
    assert same_bits(g, np.array([np.inf, 1.0, 0.0]))
    t = sad.autodiff(lambda a: np.correlate(a, v, "valid")[1],
                     Duplicated(a.copy(), np.array([1.0, 0.0, 0.0])),
                     mode=Forward)
    assert t == 0.0


def test_correlate_errors():
    with pytest.raises(ValueError, match="mode"):
        sad.gradient(lambda a: np.sum(np.correlate(a, a, "middle")), np.ones(3))
    with pytest.raises(ValueError, match="cannot be empty"):
        sad.gradient(lambda a: np.sum(np.convolve(a, np.zeros(0))), np.ones(3))
    with pytest.raises(ValueError, match="1-D"):
        sad.gradient(lambda a: np.sum(np.convolve(a, a)), np.ones((2, 2)))


# --------------------------------------------------------------------------
# polyval

@pytest.mark.parametrize("pshape,xshape", [((4,), (5,)), ((1,), (3,)), ((3,), ()), ((5,), (2, 3))])
def test_polyval(pshape, xshape):
    p, x = rng.standard_normal(pshape), np.asarray(rng.standard_normal(xshape))
    check_rule(lambda p, x: wsum(np.polyval(p, x)), dup(p), dup(x))
    assert same_bits(value(np.polyval, p, x), np.asarray(np.polyval(p, x)))


def test_polyval_plain_coefficients_and_plain_points():
    p, x = np.array([1.0, -2.0, 3.0]), np.array([0.5, 2.0])
    g, = sad.gradient(lambda x: np.sum(np.polyval(p, x)), x)
    np.testing.assert_allclose(g, 2.0 * x - 2.0)
    g, = sad.gradient(lambda p: np.sum(np.polyval(p, x)), p)
    np.testing.assert_allclose(g, [np.sum(x * x), np.sum(x), 2.0])


# --------------------------------------------------------------------------
# trapezoid

def test_trapezoid_every_form():
    y, x = rng.standard_normal((3, 5)), np.sort(rng.standard_normal(5))
    x2 = np.sort(rng.standard_normal((3, 5)), axis=1)
    check_rule(lambda y, x, x2: np.trapezoid(y[0], x) + wsum(np.trapezoid(y, x, axis=1))
               + wsum(np.trapezoid(y, dx=0.5, axis=0)) + wsum(np.trapezoid(y, x2)) + wsum(np.trapezoid(y)),
               dup(y), dup(x), dup(x2))
    assert same_bits(value(lambda y: np.trapezoid(y, x), y), np.trapezoid(y, x))
    assert same_bits(value(lambda y: np.trapezoid(y, dx=0.25, axis=-2), y), np.trapezoid(y, dx=0.25, axis=-2))


# --------------------------------------------------------------------------
# interp

XP = np.array([0.0, 1.0, 2.5, 4.0])


def test_interp_check_rule_and_keywords():
    fp = rng.standard_normal(4)
    xq = np.array([-1.0, 0.3, 1.2, 2.0, 3.9, 5.0])
    check_rule(lambda x, f: wsum(np.interp(x, XP, f)) + np.interp(x[2], XP, f, left=-3.0, right=2.0)
               + wsum(np.interp(x, XP, f, left=f[1], right=f[2])), dup(xq), dup(fp))


def test_interp_derivative_at_knots_and_outside():
    fp = np.array([1.0, 3.0, 0.0, 0.0])
    slopes = np.diff(fp) / np.diff(XP)
    xq = np.array([-1.0, 0.0, 1.0, 2.5, 4.0, 5.0])
    g, = sad.gradient(lambda x: np.sum(np.interp(x, XP, fp)), xq)
    # the interval to the right of a knot, the last knot's to its left, 0 outside
    assert same_bits(g, np.array([0.0, slopes[0], slopes[1], slopes[2], slopes[2], 0.0]))
    t = sad.autodiff(lambda x: np.sum(np.interp(x, XP, fp)), Duplicated(xq.copy(), np.ones(6)), mode=Forward)
    assert t == np.sum(g)


@pytest.mark.parametrize("fp", [[0.5, -1.0, 2.0, 0.25], [1.0, np.inf, np.inf, -0.0], [np.nan, 1.0, 1.0, 2.0],
                                [-0.0, 0.0, -np.inf, 1.0]])
@pytest.mark.parametrize("xq", [[-1.0, 0.5, 0.3, 1.0, 2.0, 3.9, 4.0, 5.0], [np.nan, np.inf, -np.inf, -0.5]])
def test_interp_values_are_numpys(fp, xq):
    fp, xq = np.array(fp), np.array(xq)
    assert same_bits(value(lambda x, f: np.interp(x, XP, f), xq, fp), np.interp(xq, XP, fp))
    assert same_bits(value(lambda f: np.interp(1.5, XP, f), fp), np.asarray(np.interp(1.5, XP, fp)))


def test_interp_at_a_knot_of_value_minus_zero_gives_plus_zero():
    # the one value that differs from numpy's (documented): the formula
    # -0.0 + slope * 0.0 keeps the derivative in x at the knot (the slope),
    # where numpy's branch returns fp[j] = -0.0
    fp = np.array([-0.0, 1.0, 2.0, 3.0])
    assert same_bits(value(lambda x: np.interp(x, XP, fp), np.array([0.0])), np.array([0.0]))
    g, = sad.gradient(lambda x: np.sum(np.interp(x, XP, fp)), np.array([0.0]))
    assert g[0] == 1.0


def test_interp_refusals():
    with pytest.raises(TypeError, match="xp must be constant"):
        sad.gradient(lambda x: np.interp(0.5, x, x), XP)
    with pytest.raises(NotImplementedError, match="period"):
        sad.gradient(lambda x: np.sum(np.interp(x, XP, XP, period=2.0)), XP)
    with pytest.raises(ValueError, match="same length"):
        sad.gradient(lambda x: np.sum(np.interp(x, XP, XP[:3])), XP)


# --------------------------------------------------------------------------
# third derivatives through nested

F, R = Forward, Reverse
PROGRAMS = {
    "polyval": lambda x: np.sum(np.polyval(x, x * 0.5) ** 2),
    "trapezoid": lambda x: np.trapezoid(x ** 3, np.cumsum(x)),
    "correlate": lambda x: np.sum(np.correlate(x, x ** 2, "full") ** 2)
    + np.sum(np.convolve(x, x[:2], "same") ** 3),
    "interp": lambda x: np.sum(np.interp(x[:2] + 1.3, XP, x ** 3) ** 2),
}


@pytest.mark.parametrize("modes", [(R, R, R), (F, R, F), (F, F, F)], ids=["RRR", "FRF", "FFF"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_third_derivatives_through_nested(name, modes):
    check_third_derivative(PROGRAMS[name], modes)
