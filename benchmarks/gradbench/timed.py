"""What a GradBench module function is, for the shadowad tool.

An eval's ``input`` is JSON.  Turning it into numpy arrays and turning the
result back into JSON are not part of what GradBench times, so a module
function is three steps: ``prepare`` (JSON -> arguments, once), ``compute``
(arguments -> result, timed, repeated ``min_runs`` times and for at least
``min_seconds``) and ``finish`` (result -> JSON, once, on the last result).
"""
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


class InputError(ValueError):
    """The eval's input is malformed; the tool answers with this message
    alone (no traceback: nothing in the tool went wrong)."""


@dataclass(frozen=True)
class Function:
    compute: Callable[[Any], Any]
    prepare: Callable[[Any], Any]
    finish: Callable[[Any], Any]

    def __call__(self, input):
        """One untimed run from JSON input to JSON output (for tests)."""
        return self.finish(self.compute(self.prepare(input)))

    def evaluate(self, input):
        """The ``evaluate`` response body: output and one timing per run."""
        min_runs, min_seconds = runs(input)
        args = self.prepare(input)
        timings, elapsed, result = [], 0, None
        while len(timings) < max(min_runs, 1) or elapsed < min_seconds:
            start = time.perf_counter_ns()
            result = self.compute(args)
            took = time.perf_counter_ns() - start
            timings.append({"name": "evaluate", "nanoseconds": took})
            elapsed += took / 1e9
        return {"success": True, "output": self.finish(result), "timings": timings}


def function(prepare, finish=lambda result: result):
    """Decorate ``compute`` into a module function."""
    def decorate(compute):
        return Function(compute, prepare, finish)
    return decorate


def runs(input):
    """``(min_runs, min_seconds)``; inputs that are not objects (hello's
    numbers) carry neither and are run once."""
    if not isinstance(input, dict):
        return 1, 0.0
    min_runs = input.get("min_runs", 1)
    min_seconds = input.get("min_seconds", 0)
    if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 0:
        raise InputError(f"min_runs must be a non-negative integer, got {min_runs!r}")
    if isinstance(min_seconds, bool) or not isinstance(min_seconds, (int, float)) \
            or not min_seconds >= 0:
        raise InputError(f"min_seconds must be a non-negative number, got {min_seconds!r}")
    return min_runs, float(min_seconds)


def to_list(array):
    return array.tolist()


# Helpers for ``prepare``: a malformed input becomes an error that names
# the field, instead of a KeyError or a numpy message about some array.

def field(input, name):
    if not isinstance(input, dict):
        raise InputError(f"input must be an object with field {name!r}, "
                         f"got {type(input).__name__}")
    if name not in input:
        raise InputError(f"input has no field {name!r}")
    return input[name]


def vector(input, name, min_length=1):
    """A JSON list of numbers as a float64 vector."""
    value = field(input, name)
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"input field {name!r} must be a list of numbers") from None
    if array.ndim != 1 or isinstance(value, bool) or len(array) < min_length:
        raise InputError(f"input field {name!r} must be a list of at least "
                         f"{min_length} number(s), got {value!r:.60}")
    return array


def integer(input, name, minimum=0):
    value = field(input, name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)     # JSON writers may print 3 as 3.0
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"input field {name!r} must be an integer >= {minimum}, "
                         f"got {value!r}")
    return value


def number(input):
    """A bare JSON number (hello's inputs) as a float."""
    if isinstance(input, bool) or not isinstance(input, (int, float)):
        raise InputError(f"input must be a number, got {input!r:.60}")
    return float(input)
