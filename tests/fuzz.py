"""`make fuzz`: many random in-place programs (tests/random_programs.py), every
check on each; prints the mismatch rate per check and per instruction class
and a minimized, runnable reproducer per distinct failure; exits 1 if any
program fails a check.

    python tests/fuzz.py --n 10000 --seed 0 [--sizes small=0.7,medium=0.2,large=0.1]
                         [--classes base,scratch] [--checks fd,dot] [--only i]

Program i of a run is generated from numpy's Generator seeded with (seed, i),
so `--seed S --only i` reruns one program of a run.
"""
import argparse
import collections
import os
import sys
import time

import numpy as np

# the checkout this script lives in (its shadowad/ and tests/), whatever is installed
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]
import random_programs as rp  # noqa: E402


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000, help="number of programs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sizes", default="small=0.7,medium=0.2,large=0.1",
                   help="shares of the sizes: small n=6, medium n=40, large n=10**4")
    p.add_argument("--classes", default=",".join(rp.CLASSES),
                   help="instruction classes to draw from (comma-separated)")
    p.add_argument("--checks", default=",".join(rp.CHECKS), help="checks to run")
    p.add_argument("--only", type=int, default=None, help="run only program i of the run")
    p.add_argument("--max-shrink", type=int, default=40,
                   help="failures to minimize (the first of each check and class set)")
    p.add_argument("--progress", type=int, default=500, help="print a line every N programs")
    return p.parse_args()


def program(i, seed, classes, shares):
    """Program i of the run: its size drawn from (seed, i, 1), its text from (seed, i)."""
    names = sorted(shares)
    p = np.array([shares[n] for n in names], dtype=float)
    size = names[np.random.default_rng([seed, i, 1]).choice(len(names), p=p / p.sum())]
    return rp.seeded_program(seed, i, classes, rp.SIZES[size])


def rate(k, n):
    return f"{k:6d} / {n:<6d} {100.0 * k / n if n else 0.0:7.3f} %"


def main():
    a = parse()
    classes = [c for c in a.classes.split(",") if c]
    checks = [c for c in a.checks.split(",") if c]
    unknown = set(classes) - set(rp.CLASSES) | set(checks) - set(rp.CHECKS)
    if unknown:
        sys.exit(f"unknown classes or checks: {sorted(unknown)}; classes are "
                 f"{sorted(rp.CLASSES)}, checks {sorted(rp.CHECKS)}")
    shares = {k: float(v) for k, v in (x.split("=") for x in a.sizes.split(","))}
    if set(shares) - set(rp.SIZES):
        sys.exit(f"unknown sizes {sorted(set(shares) - set(rp.SIZES))}; sizes are {list(rp.SIZES)}")
    ids = [a.only] if a.only is not None else range(a.n)
    runs = collections.Counter()      # check -> programs it ran on
    fails = collections.Counter()     # check -> programs it failed on
    by_class = collections.Counter()  # class -> programs containing it
    fail_class = collections.Counter()
    by_kind, fail_kind = collections.Counter(), collections.Counter()
    by_size, fail_size = collections.Counter(), collections.Counter()
    invalid, failing, first = [], [], {}
    start = time.time()
    for count, i in enumerate(ids, 1):
        prog = program(i, a.seed, classes, shares)
        try:
            bad = rp.run_checks(prog, checks)
        except rp.InvalidProgram as e:
            invalid.append((i, str(e)))
            continue
        for name in rp.checks_for(prog, checks):
            runs[name] += 1
        by_size[prog.size.name] += 1
        for c in prog.classes:
            by_class[c] += 1
        for k in prog.kinds:
            by_kind[k] += 1
        if bad:
            failing.append(i)
            fail_size[prog.size.name] += 1
            for c in prog.classes:
                fail_class[c] += 1
            for k in prog.kinds:
                fail_kind[k] += 1
            for name, msg in bad.items():
                fails[name] += 1
                first.setdefault((name, tuple(prog.classes), prog.size.name), (i, prog, msg))
        if a.progress and count % a.progress == 0:
            print(f"[{time.time() - start:7.1f} s] {count} programs, {len(failing)} failing",
                  flush=True)
    elapsed = time.time() - start
    total = len(ids) - len(invalid)

    print(f"shadowad from {os.path.dirname(rp.sad.__file__)}")
    sizes = ", ".join(f"{by_size[s]} at n={rp.SIZES[s].n}" for s in rp.SIZES)
    print(f"\n{total} programs ({sizes}), seed {a.seed}, {elapsed:.1f} s "
          f"({1000 * elapsed / max(total, 1):.1f} ms per program)")
    print(f"failing programs: {rate(len(failing), total)}")
    for s in rp.SIZES:
        print(f"  size {s:6s}: {rate(fail_size[s], by_size[s])}")
    print("mismatches per check:")
    for name in checks:
        print(f"  {name:13s} {rate(fails[name], runs[name])}")
    print("failing programs per instruction class present (before minimizing):")
    for c in classes:
        print(f"  {c:12s} {rate(fail_class[c], by_class[c])}")
    print("failing programs per instruction kind present:")
    for k in sorted(by_kind):
        print(f"  {k:16s} {rate(fail_kind[k], by_kind[k])}")
    if invalid:
        print(f"\n{len(invalid)} INVALID programs (the untraced call fails: a generator bug):")
        for i, msg in invalid[:5]:
            print(f"--- program {i}\n{msg}")

    if first:
        print(f"\nminimized reproducers (the first failure of each check, class set and size; "
              f"at most {a.max_shrink}):")
        seen, culprits = set(), collections.Counter()
        for (name, _, _), (i, prog, msg) in list(first.items())[:a.max_shrink]:
            small = rp.shrink(prog, name)
            text = rp.reproducer(small, name)
            key = rp.source(small) + name
            culprits[(name, ", ".join(small.classes))] += 1
            if key in seen:
                continue
            seen.add(key)
            print(f"\n### program {i} (--seed {a.seed} --only {i}), check {name}, "
                  f"minimized from {len(prog.body)} to {len(small.body)} instructions")
            print(text)
        print("minimized failures per (check, classes):")
        for (name, cls), k in sorted(culprits.items()):
            print(f"  {name:13s} {cls:30s} {k}")
    return 1 if failing or invalid else 0


if __name__ == "__main__":
    sys.exit(main())
