"""sad.custom_rule: user rules in the record protocol, in every mode, and
shadowad.testing.check_rule catching each way a rule can be wrong."""
import threading

import numpy as np
import pytest

import shadowad as sad
from shadowad import Active, BatchDuplicated, Const, Duplicated
from shadowad.testing import check_rule, same_bits

N = 6
rng = np.random.default_rng(15)
A_SUB, C_SUP = rng.random(N), rng.random(N)
B_DIAG = 4.0 + rng.random(N)
RHS = rng.random(N)


def tridiagonal(a, b, c):
    """The matrix of the system, for the tests' oracles and rules (b may be
    traced: its diagonal is np.eye(n) * b)."""
    n = len(b)
    m = np.zeros((n, n))
    m[np.arange(1, n), np.arange(n - 1)] = a[1:]
    m[np.arange(n - 1), np.arange(1, n)] = c[:-1]
    return m + np.eye(n) * b


def thomas_in_place(a, b, c, d):
    """Solve the tridiagonal system in place in d (Thomas algorithm)."""
    n = len(d)
    cp = np.zeros_like(b)  # traced where b is: the rule's parts are differentiated again
    cp[0] = c[0] / b[0]
    d[0] = d[0] / b[0]
    for i in range(1, n):
        m = b[i] - a[i] * cp[i - 1]
        cp[i] = c[i] / m if i < n - 1 else 0.0
        d[i] = (d[i] - a[i] * d[i - 1]) / m
    for i in range(n - 2, -1, -1):
        d[i] -= cp[i] * d[i + 1]


def add_matrix_adjoint(gm, a, b, c):
    """The adjoint of the matrix, gm, into the three diagonals' shadows."""
    n = gm.shape[0]
    zero = np.zeros(1)
    parts = ((a, np.concatenate([zero, gm[np.arange(1, n), np.arange(n - 1)]])),
             (b, gm[np.arange(n), np.arange(n)]),
             (c, np.concatenate([gm[np.arange(n - 1), np.arange(1, n)], zero])))
    grads = []
    for arg, g in parts:
        if type(arg) is Const:
            grads.append(None)
        elif isinstance(arg, Active):
            grads.append(g)
        else:
            arg.dval += g
            grads.append(None)
    return grads


def make_thomas(broken=None):
    """The Thomas solver as a custom rule; ``broken`` names one way of
    getting the rule wrong."""
    @sad.custom_rule(mutates=() if broken == "undeclared" else ("d",))
    def thomas(a, b, c, d):
        thomas_in_place(a, b, c, d)

    @thomas.augmented_primal
    def _(config, a, b, c, d):
        thomas_in_place(a.val, b.val, c.val, d.val)
        return sad.AugmentedReturn(primal=None, tape=d.val.copy())

    @thomas.reverse
    def _(config, dret, x, a, b, c, d):
        m = tridiagonal(a.val, b.val, c.val)
        lam = np.linalg.solve(m.T, d.dval) if type(d) is not Const else np.zeros(len(x))
        if broken == "wrong derivative":
            lam = 2.0 * lam
        if broken == "no restore":
            d.val[...] = 0.0
        if type(d) is not Const:
            if broken == "accumulates overwritten":
                d.dval += lam
            else:
                d.dval[...] = lam
        gm = -np.outer(lam, x)
        ga, gb, gc = add_matrix_adjoint(gm, a, b, c)
        if broken == "accumulates twice" and type(b) is not Const:
            b.dval += np.diag(gm)
        if broken == "assigns" and type(b) is not Const:
            b.dval[...] = np.diag(gm)
        return (ga, gb, gc, None)

    @thomas.forward
    def _(config, a, b, c, d):
        m = tridiagonal(a.val, b.val, c.val)
        thomas_in_place(a.val, b.val, c.val, d.val)
        x = d.val

        def tangent(lane):
            ts = [np.zeros(N) if type(v) is Const else
                  (v.dval if config.width == 1 else v.dvals[lane]) for v in (a, b, c, d)]
            t = np.linalg.solve(m, ts[3] - tridiagonal(*ts[:3]) @ x)
            return -t if broken == "forward not transpose" else t
        if type(d) is not Const:
            if config.width == 1:
                d.dval[...] = tangent(0)
            else:
                for lane in range(config.width):
                    d.dvals[lane][...] = tangent(lane)
        return None
    return thomas


THOMAS = make_thomas()


def stepper(b, d):
    """An implicit stepper: three in-place solves, then a loss."""
    for _ in range(3):
        THOMAS(A_SUB, b, C_SUP, d)
        d *= 1.01
    return np.sum(d * d)


def stepper_numpy(b, d):
    """The same written with np.linalg.solve, for the oracle."""
    m = tridiagonal(A_SUB, b, C_SUP)
    for _ in range(3):
        d = np.linalg.solve(m, d) * 1.01
    return np.sum(d * d)


def oracle(b=B_DIAG, d=RHS):
    return sad.gradient(stepper_numpy, b.copy(), d.copy())


# --------------------------------------------------------------------------
# every mode

def test_reverse_matches_the_numpy_program():
    db, dd = np.zeros(N), np.zeros(N)
    d = RHS.copy()
    sad.autodiff(stepper, Duplicated(B_DIAG.copy(), db), Duplicated(d, dd))
    wb, wd = oracle()
    np.testing.assert_allclose(db, wb, rtol=1e-12)
    np.testing.assert_allclose(dd, wd, rtol=1e-12)
    want = RHS.copy()
    for _ in range(3):
        want = np.linalg.solve(tridiagonal(A_SUB, B_DIAG, C_SUP), want) * 1.01
    np.testing.assert_allclose(d, want, rtol=1e-13)  # the primal effect is visible


def test_reverse_with_primal_and_split_mode():
    wb, wd = oracle()
    db, dd = np.zeros(N), np.zeros(N)
    grads, value = sad.autodiff(stepper, Duplicated(B_DIAG.copy(), db), Duplicated(RHS.copy(), dd),
                                mode=sad.ReverseWithPrimal)
    assert np.isclose(value, stepper_numpy(B_DIAG, RHS), rtol=1e-13)
    np.testing.assert_allclose(db, wb, rtol=1e-12)
    db2, dd2 = np.zeros(N), np.zeros(N)
    value2, tape = sad.autodiff_split(stepper, Duplicated(B_DIAG.copy(), db2),
                                      Duplicated(RHS.copy(), dd2))
    tape.reverse(1.0)
    assert same_bits(db2, db) and same_bits(dd2, dd) and value2 == value


def test_active_arguments_get_returned_gradients():
    def f(b, d):
        d = d * 1.0
        THOMAS(A_SUB, b, C_SUP, d)
        return np.sum(d * d)
    gb, gd = sad.autodiff(f, Active(B_DIAG.copy()), Active(RHS.copy()))
    wb, wd = sad.gradient(lambda b, d: np.sum(np.linalg.solve(tridiagonal(A_SUB, b, C_SUP), d)
                                              ** 2), B_DIAG.copy(), RHS.copy())
    np.testing.assert_allclose(gb, wb, rtol=1e-12)
    np.testing.assert_allclose(gd, wd, rtol=1e-12)


def test_forward_and_batch_match_reverse():
    wb, _ = oracle()
    jac = sad.jacobian(stepper, B_DIAG.copy(), Const(RHS.copy()), mode=sad.Forward)
    np.testing.assert_allclose(jac, wb, rtol=1e-12)
    lanes = tuple(np.eye(N)[:3])
    out = sad.autodiff(stepper, BatchDuplicated(B_DIAG.copy(), lanes),
                       BatchDuplicated(RHS.copy(), tuple(np.zeros(N) for _ in range(3))),
                       mode=sad.Forward)
    np.testing.assert_allclose(out, wb[:3], rtol=1e-12)


def test_restore_and_failure_atomicity():
    d = RHS.copy()
    sad.autodiff(stepper, Duplicated(B_DIAG.copy(), np.zeros(N)), Duplicated(d, np.zeros(N)),
                 restore=True)
    assert same_bits(d, RHS)

    @sad.custom_rule(mutates=("d",))
    def half_then_fail(d):
        d[: N // 2] = 7.0
        raise RuntimeError("the rule fails half-way")

    @half_then_fail.reverse
    def _(config, dret, tape, d):
        return (None,)

    def f(b, d):
        THOMAS(A_SUB, b, C_SUP, d)
        half_then_fail(d)
        return np.sum(d)
    b, d, dd = B_DIAG.copy(), RHS.copy(), np.zeros(N)
    with pytest.raises(RuntimeError, match="half-way"):
        sad.autodiff(f, Duplicated(b, np.zeros(N)), Duplicated(d, dd))
    assert same_bits(d, RHS) and same_bits(dd, np.zeros(N))


def test_many_calls_keep_memory_flat():
    import tracemalloc
    args = lambda: (Duplicated(B_DIAG.copy(), np.zeros(N)), Duplicated(RHS.copy(), np.zeros(N)))
    for _ in range(20):
        sad.autodiff(stepper, *args())
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(200):
        sad.autodiff(stepper, *args())
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 200_000, grown


def test_threads_each_differentiate_their_own_calls():
    wb, _ = oracle()
    errors = []

    def work():
        try:
            for _ in range(20):
                db = np.zeros(N)
                sad.autodiff(stepper, Duplicated(B_DIAG.copy(), db),
                             Duplicated(RHS.copy(), np.zeros(N)))
                np.testing.assert_allclose(db, wb, rtol=1e-12)
        except BaseException as e:  # reported by the main thread
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_outside_autodiff_the_plain_function_runs():
    d = RHS.copy()
    THOMAS(A_SUB, B_DIAG, C_SUP, d)
    np.testing.assert_allclose(tridiagonal(A_SUB, B_DIAG, C_SUP) @ d, RHS, rtol=1e-13)


def test_keyword_arguments_and_defaults_bind_by_name():
    @sad.custom_rule
    def scale(x, k=2.0):
        return x * k

    @scale.augmented_primal
    def _(config, x, k):
        return sad.AugmentedReturn(primal=x.val * k.val)

    @scale.reverse
    def _(config, dret, tape, x, k):
        x.dval += dret * k.val
        return (None, None)
    g, = sad.autodiff(lambda x: np.sum(scale(x=x)), Duplicated(np.ones(3), dx := np.zeros(3)))
    assert dx.tolist() == [2.0, 2.0, 2.0]
    g, = sad.autodiff(lambda x: np.sum(scale(x, 3.0)), Active(np.ones(3)))
    assert g.tolist() == [3.0, 3.0, 3.0]


def test_a_scalar_active_and_a_scalar_result():
    @sad.custom_rule
    def cube(x):
        return x ** 3

    @cube.augmented_primal
    def _(config, x):
        return sad.AugmentedReturn(primal=x.val ** 3, tape=x.val)

    @cube.reverse
    def _(config, dret, x0, x):
        return (3.0 * x0 ** 2 * dret,)

    @cube.forward
    def _(config, x):
        return x.val ** 3, 3.0 * x.val ** 2 * x.dval
    g, = sad.autodiff(lambda x: cube(x) * 2.0, Active(1.5))
    assert g == 2.0 * 3.0 * 1.5 ** 2
    t = sad.autodiff(lambda x: cube(x), Duplicated(1.5, 1.0), mode=sad.Forward)
    assert t == 3.0 * 1.5 ** 2


def test_a_rule_that_mutates_and_returns_a_value():
    @sad.custom_rule(mutates=("x",))
    def square_and_sum(x):
        x *= x
        return np.sum(x)

    @square_and_sum.augmented_primal
    def _(config, x):
        x0 = x.val.copy()
        x.val[...] = x0 * x0
        return sad.AugmentedReturn(primal=float(np.sum(x.val)), tape=x0)

    @square_and_sum.reverse
    def _(config, dret, x0, x):
        # new x = x0^2 and s = sum(x0^2): adjoint before = 2 x0 (adj_after + dret)
        x.dval[...] = 2.0 * x0 * (x.dval + dret)
        return (None,)

    def f(x):
        s = square_and_sum(x)
        return s + np.sum(x)
    x, dx = np.array([1.0, 2.0, -3.0]), np.zeros(3)
    sad.autodiff(f, Duplicated(x, dx))
    assert dx.tolist() == [4.0, 8.0, -12.0] and x.tolist() == [1.0, 4.0, 9.0]


# --------------------------------------------------------------------------
# errors that name the fix

def test_an_undeclared_write_is_an_error_naming_mutates():
    broken = make_thomas("undeclared")
    with pytest.raises(ValueError, match="mutates"):
        sad.autodiff(lambda b, d: (broken(A_SUB, b, C_SUP, d), np.sum(d))[1],
                     Duplicated(B_DIAG.copy(), np.zeros(N)), Duplicated(RHS.copy(), np.zeros(N)))


def test_missing_parts_and_wrong_returns_are_named():
    @sad.custom_rule
    def f0(x):
        return x * 2.0
    with pytest.raises(NotImplementedError, match=r"@f0\.reverse"):
        sad.gradient(lambda x: np.sum(f0(x)), np.ones(2))
    with pytest.raises(NotImplementedError, match=r"@f0\.forward"):
        sad.jacobian(lambda x: f0(x), np.ones(2), mode=sad.Forward)

    @f0.augmented_primal
    def _(config, x):
        return x.val * 2.0  # not an AugmentedReturn

    @f0.reverse
    def _(config, dret, tape, x):
        return (None,)
    with pytest.raises(TypeError, match="AugmentedReturn"):
        sad.gradient(lambda x: np.sum(f0(x)), np.ones(2))

    @sad.custom_rule
    def f1(x):
        return x * 2.0

    @f1.reverse
    def _(config, dret, tape, x):
        return None
    with pytest.raises(TypeError, match="one entry per argument"):
        sad.gradient(lambda x: np.sum(f1(x)), np.ones(2))
    with pytest.raises(ValueError, match="not an argument"):
        sad.custom_rule(lambda x: x, mutates=("y",))
    with pytest.raises(TypeError, match="positional"):
        sad.custom_rule(lambda *xs: xs)


def test_a_plain_array_overwritten_with_active_values_is_refused():
    def f(b):
        d = RHS.copy()  # plain memory: its derivative would be lost
        THOMAS(A_SUB, b, C_SUP, d)
        return np.sum(d)
    with pytest.raises(TypeError, match="np.zeros_like"):
        sad.gradient(f, B_DIAG.copy())


# --------------------------------------------------------------------------
# check_rule catches every kind of broken rule

def _check(rule):
    def f(b, d):
        rule(A_SUB, b, C_SUP, d)
        d *= 1.5
        rule(A_SUB, b, C_SUP, d)
        return np.sum(d * d)
    check_rule(f, Duplicated(B_DIAG.copy(), np.zeros(N)), Duplicated(RHS.copy(), np.zeros(N)))


def test_check_rule_passes_the_right_rule():
    _check(make_thomas())


@pytest.mark.parametrize("broken", ["wrong derivative", "no restore", "accumulates overwritten",
                                    "accumulates twice", "assigns", "forward not transpose"])
def test_check_rule_catches_a_broken_rule(broken):
    with pytest.raises(AssertionError):
        _check(make_thomas(broken))


def test_check_rule_catches_an_undeclared_mutation():
    with pytest.raises(ValueError, match="mutates"):
        _check(make_thomas("undeclared"))


# --------------------------------------------------------------------------
# implements=: a numpy function differentiated by the rule

def test_implements_makes_the_rule_numpys_derivative_and_unregisters():
    @sad.custom_rule(implements=np.linalg.cond)
    def cond(x, p=None):  # a stand-in: shadowad has no rule for cond
        return np.linalg.norm(x)

    @cond.augmented_primal
    def _(config, x, p):
        v = float(np.linalg.norm(x.val))
        return sad.AugmentedReturn(primal=v, tape=v)

    @cond.reverse
    def _(config, dret, v, x, p):
        x.dval += dret * x.val / v
        return (None, None)
    try:
        x = np.array([3.0, 4.0])
        g, = sad.gradient(lambda x: np.linalg.cond(x) * 2.0, x)
        np.testing.assert_allclose(g, 2.0 * x / 5.0)
    finally:
        cond.unregister()
    with pytest.raises(NotImplementedError, match="linalg.cond"):
        sad.gradient(lambda x: np.linalg.cond(x), np.ones(2))


def test_implements_refuses_what_numpy_does_not_dispatch():
    with pytest.raises(TypeError, match="ufunc"):
        sad.custom_rule(lambda x: x, implements=np.sin)


# --------------------------------------------------------------------------
# nested differentiation: the rule's parts are differentiated in turn

def _softplus_rule():
    @sad.custom_rule
    def softplus(x):
        return np.log1p(np.exp(x))

    @softplus.augmented_primal
    def _(config, x):
        return sad.AugmentedReturn(primal=np.log1p(np.exp(x.val)))

    @softplus.reverse
    def _(config, dret, tape, x):
        s = 1.0 / (1.0 + np.exp(-x.val))
        if isinstance(x, Active):
            return (dret * s,)
        x.dval += dret * s
        return (None,)

    @softplus.forward
    def _(config, x):
        s = 1.0 / (1.0 + np.exp(-x.val))
        z = np.log1p(np.exp(x.val))
        if config.width > 1:
            return z, tuple(s * d for d in x.dvals)
        return z, s * x.dval
    return softplus


@pytest.mark.parametrize("outer", [sad.Forward, sad.Reverse])
@pytest.mark.parametrize("inner", [sad.Forward, sad.Reverse])
def test_hessian_through_a_custom_rule(outer, inner):
    softplus = _softplus_rule()
    x0 = np.array([-1.0, 0.5, 2.0])
    s = 1.0 / (1.0 + np.exp(-x0))

    def grad(x):
        return sad.jacobian(lambda y: np.sum(softplus(y)), x, mode=inner)
    hess = sad.jacobian(grad, x0.copy(), mode=outer)
    np.testing.assert_allclose(hess, np.diag(s * (1.0 - s)), rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("outer", [sad.Forward, sad.Reverse])
@pytest.mark.parametrize("inner", [sad.Forward, sad.Reverse])
def test_hessian_through_a_mutating_rule(outer, inner):
    """The Thomas solver (d overwritten) inside the inner function: its new
    content is differentiated through the rule's forward and reverse parts,
    and the Hessian matches the numpy program's."""
    def inner_f(c):
        d = np.zeros_like(c) + RHS  # memory of the nested differentiation
        for _ in range(2):
            THOMAS(A_SUB, c, C_SUP, d)
            d *= 1.01
        return np.sum(d * d)

    def inner_numpy(c):
        m = tridiagonal(A_SUB, c, C_SUP)
        d = RHS
        for _ in range(2):
            d = np.linalg.solve(m, d) * 1.01
        return np.sum(d * d)

    def grad_of(f):
        return lambda b: sad.jacobian(f, b, mode=inner)
    got = sad.jacobian(grad_of(inner_f), B_DIAG.copy(), mode=outer)
    want = sad.jacobian(grad_of(inner_numpy), B_DIAG.copy(), mode=outer)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_a_mutating_rule_on_memory_another_argument_views_inside_a_nested_differentiation():
    def inner(c):
        d = np.zeros_like(c) + RHS
        THOMAS(A_SUB, d, C_SUP, d[::-1])  # d's reverse is overwritten while read as b
        return np.sum(d)

    def grad(b):
        return sad.gradient(inner, b)[0]
    with pytest.raises(ValueError, match="'d', which the rule overwrites, shares memory "
                                         "with argument 'b'"):
        sad.jacobian(grad, B_DIAG.copy())


def test_a_mutating_rule_on_plain_memory_inside_a_nested_differentiation_is_refused():
    def inner(c):
        d = RHS.copy()  # plain memory: the derivative of what the rule writes would be lost
        THOMAS(A_SUB, c, C_SUP, d)
        return np.sum(d)

    def grad(b):
        return sad.gradient(inner, b)[0]
    with pytest.raises(TypeError, match="np.zeros_like"):
        sad.jacobian(grad, B_DIAG.copy())


# --------------------------------------------------------------------------
# what the outside tester found: aliasing, results that are arguments, lanes

def _scale_into():
    @sad.custom_rule(mutates=("y",))
    def scale_into(x, y):
        y *= x

    @scale_into.augmented_primal
    def _(config, x, y):
        y0 = y.val.copy()
        y.val[...] = y0 * x.val
        return sad.AugmentedReturn(tape=y0)

    @scale_into.reverse
    def _(config, dret, y0, x, y):
        gy = y.dval.copy()
        if type(x) is not Const:
            x.dval += gy * y0
        y.dval[...] = gy * x.val
        return (None, None)

    @scale_into.forward
    def _(config, x, y):
        dx = 0.0 if type(x) is Const else x.dval
        y.dval[...] = dx * y.val + x.val * y.dval
        y.val[...] = y.val * x.val
        return None
    return scale_into


@pytest.mark.parametrize("mode", [sad.Reverse, sad.Forward])
@pytest.mark.parametrize("overlap", ["same array", "overlapping views"])
def test_a_mutated_argument_sharing_memory_with_another_is_refused(mode, overlap):
    rule = _scale_into()

    def f(w):
        if overlap == "same array":
            rule(w, w)
        else:
            rule(w[:3], w[2:])
        return np.sum(w * w)
    w = np.linspace(0.5, 1.5, 5)
    args = (Duplicated(w.copy(), np.zeros(5) if mode is sad.Reverse else np.ones(5)),)
    with pytest.raises(ValueError, match="shares memory"):
        sad.autodiff(f, *args, mode=mode)


@pytest.mark.parametrize("mode", [sad.Reverse, sad.Forward])
def test_a_result_that_is_an_argument_is_refused(mode):
    @sad.custom_rule
    def ident(x):
        return x

    @ident.reverse
    def _(config, dret, tape, x):
        x.dval += dret
        return (None,)

    @ident.forward
    def _(config, x):
        return x.val, x.dval
    f = lambda x: np.sum(ident(x) * 2.0)  # noqa: E731
    with pytest.raises(ValueError, match="result shares memory"):
        sad.autodiff(f, Duplicated(np.ones(3), np.ones(3)), mode=mode)


def test_a_forward_part_reading_dval_with_several_lanes_says_use_dvals():
    @sad.custom_rule
    def double(x):
        return 2.0 * x

    @double.forward
    def _(config, x):
        return 2.0 * x.val, 2.0 * x.dval
    with pytest.raises(AttributeError, match=r"\.dvals\[lane\]"):
        sad.jacobian(lambda x: double(x), np.ones(3), mode=sad.Forward)


def test_a_second_rule_for_one_function_is_refused_until_the_first_unregisters():
    def make():
        @sad.custom_rule(implements=np.cumsum)
        def cumsum(a, axis=None, dtype=None, out=None):
            return np.cumsum(a)
        return cumsum
    first = make()
    try:
        with pytest.raises(ValueError, match="already implements"):
            make()
    finally:
        first.unregister()
    second = make()
    second.unregister()
    first.unregister()  # no longer registered: nothing to undo
    g, = sad.gradient(lambda x: np.sum(np.cumsum(x)), np.ones(3))  # the built-in rule again
    assert g.tolist() == [3.0, 2.0, 1.0]


@pytest.mark.parametrize("split", [False, True])
def test_a_reverse_that_raises_in_the_sweep_leaves_primals_and_shadows(split):
    """A user's reverse fails half-way through the sweep, after the records
    after it have accumulated into the shadows: the primals and the shadows
    are as they were before autodiff."""
    @sad.custom_rule
    def fails(x):
        return x * 1.0

    @fails.reverse
    def _(config, dret, tape, x):
        raise RuntimeError("the rule's reverse fails")

    def f(b, d):
        THOMAS(A_SUB, b, C_SUP, d)
        return np.sum(fails(d) * d)
    b, d = B_DIAG.copy(), RHS.copy()
    db, dd = np.full(N, 0.5), np.full(N, 0.25)
    args = (Duplicated(b, db), Duplicated(d, dd))
    with pytest.raises(RuntimeError, match="reverse fails"):
        if split:
            sad.autodiff_split(f, *args)[1].reverse(1.0, restore=True)
        else:
            sad.autodiff(f, *args, restore=True)
    assert same_bits(b, B_DIAG) and same_bits(d, RHS)
    assert same_bits(db, np.full(N, 0.5)) and same_bits(dd, np.full(N, 0.25))
