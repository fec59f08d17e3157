"""Writes whose source overlaps their destination (issue 13, item 5).

Every write form is run on hypothesis-generated overlapping pairs (offsets,
steps of either sign, lengths) and compared with the untraced call bit for
bit in both modes, then differentiated: finite differences, the dot-product
test between forward and reverse mode, restore=True and the shadows
accumulated once.  numpy's own result is the reference, including where it
is not as-if-copied: 1-D assignments with unequal steps of one sign, and
boolean masks (shadowad/support/overlap.py)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import shadowad as sad
from shadowad import (Duplicated, Forward, ForwardWithPrimal, ReverseWithPrimal, autodiff,
    autodiff_split)
from shadowad.support.overlap import numpy_sources
from shadowad.testing import (check_accumulate_once, check_dot_product, check_gradient,
    check_restore, fused_sweeps, same_bits)

N = 12
W = np.linspace(0.5, 1.5, N)
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

# each form writes a[d] from a[s] (s2: a second source)
FORMS = {
    "setitem": lambda a, d, s, s2: a.__setitem__(d, a[s]),
    "setindex": lambda a, d, s, s2: sad.setindex(a, d, a[s]),
    "copyto": lambda a, d, s, s2: np.copyto(a[d], a[s]),
    "iadd": lambda a, d, s, s2: a[d].__iadd__(a[s]),
    "setitem_iadd": lambda a, d, s, s2: a.__setitem__(d, a[d] + a[s]),
    "isub_product": lambda a, d, s, s2: a[d].__isub__(a[s] * a[s2]),
    "imul": lambda a, d, s, s2: a[d].__imul__(a[s]),
    "add_out": lambda a, d, s, s2: np.add(a[s], 1.0, out=a[d]),
    "mul_out": lambda a, d, s, s2: np.multiply(a[s], a[s2], out=a[d]),
    "sin_out": lambda a, d, s, s2: np.sin(a[s], out=a[d]),
    "neg_out": lambda a, d, s, s2: np.negative(a[s], out=a[d]),
    "axpy": lambda a, d, s, s2: sad.axpy(2.0, a[s], a[d]),
    "scal": lambda a, d, s, s2: sad.scal(a[s], a[d]),
    "scal_element": lambda a, d, s, s2: sad.scal(a[s][0], a[d]),
    "fancy_source": lambda a, d, s, s2: a.__setitem__(d, a[np.arange(N)[s]]),
    "broadcast_source": lambda a, d, s, s2: a.__setitem__(d, a[s][-1:]),
    "broadcast_mask": lambda a, d, s, s2: a.__setitem__(np.isin(np.arange(N), np.arange(N)[d]),
                                                        a[s][:1]),
}


@st.composite
def strided(draw, length=None):
    """(a slice of range(N) with a step of either sign, its length); the
    length is drawn unless given."""
    if length is None:
        length = draw(st.integers(1, N))
    steps = [k for k in (1, 2, 3, -1, -2, -3) if (length - 1) * abs(k) < N]
    step = draw(st.sampled_from(steps))
    span = (length - 1) * abs(step)
    lo = draw(st.integers(0, N - 1 - span))
    if step > 0:
        return slice(lo, lo + span + 1, step), length
    return slice(lo + span, None if lo == 0 else lo - 1, step), length


@st.composite
def overlapping(draw):
    d, n = draw(strided())
    s, _ = draw(strided(n))
    s2, _ = draw(strided(n))
    return d, s, s2


def _program(form, d, s, s2):
    def f(a):
        FORMS[form](a, d, s, s2)
        return np.sum(a * a * W)
    return f


def _start():
    return np.arange(1.0, N + 1) * 0.37 + 0.1


def check_write(f, a0):
    plain = a0.copy()
    want = f(plain)
    # both modes leave numpy's bits and agree with each other
    ra = a0.copy()
    _, r = autodiff(f, Duplicated(ra, np.zeros(N)), mode=ReverseWithPrimal)
    assert same_bits(ra, plain), (ra, plain)
    assert r == want
    fa = a0.copy()
    _, r = autodiff(f, Duplicated(fa, np.ones(N)), mode=ForwardWithPrimal)
    assert same_bits(fa, plain), (fa, plain)
    assert r == want
    args = (Duplicated(a0.copy(), np.zeros(N)),)
    check_gradient(f, *args)
    check_dot_product(f, *args)
    check_restore(f, *args)
    check_accumulate_once(f, *args)


@pytest.mark.parametrize("form", sorted(FORMS))
@settings(SETTINGS, max_examples=40)
@given(overlapping())
@example((slice(2, 6), slice(1, 8, 2), slice(8, 4, -1)))  # issue 13's
@example((slice(0, 8, 2), slice(1, 5), slice(3, 7)))
def test_overlapping_write(form, pair):
    check_write(_program(form, *pair), _start())


@pytest.mark.parametrize("form", ["setitem", "setindex", "copyto"])
def test_issue_example(form):
    """a[2:6] = a[1:8:2]: numpy (2.x at least) copies the old a[7] twice;
    both modes leave its values and differentiate them."""
    def f(a):
        FORMS[form](a, slice(2, 6), slice(1, 8, 2), None)
        return np.sum(a * a * W[:8])
    a = np.arange(8.0) + 1
    plain = a.copy()
    f(plain)
    which = plain.astype(int) - 1  # the element of a whose value each one holds
    ra, da = a.copy(), np.zeros(8)
    autodiff(f, Duplicated(ra, da))
    assert same_bits(ra, plain)
    g = 2 * plain * W[:8]
    want = np.zeros(8)
    np.add.at(want, which, g)
    assert np.allclose(da, want, rtol=1e-14)
    fa, dfa = a.copy(), np.arange(8.0) * 0.5
    t = autodiff(f, Duplicated(fa, dfa.copy()), mode=Forward)
    assert same_bits(fa, plain)
    assert np.isclose(t, np.vdot(g, dfa[which]))
    if plain.tolist() == [1, 2, 2, 4, 8, 8, 7, 8]:  # the issue's numpy
        assert np.allclose(da, [g[0], g[1] + g[2], 0, g[3], 0, 0, g[6], g[4] + g[5] + g[7]],
                           rtol=1e-14)


@SETTINGS
@given(st.lists(st.integers(0, N - 1), min_size=1, max_size=N), overlapping())
def test_fancy_and_mask_destinations(targets, pair):
    """a[list] = a[s] and a[mask] = a[s]: numpy buffers the source."""
    d, s, _ = pair
    n = len(range(N)[d])
    idx = (targets * n)[:n]
    mask = np.zeros(N, bool)
    mask[np.arange(N)[d]] = True

    def by_list(a):
        a[idx] = a[s]
        return np.sum(a * a * W)

    def by_mask(a):
        a[mask] = a[s]
        return np.sum(a * a * W)

    check_write(by_list, _start())
    check_write(by_mask, _start())


@st.composite
def block_pair(draw):
    """(dst, src) basic indices of one shape into a 3 x 4 matrix."""
    def axis(n, length=None):
        step = draw(st.sampled_from([1, 2, -1, -2]))
        if length is None:
            length = draw(st.integers(1, n))
        length = min(length, (n - 1) // abs(step) + 1)
        span = (length - 1) * abs(step)
        lo = draw(st.integers(0, n - 1 - span))
        if step > 0:
            return slice(lo, lo + span + 1, step), length
        return slice(lo + span, None if lo == 0 else lo - 1, step), length
    r, nr = axis(3)
    c, nc = axis(4)
    rs, nrs = axis(3, nr)
    cs, ncs = axis(4, nc)
    if (nrs, ncs) != (nr, nc):  # a shorter axis: broadcast a single row or column
        rs = rs if nrs == nr else slice(rs.start, rs.start + 1) if rs.step > 0 else \
            slice(rs.start, rs.start - 1 if rs.start else None, -1)
        cs = cs if ncs == nc else slice(cs.start, cs.start + 1) if cs.step > 0 else \
            slice(cs.start, cs.start - 1 if cs.start else None, -1)
    return (r, c), (rs, cs)


@SETTINGS
@given(block_pair(), st.booleans())
def test_two_dimensional(pair, transposed):
    """M[r, c] = M[r', c'] and M[r, c] += M[r', c'] on a matrix view of a
    (C order, or a transposed view of a 4 x 3 reshape)."""
    d, s = pair

    def matrix(a):
        return a.reshape(4, 3).T if transposed else a.reshape(3, 4)

    def copy(a):
        m = matrix(a)
        m[d] = m[s]
        return np.sum(a * a * W)

    def add(a):
        m = matrix(a)
        m[d] += m[s]
        return np.sum(a * a * W)

    check_write(copy, _start())
    check_write(add, _start())


def test_numpy_sources():
    """None where numpy's assignment is as-if-copied; else the source elements
    whose values numpy leaves."""
    a = np.arange(10.0)
    e = Ellipsis
    assert numpy_sources(a[1:], e, a[:-1]) is None  # equal strides
    assert numpy_sources(a[:5], e, a[5:]) is None  # apart

    def agrees(dst, idx, src):
        """numpy_sources(dst, idx, src) describes what numpy does to a copy."""
        base = a.copy()
        d = np.ndarray(dst.shape, dst.dtype, base, dst.__array_interface__["data"][0] -
                       a.__array_interface__["data"][0], dst.strides)
        sv = np.ndarray(src.shape, src.dtype, base, src.__array_interface__["data"][0] -
                        a.__array_interface__["data"][0], src.strides)
        d[idx] = sv
        got = numpy_sources(dst, idx, src)
        if got is None:
            want = a.copy()
            wd = np.ndarray(dst.shape, dst.dtype, want, dst.__array_interface__["data"][0] -
                            a.__array_interface__["data"][0], dst.strides)
            wd[idx] = src.copy()
            return same_bits(base, want)
        return same_bits(d[idx], src[got])

    b = a.reshape(2, 5)
    mask = np.arange(10) < 7
    assert agrees(a[:5], e, a[9:4:-1])
    assert agrees(b[:, 1:4], e, b[:, 0:3])
    assert agrees(a, [0, 1, 2], a[2::-1])
    assert agrees(a[2:6], e, a[1:8:2])
    assert agrees(a, mask, a[6::-1])
    assert agrees(a[8:0:-2], e, a[::-3][:4])


def test_batch_lanes_follow_numpy():
    """BatchDuplicated lanes go through the same path as one lane."""
    def f(a):
        a[2:6] = a[1:8:2]
        return np.sum(a * a * W)
    d1, d2 = np.linspace(0, 1, N), np.linspace(1, 2, N)
    one = [autodiff(f, Duplicated(_start(), d.copy()), mode=Forward) for d in (d1, d2)]
    both = autodiff(f, sad.BatchDuplicated(_start(), (d1.copy(), d2.copy())), mode=Forward)
    assert np.allclose(both, one, rtol=1e-14)


BIG = 20000  # past the lazy-shadow and fusion thresholds (csrc/core/slot.c, fuse.c)


def _same_fused_or_not(f, a0, w):
    """The fused sweep (csrc/core/fuse.c) and the record-by-record one leave the
    same bits in the gradient and in memory."""
    out = []
    for fuse in (1, 0):
        a, da = a0.copy(), w.copy()
        with fused_sweeps(fuse):
            _, tape = autodiff_split(f, Duplicated(a, da))
        tape.reverse()
        out.append((a, da))
    assert same_bits(out[0][0], out[1][0]) and same_bits(out[0][1], out[1][1])


@pytest.mark.parametrize("form", ["setitem", "iadd", "add_out", "mul_out", "sin_out", "axpy",
                                  "setitem_iadd", "stencil"])
@pytest.mark.parametrize("shift", [-3, 1])
@pytest.mark.parametrize("dstep,sstep", [(1, 1), (-1, -1), (1, -1), (1, 2), (2, 1)])
def test_large_overlapping_writes(form, shift, dstep, sstep):
    """The same forms on arrays large enough for lazy shadows and fused
    sweeps: numpy's bits in both modes, the dot-product test, restore and
    accumulate-once (finite differences are the small tests' job)."""
    m = BIG // 3
    mid = BIG // 2

    def run(step, at):
        lo = at - (m * abs(step)) // 2
        if step > 0:
            return slice(lo, lo + step * m, step)
        hi = lo + abs(step) * (m - 1)
        return slice(hi, hi - abs(step) * m, step)
    d, s, s2 = run(dstep, mid), run(sstep, mid + shift), run(-sstep, mid - 2 * shift)
    w = np.linspace(0.5, 1.5, BIG)

    def f(a):
        if form == "stencil":
            t = a[s] * 2.0 - a[s2]
            a[d] += 0.25 * (t + a[s])
        else:
            FORMS[form](a, d, s, s2)
        return np.sum(a * a * w)

    a0 = np.sin(np.arange(BIG) * 0.01) + 2.0
    plain = a0.copy()
    want = f(plain)
    for mode in (ReverseWithPrimal, ForwardWithPrimal):
        ra = a0.copy()
        _, r = autodiff(f, Duplicated(ra, np.ones(BIG)), mode=mode)
        assert same_bits(ra, plain)
        assert r == want
    args = (Duplicated(a0.copy(), np.zeros(BIG)),)
    _same_fused_or_not(f, a0, w)
    check_dot_product(f, *args)
    check_restore(f, *args)
    check_accumulate_once(f, *args)


@pytest.mark.parametrize("how", ["const", "plain_source", "const_mask"])
@settings(SETTINGS, max_examples=30)
@given(overlapping())
@example((slice(2, 6), slice(1, 8, 2), slice(1, 5)))
def test_inactive_overlapping_writes(how, pair):
    """Writes with no derivative (into Const memory, or from a plain view
    taken with sad.primal) leave numpy's bits too, restore=True and an
    exception in f give the memory back bit for bit."""
    d, s, _ = pair
    mask = np.zeros(N, bool)
    mask[np.arange(N)[d]] = True

    def f(x, c, fail=False):
        if how == "const":
            c[d] = c[s]
        elif how == "const_mask":
            c[mask] = c[s]
        else:
            x[d] = sad.primal(x)[s]
        if fail:
            raise KeyError("half-way")
        return np.sum(x * c)

    x0, c0 = _start(), _start()[::-1].copy()
    px, pc = x0.copy(), c0.copy()
    want = f(px, pc)
    for mode in (ReverseWithPrimal, ForwardWithPrimal):
        x, c = x0.copy(), c0.copy()
        _, r = autodiff(f, Duplicated(x, np.ones(N)), sad.Const(c), mode=mode)
        assert same_bits(x, px) and same_bits(c, pc) and r == want
        for restore, fail in ((True, False), (False, True)):
            x, c = x0.copy(), c0.copy()
            try:
                autodiff(lambda x, c: f(x, c, fail), Duplicated(x, np.ones(N)), sad.Const(c),
                         mode=mode, restore=restore)
            except KeyError:
                assert fail
            assert same_bits(x, x0) and same_bits(c, c0)


OTHER_FORMS = {
    "sum_axis_out": lambda a: np.sum(a.reshape(3, 4), axis=0, out=a[2:6]),
    "sum_axis_out_reversed": lambda a: np.sum(a.reshape(3, 4), axis=0, out=a[5:1:-1]),
    "matmul_out": lambda a: np.matmul(a[:9].reshape(3, 3), a[3:12].reshape(3, 3),
                                      out=a[:9].reshape(3, 3)),
    "matvec_out": lambda a: np.matmul(a[:9].reshape(3, 3), a[1:4], out=a[2:5]),
    "dot_out": lambda a: np.dot(a[:9].reshape(3, 3), a[1:4], out=a[2:5]),
    "outer_out": lambda a: np.outer(a[:3], a[2:5], out=a[:9].reshape(3, 3)),
    "cumsum_out": lambda a: np.cumsum(a[:6], out=a[3:9]),
    "idiv": lambda a: a[2:8].__itruediv__(a[1:7]),
    "pow_out": lambda a: np.power(a[1:7], a[0:6], out=a[2:8]),
    "exp_out_reversed": lambda a: np.exp(a[7:1:-1] * 0.1, out=a[2:8]),
    "maximum_out": lambda a: np.maximum(a[1:7], a[6:0:-1], out=a[2:8]),
    "clip_out": lambda a: np.clip(a[1:7], 1.0, 3.0, out=a[2:8]),
    "subtract_out_transposed": lambda a: np.subtract(a.reshape(3, 4)[:, :3].T,
                                                     a.reshape(4, 3)[:3],
                                                     out=a.reshape(4, 3)[1:]),
    "iadd_transposed": lambda a: a.reshape(4, 3)[:3, :].__iadd__(a.reshape(3, 4)[:, :3].T),
    "scalar_loop": lambda a: [a.__setitem__(i, a[i - 1] * a[i + 1]) for i in range(1, N - 1)],
    "setindex_element": lambda a: sad.setindex(a, 3, a[4] * a[2]),
}


@pytest.mark.parametrize("form", sorted(OTHER_FORMS))
def test_other_overlapping_outputs(form):
    """out= of reductions, products and the other ufuncs, transposed views,
    and element writes, over memory their inputs read."""
    def f(a):
        OTHER_FORMS[form](a)
        return np.sum(a * a * W)
    check_write(f, _start())


@pytest.mark.parametrize("form", ["setitem", "iadd", "mul_out"])
def test_forward_lanes_and_differences(form):
    """check_forward: tangents against finite differences, the dot-product
    test and BatchDuplicated lanes against one-lane calls."""
    from shadowad.testing import check_forward
    check_forward(_program(form, slice(2, 6), slice(1, 8, 2), slice(8, 4, -1)), _start())
    check_forward(_program(form, slice(0, 8, 2), slice(1, 5), slice(3, 7)), _start())


def _pairs():
    return [(slice(2, 6), slice(1, 8, 2), slice(8, 4, -1)),
            (slice(0, 8, 2), slice(1, 5), slice(3, 7)),
            (slice(1, None), slice(None, -1), slice(N - 1, 0, -1))]


@pytest.mark.parametrize("form", ["setitem", "copyto", "iadd", "mul_out", "axpy"])
@pytest.mark.parametrize("pair", range(3))
def test_strided_argument(form, pair):
    """The written array is itself a strided, reversed view (its tangent is
    then copied into lanes memory in forward mode)."""
    d, s, s2 = _pairs()[pair]
    f = _program(form, d, s, s2)
    big = np.zeros(3 * N)
    a = big[::-3]
    a[...] = _start()
    dbig = np.zeros(3 * N)
    pbig = big.copy()
    f(pbig[::-3])  # numpy's result depends on the layout: the same one
    plain = pbig[::-3]
    for mode in (ReverseWithPrimal, ForwardWithPrimal):
        big[::-3] = _start()
        dbig[...] = 1.0
        autodiff(f, Duplicated(big[::-3], dbig[::-3]), mode=mode)
        assert same_bits(big[::-3], plain)
    args = (Duplicated(a, dbig[::-3]),)
    check_gradient(f, *args)
    check_dot_product(f, *args)
    check_restore(f, *args)


@pytest.mark.parametrize("form", ["setitem", "iadd", "mul_out"])
@pytest.mark.parametrize("pair", range(3))
def test_two_arguments_alias(form, pair):
    """The source and the destination come from two arguments that are views
    of one array (passed with one activity, their shadows views of one)."""
    d, s, s2 = _pairs()[pair]

    def f(x, y):  # x and y are both all of the memory
        if form == "setitem":
            x[d] = y[s]
        elif form == "iadd":
            x[d] += y[s]
        else:
            np.multiply(y[s], x[s2], out=x[d])
        return np.sum(x * y * W)

    a0 = _start()
    plain = a0.copy()
    f(plain, plain)
    for mode in (ReverseWithPrimal, ForwardWithPrimal):
        a, da = a0.copy(), np.ones(N)
        autodiff(f, Duplicated(a, da), Duplicated(a[:], da[:]), mode=mode)
        assert same_bits(a, plain)

    def g(a):
        return f(a, a)
    args = (Duplicated(a0.copy(), np.zeros(N)),)
    check_gradient(g, *args)
    check_dot_product(g, *args)


@settings(SETTINGS, max_examples=200)
@given(overlapping(), block_pair(), st.booleans())
def test_equal_steps_are_as_if_copied(pair, block, transposed):
    """numpy_sources answers None without asking numpy when the source has
    the destination's shape and strides; numpy must then be as-if-copied."""
    d, s, _ = pair
    if range(N)[d].step == range(N)[s].step:
        a = _start()
        b = a.copy()
        a[d] = a[s]
        b[d] = b[s].copy()
        assert same_bits(a, b)
    (r, c), (rs, cs) = block
    if (r.step, c.step) == (rs.step, cs.step):
        a = _start()
        b = a.copy()
        ma, mb = (a.reshape(4, 3).T, b.reshape(4, 3).T) if transposed else \
            (a.reshape(3, 4), b.reshape(3, 4))
        if ma[r, c].shape == ma[rs, cs].shape:
            ma[r, c] = ma[rs, cs]
            mb[r, c] = mb[rs, cs].copy()
            assert same_bits(a, b)


def test_forward_lanes_of_a_mask_write():
    mask = np.arange(N) < 7

    def f(a):
        a[mask] = a[6::-1]
        return np.sum(a * a * W)
    from shadowad.testing import check_forward
    check_forward(f, _start())
    check_write(f, _start())


@st.composite
def programs(draw):
    """One to three overlapping writes of any form, one after the other."""
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        form = draw(st.sampled_from(sorted(FORMS)))
        ops.append((form,) + draw(overlapping()))
    return ops


@settings(SETTINGS, max_examples=60)
@given(programs())
def test_composed_overlapping_writes(ops):
    """Writes in sequence: numpy's bits in both modes, and the reverse
    gradient equal to forward mode's Jacobian (exact engines, not finite
    differences, whose noise grows with the values these programs reach),
    restore and accumulate-once."""
    def f(a):
        for form, d, s, s2 in ops:
            FORMS[form](a, d, s, s2)
        return np.sum(a * a * W)

    a0 = _start()
    plain = a0.copy()
    want = f(plain)
    for mode in (ReverseWithPrimal, ForwardWithPrimal):
        a = a0.copy()
        _, r = autodiff(f, Duplicated(a, np.ones(N)), mode=mode)
        assert same_bits(a, plain) and r == want
    da = np.zeros(N)
    autodiff(f, Duplicated(a0.copy(), da))
    jf = sad.jacobian(lambda a: f(a) * np.ones(1), a0.copy(), mode=Forward)[0]
    assert np.allclose(da, jf, rtol=1e-11, atol=1e-11 * np.max(np.abs(jf)))
    args = (Duplicated(a0.copy(), np.zeros(N)),)
    check_dot_product(f, *args)
    check_restore(f, *args)
    check_accumulate_once(f, *args)
