"""The C tridiagonal solver as a function shadowad differentiates:

    from tridiag import solve
    solve(a, b, c, d)        # d is overwritten by the solution of A x = d

Run build.py first (it compiles _tridiag)."""
import os
import sys

import numpy as np

import shadowad as sad

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _tridiag import ffi, lib  # noqa: E402  (built by build.py next to this file)



def solve_numpy(a, b, c, d):
    """The same solve in numpy, d overwritten (row i: a[i], b[i], c[i] at
    columns i-1, i, i+1).  shadowad differentiates it where a second
    derivative reaches the matrix, which the C functions cannot give."""
    n = d.shape[0]
    m = (np.eye(n) * b[:, None] + np.eye(n, k=-1) * a[:, None]
         + np.eye(n, k=1) * c[:, None])
    d[...] = np.linalg.solve(m, d)


# the rule's address, as cffi gives it; sad.c_rule also takes a PyCapsule
solve = sad.c_rule(int(ffi.cast("uintptr_t", lib.tridiag_rule())), name="tridiag.solve",
                   mutates=(3,), nested=solve_numpy)
