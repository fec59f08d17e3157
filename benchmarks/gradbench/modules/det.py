"""GradBench ``det``: the determinant of an ell x ell matrix by expansion by
minors (cmpad's ``det_by_minor``), and its gradient by reverse mode.

The recursion is scalar code; in the gradient every entry read from the
Active matrix is a traced scalar, so the tape holds one record per
multiply and add, as a C++ operator-overloading tool's would.
"""
import sys

import shadowad as sad
import timed


def det_of_minor(A, ell, size, next_row, next_col):
    """Determinant of the size x size minor of the flat ell x ell matrix
    ``A`` whose rows and columns are the linked lists ``next_row`` and
    ``next_col``: each holds, at index ``ell``, the minor's first index and,
    at index i, the index that follows i.  Removing a row or column is one
    relinking, undone before returning, so no minor is ever copied."""
    row = next_row[ell]
    col = next_col[ell]
    if size == 1:
        return A[row * ell + col]
    total = 0.0
    next_row[ell] = next_row[row]          # the sub-minors drop this row
    previous = ell                          # the column linking to ``col``
    for j in range(size):
        next_col[previous] = next_col[col]  # ... and column ``col``
        term = A[row * ell + col] * det_of_minor(A, ell, size - 1, next_row, next_col)
        next_col[previous] = col
        total = total + term if j % 2 == 0 else total - term
        previous, col = col, next_col[col]
    next_row[ell] = row
    return total


def det(A, ell):
    links = list(range(1, ell + 1)) + [0]  # 0 -> 1 -> ... -> ell-1, head 0
    return det_of_minor(A, ell, ell, links, list(links))


def prepare(input):
    A = timed.vector(input, "A")
    ell = timed.integer(input, "ell", minimum=1)
    if len(A) != ell * ell:
        raise timed.InputError(f"input field 'A' must hold ell*ell = {ell * ell} numbers, "
                         f"got {len(A)}")
    # ell levels of recursion, plus room for the tool's own frames.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), ell + 200))
    return A, ell


@timed.function(prepare=prepare, finish=float)
def primal(args):
    A, ell = args
    return det(A, ell)


@timed.function(prepare=prepare, finish=timed.to_list)
def gradient(args):
    A, ell = args
    dA, _ = sad.autodiff(det, sad.Active(A), sad.Const(ell))
    return dA
