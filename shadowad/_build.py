"""Build script of shadowad's two C modules.

- ``shadowad._csad`` (cffi): the core, ``csrc/core`` (tape,
  arenas, blocks, lazy-shadow slots, snapshots, vectors) and ``csrc/ops``
  (kernels).  The header ``csrc/core/shadowad.h``, with the op codes
  ``csrc/core/ew_ops.h`` generated from the partials table, is its whole
  contract with Python; cdef reads both verbatim.  The core is Python-free: no source
  of it includes Python.h or numpy's headers, and it sees arrays only as
  descriptors (``sad_arr``: data pointer, shape, strides) that the extension
  makes from the arrays it holds (tests/test_c_boundary.py checks both).
- ``shadowad._fast`` (a setuptools extension, ``fast_extension()``): the code
  that touches Python objects, ``csrc/ext`` -- the C base types of traced
  values and the fast paths.  The core is not compiled into it: at import it
  takes the core's table of entry points, ``sad_api()`` (a constant,
  csrc/core/api.c), from ``shadowad._csad`` and calls the core through it.

Neither module uses the limited API (the extension reads numpy's array
header and type slots; the core module is built alike), so both get the
interpreter's own suffix (``.cpython-3XY-...so``), never ``.abi3.so``:
cffi would ask setuptools for the limited API by default, and is told not to.
``SHADOWAD_CFLAGS`` / ``SHADOWAD_LDFLAGS`` add compiler and linker flags
(``make test-asan`` uses them for the sanitizers).
"""
import os
import shlex
from pathlib import Path

import cffi
import numpy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CSRC = ROOT / "csrc"
CORE_DIRS = ("core", "ops")

CFLAGS = (["-O3", "-std=c11", "-Wall", "-Wextra", "-Werror=double-promotion",
           "-Werror=implicit-function-declaration",
           "-Werror=switch"]
          + shlex.split(os.environ.get("SHADOWAD_CFLAGS", "")))
LDFLAGS = shlex.split(os.environ.get("SHADOWAD_LDFLAGS", ""))
CORE_INCLUDE_DIRS = [str(CSRC / "core")]
EXT_INCLUDE_DIRS = CORE_INCLUDE_DIRS + [numpy.get_include()]


def sources(*dirs):
    """The C files of csrc/<dir> for each dir, relative to the project root
    (as setuptools wants them)."""
    return [os.path.relpath(p, ROOT) for d in dirs for p in sorted((CSRC / d).glob("*.c"))]


ffibuilder = cffi.FFI()
# ew_ops.h: the elementwise op codes, generated from the partials table by
# tools/ew_ops.py (sad.h includes it before shadowad.h, as here)
ffibuilder.cdef("".join((CSRC / "core" / h).read_text() for h in ("ew_ops.h", "shadowad.h")))
ffibuilder.set_source(
    "shadowad._csad",
    '#include "sad.h"\n',
    sources=sources(*CORE_DIRS),
    include_dirs=CORE_INCLUDE_DIRS,
    # the headers, template headers (real.h) among them: a change to one
    # rebuilds the core
    depends=[os.path.relpath(p, ROOT) for d in CORE_DIRS for p in sorted((CSRC / d).glob("*.h"))],
    # only PyInit__csad is exported: calls inside the core stay direct (and
    # inlinable) instead of going through the PLT; cffi's wrappers and
    # sad_api()'s table are in this module
    extra_compile_args=CFLAGS + ["-fvisibility=hidden"],
    extra_link_args=LDFLAGS,
    libraries=["m", "pthread"],
    py_limited_api=False,
)


def fast_extension():
    """The setuptools Extension of shadowad._fast."""
    from setuptools import Extension
    return Extension(
        "shadowad._fast",
        sources=sources("ext"),
        include_dirs=EXT_INCLUDE_DIRS,
        depends=[os.path.relpath(p, ROOT) for d in ("ext", *CORE_DIRS)
                 for p in sorted((CSRC / d).glob("*.h"))],
        # only PyInit__fast is exported
        extra_compile_args=CFLAGS + ["-fvisibility=hidden"],
        extra_link_args=LDFLAGS,
        libraries=["m", "pthread"],
        py_limited_api=False,
    )


if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
