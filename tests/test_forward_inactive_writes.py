"""Forward mode: writing an inactive value (a Const argument, an expression of
Consts, a plain array, a Python float, an inactive scalar) into active memory
gives the written entries a zero tangent, by every write form, in every lane;
and forward, reverse, jacobian and finite differences agree."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import BatchDuplicated, Const, Duplicated
from shadowad.testing import check_dot_product, check_forward

N = 6
PLAIN = np.array([7.0, -8.0, 9.0, 10.0, -11.0, 12.0])

# where each form writes, as a boolean mask over a's N entries
IDX = {
    "slice": slice(1, 3),
    "int": 2,
    "list": [0, 3],
    "array": np.array([4, 1]),
    "mask": np.array([True, False, False, True, False, True]),
    "ellipsis": Ellipsis,
    "2d-view": (slice(None, None, 2),),
}


def _count(idx):
    return np.zeros(N)[idx].size


def _shape(idx):
    return np.zeros(N)[idx].shape


# source kinds: a value of the right size built from the Const c (length N)
SOURCES = {
    "const-arg": lambda c, k: c[:np.prod(k, dtype=int)].reshape(k),
    "const-expr": lambda c, k: (2.0 * c[:np.prod(k, dtype=int)] + 1.0).reshape(k),
    "plain": lambda c, k: PLAIN[:np.prod(k, dtype=int)].reshape(k),
    "float": lambda c, k: 3.5,
    "const-scalar": lambda c, k: np.sum(c) * 0.5,
    "const-item": lambda c, k: c[1],
}


def _writer(form, idx, src):
    k = _shape(idx)

    def write(a, c):
        v = SOURCES[src](c, k)
        if form == "setitem":
            a[idx] = v
        elif form == "setindex":
            sad.setindex(a, idx, v)
        elif form == "copyto":
            view = a[idx]
            np.copyto(view, v)
        elif form == "out":  # a ufunc of constants writing into active memory
            np.multiply(v, 1.0, out=a[idx])
        return a
    return write


CASES = [(form, name, src) for form in ("setitem", "setindex")
         for name in IDX for src in SOURCES]
CASES += [(form, name, src) for form in ("copyto", "out")
          for name in ("slice", "ellipsis", "2d-view") for src in SOURCES]


def _program(form, name, src):
    write = _writer(form, IDX[name], src)

    def f(a, x, c):
        a *= x               # every entry of a active
        write(a, c)          # some entries overwritten by an inactive value
        return np.sum(a * a) + np.sum(a * x)
    return f


def _args():
    a = np.linspace(1.0, 2.0, N)
    x = np.linspace(-1.5, 0.5, N)
    c = np.arange(1.0, N + 1.0)
    return a, x, c


@pytest.mark.parametrize("form,name,src", CASES)
def test_forward_matches_reverse_and_fd(form, name, src):
    f = _program(form, name, src)
    a, x, c = _args()
    check_forward(f, a, x, Const(c))
    check_dot_product(f, Duplicated(a.copy(), np.zeros(N)), Duplicated(x.copy(), np.zeros(N)),
                      Const(c.copy()))

    # one unit direction per entry of x: the forward tangent is that entry of
    # the reverse gradient, and nothing is NaN
    gx = np.zeros(N)
    sad.autodiff(f, Duplicated(a.copy(), np.zeros(N)), Duplicated(x.copy(), gx), Const(c.copy()))
    for j in range(N):
        e = np.zeros(N)
        e[j] = 1.0
        da = np.zeros(N)
        t = sad.autodiff(f, Duplicated(a.copy(), da), Duplicated(x.copy(), e), Const(c.copy()),
                         mode=sad.Forward)
        assert np.isfinite(t) and np.all(np.isfinite(da))
        assert t == pytest.approx(gx[j], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("form,name,src", CASES)
def test_jacobian_of_written_array(form, name, src):
    """jacobian takes forward mode here (N outputs, N inputs): no NaN rows, and
    the rows of the overwritten entries are zero."""
    write = _writer(form, IDX[name], src)
    c = np.arange(1.0, N + 1.0)

    def g(x, c):
        a = x * 2.0
        write(a, c)
        return a
    x = np.linspace(-1.5, 0.5, N)
    J = sad.jacobian(g, x, Const(c))
    want = 2.0 * np.eye(N)
    hit = np.zeros(N, bool)
    hit[IDX[name]] = True
    want[hit] = 0.0
    assert np.array_equal(J, want)
    Jr = sad.jacobian(g, x, Const(c), mode=sad.Reverse)
    assert np.array_equal(Jr, want)


@pytest.mark.parametrize("name", list(IDX))
def test_batch_lanes_zero(name):
    """Every BatchDuplicated lane of an overwritten entry is zero."""
    idx = IDX[name]

    def f(a, c):
        a[idx] = c[:_count(idx)].reshape(_shape(idx))
        return np.sum(a)
    a = np.arange(1.0, N + 1.0)
    lanes = tuple(np.full(N, float(k + 1)) for k in range(3))
    out = sad.autodiff(f, BatchDuplicated(a, lanes), Const(np.arange(N) + 10.0),
                       mode=sad.Forward)
    hit = np.zeros(N, bool)
    hit[idx] = True
    for k, (t, lane) in enumerate(zip(out, lanes)):
        assert np.array_equal(lane, np.where(hit, 0.0, k + 1.0))
        assert t == (k + 1.0) * (N - hit.sum())


def test_issue_reproducer():
    a, da = np.arange(4.), np.ones(4)
    f = lambda a, c: (a.__setitem__([0, 1], c), np.sum(a))[1]  # noqa: E731
    t = sad.autodiff(f, Duplicated(a, da), Const(np.array([5., 6.])), mode=sad.Forward)
    assert t == 2.0 and np.array_equal(da, [0.0, 0.0, 1.0, 1.0])


def test_two_dimensional_advanced_writes():
    """Lanes numpy would move (advanced indices apart) and a 2-D mask."""
    def g(x, c):
        a = x * 3.0
        a[[0, 2], :, [1, 0]] = c[0, :, 0]
        a[c > 19.0] = c[c > 19.0]
        return a
    x = np.linspace(0.5, 2.0, 24).reshape(3, 2, 4)
    cc = np.arange(24.0).reshape(3, 2, 4)
    J = sad.jacobian(lambda x, cc: g(x, cc).ravel(), x, Const(cc))
    Jr = sad.jacobian(lambda x, cc: g(x, cc).ravel(), x, Const(cc), mode=sad.Reverse)
    assert np.all(np.isfinite(J)) and np.array_equal(J, Jr)


@pytest.mark.parametrize("src", list(SOURCES))
def test_copyto_where(src):
    """np.copyto(a, v, where=mask): the masked entries take v's (zero) tangent,
    the others keep theirs; reverse mode and jacobian agree."""
    mask = IDX["mask"]

    def g(x, c):
        a = x * 2.0
        v = SOURCES[src](c, (N,)) if src in ("const-arg", "const-expr", "plain") \
            else SOURCES[src](c, ())
        np.copyto(a, v, where=mask)
        return a
    x = np.linspace(-1.5, 0.5, N)
    c = np.arange(1.0, N + 1.0)
    want = np.diag(np.where(mask, 0.0, 2.0))
    assert np.array_equal(sad.jacobian(g, x, Const(c)), want)
    assert np.array_equal(sad.jacobian(g, x, Const(c), mode=sad.Reverse), want)
    check_forward(lambda x, c: np.sum(g(x, c) ** 2), x, Const(c))


def test_copyto_into_plain_array_is_refused():
    def f(x):
        out = np.zeros(3)
        np.copyto(out, x)
        return np.sum(out)
    with pytest.raises(TypeError, match="untraced"):
        sad.autodiff(f, Duplicated(np.ones(3), np.ones(3)), mode=sad.Forward)


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402


@st.composite
def _write(draw):
    """A random 2-D index (mask, integer arrays, lists, slices, mixed) of a
    (3, 4) array, and an inactive source kind."""
    kind = draw(st.sampled_from(["mask", "rows", "cols", "pairs", "slice", "int"]))
    if kind == "mask":
        idx = np.array(draw(st.lists(st.booleans(), min_size=12, max_size=12))).reshape(3, 4)
    elif kind == "rows":
        idx = draw(st.lists(st.integers(0, 2), min_size=1, max_size=3))
    elif kind == "cols":
        idx = (slice(None), np.array(draw(st.lists(st.integers(0, 3), min_size=1, max_size=4))))
    elif kind == "pairs":
        k = draw(st.integers(1, 4))
        idx = (draw(st.lists(st.integers(0, 2), min_size=k, max_size=k)),
               draw(st.lists(st.integers(0, 3), min_size=k, max_size=k)))
    elif kind == "slice":
        idx = (slice(draw(st.integers(0, 2)), None), slice(None, None, draw(st.integers(1, 3))))
    else:
        idx = (draw(st.integers(0, 2)), draw(st.integers(0, 3)))
    return idx, draw(st.sampled_from(["const", "expr", "plain", "float", "scalar"]))


@settings(max_examples=60, deadline=None)
@given(_write(), st.sampled_from(["setitem", "setindex"]))
def test_random_writes_jacobians(write, form):
    """Forward-mode and reverse-mode Jacobians of a random write of an inactive
    value into an active 2-D array are equal and finite; the written entries'
    rows are zero."""
    idx, src = write
    shape = np.zeros((3, 4))[idx].shape

    def value(c):
        n = int(np.prod(shape))
        return {"const": lambda: c.ravel()[:n].reshape(shape),
                "expr": lambda: (c.ravel()[:n] * 3.0 - 1.0).reshape(shape),
                "plain": lambda: np.arange(n, dtype=float).reshape(shape),
                "float": lambda: 2.5,
                "scalar": lambda: np.sum(c) * 0.25}[src]()

    def g(x, c):
        a = x * 1.5
        if form == "setitem":
            a[idx] = value(c)
        else:
            sad.setindex(a, idx, value(c))
        return a
    x = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    c = np.arange(12.0).reshape(3, 4) + 1.0
    Jf = sad.jacobian(g, x, Const(c), mode=sad.Forward)
    Jr = sad.jacobian(g, x, Const(c), mode=sad.Reverse)
    hit = np.zeros((3, 4), bool)
    hit[idx] = True
    want = 1.5 * np.eye(12).reshape(3, 4, 3, 4)
    want[hit] = 0.0
    assert np.array_equal(Jf, want) and np.array_equal(Jr, want)
