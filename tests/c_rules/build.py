"""Compile test C rules with cffi into a temporary directory (for
tests/test_c_rules.py and tests/test_examples.py)."""
import importlib.util
import os

from cffi import FFI

import shadowad

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "examples", "c_rule")


def compile_module(tmpdir, name, source, cdef, defines=()):
    ffi = FFI()
    ffi.cdef(cdef)
    ffi.set_source(name, '#include "shadowad/rule.h"\n' + cdef.replace("    ", ""),
                   sources=[source], include_dirs=[shadowad.get_include()],
                   define_macros=[(d, "1") for d in defines],
                   extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror"])
    path = ffi.compile(tmpdir=str(tmpdir), verbose=False)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def axpy(tmpdir):
    return compile_module(tmpdir, "_axpy_rule", os.path.join(HERE, "axpy_rule.c"), """
        typedef struct sad_rule sad_rule;
        typedef struct axpy_user {
            int fail_augmented, fail_reverse, fail_tangent, fail_primal;
            double sleep;
            int64_t tapes, frees, reverses;
        } axpy_user;
        sad_rule *axpy_rule_new(int abi, int with_tangent);
        axpy_user *axpy_rule_user(sad_rule *r);
    """)


def tridiag(tmpdir, broken=False):
    return compile_module(tmpdir, "_tridiag_broken" if broken else "_tridiag_test",
                          os.path.join(EXAMPLE, "tridiag.c"), """
        typedef struct sad_rule sad_rule;
        const sad_rule *tridiag_rule(void);
        int tridiag_solve(int64_t n, const double *a, const double *b, const double *c,
                          double *d);
    """, defines=("TRIDIAG_BROKEN",) if broken else ())
