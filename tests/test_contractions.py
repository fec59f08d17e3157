"""Products of arrays under the zero-factor convention
(shadowad/primitives/contractions.py), and the one derivative of every
product primitive where its operands hold 0, -0.0, inf and NaN: every engine,
fast paths and the generic derivation alike."""
import warnings

import numpy as np
import pytest

import shadowad as sad
from shadowad import BatchDuplicated, Duplicated
from shadowad.primitives.contractions import (cross_times, dot_times, inner_times, matmul_times,
                                              outer_times, vdot_times)
from shadowad.primitives.core import generic_only

inf, nan = np.inf, np.nan
EDGES = np.array([0.0, -0.0, inf, -inf, nan, 1.5, -2.0, 3.0])


def edgy(rng, shape):
    """Ordinary numbers with zeros, infinities and NaNs among them."""
    x = rng.standard_normal(shape)
    pick = rng.random(shape) < 0.4
    x[pick] = rng.choice(EDGES, size=int(pick.sum()))
    return x


def term(a, b):
    """One term under the convention, on Python floats."""
    return 0.0 if a == 0.0 or b == 0.0 else a * b


def reference_matmul(x, y):
    m, k = x.shape
    n = y.shape[1]
    r = np.zeros((m, n))
    with np.errstate(invalid="ignore"):
        for i in range(m):
            for j in range(n):
                s = 0.0
                for l in range(k):
                    s += term(x[i, l], y[l, j])
                r[i, j] = s
    return r


def same_specials(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return (a.shape == b.shape and np.array_equal(np.isnan(a), np.isnan(b))
            and np.array_equal(np.where(np.isinf(a), a, 0.0), np.where(np.isinf(b), b, 0.0))
            and np.allclose(a, b, rtol=1e-12, atol=0.0, equal_nan=True))


def without_zero_terms(a, b):
    """Where no term is zero against inf/NaN, the convention is IEEE's."""
    return not (((a == 0.0) & ~np.isfinite(b)).any() or ((b == 0.0) & ~np.isfinite(a)).any())


@pytest.mark.parametrize("seed", range(40))
def test_matmul_times_is_the_sum_of_the_conventions_terms(seed):
    rng = np.random.default_rng(seed)
    m, k, n = rng.integers(1, 5, size=3)
    x, y = edgy(rng, (m, k)), edgy(rng, (k, n))
    got = matmul_times(x, y)
    assert same_specials(got, reference_matmul(x, y)), (x, y, got)
    with np.errstate(invalid="ignore"):
        ieee = x @ y
    # the entries BLAS got without NaN are BLAS's, bit for bit
    keep = ~np.isnan(ieee)
    assert np.array_equal(got[keep], ieee[keep])


@pytest.mark.parametrize("seed", range(20))
def test_the_other_products_reduce_to_terms(seed):
    rng = np.random.default_rng(100 + seed)
    a, b = edgy(rng, (2, 3)), edgy(rng, (3, 4))
    assert same_specials(dot_times(a, b), reference_matmul(a, b))
    c = edgy(rng, (4, 3))
    assert same_specials(inner_times(a, c), reference_matmul(a, c.T))
    u, v = edgy(rng, 5), edgy(rng, 5)
    assert same_specials(vdot_times(u, v), reference_matmul(u[None, :], v[:, None])[0, 0])
    assert same_specials(outer_times(u, v), reference_matmul(u[:, None], v[None, :]))
    p, q = edgy(rng, (2, 3)), edgy(rng, (2, 3))
    want = np.stack([reference_matmul(p[:, 1:2], q[:, 2:3].T).diagonal()
                     - reference_matmul(p[:, 2:3], q[:, 1:2].T).diagonal(),
                     reference_matmul(p[:, 2:3], q[:, 0:1].T).diagonal()
                     - reference_matmul(p[:, 0:1], q[:, 2:3].T).diagonal(),
                     reference_matmul(p[:, 0:1], q[:, 1:2].T).diagonal()
                     - reference_matmul(p[:, 1:2], q[:, 0:1].T).diagonal()], axis=-1)
    with np.errstate(invalid="ignore"):
        assert same_specials(cross_times(p, q), want)


def test_finite_products_are_numpys_bit_for_bit():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((6, 5)), rng.standard_normal((5, 4))
    a[0, 0] = -0.0
    assert matmul_times(a, b).tobytes() == (a @ b).tobytes()
    assert dot_times(a, b).tobytes() == np.dot(a, b).tobytes()
    assert outer_times(a[0], b[0]).tobytes() == np.outer(a[0], b[0]).tobytes()
    assert cross_times(a[:3, :3], b[:3, :3]).tobytes() == np.cross(a[:3, :3], b[:3, :3]).tobytes()


def wsum(r):
    r = np.asarray(r) if not hasattr(r, "shape") else r
    w = (np.arange(1.0, np.size(r) + 1.0) / 4.0).reshape(np.shape(r))
    return np.sum(r * w)


PROGRAMS = {
    "matmul": lambda x: wsum(x[:2] @ x[1:].T),
    "matmul 1-D": lambda x: wsum(x[0] @ x.T) + wsum(x @ x[1]) + x[0] @ x[2],
    "matmul batched": lambda x: wsum(np.matmul(np.stack([x, x[::-1]]), x.T)),
    "dot": lambda x: wsum(np.dot(x, x.T)) + np.dot(x[0], x[1]),
    "inner": lambda x: wsum(np.inner(x, x[::-1])),
    "vdot": lambda x: np.vdot(x, x[::-1]) * 2.0,
    "outer": lambda x: wsum(np.outer(x[0], 2.0 * x[1])),
    "cross": lambda x: wsum(np.cross(x, x[::-1])),
    "matmul out=": lambda x: wsum(np.matmul(x, x.T, out=np.zeros_like(x))),
    "inv": lambda x: wsum(np.linalg.inv(x)),
}


def engines(f, x):
    n = x.size
    eye = tuple(np.eye(n).reshape((n,) + x.shape))
    got = {"reverse": sad.gradient(f, x.copy())[0],
           "forward": np.array([sad.autodiff(f, Duplicated(x.copy(), e), mode=sad.Forward)
                                for e in eye]).reshape(x.shape),
           "batch": np.array(sad.autodiff(f, BatchDuplicated(x.copy(), eye), mode=sad.Forward),
                             dtype=float).reshape(x.shape),
           "jacobian(F)": sad.jacobian(f, x.copy(), mode=sad.Forward),
           "jacobian(R)": sad.jacobian(f, x.copy(), mode=sad.Reverse)}
    with generic_only():
        got["generic reverse"] = sad.gradient(f, x.copy())[0]
        got["generic forward"] = sad.jacobian(f, x.copy(), mode=sad.Forward)
    return got


INPUTS = [np.array([[0.0, inf, 1.0], [nan, 0.0, 2.0], [1.0, -0.0, 3.0]]),
          np.array([[0.0, 0.0, 0.0], [inf, -inf, 0.0], [1.0, 2.0, 3.0]]),
          np.array([[inf, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]),
          np.array([[nan, 1.0, -0.0], [0.0, 2.0, 1.0], [-1.0, 0.0, inf]])]


@pytest.mark.parametrize("k", range(len(INPUTS)))
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_engine_gives_one_derivative(name, k):
    f, x = PROGRAMS[name], INPUTS[k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = engines(f, x)
    want = got["reverse"]
    for engine, g in got.items():
        assert same_specials(g, want), (name, engine, g.tolist(), want.tolist())


def test_the_reported_example():
    x = np.array([[0.0, inf, 1.0], [nan, 0.0, 2.0]])
    want = np.array([[nan, inf, 6.0], [nan, inf, 6.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for engine, g in engines(lambda x: np.sum(x @ x.T), x).items():
            assert np.array_equal(g, want, equal_nan=True), (engine, g)
