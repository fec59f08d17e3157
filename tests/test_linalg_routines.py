"""Users' routines written the ordinary way with the contractions and linear
algebra of #16 (not rule-by-rule tests): each is differentiated as written,
checked by check_rule (finite differences, restore, accumulate-once, dot
product) and forward against reverse."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Duplicated, Forward
from shadowad.testing import check_rule

rng = np.random.default_rng(1601)


def dup(a):
    a = np.array(a, dtype=float)
    return Duplicated(a, np.zeros_like(a))


def forward_matches_reverse(f, x):
    g, = sad.gradient(f, x)
    v = rng.standard_normal(x.shape)
    t = sad.autodiff(f, Duplicated(x.copy(), v), mode=Forward)
    np.testing.assert_allclose(t, np.sum(g * v), rtol=1e-10)


# an einsum bilinear model: y_b = x_b^T W x_b + u . x_b, least squares
XB = rng.standard_normal((20, 3))
YB = rng.standard_normal(20)


def bilinear_loss(w):
    W, u = w[:9].reshape(3, 3), w[9:]
    pred = np.einsum("bi,ij,bj->b", XB, W, XB) + np.einsum("bi,i", XB, u)
    r = pred - YB
    return np.einsum("b,b->", r, r) / len(YB)


# a spring network: energy of edges at their rest lengths
EDGES = np.array([[0, 1], [1, 2], [2, 0], [2, 3], [3, 0]])
REST = np.array([1.0, 1.2, 0.9, 1.1, 1.3])


def spring_energy(p):
    pos = p.reshape(4, 2)
    d = pos[EDGES[:, 0]] - pos[EDGES[:, 1]]
    length = np.linalg.norm(d, axis=1)
    return 0.5 * np.sum((length - REST) ** 2)


# a Kalman filter's log likelihood: predict, innovate, update
F_ = np.array([[1.0, 0.1], [0.0, 1.0]])
H_ = np.array([[1.0, 0.0]])
ZS = np.array([0.1, 0.25, 0.2, 0.4, 0.55])


def kalman_nll(theta):
    q, r = np.exp(theta[0]), np.exp(theta[1])
    Q, R = q * np.eye(2), r * np.eye(1)
    m, P = np.zeros(2) + theta[2], np.eye(2) * 1.0
    nll = 0.0
    for z in ZS:
        m = F_ @ m
        P = F_ @ P @ F_.T + Q
        S = H_ @ P @ H_.T + R
        L = np.linalg.cholesky(S)
        v = np.array([z]) - H_ @ m
        w = np.linalg.solve(L, v)
        nll = nll + 0.5 * w @ w + np.sum(np.log(np.diagonal(L)))
        K = np.linalg.solve(S, H_ @ P).T
        m = m + K @ v
        P = P - K @ S @ K.T
    return nll


# a polynomial fitted by least squares, then evaluated and interpolated
TS = np.linspace(0.0, 1.0, 12)


def fit_and_evaluate(y):
    V = np.stack([TS ** 3, TS ** 2, TS, np.ones_like(TS)], axis=1)
    coef = np.linalg.lstsq(V, y, rcond=None)[0]
    grid = np.linspace(0.0, 1.0, 5)
    return np.sum(np.polyval(coef, grid) ** 2) + np.trapezoid(np.interp(grid, TS, y), grid)


# the algebraic connectivity of a weighted graph (second eigenvalue of its
# Laplacian) and the nuclear norm of its adjacency
IJ = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [0, 2]])


def connectivity(w):
    A = np.zeros((4, 4)) + np.einsum("e,ei,ej->ij", w, np.eye(4)[IJ[:, 0]], np.eye(4)[IJ[:, 1]])
    A = A + A.T
    L = np.eye(4) * np.sum(A, axis=1) - A
    return np.linalg.eigvalsh(L)[1] + 0.1 * np.linalg.norm(A, "nuc")


# a tiny attention layer with einsum and a softmax written out
QX = rng.standard_normal((5, 4))


def attention(wflat):
    Wq, Wk = wflat[:16].reshape(4, 4), wflat[16:].reshape(4, 4)
    q, k = np.einsum("td,de->te", QX, Wq), np.einsum("td,de->te", QX, Wk)
    s = np.einsum("te,se->ts", q, k) / 2.0
    s = s - np.max(s, axis=1, keepdims=True)
    p = np.exp(s) / np.sum(np.exp(s), axis=1, keepdims=True)
    out = np.einsum("ts,sd->td", p, QX)
    return np.sum(out ** 2) + np.linalg.norm(np.tensordot(Wq, Wk, axes=([1], [0])))


ROUTINES = {
    "einsum bilinear model": (bilinear_loss, rng.standard_normal(12)),
    "spring network": (spring_energy, np.array([0.0, 0.0, 1.0, 0.1, 0.9, 1.0, -0.2, 1.1])),
    "kalman filter": (kalman_nll, np.array([-1.0, -2.0, 0.05])),
    "polynomial fit": (fit_and_evaluate, np.sin(3.0 * TS)),
    "graph connectivity": (connectivity, np.array([1.0, 2.0, 0.5, 1.5, 0.7])),
    "attention": (attention, rng.standard_normal(32) * 0.5),
}


@pytest.mark.parametrize("name", sorted(ROUTINES))
def test_routine(name):
    f, x = ROUTINES[name]
    check_rule(f, dup(x))
    forward_matches_reverse(f, x)
