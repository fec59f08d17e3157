"""float32 in forward mode (docs/float32.md): a float32 array's tangent lanes
are float32, its elementwise operations run the C kernels' float32 instance
and the rest its primitive's generic rule, and numpy's promotion decides the
dtypes where float32 meets float64.

For each program: the primal (value and final state) is numpy's float32 run
bit for bit, the tangent has numpy's result dtype and equals the float64
computation to float32's accuracy, no dual value inside a float32 program is
float64, k BatchDuplicated lanes are k one-lane runs bit for bit, and forward
mode agrees with reverse mode (Jacobians, dot-product test)."""
import inspect

import numpy as np
import pytest

import shadowad as sad
from shadowad import BatchDuplicated, Const, Duplicated, Forward, ForwardWithPrimal
from shadowad.engines.forward import dual
from shadowad.primitives import protocol
from shadowad.testing import check_dot_product, same_bits

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
RTOL = 1e-4  # of the largest tangent entry: float32 rounding through a program


# --------------------------------------------------------------------------
# the programs: f, and its arguments as (dtype, shape, kind) with kind
# "dup" (differentiated), "const", or "pos"/"spd" shaping the random values

def chain(x):
    return np.sum(np.sin(x) * x + np.exp(x) / 3.0)


def elementwise(x, y):
    return np.tanh(x) * y - np.sqrt(x * x + 1.0) / (y * y + 0.5)


def stencil(u):
    for _ in range(3):
        u[1:-1] += 0.1 * (u[2:] - 2.0 * u[1:-1] + u[:-2])


def element_loop(x):
    s = 0.0
    for i in range(len(x)):
        s = s + x[i] * x[i]
    return s


def element_writes(x, y):
    for i in range(1, len(x)):
        y[i] = x[i] * x[i - 1] + 0.5 * y[i - 1]
    return np.sum(y)


def matmul(a, b):
    return a @ b + a.T @ b


def dot(x, y):
    return np.dot(x, y) * np.dot(x, x)


def solve(a, b):
    return np.linalg.solve(a, b)


def cholesky(a):
    return np.linalg.cholesky(a @ a.T + np.eye(a.shape[0], dtype=np.float32))


def reductions(a):
    return np.sum(a, axis=0) * np.mean(a) + np.max(a, axis=1)[:1] + np.max(a) - a.sum()


def indexing(x):
    y = np.zeros_like(x)
    y[1:3] = x[2:4]
    y[0] = x[5] * 2.0
    y[[4, 5]] = x[:2]
    y[-1] += x[[0, 0, 3]].sum()
    return y * x + x[::-1]


def selects(x):
    return np.where(x > 0, x * x, -x) + np.clip(x, -0.5, 0.5) * x + np.maximum(x, 0.1)


def mixed(x, c, y):
    # float32 with float64 arrays (a Const and a differentiated one) and an
    # np.float64 scalar: numpy's promotion gives float64
    return x * c + np.float64(2.0) * x - y * x[0]


def python_scalars(x):
    # Python floats are weak: the result stays float32
    return x * 2.5 + 1.0 / (x * x + 0.5) - 3 * x ** 2


def float64_scalar(x):
    return x[0] * np.float64(3.0) + x[1]


def shapes(a, x):
    b = np.concatenate([a, a[:1]], axis=0).reshape(-1)
    return np.cumsum(b)[:x.size] * x + np.stack([x, x]).sum(axis=0)


PROGRAMS = {
    "chain": (chain, [(F32, 7, "dup")]),
    "elementwise": (elementwise, [(F32, (3, 4), "dup"), (F32, 4, "dup")]),
    "stencil": (stencil, [(F32, 9, "dup")]),
    "element_loop": (element_loop, [(F32, 6, "dup")]),
    "element_writes": (element_writes, [(F32, 6, "dup"), (F32, 6, "dup")]),
    "matmul": (matmul, [(F32, (4, 4), "dup"), (F32, (4, 3), "dup")]),
    "dot": (dot, [(F32, 5, "dup"), (F32, 5, "dup")]),
    "solve": (solve, [(F32, (4, 4), "spd"), (F32, 4, "dup")]),
    "cholesky": (cholesky, [(F32, (4, 4), "dup")]),
    "reductions": (reductions, [(F32, (3, 4), "dup")]),
    "indexing": (indexing, [(F32, 6, "dup")]),
    "selects": (selects, [(F32, 8, "dup")]),
    "mixed": (mixed, [(F32, 5, "dup"), (F64, 5, "const"), (F64, 5, "dup")]),
    "python_scalars": (python_scalars, [(F32, 6, "pos")]),
    "float64_scalar": (float64_scalar, [(F32, 3, "dup")]),
    "shapes": (shapes, [(F32, (2, 3), "dup"), (F32, 5, "dup")]),
}
PURE32 = [k for k, (_, specs) in PROGRAMS.items()
          if all(d == F32 for d, _, _ in specs) and k != "float64_scalar"]  # (asks for float64)


def values(name, seed=0):
    """The program's argument values (float32 ones drawn in float64 and
    rounded, so the float64 reference starts from the same numbers)."""
    rng = np.random.default_rng(seed + sum(map(ord, name)))
    out = []
    for dtype, shape, kind in PROGRAMS[name][1]:
        v = rng.standard_normal(shape)
        if kind == "pos":
            v = np.abs(v) + 0.2
        elif kind == "spd":
            v = v @ v.T + 4.0 * np.eye(shape[0])
        out.append(v.astype(dtype))
    return out


def directions(name, seed=1):
    rng = np.random.default_rng(seed + sum(map(ord, name)))
    return [None if kind == "const" else rng.standard_normal(np.shape(v)).astype(v.dtype)
            for v, (_, _, kind) in zip(values(name), PROGRAMS[name][1])]


def annotate(vals, dirs):
    return [Const(v.copy()) if d is None else Duplicated(v.copy(), d.copy())
            for v, d in zip(vals, dirs)]


def run(name, vals, dirs):
    """(tangent, value, annotations after the call) of ForwardWithPrimal."""
    anns = annotate(vals, dirs)
    t, v = sad.autodiff(PROGRAMS[name][0], *anns, mode=ForwardWithPrimal)
    return t, v, anns


def dtype_of(v):
    return np.asarray(v).dtype


def assert_close(got, want, what):
    got = np.asarray(got, dtype=F64)
    want = np.asarray(want, dtype=F64)
    scale = max(np.max(np.abs(want), initial=0.0), 1e-6)
    err = np.max(np.abs(got - want), initial=0.0)
    assert err <= RTOL * scale, f"{what}: off by {err:.3g} (scale {scale:.3g})"


# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", PROGRAMS)
def test_primal_is_numpys_float32_run(name):
    f = PROGRAMS[name][0]
    vals = values(name)
    plain = [v.copy() for v in vals]
    want = f(*plain)
    t, v, anns = run(name, vals, directions(name))
    if want is None:
        assert v is None and t is None
    else:
        assert type(v) is type(want) or (isinstance(want, float) and type(v) is float)
        assert dtype_of(v) == dtype_of(want)
        assert same_bits(np.asarray(v), np.asarray(want))
    for a, p in zip(anns, plain):  # the final state, bit for bit
        assert a.val.dtype == p.dtype and a.val.tobytes() == p.tobytes()


@pytest.mark.parametrize("name", PROGRAMS)
def test_tangent_dtype_and_value(name):
    f = PROGRAMS[name][0]
    vals, dirs = values(name), directions(name)
    want = f(*[v.copy() for v in vals])
    t, _, anns = run(name, vals, dirs)
    # the float64 computation from the same numbers
    t64, _, anns64 = run(name, [v.astype(F64) for v in vals],
                         [None if d is None else d.astype(F64) for d in dirs])
    if want is not None:
        assert dtype_of(t) == dtype_of(want)
        if dtype_of(want) == F32 and np.ndim(want) == 0:
            assert type(t) is np.float32  # numpy's scalar, as the value
        assert_close(t, t64, "result tangent")
    for k, (a, a64) in enumerate(zip(anns, anns64)):
        if type(a) is Duplicated:  # the output tangents of the arguments
            assert a.dval.dtype == a.val.dtype
            assert_close(a.dval, a64.dval, f"tangent of argument {k}")


@pytest.fixture
def dual_dtypes(monkeypatch):
    """The dtypes of every dual array and every tangent a derived rule makes
    while it is active; a dual scalar (float64) is recorded as float64."""
    seen = []
    init_a, init_s = dual.FArray.__init__, dual.FScalar.__init__
    forward = protocol.DerivedRule.forward

    def array_init(self, p, s, buf):
        seen.append(("array", p.dtype, None if s is None else s.dtype))
        init_a(self, p, s, buf)

    def scalar_init(self, v, d, ctx):
        seen.append(("scalar", F64, F64))
        init_s(self, v, d, ctx)

    def rule_forward(self, config, *args, **params):
        res = forward(self, config, *args, **params)
        if res is not None:
            z, dz = res
            for t in (dz if config.width > 1 else (dz,)):
                seen.append((self.prim.name, dtype_of(z), dtype_of(t)))
        return res

    monkeypatch.setattr(dual.FArray, "__init__", array_init)
    monkeypatch.setattr(dual.FScalar, "__init__", scalar_init)
    monkeypatch.setattr(protocol.DerivedRule, "forward", rule_forward)
    return seen


@pytest.mark.parametrize("name", PURE32)
def test_no_float64_inside_a_float32_program(name, dual_dtypes):
    f = PROGRAMS[name][0]
    run(name, values(name), directions(name))
    assert dual_dtypes, "nothing recorded: the check saw no dual value"
    wrong = [s for s in dual_dtypes if s[1] != F32 or (s[2] is not None and s[2] != F32)]
    assert not wrong, f"{f.__name__}: float64 values inside: {wrong[:5]}"


@pytest.mark.parametrize("name", PROGRAMS)
def test_batch_lanes_are_single_runs(name):
    f = PROGRAMS[name][0]
    vals = values(name)
    dirs = [directions(name, seed=s) for s in (1, 2, 3)]
    anns = [Const(v.copy()) if d is None else
            BatchDuplicated(v.copy(), tuple(ds[k].copy() for ds in dirs))
            for k, (v, d) in enumerate(zip(vals, dirs[0]))]
    ts = sad.autodiff(f, *anns, mode=Forward)
    for lane, ds in enumerate(dirs):
        t, _, single = run(name, vals, ds)
        if t is None:
            assert ts is None
        else:
            assert dtype_of(ts[lane]) == dtype_of(t)
            assert same_bits(np.asarray(ts[lane]), np.asarray(t))
        for a, b in zip(anns, single):
            if type(a) is BatchDuplicated:
                assert a.dvals[lane].dtype == b.dval.dtype
                assert a.dvals[lane].tobytes() == b.dval.tobytes()


def _matrix():
    rng = np.random.default_rng(5)
    return (rng.standard_normal((4, 4)) + 4.0 * np.eye(4)).astype(np.float32)


def _positive():
    return (np.abs(np.random.default_rng(6).standard_normal(6)) + 0.5).astype(np.float32)


_M, _P = _matrix(), _positive()
_S = _M @ _M.T
FUNCTIONS = {
    "inv": (np.linalg.inv, _M), "det": (np.linalg.det, _M),
    "slogdet": (lambda a: np.linalg.slogdet(a)[1], _M), "norm": (np.linalg.norm, _M),
    "norm_axis": (lambda a: np.linalg.norm(a, axis=0), _M),
    "eigh": (lambda a: np.linalg.eigh(a)[0], _S), "qr": (lambda a: np.linalg.qr(a)[1], _M),
    "svd": (lambda a: np.linalg.svd(a)[1], _M), "pinv": (np.linalg.pinv, _M),
    "lstsq": (lambda a: np.linalg.lstsq(a, a[0], rcond=None)[0], _M),
    "trace": (np.trace, _M), "einsum": (lambda a: np.einsum("ij,jk->ik", a, a), _M),
    "tensordot": (lambda a: np.tensordot(a, a, 1), _M), "outer": (lambda x: np.outer(x, x), _P),
    "kron": (lambda x: np.kron(x, x), _P), "cumsum": (np.cumsum, _P), "cumprod": (np.cumprod, _P),
    "prod": (np.prod, _P), "diff": (np.diff, _P), "var": (np.var, _P), "std": (np.std, _P),
    "tril": (np.tril, _M), "diag": (np.diag, _M), "roll": (lambda x: np.roll(x, 2), _P),
    "matrix_power": (lambda a: np.linalg.matrix_power(a, 3), _M),
    "min_axis": (lambda a: np.min(a, axis=0), _M), "abs": (lambda x: np.abs(x - 1.0), _P),
    "sort": (np.sort, _P), "copysign": (lambda x: np.copysign(x, x - 1.0), _P),
    "heaviside": (lambda x: np.heaviside(x - 1.0, x), _P),
    "softmax": (lambda x: np.exp(x) / np.sum(np.exp(x)), _P), "power": (lambda x: x ** x, _P),
    "multiply_reduce": (np.multiply.reduce, _P), "add_accumulate": (np.add.accumulate, _P),
    "polyval": (lambda p: np.polyval(p, np.float32(0.5)), _P),
    "clip_arrays": (lambda x: np.clip(x, x[0], x[1]), _P),
    "maximum": (lambda x: np.maximum(x, x[2]), _P), "float_power": (lambda x: np.float_power(x, 2), _P),
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_numpy_functions_keep_float32(name, dual_dtypes):
    f, x = FUNCTIONS[name]
    want = f(x.copy())
    d = np.random.default_rng(8).standard_normal(x.shape).astype(np.float32)
    t, v = sad.autodiff(f, Duplicated(x.copy(), d.copy()), mode=ForwardWithPrimal)
    assert dtype_of(v) == dtype_of(t) == dtype_of(want)
    assert same_bits(np.asarray(v), np.asarray(want))
    if dtype_of(want) == F32:
        wrong = [s for s in dual_dtypes if s[1] != F32 or (s[2] is not None and s[2] != F32)]
        assert not wrong, f"float64 values inside: {wrong[:5]}"
    t64 = sad.autodiff(f, Duplicated(x.astype(F64), d.astype(F64)), mode=Forward)
    assert_close(t, t64, "tangent")


JACOBIAN = ["chain", "cholesky", "reductions", "indexing", "selects", "python_scalars",
            "element_loop", "float64_scalar"]


@pytest.mark.parametrize("name", JACOBIAN)
def test_jacobian_forward_equals_reverse(name):
    f = PROGRAMS[name][0]
    x, = values(name)
    jf = sad.jacobian(f, x, mode=Forward)
    jr = sad.jacobian(f, x, mode=sad.Reverse)
    want = np.result_type(np.asarray(f(x.copy())).dtype, x.dtype)
    assert jf.dtype == jr.dtype == want
    assert jf.shape == jr.shape == np.shape(f(x.copy())) + x.shape
    assert_close(jf, jr, "Jacobian")
    j64 = sad.jacobian(f, x.astype(F64), mode=Forward)
    assert_close(jf, j64, "Jacobian against float64")


def test_jacobian_with_constants():
    a, b = values("solve")
    jf = sad.jacobian(lambda b, a: np.linalg.solve(a, b), b, a, mode=Forward)
    jr = sad.jacobian(lambda b, a: np.linalg.solve(a, b), b, a, mode=sad.Reverse)
    assert jf.dtype == jr.dtype == F32
    assert_close(jf, jr, "Jacobian")
    assert_close(jf, np.linalg.inv(a.astype(F64)), "Jacobian against float64")


@pytest.mark.parametrize("name", PROGRAMS)
def test_dot_product_forward_reverse(name):
    f = PROGRAMS[name][0]

    def scalar(*a):  # the dot-product test seeds a scalar result (and mutated arrays)
        r = f(*a)
        return None if r is None else np.sum(r * r)

    anns = [Const(v) if kind == "const" else Duplicated(v, np.zeros_like(v))
            for v, (_, _, kind) in zip(values(name), PROGRAMS[name][1])]
    check_dot_product(scalar, *anns, rtol=RTOL)


def test_dot_product_default_stays_tight_for_float64():
    # the default tolerance follows the arguments' dtype: float64 stays at 1e-12
    assert inspect.signature(check_dot_product).parameters["rtol"].default is None
    x = values("chain")[0].astype(F64)
    check_dot_product(chain, Duplicated(x, np.zeros_like(x)))
    x32 = values("chain")[0]
    check_dot_product(chain, Duplicated(x32, np.zeros_like(x32)))  # float32: 1e-4


def test_fwddiff_on_float32_arrays():
    g = sad.fwddiff(lambda a, b: np.sin(a) * b + a * a)
    x, y = values("dot")
    want = g(x, y)
    assert want.dtype == F32
    dx, dy = directions("dot")
    t, v = sad.autodiff(lambda x, y: g(x, y), Duplicated(x.copy(), dx.copy()),
                        Duplicated(y.copy(), dy.copy()), mode=ForwardWithPrimal)
    assert t.dtype == F32 and same_bits(v, want)
    t64 = sad.autodiff(lambda x, y: g(x, y), Duplicated(x.astype(F64), dx.astype(F64)),
                       Duplicated(y.astype(F64), dy.astype(F64)), mode=Forward)
    assert_close(t, t64, "fwddiff tangent")
    # in reverse mode the record's partials come from a float32 forward run
    gx, gy = np.zeros_like(x), np.zeros_like(y)
    sad.autodiff(lambda x, y: np.sum(g(x, y) * y), Duplicated(x.copy(), gx),
                 Duplicated(y.copy(), gy))
    gx64, gy64 = np.zeros(x.shape), np.zeros(y.shape)
    sad.autodiff(lambda x, y: np.sum(g(x, y) * y), Duplicated(x.astype(F64), gx64),
                 Duplicated(y.astype(F64), gy64))
    assert gx.dtype == gy.dtype == F32
    assert_close(gx, gx64, "fwddiff gradient")
    assert_close(gy, gy64, "fwddiff gradient")


def test_float32_element_is_a_0d_float32_array():
    x = values("chain")[0]

    def f(x):
        e = x[2]
        assert type(e) is dual.FArray and e.ndim == 0 and e.dtype == F32
        assert type(e * 2.0) is dual.FArray and (e * 2.0).dtype == F32
        assert (e * np.float64(2.0)).dtype == F64  # np.float64 is strong
        return e * e

    t, v = sad.autodiff(f, Duplicated(x.copy(), np.ones_like(x)), mode=ForwardWithPrimal)
    assert type(t) is np.float32 and type(v) is np.float32
    assert v == x[2] * x[2] and t == np.float32(2) * x[2]


def test_float32_tangent_of_a_duplicated_scalar_is_float64():
    # a float argument is a float64 dual scalar: strong, as np.float64
    x = values("chain")[0]
    t = sad.autodiff(lambda s, x: s * x, Duplicated(2.0, 1.0), Const(x), mode=Forward)
    assert t.dtype == F64 and np.array_equal(t, x.astype(F64))


def test_float64_tangents_unchanged():
    x = values("chain")[0].astype(F64)
    t, v = sad.autodiff(element_loop, Duplicated(x.copy(), np.ones_like(x)),
                        mode=ForwardWithPrimal)
    assert type(t) is float and type(v) is float


@pytest.mark.parametrize("layout", ["strided", "fortran", "column"])
def test_layouts_restore_and_errors(layout):
    base = np.random.default_rng(9).standard_normal((6, 4)).astype(np.float32)
    x = {"strided": base[::2], "fortran": np.asfortranarray(base), "column": base[:, 1]}[layout]

    def f(a):
        a *= 2.0
        return a.T * 3.0

    x0, d = x.copy(), np.ones_like(x)
    t, v = sad.autodiff(f, Duplicated(x, d), mode=ForwardWithPrimal)
    assert t.dtype == v.dtype == d.dtype == F32
    assert np.array_equal(d, np.full_like(x0, 2.0)) and np.array_equal(t, np.full(x0.T.shape, 6.0))
    assert same_bits(x, x0 * np.float32(2))
    x[...] = x0
    sad.autodiff(f, Duplicated(x, d), mode=Forward, restore=True)
    assert same_bits(x, x0)

    def fails(a):
        a *= 3.0
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        sad.autodiff(fails, Duplicated(x, d), mode=Forward)
    assert same_bits(x, x0)


def test_aliased_arguments_match_float64():
    out = []
    for dtype in (F32, F64):
        base, db = np.arange(8, dtype=dtype), np.ones(8, dtype)

        def g(a, b):
            a[1:] += b[:-1] * 2.0
            return np.sum(a)

        t, v = sad.autodiff(g, Duplicated(base[:6], db[:6]), Duplicated(base[2:], db[2:]),
                            mode=ForwardWithPrimal)
        assert dtype_of(t) == dtype_of(v) == dtype
        out.append((float(t), float(v), base.astype(F64), db.astype(F64)))
    assert out[0][:2] == out[1][:2]
    assert np.array_equal(out[0][2], out[1][2]) and np.array_equal(out[0][3], out[1][3])


def test_custom_rule_keeps_float32():
    @sad.custom_rule
    def sq(x):
        return x * x

    @sq.forward
    def _(config, x):
        return x.val * x.val, 2 * x.val * x.dval

    x = values("chain")[0]
    t, v = sad.autodiff(lambda x: sq(x) * 2.0, Duplicated(x.copy(), np.ones_like(x)),
                        mode=ForwardWithPrimal)
    assert t.dtype == v.dtype == F32 and same_bits(v, x * x * np.float32(2))
    t, v = sad.autodiff(lambda x: sq(x[1]), Duplicated(x.copy(), np.ones_like(x)),
                        mode=ForwardWithPrimal)
    assert type(t) is np.float32 and type(v) is np.float32 and t == 2 * x[1]


def test_c_fast_paths_take_float32_calls_and_decline_the_rest():
    # csrc/ext/forward.c takes an elementwise call whose arrays are all
    # float32 (numbers weak) in the kernels' float32 instance; its full sum
    # reads float64 only, and a float32 array beside a float64 one is numpy's
    # promotion: those it hands back to Python
    from shadowad._c import fast, lib
    x = values("chain")[0]
    seen = []

    def f(x, y64):
        seen.append(fast.fwd(np.multiply, lib.SAD_MUL, x, x))
        seen.append(fast.fwd(np.add, lib.SAD_ADD, x, 1.0))
        seen.append(fast.fsum(x))
        seen.append(fast.fwd(np.multiply, lib.SAD_MUL, y64, np.ones(7, F32)))
        return np.sum(x * x)

    sad.autodiff(f, Duplicated(x.copy(), np.ones_like(x)),
                 Duplicated(x.astype(F64), np.ones(7)), mode=Forward)
    assert [r is NotImplemented for r in seen] == [False, False, True, True]
    for r in seen[:2]:
        assert r.p.dtype == F32 and r._s.dtype == F32
