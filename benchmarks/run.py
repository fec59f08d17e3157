"""Run the benchmark workloads and print times (best of N after warm-up) with
the ratios the targets are stated in.  Not part of `make test`."""
import os
import sys
import timeit

sys.path.insert(0, os.path.dirname(__file__))

import w5_jacobian  # noqa: E402


def best_of(fn, repeat=7, budget=0.2):
    fn()  # warm-up (and jit compilation for the peers)
    number = 1
    while timeit.timeit(fn, number=number) < budget / repeat and number < 1 << 20:
        number *= 2
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def run_w5():
    print("W5  Jacobian of rs(d, xs): 21 outputs, 1 input")
    times = {}
    for name, fn in w5_jacobian.cases():
        times[name] = best_of(fn)
        print(f"    {name:22s} {times[name] * 1e6:10.1f} us")
    ratio = times["shadowad reverse"] / times["shadowad forward"]
    verdict = "PASS" if ratio >= 5.0 else "FAIL"
    print(f"    target: forward >= 5x faster than reverse: {ratio:.1f}x  {verdict}")
    return verdict == "PASS"


if __name__ == "__main__":
    run_w5()
