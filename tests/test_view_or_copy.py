"""A function's result is a view of its input exactly where numpy's is:
write into the result, then read the input.  numpy decides whether the
input changes; every engine must agree (a view where numpy copies let a
write reach the input, and its derivative; found by an outside tester for
np.tile and np.ravel)."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Duplicated

FUNCTIONS = {
    "tile rows": lambda x: np.tile(x[0], (2, 1)),
    "tile column": lambda x: np.tile(x[:, :1], (1, 3)),
    "tile once": lambda x: np.tile(x, (1, 1)),
    "tile a slice": lambda x: np.tile(x[:1], 2),
    "tile 3-d": lambda x: np.tile(x, (2, 1, 1)),
    "ravel reversed": lambda x: x[::-1].ravel(),
    "ravel strided": lambda x: np.ravel(x[:, ::2]),
    "ravel column": lambda x: x[:, 1:2].ravel(),
    "ravel F": lambda x: np.ravel(x, order="F"),
    "ravel K transposed": lambda x: np.ravel(x.T, order="K"),
    "ravel contiguous": lambda x: x.ravel(),
    "reshape reversed": lambda x: x[::-1].reshape(-1),
    "flatten": lambda x: x.flatten(),
    "repeat": lambda x: np.repeat(x, 1, axis=0),
    "pad 0": lambda x: np.pad(x, 0),
    "roll 0": lambda x: np.roll(x, 0),
    "rot90": lambda x: np.rot90(x),
    "rot90 of a row": lambda x: np.rot90(x[:1]).ravel(),
    "fliplr": lambda x: np.fliplr(x),
    "split": lambda x: np.split(x, 2, axis=1)[0],
    "diag of a matrix": lambda x: np.diag(x) * 1.0,
    "tril": lambda x: np.tril(x),
    "sort": lambda x: np.sort(x),
    "diff n=0": lambda x: np.diff(x, 0),
    "astype copy=False": lambda x: x.astype(np.float64, copy=False),
    "squeeze": lambda x: np.squeeze(x[:1]),
    "transpose": lambda x: x.T,
}
W = np.arange(1.0, 13.0).reshape(3, 4)


def program(fn):
    def f(x):
        r = fn(x)
        r[...] = 9.0
        return np.sum(x * W)
    return f


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_a_write_into_the_result_reaches_the_input_as_in_numpy(name):
    f = program(FUNCTIONS[name])
    x0 = np.arange(12.0).reshape(3, 4) * 0.5 - 1.0
    xn = x0.copy()
    want = f(xn)
    # the gradient: W where the input kept its value, 0 where the write replaced it
    grad = np.where(xn == x0, W, 0.0) if not np.array_equal(xn, x0) else W
    x, dx = x0.copy(), np.zeros((3, 4))
    _, got = sad.autodiff(f, Duplicated(x, dx), mode=sad.ReverseWithPrimal)
    assert np.array_equal(x, xn) and got == want
    np.testing.assert_array_equal(dx, grad)
    x = x0.copy()
    t, got = sad.autodiff(f, Duplicated(x, np.ones((3, 4))), mode=sad.ForwardWithPrimal)
    assert np.array_equal(x, xn) and got == want and t == np.sum(grad)

    def outer(s):  # the nested engine: the input is memory of the nested call
        g = np.zeros_like(s, shape=(3, 4))
        sad.autodiff(lambda y: f(y) * s[0], Duplicated(np.zeros_like(s, shape=(3, 4)) + x0, g))
        return np.sum(g)
    assert sad.jacobian(outer, np.ones(1))[0] == np.sum(grad)
