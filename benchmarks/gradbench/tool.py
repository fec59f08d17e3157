"""shadowad as a GradBench tool: one JSON message per line on stdin, one
JSON response per line on stdout.

    python benchmarks/gradbench/tool.py

Modules live in ``modules/<eval>.py``; each GradBench function of an eval is
a module-level ``timed.Function``.  No message, however malformed, stops the
tool: a bad one gets ``"success": false`` and an ``error`` that names the
problem, and the tool reads on.
"""
import importlib
import json
import os
import sys
import traceback

import numpy as np

import timed

TOOL = "shadowad"


class ProtocolError(Exception):
    """A message the tool cannot act on; its text goes back as ``error``."""


def load_module(name):
    if not isinstance(name, str) or not name.isidentifier():
        raise ProtocolError(f"module must be a module name, got {name!r}")
    try:
        return importlib.import_module(f"modules.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"modules.{name}":
            raise       # the module exists but one of its imports does not
        raise ProtocolError(f"shadowad has no implementation of module {name!r}") from None


def functions_of(module):
    return sorted(name for name, value in vars(module).items()
                  if isinstance(value, timed.Function))


def load_function(module_name, function_name):
    module = load_module(module_name)
    function = getattr(module, str(function_name), None)
    if not isinstance(function, timed.Function):
        raise ProtocolError(
            f"module {module_name!r} has no function {function_name!r} "
            f"(it has {', '.join(functions_of(module)) or 'none'})")
    return function


def define(message):
    module = load_module(message.get("module"))
    if not functions_of(module):
        raise ProtocolError(f"module {message.get('module')!r} defines no functions")
    return {"success": True}


def evaluate(message):
    for key in ("module", "function", "input"):
        if key not in message:
            raise ProtocolError(f"evaluate message has no {key!r}")
    function = load_function(message["module"], message["function"])
    return function.evaluate(message["input"])


def analysis(message):
    # The eval judged an earlier answer; an invalid one is worth a line on
    # stderr, where whoever runs the tool can see it.
    if message.get("valid") is False:
        print(f"tool: answer {message.get('of')} judged invalid: {message.get('error')}",
              file=sys.stderr, flush=True)
    return {}


HANDLERS = {
    "start": lambda message: {"tool": TOOL},
    "define": define,
    "evaluate": evaluate,
    "analysis": analysis,
    "end": lambda message: {},
}


def respond(message):
    """The response to one decoded message; never raises."""
    if not isinstance(message, dict):
        return failure(None, f"a message must be a JSON object, got {type(message).__name__}")
    id = message.get("id")
    handler = HANDLERS.get(message.get("kind"))
    if handler is None:
        return failure(id, f"unknown message kind {message.get('kind')!r}")
    try:
        return {"id": id} | handler(message)
    except ProtocolError as e:
        return failure(id, str(e))
    except timed.InputError as e:
        return failure(id, f"bad input: {e}")
    except Exception as e:
        # A bug or a bad input inside a module: say what and where, go on.
        return failure(id, "".join(traceback.format_exception(e)))


def respond_line(line):
    """The response to one line of input (None for a blank line)."""
    if not line.strip():
        return None
    try:
        message = json.loads(line)
    except json.JSONDecodeError as e:
        return failure(None, f"malformed JSON message: {e}")
    return respond(message)


def failure(id, error):
    return {"id": id, "success": False, "error": error}


def plain(value):
    """``json.dumps`` fallback for the numpy values a module may return."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


def encode(response):
    try:
        return json.dumps(response, default=plain)
    except (TypeError, ValueError) as e:
        return json.dumps(failure(response.get("id"), f"output is not JSON: {e}"))


def main(stdin=sys.stdin, stdout=sys.stdout):
    try:
        for line in stdin:
            response = respond_line(line)
            if response is not None:
                stdout.write(encode(response) + "\n")
                stdout.flush()
    except BrokenPipeError:
        # The eval has gone away and nobody is left to answer.  Point stdout
        # at /dev/null so the interpreter's final flush does not complain.
        if stdout is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
