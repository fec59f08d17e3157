"""cffi build script: the C core of shadowad.

The one header ``csrc/shadowad.h`` is the whole C <-> Python contract; cdef
reads it verbatim.  ``SHADOWAD_CFLAGS`` adds compiler flags (``make test-asan``
uses it for the sanitizers).
"""
import os
import shlex
from pathlib import Path

import cffi
import numpy

HERE = Path(__file__).resolve().parent
CSRC = HERE.parent / "csrc"

ffibuilder = cffi.FFI()
ffibuilder.cdef((CSRC / "shadowad.h").read_text())
ffibuilder.set_source(
    "shadowad._csad",
    '#include "sad.h"\n',
    sources=[os.path.relpath(p, HERE.parent) for p in sorted(CSRC.glob("*.c"))],
    include_dirs=[str(CSRC), numpy.get_include()],
    extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
    + shlex.split(os.environ.get("SHADOWAD_CFLAGS", "")),
    extra_link_args=shlex.split(os.environ.get("SHADOWAD_LDFLAGS", "")),
    libraries=["m", "pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
