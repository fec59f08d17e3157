"""Const arrays shadowad does not trace (issue 13, item 8): not float64, or
not aligned.  restore=True and an exception in f give them back bit for bit
(bytes compared, NaN payloads included) in every mode, for every layout; a
split tape dropped without reverse leaves what f left."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import (BatchDuplicated, Const, Duplicated, Forward, ForwardWithPrimal, Reverse,
    ReverseWithPrimal, autodiff, autodiff_split)

DTYPES = [np.int64, np.int32, np.uint8, np.float16, np.bool_, np.complex128,
          np.complex64, np.dtype(">f8"), np.dtype(">i4"), np.float64]


def _values(dtype, n, rng):
    """n values of dtype with awkward bits: NaNs with payloads and both signs,
    -0.0, infinities (floating and complex types)."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, n).astype(bool)
    if dt.kind in "iu":
        return rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, n, dtype=dt.newbyteorder("="),
                            endpoint=True).astype(dt)
    raw = np.frombuffer(rng.bytes(n * dt.itemsize), dtype=dt).copy()
    flt = raw.view(np.dtype(f"f{dt.itemsize // 2}") if dt.kind == "c" else dt)
    uint = np.dtype(f"u{flt.dtype.itemsize}")
    bits = flt.view(uint)
    mant = np.finfo(flt.dtype).nmant
    exp = (bits.dtype.type(1) << (flt.dtype.itemsize * 8 - 1)) - (bits.dtype.type(1) << mant)
    bits[::3] = exp | bits.dtype.type(5)                     # NaN, payload 5
    bits[1::5] = exp | (bits.dtype.type(1) << (mant - 1)) | (bits.dtype.type(1) << (
        flt.dtype.itemsize * 8 - 1))                         # -NaN (quiet)
    flt[2::7] = -0.0
    flt[4::9] = np.inf
    return raw


def _unaligned(vals):
    """The values in memory at an odd byte offset (not aligned)."""
    buf = bytearray(vals.nbytes + vals.itemsize + 1)
    a = np.ndarray(vals.shape, vals.dtype, buffer=buf, offset=1)
    a[...] = vals
    return a


LAYOUTS = {
    "contiguous": lambda v: v.copy(),
    "strided": lambda v: np.repeat(v, 2)[::2],
    "negative": lambda v: v[::-1].copy()[::-1],
    "fortran": lambda v: np.asfortranarray(v[:12].reshape(3, 4)),
    "transposed_negative": lambda v: v[:12].reshape(3, 4).copy()[::-1, ::-2].T,
    "zero_size": lambda v: v[:0].copy(),
    "zero_d": lambda v: v[:1].copy().reshape(()),
    "unaligned": _unaligned,
    "unaligned_strided": lambda v: _unaligned(np.repeat(v, 3))[::3],
}


def _make(dtype, layout):
    rng = np.random.default_rng(abs(hash((np.dtype(dtype).str, layout))) % 2**32)
    a = LAYOUTS[layout](_values(dtype, 16, rng))
    if layout.startswith("unaligned") and np.dtype(dtype).itemsize > 1:
        assert not a.flags.aligned
    return a


def _write(c):
    """What f does to its constant: numpy writes a traced call cannot see."""
    if c.ndim == 0:
        c[...] = 1
        return
    c[...] = np.ones(c.shape, dtype=c.dtype)
    if c.size:
        c[(0,) * c.ndim] = 0
    if c.dtype.kind != "b":
        c += c.dtype.type(3)


def _f(x, c, fail=False):
    _write(c)
    y = x * x
    if fail:
        raise KeyError("half-way")
    return np.sum(y)


def _final(c):
    plain = c.copy(order="K")
    _write(plain)
    return plain.tobytes()


def _x(mode):
    x = np.array([1.5, -2.0, 0.25])
    if mode in (Forward, ForwardWithPrimal):
        return Duplicated(x, np.ones(3))
    return Duplicated(x, np.zeros(3))


def _check(c, want, what):
    assert c.tobytes() == want, f"{what}: {c!r}"


CASES = [(d, lay) for d in DTYPES for lay in LAYOUTS]  # aligned float64 is traced
MODES = [Reverse, ReverseWithPrimal, Forward, ForwardWithPrimal]


@pytest.mark.parametrize("dtype,layout", CASES)
@pytest.mark.parametrize("mode", MODES, ids=str)
def test_restore_true(dtype, layout, mode):
    c = _make(dtype, layout)
    before = c.tobytes()
    autodiff(_f, _x(mode), Const(c), mode=mode, restore=True)
    _check(c, before, "restore=True")
    autodiff(_f, _x(mode), Const(c), mode=mode)
    _check(c, _final(_make(dtype, layout)), "the default leaves what f left")


@pytest.mark.parametrize("dtype,layout", CASES)
@pytest.mark.parametrize("mode", MODES, ids=str)
def test_exception_half_way(dtype, layout, mode):
    c = _make(dtype, layout)
    before = c.tobytes()
    x = _x(mode)
    dx = x.dval.copy()
    with pytest.raises(KeyError):
        autodiff(lambda x, c: _f(x, c, fail=True), x, Const(c), mode=mode)
    _check(c, before, "f raised")
    assert x.dval.tobytes() == dx.tobytes()


@pytest.mark.parametrize("dtype,layout", CASES)
def test_split_tape(dtype, layout):
    """Dropping a split tape leaves f's effects; reverse(restore=True) undoes
    them, and so does an error returned instead of a result."""
    c = _make(dtype, layout)
    before, after = c.tobytes(), _final(_make(dtype, layout))
    _, tape = autodiff_split(_f, _x(Reverse), Const(c))
    _check(c, after, "split")
    del tape
    _check(c, after, "dropped tape")
    c = _make(dtype, layout)
    _, tape = autodiff_split(_f, _x(Reverse), Const(c))
    tape.reverse(restore=True)
    _check(c, before, "split reverse(restore=True)")
    c = _make(dtype, layout)
    with pytest.raises(TypeError):
        autodiff_split(lambda x, c: (_write(c), x)[1], _x(Reverse), Const(c))
    _check(c, before, "array result refused")


@pytest.mark.parametrize("dtype", DTYPES[:-1])
def test_batches_and_jacobian(dtype):
    """The reverse batch sweeps the tape once per lane and the Jacobian
    evaluates f several times: each sees the constant as at the call."""
    c = _make(dtype, "strided")
    before = c.tobytes()
    x = np.array([1.5, -2.0, 0.25])
    autodiff(_f, BatchDuplicated(x.copy(), (np.zeros(3), np.zeros(3))), Const(c), restore=True)
    _check(c, before, "batch, restore=True")

    def g(x, c):
        seen = c.tobytes()
        _write(c)
        assert seen == before  # every evaluation starts from the call's bits
        return x * x

    for mode in (None, Forward, Reverse):
        sad.jacobian(g, x, c, mode=mode)
        _check(c, before, f"jacobian {mode}")


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_aliases(mode):
    """A float64 Const (traced) and an int64 view of its memory (untraced),
    both written: restore=True and an exception give the bytes back; with
    different activities the call is refused."""
    base = np.arange(8.0) - 3.5
    base[3] = np.nan
    before = base.tobytes()

    def f(x, c, ci, fail=False):
        c[2:6] = c[2:6] * 2.0 + x[0]
        ci[1::2] = 7
        c[5] = 0.5
        if fail:
            raise KeyError
        return np.sum(x * x)

    for fail in (False, True):
        try:
            autodiff(lambda x, c, ci: f(x, c, ci, fail), _x(mode), Const(base),
                     Const(base.view(np.int64)), mode=mode, restore=True)
        except KeyError:
            assert fail
        _check(base, before, f"aliases, fail={fail}")
    with pytest.raises(ValueError, match="arguments 0 and 1 share memory"):
        autodiff(lambda x, c: np.sum(x), Duplicated(base, np.zeros(8)),
                 Const(base.view(np.int64)), mode=mode)


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.float32, np.float16])
def test_read_only_const_is_a_clear_error(mode, dtype):
    c = np.arange(4, dtype=dtype)
    c.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        autodiff(lambda x, c: (c.__setitem__(0, 1), np.sum(x * x))[1], _x(mode), Const(c),
                 mode=mode)
    assert c.tolist() == [0, 1, 2, 3]
    # reading is fine, and costs no copy
    autodiff(lambda x, c: np.sum(x * c[:3]), _x(mode), Const(c), mode=mode)


@pytest.mark.parametrize("outer", [Reverse, Forward], ids=str)
@pytest.mark.parametrize("inner", [Reverse, Forward], ids=str)
@pytest.mark.parametrize("dtype, layout", [(np.int32, "strided"), (np.float64, "contiguous"),
                                           (np.float64, "strided"), (np.float16, "contiguous")])
def test_nested_calls(outer, inner, dtype, layout):
    """An inner autodiff (nested engine) with a constant it writes: the
    nested engine traces no plain memory, so float64 constants too."""
    c = _make(dtype, layout)
    before = c.tobytes()

    def inner_f(x, c, fail=False):
        _write(c)
        if fail:
            raise KeyError
        return x * x

    def outer_f(x):
        for fail in (False, True):
            try:
                sad.autodiff(lambda x, c: inner_f(x, c, fail),
                             Duplicated(x, np.ones_like(x)) if inner is Forward else sad.Active(x),
                             Const(c), mode=inner, restore=True)
            except KeyError:
                assert fail
            assert c.tobytes() == before
        return x * 2.0

    x = 1.5
    sad.autodiff(outer_f, sad.Active(x) if outer is Reverse else Duplicated(x, 1.0), mode=outer)
    _check(c, before, "nested")


@pytest.mark.parametrize("make", [
    lambda u: Duplicated(u, np.zeros(4)),
    lambda u: Duplicated(np.zeros(4), u),
    lambda u: sad.Active(u),
    lambda u: BatchDuplicated(u, (np.zeros(4),)),
], ids=["primal", "shadow", "active", "batch"])
def test_unaligned_differentiated_arrays_are_refused(make):
    """Differentiated memory must be aligned float64: the error says so and
    its fix works."""
    u = _unaligned(np.arange(4.0))
    with pytest.raises(ValueError, match=r"not aligned.*np\.array\(x\)"):
        make(u)
    make(np.array(u))


@pytest.mark.parametrize("mode", [sad.Reverse, sad.Forward])
@pytest.mark.parametrize("write", ["slice", "element", "mask", "iadd", "copyto", "out", "axpy",
                                   "setindex", "matmul"])
@pytest.mark.parametrize("make, why", [
    (lambda: np.ones(4, np.float16), "argument 1 (float16)"),
    (lambda: np.ones(4, np.int64), "argument 1 (int64)"),
    (lambda: _unaligned(np.ones(4)), "argument 1 (float64 but not aligned)"),
])
def test_active_value_into_an_untraced_const_names_it(mode, write, make, why):
    """A differentiated value written into a Const shadowad does not trace is
    refused (it could carry no derivative), and the error names that argument
    and the fix, not only the advice for scratch buffers."""
    def f(u, c):
        if write == "slice":
            c[0:2] = np.sin(u[0:2])
        elif write == "element":
            c[1] = u[0] * 2.0
        elif write == "mask":
            c[np.array([True, False, True, False])] = u[1:3]
        elif write == "iadd":
            c += u
        elif write == "copyto":
            np.copyto(c, u)
        elif write == "out":
            np.add(u, 1.0, out=c)
        elif write == "axpy":
            sad.axpy(2.0, u, c)
        elif write == "setindex":
            sad.setindex(c, 0, u[0])
        else:
            np.matmul(np.ones((4, 4)), u, out=c)
        return np.sum(u)
    u, c = np.linspace(0.1, 0.4, 4), make()
    before = c.tobytes()
    with pytest.raises(TypeError) as err:
        sad.autodiff(f, Duplicated(u, np.zeros(4)), Const(c), mode=mode)
    msg = str(err.value)
    assert why in msg and "not traced" in msg and "np.array(c, dtype=float)" in msg
    assert c.tobytes() == before  # nothing was written


@pytest.mark.parametrize("mode", [sad.Reverse, sad.Forward])
def test_scratch_detach_error_names_no_argument(mode):
    """With every Const traced, the detach error keeps its scratch-buffer advice alone."""
    def f(u, c):
        out = np.zeros(4)
        out[0:2] = u[0:2]
        return np.sum(u)
    with pytest.raises(TypeError) as err:
        sad.autodiff(f, Duplicated(np.ones(4), np.zeros(4)), Const(np.ones(4)), mode=mode)
    assert "np.zeros_like" in str(err.value) and "not traced" not in str(err.value)


@pytest.mark.parametrize("mode", [sad.Reverse, sad.Forward])
def test_untraced_const_named_before_any_record(mode):
    """The first operation of f writes an active scalar into an untraced Const
    (the tape is still empty): the error still names the argument."""
    def f(x, c):
        c[0] = x
        return x * 1.0
    arg = sad.Active(2.0) if mode is sad.Reverse else Duplicated(2.0, 1.0)
    with pytest.raises(TypeError, match=r"argument 1 \(float16\) is not traced"):
        sad.autodiff(f, arg, Const(np.ones(3, np.float16)), mode=mode)
