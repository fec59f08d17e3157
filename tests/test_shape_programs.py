"""Programs as users write them with the shape-and-selection functions of
issue #16 (np.roll, np.add.at, np.diag, np.pad, np.sort, np.kron, ...),
differentiated as written: check_rule on each, and second derivatives through
the nested engine against finite differences of first derivatives."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Const, Duplicated, Forward, Reverse
from shadowad.testing import check_rule

RNG = np.random.default_rng(1616)


def advect(u0, c):
    """Upwind advection on a periodic grid, written with np.roll."""
    u = u0.copy()
    for _ in range(20):
        u -= c * (u - np.roll(u, 1))
    return np.sum(u * u * np.linspace(0.5, 1.5, u.size))


def fem_poisson(k, f):
    """1-D finite elements: element matrices scattered with np.add.at, the
    Dirichlet rows cut off with slicing, the energy of the solution."""
    n = k.size + 1
    K = np.zeros_like(k, shape=(n, n))
    for e in range(k.size):
        idx = np.array([e, e + 1])
        np.add.at(K, (idx[:, None], idx[None, :]), k[e] * np.array([[1.0, -1.0], [-1.0, 1.0]]))
    rhs = np.zeros_like(k, shape=(n,))
    np.add.at(rhs, np.repeat(np.arange(n - 1), 2) + np.tile([0, 1], n - 1), np.repeat(f, 2) * 0.5)
    u = np.linalg.solve(K[1:-1, 1:-1], rhs[1:-1])
    return np.dot(u, rhs[1:-1])


def tridiagonal_energy(d, e):
    """A tridiagonal matrix built with np.diag, its solve, and a quadratic form
    through np.tril / np.triu parts."""
    A = np.diag(d) + np.diag(e, 1) + np.diag(e, -1)
    b = np.linspace(1.0, 2.0, d.size)
    x = np.linalg.solve(A, b)
    return np.dot(x, b) + np.sum(np.tril(A, -1) ** 2) - np.sum(np.triu(A) * 0.1)


def trimmed_mean(x):
    """The mean of the middle of the sorted samples (robust statistics)."""
    s = np.sort(x)
    m = x.size // 5
    return np.mean(s[m:-m])


def smooth_image(img):
    """Edge-padded 3x3 box blur, then a kron upsampling and a reflected roll."""
    p = np.pad(img, 1, mode="edge")
    h, w = img.shape
    blur = sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
    up = np.kron(blur, np.ones((2, 2)))
    return np.sum((up - np.roll(np.pad(up, 2, mode="reflect")[2:-2, 2:-2], 1, axis=0)) ** 2)


def histogram_loss(w):
    """Weighted scatter into bins, and products of per-bin factors."""
    bins = np.array([0, 2, 1, 2, 2, 0, 3, 1])
    h = np.zeros_like(w)[:4]
    np.add.at(h, bins, w * w)
    g = np.ones_like(w)[:4]
    np.multiply.at(g, bins, 1.0 + 0.1 * w)
    return np.sum(h * g)


def writes_through_views(x):
    """ufunc.at, np.put and x.sort() on views write into their base."""
    y = x * 1.0
    v = y[1:]
    np.add.at(v, [0, 0, 2], x[:3] ** 2)
    np.multiply.at(v[::2], [1, 1], x[3:5])
    np.put(v, [0], x[5] * x[0])
    v.sort()
    return np.sum(y * y * np.arange(1.0, 7.0))


PROGRAMS = {
    "views": (writes_through_views, lambda: (Duplicated(RNG.standard_normal(6), np.zeros(6)),)),
    "advect": (advect, lambda: (Duplicated(RNG.standard_normal(16), np.zeros(16)), Active(0.3))),
    "fem_poisson": (fem_poisson, lambda: (Duplicated(1.0 + RNG.random(6), np.zeros(6)),
                                          Duplicated(RNG.standard_normal(6), np.zeros(6)))),
    "tridiagonal": (tridiagonal_energy, lambda: (Duplicated(4.0 + RNG.random(5), np.zeros(5)),
                                                 Duplicated(RNG.standard_normal(4), np.zeros(4)))),
    "trimmed_mean": (trimmed_mean, lambda: (Duplicated(RNG.standard_normal(10), np.zeros(10)),)),
    "smooth_image": (smooth_image, lambda: (Duplicated(RNG.standard_normal((4, 5)),
                                                       np.zeros((4, 5))),)),
    "histogram": (histogram_loss, lambda: (Duplicated(RNG.standard_normal(8), np.zeros(8)),)),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_check_rule(name):
    f, args = PROGRAMS[name]
    check_rule(f, *args())


@pytest.mark.parametrize("name", ["advect", "fem_poisson", "histogram", "smooth_image", "views"])
@pytest.mark.parametrize("outer,inner", [(Forward, Reverse), (Reverse, Reverse),
                                         (Reverse, Forward), (Forward, Forward)],
                         ids=["F-over-R", "R-over-R", "R-over-F", "F-over-F"])
def test_program_second_derivative_along_a_direction(name, outer, inner):
    f, args = PROGRAMS[name]
    x0 = args()[0].val.copy()
    v = np.random.default_rng(7).standard_normal(x0.shape)
    rest = [a.val for a in args()[1:]]

    def first(s):  # d/ds f(x0 + s v) by the inner mode
        x = x0 + s * v
        if inner is Reverse:
            g = sad.autodiff(f, Active(x), *map(Const, rest))[0]
            return np.sum(g * v)
        return sad.autodiff(f, Duplicated(x, v.copy()), *map(Const, rest), mode=Forward)

    if outer is Reverse:
        got = sad.autodiff(first, Active(0.1))[0]
    else:
        got = sad.autodiff(first, Duplicated(0.1, 1.0), mode=Forward)
    h = 1e-5
    fd = (first(0.1 + h) - first(0.1 - h)) / (2 * h)
    np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-7)
