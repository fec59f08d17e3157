"""Elementwise ufuncs: every entry of EW_OPS through the array path (1-D to
6-D), broadcasting, the scalar path, in-place and out= forms, strided,
reversed and overlapping views, Fortran order and shadows whose layout differs
from the primal's; plus the dot-product test between the C tangent kernel and
the reverse sweep, and the C primal kernel against numpy.

Functions return None and their outputs are seeded through Duplicated
shadows, so nothing here depends on the reduction rules.
"""
import gc
import math
import warnings
import weakref

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated
from shadowad._c import fast, lib
from shadowad.engines.rules.elementwise import EW_OPS
from shadowad.testing import (check_rule, check_accumulate_once, check_gradient, check_restore,
    finite_differences, same_bits)

PRIMAL = lib.SAD_F_PRIMAL  # the tangent kernel also writes z


# --------------------------------------------------------------------------
# inputs on which each function is smooth

def _u(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def _away(lo, hi):
    """|v| in [lo, hi] with a random sign."""
    return lambda rng, shape: rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)


ANY = _u(-2.0, 2.0)
POS = _u(0.5, 2.0)

# ufunc -> domain of each input
DOMAINS = {
    np.negative: [ANY], np.positive: [ANY], np.square: [ANY], np.sqrt: [POS],
    np.reciprocal: [_away(0.5, 2.0)], np.exp: [_u(-1.0, 1.0)], np.log: [POS],
    np.log1p: [_u(-0.5, 1.0)], np.expm1: [_u(-1.0, 1.0)], np.sin: [ANY], np.cos: [ANY],
    np.tan: [_u(-1.2, 1.2)], np.tanh: [ANY], np.sinh: [ANY], np.cosh: [ANY],
    np.arcsin: [_u(-0.9, 0.9)], np.arccos: [_u(-0.9, 0.9)], np.arctan: [ANY],
    np.absolute: [_away(0.1, 2.0)], np.fabs: [_away(0.1, 2.0)],
    np.add: [ANY, ANY], np.subtract: [ANY, ANY], np.multiply: [ANY, ANY],
    np.divide: [ANY, _away(0.5, 2.0)], np.power: [POS, ANY], np.float_power: [POS, ANY],
    np.arctan2: [_away(0.3, 2.0), _away(0.3, 2.0)], np.hypot: [_away(0.3, 2.0), _away(0.3, 2.0)],
    # max/min: inputs in disjoint-by-sign halves are never tied
    np.maximum: [_u(0.1, 2.0), _u(-2.0, -0.1)], np.minimum: [_u(0.1, 2.0), _u(-2.0, -0.1)],
    np.fmax: [_u(-2.0, -0.1), _u(0.1, 2.0)], np.fmin: [_u(-2.0, -0.1), _u(0.1, 2.0)],
    np.log10: [POS], np.log2: [POS], np.exp2: [_u(-1.0, 1.0)], np.arcsinh: [ANY],
    np.arccosh: [_u(1.2, 3.0)], np.arctanh: [_u(-0.8, 0.8)], np.deg2rad: [ANY],
    np.radians: [ANY], np.rad2deg: [ANY], np.degrees: [ANY], np.cbrt: [_away(0.3, 2.0)],
    np.copysign: [_away(0.1, 2.0), ANY], np.heaviside: [_away(0.1, 2.0), ANY],
    np.logaddexp: [ANY, ANY], np.logaddexp2: [ANY, ANY],
}
UFUNCS = list(EW_OPS)
UNARY = [u for u in UFUNCS if u.nin == 1]
BINARY = [u for u in UFUNCS if u.nin == 2]


def test_every_ew_op_has_a_domain():
    assert set(DOMAINS) == set(EW_OPS), set(EW_OPS) ^ set(DOMAINS)
    for name in ["add", "subtract", "multiply", "divide", "negative", "power", "square",
                 "sqrt", "reciprocal", "exp", "log", "log1p", "expm1", "sin", "cos", "tan",
                 "tanh", "sinh", "cosh", "arcsin", "arccos", "arctan", "arctan2", "hypot",
                 "absolute", "maximum", "minimum"]:
        assert getattr(np, name) in EW_OPS, name


def inputs(ufunc, shape, seed=0, shapes=None):
    rng = np.random.default_rng(seed)
    shapes = shapes or [shape] * ufunc.nin
    return [np.asarray(d(rng, s), dtype=float) for d, s in zip(DOMAINS[ufunc], shapes)]


def dup(a):
    return Duplicated(a, np.zeros_like(a))


check_all = check_rule


def _name(u):
    return u.__name__


# --------------------------------------------------------------------------
# the array path: 1-D to 6-D, out of place, out=, and in place

SHAPES = [(7,), (3, 4), (2, 3, 4), (2, 2, 2, 2, 2, 2)]


def _strided6(a):
    """a (2,)*6 array laid out as every other element of a (4,)*6 one."""
    big = np.full((4,) * 6, np.nan)
    v = big[::2, ::2, ::2, ::2, ::2, ::2]
    v[...] = a
    return v


def c_primal(op, flags, z, x, y=None, k=0.0):
    """z = op(x, y) by the C primal kernel: the tangent kernel's, asked to write z
    too (SAD_F_PRIMAL), with zero tangents."""
    dz, dx = np.zeros(z.shape), np.zeros(x.shape)
    dy = None if y is None else np.zeros(y.shape)
    return fast.tangent(op, flags | PRIMAL, z, dz, x, dx,
                        y, None if y is None else dy, k)


def test_six_dims_are_too_many_for_one_c_record():
    x = _strided6(np.ones((2,) * 6))
    z = np.empty((2,) * 6)
    assert c_primal(lib.SAD_EXP, lib.SAD_KX_ARR, z, x) == lib.SAD_TOO_MANY_DIMS

    def f(x, y):
        np.exp(x[::2, ::2, ::2, ::2, ::2, ::2], out=y)
    X = np.zeros((4,) * 6)
    _, tape = sad.autodiff_split(f, dup(X), dup(np.zeros((2,) * 6)))
    assert len(tape) == 4  # split twice along the leading axis: 2 x 2 records of 4-D slices
    tape.reverse()


def view6(x):
    """A (2,)*6 view whose six dimensions cannot be coalesced with a C-ordered
    array's (alternating reversed axes): more than the C core iterates over."""
    return x[::-1, :, ::-1, :, ::-1, :] if x.ndim == 6 else x


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("ufunc", UFUNCS, ids=_name)
def test_out_of_place(ufunc, shape):
    ins = inputs(ufunc, shape)

    def f(*a):
        *xs, y = a
        y[...] = ufunc(*[view6(x) for x in xs])
    check_all(f, *[dup(x) for x in ins], dup(np.zeros(shape)))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("ufunc", UFUNCS, ids=_name)
def test_out_argument(ufunc, shape):
    ins = inputs(ufunc, shape, seed=1)

    def f(*a):
        *xs, y = a
        ufunc(*[view6(x) for x in xs], out=y)
    check_all(f, *[dup(x) for x in ins], dup(np.full(shape, 0.25)))
    if len(shape) == 6:
        _, tape = sad.autodiff_split(f, *[dup(x) for x in ins], dup(np.zeros(shape)))
        assert len(tape) == 4  # split along the two leading axes
        tape.reverse()


@pytest.mark.parametrize("ufunc", UFUNCS, ids=_name)
def test_in_place_on_first_input(ufunc):
    """ufunc(y, ..., out=y): the overwritten y is saved and the pullback sees it."""
    ins = inputs(ufunc, (3, 4), seed=2)

    def f(*a):
        ufunc(*a, out=a[0])
    check_all(f, *[dup(x) for x in ins])


@pytest.mark.parametrize("ufunc", UFUNCS, ids=_name)
def test_six_dim_in_place_fortran(ufunc):
    """out= into a 6-D Fortran array from C-ordered inputs: nothing coalesces."""
    ins = inputs(ufunc, (2,) * 6, seed=3)
    ins[0] = np.asfortranarray(ins[0])
    x0 = [a.copy(order="K") for a in ins]

    def f(*a):
        ufunc(*a, out=a[0])
    shadows = [np.ones_like(a) for a in ins]
    args = [Duplicated(a, s) for a, s in zip(ins, shadows)]
    _, tape = sad.autodiff_split(f, *args)
    assert len(tape) == (0 if ufunc is np.positive else 4)  # y = +y is no operation
    assert same_bits(ins[0], ufunc(*x0))
    tape.reverse(restore=True)
    assert all(same_bits(a, b) for a, b in zip(ins, x0))
    want = finite_differences(f, *[Duplicated(a, np.ones_like(a)) for a in x0],
                              seeds=[np.ones_like(a) for a in x0])
    for s, w in zip(shadows, want):
        assert np.allclose(s, w, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------
# broadcasting

BCAST = {"row": (4,), "column": (3, 1), "scalar-shaped": (1, 1), "0-d": ()}


@pytest.mark.parametrize("where", list(BCAST))
@pytest.mark.parametrize("ufunc", BINARY, ids=_name)
def test_broadcast_second_input(ufunc, where):
    x, w = inputs(ufunc, None, seed=4, shapes=[(3, 4), BCAST[where]])

    def f(x, w, y):
        y[...] = ufunc(x, w)
    check_all(f, dup(x), dup(w), dup(np.zeros((3, 4))))

    def g(x, w, y):  # in place, the broadcast operand accumulates over the repeats
        ufunc(y, w, out=y)
        y += x
    y0 = inputs(ufunc, (3, 4), seed=5)[0]
    check_all(g, dup(x), dup(w), dup(y0))


@pytest.mark.parametrize("wshape", [(1, 2, 2, 2, 2, 2), (2, 1, 2, 1, 2, 2), (2, 2, 2, 2, 2),
                                    (1, 1, 1, 1, 1, 2)], ids=str)
@pytest.mark.parametrize("ufunc", [np.multiply, np.divide, np.arctan2, np.subtract], ids=_name)
def test_broadcast_six_dims(ufunc, wshape):
    """Broadcast operands of records split along the leading axis."""
    x, w = inputs(ufunc, None, seed=35, shapes=[(2,) * 6, wshape])

    def f(x, w, y):
        ufunc(view6(x), w, out=y)
        y += ufunc(w, view6(x) * view6(x) + 1.0)  # w first, and no division by ~0
    check_all(f, dup(x), dup(w), dup(np.zeros((2,) * 6)))


@pytest.mark.parametrize("wshape", [(3, 1, 5, 1), (1, 4, 1, 6), (3, 4, 1, 6), (1, 1, 5, 1)],
                         ids=str)
@pytest.mark.parametrize("ufunc", [np.multiply, np.subtract, np.hypot], ids=_name)
def test_broadcast_middle_axes(ufunc, wshape):
    """Short rows whose offsets carry across several axes (csrc sad_rows): an
    operand repeated along middle axes, a reversed and strided view of the
    other, in place and out of place."""
    x, w = inputs(ufunc, None, seed=36, shapes=[(3, 8, 5, 12), wshape])

    def f(x, w, y):
        xv = x[::-1, ::2, :, ::-2]                  # (3, 4, 5, 6), no axis contiguous
        y[...] = ufunc(xv, w)
        y += ufunc(w, xv * 0.5)
        ufunc(y, w, out=y)
    check_all(f, dup(x), dup(w), dup(np.zeros((3, 4, 5, 6))))


def _row_order_sum(acc, terms):
    """acc plus terms[0], terms[1], ... one after the other (no pairwise sum)."""
    for t in terms:
        acc = acc + t
    return acc


# ufunc, the shape of the broadcast operand b in f, and the sum over its
# repeats that its adjoint takes, in the order of a row-by-row loop
ROW_ORDER = {
    # a mean over short rows (W6's x - means): columns of sums, 8 at a time and a rest
    "column": (np.subtract, (5, 1, 11), lambda g: _row_order_sum(0.0, [-g[:, i:i + 1]
                                                                  for i in range(g.shape[1])])),
    # broadcast along the row: one running sum per row
    "row": (np.add, (5, 40, 1), lambda g: _row_order_sum(0.0, [g[..., j:j + 1]
                                                            for j in range(g.shape[2])])),
    # one value for everything: one running sum, rows in C order
    "scalar": (np.subtract, (1, 1, 1), lambda g: _row_order_sum(
        0.0, [-g[i, r, j] for i in range(g.shape[0]) for r in range(g.shape[1])
              for j in range(g.shape[2])]).reshape(1, 1, 1)),
}


@pytest.mark.parametrize("case", list(ROW_ORDER))
def test_linear_broadcast_sums_keep_the_row_order(case):
    """The linear sweep runs plane by plane (csrc linear_reverse), with its
    broadcast sums in registers: each sum still takes its terms in the order of
    the row-by-row loop, so the gradient has its bits exactly."""
    ufunc, bshape, expected = ROW_ORDER[case]
    rng = np.random.default_rng(40)
    a = rng.standard_normal((5, 40, 11))
    b = rng.standard_normal(bshape)
    gy = rng.standard_normal((5, 40, 11))

    def f(b, y):
        y[...] = ufunc(a, b)
    db, dy = np.zeros_like(b), gy.copy()
    sad.autodiff(f, Duplicated(b.copy(), db), Duplicated(np.zeros_like(gy), dy))
    assert same_bits(db, expected(gy))
    check_all(f, dup(b), dup(np.zeros_like(gy)))


def test_linear_sweep_with_inputs_sharing_a_plane():
    """Inputs whose shadows share memory with each other or with the output
    take the row-by-row loop, which checks each row."""
    rng = np.random.default_rng(41)

    def f(x, y):
        y[...] = np.add(x[:, :6], x[:, 2:])     # both inputs in one plane of x
        x[:, 1:] -= x[:, :1]                     # in place, with a broadcast column
    check_all(f, dup(rng.standard_normal((4, 8))), dup(np.zeros((4, 6))))


@pytest.mark.parametrize("ufunc", BINARY, ids=_name)
def test_broadcast_first_input_and_both(ufunc):
    w, x = inputs(ufunc, None, seed=6, shapes=[(4,), (3, 4)])

    def f(w, x, y):
        y[...] = ufunc(w, x)
    check_all(f, dup(w), dup(x), dup(np.zeros((3, 4))))

    a, b = inputs(ufunc, None, seed=7, shapes=[(3, 1), (4,)])

    def g(a, b, y):  # the output is larger than either input
        ufunc(a, b, out=y)
    check_all(g, dup(a), dup(b), dup(np.zeros((3, 4))))


@pytest.mark.parametrize("ufunc", BINARY, ids=_name)
def test_python_scalar_and_const_operands(ufunc):
    x, w = inputs(ufunc, (5,), seed=8)
    c0, c1 = inputs(ufunc, (5,), seed=29)
    kx, kw = (float(v) for v in inputs(ufunc, (), seed=9))

    def f(x, w, c0, c1, y):
        y[...] = ufunc(x, kw)           # constant second operand
        y += ufunc(kx, w)               # constant first operand
        y += ufunc(x, c1)               # Const arrays
        y += ufunc(c0, w)
        y += ufunc(np.float64(kx), w) + ufunc(x, np.int64(2) if ufunc is not np.divide else kw)
    check_all(f, dup(x), dup(w), Const(c0), Const(c1), dup(np.zeros(5)))


# --------------------------------------------------------------------------
# the scalar path: TScalar from indexing

@pytest.mark.parametrize("ufunc", UFUNCS, ids=_name)
def test_scalar_ufunc(ufunc):
    ins = inputs(ufunc, (1,), seed=10)
    x = np.concatenate(ins)

    def f(x):
        r = ufunc(*[x[i] for i in range(ufunc.nin)])
        assert type(r) is (sad.TScalar if type(x) is sad.TArray else np.float64)
        return r
    check_gradient(f, dup(x))
    check_accumulate_once(f, dup(x))
    got = sad.autodiff(f, dup(x), mode=sad.ReverseWithPrimal)[1]
    assert got == float(ufunc(*x))  # the lean path computes the primal with numpy


@pytest.mark.parametrize("ufunc", BINARY, ids=_name)
def test_scalar_ufunc_with_constants(ufunc):
    x = np.concatenate(inputs(ufunc, (1,), seed=11))

    def f(x, c):  # c[i] of a Const array is a plain float
        return ufunc(x[0], c[1]) + ufunc(c[0], x[1])
    check_gradient(f, dup(x), Const(x.copy()))
    check_accumulate_once(f, dup(x), Const(x.copy()))


def test_scalar_ufunc_into_array():
    """A traced scalar broadcast against an array: its adjoint sums the repeats."""
    def f(x, y):
        y *= np.exp(x[0])
        y[...] = np.maximum(y, x[1]) * x[2]
    x = np.array([0.3, 0.5, -1.5])
    y = np.array([0.1, 0.9, 2.0, 0.7])
    check_all(f, dup(x), dup(y))


OPERATORS = {
    "mul": lambda x: x[0] * x[1], "add": lambda x: x[0] + x[1], "sub": lambda x: x[0] - x[1],
    "div": lambda x: x[0] / x[1], "rpow": lambda x: 2 ** x[0], "pow3": lambda x: x[0] ** 3,
    "pow_half": lambda x: x[1] ** 0.5, "pow_ss": lambda x: x[1] ** x[0],
    "neg": lambda x: -x[0], "abs": lambda x: abs(x[0]), "rsub": lambda x: 1.5 - x[0],
    "rdiv": lambda x: 3 / x[1], "int_mul": lambda x: x[0] * 2 + 3 * x[1],
    "np_float": lambda x: np.float64(2.5) * x[0] + x[1] * np.float64(0.5),
    "np_int": lambda x: x[0] * np.int64(3) - np.int32(2) * x[1],
    "chain": lambda x: (x[0] * x[1] - x[0] / x[1]) ** 2 + np.sin(x[0] * x[1]),
}


@pytest.mark.parametrize("name", list(OPERATORS))
def test_scalar_operators(name):
    fn = OPERATORS[name]
    x = np.array([-0.7, 1.3])

    def f(x):
        return fn(x)
    check_gradient(f, dup(x))
    check_accumulate_once(f, dup(x))
    (_,), v = sad.autodiff(f, dup(x), mode=sad.ReverseWithPrimal)
    assert v == fn(x.copy())  # same arithmetic as plain floats, bit for bit


def test_scalar_from_multi_index_and_views():
    def f(a, y):
        y[0] = a[1, 2] * a[0, 0]
        y[1] = np.exp(a.T[2, 1]) - a[::-1, ::2][0, 1]
        y[2] = a[..., 1][1] ** 2
    a = np.arange(6.0).reshape(2, 3) / 7
    check_all(f, dup(a), dup(np.zeros(3)))


def test_abs_at_zero_is_zero():
    x = np.array([0.0, -0.0, 2.0, -3.0])

    def f(x, y):
        y[...] = np.abs(x)
    dx, dy = np.zeros(4), np.ones(4)
    sad.autodiff(f, Duplicated(x, dx), Duplicated(np.zeros(4), dy))
    assert dx.tolist() == [0.0, 0.0, 1.0, -1.0]

    def g(x, y):
        y[0] = abs(x[0]) + np.fabs(x[1]) + np.absolute(x[0])
    dx, dy = np.zeros(4), np.ones(1)
    sad.autodiff(g, Duplicated(x, dx), Duplicated(np.zeros(1), dy))
    assert dx.tolist() == [0.0, 0.0, 0.0, 0.0]
    (g0,) = sad.autodiff(lambda a: abs(a), Active(0.0))
    assert g0 == 0.0


@pytest.mark.parametrize("ufunc", [np.maximum, np.minimum, np.fmax, np.fmin], ids=_name)
def test_max_min_ties_split_evenly(ufunc):
    x = np.array([1.0, 2.0, -3.0, 5.0])
    w = np.array([1.0, 0.0, -3.0, 6.0])
    dx, dw, dy = np.zeros(4), np.zeros(4), np.array([1.0, 2.0, 4.0, 8.0])

    def f(x, w, y):
        ufunc(x, w, out=y)
    sad.autodiff(f, Duplicated(x, dx), Duplicated(w, dw), Duplicated(np.zeros(4), dy))
    big = ufunc is np.maximum or ufunc is np.fmax
    assert dx.tolist() == [0.5, 2.0 if big else 0.0, 2.0, 0.0 if big else 8.0]
    assert dw.tolist() == [0.5, 0.0 if big else 2.0, 2.0, 8.0 if big else 0.0]
    # the scalar path follows the same rule
    a, b = sad.autodiff(lambda a, b: ufunc(a, b), Active(1.5), Active(1.5))
    assert (a, b) == (0.5, 0.5)

    def g(x):  # max(x, x) has the derivative of x
        return ufunc(x[0], x[0])
    dx = np.zeros(1)
    sad.autodiff(g, Duplicated(np.array([0.7]), dx))
    assert dx.tolist() == [1.0]


@pytest.mark.parametrize("path", ["array", "scalar", "tangent"])
def test_zero_adjoint_through_infinite_partial_is_zero(path):
    """sqrt'(0) and log'(0) are infinite; a value that does not reach the result
    (adjoint 0) contributes 0, not 0 * inf = nan -- on every path alike."""
    with np.errstate(all="ignore"):
        if path == "tangent":
            x, dx = np.array([0.0, 0.0, 4.0]), np.array([0.0, 0.0, 1.0])
            for op in (lib.SAD_SQRT, lib.SAD_LOG):
                z, dz = np.empty(3), np.empty(3)
                fast.tangent(op, lib.SAD_KX_ARR | PRIMAL, z, dz, x, dx, 0, 0, 0.0)
                assert dz[:2].tolist() == [0.0, 0.0] and np.isfinite(dz[2])
            return

        def f(x, y):
            if path == "array":
                y[...] = np.sqrt(x)          # overwritten below: adjoint 0
                y[...] = 1.0 + np.log(x) * 0.0
            else:
                y[0] = np.sqrt(x[0])
                y[0] = 1.0 + np.log(x[0]) * 0.0
        dx = np.zeros(1)
        autodiff_args = (Duplicated(np.zeros(1), dx), Duplicated(np.zeros(1), np.ones(1)))
        sad.autodiff(f, *autodiff_args)
        assert dx.tolist() == [0.0]

        def g(x, y):  # used: the infinite derivative shows
            if path == "array":
                y[...] = np.sqrt(x)
            else:
                y[0] = np.sqrt(x[0])
        dx = np.zeros(1)
        sad.autodiff(g, Duplicated(np.zeros(1), dx), Duplicated(np.zeros(1), np.ones(1)))
        assert dx.tolist() == [np.inf]


def test_pow_conventions_at_zero():
    a, b = sad.autodiff(lambda a, b: a ** b, Active(0.0), Active(2.0))
    assert (a, b) == (0.0, 0.0)
    a, b = sad.autodiff(lambda a, b: a ** b, Active(3.0), Active(0.0))
    assert a == 0.0 and b == pytest.approx(math.log(3.0))


# --------------------------------------------------------------------------
# in-place operators

INPLACE = {
    "iadd": lambda y, x: y.__iadd__(x), "isub": lambda y, x: y.__isub__(x),
    "imul": lambda y, x: y.__imul__(x), "idiv": lambda y, x: y.__itruediv__(x + 3.0),
    "ipow": lambda y, x: y.__ipow__(2.0),
    "self_mul": lambda y, x: y.__imul__(y), "self_add": lambda y, x: y.__iadd__(y),
    "self_div": lambda y, x: np.divide(y, y * y + 1.0, out=y),
    "mul_out": lambda y, x: np.multiply(x, x, out=y),
    "mul_out_yx": lambda y, x: np.multiply(y, x, out=y),
    "mul_out_xy": lambda y, x: np.multiply(x, y, out=y),
    "sq_self": lambda y, x: np.square(y, out=y),
    "scalar_rhs": lambda y, x: y.__imul__(x[0, 1]),
    "chain": lambda y, x: (y.__iadd__(x), y.__imul__(x), y.__isub__(2.0 * y)),
}


@pytest.mark.parametrize("name", list(INPLACE))
def test_in_place_operators(name):
    op = INPLACE[name]

    def f(y, x):
        op(y, x)
    rng = np.random.default_rng(12)
    check_all(f, dup(rng.uniform(0.5, 1.5, (3, 4))), dup(rng.uniform(-1, 1, (3, 4))))


def test_in_place_operator_returns_the_same_traced_array():
    seen = []

    def f(y, x):
        z = y
        y += x
        y *= x
        seen.append(y is z)
    sad.autodiff(f, dup(np.ones(3)), dup(np.ones(3)))
    assert seen == [True]


def test_in_place_into_const_with_active_value_promotes():
    """c *= x with Const(c): c gets a hidden shadow; y reads c afterwards."""
    def f(x, c, y):
        c *= x
        y[...] = c * c
    check_gradient(f, dup(np.array([0.5, -1.0, 2.0])), Const(np.array([1.5, 2.0, -0.5])),
                   dup(np.zeros(3)))
    check_restore(f, dup(np.array([0.5, -1.0, 2.0])), Const(np.array([1.5, 2.0, -0.5])),
                  dup(np.zeros(3)))


# --------------------------------------------------------------------------
# views: strided, reversed, transposed, overlapping

VIEWS = {
    "step2": lambda u, x: u[::2].__imul__(np.exp(x[1::2])),
    "reversed": lambda u, x: u.__iadd__(np.sin(x[::-1])),
    "reversed_out": lambda u, x: np.multiply(x[::-1], x, out=u[::-1]),
    "neg_step3": lambda u, x: np.hypot(x[::-3], u[-1::-3], out=u[::-3]),
    "shift_add": lambda u, x: u[1:].__iadd__(u[:-1]),
    "shift_mul": lambda u, x: u[:-1].__imul__(u[1:]),
    "shift_mul_x": lambda u, x: (u[:-1].__imul__(u[1:]), u[2:].__iadd__(x[2:] * u[:-2])),
    "reverse_self": lambda u, x: u[::-1].__imul__(u),
    "reverse_self_add": lambda u, x: np.add(u, u[::-1], out=u[::-1]),
    "half_overlap": lambda u, x: np.multiply(u[:8], u[4:], out=u[2:10]),
    "strided_overlap": lambda u, x: np.subtract(u[::2], np.tanh(u[1::2]), out=u[3:9]),
    "shift_copy": lambda u, x: u[1:].__setitem__(Ellipsis, u[:-1] * x[1:]),
    "shift_copy_back": lambda u, x: u[:-2].__setitem__(Ellipsis, u[2:]),
    "broadcast_self": lambda u, x: u.__iadd__(u[:1]),
    "broadcast_self_mul": lambda u, x: u[1:].__imul__(u[0]),
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_views_and_overlap(name):
    op = VIEWS[name]

    def f(u, x):
        op(u, x)
    rng = np.random.default_rng(13)
    u, x = rng.uniform(0.5, 1.5, 12), rng.uniform(-1, 1, 12)
    check_all(f, dup(u), dup(x))


# overlaps that span several tiles (256 elements) of the C loops, or rows of a
# block that cannot be coalesced: a later tile or row reads memory an earlier
# one has already written
BIG_OVERLAP = {
    "shift_down_mul": lambda u: u[:-1].__imul__(u[1:]),
    "shift_down_add": lambda u: np.add(u[1:], u[:-1], out=u[:-1]),
    "shift_up_mul": lambda u: u[1:].__imul__(u[:-1]),
    "far_shift": lambda u: np.multiply(u[300:], u[:-300], out=u[:-300]),
    "reverse": lambda u: u[::-1].__imul__(u),
    "copy_down": lambda u: u[:-3].__setitem__(Ellipsis, u[3:]),
    "copy_up": lambda u: u[3:].__setitem__(Ellipsis, u[:-3]),
}
# on a (20, 30) matrix: views whose rows cannot be merged (29 of 30 columns)
ROW_OVERLAP = {
    "rows_down": lambda a: a[:-1, :-1].__imul__(a[1:, :-1]),
    "rows_up": lambda a: a[1:, 1:].__imul__(a[:-1, :-1]),
    "rows_down_add": lambda a: np.add(a[1:, 1:], a[:-1, :-1], out=a[:-1, 1:]),
    "cols": lambda a: a[:, :-1].__iadd__(a[:, 1:]),
    "copy_rows": lambda a: a[:-1, 1:].__setitem__(Ellipsis, a[1:, :-1]),
    "reversed_rows": lambda a: a[::-1, :-1].__imul__(a[:, 1:]),
}


@pytest.mark.parametrize("name", list(BIG_OVERLAP))
def test_overlap_across_tiles(name):
    op = BIG_OVERLAP[name]

    def f(u):
        op(u)
    u = np.random.default_rng(31).uniform(0.5, 1.5, 700)
    check_all(f, dup(u))


@pytest.mark.parametrize("name", list(ROW_OVERLAP))
def test_overlap_across_rows(name):
    op = ROW_OVERLAP[name]

    def f(a):
        op(a)
    a = np.random.default_rng(32).uniform(0.5, 1.5, (20, 30))
    check_all(f, dup(a))


def test_overlap_matches_numpy_bit_for_bit():
    """numpy buffers overlapping operands; the traced run leaves the same bits."""
    def f(u):
        u[1:] += u[:-1]
        u[:-1] *= u[1:]
        u[::-1] *= u
    u0 = np.random.default_rng(14).standard_normal(9)
    plain, traced = u0.copy(), u0.copy()
    f(plain)
    sad.autodiff(f, dup(traced))
    assert same_bits(plain, traced)


def test_shift_add_gradient_exact():
    """u[1:] += u[:-1] is u_new = A u with A = I + subdiagonal: ubar <- A^T ubar."""
    n = 6
    u = np.arange(1.0, n + 1)
    ubar = np.arange(10.0, 10.0 + n)
    du = ubar.copy()

    def f(u):
        u[1:] += u[:-1]
    sad.autodiff(f, Duplicated(u, du))
    A = np.eye(n) + np.eye(n, k=-1)
    assert du.tolist() == (A.T @ ubar).tolist()
    assert u.tolist() == (A @ np.arange(1.0, n + 1)).tolist()


# --------------------------------------------------------------------------
# memory layouts

@pytest.mark.parametrize("ufunc", [np.multiply, np.divide, np.hypot, np.exp, np.sin,
                                   np.maximum], ids=_name)
@pytest.mark.parametrize("layout", ["F_primal", "F_shadow", "F_both", "F_out_only"])
def test_layouts(ufunc, layout):
    """Fortran-ordered arrays, and shadows laid out unlike their primals: the
    gradients match those of all-C arrays (and finite differences)."""
    shape = (3, 4, 5)
    ins = inputs(ufunc, shape, seed=15)
    out0 = np.full(shape, 0.5)

    def f(*a):
        *xs, y = a
        t = ufunc(*xs)
        ufunc(*[t] * (ufunc.nin - 1), y, out=y) if ufunc.nin == 2 else ufunc(t, out=y)
        y += xs[0]

    def run(prim_order, shad_order, out_order):
        xs = [np.array(a, order=prim_order) for a in ins]
        y = np.array(out0, order=out_order)
        dxs = [np.zeros(shape, order=shad_order) for _ in xs]
        dy = np.array(np.linspace(-1, 1, out0.size).reshape(shape), order=shad_order)
        sad.autodiff(f, *[Duplicated(a, d) for a, d in zip(xs, dxs)], Duplicated(y, dy))
        return [d.copy() for d in dxs] + [dy.copy(), y.copy()]
    ref = run("C", "C", "C")
    got = {"F_primal": lambda: run("F", "C", "F"), "F_shadow": lambda: run("C", "F", "C"),
           "F_both": lambda: run("F", "F", "F"), "F_out_only": lambda: run("C", "C", "F")}[layout]()
    for r, g in zip(ref, got):
        assert np.allclose(r, g, rtol=1e-13, atol=1e-15)
    assert same_bits(ref[-1], got[-1])  # the primal output, bit for bit
    seeds = [None] * ufunc.nin + [np.linspace(-1, 1, out0.size).reshape(shape)]
    want = finite_differences(f, *[dup(a) for a in ins], dup(out0), seeds=seeds)
    for r, w in zip(ref, want):
        assert np.allclose(r, w, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("which", ["z", "dz", "x", "dx", "y", "dy"])
@pytest.mark.parametrize("ufunc", [np.multiply, np.hypot, np.subtract], ids=_name)
def test_one_operand_laid_out_differently(ufunc, which):
    """Only one of the six arrays of a record (output, inputs, their shadows)
    is Fortran-ordered: its strides alone must keep the block from merging."""
    shape = (4, 5, 6)
    x0, y0 = inputs(ufunc, shape, seed=33)
    rng = np.random.default_rng(34)
    zbar, dxs = rng.standard_normal(shape), [rng.standard_normal(shape) for _ in range(2)]
    order = {k: ("F" if k == which else "C") for k in ("z", "dz", "x", "dx", "y", "dy")}

    def f(x, y, z):
        ufunc(x, y, out=z)
    x, y = np.array(x0, order=order["x"]), np.array(y0, order=order["y"])
    z = np.zeros(shape, order=order["z"])
    xbar, ybar = np.zeros(shape, order=order["dx"]), np.zeros(shape, order=order["dy"])
    sad.autodiff(f, Duplicated(x, xbar), Duplicated(y, ybar),
                 Duplicated(z, np.array(zbar, order=order["dz"])))
    px, py = PARTIALS[ufunc](x0, y0)
    assert same_bits(z, ufunc(x0, y0))
    np.testing.assert_allclose(xbar, px * zbar, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(ybar, py * zbar, rtol=1e-14, atol=1e-300)
    # the tangent kernel with the same layouts
    dz = np.zeros(shape, order=order["dz"])
    dx, dy = np.array(dxs[0], order=order["dx"]), np.array(dxs[1], order=order["dy"])
    z2 = np.zeros(shape, order=order["z"])
    assert fast.tangent(EW_OPS[ufunc], lib.SAD_KX_ARR | lib.SAD_KY_ARR | PRIMAL, z2, dz,
                        x, dx, y, dy, 0.0) == lib.SAD_OK
    np.testing.assert_allclose(dz, px * dxs[0] + py * dxs[1], rtol=1e-13, atol=1e-300)


def test_fortran_views_checked():
    """check_* on Fortran arrays (the checkers keep the layout of their copies)."""
    rng = np.random.default_rng(16)
    x = np.asfortranarray(rng.uniform(0.5, 1.5, (4, 3)))
    y = np.asfortranarray(rng.uniform(0.5, 1.5, (4, 3)))

    def f(x, y):
        y[:, 1:] *= np.log(x[:, :-1])
        y[::-1, ::-2] += x[1:, ::2][0]
        y[1:3] = y[2:] * x[:2, ::-1]
    check_all(f, dup(x), dup(y))


# --------------------------------------------------------------------------
# the dot-product test between the C tangent kernel and the reverse sweep

def _rel(a, b):
    return abs(a - b) / max(1e-300, abs(a), abs(b))


@pytest.mark.parametrize("case", ["same", "broadcast", "strided"])
@pytest.mark.parametrize("ufunc", UFUNCS, ids=_name)
def test_tangent_adjoint(ufunc, case):
    op = EW_OPS[ufunc]
    rng = np.random.default_rng(17)
    shapes = {"same": [(4, 5)] * 2, "broadcast": [(4, 5), (5,)],
              "strided": [(4, 5)] * 2}[case][:ufunc.nin]
    xs = inputs(ufunc, None, seed=18, shapes=shapes)
    if case == "strided":  # operands that are reversed / transposed views
        xs = [np.ascontiguousarray(xs[0][::-1].T).T[::-1]] + \
             [np.asfortranarray(a) for a in xs[1:]]
    dxs = [rng.standard_normal(a.shape) for a in xs]
    z, dz = np.empty((4, 5)), np.empty((4, 5))
    flags = lib.SAD_KX_ARR | (lib.SAD_KY_ARR if ufunc.nin == 2 else 0)
    ids = [xs[0], dxs[0]] + ([xs[1], dxs[1]] if ufunc.nin == 2 else [0, 0])
    assert fast.tangent(op, flags | PRIMAL, z, dz, *ids, 0.0) == lib.SAD_OK
    np.testing.assert_allclose(z, ufunc(*xs), rtol=1e-15, atol=0)

    zbar = rng.standard_normal((4, 5))
    xbars = [np.zeros(a.shape) for a in xs]
    shadow = zbar.copy()

    def f(*a):
        *ins, y = a
        ufunc(*ins, out=y)
    _, tape = sad.autodiff_split(f, *[Duplicated(a, b) for a, b in zip(xs, xbars)],
                                 Duplicated(np.zeros((4, 5)), shadow))
    assert len(tape) == 1
    tape.reverse()
    assert not shadow.any()  # the overwritten output's shadow is consumed
    forward = np.vdot(dz, zbar)
    reverse = sum(np.vdot(d, b) for d, b in zip(dxs, xbars))
    assert _rel(forward, reverse) < 1e-12

    # the same through an out-of-place record and the copy into y
    xbars2 = [np.zeros(a.shape) for a in xs]

    def g(*a):
        *ins, y = a
        y[...] = ufunc(*ins)
    sad.autodiff(g, *[Duplicated(a, b) for a, b in zip(xs, xbars2)],
                 Duplicated(np.zeros((4, 5)), zbar.copy()))
    reverse2 = sum(np.vdot(d, b) for d, b in zip(dxs, xbars2))
    assert _rel(forward, reverse2) < 1e-12


@pytest.mark.parametrize("ufunc", BINARY, ids=_name)
def test_tangent_with_constant_operand(ufunc):
    """flags KX_ARR | KY_CONST: the constant k is the second operand."""
    op = EW_OPS[ufunc]
    x = inputs(ufunc, (6,), seed=19)[0]
    k = float(inputs(ufunc, (), seed=20)[1])
    dx = np.random.default_rng(21).standard_normal(6)
    z, dz = np.empty(6), np.empty(6)
    assert fast.tangent(op, lib.SAD_KX_ARR | lib.SAD_KY_CONST | PRIMAL, z, dz,
                        x, dx, 0, 0, k) == lib.SAD_OK
    np.testing.assert_allclose(z, ufunc(x, k), rtol=1e-15, atol=0)
    zbar = np.random.default_rng(22).standard_normal(6)
    xbar = np.zeros(6)

    def f(x, y):
        ufunc(x, k, out=y)
    sad.autodiff(f, Duplicated(x, xbar), Duplicated(np.zeros(6), zbar.copy()))
    assert _rel(np.vdot(dz, zbar), np.vdot(dx, xbar)) < 1e-12


@pytest.mark.parametrize("ufunc", UFUNCS, ids=_name)
def test_tangent_matches_finite_differences(ufunc):
    """The partials themselves (shared by tangent and reverse) are right."""
    op = EW_OPS[ufunc]
    xs = inputs(ufunc, (8,), seed=23)
    dxs = [np.random.default_rng(24 + k).standard_normal(8) for k in range(ufunc.nin)]
    z, dz = np.empty(8), np.empty(8)
    flags = lib.SAD_KX_ARR | (lib.SAD_KY_ARR if ufunc.nin == 2 else 0)
    ids = [xs[0], dxs[0]] + ([xs[1], dxs[1]] if ufunc.nin == 2 else [0, 0])
    assert fast.tangent(op, flags | PRIMAL, z, dz, *ids, 0.0) == lib.SAD_OK
    h = 1e-6
    fd = (ufunc(*[a + h * d for a, d in zip(xs, dxs)]) -
          ufunc(*[a - h * d for a, d in zip(xs, dxs)])) / (2 * h)
    np.testing.assert_allclose(dz, fd, rtol=1e-6, atol=1e-8)


# the partial derivatives, written independently of csrc/ops/ew_partials.c
def _sec2(t):
    return 1.0 / np.cos(t) ** 2


PARTIALS = {
    np.negative: lambda x: [-np.ones_like(x)], np.positive: lambda x: [np.ones_like(x)],
    np.square: lambda x: [x + x], np.sqrt: lambda x: [0.5 * x ** -0.5],
    np.reciprocal: lambda x: [-(x ** -2.0)], np.exp: lambda x: [np.exp(x)],
    np.log: lambda x: [x ** -1.0], np.log1p: lambda x: [(1.0 + x) ** -1.0],
    np.expm1: lambda x: [np.exp(x)], np.sin: lambda x: [np.cos(x)],
    np.cos: lambda x: [-np.sin(x)], np.tan: lambda x: [_sec2(x)],
    np.tanh: lambda x: [np.cosh(x) ** -2.0], np.sinh: lambda x: [np.cosh(x)],
    np.cosh: lambda x: [np.sinh(x)], np.arcsin: lambda x: [(1.0 - x * x) ** -0.5],
    np.arccos: lambda x: [-((1.0 - x * x) ** -0.5)], np.arctan: lambda x: [(1.0 + x * x) ** -1.0],
    np.absolute: lambda x: [np.sign(x)], np.fabs: lambda x: [np.sign(x)],
    np.add: lambda x, y: [np.ones_like(x), np.ones_like(y)],
    np.subtract: lambda x, y: [np.ones_like(x), -np.ones_like(y)],
    np.multiply: lambda x, y: [y, x], np.divide: lambda x, y: [1.0 / y, -x / y ** 2],
    np.power: lambda x, y: [y * x ** (y - 1.0), np.log(x) * x ** y],
    np.float_power: lambda x, y: [y * x ** (y - 1.0), np.log(x) * x ** y],
    np.arctan2: lambda x, y: [y / np.hypot(x, y) ** 2, -x / np.hypot(x, y) ** 2],
    np.hypot: lambda x, y: [x / np.sqrt(x * x + y * y), y / np.sqrt(x * x + y * y)],
    np.maximum: lambda x, y: [(x > y) * 1.0, (x < y) * 1.0],
    np.minimum: lambda x, y: [(x < y) * 1.0, (x > y) * 1.0],
    np.fmax: lambda x, y: [(x > y) * 1.0, (x < y) * 1.0],
    np.fmin: lambda x, y: [(x < y) * 1.0, (x > y) * 1.0],
    np.log10: lambda x: [(x * np.log(10.0)) ** -1.0], np.log2: lambda x: [(x * np.log(2.0)) ** -1.0],
    np.exp2: lambda x: [np.log(2.0) * 2.0 ** x], np.arcsinh: lambda x: [(1.0 + x * x) ** -0.5],
    np.arccosh: lambda x: [(x * x - 1.0) ** -0.5], np.arctanh: lambda x: [(1.0 - x * x) ** -1.0],
    np.deg2rad: lambda x: [np.full_like(x, np.pi / 180)],
    np.radians: lambda x: [np.full_like(x, np.pi / 180)],
    np.rad2deg: lambda x: [np.full_like(x, 180 / np.pi)],
    np.degrees: lambda x: [np.full_like(x, 180 / np.pi)],
    np.cbrt: lambda x: [np.abs(x) ** (-2.0 / 3.0) / 3.0],
    np.copysign: lambda x, y: [np.sign(x) * np.sign(y), np.zeros_like(y)],
    np.heaviside: lambda x, y: [np.zeros_like(x), (x == 0) * 1.0],
    np.logaddexp: lambda x, y: [1.0 / (1.0 + np.exp(y - x)), 1.0 / (1.0 + np.exp(x - y))],
    np.logaddexp2: lambda x, y: [1.0 / (1.0 + 2.0 ** (y - x)), 1.0 / (1.0 + 2.0 ** (x - y))],
}


@pytest.mark.parametrize("ufunc", UFUNCS, ids=_name)
def test_partials_to_rounding(ufunc):
    """The tangent kernel and the reverse sweep agree with independently
    written derivatives to ~1e-13: errors too small for finite differences."""
    assert set(PARTIALS) == set(EW_OPS)
    op = EW_OPS[ufunc]
    xs = inputs(ufunc, (300,), seed=30)
    want = PARTIALS[ufunc](*xs)
    for k in range(ufunc.nin):  # tangent along each input alone
        dxs = [np.zeros(300) for _ in xs]
        dxs[k][...] = 1.0
        z, dz = np.empty(300), np.empty(300)
        flags = lib.SAD_KX_ARR | (lib.SAD_KY_ARR if ufunc.nin == 2 else 0)
        ids = [xs[0], dxs[0]] + ([xs[1], dxs[1]] if ufunc.nin == 2 else [0, 0])
        assert fast.tangent(op, flags | PRIMAL, z, dz, *ids, 0.0) == lib.SAD_OK
        np.testing.assert_allclose(dz, want[k], rtol=2e-13, atol=1e-300)
    bars = [np.zeros(300) for _ in xs]

    def f(*a):
        ufunc(*a[:-1], out=a[-1])
    sad.autodiff(f, *map(Duplicated, xs, bars), Duplicated(np.zeros(300), np.ones(300)))
    for b, w in zip(bars, want):
        np.testing.assert_allclose(b, w, rtol=2e-13, atol=1e-300)
    # and the scalar path
    for i in (0, 137):
        got = sad.autodiff(lambda *a: ufunc(*a), *[Active(float(x[i])) for x in xs])
        for g, w in zip(got, want):
            assert g == pytest.approx(w[i], rel=2e-13, abs=1e-300)


def test_tangent_in_place_overlap():
    """z aliases x partially: the tangent kernel reads everything before writing."""
    u = np.linspace(0.5, 1.5, 10)
    du = np.linspace(-1, 1, 10)
    zu, zdu = u.copy(), du.copy()
    z, dz, x, dx = zu[1:], zdu[1:], zu[:-1], zdu[:-1]
    assert fast.tangent(lib.SAD_MUL, lib.SAD_KX_ARR | lib.SAD_KY_ARR | PRIMAL,
                        z, dz, x, dx, x, dx, 0.0) == lib.SAD_OK
    assert same_bits(zu[1:], u[:-1] * u[:-1])
    np.testing.assert_allclose(zdu[1:], 2 * u[:-1] * du[:-1], rtol=1e-15)


# --------------------------------------------------------------------------
# the C primal kernel against numpy

EXACT = {np.add, np.subtract, np.multiply, np.divide, np.negative, np.positive, np.square,
         np.reciprocal, np.sqrt, np.absolute, np.fabs, np.maximum, np.minimum, np.fmax,
         np.fmin}


@pytest.mark.parametrize("ufunc", UFUNCS, ids=_name)
def test_c_primal_matches_numpy(ufunc):
    op = EW_OPS[ufunc]
    for shapes in ([(1000,)] * 2, [(20, 50), (50,)], [(20, 50), (20, 1)]):
        xs = inputs(ufunc, None, seed=25, shapes=shapes[:ufunc.nin])
        if ufunc.nin == 2 and ufunc in (np.add, np.subtract, np.multiply, np.divide):
            xs = [a * 10.0 ** np.random.default_rng(26).integers(-5, 5, a.shape) for a in xs]
        z = np.empty(np.broadcast_shapes(*[a.shape for a in xs]))
        flags = lib.SAD_KX_ARR | (lib.SAD_KY_ARR if ufunc.nin == 2 else 0)
        y = xs[1] if ufunc.nin == 2 else None
        assert c_primal(op, flags, z, xs[0], y) == lib.SAD_OK
        want = ufunc(*xs)
        if ufunc in EXACT:
            assert same_bits(z, want), np.max(np.abs(z - want))
        else:
            np.testing.assert_allclose(z, want, rtol=1e-15, atol=0)
    if ufunc.nin == 2:  # and with a constant second operand
        x = inputs(ufunc, (100,), seed=27)[0]
        k = float(inputs(ufunc, (), seed=28)[1])
        z = np.empty(100)
        assert c_primal(op, lib.SAD_KX_ARR | lib.SAD_KY_CONST, z, x, k=k) == lib.SAD_OK
        if ufunc in EXACT:
            assert same_bits(z, ufunc(x, k))
        else:
            np.testing.assert_allclose(z, ufunc(x, k), rtol=1e-15, atol=0)


def test_c_primal_nan_propagation_of_max_min():
    x = np.array([np.nan, 1.0, 2.0, np.nan])
    y = np.array([1.0, np.nan, 1.0, np.nan])
    for op, uf in ((lib.SAD_MAX, np.maximum), (lib.SAD_MIN, np.minimum),
                   (lib.SAD_FMAX, np.fmax), (lib.SAD_FMIN, np.fmin)):
        z = np.empty(4)
        assert c_primal(op, lib.SAD_KX_ARR | lib.SAD_KY_ARR, z, x, y) == lib.SAD_OK
        assert np.array_equal(z, uf(x, y), equal_nan=True)


def test_c_primal_in_place_overlap_matches_numpy():
    for sl in [(slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None)),
               (slice(None, None, -1), slice(None))]:
        u = np.linspace(-1, 2, 11)
        want = u.copy()
        np.multiply(want[sl[1]], want[sl[1]], out=want[sl[0]])
        z, x = u[sl[0]], u[sl[1]]
        assert c_primal(lib.SAD_MUL, lib.SAD_KX_ARR | lib.SAD_KY_ARR, z, x, x) == lib.SAD_OK
        assert same_bits(u, want)


# --------------------------------------------------------------------------
# ufuncs without a derivative, unsupported arguments, failures half-way

@pytest.mark.parametrize("call, exc, match", [
    (lambda x: np.spacing(x), NotImplementedError, "np.spacing has no derivative rule"),
    (lambda x: np.nextafter(x[0], 2.0), NotImplementedError,
     "np.nextafter has no derivative rule"),
    (lambda x: np.modf(x), NotImplementedError, "np.modf"),
    (lambda x: np.add(x, x, where=np.ones(3, bool)), TypeError, "where="),
    (lambda x: np.add(x, x, dtype=np.float32), TypeError, "dtype="),
    (lambda x: np.multiply(x, x, out=np.zeros(3)), TypeError, "np.zeros_like"),
    (lambda x: np.add(x, np.ones(4)), ValueError, None),
    (lambda x: np.add(x, np.ones(3), out=x[:2]), ValueError, None),
    (lambda x: x.__iadd__(np.ones((2, 3))), ValueError, None),
    (lambda x: np.add(x, np.array(["a", "b", "c"])), TypeError, None),
])
def test_ufunc_errors(call, exc, match):
    x0 = np.array([1.0, 2.0, 3.0])

    def f(x, c):
        x *= 2.0            # recorded before the error: undone
        c *= 3.0            # an inactive write: undone too
        call(x)
    x, dx, c = x0.copy(), np.full(3, 0.5), x0.copy()
    with pytest.raises(exc, match=match):
        sad.autodiff(f, Duplicated(x, dx), Const(c))
    assert same_bits(x, x0) and same_bits(c, x0) and same_bits(dx, np.full(3, 0.5))


def test_ufunc_dtype_float64_is_accepted():
    def f(x, y):
        np.multiply(x, x, out=y, dtype=np.float64)
        y += np.add(x, 1.0, dtype="float64")
    check_all(f, dup(np.array([1.0, -2.0])), dup(np.zeros(2)))


def test_failed_out_into_inactive_memory_leaves_no_record():
    def f(x, c):
        try:
            np.add(c, np.ones(4), out=c)  # does not broadcast: numpy raises
        except ValueError:
            pass
        return x[0] * c[1]
    _, tape = sad.autodiff_split(f, dup(np.array([2.0])), Const(np.array([1.0, 5.0, 3.0])))
    assert len(tape) == 2                # the load and the product only
    tape.reverse()


def test_nondifferentiable_ufuncs_give_plain_results():
    def f(x, y):
        fl, sg, cmp = np.floor(x), np.sign(x), x > 0.5
        assert type(fl) is np.ndarray and type(sg) is np.ndarray and cmp.dtype == bool
        assert isinstance(np.isnan(x[0]), (bool, np.bool_))
        y[...] = x * fl + sg          # constants in the derivative
        np.floor(x[:1], out=y[:1])    # a constant written into active memory
    x = np.array([0.25, 1.5, -2.5])
    dx, dy = np.zeros(3), np.ones(3)
    sad.autodiff(f, Duplicated(x, dx), Duplicated(np.zeros(3), dy))
    assert dx.tolist() == [0.0, 1.0, -3.0]  # y[0] was overwritten by a constant
    check_all(f, dup(x), dup(np.zeros(3)))


@pytest.mark.parametrize("n", [7, 40_000], ids=["small", "lazy temporaries"])
@pytest.mark.parametrize("dtype, k", [(np.float64, 5e-324), (np.float64, 1e-39),
                                      (np.float32, 1e-39), (np.float32, 1e-46),
                                      (np.float32, 3e38), (np.float32, 2.0)])
def test_division_by_a_subnormal_constant_keeps_its_operand(dtype, k, n, monkeypatch):
    # Where 1/k overflows in the record's float type (1e-39: in float, not in
    # double; 1e-46 is 0 in float), the sweep's partials of x / k read x (not
    # linear): the tape must keep the temporary x alive (AddressSanitizer sees
    # a read of freed memory otherwise).  Elsewhere it need not.  The fast
    # path (_fast.rev) and Python's decide alike, in the record's float type.
    from shadowad.engines.rules import elementwise
    x = np.linspace(1.0, 2.0, n, dtype=dtype)
    with np.errstate(all="ignore"):
        overflows = not np.isfinite(dtype(1) / dtype(k))
    kept, taken = [], []
    fast_rev = elementwise._rev

    def counting(*args):
        r = fast_rev(*args)
        taken.append(r is not NotImplemented)
        return r

    def f(x):
        t = x * 3.0
        r = t / k
        primal = weakref.ref(t.p)
        del t
        gc.collect()
        kept.append(primal() is not None)
        return np.sum(r)

    def run():
        with np.errstate(over="ignore", divide="ignore"):
            return sad.autodiff(f, sad.Active(x))[0]
    monkeypatch.setattr(elementwise, "_rev", counting)
    g = run()
    assert taken == [True, True]  # x * 3.0, t / k
    monkeypatch.setattr(elementwise, "_rev", lambda *a: NotImplemented)
    assert same_bits(g, run()) and g.dtype == dtype
    assert kept == [overflows, overflows]


# --------------------------------------------------------------------------
# x * x of one traced array is recorded as np.square(x)

def test_product_of_an_array_with_itself_is_a_square():
    x = inputs(np.multiply, (40,), seed=37)[0]

    def f(x, y):
        y[...] = x * x
        t = x * 1.5
        y += t * t                  # a temporary times itself
        y *= y                      # in place
    check_all(f, dup(x), dup(np.zeros(40)))
    dx, v = np.ones(3), np.full(3, 0.1)  # (1 + 0.1) + 0.1 != 1 + 0.2
    sad.autodiff(lambda v: np.sum(v * v), Duplicated(v, dx))
    assert same_bits(dx, 1.0 + 2.0 * v)  # 2v added once, not v twice
    z = np.zeros(40)
    sad.autodiff(lambda x, z: z.__setitem__(Ellipsis, x * x), Const(x), Duplicated(z, np.zeros(40)))
    assert same_bits(z, x * x)      # the primal is numpy's, bit for bit


# --------------------------------------------------------------------------
# the fast paths (_fast.rev and rev_out, csrc/ext/reverse.c) against Python's,
# in float64 and float32 (every array of a call float32, numbers weak)

class Taken:
    """The answers of fast path `name` of elementwise (and of traced, which
    calls rev_out for x op= y): True where it took the call."""

    def __init__(self, monkeypatch, name):
        from shadowad.engines.reverse import traced
        from shadowad.engines.rules import elementwise
        self.calls = []
        fast_path = getattr(elementwise, name)

        def counting(*args):
            r = fast_path(*args)
            self.calls.append(r is not NotImplemented)
            return r
        for module in (elementwise, traced):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, counting)


def python_path_only(monkeypatch):
    from shadowad.engines.reverse import traced
    from shadowad.engines.rules import elementwise
    for module, name in ((elementwise, "_rev"), (elementwise, "_rev_out"), (traced, "_rev_out")):
        monkeypatch.setattr(module, name, lambda *a: NotImplemented)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=_name)
@pytest.mark.parametrize("ufunc", UFUNCS, ids=_name)
def test_fast_path_equals_the_python_path(ufunc, dtype, monkeypatch):
    """Every ufunc with traced, plain and number operands, out of place and
    in place: the fast paths' records sweep to the Python path's bits.  The
    power ops are Python's (x ** 2 is np.square), and np.float_power computes
    float32 in float64, Python's too (the sums after it are float64 calls)."""
    a, c = (inputs(ufunc, (3, 4), seed=41) * 2)[:2]
    a, c = a.astype(dtype), c[0].astype(dtype)

    def f(a, y):  # c a plain array (a Const argument is inactive memory: Python's)
        r = ufunc(a) if ufunc.nin == 1 else ufunc(a, c) + ufunc(c, a) + ufunc(a, 0.5)
        y += r
        ufunc(*([y] * ufunc.nin), out=y)
        return np.sum(y)

    def run():
        anns = [Duplicated(a.copy(), np.zeros_like(a)),
                Duplicated(np.zeros_like(a), np.zeros_like(a))]
        with np.errstate(all="ignore"):
            v = sad.autodiff(f, *anns, mode=sad.ReverseWithPrimal)[1]
        return [v] + [ann.val for ann in anns] + [ann.dval for ann in anns]
    rev, rev_out = Taken(monkeypatch, "_rev"), Taken(monkeypatch, "_rev_out")
    fast = run()
    python_path_only(monkeypatch)
    slow = run()
    for u, v in zip(fast, slow):
        assert same_bits(u, v) and np.asarray(u).dtype == np.asarray(v).dtype
    assert fast[2].dtype == dtype and fast[4].dtype == dtype
    pow_op = EW_OPS[ufunc] == lib.SAD_POW
    assert sum(rev.calls) == (1 if ufunc.nin == 1 else 5 - 3 * pow_op)
    promoted = ufunc is np.float_power and dtype is np.float32  # y += r casts float64 r
    assert rev_out.calls == ([False] * 3 if promoted else [True, not pow_op])


C64 = np.linspace(0.5, 1.5, 5)
# What numpy computes in another type than float32 (NEP 50: strong scalars and
# arrays of other dtypes promote; a traced scalar is a float64 value;
# np.float_power has no float32 loop), and a number numpy warns it cannot
# cast to float32: a float32 call, out of place or in place, leaves it to
# Python's path, before recording anything.
DECLINED32 = {
    "np.float64": (np.multiply, lambda s: np.float64(2.0)),
    "np.float32": (np.subtract, lambda s: np.float32(2.0)),
    "traced scalar": (np.multiply, lambda s: s),
    "float64 array": (np.divide, lambda s: C64),
    "int array": (np.add, lambda s: np.arange(1, 6)),
    "float_power": (np.float_power, lambda s: C64.astype(np.float32)),
    "float overflow": (np.multiply, lambda s: 1e39),
}


@pytest.mark.parametrize("case", DECLINED32)
def test_float32_calls_decline_what_numpy_promotes(case, monkeypatch):
    ufunc, operand = DECLINED32[case]
    rng = np.random.default_rng(43)
    a, y = (rng.uniform(0.5, 1.5, (3, 5)).astype(np.float32) for _ in range(2))

    def f(a, y, s):
        r = ufunc(a, operand(s))
        ufunc(y, operand(s), out=y)
        return np.sum(r) + np.sum(y)

    def run():
        anns = [Duplicated(a.copy(), np.zeros_like(a)), Duplicated(y.copy(), np.zeros_like(y)),
                Active(0.37)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grads, v = sad.autodiff(f, *anns, mode=sad.ReverseWithPrimal)
        return [v, grads[2], anns[0].dval, anns[1].val, anns[1].dval]
    rev, rev_out = Taken(monkeypatch, "_rev"), Taken(monkeypatch, "_rev_out")
    fast = run()
    assert rev.calls[0] is False and rev_out.calls == [False]  # (rev.calls[1]: the sum)
    python_path_only(monkeypatch)
    slow = run()
    for u, v in zip(fast, slow):
        assert same_bits(u, v) and np.asarray(u).dtype == np.asarray(v).dtype
    with np.errstate(all="ignore"):  # a traced scalar computes as np.float64
        want = ufunc(a, operand(np.float64(0.37)))
    assert np.asarray(fast[0]).dtype == want.dtype and fast[3].dtype == np.float32


def test_an_in_place_float32_call_without_a_float32_loop_is_declined():
    """numpy computes a ufunc without a float32 loop (np.float_power) in
    float64 and casts the value into a float32 out: the float32 kernels
    cannot stand for that, whatever op code comes with the call (rev_out has
    no result of numpy's to look at: it asks for the ufunc's loop)."""
    seen = []

    def f(y):
        seen.append(fast.rev_out(y, np.float_power, lib.SAD_MUL, y, 2.0))
        seen.append(fast.rev_out(y, np.multiply, lib.SAD_MUL, y, 2.0))
        return np.sum(y)
    sad.autodiff(f, Duplicated(np.ones(4, np.float32), np.zeros(4, np.float32)))
    assert seen[0] is NotImplemented and seen[1] is not NotImplemented


def _in_place_program(x, y, w):
    y *= x                      # traced operand
    y += 0.5                    # a number
    y[::2] -= np.sin(x[::2])    # strided views, a fresh temporary
    np.multiply(y, w, out=y)    # a plain array
    y /= 1.0 + x * x
    np.tanh(y, out=y)           # unary
    y[1:] += y[:-1]             # overlapping, shifted
    y /= x[2]                   # a traced scalar operand
    y -= x[1] * np.cos(y)       # a traced scalar times an array
    t = x * 2.0
    t += y                      # into a temporary (lazy when large: Python's path)
    return np.sum(t * t) + np.sum(y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=_name)
@pytest.mark.parametrize("n", [7, 5000], ids=["small", "lazy temporaries"])
def test_in_place_fast_path_equals_the_python_path(n, dtype, monkeypatch):
    rng = np.random.default_rng(38)
    x, y, w = (rng.uniform(lo, hi, n).astype(dtype) for lo, hi in ((0.5, 1.5), (-1, 1), (-1, 1)))

    def run():
        args = [Duplicated(x.copy(), np.zeros_like(x)), Duplicated(y.copy(), np.zeros_like(y)),
                Const(w)]
        sad.autodiff(_in_place_program, *args)
        return [a.val for a in args[:2]] + [a.dval for a in args[:2]]
    rev, rev_out = Taken(monkeypatch, "_rev"), Taken(monkeypatch, "_rev_out")
    fast = run()
    assert any(rev.calls)
    assert any(rev_out.calls) and not all(rev_out.calls)  # both paths taken
    python_path_only(monkeypatch)
    slow = run()
    for a, b in zip(fast, slow):
        assert a.dtype == dtype and same_bits(a, b)
    monkeypatch.undo()
    if n < 100:  # (finite differences over every element)
        check_all(_in_place_program, dup(x), dup(y), Const(w))


def test_in_place_fast_path_failures_leave_no_record():
    x = np.random.default_rng(39).uniform(0.5, 1.5, 6)

    def bad_shapes(x, y):
        y *= x                  # recorded
        y += x[:4]              # numpy refuses: the record is dropped, y intact
    y0 = np.arange(6.0)
    y, dy = y0.copy(), np.zeros(6)
    with pytest.raises(ValueError):
        sad.autodiff(bad_shapes, Duplicated(x.copy(), np.zeros(6)), Duplicated(y, dy))
    assert same_bits(y, y0) and (dy == 0).all()

    def into_active(x):
        x += 1.0                # an Active argument is read-only: Python's error
    with pytest.raises(TypeError, match="read-only"):
        sad.autodiff(into_active, Active(x.copy()))

    def into_broadcast(x, y):
        np.broadcast_to(y[:1], (6,))[...] += x   # numpy marks it read-only
    with pytest.raises(ValueError, match="read-only"):
        sad.autodiff(into_broadcast, Duplicated(x.copy(), np.zeros(6)),
                     Duplicated(y0.copy(), np.zeros(6)))
