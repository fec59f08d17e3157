"""Random in-place programs (tests/random_programs.py), every check on each:
finite differences (every entry, and along a random direction in reverse and
forward mode), final bits against the untraced call in reverse, forward and
split mode, restore=True, an exception injected half-way, the dot-product
test, accumulate-once, the final copy against the last redo, batch lanes
against one-lane calls, sad.jacobian in both modes, and (the nested class)
the nested engine's gradients against the C engine's.

One test per instruction class (the base instructions plus that class, at
least one of its instructions in each program), at n=6 and, fewer, at
n=40 and n=10**4.  These draw from a seeded numpy Generator: the same programs on
every run, whichever tests run with them (hypothesis biases its draws with
constants taken from the modules loaded, so its derandomized draws change
with the selection of tests, which would make a strict xfail flaky).  One
more test lets hypothesis explore the classes that are fixed, without its
database.  A failure prints the first failing check's program minimized by
random_programs.shrink as runnable Python.  `make fuzz` runs 10**4 programs.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings

import random_programs as rp
from shadowad import Duplicated
from shadowad.testing import check_dot_product

# Classes with a known open bug: their tests must fail (strict xfail), so the
# fix makes them fail loudly until the class is taken out of here.
PENDING = {}  # class or (class, size) -> reason
PROGRAMS = {"small": 30, "medium": 10, "large": 8}  # per class: about 700 in all
SEED = 13


def cases():
    out = []
    for size in PROGRAMS:
        for c in rp.CLASSES:
            reason = PENDING.get(c) or PENDING.get((c, size))
            out.append(pytest.param(c, size, id=f"{c}-{size}", marks=pytest.mark.xfail(
                strict=True, reason=reason) if reason else ()))
    return out


def check_all(prog, where=""):
    """Every check; on failure the first failing check's minimized program."""
    fails = rp.run_checks(prog)
    if fails:
        name = next(iter(fails))
        small = rp.shrink(prog, name, budget=80)
        raise AssertionError(f"{where}checks failing: {', '.join(fails)}; the first one on a "
                             f"minimized program:\n" + rp.reproducer(small, name))


@pytest.mark.parametrize("cls, size", cases())
def test_random_programs(cls, size):
    """PROGRAMS[size] programs of the base instructions and cls at that size;
    n=10**4 reaches the C fast paths and the tiling and fusion thresholds."""
    for i in range(PROGRAMS[size]):
        prog = rp.seeded_program(SEED, i, sorted({"base", cls}), rp.SIZES[size], require=cls)
        check_all(prog, f"program {i} (seeded_program({SEED}, {i}, ...)): ")


@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
@given(prog=rp.programs(classes=sorted(set(rp.CLASSES) - set(PENDING))))
def test_random_programs_of_the_fixed_classes(prog):
    """Hypothesis' own exploration of programs mixing the classes that are fixed."""
    check_all(prog)


def run_reproducer(text):
    exec(compile(text.replace("import sys; sys.path.insert(0, 'tests')\n", ""), "<reproducer>",
                 "exec"), {})


def test_the_checks_see_a_detached_derivative_and_reproduce_it():
    """The derivative checks cannot pass vacuously: taking a value without its
    derivative (sad.primal) makes the finite-difference checks fail, and the
    reproducer printed for it is runnable Python that fails the same way."""
    prog = rp.Program(rp.SMALL, (rp.Instr("base", "set_int", ("u[1] = v[2] * v[3]",)),),
                      ret=1, seed=7, w_const=False, stop=1)
    assert rp.run_checks(prog) == {}
    run_reproducer(rp.reproducer(prog, "fd", message="(passes)"))
    detached = prog.replace(body=(rp.Instr("base", "set_int",
                                           ("u[1] = sad.primal(v[2] * v[3])",)),))
    fails = rp.run_checks(detached)
    assert {"fd", "fd_direction", "forward_fd"} <= set(fails), fails
    text = rp.reproducer(detached, "fd")
    assert "sad.primal(v[2] * v[3])" in text and "finite differences" in text
    with pytest.raises(AssertionError, match="finite differences"):
        run_reproducer(text)


def test_check_dot_product_fails_on_nan():
    """A NaN in the dot-product test is a failure, not a pass."""
    with pytest.raises(AssertionError, match="nan"):
        check_dot_product(lambda v: np.sum(v * np.nan), Duplicated(np.ones(3), np.zeros(3)))
    check_dot_product(lambda v: np.sum(v * v), Duplicated(np.ones(3), np.zeros(3)))
