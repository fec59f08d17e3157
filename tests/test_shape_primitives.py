"""The shape primitives (shadowad/primitives/shape.py): one definition each,
from which the reverse, forward and nested engines derive.

* the nested engine runs every shape function: second derivatives in the
  four pairs of modes and third derivatives in all eight, against finite
  differences of the C engine's derivatives; its first derivatives are the C
  engine's generic ones;
* each fast path (the C copy record, a copy viewed, np.stack of scalars, the
  forward lanes of concatenate and stack) is the generic derivation bit for
  bit (``generic_only``);
* views stay views under ``generic_only``: they are the memory model of the
  reverse and forward engines, not a specialisation;
* the transposes keep the zero-adjoint convention at edge values.
"""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, BatchDuplicated, Const, Duplicated, Forward, Reverse
from shadowad.primitives import core, shape as defs
from shadowad.testing import same_bits
from test_nested import (IDS, PAIRS, U, V, X0, c_gradient, derivative, hessian_fd,
                         nested_gradient, uHv)
from test_primitives import _both, _reverse

F, R = Forward, Reverse

rng = np.random.default_rng(14)
W22 = rng.standard_normal((2, 2))
W23 = rng.standard_normal((2, 3))
W33 = rng.standard_normal((3, 3))


def _m(x):
    return np.reshape(x, (2, 2))


# every program is a scalar function of a 4-vector x (test_nested's X0, U, V),
# nonlinear around the shape function so that second derivatives flow through it
PROGRAMS = {
    "reshape": lambda x: np.sum(np.reshape(x * x, (1, 4)) ** 3 * x),
    "reshape-F": lambda x: np.sum(np.reshape(x ** 3, (2, 2), order="F") * np.sin(x[:2])),
    "ravel": lambda x: np.sum(np.ravel(_m(x * x).T) * x),
    "ravel-F": lambda x: np.sum(np.ravel(_m(x) ** 2, order="F") * x),
    "ravel-K": lambda x: np.sum(np.ravel(_m(x).T[::-1] ** 2, order="K") * x ** 2),
    "flatten": lambda x: np.sum(_m(x ** 2).flatten() ** 2),
    "squeeze": lambda x: np.sum(np.squeeze(np.reshape(x, (1, 4, 1)) ** 3, axis=(0, 2)) * x),
    "expand_dims": lambda x: np.sum(np.expand_dims(x * x, (0, 2)) * x[:, None] ** 2),
    "atleast": lambda x: np.sum(np.atleast_2d(x ** 2) @ np.atleast_1d(x)[:, None] ** 2)
    + np.sum(np.atleast_1d(x[0] * x[1]) ** 2),
    "transpose": lambda x: np.sum(np.transpose(_m(x)) @ _m(x * x)),
    "transpose-axes": lambda x: np.sum(np.transpose(np.reshape(x, (1, 2, 2)), (2, 0, 1))
                                       ** 3 * W22[:, None, :]),
    "T": lambda x: np.sum((_m(x).T * x[:2, None]) ** 2),
    "swapaxes": lambda x: np.sum(np.swapaxes(_m(x) ** 2, 0, 1) @ _m(x)),
    "moveaxis": lambda x: np.sum(np.moveaxis(np.reshape(x ** 2, (1, 2, 2)), 0, -1)
                                 * np.reshape(x, (2, 2, 1))),
    "flip": lambda x: np.sum(np.flip(_m(x) ** 2, 1) * _m(x)) + np.sum(np.flip(x) * x ** 2),
    "diagonal": lambda x: np.sum(np.diagonal(np.outer(x[:3], x[1:]) ** 2) * x[:3])
    + np.sum(np.diagonal(np.outer(x, x[:3]), -1) ** 3)
    + np.sum(np.diagonal(np.reshape(x, (1, 2, 2)) ** 2, 1, 1, 2)),
    "broadcast_to": lambda x: np.sum(np.broadcast_to(x ** 2, (3, 4)) * x[:3, None])
    + np.sum(np.broadcast_to(x[0] * x[1], (2, 2)) ** 2),
    "copy": lambda x: np.sum(np.copy(x * x) * x) + np.sum(np.copy(x[2] * x[3]) ** 2),
    "concatenate": lambda x: np.sum(np.concatenate([x[:2] ** 2, x, x[2:] * x[:2]]) ** 2),
    "concatenate-axis": lambda x: np.sum(np.concatenate([_m(x), _m(x) ** 2], axis=1) ** 2),
    "concatenate-None": lambda x: np.sum(np.concatenate([_m(x) ** 2, W23, x], axis=None)
                                         ** 2),
    "hstack-vstack": lambda x: np.sum(np.hstack([x ** 2, x[:2]]) ** 2)
    + np.sum(np.vstack([x[:2] * x[2:], x[2:]]) ** 3),
    "stack": lambda x: np.sum(np.stack([x ** 2, x, np.ones(4)], axis=1) ** 2 * x[:, None]),
    "stack-scalars": lambda x: np.sum(np.stack([x[0] * x[1], x[2], 2.0, x[3] ** 2]) ** 3),
}


@pytest.mark.parametrize("outer,inner", PAIRS, ids=IDS)
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_nested_second_derivatives(name, outer, inner):
    f = PROGRAMS[name]
    expect = float(np.dot(U, hessian_fd(f, X0, V)))
    got = uHv(f, outer, inner, X0)
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_nested_first_derivatives_are_the_c_engines_generic_ones(name):
    f = PROGRAMS[name]
    with core.generic_only():
        c = c_gradient(f, X0)
    np.testing.assert_allclose(nested_gradient(f, X0), c, rtol=1e-14, atol=1e-15)


A0 = rng.standard_normal(6)
A1 = rng.standard_normal(6)


def _line(t):
    return A0 + t * A1


# scalar functions of t through each family of shape functions
SCALAR_PROGRAMS = {
    "reshape-transpose-flip": lambda t: np.sum(np.flip(np.reshape(_line(t), (2, 3)).T, 0)
                                               ** 3 * W23.T),
    "swapaxes-moveaxis-squeeze": lambda t: np.sum(np.squeeze(np.moveaxis(
        np.swapaxes(np.reshape(_line(t) ** 2, (1, 2, 3)), 1, 2), 0, -1)) * W23.T * t),
    "diagonal-broadcast": lambda t: np.sum(np.diagonal(np.outer(_line(t)[:3], _line(t)[3:])
                                                       * W33) ** 2)
    + np.sum(np.broadcast_to(_line(t)[:3] * t, (2, 3)) ** 3 * W23),
    "copy-concatenate-stack": lambda t: np.sum(np.stack([np.concatenate(
        [np.copy(_line(t)[:2]) * t, _line(t)[2:] ** 2]), _line(t)], axis=1) ** 3),
    "ravel-hstack-vstack": lambda t: np.sum(np.vstack([np.hstack([_line(t)[:3] ** 2, t]),
                                                       np.ravel(np.reshape(_line(t), (2, 3)).T)[:4]]) ** 3),
}


@pytest.mark.parametrize("m1", [F, R])
@pytest.mark.parametrize("m2", [F, R])
@pytest.mark.parametrize("m3", [F, R])
@pytest.mark.parametrize("name", sorted(SCALAR_PROGRAMS))
def test_nested_third_derivatives(name, m1, m2, m3):
    g, t, h = SCALAR_PROGRAMS[name], 0.3, 1e-5
    second = derivative(derivative(g, R), R)  # the C engine under one nested level
    fd = (second(t + h) - second(t - h)) / (2 * h)
    got = derivative(derivative(derivative(g, m1), m2), m3)(t)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------
# specialisations against the generic derivation

EDGE = np.array([[0.0, -0.0, 1.5], [-2.25, 5e-324, 1e300]])
WEDGE = np.array([[np.inf, 0.0, -0.0], [np.nan, 3.0, -1e-310]])

# each runs a C record (a copy, or a copy viewed) where no view exists
COPIES = {
    "copy": lambda x, s: np.sum(np.copy(x) * WEDGE) + np.sum(np.copy(s) * 3.0),
    "copy-F": lambda x, s: np.sum(np.copy(x.T, order="F") * WEDGE.T),
    "reshape-copies": lambda x, s: np.sum(np.reshape(x.T, (6,)) * WEDGE.T.ravel()),
    "reshape-F-copies": lambda x, s: np.sum(np.reshape(x, (3, 2), order="F")
                                            * WEDGE.reshape(3, 2)),
    "ravel-copies": lambda x, s: np.sum(np.ravel(x[:, ::2]) * 2.0),
    "reshape-scalar": lambda x, s: np.sum(np.reshape(s * 1.0, (1, 1)) * 2.0),
    "transpose-scalar": lambda x, s: np.transpose(s * 3.0) * 2.0,
    "flip-scalar": lambda x, s: np.sum(np.flip(s * 3.0)) * 2.0,
    "broadcast-scalar": lambda x, s: np.sum(np.broadcast_to(s * 2.0, (2, 3)) * WEDGE),
    "atleast-scalar": lambda x, s: np.sum(np.atleast_2d(s) * 4.0),
}


@pytest.mark.parametrize("name", sorted(COPIES))
def test_copy_records_are_the_generic_rule_bit_for_bit(name):
    f = COPIES[name]
    with np.errstate(invalid="ignore"):  # the primal's 0 * inf
        fast, generic = _both(lambda: _reverse(f, EDGE, 1.75))
    for x, y in zip(fast, generic):
        assert same_bits(x, y), name


def test_copy_record_keeps_the_copy_independent_of_later_writes():
    def f(x):
        c = np.copy(x)
        x[0] = 5.0 * x[1]
        return np.sum(c * c) + x[0]
    fast, generic = _both(lambda: _reverse(f, np.array([1.5, -2.0, 0.25])))
    assert same_bits(fast[0], generic[0])
    np.testing.assert_array_equal(fast[0], [3.0, 1.0, 0.5])


def test_stack_of_scalars_is_the_generic_rule_bit_for_bit():
    def f(x, s):
        v = np.stack([x[0] * s, 2.0, x[1], s * s, x[0]])
        return np.sum(v * np.array([np.inf, 1.0, -0.0, 3.0, 1e-310]))

    def g(x, s):
        return np.sum(np.stack([x[0], x[1] * s, x[0]], axis=-1) ** 2)
    for fn in (f, g):
        fast, generic = _both(lambda: _reverse(fn, np.array([1.5, 0.0]), -0.75))
        for x, y in zip(fast, generic):
            assert same_bits(x, y)


JOINS = {
    "concatenate": lambda a, b: np.concatenate([a, b * 2.0, a], axis=1),
    "concatenate-const": lambda a, b: np.concatenate([W23, a, W23 * 0.5]),
    "stack": lambda a, b: np.stack([a, b, a * b], axis=1),
    "stack-last": lambda a, b: np.stack([W23, b], axis=-1),
    "hstack": lambda a, b: np.hstack([a, b]),
}


@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("name", sorted(JOINS))
def test_forward_joins_are_the_per_lane_jvp_bit_for_bit(name, lanes):
    f = JOINS[name]
    a, b = EDGE.copy(), rng.standard_normal((2, 3))
    da = tuple(rng.standard_normal((2, 3)) for _ in range(lanes))
    db = tuple(WEDGE.copy() for _ in range(lanes))

    def run():
        if lanes == 1:
            return [sad.autodiff(f, Duplicated(a.copy(), da[0]), Duplicated(b.copy(), db[0]),
                                 mode=F)]
        return sad.autodiff(f, BatchDuplicated(a.copy(), da), BatchDuplicated(b.copy(), db),
                            mode=F)
    fast, generic = _both(run)
    for x, y in zip(fast, generic):
        assert same_bits(x, y), name


def test_specialisations_are_registered_and_generic_only_turns_them_off():
    for prim, engine in ((defs.copy, "reverse"), (defs.reshape, "reverse"),
                         (defs.stack, "reverse"), (defs.stack, "forward"),
                         (defs.concatenate, "forward")):
        assert core.specialised(prim, engine) is prim.specialisations[engine]
        with core.generic_only():
            assert core.specialised(prim, engine) is None


# --------------------------------------------------------------------------
# views are the memory model: generic_only keeps them

VIEWS = {
    "reshape": lambda x: np.reshape(x, (3, 2)),
    "ravel": lambda x: np.ravel(x),
    "transpose": lambda x: x.T,
    "swapaxes": lambda x: np.swapaxes(x, 0, 1),
    "moveaxis": lambda x: np.moveaxis(x, 0, 1),
    "flip": lambda x: np.flip(x, 1),
    "squeeze": lambda x: np.squeeze(x[None]),
    "expand_dims": lambda x: np.expand_dims(x, 0),
}


@pytest.mark.parametrize("generic", [False, True])
@pytest.mark.parametrize("name", sorted(VIEWS))
@pytest.mark.parametrize("mode", [R, F])
def test_writes_through_views_reach_the_base_also_under_generic_only(name, mode, generic):
    view = VIEWS[name]

    def f(x):
        v = view(x)
        v[...] = v * v
        return np.sum(x * W23)
    x0 = rng.standard_normal((2, 3))
    with core.generic_only() if generic else _nothing():
        if mode is R:
            dx = np.zeros((2, 3))
            sad.autodiff(f, Duplicated(x0.copy(), dx))
            np.testing.assert_allclose(dx, 2 * x0 * W23, rtol=1e-15)
        else:
            d = rng.standard_normal((2, 3))
            t = sad.autodiff(f, Duplicated(x0.copy(), d.copy()), mode=F)
            np.testing.assert_allclose(t, np.sum(2 * x0 * d * W23), rtol=1e-13)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# --------------------------------------------------------------------------
# the transposes at edge values: a zero adjoint contributes nothing

def test_diagonal_transpose_puts_nothing_off_the_diagonal():
    a = np.zeros((3, 4))
    g = np.array([np.inf, np.nan, -0.0])
    for offset in (0, 1, -1):
        k = np.diagonal(a, offset).size
        got = defs.diagonal.vjp(0, g[:k], [a], None, {"offset": offset, "axis1": 0,
                                                       "axis2": 1})
        want = np.zeros((3, 4))
        i = np.arange(k)
        want[i + max(-offset, 0), i + max(offset, 0)] = g[:k]
        assert same_bits(got, want), offset


def test_diagonal_transpose_of_stacks_and_other_axes():
    a = rng.standard_normal((2, 3, 4))
    for offset, a1, a2 in ((0, 0, 2), (1, 2, 1), (-1, 1, 2)):
        d = np.diagonal(a, offset, a1, a2)
        g = rng.standard_normal(d.shape)
        got = defs.diagonal.vjp(0, g, [a], None, {"offset": offset, "axis1": a1, "axis2": a2})
        # <diagonal(a), g> = <a, diagonal^T(g)> for every a
        b = rng.standard_normal(a.shape)
        np.testing.assert_allclose(np.sum(np.diagonal(b, offset, a1, a2) * g),
                                   np.sum(b * got), rtol=1e-13)


def test_ravel_k_is_numpys_for_every_layout():
    x = np.arange(24.0).reshape(2, 3, 4)
    layouts = [x, x.T, x[:, ::-1], np.swapaxes(x, 0, 2)[::-1], x[::-1, :, ::2].transpose(1, 2, 0),
               np.asfortranarray(x)[:, ::-1]]
    for p in layouts:
        seen = []

        def f(a):
            r = np.ravel(a, order="K")
            seen.append(np.array(sad.primal(r)))
            return np.sum(r * np.arange(r.size))
        a = np.array(p)
        sad.autodiff(f, Duplicated(a, np.zeros_like(a)))
        np.testing.assert_array_equal(seen[0], np.ravel(np.array(p), order="K"))


def test_shape_functions_refuse_what_they_do_not_derive():
    def bad(x):
        return np.sum(np.concatenate([x, x], dtype=np.int64))
    with pytest.raises(TypeError, match="dtype=int64.*derivative"):
        sad.autodiff(bad, Active(np.ones(2)))
    with pytest.raises(ValueError, match="size not equal to one"):
        sad.autodiff(lambda x: np.sum(np.squeeze(x, axis=0)), Active(np.ones(2)))
    with pytest.raises(ValueError, match="axes don't match"):
        sad.autodiff(lambda x: np.sum(np.transpose(x, (0,))), Active(np.ones((2, 2))))
    with pytest.raises(ValueError, match="axis1 and axis2"):
        sad.autodiff(lambda x: np.sum(np.diagonal(x, 0, 1, 1)), Active(np.ones((2, 2))))


@pytest.mark.parametrize("outer", [F, R])
def test_nested_stack_of_an_enclosing_constant(outer):
    """An operand of the enclosing differentiation is a constant of the inner
    one; the stack passes it down to its own engine."""
    def inner(x, c):
        return np.sum(np.stack([x * c, c]) ** 2)

    def f(c):
        g, _ = sad.autodiff(inner, Active(np.array([1.0, 2.0])), Const(c))
        return np.sum(g)
    c0 = np.array([0.5, -1.5])
    if outer is R:
        got, = sad.autodiff(f, Active(c0.copy()))
    else:
        got = np.array([sad.autodiff(f, Duplicated(c0.copy(), e), mode=F) for e in np.eye(2)])
    # d/dc sum(2 x c^2) = 4 x c
    np.testing.assert_allclose(got, 4 * np.array([1.0, 2.0]) * c0, rtol=1e-13)


def test_ravel_k_of_a_temporary_laid_out_unlike_its_shadow():
    """A strided operand's elementwise result is laid out in its memory order,
    its shadow in C order: the ravel is then a copy (the gradient right, which
    the views of both gave wrong), and read-only, so that a write meant for
    the temporary is refused rather than lost."""
    w = np.arange(6.0)

    def f(x):
        t = np.reshape(x, (2, 3)).T[::-1] ** 2
        return np.sum(np.ravel(t, order="K") * w)
    x0 = np.array([0.9, 0.45, 1.3, 0.7, -0.6, 1.1])
    g, = sad.autodiff(f, Active(x0.copy()))
    h = 1e-6
    fd = np.array([(f(x0 + h * e) - f(x0 - h * e)) / (2 * h) for e in np.eye(6)])
    np.testing.assert_allclose(g, fd, rtol=1e-6)

    def write(x):
        t = np.reshape(x, (2, 3)).T[::-1] ** 2
        np.ravel(t, order="K")[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        sad.autodiff(write, Active(x0.copy()))
