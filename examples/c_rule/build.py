"""Build the example's C rule with cffi: `python examples/c_rule/build.py`.

It compiles tridiag.c (the Thomas algorithm, its adjoint and its tangent)
against shadowad's public header (shadowad.get_include()) into the module
_tridiag next to this file."""
import os
import shutil
import sys
import tempfile

from cffi import FFI

import shadowad

HERE = os.path.dirname(os.path.abspath(__file__))


def build():
    ffi = FFI()
    ffi.cdef("""
        typedef struct sad_rule sad_rule;
        const sad_rule *tridiag_rule(void);
        int tridiag_solve(int64_t n, const double *a, const double *b, const double *c,
                          double *d);
    """)
    ffi.set_source("_tridiag", '#include "shadowad/rule.h"\n'
                   "const sad_rule *tridiag_rule(void);\n"
                   "int tridiag_solve(int64_t n, const double *a, const double *b,\n"
                   "                  const double *c, double *d);\n",
                   sources=[os.path.join(HERE, "tridiag.c")],
                   include_dirs=[shadowad.get_include()],
                   extra_compile_args=["-O2", "-Wall", "-Wextra"])
    tmp = tempfile.mkdtemp(prefix="tridiag-build-")
    try:
        built = ffi.compile(tmpdir=tmp, verbose=False)
        target = os.path.join(HERE, os.path.basename(built))
        shutil.copyfile(built, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0 if build() else 1)
