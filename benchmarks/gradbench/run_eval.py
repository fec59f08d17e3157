"""Run one GradBench eval against a tool, without Docker or the Rust CLI.

    python benchmarks/gradbench/run_eval.py lse --gradbench /tmp/gradbench -- -n 1000 10000
    python benchmarks/gradbench/run_eval.py lse --tool jax --json lse-jax.json -- -n 1000
    python benchmarks/gradbench/run_eval.py ode --smoke
    python benchmarks/gradbench/run_eval.py --table lse-*.json ode-*.json

Arguments after ``--`` go to the eval (its sizes, ``--min-runs``, ...).  The
eval and the tool are two processes; this script is the intermediary: it
reads a message from the eval, hands it to the tool, reads the tool's
response and hands it back, one round at a time, logging both.  At the end
it prints, for every ``evaluate``, whether the eval's ``analysis`` called
the answer valid and the fastest of its timings, then gradient/primal
ratios.  It exits non-zero if an answer was invalid or failed, a process
died or timed out, or a side spoke malformed JSON.

``--table`` turns the ``--json`` files of several runs into the markdown
table of ratios in README.md, one column per tool.
"""
import argparse
import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# Each derivative function and the primal it is the derivative of; the
# ratio of their times is what compares tools across machines.
PRIMAL_OF = {"gradient": "primal", "jacobian": "objective", "dir": "cost", "double": "square"}


# The repository's jax tool stops its clock when the jitted call returns,
# which on JAX's asynchronous dispatch is before the computation is done.
# "jax-blocking" runs that same tool with each timed call followed by
# jax.block_until_ready, so its timings cover the computation.
JAX_BLOCKING = """
import runpy, sys
import jax
from gradbench import wrap
unblocked = wrap.multiple_runs
def multiple_runs(**options):
    def decorator(function):
        return unblocked(**options)(lambda input: jax.block_until_ready(function(input)))
    return decorator
wrap.multiple_runs = multiple_runs
sys.path.insert(0, "python/gradbench/gradbench/tools/jax")
sys.argv = ["run.py"]
runpy.run_path("python/gradbench/gradbench/tools/jax/run.py", run_name="__main__")
"""


# Sizes small enough to check every eval's answers in seconds (--smoke).
SMOKE = {
    "hello": [],
    "lse": ["-n", "1000", "10000"],
    "det": ["-l", "4", "5", "6"],
    "llsq": ["-n", "16", "257", "-m", "128"],
    "ode": ["-n", "100", "1000", "-s", "1", "10"],
    "gmm": ["-d", "2", "10", "-k", "5", "10", "-n", "1000"],
    "ba": ["--min", "1", "--max", "2"],
    "ht": ["--min", "1", "--max", "2", "--model", "small"],
    "lstm": ["-l", "2", "-c", "1024"],
    "kmeans": ["-k", "10", "-n", "1000", "-d", "8"],
    "particle": [],
    "saddle": [],
}
ONE_RUN = ["--min-runs", "1", "--min-seconds", "0"]


class Failure(Exception):
    """The run cannot go on: a process died, timed out or spoke nonsense."""


def tool_command(args):
    """(argv, cwd) of the tool process."""
    if args.tool_command:
        return shlex.split(args.tool_command), args.gradbench
    if args.tool == "shadowad":
        return [sys.executable, os.path.join(HERE, "tool.py")], REPO
    if args.tool == "jax-blocking":
        return [sys.executable, "-c", JAX_BLOCKING], args.gradbench
    if args.tool == "manual":
        return [sys.executable, "python/gradbench/gradbench/cpp.py", "manual"], args.gradbench
    return [sys.executable, f"python/gradbench/gradbench/tools/{args.tool}/run.py"], args.gradbench


def gradbench_env(gradbench):
    env = dict(os.environ)
    path = os.path.join(gradbench, "python", "gradbench")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH")) if p)
    return env


class Lines:
    """The lines a process writes, read by a thread so that waiting for one
    can time out instead of hanging on a process that went silent."""

    def __init__(self, stream):
        self._queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def next(self, timeout, who):
        """The next line, or None at end of file."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise Failure(f"{who} said nothing for {timeout:g} s") from None


def decode(line, who):
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        raise Failure(f"{who} sent malformed JSON ({e}): {line.strip()[:200]}") from None
    if not isinstance(value, dict):
        raise Failure(f"{who} sent a JSON {type(value).__name__}, not an object")
    return value


def send(process, line, who):
    try:
        process.stdin.write(line if line.endswith("\n") else line + "\n")
        process.stdin.flush()
    except (BrokenPipeError, ValueError):
        raise Failure(f"{who} exited (status {process.poll()}) before reading a message") from None


class Record:
    """What the run learned: one entry per evaluate message."""

    def __init__(self):
        self.evaluations = {}    # id -> dict
        self.defined = None
        self.problems = []

    def message(self, message):
        if message.get("kind") == "evaluate":
            self.evaluations[message["id"]] = {
                "id": message["id"], "function": message.get("function"),
                "description": message.get("description"), "success": None,
                "valid": None, "error": None, "timings_ns": []}
        elif message.get("kind") == "analysis":
            entry = self.evaluations.get(message.get("of"))
            if entry is not None:
                entry["valid"] = bool(message.get("valid"))
                entry["error"] = message.get("error")

    def response(self, message, response):
        kind = message.get("kind")
        if kind == "define":
            self.defined = bool(response.get("success"))
            if not self.defined:
                self.problems.append(f"define failed: {response.get('error')}")
        elif kind == "evaluate":
            entry = self.evaluations[message["id"]]
            entry["success"] = bool(response.get("success"))
            entry["timings_ns"] = [t["nanoseconds"] for t in response.get("timings") or []
                                   if t.get("name") == "evaluate"]
            if not entry["success"]:
                entry["error"] = response.get("error")

    def ok(self):
        entries = self.evaluations.values()
        return (self.defined is True and not self.problems and len(entries) > 0
                and all(e["success"] and e["valid"] for e in entries))

    def ratios(self):
        """Derivative time over primal time, per workload (fastest runs)."""
        fastest, valid = {}, {}
        for e in self.evaluations.values():
            if e["success"] and e["timings_ns"]:
                key = (e["function"], e["description"])
                fastest[key] = min(fastest.get(key, float("inf")), *e["timings_ns"])
                valid[key] = valid.get(key, True) and bool(e["valid"])
        rows = []
        for (function, description), derivative in fastest.items():
            primal_key = (PRIMAL_OF.get(function), description)
            if primal_key in fastest:
                rows.append({"function": function, "description": description,
                             "primal_ns": fastest[primal_key], "derivative_ns": derivative,
                             "ratio": derivative / fastest[primal_key],
                             "valid": valid[primal_key] and valid[(function, description)]})
        return rows


def abbreviate(message):
    """One short line for the terminal (messages can carry megabytes)."""
    kind = message.get("kind")
    if kind == "evaluate":
        return (f"evaluate {message.get('module')}::{message.get('function')} "
                f"{message.get('description') or ''}").rstrip()
    if kind == "analysis":
        return f"analysis of {message.get('of')}: {'valid' if message.get('valid') else 'INVALID'}"
    if kind == "define":
        return f"define {message.get('module')}"
    return str(kind)


def relay(eval_process, tool_process, record, timeout, log, verbose):
    eval_lines, tool_lines = Lines(eval_process.stdout), Lines(tool_process.stdout)
    started = time.perf_counter_ns()
    while True:
        line = eval_lines.next(timeout, "the eval")
        if line is None:
            return
        message = decode(line, "the eval")
        sent = time.perf_counter_ns()
        log.write(json.dumps({"elapsed": {"nanoseconds": sent - started}, "message": message}) + "\n")
        record.message(message)
        send(tool_process, line, "the tool")
        if message.get("kind") == "end":
            return          # the eval waits for no answer to "end"
        answer = tool_lines.next(timeout, "the tool")
        if answer is None:
            raise Failure(f"the tool exited (status {tool_process.wait()}) "
                          f"without answering message {message.get('id')}")
        response = decode(answer, "the tool")
        took = time.perf_counter_ns() - sent
        log.write(json.dumps({"elapsed": {"nanoseconds": time.perf_counter_ns() - started},
                              "response": response}) + "\n")
        if response.get("id") != message.get("id"):
            raise Failure(f"the tool answered message {message.get('id')} "
                          f"with id {response.get('id')!r}")
        record.response(message, response)
        if verbose:
            status = "" if response.get("success", True) else "  FAILED: " + \
                str(response.get("error")).strip().splitlines()[-1][:200]
            print(f"[{message.get('id'):>3}] {abbreviate(message)}  ({took / 1e6:.1f} ms){status}",
                  flush=True)
        try:
            send(eval_process, answer, "the eval")
        except Failure:
            return          # the eval is done with us; its status tells how it went


def stop(process, name, grace):
    """Wait for a process to end on its own, then make it."""
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise Failure(f"{name} did not exit within {grace:g} s; killed it") from None


def run(args):
    eval_path = os.path.join(args.gradbench, "python", "gradbench", "gradbench", "evals",
                             args.eval, "run.py")
    if not os.path.exists(eval_path):
        raise SystemExit(f"no eval {args.eval!r} in {args.gradbench} ({eval_path} is missing)")
    env = gradbench_env(args.gradbench)
    tool_argv, tool_cwd = tool_command(args)
    eval_argv = [sys.executable, eval_path, *args.eval_args]
    print(f"eval: {shlex.join(eval_argv)}\ntool: {shlex.join(tool_argv)} (in {tool_cwd})",
          flush=True)
    pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=env)
    record = Record()
    log = open(args.log, "w") if args.log else open(os.devnull, "w")
    eval_process = subprocess.Popen(eval_argv, cwd=args.gradbench, **pipes)
    tool_process = subprocess.Popen(tool_argv, cwd=tool_cwd, **pipes)
    try:
        relay(eval_process, tool_process, record, args.timeout, log, not args.quiet)
    except Failure as e:
        record.problems.append(str(e))
    finally:
        for process in (tool_process, eval_process):
            if process.stdin:
                try:
                    process.stdin.close()
                except BrokenPipeError:
                    pass
        for process, name in ((eval_process, "the eval"), (tool_process, "the tool")):
            try:
                status = stop(process, name, grace=0 if record.problems else 30)
            except Failure as e:
                if not record.problems:         # killing after a failure is expected
                    record.problems.append(str(e))
                continue
            if status != 0 and not record.problems:
                record.problems.append(f"{name} exited with status {status}")
        log.close()
    return record


def summary(record, args):
    entries = list(record.evaluations.values())
    print(f"\n{args.eval} on {args.tool_command or args.tool}: {len(entries)} evaluations")
    print(f"  {'function':<10} {'workload':<18} {'answer':<8} {'runs':>5} {'fastest':>12}")
    for e in entries:
        answer = ("valid" if e["valid"] else "INVALID" if e["valid"] is False else "?") \
            if e["success"] else "FAILED"
        fastest = f"{min(e['timings_ns']) / 1e6:.3f} ms" if e["timings_ns"] else "-"
        print(f"  {e['function']:<10} {str(e['description'] or ''):<18} {answer:<8} "
              f"{len(e['timings_ns']):>5} {fastest:>12}")
        if e["error"] and not (e["success"] and e["valid"]):
            print("    " + str(e["error"]).strip().replace("\n", "\n    "))
    ratios = record.ratios()
    if ratios:
        print("  derivative / primal (fastest runs):")
        for r in ratios:
            print(f"    {r['function']:<10} {str(r['description'] or ''):<18} {r['ratio']:8.2f}")
    for problem in record.problems:
        print(f"  PROBLEM: {problem}")
    print("  all answers valid" if record.ok() else "  NOT all answers valid")


def save(record, args):
    with open(args.json, "w") as f:
        json.dump({"eval": args.eval, "tool": args.tool_command or args.tool,
                   "eval_args": args.eval_args, "ok": record.ok(),
                   "problems": record.problems,
                   "evaluations": list(record.evaluations.values()),
                   "ratios": record.ratios()}, f, indent=1)


def table(paths):
    """The markdown table of derivative/primal ratios, one column per tool."""
    runs = [json.load(open(p)) for p in paths]
    tools = sorted(dict.fromkeys(r["tool"] for r in runs), key=lambda t: t != "shadowad")
    cells = {}
    for r in runs:
        record = Record()
        record.evaluations = {e["id"]: e for e in r["evaluations"]}
        for row in record.ratios():
            key = (r["eval"], row["description"] or "")
            mark = "" if row["valid"] else " (invalid)"
            cells.setdefault(key, {})[r["tool"]] = f"{row['ratio']:.2f}{mark}"
    lines = ["| eval | workload | " + " | ".join(tools) + " |",
             "|---|---|" + "---:|" * len(tools)]
    for (name, workload), by_tool in cells.items():
        lines.append(f"| {name} | {workload} | "
                     + " | ".join(by_tool.get(t, "—") for t in tools) + " |")
    return "\n".join(lines)


def parse(argv):
    own, eval_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) \
        if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s EVAL [options] [-- EVAL_ARGS...]"
                                           " | %(prog)s --table RUN.json...")
    parser.add_argument("eval", nargs="?", help="the eval's name: lse, det, llsq, ode, ...")
    parser.add_argument("--gradbench", default=os.environ.get("GRADBENCH", "/tmp/gradbench"),
                        help="a checkout of github.com/gradbench/gradbench "
                             "(default $GRADBENCH or /tmp/gradbench)")
    parser.add_argument("--tool", default="shadowad",
                        help="shadowad (default), manual, one of the repository's Python "
                             "tools (pytorch, jax, tensorflow), or jax-blocking (the jax tool, "
                             "its timings waiting for the result)")
    parser.add_argument("--tool-command", help="any other tool: a command run in the checkout")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds to wait for any one message or response (default 600)")
    parser.add_argument("--log", help="write every message and response to this JSON-lines file")
    parser.add_argument("--json", help="write the summary to this file (for --table)")
    parser.add_argument("--quiet", action="store_true", help="no line per message")
    parser.add_argument("--smoke", action="store_true",
                        help="small sizes, one run each: check the answers, not the speed")
    parser.add_argument("--table", nargs="+", metavar="RUN.json",
                        help="print the ratio table of these --json files and exit")
    args = parser.parse_args(own)
    if not args.table and not args.eval:
        parser.error("name an eval, or give --table files")
    if args.smoke and not eval_args and not args.table:
        if args.eval not in SMOKE:
            parser.error(f"no --smoke sizes for eval {args.eval!r}; give its arguments after --")
        eval_args = SMOKE[args.eval] + (ONE_RUN if args.eval != "hello" else [])
    args.eval_args = eval_args
    args.gradbench = os.path.abspath(args.gradbench)
    return args


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.table:
        missing = [p for p in args.table if not os.path.exists(p)]
        if missing:
            raise SystemExit(f"no such run summary: {', '.join(missing)}")
        print(table(args.table))
        return 0
    record = run(args)
    summary(record, args)
    if args.json:
        save(record, args)
    return 0 if record.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
