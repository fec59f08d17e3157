"""log|det(A)| through an in-place Doolittle LU that overwrites its argument.

The factorisation below is the textbook loop: it stores L (below the diagonal)
and U (on and above it) in A itself, so after the call A no longer holds the
matrix.  shadowad differentiates it as written: every overwritten entry is
saved on the tape and restored during the reverse sweep, and the gradient of
log|det(A)| with respect to the *original* A lands in the shadow dA.  The
exact answer is inv(A)^T.

(PyTorch's eager autograd refuses this code: the backward pass of
``A[i, k] / A[k, k]`` needs A[k, k], which a later in-place update has
modified, and it raises "one of the variables needed for gradient computation
has been modified by an inplace operation".  JAX forbids the in-place writes
altogether; the loop must be rewritten with ``A.at[...].set``.)
"""
import numpy as np

import shadowad as sad


def lu_logabsdet(A):
    """Factor A = L U in place (no pivoting) and return log|det(A)|."""
    n = A.shape[0]
    for k in range(n):
        for i in range(k + 1, n):
            A[i, k] = A[i, k] / A[k, k]                  # multiplier l_ik, stored in A
            A[i, k + 1:] -= A[i, k] * A[k, k + 1:]       # eliminate row i
    logdet = 0.0
    for k in range(n):
        logdet = logdet + np.log(abs(A[k, k]))           # det = prod of U's diagonal
    return logdet


def main():
    rng = np.random.default_rng(0)
    n = 6
    A0 = rng.standard_normal((n, n)) + n * np.eye(n)     # safe without pivoting
    A = A0.copy()
    dA = np.zeros_like(A)

    grads, logdet = sad.autodiff(lu_logabsdet, sad.Duplicated(A, dA),
                                 mode=sad.ReverseWithPrimal)

    sign, want = np.linalg.slogdet(A0)
    print(f"log|det A| = {logdet:.12f}   (numpy: {want:.12f})")
    print("gradient dA (should be inv(A)^T):")
    print(np.array2string(dA, precision=5, suppress_small=True))
    assert np.isclose(logdet, want, rtol=1e-12)
    assert np.allclose(dA, np.linalg.inv(A0).T, rtol=1e-10, atol=1e-12)

    # A was overwritten, as the untraced call would have done ...
    L = np.tril(A, -1) + np.eye(n)
    U = np.triu(A)
    assert np.allclose(L @ U, A0)
    # ... and with restore=True every entry comes back bit for bit.
    A = A0.copy()
    sad.autodiff(lu_logabsdet, sad.Duplicated(A, np.zeros_like(A)), restore=True)
    assert A.tobytes() == A0.tobytes()
    print("ok: gradient = inv(A)^T, A holds its LU factors, restore=True gives A back exactly")


if __name__ == "__main__":
    main()
