"""Routines written the ordinary way, as a user would (in place, with the
numpy and scipy functions people reach for), differentiated as they are.

Each runs shadowad.testing.check_rule (finite differences, primal restored
bit for bit, shadows accumulated once, forward against reverse); some are
also compared with a closed form or a second spelling, and a few go through
nested differentiation (Hessian-vector products).
"""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Duplicated, Forward
from shadowad.testing import check_rule

RNG = np.random.default_rng(2026)


def dup(x):
    return Duplicated(np.array(x, dtype=float), np.zeros(np.shape(x)))


def spd(n, seed=0):
    m = np.random.default_rng(seed).standard_normal((n, n))
    return m @ m.T + n * np.eye(n)


def hvp(f, x, v):
    """Forward over reverse: the Hessian of f at x times v."""
    def grad(y):
        g = np.zeros_like(y)
        sad.autodiff(f, Duplicated(np.zeros_like(y) + y, g))
        return g
    return sad.autodiff(grad, Duplicated(x.copy(), v.copy()), mode=Forward)


# --------------------------------------------------------------------------
# 1. in-place Cholesky, log-determinant from np.diag

def cholesky_logdet(a):
    n = a.shape[0]
    L = np.zeros_like(a)
    for j in range(n):
        L[j, j] = np.sqrt(a[j, j] - np.dot(L[j, :j], L[j, :j]))
        L[j + 1:, j] = (a[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return 2.0 * np.sum(np.log(np.diag(L)))


def test_cholesky_logdet():
    a = spd(6)
    check_rule(cholesky_logdet, dup(a))
    g = sad.gradient(cholesky_logdet, a.copy())[0]
    # the loop reads the lower triangle only: d logdet = tril of 2 inv(A) - diag
    inv = np.linalg.inv(a)
    np.testing.assert_allclose(g, np.tril(2.0 * inv) - np.diag(np.diag(inv)), rtol=1e-10)


# --------------------------------------------------------------------------
# 2. upwind advection with np.roll

def advect(u, c, w):
    for _ in range(20):
        u -= c * (u - np.roll(u, 1))
    return np.sum(w * u * u)


def test_upwind_advection():
    x = np.linspace(0.0, 1.0, 32, endpoint=False)
    u0 = np.exp(-40.0 * (x - 0.3) ** 2)
    check_rule(lambda u, c: advect(u, c, 1.0 + x), dup(u0), sad.Active(0.4))


# --------------------------------------------------------------------------
# 3. finite-element assembly with np.add.at, then a solve

def fem_energy(nodes, q):
    n = len(nodes)
    elems = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    h = nodes[1:] - nodes[:-1]
    K = np.zeros_like(nodes, shape=(n, n))
    F = np.zeros_like(nodes)
    k = 1.0 / h
    for a, b, s in ((0, 0, 1.0), (1, 1, 1.0), (0, 1, -1.0), (1, 0, -1.0)):
        np.add.at(K, (elems[:, a], elems[:, b]), s * k)
    fl = 0.5 * h * q[:-1] + 0.5 * h * q[1:]
    np.add.at(F, elems[:, 0], 0.5 * fl)
    np.add.at(F, elems[:, 1], 0.5 * fl)
    K[0, :] = 0.0
    K[0, 0] = 1.0
    F[0] = 0.0
    u = np.linalg.solve(K, F)
    return F @ u


def test_fem_assembly():
    nodes = np.sort(RNG.random(9)) + np.arange(9.0)
    q = 1.0 + RNG.random(9)
    check_rule(fem_energy, dup(nodes), dup(q))


# --------------------------------------------------------------------------
# 4. einsum bilinear forms and a linear model

def einsum_model(x, A, W, X):
    e = np.einsum("i,ij,j->", x, A, x)
    batch = np.einsum("bi,ij,bj->b", X, A, X)
    y = np.einsum("bi,ij->bj", X, W, optimize=True)
    return e + np.sum(batch ** 2) + np.einsum("ij,ij", y, y)


def test_einsum_model():
    x, A, W, X = RNG.standard_normal(4), RNG.standard_normal((4, 4)), \
        RNG.standard_normal((4, 3)), RNG.standard_normal((5, 4))
    check_rule(einsum_model, dup(x), dup(A), dup(W), dup(X))


# --------------------------------------------------------------------------
# 5. a Gaussian process likelihood: np.linalg.cholesky and scipy's cho_solve,
#    fitted with scipy.optimize

def gp_nll(theta, t, y):
    ell, s2, noise = np.exp(theta[0]), np.exp(theta[1]), np.exp(theta[2])
    d = t[:, None] - t[None, :]
    K = s2 * np.exp(-0.5 * d * d / (ell * ell)) + noise * np.eye(len(t))
    L = np.linalg.cholesky(K)
    import scipy.linalg
    alpha = scipy.linalg.cho_solve((L, True), y)
    return 0.5 * y @ alpha + np.sum(np.log(np.diag(L))) + 0.5 * len(t) * np.log(2 * np.pi)


def test_gaussian_process_fit():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    t = np.linspace(0.0, 5.0, 12)
    y = np.sin(t) + 0.1 * RNG.standard_normal(12)
    theta0 = np.array([0.0, 0.0, -2.0])
    check_rule(lambda th: gp_nll(th, t, y), dup(theta0))

    def fun(th):
        g = np.zeros(3)
        (val,) = sad.autodiff(lambda th: gp_nll(th, t, y), Duplicated(th.copy(), g),
                              mode=sad.ReverseWithPrimal)[-1:]
        return val, g
    res = scipy_optimize.minimize(fun, theta0, jac=True, method="L-BFGS-B")
    assert res.success and res.fun < gp_nll(theta0, t, y)


# --------------------------------------------------------------------------
# 6. an MLP with softmax cross-entropy (scipy.special.logsumexp)

def mlp_loss(W1, b1, W2, X, labels):
    from scipy.special import logsumexp
    h = np.tanh(X @ W1 + b1)
    logits = h @ W2
    lse = logsumexp(logits, axis=1)
    picked = np.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    return np.mean(lse - picked)


def test_mlp_cross_entropy():
    pytest.importorskip("scipy.special")
    X = RNG.standard_normal((8, 5))
    labels = RNG.integers(0, 3, 8)
    W1, b1, W2 = RNG.standard_normal((5, 6)), RNG.standard_normal(6), RNG.standard_normal((6, 3))
    check_rule(lambda W1, b1, W2: mlp_loss(W1, b1, W2, X, labels), dup(W1), dup(b1), dup(W2))


# --------------------------------------------------------------------------
# 7. a Kalman filter's log-likelihood, state and covariance updated in place

def kalman_loglik(q, F, H, zs):
    n = F.shape[0]
    x = np.zeros_like(q, shape=n)
    P = np.eye(n) + np.zeros_like(q, shape=(n, n))
    Q = np.diag(q)
    R = 0.1 * np.eye(H.shape[0])
    ll = 0.0
    for z in zs:
        x[...] = F @ x
        P[...] = F @ P @ F.T + Q
        S = H @ P @ H.T + R
        innov = z - H @ x
        K = P @ H.T @ np.linalg.inv(S)
        x += K @ innov
        P[...] = (np.eye(n) - K @ H) @ P
        ll = ll - 0.5 * (np.linalg.slogdet(S)[1] + innov @ np.linalg.solve(S, innov))
    return ll


def test_kalman_filter():
    F = np.array([[1.0, 0.1], [0.0, 1.0]])
    H = np.array([[1.0, 0.0]])
    zs = np.cumsum(RNG.standard_normal((10, 1)) * 0.3, axis=0)
    check_rule(lambda q: kalman_loglik(q, F, H, zs), dup(np.array([0.05, 0.02])))


# --------------------------------------------------------------------------
# 8. successive over-relaxation in place, stopped on the residual norm

def sor(A, b, omega=1.2):
    x = np.zeros_like(b)
    n = len(b)
    for _ in range(60):
        for i in range(n):
            s = b[i] - A[i, :i] @ x[:i] - A[i, i + 1:] @ x[i + 1:]
            x[i] = (1.0 - omega) * x[i] + omega * s / A[i, i]
        if np.linalg.norm(A @ x - b) < 1e-13:
            break
    return np.sum(x * np.arange(1.0, n + 1))


def test_sor():
    A, b = spd(5, seed=3), RNG.standard_normal(5)
    check_rule(sor, dup(A), dup(b))
    gb = sad.gradient(sor, A.copy(), b.copy())[1]
    np.testing.assert_allclose(gb, np.linalg.solve(A.T, np.arange(1.0, 6)), rtol=1e-8)


# --------------------------------------------------------------------------
# 9. RK4 of a predator-prey model, state updated in place, np.diff of the path

def lotka_volterra(p, u0):
    def rhs(u):
        return np.stack([p[0] * u[0] - p[1] * u[0] * u[1], p[2] * u[0] * u[1] - p[3] * u[1]])
    u = np.zeros_like(p, shape=2) + u0
    dt = 0.05
    path = np.zeros_like(p, shape=(41, 2))
    path[0] = u
    for k in range(40):
        k1 = rhs(u)
        k2 = rhs(u + 0.5 * dt * k1)
        k3 = rhs(u + 0.5 * dt * k2)
        k4 = rhs(u + dt * k3)
        u += dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        path[k + 1] = u
    return np.sum(np.diff(path, axis=0) ** 2) + np.sum(u)


def test_rk4_predator_prey():
    check_rule(lotka_volterra, dup([1.1, 0.4, 0.1, 0.4]), dup([2.0, 1.0]))


# --------------------------------------------------------------------------
# 10. a bond pricer: discount factors by np.cumprod, duration by np.average

def bond(rates, coupon, dt=0.5):
    disc = np.cumprod(1.0 / (1.0 + rates * dt))
    cash = np.full_like(rates, coupon * dt)
    cash[-1] += 1.0
    pv = cash * disc
    times = dt * np.arange(1, len(rates) + 1)
    duration = np.average(times, weights=pv)
    return np.sum(pv) + 0.01 * duration


def test_bond_pricer():
    check_rule(bond, dup(0.03 + 0.002 * np.arange(10)), sad.Active(0.05))


# --------------------------------------------------------------------------
# 11. a spring network relaxed by gradient steps; forces by np.add.at

def springs(x, edges, rest):
    def forces(x):
        d = x[edges[:, 0]] - x[edges[:, 1]]
        length = np.linalg.norm(d, axis=1)
        f = ((length - rest) / length)[:, None] * d
        out = np.zeros_like(x)
        np.add.at(out, edges[:, 0], -f)
        np.add.at(out, edges[:, 1], f)
        return out
    for _ in range(5):
        x += 0.1 * forces(x)
    d = x[edges[:, 0]] - x[edges[:, 1]]
    return 0.5 * np.sum((np.linalg.norm(d, axis=1) - rest) ** 2)


def test_spring_network():
    x = RNG.standard_normal((6, 2))
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 0], [0, 3], [1, 4]])
    check_rule(lambda x: springs(x, edges, np.full(len(edges), 1.0)), dup(x))


# --------------------------------------------------------------------------
# 12. image smoothing with np.pad and a total-variation penalty with np.diff

def denoise(u, f, lam=0.1):
    for _ in range(5):
        p = np.pad(u, 1, mode="edge")
        lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * u
        u += 0.1 * lap - 0.05 * (u - f)
    tv = np.sum(np.sqrt(np.diff(u, axis=0) ** 2 + 1e-3)) + \
        np.sum(np.sqrt(np.diff(u, axis=1) ** 2 + 1e-3))
    return np.sum((u - f) ** 2) + lam * tv


def test_image_denoise():
    f = RNG.random((6, 7))
    check_rule(lambda u: denoise(u, f), dup(f + 0.1 * RNG.standard_normal((6, 7))))


# --------------------------------------------------------------------------
# 13. robust statistics: median, percentile, std

def robust(theta, t, y):
    r = y - (theta[0] + theta[1] * t)
    return np.median(np.abs(r)) + np.std(r) + np.percentile(np.abs(r), 90.0)


def test_robust_statistics():
    t = np.linspace(0.0, 1.0, 11)
    y = 2.0 * t + 0.3 * RNG.standard_normal(11)
    check_rule(lambda th: robust(th, t, y), dup([0.1, 1.7]))


# --------------------------------------------------------------------------
# 14. causal self-attention: np.tril mask, scipy.special.softmax

def attention(Wq, Wk, Wv, X):
    from scipy.special import softmax
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    scores = Q @ K.T / np.sqrt(Q.shape[1])
    mask = np.tril(np.ones((len(X), len(X)))) > 0
    scores = np.where(mask, scores, -np.inf)
    return np.sum(softmax(scores, axis=-1) @ V)


def test_causal_attention():
    pytest.importorskip("scipy.special")
    X = RNG.standard_normal((5, 4))
    Ws = [RNG.standard_normal((4, 3)) * 0.5 for _ in range(3)]
    check_rule(lambda a, b, c: attention(a, b, c, X), *map(dup, Ws))


# --------------------------------------------------------------------------
# 15. a float32 MLP trained in place: data, weights and gradients in float32

def mlp32_loss(W1, b1, W2, X, y):
    h = np.maximum(X @ W1 + b1, 0.0)
    out = np.tanh(h @ W2)[:, 0]
    return np.mean((out - y) ** 2) + 1e-3 * np.sum(W1 * W1)


def test_float32_mlp_trained_in_place():
    from shadowad.testing import check_dot_product, check_restore
    rng = np.random.default_rng(32)
    X = rng.standard_normal((32, 6)).astype(np.float32)
    y = np.sin(X[:, 0] + X[:, 1]).astype(np.float32)
    W1 = (0.5 * rng.standard_normal((6, 8))).astype(np.float32)
    b1 = np.full(8, 0.1, np.float32)
    W2 = (0.5 * rng.standard_normal((8, 1))).astype(np.float32)
    params = [W1, b1, W2]

    def loss(W1, b1, W2):
        return mlp32_loss(W1, b1, W2, X, y)
    check_restore(loss, *[Duplicated(p.copy(), np.zeros_like(p)) for p in params])
    check_dot_product(loss, *[Duplicated(p.copy(), np.zeros_like(p)) for p in params],
                      rtol=1e-4)
    first = None
    for _ in range(30):  # plain gradient descent, the weights updated in place
        grads = [np.zeros_like(p) for p in params]
        _, value = sad.autodiff(loss, *map(Duplicated, params, grads), mode=sad.ReverseWithPrimal)
        assert type(value) is np.float32 and all(g.dtype == np.float32 for g in grads)
        first = value if first is None else first
        for p, g in zip(params, grads):
            p -= np.float32(0.5) * g
    assert loss(*params) < 0.7 * first
    # the gradients agree with the float64 run of the same code
    grads = [np.zeros_like(p) for p in params]
    sad.autodiff(loss, *map(Duplicated, params, grads))
    g64 = [np.zeros(p.shape) for p in params]
    sad.autodiff(lambda a, b, c: mlp32_loss(a, b, c, X.astype(float), y.astype(float)),
                 *[Duplicated(p.astype(float), g) for p, g in zip(params, g64)])
    for g, h in zip(grads, g64):
        np.testing.assert_allclose(g, h, rtol=1e-3, atol=1e-5 * np.abs(h).max())


# --------------------------------------------------------------------------
# second derivatives through the ordinary code

@pytest.mark.parametrize("f, x", [
    (cholesky_logdet, None),
    (lambda u: advect(u, 0.4, 1.0), np.sin(np.linspace(0.0, 6.0, 16))),
    (lambda r: bond(r, 0.05), 0.03 + 0.002 * np.arange(6)),
])
def test_hessian_vector_products(f, x):
    if x is None:
        a = spd(4)
        f, x = (lambda v: cholesky_logdet(v.reshape(4, 4))), a.ravel()
    v = np.cos(np.arange(x.size, dtype=float))
    got = hvp(f, x, v)
    def g(y):
        dy = np.zeros_like(y)
        sad.autodiff(f, Duplicated(y.copy(), dy))
        return dy
    h = 1e-5
    fd = (g(x + h * v) - g(x - h * v)) / (2 * h)
    np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-7)
