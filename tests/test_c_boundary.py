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
CORE_FILES = sorted(p for d in ("core", "ops") for p in (ROOT / "csrc" / d).glob("*.[ch]"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_the_core_knows_no_python(path):
    """No core source includes Python's or numpy's headers or names their
    types: arrays reach the core as descriptors (sad_arr)."""
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", path.read_text(), flags=re.S)
    assert not re.search(r'#\s*include\s*[<"](Python|numpy/|structmember|pyconfig)', code)
    assert not re.findall(r"\b(?:Py\w*|NPY_\w+|npy_\w+)\b", code)


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("objdump") is None,
                    reason="needs gcc and objdump")
@pytest.mark.parametrize("path", CORE_SOURCES, ids=lambda p: p.name)
def test_the_core_keeps_no_global_mutable_state(path, tmp_path):
    """No writable data (.data, .bss, common) in any core object: tapes,
    pools and vectors hold all the core's state.  The table of entry points
    (api.c) is constant; as a table of addresses in position-independent
    code it sits in .data.rel.ro, which the loader makes read-only once
    relocated.  Compiled without Python's or numpy's include directories:
    the core needs neither."""
    obj = tmp_path / "o.o"
    subprocess.run(["gcc", "-c", "-O2", "-fPIC", "-std=c11", f"-I{ROOT / 'csrc' / 'core'}",
                    str(path), "-o", str(obj)], check=True)
    table = subprocess.run(["objdump", "-t", str(obj)], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    writable = [line for line in table
                if re.search(r"\s(\.data|\.bss|\*COM\*)(\.\S*)?\s", line)
                and not re.search(r"\s\.data\.rel\.ro(\.\S*)?\s", line)
                and not re.search(r"\sd\s+\.(data|bss)\S*\s+0+\s+\.(data|bss)", line)]
    assert writable == []


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm")
def test_the_core_is_compiled_once():
    """The extension holds none of the core's code: it exports only its init
    and leaves no core symbol for the loader to find; it calls the core
    through the table the cffi module hands it."""
    import shadowad._csad as core
    import shadowad._fast as ext

    def symbols(path, *flags):
        out = subprocess.run(["nm", *flags, path], check=True, capture_output=True,
                             text=True).stdout
        return {line.split()[-1] for line in out.splitlines() if line.strip()}
    ext_all = symbols(ext.__file__)
    for name in ("sad_block_build", "sad_ew_slots", "sad_tape_new", "sad_reverse",
                 "sad_arena_alloc", "sad_api"):
        assert name not in ext_all, name
        assert name in symbols(core.__file__), name
    assert symbols(ext.__file__, "-D", "--defined-only") == {"PyInit__fast"}
    assert not [s for s in symbols(ext.__file__, "-D", "--undefined-only") if s.startswith("sad_")]


def _lib_aliases(tree):
    """Names bound to lib.<entry point> at module level (``_s2 = lib.sad_s2``)."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                targets = target.elts if isinstance(target, ast.Tuple) else [target]
                for t, v in zip(targets, values):
                    if (isinstance(t, ast.Name) and isinstance(v, ast.Attribute)
                            and isinstance(v.value, ast.Name) and v.value.id == "lib"):
                        names.add(t.id)
    return names


def id_passed_to_lib(source):
    """(line, code) of each call of a cffi entry point (lib.x(...) or a name
    bound to one) that has an id(...) among its arguments."""
    tree = ast.parse(source)
    aliases = _lib_aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        to_lib = ((isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                   and f.value.id == "lib") or (isinstance(f, ast.Name) and f.id in aliases))
        if not to_lib:
            continue
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "id"
                   for n in ast.walk(arg)):
                found.append((node.lineno, ast.unparse(node)))
                break
    return found


PACKAGE_SOURCES = sorted((ROOT / "shadowad").rglob("*.py"))


@pytest.mark.parametrize("path", PACKAGE_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_object_address_crosses_into_the_core(path):
    """The core takes descriptors, never an object's address: arrays go to
    the extension's functions, which hold them."""
    assert id_passed_to_lib(path.read_text()) == []


@pytest.mark.parametrize("code, bad", [
    ("lib.sad_load(t, id(s), 0, v)", True),
    ("lib.f(0 if s is None else id(s))", True),
    ("_load = lib.sad_load\n_load(t, id(s))", True),
    ("a, b = lib.sad_x, fast.y\nb(id(s))", False),
    ("a, b = lib.sad_x, fast.y\na(k=id(s))", True),
    ("fast.reduce(t, 0, v, p, s, None, None)", False),
    ("d[id(a)] = lib.sad_len(t)", False),
])
def test_the_check_finds_object_addresses(code, bad):
    assert bool(id_passed_to_lib(code)) == bad


_F32 = "np.ones(3, np.float32)"


@pytest.mark.parametrize("call", [
    "fast.reduce(t, lib.SAD_SUM, 0.0, {bad}, None, None, None)",
    "fast.reduce(t, lib.SAD_SUM, 0.0, np.ones(3), {bad}, None, None)",
    "fast.reduce(t, lib.SAD_DOT, 0.0, np.ones(3), None, {bad}, None)",
    "fast.reduce_lazy(t, 0.0, {bad}, 1)",
    "fast.slot_new(t, {bad})",
    "fast.slot_bind(t, 1, {bad})",
    "fast.load_at(t, {bad}, 0, 1.0)",
    "fast.store_at(t, {bad}, None, 0, 0, 0, 1.0)",
    "fast.store_at(t, np.ones(3), {bad}, 0, 0, 0, 1.0)",
    "fast.outer_record(t, np.ones((3, 3)), None, 0, {bad}, None, 0, np.ones(3), None, 0)",
    "fast.axpy(None, lib.SAD_KX_ARR | lib.SAD_KY_CONST, 0, 2.0, {bad}, None, np.ones(3), None)",
    "fast.axpy(None, lib.SAD_KX_ARR | lib.SAD_KY_CONST, 0, 2.0, np.ones(3), None, {bad}, None)",
    "fast.axpy_tangents(2.0, None, np.ones(3), None, {bad}, None)",
    "fast.vec_extend(v, {bad})",
])
@pytest.mark.parametrize("bad", ["object()", "[1.0, 2.0, 3.0]", _F32, "np.ones(3, '>f8')",
                                 "np.ones(3, np.int64)", "3.0"])
def test_the_extensions_array_functions_refuse_what_is_not_a_float64_array(call, bad):
    """Each function that hands the core an array checks it: a TypeError
    naming the argument, never a header read of another object.  (The lazy
    slots also take float32 temporaries: see the test below.)"""
    if bad == _F32 and "slot_" in call:
        pytest.skip("slots take float32")
    from shadowad._c import fast, ffi, lib
    from shadowad.engines.reverse.tape import Tape
    t = Tape()
    cvec = lib.sad_vec_new(4)
    v = int(ffi.cast("uintptr_t", cvec))
    try:
        with pytest.raises(TypeError, match="float64|ndarray"):
            eval(call.format(bad=bad), {"fast": fast, "lib": lib, "np": np, "t": t, "v": v})
    finally:
        lib.sad_vec_free(cvec)
        t.free()


def test_the_extensions_array_functions_refuse_a_freed_tape_and_bad_offsets():
    from shadowad._c import fast, lib
    from shadowad.engines.reverse.tape import Tape
    t = Tape()
    with pytest.raises(IndexError):
        fast.load_at(t, np.ones(3), 24, 1.0)  # one past the end
    with pytest.raises(IndexError):
        fast.store_at(t, np.ones(3), None, -8, 0, 0, 1.0)
    with pytest.raises(IndexError):
        fast.load_at(t, np.ones(3), 4, 1.0)  # not an element's start
    with pytest.raises(ValueError):
        fast.outer_record(t, np.ones((3, 2)), None, 0, np.ones(3), None, 0, np.ones(3), None, 0)
    with pytest.raises(ValueError):
        fast.reduce(t, lib.SAD_AXPY, 0.0, np.ones(3), None, None, None)
    t.free()
    for call in (lambda: fast.reduce(t, lib.SAD_SUM, 0.0, np.ones(3), None, None, None),
                 lambda: fast.slot_new(t, np.ones(3)),
                 lambda: fast.load_at(t, np.ones(3), 0, 1.0)):
        with pytest.raises(RuntimeError, match="freed"):
            call()
    with pytest.raises(TypeError, match="Tape"):
        fast.slot_new(object(), np.ones(3))


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


# A traced array's fields p, _s and buf are what C reads: each assignment is
# checked (an aligned float64 ndarray of the primal's shape -- lanes first for
# a forward tangent -- or None for _s; a Buffer), so no public operation ever
# meets a wrong one.  Each case: the assignment inside f is refused with a
# clear error, and every operation that reads the field still works.
_BAD_VALUES = {
    "p": ["[1.0, 2.0, 3.0, 4.0]", "None", "np.ones(4, np.float32)", "np.ones(4, '>f8')",
          "np.ones(4, np.int64)", "np.ones(5)", "np.ones((2, 2))", "5.0", "'a'",
          "np.ones(4, np.complex128)"],
    "_s": ["[0.0] * 4", "np.zeros(4, np.int64)", "np.zeros(4, np.float32)", "np.zeros(5)",
           "np.zeros((4, 1))", "np.zeros((3, 4))", "np.zeros(())", "5", "'a'"],
    "buf": ["None", "object()", "x.p", "5"],
}
_OPS = ["np.sum(x)", "np.dot(x, x)", "np.sum(np.outer(x, x))", "x @ x", "np.sum(x + 1.0)",
        "x[1] * x[2]", "np.sum(x[1:3] * 2.0)", "np.sum(sad.axpy(2.0, x, x * 1.0))",
        "np.sum(np.sin(x) * x)"]


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("field", sorted(_BAD_VALUES))
def test_a_traced_arrays_fields_refuse_what_c_cannot_read(field, mode):
    run = ("sad.autodiff(f, Duplicated(np.arange(1.0, 5.0), np.zeros(4)))" if mode == "reverse"
           else "sad.autodiff(f, Duplicated(np.arange(1.0, 5.0), np.ones(4)), mode=sad.Forward)")
    code, out = _run_child(_REPORT + f"""
refused, values = [], {_BAD_VALUES[field]!r}
ops = {_OPS!r}
def f(x):
    total = 0.0
    for value in values:
        for op in ops:
            try:
                setattr(x, {field!r}, eval(value))
            except (TypeError, ValueError) as e:
                refused.append(str(e).startswith("shadowad") and {field!r} in str(e).split()
                              or str(e))
            else:
                refused.append("accepted " + value)
            total = total + eval(op)
    try:
        delattr(x, {field!r})
    except AttributeError:
        refused.append(True)
    return total + np.sum(x)
report(lambda: {run})
print(all(r is True for r in refused), len(refused), [r for r in refused if r is not True][:3])
""")
    assert code == 0, out
    n = len(_BAD_VALUES[field]) * len(_OPS) + 1
    assert out == f"True {n} []", out


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_a_traced_arrays_fields_take_what_shadowad_assigns(mode):
    """The checks refuse nothing the package does: the lazy shadow None, a
    shadow of the primal's shape (lanes first in forward mode), a new
    primal of the same shape, the Buffer itself."""
    run = ("sad.autodiff(f, Duplicated(np.arange(1.0, 5.0), np.zeros(4)))" if mode == "reverse"
           else "sad.autodiff(f, Duplicated(np.arange(1.0, 5.0), np.ones(4)), mode=sad.Forward)")
    code, out = _run_child(_REPORT + f"""
def f(x):
    y = x * 2.0
    s = y._s
    y.buf = y.buf
    y.p = y.p.copy()
    y._s = None if {mode!r} == "reverse" else s
    if s is not None:
        y._s = np.zeros_like(s)
    return np.sum(y * x)
report(lambda: {run})
""")
    assert code == 0, out
    assert out == "no error", out


def test_an_in_place_record_out_of_memory_is_a_memory_error():
    """_fast.rev_out saves the bytes it overwrites: with no memory left for
    the save it raises MemoryError (it used to fall back to Python's path,
    which met the same shortage later).  Address space is capped just above
    what the process has, so the 40 MB save cannot be made.  (_fast.rev's
    fresh result needs no save: only a record's few hundred bytes can fail
    there, after numpy has allocated the result -- not reachable on purpose.)"""
    code, out = _run_child(_REPORT + """
import os, resource
n = 5_000_000
def f(x):
    x += 1.0
    x *= 3.0
    return np.sum(x)
sad.autodiff(f, Duplicated(np.ones(10), np.zeros(10)))  # warm: imports, caches
x = Duplicated(np.ones(n), np.zeros(n))
vm = [l for l in open(f"/proc/{os.getpid()}/status") if l.startswith("VmSize")][0]
resource.setrlimit(resource.RLIMIT_AS, (int(vm.split()[1]) * 1024 + 20 * 2**20,
                                        resource.RLIM_INFINITY))
report(lambda: sad.autodiff(f, x))
""")
    assert code == 0, out
    assert out.startswith("MemoryError") and "elementwise" in out, out


@pytest.mark.parametrize("call", [
    "fast.reduce(t, lib.SAD_SUM, 0.0, np.ones(8), np.zeros(4), None, None)",
    "fast.reduce(t, lib.SAD_DOT, 0.0, np.ones(8), None, np.ones(4), None)",
    "fast.outer_record(t, np.ones((3, 2)), np.ones((2, 3)), 0, np.ones(3), None, 0, np.ones(2),"
    " None, 0)",
    "fast.axpy(None, lib.SAD_KX_ARR | lib.SAD_KY_CONST, 0, 2.0, np.ones(8), None, np.ones(4),"
    " None)",
    "fast.axpy_tangents(2.0, None, np.ones(4), np.ones((2, 4)), np.ones(4), np.ones((3, 4)))",
    "fast.vpusha(t, v, None, np.ones(4), np.ones(3))",
    "fast.ew(int(ffi.cast('uintptr_t', t.c)), lib.SAD_NEG, lib.SAD_KX_ARR, np.ones(4),"
    " np.zeros(4), np.ones(8), np.zeros(8), None, None, 0.0, 0, 0, 0)",
    "fast.ew(int(ffi.cast('uintptr_t', t.c)), lib.SAD_NEG, lib.SAD_KX_ARR, np.ones(4),"
    " np.zeros(3), np.ones(4), np.zeros(4), None, None, 0.0, 0, 0, 0)",
    "fast.tangent(lib.SAD_NEG, lib.SAD_KX_ARR | lib.SAD_F_LANES, np.ones(4), np.zeros((2, 4)),"
    " np.ones(4), np.zeros((3, 4)), None, None, 0.0)",
    "fast.tangent(lib.SAD_ADD, lib.SAD_KX_ARR | lib.SAD_KY_ARR, np.ones(4), None, np.ones(4),"
    " None, np.ones(5), None, 0.0)",
])
def test_the_extensions_array_functions_refuse_arrays_that_do_not_fit(call):
    """Shapes C would read past: an operand that does not broadcast to the
    output, a shadow not of its array's shape, lanes of different counts."""
    from shadowad._c import fast, ffi, lib
    from shadowad.engines.reverse.tape import Tape
    t = Tape()
    cvec = lib.sad_vec_new(4)
    v = int(ffi.cast("uintptr_t", cvec))
    try:
        with pytest.raises(ValueError, match="fit|broadcast"):
            eval(call, {"fast": fast, "ffi": ffi, "lib": lib, "np": np, "t": t, "v": v})
    finally:
        lib.sad_vec_free(cvec)
        t.free()


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_a_field_set_past_its_check_reaches_no_kernel(mode):
    """The member descriptor's own __set__ skips the type's check: the fast
    paths and the extension's functions still refuse a shadow of another
    shape (Python's path, or a clear error), never a read past it."""
    run = ("sad.autodiff(f, Duplicated(np.arange(1.0, 9.0), np.zeros(8)))" if mode == "reverse"
           else "sad.autodiff(f, Duplicated(np.arange(1.0, 9.0), np.ones(8)), mode=sad.Forward)")
    code, out = _run_child(_REPORT + f"""
from shadowad._c import fast
ops = {_OPS!r}
outcomes = []
def f(x):
    y = x * 1.0
    fast.ArrayBase.__dict__["_s"].__set__(y, np.zeros((1, 2) if {mode!r} == "forward" else 2))
    for op in ops:
        try:
            eval(op.replace("x", "y"))
            outcomes.append("ran")
        except Exception as e:
            outcomes.append(type(e).__name__)
    return np.sum(x)
report(lambda: {run})
print("survived", len(outcomes))
""")
    assert code == 0, out
    assert out == f"survived {len(_OPS)}", out


def test_a_slot_takes_only_arrays_of_its_own_element_size():
    """A float32 temporary's slot is bound only to float32 memory of its size,
    and records address it only at float32 strides: the core checks the
    element size, since a float64 record reading a float32 slot (or the
    reverse) would read past its memory."""
    from shadowad._c import fast, lib
    from shadowad.engines.reverse.tape import Tape
    t = Tape()
    try:
        z = np.ones(1000, np.float32)
        k = fast.slot_new(t, z)
        assert k > 0
        assert fast.slot_bind(t, k, np.zeros(1000)) == lib.SAD_BAD_SLOT
        assert fast.slot_bind(t, k, np.zeros(500)) == lib.SAD_BAD_SLOT
        assert fast.slot_bind(t, k, np.zeros(1000, np.float32)) == 0
        # a float64 record given the float32 slot as its output's shadow
        z64 = np.ones(1000)
        rc = fast.ew(t._tptr, lib.SAD_NEG, lib.SAD_KX_ARR, z64, z64, z64, None, None, None,
                     0.0, k, 0, 0)
        assert rc == lib.SAD_BAD_SLOT
        with pytest.raises(TypeError, match="float16"):
            fast.slot_new(t, np.ones(3, np.float16))
    finally:
        t.free()
