"""float32 beyond the partials: a broadcast operand's adjoint (a sum over many
elements) as accurate as numpy's sum in every loop of the kernels; out= left
with numpy's own value of the call (forward mode), a ufunc's result broadcast
into out= and a Python bool divisor in the generic rule, as numpy does."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Duplicated

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
F32 = np.dtype(np.float32)


# name: (program of a and w, the argument's shape; None: w's).  Each takes
# another loop of the kernels: the general one (a product, a maximum), the
# linear one (a difference), and the linear one's columns (a bias broadcast
# over rows).
BROADCAST_PROGRAMS = {
    "product": (lambda a, w: np.sum(a * w), (1,)),                       # sum(w)
    "sum of maxima": (lambda a, w: np.sum(np.maximum(a, w)), (1,)),      # a above every w
    "centred": (lambda a, w: np.sum((a - a.mean()) * w), None),          # w - mean(w)
    "bias": (lambda a, w: np.sum((w.reshape(-1, 8) + a) * w.reshape(-1, 8)), (8,)),
    # the general loop over rows (a bias multiplied), rows that do not merge
    # (a strided view), three axes (a plane per outer index), and an operand
    # whose shadow is inside the other's
    "columns of a product": (lambda a, w: np.sum(w.reshape(-1, 8) * a), (8,)),
    "strided rows": (lambda a, w: np.sum(w.reshape(-1, 16)[:, ::2] * a), (1,)),
    "three axes": (lambda a, w: np.sum((w.reshape(-1, 10, 4) + a) * w.reshape(-1, 10, 4)),
                   (4,)),
    "an element of itself": (lambda a, w: np.sum((a[:1] + a[0]) * w[:1]) + np.sum(w * a[1]),
                             (2,)),
}


@pytest.mark.parametrize("program", sorted(BROADCAST_PROGRAMS))
def test_broadcast_adjoint_sum_is_as_accurate_as_numpys_sum(program):
    """The adjoint of an operand broadcast over n elements is a sum of n
    terms.  In float32 a sequential sum loses about n * 2**-24 of it; numpy's
    pairwise sum (which the generic rule used) keeps it to a few ulps."""
    n = 10**6
    w = np.random.default_rng(0).uniform(0.05, 0.15, n).astype(F32)
    f, shape = BROADCAST_PROGRAMS[program]
    x = (np.ones(shape, F32) if shape is not None
         else np.random.default_rng(1).standard_normal(n).astype(F32))
    g32 = sad.gradient(lambda a: f(a, w), x)[0]
    w64 = w.astype(np.float64)
    g64 = sad.gradient(lambda a: f(a, w64), x.astype(np.float64))[0]
    err = np.max(np.abs(g32.astype(np.float64) - g64)) / np.max(np.abs(g64))
    assert err < 1e-5, err


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ufunc", [np.expm1, np.exp2, np.cbrt], ids=lambda u: u.__name__)
def test_forward_out_with_negative_strides_is_numpys_value(ufunc, dtype):
    """numpy's loops of these ufuncs give values that depend on the layout
    (both operands reversed: its vector loop; an input reversed into a fresh
    output: another one).  Forward mode must leave numpy's value of the
    user's call in out."""
    def f(a, b):
        ufunc(b[::-1], out=a[::-1])
        return a
    b = np.linspace(0.1, 3, 64).astype(dtype)
    want = np.zeros(64, dtype)
    f(want, b.copy())
    a = np.zeros(64, dtype)
    sad.autodiff(f, Duplicated(a, np.zeros_like(a)), Duplicated(b.copy(), np.ones_like(b)),
                 mode=sad.Forward)
    assert np.array_equal(a.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_generic_rule_divides_by_a_false_constant_as_numpy(mode):
    """float32 operand, float64 out=: the generic rule.  numpy divides by
    False as by 0.0; so must the partials (an infinite derivative)."""
    x = np.array([1.0, -2.0, 0.5], F32)

    def f(a, o):
        np.divide(a, False, out=o)
        return np.sum(o)
    o, do = np.zeros(3), np.zeros(3)
    if mode == "reverse":
        dx = np.zeros_like(x)
        sad.autodiff(f, Duplicated(x.copy(), dx), Duplicated(o, do))
        assert np.all(np.isinf(dx))
    else:
        t = sad.autodiff(f, Duplicated(x.copy(), np.ones_like(x)), Duplicated(o, do),
                         mode=sad.Forward)
        assert np.isinf(t)


def test_generic_rule_broadcasts_its_result_into_out_as_numpy():
    """np.float_power of float32 takes the generic rule; numpy broadcasts a
    0-d result into a larger out (the float64 kernels do too)."""
    x = np.array([0.5, -1.5, 2.0, 3.0], F32)

    def f(a):
        np.float_power(a[0], 2.0, out=a[1:])
        return np.sum(a * a)
    want = x.copy()
    f(want)
    got, dx = x.copy(), np.zeros_like(x)
    sad.autodiff(f, Duplicated(got, dx))
    assert np.array_equal(got, want)
    assert np.allclose(dx, [2.5, 0.0, 0.0, 0.0])


def test_float64_twin_of_the_float_power_out_program_works():
    """The control of the test above: the same program in float64 runs."""
    x = np.array([0.5, -1.5, 2.0, 3.0])

    def f(a):
        np.float_power(a[0], 2.0, out=a[1:])
        return np.sum(a * a)
    dx = np.zeros_like(x)
    sad.autodiff(f, Duplicated(x, dx))
    assert np.allclose(dx, [2.5, 0.0, 0.0, 0.0])


def test_a_number_float32_cannot_hold_leaves_no_record():
    """numpy casts a Python number to float32 before it computes: 1e300
    overflows there, and under np.errstate(over="raise") nothing is written.
    The call must leave no record of a write that never happened (the
    gradient is that of the program without it)."""
    x = np.array([1.0, -2.0, 0.5, 3.0], F32)

    def f(a):
        with np.errstate(over="raise"):
            with pytest.raises(FloatingPointError):
                np.multiply(a, 1e300, out=a)
        return np.sum(a * a)
    dx = np.zeros_like(x)
    sad.autodiff(f, Duplicated(x.copy(), dx))
    assert np.array_equal(dx, 2 * x)
