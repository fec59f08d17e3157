"""sad.Vector: a plain container outside f; inside f (as a Duplicated or Const
argument, or created inside f) push's pullback pops and accumulates, pop's
pullback pushes back; gradients by finite differences, restore bit for bit,
and many pushes (reallocation while recording and sweeping)."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Const, Duplicated, autodiff
from shadowad.testing import (check_rule, check_accumulate_once, check_gradient, check_restore,
    same_bits)

Vector = sad.Vector


def vdup(values, shadow=None):
    v = Vector(np.array(values, dtype=float))
    dv = Vector(np.zeros(len(v)) if shadow is None else np.array(shadow, dtype=float))
    return Duplicated(v, dv)


def dup(a):
    a = np.asarray(a, dtype=float)
    return Duplicated(a, np.zeros_like(a))


check_all = check_rule


# --------------------------------------------------------------------------
# outside f: a plain container

def test_plain_push_pop_len_index():
    v = Vector()
    assert len(v) == 0 and v[:].shape == (0,)
    v.push(1.0)
    v.push(np.array([2.0, 3.0]))
    v.push([4, 5])
    v.push(np.int64(6))
    v.push(np.float32(7.5))
    v.push(np.arange(8.0, 10.0)[::-1])  # a strided view: pushed in order
    assert len(v) == 9
    assert v[:].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5, 9.0, 8.0]
    assert v[0] == 1.0 and v[-1] == 8.0 and v[-9] == 1.0 and v[np.int64(2)] == 3.0
    assert type(v[0]) is float
    assert v[1:3].tolist() == [2.0, 3.0] and v[::-3].tolist() == [8.0, 6.0, 3.0]
    v[0] = 10
    v[-1] = np.float64(11.0)
    assert v[0] == 10.0 and v[8] == 11.0
    assert v.pop() == 11.0 and len(v) == 8
    assert list(v) == [10.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5, 9.0]
    assert np.asarray(v).tolist() == list(v)


def test_plain_slice_is_a_copy():
    v = Vector([1.0, 2.0])
    c = v[:]
    c[0] = 99.0
    assert v[0] == 1.0
    v.push(3.0)
    assert c.tolist() == [99.0, 2.0]


def test_constructor_data():
    assert Vector([1, 2, 3])[:].tolist() == [1.0, 2.0, 3.0]
    assert Vector(np.arange(4.0))[:].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert len(Vector(2.5)) == 1


def test_plain_many_pushes_and_pops():
    v = Vector()
    for i in range(10000):
        v.push(float(i))
    v.push(np.arange(10000.0, 30000.0))
    assert len(v) == 30000
    assert same_bits(v[:], np.arange(30000.0))
    for i in range(29999, 9999, -1):
        assert v.pop() == float(i)
    assert len(v) == 10000


@pytest.mark.parametrize("bad, exc", [
    (lambda v: Vector().pop(), IndexError),
    (lambda v: v.push(np.zeros((2, 2))), ValueError),
    (lambda v: v.push(np.zeros((1, 3))), ValueError),
    (lambda v: v.push("abc"), TypeError),
    (lambda v: v.push(np.array([1 + 2j])), TypeError),
    (lambda v: v[1.5], TypeError),
    (lambda v: v["a"], TypeError),
    (lambda v: v[None], TypeError),
    (lambda v: v[[0, 1]], TypeError),
    (lambda v: v[2], IndexError),
    (lambda v: v[-3], IndexError),
    (lambda v: v.__setitem__(2, 1.0), IndexError),
    (lambda v: v.__setitem__(1.0, 1.0), TypeError),
    (lambda v: v.__setitem__(0, "x"), TypeError),
    (lambda v: v.__setitem__(0, np.ones(2)), TypeError),
])
def test_plain_errors(bad, exc):
    v = Vector([1.0, 2.0])
    with pytest.raises(exc):
        bad(v)
    assert v[:].tolist() == [1.0, 2.0]  # nothing changed


def test_pop_until_empty_then_error():
    v = Vector([1.0])
    v.pop()
    with pytest.raises(IndexError, match="empty"):
        v.pop()


# --------------------------------------------------------------------------
# inside f: exact pullbacks

def test_push_pullback_pops_and_accumulates():
    def f(v, x):
        v.push(x[0] * 3.0)
        return v[-1] * 2.0
    v, dv = Vector([4.0, 5.0]), Vector([1.0, 1.0])
    dx = np.zeros(1)
    autodiff(f, Duplicated(v, dv), Duplicated(np.array([7.0]), dx))
    assert dx.tolist() == [6.0]
    assert v[:].tolist() == [4.0, 5.0, 21.0]     # the push is visible after the call
    assert dv[:].tolist() == [1.0, 1.0]          # the adjoint of v before the call


def test_pop_pullback_pushes_back():
    def f(v, x):
        a = v.pop()
        return a * x[0]
    v, dv = Vector([4.0, 5.0, 6.0]), Vector([1.0, 2.0, 3.0])
    dx = np.zeros(1)
    autodiff(f, Duplicated(v, dv), Duplicated(np.array([10.0]), dx))
    assert dx.tolist() == [6.0]
    assert v[:].tolist() == [4.0, 5.0]
    # the popped element's seed (3) is handed back plus the popped value's adjoint
    assert dv[:].tolist() == [1.0, 2.0, 13.0]


def test_pop_restore():
    v, dv = Vector([4.0, 5.0, 6.0]), Vector([0.0, 0.0, 0.0])
    autodiff(lambda v: v.pop() * 2.0, Duplicated(v, dv), restore=True)
    assert v[:].tolist() == [4.0, 5.0, 6.0]
    assert dv[:].tolist() == [0.0, 0.0, 2.0]


def test_load_and_store_pullbacks():
    def f(v, x):
        v[0] = x[0] * v[1]       # VLOAD of v[1], VSTORE into v[0]
        v[1] = 5.0               # a constant overwrites: v[1]'s adjoint is consumed
        return v[0] + v[1] * x[0]
    v, dv = Vector([1.0, 2.0]), Vector([10.0, 20.0])
    dx = np.zeros(1)
    autodiff(f, Duplicated(v, dv), Duplicated(np.array([3.0]), dx))
    # result = x*v1 + 5x; plus seeds: 10*v0_new + 20*v1_new = 10*x*v1 + 20*5
    assert dx.tolist() == [2.0 + 5.0 + 10.0 * 2.0]
    assert dv[:].tolist() == [0.0, 3.0 + 10.0 * 3.0]
    assert v[:].tolist() == [6.0, 5.0]


def test_slice_copy_pullback():
    def f(v, y):
        y[...] = v[:] * 2.0
    v, dv = Vector([1.0, 2.0, 3.0]), Vector([0.0, 0.0, 0.0])
    y, dy = np.zeros(3), np.array([1.0, 2.0, 3.0])
    autodiff(f, Duplicated(v, dv), Duplicated(y, dy))
    assert dv[:].tolist() == [2.0, 4.0, 6.0]
    assert y.tolist() == [2.0, 4.0, 6.0]


# --------------------------------------------------------------------------
# inside f: finite differences, restore, accumulate-once

def p_push_pop(v, x):
    v.push(x[0] * x[1])
    v.push(np.sin(x[1]))
    a = v.pop()
    b = v.pop()
    c = v.pop()            # an element that was there before the call
    return a * b + c * x[0]


def p_arrays(v, x, y):
    v.push(x)              # a whole traced array
    v.push(x[::-1] * 2.0)
    v.push(x[1:2])
    y[...] = v[:][-3:]     # read back through a copy
    t = v.pop()
    return t * v[0] + v[-1]


def p_store_load(v, x):
    for i in range(len(v)):
        v[i] = v[i] * x[i % 2] + 1.0
    v[-1] = v[0] * v[1]
    return v[-1] + v[2] * v[2]


def p_rotate(v, x):
    for _ in range(3):      # move the last element to the front, scaled
        a = v.pop()
        w = Vector()
        while len(v):
            w.push(v.pop())
        v.push(a * x[0])
        while len(w):
            v.push(w.pop())
    return v[0] * v[1] + v[-1]


def p_temporary(v, x):
    w = Vector()            # created inside f: recorded on the tape
    for i in range(len(x)):
        w.push(x[i] * x[i])
    w.push(x)               # then the elements of x
    s = w.pop() * v[0]      # the last one
    while len(w) > 0:
        s = s + w.pop() * v[0]
    return s


def p_vector_from_array(v, x):
    w = Vector(x * 2.0)     # a temporary built from a traced array
    return w[0] * w[-1] + w.pop() * v[1]


PROGRAMS = {
    "push_pop": (p_push_pop, lambda: [vdup([0.5, -1.5]), dup([1.2, 0.7])]),
    "arrays": (p_arrays, lambda: [vdup([3.0]), dup([1.0, 2.0, -0.5]), dup(np.zeros(3))]),
    "store_load": (p_store_load, lambda: [vdup([0.5, -1.0, 2.0, 0.25]), dup([1.3, -0.7])]),
    "rotate": (p_rotate, lambda: [vdup([1.0, 2.0, 3.0, 4.0]), dup([0.9])]),
    "temporary": (p_temporary, lambda: [vdup([1.5]), dup([0.3, -0.8, 1.1])]),
    "from_array": (p_vector_from_array, lambda: [vdup([1.5, 2.5]), dup([0.3, -0.8, 1.1])]),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_programs(name):
    f, args = PROGRAMS[name]
    check_all(f, *args())


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_programs_with_const_vector(name):
    """A Const Vector is promoted when an active value is written into it."""
    f, args = PROGRAMS[name]
    a = args()
    a[0] = Const(a[0].val)
    check_all(f, *a)


def test_const_vector_inactive_ops_are_restored():
    """Pops and pushes of constants on a Const Vector, before and after it
    receives an active value: restore=True and exceptions give it back."""
    def f(v, x):
        v.pop()
        v.push(2.0)
        v[0] = 7.0
        v.push(x[0])        # promotes v
        v.pop()
        v.pop()
        v.push(np.array([1.0, 2.0]))
        return v[1] * x[0]
    check_all(f, Const(Vector([1.0, 2.0, 3.0])), dup([0.5]))

    def g(v, x):
        f(v, x)
        raise KeyError("boom")
    v = Vector([1.0, 2.0, 3.0])
    with pytest.raises(KeyError):
        autodiff(g, Const(v), dup([0.5]))
    assert v[:].tolist() == [1.0, 2.0, 3.0]


def test_duplicated_vector_exception_restores():
    v, dv = Vector([1.0, 2.0]), Vector([5.0, 6.0])

    def f(v, x):
        v.push(x[0])
        v.pop()
        v.pop()
        v[0] = x[0] * 2.0
        raise ValueError("late")
    with pytest.raises(ValueError, match="late"):
        autodiff(f, Duplicated(v, dv), dup([3.0]))
    assert v[:].tolist() == [1.0, 2.0] and dv[:].tolist() == [5.0, 6.0]


# --------------------------------------------------------------------------
# many pushes: the data moves while recording; the sweeps never allocate

def test_many_scalar_pushes_into_a_duplicated_vector():
    n = 5000
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, n)
    v, dv = Vector([0.5]), Vector([2.0])

    def f(v, x):
        for i in range(len(x)):
            v.push(x[i] * x[i])          # grows from capacity 8 many times
        s = 0.0
        for i in range(len(x)):
            s = s + v.pop() * (i % 3)
        return s + v[0] * 3.0
    dx = np.zeros(n)
    autodiff(f, Duplicated(v, dv), Duplicated(x0.copy(), dx))
    # popped in reverse order: element j (pushed j-th) is popped at i = n-1-j
    weights = (np.arange(n)[::-1] % 3).astype(float)
    np.testing.assert_allclose(dx, 2 * x0 * weights, rtol=1e-15, atol=0)
    assert dv[:].tolist() == [2.0 + 3.0]
    assert v[:].tolist() == [0.5]


def test_many_pops_then_pushes():
    """Pop everything (the sweep pushes it all back), then push more than the
    original length (the data moves again)."""
    n = 3000
    v0 = np.linspace(-1, 1, n)
    v, dv = Vector(v0), Vector(np.zeros(n))

    def f(v, x):
        s = 0.0
        while len(v):
            s = s + v.pop() * x[0]
        for i in range(2 * n):
            v.push(x[0] * float(i))
        v.push(np.full(n, 0.5) * x[0])
        return s + v[n] * v[-1]
    dx = np.zeros(1)
    (_, _), res = autodiff(f, Duplicated(v, dv), Duplicated(np.array([1.5]), dx),
                           mode=sad.ReverseWithPrimal)
    assert len(v) == 3 * n and len(dv) == n
    assert dv[:].tolist() == [1.5] * n
    assert dx[0] == pytest.approx(v0.sum() + 2 * 1.5 * n * 0.5, rel=1e-12)
    check_restore(f, Duplicated(Vector(v0), Vector(np.zeros(n))), dup([1.5]))


def test_several_sweeps_of_a_vector_whose_length_f_changed():
    """A batch sweeps one tape once per lane, redoing in between: each sweep
    starts with the Vector's shadow as long as f left the Vector (not as it
    was before the call), and each lane equals its own call."""
    def f(x, v):
        v.push(x[0] * x[1])
        v.push(x[1] * 3.0)
        a = v.pop()
        v.push(np.sin(x))
        return a * v[-1] + v[0] * x[0] + v[-3] * x[1]
    x = np.array([1.5, 2.0])
    seeds = (np.array([1.0, -2.0]), np.array([0.5, 3.0]))
    lanes = tuple(s.copy() for s in seeds)
    autodiff(f, sad.BatchDuplicated(x.copy(), lanes), Const(Vector([0.5, 0.25, 1.0])))
    for lane, seed in zip(lanes, seeds):
        alone = seed.copy()
        autodiff(f, Duplicated(x.copy(), alone), Const(Vector([0.5, 0.25, 1.0])))
        np.testing.assert_allclose(lane, alone, rtol=1e-15)


def test_many_array_pushes_into_a_temporary():
    def f(x):
        w = Vector()
        for k in range(200):
            w.push(x * float(k % 7))
        s = 0.0
        for k in range(len(w) // 2):
            s = s + w.pop() * w.pop()
        return s
    x = np.linspace(0.1, 1.0, 25)
    check_gradient(f, dup(x))
    check_accumulate_once(f, dup(x))


def test_promotion_after_growth():
    """A Const Vector grown by inactive pushes, then promoted, then grown again."""
    def f(v, x):
        for i in range(100):
            v.push(float(i))
        v.push(x[0])
        for i in range(100):
            v.push(x[1] * float(i))
        for _ in range(150):
            v.pop()
        return v[-1] * v[50]
    check_all(f, Const(Vector([1.0, 2.0])), dup([0.7, 1.3]))


# --------------------------------------------------------------------------
# inside f: errors

@pytest.mark.parametrize("bad, exc", [
    (lambda v, x: Vector().pop(), IndexError),
    (lambda v, x: v.push(np.ones((2, 2))), ValueError),
    (lambda v, x: v.push(x.reshape(1, 2)), ValueError),
    (lambda v, x: v[1.5], TypeError),
    (lambda v, x: v[5], IndexError),
    (lambda v, x: v.__setitem__(0, "a"), TypeError),
    (lambda v, x: np.asarray(v), TypeError),
])
def test_errors_inside_f(bad, exc):
    def f(v, x):
        bad(v, x)
    v = Vector([1.0, 2.0])
    with pytest.raises(exc):
        autodiff(f, Duplicated(v, Vector([0.0, 0.0])), dup([1.0, 2.0]))
    assert v[:].tolist() == [1.0, 2.0]


def test_pushing_traced_values_into_an_outside_vector_is_refused():
    outside = Vector()

    def f(x):
        outside.push(x[0])
    with pytest.raises(TypeError, match="Duplicated or Const"):
        autodiff(f, dup([1.0]))
    assert len(outside) == 0


def test_shadow_vector_length_must_match():
    with pytest.raises(ValueError, match="length"):
        Duplicated(Vector([1.0, 2.0]), Vector([0.0]))
    with pytest.raises(TypeError):
        Duplicated(Vector([1.0]), np.zeros(1))


def test_same_const_vector_passed_twice():
    """Both arguments see one Vector: a push through one is popped through the other."""
    def f(x, v1, v2):
        v1.push(x[0] * 2.0)
        return v2.pop() * 3.0 + v2[0]
    v = Vector([1.0, 2.0])
    dx = np.zeros(1)
    autodiff(f, Duplicated(np.array([1.0]), dx), Const(v), Const(v))
    assert dx.tolist() == [6.0]
    assert v[:].tolist() == [1.0, 2.0]


def test_same_vector_with_two_activities_is_refused():
    v = Vector([1.0, 2.0])
    with pytest.raises(ValueError, match="one activity"):
        autodiff(lambda a, b: None, Const(v), Duplicated(v, Vector([0.0, 0.0])))


def test_zeros_is_a_plain_vector_of_zeros():
    v = sad.Vector.zeros(5)
    assert type(v) is sad.Vector and len(v) == 5
    assert sad.testing.same_bits(v[:], np.zeros(5))
    assert len(sad.Vector.zeros(0)) == 0
