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


# -- what Python code can reach must not crash the interpreter ---------------
# Each case runs in a child interpreter: a segfault fails the test instead of
# ending the run.

def _run_child(code):
    """(returncode, the child's last stdout line) of Python `code` run with
    this process's shadowad first on the path."""
    import os
    import sys
    import textwrap
    import shadowad
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(shadowad.__file__).resolve().parent.parent)] +
        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                           capture_output=True, text=True, timeout=120)
    lines = child.stdout.strip().splitlines()
    return child.returncode, (lines[-1] if lines else child.stderr[-2000:])


_REPORT = """
import numpy as np, shadowad as sad
from shadowad import Active, Duplicated
def report(run):
    try:
        run()
    except Exception as e:
        print(type(e).__name__, e)
    else:
        print("no error")
"""


@pytest.mark.parametrize("make", [
    "sad.TScalar(2.0, 8, x.tape)",
    "sad.TScalar(2.0, 0, x.tape)",
    "fast.ScalarBase(2.0, 8, x.tape)",
    "type(x)(2.0, 8, x.tape)",
])
def test_traced_scalars_cannot_be_constructed_from_an_address(make):
    code, out = _run_child(_REPORT + f"""
from shadowad._c import fast
def f(x):
    bad = {make}
    return bad * x
report(lambda: sad.autodiff(f, Active(1.0)))
""")
    assert code == 0, out
    assert out.startswith("TypeError") and "come from operations on traced values" in out, out


def test_the_scalar_factory_refuses_what_is_not_a_tape():
    code, out = _run_child(_REPORT + """
from shadowad._c import fast
report(lambda: fast.scalar(1.0, 8, object()))
""")
    assert code == 0, out
    assert out.startswith("TypeError") and "is not a Tape" in out, out


@pytest.mark.parametrize("field, value", [("_tptr", 64), ("_tptr", None), ("alive", 1),
                                          ("alive", 0)])
def test_a_tapes_c_fields_are_read_only(field, value):
    code, out = _run_child(_REPORT + f"""
def f(x):
    x.buf.tape.{field} = {value!r}
    return np.sum(x * x)
report(lambda: sad.autodiff(f, Duplicated(np.ones(4), np.zeros(4))))
""")
    assert code == 0, out
    assert out.startswith("AttributeError") and "readonly" in out, out


def test_a_tape_binds_its_c_tape_once():
    code, out = _run_child(_REPORT + """
from shadowad.engines.reverse.tape import Tape
t = Tape()
before = t._tptr
try:
    t.__init__()
except RuntimeError as e:
    msg = str(e)
try:
    t._bind(64)
except RuntimeError as e2:
    msg2 = str(e2)
assert t._tptr == before and t.alive == 1
t.free()
try:
    t._bind(before)
except RuntimeError as e3:
    print("refused" if "already" in msg and "already" in msg2 and "already" in str(e3) else msg)
""")
    assert code == 0, out
    assert out == "refused", out


@pytest.mark.parametrize("value", ["0", "-1", "10**6", "2**62", "other"])
def test_a_buffers_slot_is_checked_by_c(value):
    """Out of range, or a real slot of another temporary: a clear error."""
    code, out = _run_child(_REPORT + f"""
def f(x):
    y = x * 2.0
    w = x[:60000] * 3.0
    other = w.buf.slot
    y.buf.slot = {value}
    return np.sum(y * y)
n = 100000
report(lambda: sad.autodiff(f, Duplicated(np.ones(n), np.zeros(n))))
""")
    assert code == 0, out
    assert out.startswith("TapeError") and "lazy shadow this tape does not have" in out, out


@pytest.mark.parametrize("use", ["np.sum(y)", "np.sum(y[10:] * 2.0)", "np.sum(np.outer(y[:300], y[:300]))",
                                 "sad.primal(y).sum() + np.sum(y.reshape(10, -1) @ y[:10000])"])
def test_a_wrong_slot_reaches_no_entry_point(use):
    code, out = _run_child(_REPORT + f"""
def f(x):
    y = x * 2.0
    w = x[:60000] * 3.0
    y.buf.slot = w.buf.slot
    return {use}
n = 100000
report(lambda: sad.autodiff(f, Duplicated(np.ones(n), np.zeros(n))))
""")
    assert code == 0, out
    assert "Error" in out and "lazy shadow" in out, out


@pytest.mark.parametrize("field, value", [("p", "[1.0, 2.0, 3.0, 4.0]"), ("p", "None"),
                                          ("p", "np.ones(4, dtype=np.float32)"),
                                          ("p", "np.ones(4, dtype='>f8')"),
                                          ("_s", "[0.0] * 4"), ("_s", "np.zeros(4, np.int64)")])
def test_a_traced_arrays_fields_are_checked_where_c_reads_them(field, value):
    code, out = _run_child(_REPORT + f"""
def f(x):
    x.{field} = {value}
    return np.sum(np.sin(x))
report(lambda: sad.autodiff(f, Duplicated(np.ones(4), np.zeros(4))))
""")
    assert code == 0, out
    assert "Error" in out, out


@pytest.mark.parametrize("field, value", [("p", "[1.0, 2.0, 3.0, 4.0]"), ("_s", "[1.0] * 4"),
                                          ("p", "np.ones(4, np.float32)"),
                                          ("_s", "np.ones((1, 4), np.int64)")])
def test_a_dual_arrays_fields_are_checked_where_c_reads_them(field, value):
    code, out = _run_child(_REPORT + f"""
def f(x):
    x.{field} = {value}
    return np.sum(np.sin(x) * x)
report(lambda: sad.autodiff(f, Duplicated(np.ones(4), np.ones(4)), mode=sad.Forward))
""")
    assert code == 0, out
    assert "Error" in out, out
