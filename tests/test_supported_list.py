"""README's list of supported operations is generated from the registries
(tools/supported_ops.py): it must match what they hold now."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("supported_ops",
                                                  ROOT / "tools" / "supported_ops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_lists_what_the_registries_hold():
    tool = _tool()
    text = (ROOT / "README.md").read_text()
    if f"({tool.versions()}) -->" not in text:
        pytest.skip("README's list was generated with other numpy/scipy versions, whose "
                    "registries differ")
    assert tool.updated(text) == text, "run python tools/supported_ops.py"


def test_the_list_names_every_registered_function():
    import numpy as np
    from shadowad.engines.rules.registry import FUNCTIONS
    text = _tool().render()
    for func in (np.sum, np.linalg.solve, np.where, np.concatenate, np.argmax):
        assert func in FUNCTIONS
        name = "np." + (func.__name__ if func.__module__ != "numpy.linalg"
                        else "linalg." + func.__name__)
        assert f"`{name}`" in text, name
    assert "`np.tanh`" in text and "`np.greater`" in text
