"""The C tridiagonal solver as a function shadowad differentiates:

    from tridiag import solve
    solve(a, b, c, d)        # d is overwritten by the solution of A x = d

Run build.py first (it compiles _tridiag)."""
import os
import sys

import shadowad as sad

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _tridiag import ffi, lib  # noqa: E402  (built by build.py next to this file)

# the rule's address, as cffi gives it; sad.c_rule also takes a PyCapsule
solve = sad.c_rule(int(ffi.cast("uintptr_t", lib.tridiag_rule())), name="tridiag.solve",
                   mutates=(3,))
