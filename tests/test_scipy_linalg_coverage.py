"""scipy.linalg inside f (#16 item 2): solve_triangular, cho_factor,
cho_solve, lu_factor, lu_solve and expm with check_rule, values scipy's bit
for bit, every keyword form, third derivatives through nested, a Gaussian
process likelihood written the ordinary way, the wrappers' cost and
identity outside f, the error of a name bound before shadowad was imported,
and shadowad without scipy (in subprocesses)."""
import inspect
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, Duplicated, Forward, Reverse
from shadowad.testing import check_rule, same_bits
from coverage_helpers import check_third_derivative, dup, weights, wsum, value  # noqa: F401
from shadowad.support.library_dispatch import dispatched

sl = pytest.importorskip("scipy.linalg")
rng = np.random.default_rng(1616)


N = 4
A = rng.standard_normal((N, N))
SPD = A @ A.T + N * np.eye(N)
TRI = np.triu(A) + 3.0 * np.eye(N)
B1, B2 = rng.standard_normal(N), rng.standard_normal((N, 2))


@pytest.mark.parametrize("b", [B1, B2], ids=["vector", "matrix"])
@pytest.mark.parametrize("trans", [0, 1, 2, "N", "T", "C"])
@pytest.mark.parametrize("lower,unit", [(False, False), (True, False), (False, True), (True, True)])
def test_solve_triangular(b, trans, lower, unit):
    a = TRI.T.copy() if lower else TRI

    def f(a, b):
        return wsum(sl.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit))
    check_rule(f, dup(a), dup(b))
    got = value(lambda a, b: sl.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit), a, b)
    assert same_bits(np.asarray(sad.primal(got)),
                     sl.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit))


def test_solve_triangular_reads_only_its_triangle():
    g, = sad.gradient(lambda a: wsum(sl.solve_triangular(a, B1, lower=True)), TRI.T.copy())
    assert same_bits(np.triu(g, 1), np.zeros((N, N)))
    g, = sad.gradient(lambda a: wsum(sl.solve_triangular(a, B1, unit_diagonal=True)), TRI)
    assert same_bits(np.tril(g), np.zeros((N, N)))


@pytest.mark.parametrize("lower", [False, True])
def test_cholesky(lower):
    check_rule(lambda a: wsum(sl.cholesky(a, lower=lower)), dup(SPD))
    got = value(lambda a: sl.cholesky(a, lower=lower), SPD)
    assert same_bits(np.asarray(sad.primal(got)), sl.cholesky(SPD, lower=lower))
    g, = sad.gradient(lambda a: wsum(sl.cholesky(a, lower=lower)), SPD)
    assert same_bits(np.triu(g, 1) if lower else np.tril(g, -1), np.zeros((N, N)))


@pytest.mark.parametrize("lower", [False, True])
def test_cho_factor_and_cho_solve(lower):
    check_rule(lambda a: wsum(sl.cho_factor(a, lower=lower)[0]), dup(SPD))
    for b in (B1, B2):
        check_rule(lambda a, b: wsum(sl.cho_solve(sl.cho_factor(a, lower=lower), b)), dup(SPD), dup(b))
        check_rule(lambda a, b: wsum(sl.cho_solve((a, lower), b)), dup(np.linalg.cholesky(SPD) if lower
                                                                   else np.linalg.cholesky(SPD).T), dup(b))
    c, low = value(lambda a: sl.cho_factor(a, lower=lower), SPD)
    assert low is lower
    assert same_bits(np.asarray(sad.primal(c)), sl.cho_factor(SPD, lower=lower)[0])
    x = value(lambda a: sl.cho_solve(sl.cho_factor(a, lower=lower), B2), SPD)
    assert same_bits(np.asarray(sad.primal(x)), sl.cho_solve(sl.cho_factor(SPD, lower=lower), B2))


def test_cho_solve_with_plain_factor_and_traced_rhs():
    cf = sl.cho_factor(SPD)
    g, = sad.gradient(lambda b: wsum(sl.cho_solve(cf, b)), B1)
    np.testing.assert_allclose(g, np.linalg.solve(SPD, weights(N)), rtol=1e-12)


@pytest.mark.parametrize("trans", [0, 1, 2])
def test_lu_factor_and_lu_solve(trans):
    check_rule(lambda a: wsum(sl.lu_factor(a)[0]), dup(A))
    for b in (B1, B2):
        check_rule(lambda a, b: wsum(sl.lu_solve(sl.lu_factor(a), b, trans=trans)), dup(A), dup(b))
    lu, piv = value(sl.lu_factor, A)
    elu, epiv = sl.lu_factor(A)
    assert same_bits(np.asarray(sad.primal(lu)), elu) and same_bits(piv, epiv)


def test_lu_solve_refuses_traced_pivots():
    with pytest.raises(TypeError, match="pivots"):
        sad.gradient(lambda a: np.sum(sl.lu_solve((a, a[0]), B1)), A)


INV_TAKES_ASSUME_A = "assume_a" in inspect.signature(dispatched(sl.inv)).parameters
ASSUME = [None, "gen", "sym", "her", "pos", "upper triangular", "lower triangular", "diagonal"]


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("assume_a", ASSUME, ids=str)
def test_solve(assume_a, lower):
    a = SPD if assume_a in ("sym", "her", "pos") else A + N * np.eye(N)
    for b in (B1, B2):
        check_rule(lambda a, b: wsum(sl.solve(a, b, assume_a=assume_a, lower=lower)), dup(a), dup(b))
        got = value(lambda a, b: sl.solve(a, b, assume_a=assume_a, lower=lower), a, b)
        assert same_bits(np.asarray(sad.primal(got)), sl.solve(a, b, assume_a=assume_a, lower=lower))
    check_rule(lambda a, b: wsum(sl.solve(a, b, transposed=True)), dup(a), dup(B2))


def test_solve_reads_what_assume_a_says():
    g, = sad.gradient(lambda a: wsum(sl.solve(a, B1, assume_a="pos")), SPD)
    assert same_bits(np.tril(g, -1), np.zeros((N, N)))   # the upper triangle, lower=False
    g, = sad.gradient(lambda a: wsum(sl.solve(a, B1, assume_a="diagonal")), SPD)
    assert same_bits(g - np.diag(np.diag(g)), np.zeros((N, N)))
    with pytest.raises(NotImplementedError, match="assume_a"):
        sad.gradient(lambda a: np.sum(sl.solve(a, B1, assume_a="banded")), SPD)
    with pytest.raises(NotImplementedError, match="transposed"):
        sad.gradient(lambda a: np.sum(sl.solve(a, B1, assume_a="pos", transposed=True)), SPD)


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("assume_a", [None, "gen", "sym", "pos"], ids=str)
def test_inv(assume_a, lower):
    if (assume_a is not None or lower) and not INV_TAKES_ASSUME_A:
        pytest.skip("this scipy's inv has no assume_a/lower (scipy >= 1.17)")
    a = SPD if assume_a in ("sym", "pos") else A
    kw = dict(assume_a=assume_a, lower=lower) if INV_TAKES_ASSUME_A else {}
    check_rule(lambda a: wsum(sl.inv(a, **kw)), dup(a))
    got = value(lambda a: sl.inv(a, **kw), a)
    assert same_bits(np.asarray(sad.primal(got)), sl.inv(a, **kw))


def test_det():
    check_rule(lambda a: sl.det(a) + wsum(sl.det(np.stack([a, 2.0 * a]))), dup(A))
    assert same_bits(np.asarray(sad.primal(value(sl.det, A))), np.asarray(sl.det(A)))
    # singular: the cofactors, without division
    g, = sad.gradient(lambda a: sl.det(a), np.array([[1.0, 2.0], [2.0, 4.0]]))
    assert same_bits(g, np.array([[4.0, -2.0], [-2.0, 1.0]]))


def test_expm():
    check_rule(lambda a: wsum(sl.expm(a * 0.5)), dup(A))
    check_rule(lambda a: wsum(sl.expm(np.stack([a, a.T]) * 0.3)), dup(A))
    got = value(lambda a: sl.expm(a), A)
    assert same_bits(np.asarray(sad.primal(got)), sl.expm(A))
    # exp(diag(d)) = diag(exp(d)): its derivative along diagonal tangents
    d = np.array([0.1, -0.3, 0.7])
    g, = sad.gradient(lambda a: np.trace(sl.expm(a)), np.diag(d))
    np.testing.assert_allclose(g, np.diag(np.exp(d)), rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------
# a user's routine: the negative log likelihood of a Gaussian process, with
# np.linalg.cholesky and scipy.linalg.cho_solve, fitted on its parameters

X = np.linspace(0.0, 3.0, 7)
Y = np.sin(X) + 0.1 * rng.standard_normal(7)


def gp_nll_factor(theta):
    ell, sigma, noise = np.exp(theta[0]), np.exp(theta[1]), np.exp(theta[2])
    d = X[:, None] - X[None, :]
    k = sigma ** 2 * np.exp(-0.5 * d ** 2 / ell ** 2) + noise ** 2 * np.eye(len(X))
    cf = sl.cho_factor(k, lower=True)
    alpha = sl.cho_solve(cf, Y)
    logdet = np.sum(np.log(np.diagonal(cf[0])))
    return 0.5 * Y @ alpha + logdet


def gp_nll_cholesky(theta):
    ell, sigma, noise = np.exp(theta[0]), np.exp(theta[1]), np.exp(theta[2])
    d = X[:, None] - X[None, :]
    k = sigma ** 2 * np.exp(-0.5 * d ** 2 / ell ** 2) + noise ** 2 * np.eye(len(X))
    L = np.linalg.cholesky(k)
    alpha = sl.cho_solve((L, True), Y)
    return 0.5 * Y @ alpha + np.sum(np.log(np.diagonal(L)))


def gp_nll_triangular(theta):
    ell, sigma, noise = np.exp(theta[0]), np.exp(theta[1]), np.exp(theta[2])
    d = X[:, None] - X[None, :]
    k = sigma ** 2 * np.exp(-0.5 * d ** 2 / ell ** 2) + noise ** 2 * np.eye(len(X))
    L = sl.cholesky(k, lower=True)
    w = sl.solve_triangular(L, Y, lower=True)
    return 0.5 * w @ w + np.sum(np.log(np.diagonal(L)))


@pytest.mark.parametrize("fn", [gp_nll_factor, gp_nll_cholesky, gp_nll_triangular])
def test_gaussian_process_likelihood(fn):
    theta = np.array([0.2, -0.1, -1.5])
    check_rule(fn, dup(theta))
    g, = sad.gradient(fn, theta)
    t = sad.autodiff(fn, Duplicated(theta.copy(), np.array([1.0, 0.0, 0.0])), mode=Forward)
    np.testing.assert_allclose(t, g[0], rtol=1e-12)
    # the same likelihood through numpy alone
    gn, = sad.gradient(lambda th: fn(th) * 0.0 + gp_nll_numpy(th), theta)
    np.testing.assert_allclose(g, gn, rtol=1e-10)


def gp_nll_numpy(theta):
    ell, sigma, noise = np.exp(theta[0]), np.exp(theta[1]), np.exp(theta[2])
    d = X[:, None] - X[None, :]
    k = sigma ** 2 * np.exp(-0.5 * d ** 2 / ell ** 2) + noise ** 2 * np.eye(len(X))
    return 0.5 * Y @ np.linalg.solve(k, Y) + 0.5 * np.linalg.slogdet(k)[1]


# --------------------------------------------------------------------------
# higher derivatives through nested

F, R = Forward, Reverse


def _m(x):
    return np.reshape(x, (2, 2)) + 2.0 * np.eye(2)


PROGRAMS = {
    "solve_triangular": lambda x: np.sum(sl.solve_triangular(_m(x), x[:2] ** 2) ** 2),
    "cholesky": lambda x: np.sum(sl.cholesky(_m(x) @ _m(x).T) ** 3),
    "cho": lambda x: np.sum(sl.cho_solve(sl.cho_factor(_m(x) @ _m(x).T), x[2:]) ** 2)
    + np.sum(sl.cho_factor(_m(x) @ _m(x).T, lower=True)[0] ** 3),
    "lu": lambda x: np.sum(sl.lu_solve(sl.lu_factor(_m(x)), x[:2]) ** 2)
    + np.sum(sl.lu_factor(_m(x))[0] ** 3),
    "expm": lambda x: np.sum(sl.expm(_m(x) * 0.3) ** 2),
    "solve_inv_det": lambda x: np.sum(sl.solve(_m(x), x[:2], assume_a="pos") ** 2)
    + np.sum(sl.inv(_m(x)) ** 3) + sl.det(_m(x)) ** 3,
}


@pytest.mark.parametrize("modes", [(R, R, R), (F, R, F), (F, F, F)], ids=["RRR", "FRF", "FFF"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_third_derivatives_through_nested(name, modes):
    check_third_derivative(PROGRAMS[name], modes)


# --------------------------------------------------------------------------
# the wrappers outside f, and the namespace

def test_wrappers_are_scipys_functions_outside_f():
    for name in ("solve", "inv", "det", "solve_triangular", "cholesky", "cho_factor", "cho_solve", "lu_factor", "lu_solve", "expm"):
        fn = getattr(sl, name)
        assert fn.__name__ == name and fn.__doc__ == dispatched(fn).__doc__
        assert dispatched(fn) is not fn and dispatched(fn).__module__.startswith("scipy.linalg")
    assert same_bits(sl.cho_solve(sl.cho_factor(SPD), B1),
                     dispatched(sl.cho_solve)(dispatched(sl.cho_factor)(SPD), B1))
    with pytest.raises(np.linalg.LinAlgError):
        sl.cho_factor(-np.eye(2))
    assert pickle.loads(pickle.dumps(sl.cho_solve)) is sl.cho_solve


def _run(code):
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_importing_shadowad_does_not_import_scipy_and_a_later_import_is_wrapped():
    out = _run("""
        import sys
        import numpy as np
        import scipy.special  # shadowad imports it (its ufuncs); some scipy imports linalg too
        had = 'scipy.linalg' in sys.modules
        import shadowad as sad
        print(('scipy.linalg' in sys.modules) != had)  # shadowad itself did not import it
        from scipy.linalg import cho_solve, cho_factor
        g, = sad.gradient(lambda a: np.sum(cho_solve(cho_factor(a), np.ones(2))), 2.0 * np.eye(2))
        print(np.allclose(g, -0.25 * np.eye(2) - np.triu(np.full((2, 2), 0.5), 1)))  # upper read
    """)
    assert out.split() == ["False", "True"]


def test_a_name_bound_before_shadowad_says_so():
    out = _run("""
        import numpy as np
        from scipy.linalg import cho_solve, cho_factor
        import shadowad as sad
        try:
            sad.gradient(lambda a: np.sum(cho_solve(cho_factor(a), np.ones(2))), np.eye(2))
        except TypeError as e:
            print(e)
    """)
    assert "bound before shadowad was imported" in out and "scipy.linalg.cho_factor" in out
    assert "from scipy.linalg import cho_factor" in out


def test_shadowad_without_scipy():
    out = _run("""
        import sys
        sys.modules['scipy'] = None   # scipy cannot be imported
        import numpy as np
        import shadowad as sad
        from shadowad.primitives import scipy_linalg
        print(scipy_linalg.AVAILABLE)
        g, = sad.gradient(lambda a: np.sum(np.linalg.cholesky(a)) + np.linalg.norm(a), np.eye(2) * 2.0)
        print(np.isfinite(g).all())
        from shadowad.support.naming import qualified_name
        from shadowad.primitives.core import registered
        print(any(qualified_name(f).startswith('scipy') for f, _ in registered()))
    """)
    assert out.split() == ["False", "True", "False"]
