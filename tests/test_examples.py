"""Every script in examples/ runs to completion (each asserts its own results)."""
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parent.parent / "examples").glob("*.py"))


def test_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"quickstart.py", "inplace_lu.py", "heat_equation.py"} <= names


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script):
    proc = subprocess.run([sys.executable, str(script)], cwd=script.parent,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (f"{script.name} exited with {proc.returncode}\n"
                                  f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")


C_RULE = EXAMPLES[0].parent / "c_rule" if EXAMPLES else None


def _run(script):
    proc = subprocess.run([sys.executable, str(script)], cwd=script.parent,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (f"{script.name} exited with {proc.returncode}\n"
                                  f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return proc.stdout


def test_c_rule_example_builds_and_runs():
    """examples/c_rule: build.py compiles the C rule (the .so is not in git),
    then heat_implicit.py checks its gradient against numpy and finite
    differences."""
    _run(C_RULE / "build.py")
    out = _run(C_RULE / "heat_implicit.py")
    assert "C rule vs numpy" in out and "finite differences" in out
