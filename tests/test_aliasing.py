"""Arguments that share memory, at the call (shadowad/support/aliasing.py).

Refused, in every mode, with the positions and the fix: a shadow that shares
memory with any primal; the same memory with two different shadows (or
shadows not laid out as the primals are); shadows shared by different
memories (fully or partly); lanes of a BatchDuplicated that share memory; a
Vector shadow whose length changed after it was annotated.  Accepted, and
right: the same memory passed several times with the same shadow memory
(the same array, overlapping slices, a transposed view of one base), arrays
and Vectors, Duplicated, DuplicatedNoNeed and BatchDuplicated, reverse and
forward mode."""
import numpy as np
import pytest
from hypothesis import assume, event, given, settings, strategies as st

import shadowad as sad
from shadowad import (Active, BatchDuplicated, Const, Duplicated, DuplicatedNoNeed, Forward,
    ForwardWithPrimal, Reverse, ReverseWithPrimal, autodiff)
from shadowad.support.aliasing import sharing_groups
from shadowad.testing import same_bits

Vector = sad.Vector


def _split(f, *args):
    _, tape = sad.autodiff_split(f, *args)
    return tape.reverse()


CALLS = {
    "Reverse": lambda f, *a: autodiff(f, *a, mode=Reverse),
    "ReverseWithPrimal": lambda f, *a: autodiff(f, *a, mode=ReverseWithPrimal),
    "restore": lambda f, *a: autodiff(f, *a, restore=True),
    "Forward": lambda f, *a: autodiff(f, *a, mode=Forward),
    "ForwardWithPrimal": lambda f, *a: autodiff(f, *a, mode=ForwardWithPrimal),
    "split": _split,
    "gradient": lambda f, *a: sad.gradient(f, *a),
}
FORWARD = {"Forward", "ForwardWithPrimal"}


def _f(*args):
    return None


def vec(values):
    return Vector(np.array(values, dtype=float))


# --------------------------------------------------------------------------
# refused: (name, arguments, words of the message); each builds fresh memory

def _vector_shadow_is_other_primal():
    v, w, w0 = vec([1, 2]), vec([0, 0]), vec([0, 0])
    return [Duplicated(v, w), Duplicated(w, w0)]


def _vector_shadow_popped():
    v, w = vec([1, 2]), vec([0, 0])
    a = Duplicated(v, w)
    w.pop()
    return [a]


def _vector_shadow_pushed():
    v, w = vec([1, 2]), vec([0, 0])
    a = Duplicated(v, w)
    w.push(0.0)
    return [Const(1.0), a]


def _vector_primal_popped():
    v, w = vec([1, 2]), vec([0, 0])
    a = DuplicatedNoNeed(v, w)
    v.pop()
    return [a]


def _vector_twice_two_shadows():
    v = vec([1, 2])
    return [Duplicated(v, vec([0, 0])), Duplicated(v, vec([0, 0]))]


def _vectors_share_shadow():
    w = vec([0, 0])
    return [Duplicated(vec([1, 2]), w), Duplicated(vec([3, 4]), w)]


def _vector_shadow_is_const():
    v, w = vec([1, 2]), vec([0, 0])
    return [Duplicated(v, w), Const(w)]


def _array_twice_two_shadows():
    x = np.arange(4.0)
    return [Duplicated(x, np.zeros(4)), Duplicated(x, np.zeros(4))]


def _array_views_unrelated_shadows():
    x = np.arange(6.0)
    return [Duplicated(x[:4], np.zeros(4)), Duplicated(x[2:], np.zeros(4))]


def _overlap_shadows_swapped():
    x, d = np.arange(6.0), np.zeros(6)
    return [Duplicated(x[:4], d[2:]), Duplicated(x[2:], d[:4])]


def _same_base_shadow_not_transposed():
    x, d = np.arange(6.0).reshape(2, 3), np.zeros((2, 3))
    return [Duplicated(x, d), Duplicated(x.T, np.zeros((3, 2)))]


def _transposed_primal_plain_shadow():
    x, d = np.arange(4.0).reshape(2, 2), np.zeros((2, 2))
    return [Duplicated(x, d), Duplicated(x.T, d)]  # d is not d.T


def _reversed_view_same_shadow():
    x, d = np.arange(4.0), np.zeros(4)
    return [Duplicated(x, d), Duplicated(x[::-1], d)]


def _two_primals_one_shadow():
    d = np.zeros(3)
    return [Duplicated(np.ones(3), d), Duplicated(np.ones(3), d)]


def _shadows_partly_overlap():
    d = np.zeros(5)
    return [Duplicated(np.ones(3), d[:3]), Duplicated(np.ones(3), d[2:])]


def _shadows_strided_interleave():
    d = np.zeros(6)
    return [Duplicated(np.ones(3), d[::2]), Duplicated(np.ones(4), d[1:5])]


def _shadow_is_const_view():
    c = np.zeros(6)
    return [Duplicated(np.ones(3), c[1:4]), Const(c)]


def _shadow_is_other_duplicated_primal():
    y = np.zeros(3)
    return [Duplicated(y, np.zeros(3)), Duplicated(np.ones(3), y[::-1])]


def _noneed_shadow_is_const():
    c = np.zeros(3)
    return [DuplicatedNoNeed(np.ones(3), c), Const(c)]


def _batch_lanes_alias():
    d = np.zeros(3)
    return [BatchDuplicated(np.ones(3), (d, d))]


def _batch_lanes_overlap():
    d = np.zeros(4)
    return [BatchDuplicated(np.ones(3), (d[:3], d[1:]))]


def _batch_lanes_of_two_args():
    d = np.zeros(3)
    return [BatchDuplicated(np.ones(3), (np.zeros(3), d)),
            BatchDuplicated(np.ones(3), (d, np.zeros(3)))]


def _batch_lane_is_primal():
    x = np.ones(3)
    return [BatchDuplicated(np.ones(3), (np.zeros(3), x)), Const(x)]


def _batch_same_memory_lanes_differ():
    x = np.ones(3)
    return [BatchDuplicated(x, (np.zeros(3), np.zeros(3))),
            BatchDuplicated(x, (np.zeros(3), np.zeros(3)))]


def _shadow_reshaped_in_place():
    x, d = np.ones(4), np.zeros(4)
    a = Duplicated(x, d)
    d.shape = (2, 2)
    return [a]


def _shadow_made_readonly():
    x, d = np.ones(4), np.zeros(4)
    a = Duplicated(x, d)
    d.flags.writeable = False
    return [a]


def _duplicated_and_noneed_same_memory():
    x, d = np.ones(3), np.zeros(3)
    return [Duplicated(x, d), DuplicatedNoNeed(x, d)]


def _const_and_duplicated_same_vector():
    v = vec([1, 2])
    return [Const(v), Duplicated(v, vec([0, 0]))]


REFUSED = [
    (_vector_shadow_is_other_primal, ["shadow of argument 0", "primal Vector of argument 1",
                                      "sad.Vector(np.zeros(len(v)))"]),
    (_vector_shadow_popped, ["argument 0", "length 1", "length 2",
                             "when autodiff is called"]),
    (_vector_shadow_pushed, ["argument 1", "length 3", "length 2"]),
    (_vector_primal_popped, ["argument 0", "DuplicatedNoNeed", "length 2", "length 1"]),
    (_vector_twice_two_shadows, ["arguments 0 and 1", "same Vector", "different shadows",
                                 "same shadow Vector"]),
    (_vectors_share_shadow, ["arguments 0 and 1", "shadows that share memory",
                             "primals that do not"]),
    (_vector_shadow_is_const, ["shadow of argument 0", "primal Vector of argument 1"]),
    (_array_twice_two_shadows, ["arguments 0 and 1", "different shadows",
                                "Duplicated(x[a], dx[a])"]),
    (_array_views_unrelated_shadows, ["arguments 0 and 1", "different shadows"]),
    (_overlap_shadows_swapped, ["arguments 0 and 1", "different shadows"]),
    (_same_base_shadow_not_transposed, ["arguments 0 and 1", "different shadows"]),
    (_transposed_primal_plain_shadow, ["arguments 0 and 1", "different shadows"]),
    (_reversed_view_same_shadow, ["arguments 0 and 1", "different shadows"]),
    (_two_primals_one_shadow, ["arguments 0 and 1", "primals that do not",
                               "shadow of its own"]),
    (_shadows_partly_overlap, ["arguments 0 and 1", "primals that do not"]),
    (_shadows_strided_interleave, ["arguments 0 and 1", "primals that do not"]),
    (_shadow_is_const_view, ["shadow of argument 0", "primal of argument 1",
                             "np.zeros_like(x)"]),
    (_shadow_is_other_duplicated_primal, ["shadow of argument 1", "primal of argument 0"]),
    (_noneed_shadow_is_const, ["shadow of argument 0", "primal of argument 1"]),
    (_batch_lanes_alias, ["argument 0", "shadow 0 and shadow 1", "own memory"]),
    (_batch_lanes_overlap, ["argument 0", "shadow 0 and shadow 1"]),
    (_batch_lanes_of_two_args, ["arguments 0 and 1", "shadow 1 and shadow 0"]),
    (_batch_lane_is_primal, ["shadow 1 of argument 0", "primal of argument 1"]),
    (_batch_same_memory_lanes_differ, ["arguments 0 and 1", "different shadows", "lane 0"]),
    (_shadow_reshaped_in_place, ["argument 0", "shape (2, 2)", "congruent"]),
    (_shadow_made_readonly, ["argument 0", "writeable"]),
    (_duplicated_and_noneed_same_memory, ["arguments 0 and 1", "Duplicated and "
                                          "DuplicatedNoNeed", "one activity"]),
    (_const_and_duplicated_same_vector, ["arguments 0 and 1", "same Vector", "Const and "
                                         "Duplicated"]),
]
BATCH = {_batch_lanes_alias, _batch_lanes_overlap, _batch_lanes_of_two_args,
         _batch_lane_is_primal, _batch_same_memory_lanes_differ}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("make, words", REFUSED, ids=[m.__name__[1:] for m, _ in REFUSED])
def test_refused_at_the_call(make, words, call):
    if call == "split" and make in BATCH:
        pytest.skip("autodiff_split refuses BatchDuplicated altogether")
    args = make()
    ran = []

    def f(*a):
        ran.append(1)
    with pytest.raises(ValueError) as e:
        CALLS[call](f, *args)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert not ran  # refused before f ran


def test_shadow_of_an_active_array_argument():
    x = np.ones(3)
    with pytest.raises(ValueError, match="shadow of argument 1 shares memory with the primal "
                                         "of argument 0"):
        autodiff(_f, Active(x), Duplicated(np.ones(3), x))


def test_refused_before_any_write():
    """A refusal leaves every primal and shadow as it was."""
    x, d = np.arange(4.0), np.arange(4.0) + 10
    with pytest.raises(ValueError):
        autodiff(lambda a, b: a.__setitem__(0, 5.0), Duplicated(x, d), Duplicated(x, d.copy()))
    assert x.tolist() == [0, 1, 2, 3] and d.tolist() == [10, 11, 12, 13]


# --------------------------------------------------------------------------
# accepted and right: memory passed several times with the same shadow memory
#
# Each case is (f, views): views(mem) gives the arguments' arrays as views of
# one base array; the shadows are the same views of one shadow base.  The
# plain objective L(base) = f(*views(base)) + <seed, base after f> is
# differentiated by central differences.

def _writes_through_one_reads_through_other(a, b):
    a[0] = b[1] * 3.0
    b[2] *= a[1]
    return b[0] * b[2] + np.sum(a * a)


def _overlapping_update(a, b):
    a[1:] *= b[:-1]
    b[0] += np.sin(a[-1])
    return np.sum(b * b) * 0.5


def _matrix_and_transpose(A, At):
    A[0, 1] = At[0, 1] * At[1, 1]      # A[0, 1] = A[1, 0] * A[1, 1]
    At[:, 0] = np.exp(A[0]) * 0.5      # column 0 of A.T is row 0 of A
    return np.sum(A * At)


CASES = {
    "same_array": (_writes_through_one_reads_through_other, (6,), lambda m: (m, m)),
    "same_array_strided": (_writes_through_one_reads_through_other, (12,),
                           lambda m: (m[::2], m[::2])),
    "same_array_reversed": (_writes_through_one_reads_through_other, (6,),
                            lambda m: (m[::-1], m[::-1])),
    "overlapping_slices": (_overlapping_update, (7,), lambda m: (m[:5], m[2:])),
    "overlapping_strided": (_overlapping_update, (12,), lambda m: (m[:10:2], m[2::2])),
    "transpose_of_one_base": (_matrix_and_transpose, (3, 3), lambda m: (m, m.T)),
}


def _plain_objective(f, views, seed):
    def L(base):
        b = base.copy()
        r = f(*views(b))
        return r + float(np.sum(seed * b))
    return L


def _fd_gradient(L, base, h=1e-6):
    g = np.zeros(base.shape)
    for i in np.ndindex(base.shape):
        e = np.zeros(base.shape)
        e[i] = h
        g[i] = (L(base + e) - L(base - e)) / (2 * h)
    return g


def _final(f, views, base):
    b = base.copy()
    f(*views(b))
    return b


@pytest.mark.parametrize("ann", [Duplicated, DuplicatedNoNeed])
@pytest.mark.parametrize("case", list(CASES))
def test_same_memory_same_shadow_reverse(case, ann):
    f, shape, views = CASES[case]
    rng = np.random.default_rng(len(case))
    base = rng.uniform(0.5, 1.5, shape)
    seed = rng.standard_normal(shape)
    x, dx = base.copy(), seed.copy()
    _, value = autodiff(f, *[ann(p, s) for p, s in zip(views(x), views(dx))],
                        mode=ReverseWithPrimal)
    assert value == f(*views(base.copy()))
    assert x.tobytes() == _final(f, views, base).tobytes()
    want = _fd_gradient(_plain_objective(f, views, seed), base)
    np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-8)
    # restore=True puts the one memory back bit for bit
    x, dx = base.copy(), seed.copy()
    autodiff(f, *[ann(p, s) for p, s in zip(views(x), views(dx))], restore=True)
    assert x.tobytes() == base.tobytes()
    np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", list(CASES))
def test_same_memory_same_shadow_split(case):
    f, shape, views = CASES[case]
    rng = np.random.default_rng(len(case) + 1)
    base = rng.uniform(0.5, 1.5, shape)
    x, dx = base.copy(), np.zeros(shape)
    _, tape = sad.autodiff_split(f, *[Duplicated(p, s) for p, s in zip(views(x), views(dx))])
    tape.reverse(seed=2.0)
    want = _fd_gradient(_plain_objective(f, views, np.zeros(shape)), base)
    np.testing.assert_allclose(dx, 2.0 * want, rtol=1e-6, atol=1e-8)


def _directional(f, views, base, direction, h=1e-6):
    """(d result, d final memory) along ``direction``, by central differences."""
    def run(b):
        b = b.copy()
        return f(*views(b)), b
    (r1, m1), (r2, m2) = run(base + h * direction), run(base - h * direction)
    return (r1 - r2) / (2 * h), (m1 - m2) / (2 * h)


@pytest.mark.parametrize("ann", [Duplicated, DuplicatedNoNeed])
@pytest.mark.parametrize("case", list(CASES))
def test_same_memory_same_shadow_forward(case, ann):
    f, shape, views = CASES[case]
    rng = np.random.default_rng(len(case) + 2)
    base = rng.uniform(0.5, 1.5, shape)
    direction = rng.standard_normal(shape)
    x, dx = base.copy(), direction.copy()
    t, value = autodiff(f, *[ann(p, s) for p, s in zip(views(x), views(dx))],
                        mode=ForwardWithPrimal)
    assert value == f(*views(base.copy()))
    assert x.tobytes() == _final(f, views, base).tobytes()
    want_t, want_mem = _directional(f, views, base, direction)
    np.testing.assert_allclose(t, want_t, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, want_mem, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", list(CASES))
def test_same_memory_same_lanes_batch(case):
    """BatchDuplicated of the same memory with the same lanes: each lane is
    right, in forward mode (tangents) and reverse mode (one sweep per lane)."""
    f, shape, views = CASES[case]
    rng = np.random.default_rng(len(case) + 3)
    base = rng.uniform(0.5, 1.5, shape)
    dirs = [rng.standard_normal(shape) for _ in range(3)]
    x, ds = base.copy(), [d.copy() for d in dirs]
    per_arg = [tuple(views(d)[j] for d in ds) for j in range(2)]
    ts = autodiff(f, *[BatchDuplicated(p, lanes) for p, lanes in zip(views(x), per_arg)],
                  mode=Forward)
    for lane, d in enumerate(dirs):
        want_t, want_mem = _directional(f, views, base, d)
        np.testing.assert_allclose(ts[lane], want_t, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(ds[lane], want_mem, rtol=1e-6, atol=1e-8)
    x, ds = base.copy(), [d.copy() for d in dirs]
    per_arg = [tuple(views(d)[j] for d in ds) for j in range(2)]
    autodiff(f, *[BatchDuplicated(p, lanes) for p, lanes in zip(views(x), per_arg)])
    assert x.tobytes() == _final(f, views, base).tobytes()
    for lane, d in enumerate(dirs):
        want = _fd_gradient(_plain_objective(f, views, d), base)
        np.testing.assert_allclose(ds[lane], want, rtol=1e-6, atol=1e-8)


def test_views_with_shadow_of_another_layout():
    """The shadows correspond element for element although their layout is not
    the primals' (a Fortran-ordered shadow base of a C-ordered primal)."""
    f, _, views = CASES["overlapping_slices"]
    base = np.linspace(0.5, 1.5, 7)
    dbase = np.zeros((2, 7), order="F")[0]  # strided shadow memory
    x = base.copy()
    autodiff(f, *[Duplicated(p, s) for p, s in zip(views(x), views(dbase))])
    want = _fd_gradient(_plain_objective(f, views, np.zeros(7)), base)
    np.testing.assert_allclose(dbase, want, rtol=1e-6, atol=1e-8)


def test_disjoint_views_of_one_base_and_shadow():
    x, dx = np.arange(1.0, 7.0), np.zeros(6)

    def f(a, b):
        a[0] = b[0] * b[1]
        return np.sum(a) + b[2]
    autodiff(f, Duplicated(x[:3], dx[:3]), Duplicated(x[3:], dx[3:]))
    assert dx.tolist() == [0.0, 1.0, 1.0, 5.0, 4.0, 1.0]


# --------------------------------------------------------------------------
# Vectors passed twice with the same shadow Vector

def _vector_program(a, b):
    a.push(b[0] * b[1])
    t = b.pop()          # the value a pushed
    a[0] = t * a[1]
    return a[0] + b[1] * 2.0


def _vector_plain(values):
    v = Vector(np.array(values))
    return _vector_program(v, v), v[:]


@pytest.mark.parametrize("ann", [Duplicated, DuplicatedNoNeed])
def test_same_vector_same_shadow_reverse(ann):
    base = np.array([1.5, 0.5, 2.0])
    v, w = Vector(base), Vector(np.zeros(3))
    _, value = autodiff(_vector_program, ann(v, w), ann(v, w), mode=ReverseWithPrimal)
    want_value, want_final = _vector_plain(base)
    assert value == want_value and v[:].tolist() == want_final.tolist()
    h, want = 1e-6, np.zeros(3)
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        want[i] = (_vector_plain(base + e)[0] - _vector_plain(base - e)[0]) / (2 * h)
    np.testing.assert_allclose(w[:], want, rtol=1e-6, atol=1e-8)


def test_same_vector_same_shadow_forward():
    base, direction = np.array([1.5, 0.5, 2.0]), np.array([0.3, -1.0, 0.7])
    v, w = Vector(base), Vector(direction)
    t = autodiff(_vector_program, Duplicated(v, w), Duplicated(v, w), mode=Forward)
    h = 1e-6
    (r1, m1), (r2, m2) = _vector_plain(base + h * direction), _vector_plain(base - h * direction)
    np.testing.assert_allclose(t, (r1 - r2) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(w[:], (m1 - m2) / (2 * h), rtol=1e-6, atol=1e-8)


def test_vector_shadow_length_checked_at_every_call():
    """An annotation reused after its Vectors changed length together is fine;
    after only one of them changed, the call is refused and nothing moves."""
    v, w = vec([1, 2]), vec([0, 0])
    a = Duplicated(v, w)
    v.push(3.0)
    w.push(0.0)
    autodiff(lambda a: a[2] * a[0], a)
    assert w[:].tolist() == [3.0, 0.0, 1.0]
    w.pop()
    for call in CALLS.values():
        with pytest.raises(ValueError, match="argument 0: Duplicated: shadow Vector has "
                                             "length 2, primal has length 3"):
            call(lambda a: a[2] * a[0], a)
    assert v[:].tolist() == [1.0, 2.0, 3.0] and w[:].tolist() == [3.0, 0.0]


def test_batch_vector_lanes_checked_in_forward_mode():
    v = vec([1, 2])
    lanes = (vec([1, 0]), vec([0, 1]))
    a = BatchDuplicated(v, lanes)
    lanes[1].pop()
    with pytest.raises(ValueError, match="argument 0: BatchDuplicated shadow 1: shadow "
                                         "Vector has length 1"):
        autodiff(lambda a: a[0] * a[1], a, mode=Forward)
    with pytest.raises(ValueError, match="argument 0: shadow 0 and shadow 1 share memory"):
        autodiff(lambda a: a[0], BatchDuplicated(v, (lanes[0], lanes[0])), mode=Forward)


# --------------------------------------------------------------------------
# any two slices of one base, shadows any two slices of one shadow base:
# refused, or right

_slices = st.tuples(st.integers(0, 6), st.integers(1, 4), st.sampled_from([1, 2, -1, -2]))


def _slice(spec):
    start, n, step = spec
    idx = start + step * np.arange(n)
    idx = idx[(idx >= 0) & (idx < 8)]
    if len(idx) == 0:
        idx = np.array([start])
    stop = idx[-1] + step
    return slice(int(idx[0]), None if stop < 0 else int(stop), step)


def _random_program(a, b):
    a[0] = b[-1] * 1.5
    b[0] += a[-1] * a[0]
    return np.sum(a * b[0]) + np.sum(np.sin(b))


_starts = st.tuples(st.integers(0, 7), st.sampled_from([1, 2, -1, -2]))


def _like(spec, n):
    """A slice of n elements from start by step, or None if it leaves [0, 8)."""
    start, step = spec
    last = start + step * (n - 1)
    if not 0 <= last < 8:
        return None
    stop = last + step
    return slice(start, None if stop < 0 else stop, step)


@settings(max_examples=200, deadline=None)
@given(_slices, _slices, st.booleans(), _starts, _starts,
       st.sampled_from(["rev", "fwd", "batch rev", "batch fwd"]))
def test_any_slices_refused_or_right(pa, pb, same, sa, sb, mode):
    pa, pb = _slice(pa), _slice(pb)
    base = np.linspace(0.4, 1.4, 8)
    if same:
        sa, sb = pa, pb
    else:
        sa, sb = _like(sa, len(base[pa])), _like(sb, len(base[pb]))
    assume(sa is not None and sb is not None)
    lanes = 2 if mode.startswith("batch") else 1
    forward = mode.endswith("fwd")
    rng = np.random.default_rng(0)
    seeds = [rng.standard_normal(8) for _ in range(lanes)]
    x, dmems = base.copy(), [np.zeros(8) for _ in range(lanes)]
    xa, xb = x[pa], x[pb]
    for dmem, seed in zip(dmems, seeds):  # consistent exactly when the call is accepted
        dmem[sa], dmem[sb] = seed[pa], seed[pb]
    if lanes == 1:
        args = [Duplicated(xa, dmems[0][sa]), Duplicated(xb, dmems[0][sb])]
    else:
        args = [BatchDuplicated(xa, tuple(d[sa] for d in dmems)),
                BatchDuplicated(xb, tuple(d[sb] for d in dmems))]
    try:
        t = autodiff(_random_program, *args, mode=Forward if forward else Reverse)
    except ValueError as e:
        assert not same and "shadows" in str(e)
        # refused only where element i of the base meets two shadow elements, or
        # shadow element j two elements of the base
        pairs = set(zip(np.arange(8)[pa], np.arange(8)[sa])) | set(
            zip(np.arange(8)[pb], np.arange(8)[sb]))
        assert len({i for i, _ in pairs}) < len(pairs) or len({j for _, j in pairs}) < len(pairs)
        event("refused")
        return
    event("accepted, same slices" if same else "accepted, other slices")
    plain = (lambda m: (m[pa], m[pb]))
    for lane, (dmem, seed) in enumerate(zip(dmems, seeds)):
        if forward:
            want_t, want = _directional(_random_program, plain, base, seed)
            np.testing.assert_allclose(t if lanes == 1 else t[lane], want_t, rtol=1e-6,
                                       atol=1e-8)
        else:
            want = _fd_gradient(_plain_objective(_random_program, plain, seed), base)
        np.testing.assert_allclose(dmem[sa], want[pa], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(dmem[sb], want[pb], rtol=1e-6, atol=1e-8)


def test_nested_call_checked_too():
    """A call nested inside a running differentiation checks its plain
    memory the same way; traced shadows are the enclosing call's business."""
    seen = []

    def outer(w):
        x = np.array([1.0, 2.0])
        with pytest.raises(ValueError, match="arguments 0 and 1 pass the same memory with "
                                             "different shadows"):
            autodiff(lambda a, b: np.sum(a * b * w), Duplicated(x, np.zeros(2)),
                     Duplicated(x, np.zeros(2)))
        d = np.zeros(2)
        autodiff(lambda a, b: np.sum(a * b), Duplicated(x, d), Duplicated(x, d))
        seen.append(d.copy())
        dw = np.zeros_like(w)
        autodiff(lambda a: np.sum(a * a), Duplicated(w, dw))
        return np.sum(dw)
    g, = autodiff(outer, Active(np.array([1.0, 3.0])))
    assert g.tolist() == [2.0, 2.0] and seen[0].tolist() == [2.0, 4.0]


class _Boom(Exception):
    pass


@pytest.mark.parametrize("mode", [Reverse, Forward])
@pytest.mark.parametrize("case", list(CASES))
def test_same_memory_failure_atomic_and_restore(case, mode):
    """f raising half-way leaves the one memory and its shadow bit for bit as
    they were; restore=True puts the primal back (forward mode too)."""
    f, shape, views = CASES[case]
    rng = np.random.default_rng(len(case) + 4)
    base, dbase = rng.uniform(0.5, 1.5, shape), rng.standard_normal(shape)

    def failing(a, b):
        f(a, b)
        raise _Boom
    x, dx = base.copy(), dbase.copy()
    with pytest.raises(_Boom):
        autodiff(failing, *[Duplicated(p, s) for p, s in zip(views(x), views(dx))], mode=mode)
    assert x.tobytes() == base.tobytes() and dx.tobytes() == dbase.tobytes()
    x, dx = base.copy(), dbase.copy()
    autodiff(f, *[Duplicated(p, s) for p, s in zip(views(x), views(dx))], mode=mode,
             restore=True)
    assert x.tobytes() == base.tobytes()


def test_interleaved_views_do_not_share_memory():
    """x[::2] and x[1::2] lie within each other's bounds but share no element:
    separate shadows are right, a Const beside a Duplicated too."""
    x = np.arange(1.0, 7.0)
    d1, d2 = np.zeros(3), np.zeros(3)

    def f(a, b):
        a[0] = b[1] * b[2]        # x[0] = x[3] * x[5]
        return np.sum(a * a) + b[0]
    autodiff(f, Duplicated(x[::2], d1), Duplicated(x[1::2], d2))
    assert d1.tolist() == [0.0, 6.0, 10.0]
    assert d2.tolist() == [1.0, 2 * 24.0 * 6.0, 2 * 24.0 * 4.0]
    x = np.arange(1.0, 7.0)
    d = np.zeros(3)
    g, _ = autodiff(lambda a, c: np.sum(a * c), Active(x[::2]), Const(x[1::2]))
    assert g.tolist() == [2.0, 4.0, 6.0]
    autodiff(lambda a, c: np.sum(a * c), Duplicated(x[::2], d), Const(x[1::2]))
    assert d.tolist() == [2.0, 4.0, 6.0]
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    autodiff(lambda a: np.sum(a * a), Duplicated(y[::2], y[1::2]))  # the shadow interleaved
    assert y.tolist() == [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]


@pytest.mark.parametrize("mode", [sad.Reverse, Forward])
@pytest.mark.parametrize("kind", [Duplicated, Const])
def test_interleaved_arguments_of_one_activity_act_as_disjoint_memory(kind, mode):
    """sharing_groups is exact, as check_call is: interleaved views of one
    array with one activity get a Buffer each, and f's writes through them,
    values and derivatives, are those of disjoint copies."""
    def f(a, b, c):
        a *= b
        b[...] = np.sin(a) + c
        a += c * b
        return np.sum(a * b) + np.sum(c * c)

    x0, c0 = np.linspace(0.3, 1.7, 12), np.linspace(1.0, 2.0, 6)
    t0 = np.zeros(12) if mode is sad.Reverse else np.arange(12.0)
    x, dx = x0.copy(), t0.copy()
    parts = [x0[0::2].copy(), x0[1::2].copy()]
    dparts = [t0[0::2].copy(), t0[1::2].copy()]
    if kind is Duplicated:
        got = autodiff(f, Duplicated(x[0::2], dx[0::2]), Duplicated(x[1::2], dx[1::2]),
                       Duplicated(c0.copy(), np.ones(6)), mode=mode)
        want = autodiff(f, *[Duplicated(p, d) for p, d in zip(parts, dparts)],
                        Duplicated(c0.copy(), np.ones(6)), mode=mode)
        assert same_bits(dx[0::2], dparts[0]) and same_bits(dx[1::2], dparts[1])
    else:
        dc, dc2 = np.ones(6), np.ones(6)
        got = autodiff(f, Const(x[0::2]), Const(x[1::2]), Duplicated(c0.copy(), dc), mode=mode)
        want = autodiff(f, Const(parts[0]), Const(parts[1]), Duplicated(c0.copy(), dc2),
                        mode=mode)
        assert same_bits(dc, dc2)
    assert same_bits(x[0::2], parts[0]) and same_bits(x[1::2], parts[1])
    assert repr(got) == repr(want)
    assert sharing_groups([kind(x[0::2], *([dx[0::2]] if kind is Duplicated else [])),
                           kind(x[1::2], *([dx[1::2]] if kind is Duplicated else []))],
                          (kind,)) == []
