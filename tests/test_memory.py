"""shadowad.support.memory: the one place that says where elements lie and whether
two arrays meet (bounds, addresses, exact overlap, byte equality)."""
import numpy as np
import pytest

from shadowad.support import memory

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # numpy 1.x
    from numpy import byte_bounds


def _views():
    a = np.arange(60.).reshape(3, 4, 5)
    return [a, a.T, a[::-1], a[:, ::2, 1::2], a[..., ::-3], a[1], a[0, 0, 0, ...], a.reshape(-1)[7:9]]


@pytest.mark.parametrize("k", range(8))
def test_bounds_and_addresses_agree_with_numpy(k):
    v = _views()[k]
    assert memory.bounds(v) == tuple(byte_bounds(v))
    assert memory.data(v) == v.__array_interface__["data"][0]
    addr = memory.element_addresses(v)
    assert addr.shape == v.shape
    lo, hi = memory.bounds(v)
    assert addr.min() == lo and addr.max() + v.itemsize == hi
    assert len(np.unique(addr)) == v.size


def test_empty_array_has_empty_bounds():
    a = np.zeros((3, 4))[:, 2:2]
    lo, hi = memory.bounds(a)
    assert lo == hi


def test_shares_memory_is_exact():
    x = np.zeros(10)
    assert not memory.shares_memory(x[::2], x[1::2])
    assert memory.shares_memory(x[::2], x[2:5])
    assert not memory.shares_memory(x, np.zeros(10))


@pytest.mark.parametrize("layout", ["c", "strided", "reversed", "fortran", "broadcast"])
def test_same_bytes_compares_bits(layout):
    base = np.array([[1.0, np.nan, 0.0], [-2.0, 3.0, 4.0]])
    make = {"c": lambda a: a, "strided": lambda a: np.repeat(a, 2, axis=1)[:, ::2],
            "reversed": lambda a: a[::-1].copy()[::-1], "fortran": np.asfortranarray,
            "broadcast": lambda a: np.broadcast_to(a[:1], a.shape)}[layout]
    a = make(base)
    b = np.array(a)
    assert memory.same_bytes(a, b)          # NaN equals itself: bits, not values
    assert memory.same_bytes(a, np.asfortranarray(b))
    c = b.copy()
    c[0, 2] = -0.0                           # equal value, other bits
    assert not memory.same_bytes(a, c)
    assert not memory.same_bytes(a, b[:1])   # another shape
    assert memory.same_bytes(a.astype(np.float32), b.astype(np.float32))


def _imports(module):
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(module))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
    return out


def test_memory_and_activity_stay_leaves():
    """shadowad/support/memory.py imports numpy and the compiled core only, so activity.py (plain
    data, no engine) can take shares_memory from it."""
    from shadowad import activity
    assert _imports(memory) <= {"numpy", ".._c"}
    assert _imports(activity) <= {"numbers", "numpy", ".support.memory"}
