"""The compiled C core (built by ``shadowad/_build.py``)."""
try:
    from ._csad import ffi, lib
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError("shadowad's C core is not built; run `make install` "
                      "(or `pip install -e .`) in the project root") from exc

__all__ = ["ffi", "lib"]
