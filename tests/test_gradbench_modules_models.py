"""The GradBench modules gmm, lstm, ba and ht on small random inputs: each
primal against a plain loop-by-loop numpy reference written from the eval's
specification, each derivative against central finite differences of the
module's own primal.  The GradBench repository is not needed."""
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks", "gradbench"))

import timed                                   # noqa: E402
from modules import ba, gmm, ht, lstm          # noqa: E402


def central_differences(f, x, h=1e-6):
    """d f / d x (f's output shape + x's shape) of an array function f of x."""
    x = np.array(x, dtype=float)
    columns = []
    for i in range(x.size):
        up, down = x.copy(), x.copy()
        up.flat[i] += h
        down.flat[i] -= h
        columns.append((np.asarray(f(up)) - np.asarray(f(down))) / (2 * h))
    return np.moveaxis(np.array(columns), 0, -1).reshape(np.shape(f(x)) + x.shape)


def close(actual, expected, rtol=1e-6, atol=1e-6):
    scale = max(1.0, float(np.max(np.abs(expected), initial=0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# --------------------------------------------------------------------------
# gmm

def gmm_input(rng, d, k, n, m=2, gamma=1.3):
    return {"d": d, "k": k, "n": n, "m": m, "gamma": gamma,
            "x": rng.normal(size=(n, d)).tolist(), "alpha": rng.normal(size=k).tolist(),
            "mu": rng.uniform(size=(k, d)).tolist(), "q": rng.normal(size=(k, d)).tolist(),
            "l": rng.normal(size=(k, d * (d - 1) // 2)).tolist(), "min_runs": 1}


def gmm_reference(input):
    """The log posterior of the eval's README, point by point."""
    d, k, n, m, gamma = (input[name] for name in ("d", "k", "n", "m", "gamma"))
    alpha, q, l = (np.array(input[name]) for name in ("alpha", "q", "l"))
    mu, x = np.array(input["mu"]), np.array(input["x"])
    Qs = []
    for c in range(k):
        Q, entry = np.zeros((d, d)), 0
        for j in range(d):
            Q[j, j] = math.exp(q[c, j])
            for i in range(j + 1, d):
                Q[i, j] = l[c, entry]
                entry += 1
        Qs.append(Q)

    def logsumexp(v):
        return max(v) + math.log(sum(math.exp(e - max(v)) for e in v))

    total = -n * d / 2 * math.log(2 * math.pi) - n * logsumexp(alpha)
    for i in range(n):
        total += logsumexp([alpha[c] + q[c].sum() - 0.5 * np.sum((Qs[c] @ (x[i] - mu[c])) ** 2)
                            for c in range(k)])
    nw = d + m + 1
    log_gamma_d = d * (d - 1) / 4 * math.log(math.pi) + sum(
        math.lgamma(nw / 2 + (1 - j) / 2) for j in range(1, d + 1))
    for c in range(k):
        total += (nw * d * math.log(gamma / math.sqrt(2)) - log_gamma_d
                  - gamma ** 2 / 2 * np.sum(Qs[c] ** 2) + m * q[c].sum())
    return total


@pytest.mark.parametrize("d, k, n", [(3, 2, 5), (1, 3, 4)])
def test_gmm(d, k, n):
    input = gmm_input(np.random.default_rng(d), d, k, n)
    assert gmm.objective(input) == pytest.approx(gmm_reference(input), rel=1e-12)
    grads = gmm.jacobian(input)
    args = gmm.objective.prepare(input)
    for position, name in enumerate(("alpha", "mu", "q", "l")):
        def f(value):
            return gmm.objective.compute(args[:position] + (value,) + args[position + 1:])
        close(np.reshape(grads[name], args[position].shape),
              central_differences(f, args[position]), rtol=1e-5)


def test_gmm_bad_input():
    input = gmm_input(np.random.default_rng(0), 2, 2, 3)
    with pytest.raises(timed.InputError, match="'mu'"):
        gmm.jacobian.prepare(input | {"mu": [[1.0, 2.0]]})
    with pytest.raises(timed.InputError, match="gamma"):
        gmm.objective.prepare(input | {"gamma": 0})


# --------------------------------------------------------------------------
# lstm

def lstm_input(rng, l, b, c):
    return {"main_params": rng.random((2 * l, 4 * b)).tolist(),
            "extra_params": rng.random((3, b)).tolist(),
            "state": rng.random((2 * l, b)).tolist(),
            "sequence": rng.integers(0, 2, (c, b)).astype(float).tolist()}


def lstm_reference(main, extra, state, sequence):
    """ADBench's loss: time by time, layer by layer, gate by gate."""
    l, b = main.shape[0] // 2, main.shape[1] // 4
    hidden, cell = state[0::2].copy(), state[1::2].copy()
    total = 0.0
    for t in range(len(sequence) - 1):
        x = sequence[t] * extra[0]
        for i in range(l):
            w, bias = main[2 * i], main[2 * i + 1]
            forget = sigmoid(x * w[:b] + bias[:b])
            ingate = sigmoid(hidden[i] * w[b:2 * b] + bias[b:2 * b])
            outgate = sigmoid(x * w[2 * b:3 * b] + bias[2 * b:3 * b])
            change = np.tanh(hidden[i] * w[3 * b:] + bias[3 * b:])
            cell[i] = cell[i] * forget + ingate * change
            hidden[i] = outgate * np.tanh(cell[i])
            x = hidden[i]
        y = x * extra[1] + extra[2]
        total += sequence[t + 1] @ (y - math.log(np.sum(np.exp(y)) + 2))
    return -total / ((len(sequence) - 1) * b)


@pytest.mark.parametrize("l, b, c", [(2, 3, 5), (3, 2, 2), (1, 4, 3)])
def test_lstm(l, b, c):
    input = lstm_input(np.random.default_rng(10 * l + c), l, b, c)
    args = lstm.objective.prepare(input)
    before = [a.copy() for a in args]
    assert lstm.objective(input) == pytest.approx(lstm_reference(*args), rel=1e-12)
    main, extra, state, sequence = args
    gradient = np.array(lstm.jacobian(input))
    expected = np.concatenate([
        central_differences(lambda v: lstm.objective.compute((v, extra, state, sequence)),
                            main).ravel(),
        central_differences(lambda v: lstm.objective.compute((main, v, state, sequence)),
                            extra).ravel()])
    close(gradient, expected, rtol=1e-5)
    gradient_again = lstm.jacobian.finish(lstm.jacobian.compute(args))
    assert gradient_again == gradient.tolist()     # compute leaves its arguments alone
    for a, a0 in zip(args, before):
        np.testing.assert_array_equal(a, a0)


def test_lstm_bad_input():
    input = lstm_input(np.random.default_rng(0), 2, 3, 4)
    with pytest.raises(timed.InputError, match="state"):
        lstm.objective.prepare(input | {"state": input["state"][:1]})


# --------------------------------------------------------------------------
# ba

def ba_input(rng):
    return {"n": 3, "m": 4, "p": 5, "w": 0.7, "cam": rng.normal(size=11).tolist(),
            "x": (rng.normal(size=3) + [0, 0, 5]).tolist(), "feat": rng.normal(size=2).tolist()}


def ba_reference(cam, X, w, feat):
    """One observation's reprojection error, as in the eval's C++ reference."""
    rot, Xo = cam[:3], X - cam[3:6]
    theta = np.linalg.norm(rot)
    if theta != 0:
        k = rot / theta
        Xcam = (Xo * math.cos(theta) + np.cross(k, Xo) * math.sin(theta)
                + k * (k @ Xo) * (1 - math.cos(theta)))
    else:
        Xcam = Xo + np.cross(rot, Xo)
    proj = Xcam[:2] / Xcam[2]
    rsq = proj @ proj
    proj = proj * (1 + cam[9] * rsq + cam[10] * rsq * rsq)
    return w * (proj * cam[6] + cam[7:9] - feat)


def ba_random_args(rng, n=3, m=4, p=7):
    """Distinct cameras, points and weights (the eval's input repeats one),
    one camera with zero rotation; every camera and point observed."""
    cams = rng.normal(scale=0.3, size=(11, n))
    cams[6] += 2           # focal length
    cams[:3, 1] = 0        # the angle-zero branch of the rotation
    points = rng.normal(size=(3, m)) + [[0], [0], [6]]
    obs = np.stack([np.arange(p) % n, (3 * np.arange(p)) % m], axis=1)
    return cams, points, rng.uniform(0.5, 1.5, p), obs, rng.normal(size=(2, p))


def test_ba_objective():
    input = ba_input(np.random.default_rng(1))
    out = ba.objective(input)
    expected = ba_reference(np.array(input["cam"]), np.array(input["x"]), input["w"],
                            np.array(input["feat"]))
    assert out["reproj_error"] == {"elements": pytest.approx(expected, rel=1e-12), "repeated": 5}
    assert out["w_err"] == {"element": pytest.approx(1 - 0.7 ** 2), "repeated": 5}
    cams, points, w, obs, feats = args = ba_random_args(np.random.default_rng(2))
    reproj_err, w_err = ba.objective.compute(args)
    for i, (c, j) in enumerate(obs):
        close(reproj_err[:, i], ba_reference(cams[:, c], points[:, j], w[i], feats[:, i]),
              rtol=1e-12, atol=1e-12)
    close(w_err, 1 - w * w, rtol=1e-15, atol=0)


def test_ba_jacobian():
    cams, points, w, obs, feats = args = ba_random_args(np.random.default_rng(3))
    (n, m), p = (cams.shape[1], points.shape[1]), len(w)
    rows, cols, vals = ba.jacobian.compute(args)
    # the CSR matrix, dense
    J = np.zeros((3 * p, 11 * n + 3 * m + p))
    for r in range(3 * p):
        J[r, cols[rows[r]:rows[r + 1]]] = vals[rows[r]:rows[r + 1]]
    assert rows[-1] == len(cols) == len(vals) == 31 * p

    def residuals(unknowns):
        c = unknowns[:11 * n].reshape(n, 11).T
        x = unknowns[11 * n:11 * n + 3 * m].reshape(m, 3).T
        reproj_err, w_err = ba.objective.compute((c, x, unknowns[-p:], obs, feats))
        return np.concatenate([reproj_err.T.ravel(), w_err])
    unknowns = np.concatenate([cams.T.ravel(), points.T.ravel(), w])
    close(J, central_differences(residuals, unknowns), rtol=1e-5)
    # the eval's view: the first 30 entries and the last one
    out = ba.jacobian.finish((rows, cols, vals))
    starts = [15 * min(r, 2 * p) + max(0, r - 2 * p) for r in range(3 * p + 1)]
    assert out["rows"] == starts[:30] + [31 * p]
    assert out["cols"][:15] == list(range(11)) + [33, 34, 35, 45]
    assert out["vals"] == vals[:30].tolist() + [-2 * w[-1]]


def test_ba_bad_input():
    with pytest.raises(timed.InputError, match="'cam'"):
        ba.objective.prepare(ba_input(np.random.default_rng(0)) | {"cam": [1.0] * 10})


# --------------------------------------------------------------------------
# ht

def ht_input(rng, complicated, mirrored=False, nverts=12, npoints=6):
    """A made-up hand: 22 bones (a root, a palm and 5 fingers of 4 bones)."""
    nbones = 22
    parents = [-1, 0] + [1 if b % 4 == 2 else b - 1 for b in range(2, nbones)]

    def rigid():
        T = np.eye(4)
        T[:3, :3] = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        T[:3, 3] = rng.normal(scale=0.3, size=3)
        return T
    weights = rng.random((nverts, nbones)) * (rng.random((nverts, nbones)) < 0.3)
    weights[:, 0] += 0.1
    weights /= weights.sum(axis=1, keepdims=True)
    triangles = rng.integers(0, nverts, (2 * nverts, 3))
    model = {"bone_count": nbones, "bone_names": [f"bone{b}" for b in range(nbones)],
             "parents": parents,
             "base_relatives": [rigid().tolist() for _ in range(nbones)],
             "inverse_base_absolutes": [rigid().tolist() for _ in range(nbones)],
             "base_positions": np.hstack([rng.normal(size=(nverts, 3)),
                                          np.ones((nverts, 1))]).tolist(),
             "weights": weights.tolist(), "triangles": triangles.tolist(),
             "is_mirrored": mirrored}
    bound = len(triangles) if complicated else nverts
    return {"theta": rng.normal(scale=0.5, size=26).tolist(),
            "us": rng.random((npoints, 2)).tolist() if complicated else [],
            "data": {"model": model, "correspondences": rng.integers(0, bound, npoints).tolist(),
                     "points": rng.normal(size=(npoints, 3)).tolist()}}


def ht_reference(input):
    """ADBench's hand model: pose parameters, bone by bone, vertex by vertex."""
    theta, model = np.array(input["theta"]), input["data"]["model"]
    parents = model["parents"]
    nbones = len(parents)
    pose = np.zeros((nbones + 3, 3))
    pose[0], pose[1], pose[2] = theta[0:3], 1, theta[3:6]
    t, row = 6, 5
    for _ in range(5):
        for joint in range(3):
            pose[row, 0] = theta[t]
            t += 1
            if joint == 0:
                pose[row, 1] = theta[t]
                t += 1
            row += 1
        row += 1
    absolutes = []
    for b in range(nbones):
        (cx, cz, cy), (sx, sz, sy) = np.cos(pose[b + 3]), np.sin(pose[b + 3])  # x, z, y
        Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        tr = np.eye(4)
        tr[:3, :3] = Rz @ Ry @ Rx
        relative = np.array(model["base_relatives"][b]) @ tr
        absolutes.append(relative if parents[b] == -1 else absolutes[parents[b]] @ relative)
    base = np.array(model["base_positions"])
    weights = np.array(model["weights"])
    positions = np.zeros((len(base), 3))
    for b in range(nbones):
        transform = absolutes[b] @ np.array(model["inverse_base_absolutes"][b])
        for v in range(len(base)):
            positions[v] += weights[v, b] * (transform @ base[v])[:3]
    if model["is_mirrored"]:
        positions[:, 0] *= -1
    angle = np.linalg.norm(pose[0])
    R = np.eye(3)
    if angle >= 1e-4:
        x, y, z = pose[0] / angle
        s, c = math.sin(angle), math.cos(angle)
        R = np.array([[x * x + (1 - x * x) * c, x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
                      [x * y * (1 - c) + z * s, y * y + (1 - y * y) * c, y * z * (1 - c) - x * s],
                      [x * z * (1 - c) - y * s, z * y * (1 - c) + x * s, z * z + (1 - z * z) * c]])
    positions = positions @ (R * pose[1]).T + pose[2]
    points, corr = np.array(input["data"]["points"]), input["data"]["correspondences"]
    err = []
    for i, point in enumerate(points):
        if input["us"]:
            u = input["us"][i]
            a, b, c = (positions[v] for v in model["triangles"][corr[i]])
            err.append(point - (u[0] * a + u[1] * b + (1 - u[0] - u[1]) * c))
        else:
            err.append(point - positions[corr[i]])
    return np.ravel(err)


@pytest.mark.parametrize("complicated, mirrored", [(False, False), (True, False), (True, True)])
def test_ht(complicated, mirrored):
    input = ht_input(np.random.default_rng(5 + complicated + 2 * mirrored), complicated, mirrored)
    close(ht.objective(input), ht_reference(input), rtol=1e-12, atol=1e-12)
    J = np.array(ht.jacobian(input))
    theta, us, *consts = ht.objective.prepare(input)
    expected = central_differences(lambda v: ht.objective.compute((v, us) + tuple(consts)),
                                   theta).reshape(-1, 26)
    if complicated:
        # point i's residuals depend on us[i] only: moving every u0 (u1) at
        # once gives the u0 (u1) column
        def moved(column):
            def f(step):
                u = us.copy()
                u[:, column] += step[0]
                return ht.objective.compute((theta, u) + tuple(consts)).ravel()
            return central_differences(f, np.zeros(1))
        expected = np.hstack([moved(0), moved(1), expected])
    assert J.shape == (3 * len(consts[-1]), 28 if complicated else 26)
    close(J, expected, rtol=1e-5)


def test_ht_small_global_rotation():
    input = ht_input(np.random.default_rng(9), False)
    input["theta"][0:3] = [0.0, 0.0, 0.0]
    close(ht.objective(input), ht_reference(input), rtol=1e-12, atol=1e-12)


def test_ht_bad_input():
    input = ht_input(np.random.default_rng(0), True)
    with pytest.raises(timed.InputError, match="theta"):
        ht.objective.prepare(input | {"theta": [0.0] * 25})
    with pytest.raises(timed.InputError, match="'us'"):
        ht.objective.prepare(input | {"us": [[0.5, 0.5]]})
