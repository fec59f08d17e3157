"""The compiled C modules (built by ``shadowad/_build.py``): the core
(``ffi``, ``lib``: cffi, Python-free) and ``fast``, the extension module that
touches Python objects (the C base types of traced values, the fast paths)."""
try:
    from ._csad import ffi, lib
    from . import _fast as fast
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError("shadowad's C core is not built; run `make install` "
                      "(or `pip install -e .`) in the project root") from exc

__all__ = ["ffi", "fast", "lib"]
