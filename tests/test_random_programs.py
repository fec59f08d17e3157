"""Random straight-line in-place programs (hypothesis) over two vectors and a
matrix, built from the kernels: axpy, setindex with slices, ints and index
lists, in-place ufuncs and out=, out-of-place smooth ufuncs, scal, scalar
reads and writes, overlapping and broadcast views, and views copied over
overlapping views (setitem, np.copyto, masks).  Every program is checked
against finite differences, for restore bit for bit, for accumulate-once, and
by the dot-product test between forward and reverse mode (to 1e-12).

A program is a list of instructions interpreted by ``run``, which works on
plain arrays (for the finite differences and the untraced reference) and on
traced ones alike: the kernels work outside f too.
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shadowad as sad
from shadowad import Const, Duplicated
from shadowad.testing import (check_accumulate_once, check_dot_product, check_gradient,
                              check_restore)

# The arguments are u (6,), v (6,) and the matrix w (3, 4).  Instructions see
# four vectors: u, v, the row w[1] and the column w[:, 2] (which share w[1, 2]).
SIZES = (6, 6, 4, 3)
SHAPES = ((6,), (6,), (3, 4))
SMOOTH = {                 # bounded, smooth everywhere
    "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "arctan": np.arctan,
    "exp_sin": lambda t: np.exp(np.sin(t)), "soft": lambda t: t / (1.0 + t * t),
    "log1p_sq": lambda t: np.log1p(t * t), "hypot1": lambda t: np.hypot(t, 1.0),
    "id": lambda t: t * 1.0,
}
IN_PLACE = ("iadd", "isub", "imul", "mul_out", "add_out", "sin_out", "tanh_out")


@st.composite
def slices(draw, n, length):
    """A basic slice of an axis of size n selecting `length` elements."""
    steps = [s for s in (1, 2, 3, -1, -2) if abs(s) * (length - 1) < n]
    step = draw(st.sampled_from(steps))
    span = abs(step) * (length - 1)
    if step > 0:
        start = draw(st.integers(0, n - 1 - span))
        return slice(start, start + span + 1, step)
    start = draw(st.integers(span, n - 1))
    stop = start - span - 1
    return slice(start, None if stop < 0 else stop, step)


@st.composite
def two_slices(draw):
    """(array, slice) pairs of equal length, possibly of the same array."""
    src, dst = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    length = draw(st.integers(1, min(SIZES[src], SIZES[dst])))
    return src, draw(slices(SIZES[src], length)), dst, draw(slices(SIZES[dst], length))


@st.composite
def one_array_slices(draw):
    """Two slices of equal length of one vector: they often overlap."""
    k = draw(st.integers(0, 3))
    length = draw(st.integers(1, SIZES[k]))
    return k, draw(slices(SIZES[k], length)), k, draw(slices(SIZES[k], length))


coef = st.floats(-1.5, 1.5, allow_nan=False).map(lambda c: round(c, 3))
element = st.integers(0, 3).flatmap(
    lambda k: st.tuples(st.just(k), st.integers(-SIZES[k], SIZES[k] - 1)))


@st.composite
def two_blocks(draw):
    """Two equally shaped 2-D basic views of the 3x4 matrix (possibly overlapping)."""
    r, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    return ((draw(slices(3, r)), draw(slices(4, c))), (draw(slices(3, r)), draw(slices(4, c))))


instruction = st.one_of(
    st.tuples(st.just("axpy"), coef, two_slices()),
    st.tuples(st.just("axpy_traced_a"), element, two_slices()),
    st.tuples(st.just("axpy_scalar_x"), coef, element, st.integers(0, 3)),
    st.tuples(st.just("set_slice"), st.sampled_from(sorted(SMOOTH)), two_slices()),
    st.tuples(st.just("set_int"), element, element, element, coef),
    st.tuples(st.just("set_const"), element, coef),
    st.tuples(st.just("set_fancy"), st.integers(0, 3),
              st.lists(st.integers(0, 2), min_size=1, max_size=3), st.integers(0, 3)),
    st.tuples(st.just("in_place"), st.sampled_from(IN_PLACE), two_slices()),
    st.tuples(st.just("scal"), coef, st.integers(0, 3)),
    st.tuples(st.just("broadcast"), element, st.integers(0, 3)),
    st.tuples(st.just("matrix"), st.sampled_from(IN_PLACE + ("axpy", "copy")), two_blocks()),
    st.tuples(st.just("bcast_view"), st.sampled_from(("iadd", "imul")), two_slices()),
    st.tuples(st.just("copy"), st.sampled_from(("setitem", "copyto", "mask")),
              st.one_of(two_slices(), one_array_slices())),
)
programs = st.tuples(st.lists(instruction, min_size=1, max_size=8), st.booleans())


def in_place(op, x, y):
    """y op= x (x may broadcast against y, or overlap it)."""
    if op == "iadd":
        y += x
    elif op == "isub":
        y -= 0.5 * x
    elif op == "imul":
        y *= x
    elif op == "mul_out":
        np.multiply(x, y, out=y)
    elif op == "add_out":
        np.add(x, x, out=y)
    elif op == "sin_out":
        np.sin(x, out=y)
    else:
        np.tanh(y, out=y)


def run(prog, arrays):
    """Interpret a program on (plain or traced) arrays; return a scalar or None."""
    body, ret = prog
    u, v, w = arrays
    arrays = [u, v, w[1], w[:, 2]]
    for ins in body:
        kind = ins[0]
        if kind in ("axpy", "axpy_traced_a"):
            a = ins[1] if kind == "axpy" else arrays[ins[1][0]][ins[1][1]] * 0.5
            src, ss, dst, ds = ins[2]
            sad.axpy(a, arrays[src][ss], arrays[dst][ds])
        elif kind == "axpy_scalar_x":
            (k, i), dst = ins[2], ins[3]
            sad.axpy(ins[1], arrays[k][i], arrays[dst])
        elif kind == "set_slice":
            src, ss, dst, ds = ins[2]
            sad.setindex(arrays[dst], ds, SMOOTH[ins[1]](arrays[src][ss]))
        elif kind == "set_int":
            (d, i), (k1, j1), (k2, j2), c = ins[1:]
            arrays[d][i] = arrays[k1][j1] * arrays[k2][j2] + c * np.sin(arrays[k1][j1])
        elif kind == "set_const":
            (d, i), c = ins[1:]
            sad.setindex(arrays[d], i, c)
        elif kind == "set_fancy":
            dst, idx, src = ins[1:]
            arrays[dst][idx] = np.tanh(arrays[src][: len(idx)])
        elif kind == "in_place":
            src, ss, dst, ds = ins[2]
            in_place(ins[1], arrays[src][ss], arrays[dst][ds])
        elif kind == "scal":
            sad.scal(ins[1], arrays[ins[2]])
        elif kind == "broadcast":
            (k, i), dst = ins[1:]
            arrays[dst] *= np.cos(arrays[k][i])
        elif kind == "matrix":
            op, (b1, b2) = ins[1:]
            x, y = w[b1], w[b2]
            if op == "axpy":
                sad.axpy(0.75, x, y)
            elif op == "copy":
                y[...] = x
            else:
                in_place(op, x, y)
        elif kind == "bcast_view":  # a 1-element view broadcast over another view
            op, (src, ss, dst, ds) = ins[1:]
            x = arrays[src][ss][:1]
            in_place(op, x, arrays[dst][ds])
        elif kind == "copy":  # maybe over itself: numpy's bits (shadowad/overlap.py)
            how, (src, ss, dst, ds) = ins[1:]
            x = arrays[src][ss]
            if how == "setitem":
                arrays[dst][ds] = x
            elif how == "copyto":
                np.copyto(arrays[dst][ds], x)
            else:
                mask = np.zeros(SIZES[dst], bool)
                mask[np.arange(SIZES[dst])[ds]] = True
                arrays[dst][mask] = x
        else:  # pragma: no cover
            raise AssertionError(kind)
    if ret:
        return u[0] * v[-1] + np.sin(w[1, 3]) * u[2]
    return None


def make_f(prog):
    def f(u, v, w):
        return run(prog, [u, v, w])
    return f


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(prog=programs, seed=st.integers(0, 2 ** 16), w_const=st.booleans())
def test_random_program(prog, seed, w_const):
    rng = np.random.default_rng(seed)
    u, v, w = (rng.uniform(-1, 1, n) for n in SHAPES)
    args = [Duplicated(u, np.zeros(6)), Duplicated(v, np.zeros(6)),
            Const(w) if w_const else Duplicated(w, np.zeros((3, 4)))]
    f = make_f(prog)
    check_gradient(f, *args, rtol=1e-5, atol=1e-7)
    check_restore(f, *args)
    check_accumulate_once(f, *args)


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(prog=programs, seed=st.integers(0, 2 ** 16), w_const=st.booleans())
def test_random_program_final_copy_equals_the_last_redo(prog, seed, w_const):
    """f's final values after the sweep: a copy of the written memory put back
    (driver.FINAL_COPY_RATIO 0: whenever the tape allows it) and the last redo
    leave the same bits, and the same gradients."""
    from shadowad import driver
    rng = np.random.default_rng(seed)
    start = [rng.uniform(-1, 1, n) for n in SHAPES]

    def run_with(ratio):
        saved, driver.FINAL_COPY_RATIO = driver.FINAL_COPY_RATIO, ratio
        try:
            args = [Duplicated(start[0].copy(), np.zeros(6)),
                    Duplicated(start[1].copy(), np.zeros(6)),
                    Const(start[2].copy()) if w_const
                    else Duplicated(start[2].copy(), np.zeros((3, 4)))]
            sad.autodiff(make_f(prog), *args)
        finally:
            driver.FINAL_COPY_RATIO = saved
        return [a.val for a in args] + [a.dval for a in args if type(a) is Duplicated]
    for a, b in zip(run_with(0.0), run_with(float("inf"))):
        assert a.tobytes() == b.tobytes()


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(prog=programs, seed=st.integers(0, 2 ** 16), w_const=st.booleans())
def test_random_program_forward_is_transpose_of_reverse(prog, seed, w_const):
    """<J xdot, ybar> == <xdot, J^T ybar> over the mutated arguments and the
    result, forward mode against reverse mode."""
    rng = np.random.default_rng(seed)
    u, v, w = (rng.uniform(-1, 1, n) for n in SHAPES)
    args = [Duplicated(u, np.zeros(6)), Duplicated(v, np.zeros(6)),
            Const(w) if w_const else Duplicated(w, np.zeros((3, 4)))]
    check_dot_product(make_f(prog), *args, seed=seed, rtol=1e-12)


@settings(max_examples=30, deadline=None, database=None)
@given(prog=programs, seed=st.integers(0, 2 ** 16))
def test_random_program_forward_failure_restores(prog, seed):
    """Forward mode stopped by an exception: primals and tangents come back."""
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1, 1, n) for n in SHAPES]
    tangents = [rng.standard_normal(n) for n in SHAPES]
    before = [a.copy() for a in arrays + tangents]

    def boom(u, v, w):
        run(prog, [u, v, w])
        raise ArithmeticError("stop")
    try:
        sad.autodiff(boom, *map(Duplicated, arrays, tangents), mode=sad.Forward)
    except ArithmeticError:
        pass
    else:  # pragma: no cover
        raise AssertionError("boom did not raise")
    assert all(a.tobytes() == b.tobytes() for a, b in zip(arrays + tangents, before))


@settings(max_examples=30, deadline=None, database=None)
@given(prog=programs, seed=st.integers(0, 2 ** 16))
def test_random_program_split_tape_and_failure(prog, seed):
    """The same programs through autodiff_split, and stopped by an exception
    after the last instruction: every primal comes back bit for bit."""
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1, 1, n) for n in SHAPES]
    before = [a.copy() for a in arrays]
    plain = [a.copy() for a in arrays]
    want = run(prog, plain)

    shadows = [np.zeros(n) for n in SHAPES]
    res, tape = sad.autodiff_split(make_f(prog), *map(Duplicated, arrays, shadows))
    assert res == (None if want is None else float(want))
    assert all(a.tobytes() == p.tobytes() for a, p in zip(arrays, plain))
    tape.reverse(restore=True)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(arrays, before))

    def boom(u, v, w):
        run(prog, [u, v, w])
        raise ArithmeticError("stop")
    shadows = [np.full(n, 0.5) for n in SHAPES]
    try:
        sad.autodiff(boom, *map(Duplicated, arrays, shadows))
    except ArithmeticError:
        pass
    else:  # pragma: no cover
        raise AssertionError("boom did not raise")
    assert all(a.tobytes() == b.tobytes() for a, b in zip(arrays, before))
    assert all((s == 0.5).all() for s in shadows)
