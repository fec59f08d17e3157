"""GradBench ``gmm``: the log posterior of a Gaussian mixture model with a
Wishart prior on the precision matrices, and its gradient by reverse mode.

The objective is vectorised over points and components (one batched matmul
per call); the gradient is one ``sad.autodiff`` of that same numpy code with
``alpha``, ``mu``, ``q`` and ``l`` Active.
"""
import math

import numpy as np

import shadowad as sad
import timed


def tri_index(d):
    """(d, d) positions into [exp(q) (d), l (d(d-1)/2), 0]: the lower
    triangular Q with l filled column by column below the diagonal."""
    idx = np.full((d, d), d + d * (d - 1) // 2, dtype=np.intp)
    idx[np.diag_indices(d)] = np.arange(d)
    rows, cols = np.tril_indices(d, -1)
    order = np.lexsort((rows, cols))  # column by column
    idx[rows[order], cols[order]] = d + np.arange(len(order))
    return idx


def log_multigamma(a, p):
    """log Gamma_p(a), the multivariate gamma function."""
    return 0.25 * p * (p - 1) * math.log(math.pi) + sum(
        math.lgamma(a + 0.5 * (1 - j)) for j in range(1, p + 1))


def logsumexp(v, axis=None):
    # The shift only keeps exp in range and its derivative cancels: taken on
    # the primal values, it costs no record and no pullback.
    mx = np.max(sad.primal(v), axis=axis, keepdims=True)
    return np.log(np.sum(np.exp(v - mx), axis=axis)) + np.squeeze(mx, axis=axis)


def log_posterior(alpha, mu, q, l, x, idx, m, gamma):
    """The log posterior (constants included): alpha (k,), mu and q (k, d),
    l (k, d(d-1)/2), data x (n, d)."""
    n, d = x.shape
    k = alpha.shape[0]
    Qdiag = np.exp(q)
    sum_q = np.sum(q, axis=1)
    Q = np.concatenate([Qdiag, l, np.zeros_like(q[:, :1])], axis=1)[:, idx]   # (k, d, d)
    # Q (x_i - mu_k) = Q x_i - Q mu_k: no (k, n, d) temporary of centred
    # points, and Q x as one (k d, d) @ (d, n) product (numpy's stacked matmul
    # does not use BLAS when it broadcasts x against the k matrices)
    Qx = (Q.reshape(k * d, d) @ x.T).reshape(k, d, n)
    Qmu = np.matmul(Q, mu[:, :, np.newaxis])                                  # (k, d, 1)
    Qxc = Qx - Qmu
    beta = (alpha + sum_q)[:, np.newaxis] - 0.5 * np.sum(Qxc * Qxc, axis=1)  # (k, n)
    likelihood = np.sum(logsumexp(beta, axis=0)) - n * logsumexp(alpha)
    nw = d + m + 1
    frobenius = np.sum(Qdiag * Qdiag) + np.sum(l * l)
    prior = (-0.5 * gamma * gamma * frobenius + m * np.sum(sum_q)
             + k * (nw * d * math.log(gamma / math.sqrt(2)) - log_multigamma(0.5 * nw, d)))
    return likelihood + prior - 0.5 * n * d * math.log(2 * math.pi)


def _array(input, name, shape):
    """A JSON list (of lists) of numbers of the given shape as a float64 array."""
    try:
        a = np.array(timed.field(input, name), dtype=np.float64)
    except (TypeError, ValueError):
        raise timed.InputError(f"input field {name!r} must be numbers") from None
    if a.size == 0 and math.prod(shape) == 0:   # d = 1: l is [[], [], ...]
        a = a.reshape(shape)
    if a.shape != shape:
        raise timed.InputError(f"input field {name!r} has shape {a.shape}, expected {shape}")
    return a


def prepare(input):
    """JSON -> (alpha, mu, q, l, x, idx, m, gamma)."""
    d, k, n = (timed.integer(input, name, minimum=1) for name in ("d", "k", "n"))
    m = timed.integer(input, "m")
    gamma = timed.field(input, "gamma")
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
        raise timed.InputError(f"input field 'gamma' must be a positive number, got {gamma!r}")
    return (_array(input, "alpha", (k,)), _array(input, "mu", (k, d)),
            _array(input, "q", (k, d)), _array(input, "l", (k, d * (d - 1) // 2)),
            _array(input, "x", (n, d)), tri_index(d), m, float(gamma))


@timed.function(prepare=prepare, finish=float)
def objective(args):
    return log_posterior(*args)


def finish_gradient(grads):
    return {name: g.tolist() for name, g in zip(("alpha", "mu", "q", "l"), grads)}


@timed.function(prepare=prepare, finish=finish_gradient)
def jacobian(args):
    alpha, mu, q, l, *consts = args
    return sad.autodiff(log_posterior, sad.Active(alpha), sad.Active(mu), sad.Active(q),
                        sad.Active(l), *map(sad.Const, consts))[:4]
