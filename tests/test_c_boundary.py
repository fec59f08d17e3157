"""What crosses into the C core by address stays alive while C reads it.

C takes arrays as ``id(obj)`` and reads the object behind the address during
the call (and, for what a record keeps, during the sweeps: the tape's keep
list holds those).  ``id()`` of a temporary -- a call's result, a slice --
is the address of an object freed as soon as id() returns, before C reads
it: a use after free that one Python's allocator happened to survive and
3.13's did not (``make test-asan`` runs with PYTHONMALLOC=malloc so the
sanitizer sees such reads).  Every id() in the package and the tests takes a
name, an attribute of one, or an item of a list by constant index: something
a name holds across the call.
"""
import ast
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for d in ("shadowad", "tests", "benchmarks", "examples")
                 for p in (ROOT / d).rglob("*.py"))


# ndarray attributes that make a new object on every access
FRESH_ATTRIBUTES = {"T", "mT", "real", "imag", "flat", "ctypes"}


def _held(node):
    """Is this id() argument held by a name for the length of the call?"""
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Attribute):  # a field: what the object holds
        return node.attr not in FRESH_ATTRIBUTES and _held(node.value)
    if isinstance(node, ast.Subscript):  # an item of a list that holds it
        return (isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Constant)
                and type(node.slice.value) is int)
    return False


def id_of_temporaries(source):
    """(line, code) of each id(...) whose argument nothing else holds."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "id" and len(node.args) == 1 and not _held(node.args[0])):
            found.append((node.lineno, ast.unparse(node)))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_id_of_a_temporary(path):
    assert id_of_temporaries(path.read_text()) == []


@pytest.mark.parametrize("code, bad", [
    ("lib.f(id(np.broadcast_to(g, s)))", True),
    ("lib.f(id(d[1:]))", True),
    ("lib.f(id(np.empty(n)))", True),
    ("lib.f(id(a.p.T))", True),   # a new view on every access
    ("lib.f(id(res._s), id(self.root))", False),
    ("lib.f(id(x), id(a.p), id(xs[0]))", False),
    ("lib.f(id(xs[i + 1]))", True),
])
def test_the_check_finds_temporaries(code, bad):
    assert bool(id_of_temporaries(code)) == bad


# --------------------------------------------------------------------------
# the extension module (csrc/ext) takes array objects, not their id()

def test_extension_entry_points_hold_the_temporaries_they_are_given():
    """What crashed 3.13 was id() of a broadcast nobody held; the extension's
    entry points take the object, which the call holds while C reads it.
    Temporaries made in the call's arguments, many times over with the
    allocator churning: under `make test-asan` (PYTHONMALLOC=malloc) a read
    of a freed header would abort."""
    from shadowad._c import fast
    base = np.arange(64.0)
    for k in range(2000):
        assert fast.data(base[k % 7:]) == fast.data(base) + 8 * (k % 7)
        kept = np.full(10, 3.0)
        assert fast.same_elements(np.broadcast_to(base[3:4], (5, 2)), fast.data(kept), 8)
        [object() for _ in range(8)]  # reuse the freed objects' memory


def test_the_sum_through_its_operands_record_takes_a_temporary_broadcast():
    """The sum pullback hands C np.broadcast_to(...) made in the call (the
    3.13 crash site, W6's GMM objective), and the gradient is the one the
    slot path gives."""
    import shadowad as sad
    from shadowad import Duplicated
    from shadowad.engines.reverse import traced
    rng = np.random.default_rng(5)
    x0 = rng.uniform(0.5, 1.5, (40, 30, 8))

    def f(x):
        return np.sum(np.sum(np.exp(x * 0.5), axis=1) ** 2)

    def grad():
        x = Duplicated(x0.copy(), np.zeros_like(x0))
        sad.autodiff(f, x)
        return x.dval
    lazy = grad()
    old = traced.LAZY_MIN
    traced.LAZY_MIN = 1 << 62
    try:
        eager = grad()
    finally:
        traced.LAZY_MIN = old
    assert np.array_equal(lazy.view(np.uint64), eager.view(np.uint64))


@pytest.mark.parametrize("call", [
    lambda fast: fast.data(object()),
    lambda fast: fast.data([1.0, 2.0]),
    lambda fast: fast.same_elements(3.0, 0, 8),
    lambda fast: fast.reverse_through(object(), 0, 1, np.zeros(3)),
    lambda fast: fast.reverse_summed(object(), 0, 1, 0, 3, np.zeros(3)),
])
def test_extension_entry_points_refuse_what_is_not_theirs(call):
    """An object that is not an ndarray (or a Tape) is a TypeError, never a
    header read from whatever memory it occupies."""
    from shadowad._c import fast
    with pytest.raises(TypeError):
        call(fast)


def test_reverse_through_refuses_a_freed_tape_and_other_dtypes():
    from shadowad._c import fast
    from shadowad.engines.reverse.tape import Tape
    t = Tape()
    with pytest.raises(TypeError, match="float64"):
        fast.reverse_through(t, 0, 1, np.zeros(3, np.float32))
    assert fast.reverse_through(t, 0, 1, np.zeros(3)) != 0  # no such record: refused
    t.free()
    with pytest.raises(RuntimeError, match="freed"):
        fast.reverse_through(t, 0, 1, np.zeros(3))


# --------------------------------------------------------------------------
# the two modules

def test_neither_module_claims_the_limited_api():
    """Both use CPython's full API (numpy's array header, type slots): their
    files carry this interpreter's own suffix, never .abi3."""
    import importlib.machinery
    import shadowad._csad as core
    import shadowad._fast as ext
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for m in (core, ext):
        assert m.__file__.endswith(suffix) and ".abi3." not in m.__file__


def test_no_ctypes_in_the_package():
    for path in sorted((ROOT / "shadowad").rglob("*.py")):
        assert not re.search(r"\bctypes\b", path.read_text()), path


def test_base_types_come_from_the_extension():
    """The fields the fast paths read are C struct members of the
    extension's base types, which the Python classes subclass."""
    from shadowad.engines.forward import dual
    from shadowad.engines.reverse import buffers, scalar, traced
    from shadowad._c import fast
    from shadowad.engines.reverse.tape import Tape
    pairs = [(scalar.TScalar, fast.ScalarBase), (traced.TArray, fast.ArrayBase),
             (dual.FArray, fast.ArrayBase), (buffers.Buffer, fast.BufferBase),
             (Tape, fast.TapeBase), (dual.Context, fast.ContextBase),
             (dual.FScalar, fast.DualScalarBase)]
    for cls, base in pairs:
        assert issubclass(cls, base), cls
    assert type(fast.__spec__.loader).__name__ == "ExtensionFileLoader"


CORE_SOURCES = sorted(p for d in ("core", "ops") for p in (ROOT / "csrc" / d).glob("*.c"))


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("nm") is None,
                    reason="needs gcc and nm")
@pytest.mark.parametrize("path", CORE_SOURCES, ids=lambda p: p.name)
def test_the_core_keeps_no_global_mutable_state(path, tmp_path):
    """The core is compiled into both modules (shadowad/_build.py): two copies
    may work on one tape only if neither keeps state of its own.  No
    writable data (nm's b, d, c: bss, data, common) in any core object."""
    import sysconfig
    obj = tmp_path / "o.o"
    subprocess.run(["gcc", "-c", "-O2", "-std=c11", f"-I{ROOT / 'csrc' / 'core'}",
                    f"-I{sysconfig.get_paths()['include']}", f"-I{np.get_include()}",
                    str(path), "-o", str(obj)], check=True)
    symbols = subprocess.run(["nm", str(obj)], check=True, capture_output=True,
                             text=True).stdout.splitlines()
    writable = [s for s in symbols if s.split()[-2:-1] and s.split()[-2] in "bBdDcC"]
    assert writable == []
