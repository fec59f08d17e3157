"""A nested differentiation reads memory of the enclosing one, and f writes it
before the nested call finishes (docs/design-notes.md, "Plain arrays that
records read are snapshotted").  Values constant for the enclosing
differentiation are read as they were (right answer); values that carry its
derivative raise OverwrittenError, never a silently wrong gradient.  Writes
after the nested call returned are fine either way.

Every write form x memory kind x nesting x when, each against the same
program without the write and against central finite differences of the
untraced outer function."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import shadowad as sad
from shadowad import Active, Const, Duplicated, Forward, Reverse
from shadowad.engines.nested.trace import OverwrittenError

X0 = np.array([0.3, -0.7, 1.1])
C0 = np.array([1.5, 0.5, 2.0])
DX = np.array([0.2, -1.0, 0.6])
W = np.array([0.9, -0.4, 1.3])


# --------------------------------------------------------------------------
# the memory the nested call reads; active: carries the outer derivative

def _const(x, c):
    return c


def _temp(x, c):
    return c * 2.0


def _filled(x, c):
    m = np.zeros_like(x)
    m[...] = c
    return m


def _active(x, c):
    return x * c


def _active_filled(x, c):
    m = np.zeros_like(x)
    m[...] = np.cos(x)
    return m


MEMORY = {"const": (_const, False), "temp": (_temp, False), "filled": (_filled, False),
          "active": (_active, True), "active_filled": (_active_filled, True)}

# every way f writes memory: each changes m[1:] (what the "view" reads)
WRITES = {
    "setitem": lambda m: m.__setitem__(Ellipsis, 5.0),
    "slice": lambda m: m.__setitem__(slice(1, None), 7.0),
    "iadd": lambda m: m.__iadd__(1.0),
    "imul": lambda m: m.__imul__(3.0),
    "out": lambda m: np.add(m, 2.0, out=m),
    "copyto": lambda m: np.copyto(m, 4.0),
    "axpy": lambda m: sad.axpy(2.0, np.ones(3), m),
    "setindex": lambda m: sad.setindex(m, [0, 2], np.array([9.0, 8.0])),
    "other_view": lambda m: m[::-1].__setitem__(slice(0, 2), 6.0),
}


def _read(m, how):
    return m if how == "whole" else m[1:]  # "view": written through its base


def _inner_value(y, m, how):
    """the nested function's value before the write: reads m in a node"""
    if how == "view":
        y = y[1:]
    return np.sum(np.sin(y) * y * _read(m, how))


def _nest(nesting, inner, x):
    """A scalar of x computed by a nested differentiation of inner."""
    if nesting == "gradient":
        return np.sum(sad.gradient(inner, x)[0] * W)
    if nesting == "jacobian":  # reverse rows: the nodes are read after f returns
        def twice(y):
            r = inner(y)
            return np.stack([r, r * np.sum(y)])
        J = sad.jacobian(twice, x, mode=Reverse)
        return np.sum(J[0] * W) + np.sum(J[1])
    if nesting == "hvp":  # forward-over-reverse nested inside the outer call
        return sad.autodiff(lambda z: np.sum(sad.gradient(inner, z)[0] * W),
                            Duplicated(x, DX), mode=Forward)
    raise AssertionError(nesting)


def program(memory, how, nesting, write, when):
    make = MEMORY[memory][0]

    def outer(x, c):
        m = make(x, c)

        def inner(y):
            r = _inner_value(y, m, how)
            if write is not None and when == "during":
                WRITES[write](m)
            return r

        s = _nest(nesting, inner, x)
        if write is not None and when == "after":
            WRITES[write](m)
        return s
    return outer


def fd_gradient(outer, h=1e-6):
    g = np.zeros(3)
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        g[i] = (outer(X0 + e, C0.copy()) - outer(X0 - e, C0.copy())) / (2 * h)
    return g


def run(outer, mode):
    if mode == "reverse":
        return sad.autodiff(outer, Active(X0.copy()), Const(C0.copy()))[0]
    return sad.autodiff(outer, Duplicated(X0.copy(), DX.copy()), Const(C0.copy()), mode=Forward)


def check_message(e):
    msg = str(e)
    for words in ("overwritten", "nested differentiation", "np.copy", "fresh array"):
        assert words in msg


NESTINGS = ["gradient", "jacobian", "hvp"]


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("nesting", NESTINGS)
@pytest.mark.parametrize("when", ["during", "after"])
@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("how", ["whole", "view"])
@pytest.mark.parametrize("memory", sorted(MEMORY))
def test_outer_memory_written(memory, how, write, when, nesting, mode):
    outer = program(memory, how, nesting, write, when)
    if when == "during" and MEMORY[memory][1]:
        with pytest.raises(OverwrittenError) as e:
            run(outer, mode)
        check_message(e.value)
        assert isinstance(e.value, RuntimeError) and OverwrittenError is sad.OverwrittenError
        return
    got = run(outer, mode)
    want = run(program(memory, how, nesting, None, when), mode)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    fd = fd_gradient(outer)
    np.testing.assert_allclose(got, fd if mode == "reverse" else fd @ DX, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("memory", sorted(MEMORY))
def test_write_elsewhere_in_the_buffer_is_fine(memory, mode):
    """The node read m[1:]; f writes m[0]: the values read are unchanged."""
    make = MEMORY[memory][0]

    def outer(x, c, write=True):
        m = make(x, c)

        def inner(y):
            r = _inner_value(y, m, "view")
            if write:
                m[0] = 9.0
            return r
        return np.sum(sad.gradient(inner, x)[0] * W)

    got = run(outer, mode)
    want = run(lambda x, c: outer(x, c, write=False), mode)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_the_issue_reproducers(mode):
    def outer(x):
        buf = np.zeros_like(x)

        def inner(y):
            buf[...] = 1.0
            r = np.sum(y * y * buf)
            buf[...] = 5.0
            return r
        return np.sum(sad.gradient(inner, x)[0])

    def outer2(x):
        buf = np.zeros_like(x)

        def inner(y):
            buf[...] = x
            r = np.sum(y * buf)
            buf[...] = 5.0
            return r
        return np.sum(sad.gradient(inner, x)[0])

    x0 = np.array([1.0, 2.0, 3.0])
    if mode == "reverse":
        np.testing.assert_array_equal(sad.autodiff(outer, Active(x0.copy()))[0], 2.0)
        with pytest.raises(OverwrittenError, match="overwritten"):
            sad.autodiff(outer2, Active(x0.copy()))
    else:
        assert sad.autodiff(outer, Duplicated(x0.copy(), np.ones(3)), mode=Forward) == 6.0
        with pytest.raises(OverwrittenError, match="overwritten"):
            sad.autodiff(outer2, Duplicated(x0.copy(), np.ones(3)), mode=Forward)


def test_the_nested_input_itself_written():
    """The nested call differentiates with respect to outer memory that f then
    overwrites through another name: its own input values are read too."""
    def outer(x, write):
        m = x * 1.0  # active

        def inner(y):
            r = np.sum(y * y * y)
            if write:
                m[...] = 0.0
            return r
        return np.sum(sad.gradient(inner, m)[0])

    with pytest.raises(OverwrittenError):
        sad.autodiff(lambda x: outer(x, True), Active(X0.copy()))

    def const_input(x, c, write):
        def inner(y):
            r = np.sum(y * y * y * x)
            if write:
                c[...] = 0.0
            return r
        return np.sum(sad.gradient(inner, c)[0])

    got = sad.autodiff(lambda x, c: const_input(x, c, True), Active(X0.copy()), Const(C0.copy()))
    want = sad.autodiff(lambda x, c: const_input(x, c, False), Active(X0.copy()),
                        Const(C0.copy()))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[0], 3 * C0 ** 2, rtol=1e-12)


def test_plain_input_of_the_nested_call_written():
    """A plain array given to the nested call, then written inside it."""
    def outer(x, write):
        p = np.array([1.0, 2.0, 3.0])

        def inner(y):
            r = np.sum(y * y * x)
            if write:
                p[...] = -4.0
            return r
        return np.sum(sad.gradient(inner, p)[0] * W)

    got = sad.autodiff(lambda x: outer(x, True), Active(X0.copy()))[0]
    np.testing.assert_allclose(got, 2 * np.array([1.0, 2.0, 3.0]) * W, rtol=1e-12)


def test_three_levels():
    """The innermost reverse trace reads memory of the outermost (C engine)
    differentiation through a middle reverse trace."""
    def outer(x, c, write):
        m = c * 1.0  # constant for every level

        def middle(z):
            def inner(y):
                r = np.sum(np.sin(y) * z * m)
                if write:
                    m[...] = 3.0
                return r
            return np.sum(sad.gradient(inner, z)[0] * W)
        return np.sum(sad.gradient(middle, x)[0])

    got = sad.autodiff(lambda x, c: outer(x, c, True), Active(X0.copy()), Const(C0.copy()))[0]
    want = sad.autodiff(lambda x, c: outer(x, c, False), Active(X0.copy()), Const(C0.copy()))[0]
    np.testing.assert_allclose(got, want, rtol=1e-12)

    def active(x, write):
        def middle(z):
            m = z * 1.0  # carries the middle level's derivative

            def inner(y):
                r = np.sum(np.sin(y) * m)
                if write:
                    m[...] = 3.0  # a write of the middle level, after r read m
                return r
            return np.sum(sad.gradient(inner, z)[0] * W)
        return np.sum(sad.gradient(middle, x)[0])

    # the middle level rebinds m: the inner gradient keeps the values r read
    got = sad.autodiff(lambda x: active(x, True), Active(X0.copy()))[0]
    want = sad.autodiff(lambda x: active(x, False), Active(X0.copy()))[0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_unchanged_operands_in_an_inner_loop_keep_memory_flat(mode, monkeypatch):
    """An outer constant read by every step of an inner loop is copied once;
    an active one is checked against one copy, not one per step."""
    from shadowad.engines.nested import trace as nested_trace
    traces = []
    new = nested_trace.ReverseTrace.__init__

    def spy(self):
        new(self)
        traces.append(self)
    monkeypatch.setattr(nested_trace.ReverseTrace, "__init__", spy)
    n, steps = 1000, 50

    def outer(x, c):
        big = c * 2.0  # constant
        act = x * 1.0  # active

        def inner(y):
            r = 0.0
            for _ in range(steps):
                r = r + np.sum(y * big) + np.sum(y * act)
            return r
        return np.sum(sad.gradient(inner, x)[0])

    x, c = np.linspace(0, 1, n), np.ones(n)
    if mode == "reverse":
        sad.autodiff(outer, Active(x), Const(c))
    else:
        sad.autodiff(outer, Duplicated(x, np.ones(n)), Const(c), mode=Forward)
    snaps = traces[0].snaps
    # big; act and the nested call's input x (each with its tangent in forward mode)
    copies = 3 if mode == "reverse" else 5
    assert snaps.taken == copies
    assert snaps.nbytes == copies * n * 8


SAME_BITS = {
    "setitem": lambda m, v: m.__setitem__(Ellipsis, v),
    "copyto": lambda m, v: np.copyto(m, v),
    "fancy": lambda m, v: m.__setitem__([0, 1, 2], v),
    "setindex_mask": lambda m, v: sad.setindex(m, np.array([True, True, True]), v),
    "elementwise": lambda m, v: [m.__setitem__(i, float(v[i])) for i in range(3)],
}


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("write", sorted(SAME_BITS))
def test_equal_bits_with_another_derivative(write, mode):
    """f writes back the very bits the node read, without their derivative:
    a byte comparison alone would miss it (the outer tape sees the write)."""
    def outer(x):
        m = x * 1.0  # active

        def inner(y):
            r = np.sum(np.sin(y) * y * m)
            SAME_BITS[write](m, np.array(sad.primal(m)))  # no derivative now
            return r
        return np.sum(sad.gradient(inner, x)[0] * W)

    with pytest.raises(OverwrittenError, match="overwritten"):
        run(lambda x, c: outer(x), mode)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("write", ["setitem", "fancy", "copyto"])
def test_writes_to_other_memory_leave_active_operands_alone(write, mode):
    """Writes, of any kind, to memory the nested call did not read: other
    arrays, or another part of the buffer the node read a view of."""
    def outer(x, c, do):
        m = x * c  # active
        other = x * 2.0

        def inner(y):
            r = np.sum(np.sin(y[1:]) * m[1:])
            if do:
                if write == "setitem":
                    other[...] = 1.0
                    m[0] = 3.0
                elif write == "fancy":
                    other[[0, 2]] = np.array([1.0, 2.0])
                    m[[0]] = np.array([3.0])
                else:
                    np.copyto(other, 4.0)
                    np.copyto(m[:1], 3.0)
            return r
        return np.sum(sad.gradient(inner, x)[0] * W)

    got = run(lambda x, c: outer(x, c, True), mode)
    want = run(lambda x, c: outer(x, c, False), mode)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_constant_when_read_then_given_a_derivative(mode):
    """Inactive when the node read it, then written with a value of x (the
    buffer becomes active): the node's values were constants, and stay so."""
    def outer(x, c, write):
        m = np.zeros_like(x)
        m[...] = c

        def inner(y):
            r = np.sum(y * y * m)
            if write:
                m[...] = x * x
            return r
        return np.sum(sad.gradient(inner, x)[0] * W) + np.sum(m)

    got = run(lambda x, c: outer(x, c, True), mode)
    grad = 2 * C0 * W + 2 * X0  # the inner gradient read c; sum(m) = sum(x * x)
    np.testing.assert_allclose(got, grad if mode == "reverse" else grad @ DX, rtol=1e-12)
    fd = fd_gradient(lambda x, c: outer(x, c, True))
    np.testing.assert_allclose(got, fd if mode == "reverse" else fd @ DX, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("write", [True, False])
def test_memory_of_a_middle_trace_written(write):
    """The innermost call reads a value of the middle nested call (a plain
    array the middle call differentiates): it carries the middle level's
    derivative, so writing it raises; untouched, the result is the
    closed form."""
    def outer(x):
        p = np.array([1.0, 2.0, 3.0])

        def middle(z):
            def inner(y):
                r = np.sum(np.sin(y) * z * z)
                if write:
                    p[...] = 0.0
                return r
            return np.sum(sad.gradient(inner, x)[0] * W)
        return np.sum(sad.gradient(middle, p)[0])

    if write:
        with pytest.raises(OverwrittenError):
            sad.autodiff(outer, Active(X0.copy()))
        return
    got = sad.autodiff(outer, Active(X0.copy()))[0]
    # outer(x) = sum_i 2 p_i cos(x_i) W_i
    np.testing.assert_allclose(got, -2 * np.array([1.0, 2.0, 3.0]) * np.sin(X0) * W,
                               rtol=1e-12)


# --------------------------------------------------------------------------
# random inner programs: the outer buffer is written between the steps that read it

NESTED_STEPS = [  # (step, whether a node of the nested trace reads w itself)
    (lambda y, w: y * w, True),
    (lambda y, w: np.sin(y) * w + y, True),
    (lambda y, w: y / (1.0 + w * w), False),  # reads a fresh 1 + w*w instead
    (lambda y, w: np.maximum(y, w), True),
    (lambda y, w: y[2] * w + y, True),
]


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, len(NESTED_STEPS) - 1),
                          st.sampled_from(sorted(WRITES) + ["none"])), min_size=1, max_size=5),
       st.booleans(), st.sampled_from(["reverse", "forward"]))
def test_random_inner_programs(steps, active, mode):
    """Never silent: the result matches finite differences of the untraced
    outer function, or OverwrittenError is raised, and only when memory
    carrying the outer derivative was read by a node and then written (in
    reverse mode exactly then)."""
    def outer(x, c):
        m = x * c if active else c * 1.0

        def inner(y):
            for op, how in steps:
                if how != "none":
                    WRITES[how](m)
                y = NESTED_STEPS[op][0](y, m)
            return np.sum(y * y)
        return np.sum(sad.gradient(inner, x)[0] * W)

    read = False
    overwritten = False
    for op, how in steps:
        overwritten |= read and how != "none"
        read |= NESTED_STEPS[op][1]
    try:
        got = run(outer, mode)
    except OverwrittenError:
        assert active and overwritten
        return
    assert not (active and overwritten and mode == "reverse")
    fd = fd_gradient(outer)
    # repeated steps can grow the values to 1e10, where central differences
    # keep only a few digits: their error is estimated by halving the step
    err = np.abs(fd - fd_gradient(outer, h=5e-7))
    want, slack = (fd, err) if mode == "reverse" else (fd @ DX, err @ np.abs(DX))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 + 10 * np.max(slack))
