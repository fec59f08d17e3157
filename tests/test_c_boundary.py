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
from pathlib import Path

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
