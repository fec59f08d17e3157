"""The GradBench tool speaks the protocol: every message gets one answer with
its id, and no message (unknown module or function, bad input, broken JSON)
stops it.  The intermediary run_eval.py relays a whole session and does not
hang when a side dies.  Nothing here needs the gradbench repository: a fake
eval stands in for it."""
import io
import json
import os
import subprocess
import sys
import textwrap
import types

import pytest

GRADBENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "benchmarks", "gradbench")
sys.path.insert(0, GRADBENCH)

import run_eval  # noqa: E402
import timed  # noqa: E402
import tool  # noqa: E402

LSE_INPUT = {"x": [0.5, -1.0, 2.0], "min_runs": 3, "min_seconds": 0}

SESSION = [
    {"id": 0, "kind": "start", "eval": "lse"},
    {"id": 1, "kind": "define", "module": "lse"},
    {"id": 2, "kind": "evaluate", "module": "lse", "function": "gradient", "input": LSE_INPUT,
     "description": "n=3"},
    {"id": 3, "kind": "analysis", "of": 2, "valid": True},
]


def ask(message):
    return tool.respond_line(json.dumps(message))


def test_session():
    start, define, evaluate, analysis = map(ask, SESSION)
    assert start == {"id": 0, "tool": "shadowad"}
    assert define == {"id": 1, "success": True}
    assert evaluate["id"] == 2 and evaluate["success"] is True
    assert len(evaluate["output"]) == 3
    assert len(evaluate["timings"]) == 3
    assert all(t["name"] == "evaluate" and t["nanoseconds"] > 0 for t in evaluate["timings"])
    assert analysis == {"id": 3}
    json.dumps(evaluate)     # plain JSON, no numpy values left


def test_runs_for_min_seconds():
    response = ask({"id": 7, "kind": "evaluate", "module": "lse", "function": "primal",
                    "input": {"x": [1.0] * 1000, "min_runs": 1, "min_seconds": 0.02}})
    assert sum(t["nanoseconds"] for t in response["timings"]) >= 0.02e9
    assert len(response["timings"]) > 1


def test_hello_takes_a_bare_number():
    assert ask({"id": 4, "kind": "evaluate", "module": "hello", "function": "double",
                "input": 3})["output"] == 6.0


@pytest.mark.parametrize("message, error", [
    ({"id": 5, "kind": "define", "module": "nosuch"}, "no implementation of module 'nosuch'"),
    ({"id": 5, "kind": "evaluate", "module": "nosuch", "function": "primal", "input": {}},
     "no implementation of module 'nosuch'"),
    ({"id": 5, "kind": "define", "module": "../lse"}, "module must be a module name"),
    ({"id": 5, "kind": "evaluate", "module": "lse", "function": "hessian", "input": {}},
     "no function 'hessian' (it has gradient, primal)"),
    ({"id": 5, "kind": "evaluate", "module": "lse", "function": "logsumexp", "input": {}},
     "no function 'logsumexp'"),   # a plain function of the module is not a GradBench one
    ({"id": 5, "kind": "evaluate", "module": "lse", "function": "primal"}, "no 'input'"),
    ({"id": 5, "kind": "evaluate", "module": "lse", "function": "primal", "input": {}},
     "bad input: input has no field 'x'"),
    ({"id": 5, "kind": "evaluate", "module": "lse", "function": "primal", "input": [1, 2]},
     "bad input: input must be an object"),
    ({"id": 5, "kind": "evaluate", "module": "lse", "function": "primal",
      "input": {"x": ["a"]}}, "bad input: input field 'x' must be a list of numbers"),
    ({"id": 5, "kind": "evaluate", "module": "det", "function": "primal",
      "input": {"A": [1.0, 2.0, 3.0], "ell": 2}}, "must hold ell*ell = 4 numbers, got 3"),
    ({"id": 5, "kind": "evaluate", "module": "ode", "function": "gradient",
      "input": {"x": [1.0], "s": 0}}, "'s' must be an integer >= 1"),
    ({"id": 5, "kind": "evaluate", "module": "llsq", "function": "primal",
      "input": {"x": [1.0], "n": 4, "min_runs": -2}}, "min_runs must be a non-negative"),
    ({"id": 5, "kind": "dance"}, "unknown message kind 'dance'"),
])
def test_bad_messages_get_an_error(message, error):
    response = ask(message)
    assert response["id"] == 5 and response["success"] is False
    assert error in response["error"]


@pytest.mark.parametrize("line, error", [
    ("{not json", "malformed JSON message"),
    ("[1, 2]", "a message must be a JSON object"),
])
def test_malformed_lines_get_an_error(line, error):
    response = tool.respond_line(line)
    assert response["id"] is None and response["success"] is False
    assert error in response["error"]


def test_a_failing_module_is_an_error_not_a_crash(monkeypatch):
    def explode(args):
        raise ZeroDivisionError("inside the module")
    broken = types.ModuleType("modules.broken")
    broken.primal = timed.Function(explode, prepare=lambda input: input, finish=float)
    monkeypatch.setitem(sys.modules, "modules.broken", broken)
    response = ask({"id": 9, "kind": "evaluate", "module": "broken", "function": "primal",
                    "input": {}})
    assert response["success"] is False
    assert "ZeroDivisionError: inside the module" in response["error"]   # with its traceback
    assert ask(SESSION[1]) == {"id": 1, "success": True}


def test_main_answers_every_line_and_skips_blank_ones():
    lines = [json.dumps(m) for m in SESSION[:2]] + ["", "oops", json.dumps(SESSION[3])]
    out = io.StringIO()
    tool.main(io.StringIO("\n".join(lines) + "\n"), out)
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [a["id"] for a in answers] == [0, 1, None, 3]


def test_tool_process_answers_one_line_per_message():
    lines = [json.dumps(m) for m in SESSION] + ["{oops", json.dumps({"id": 4, "kind": "end"})]
    done = subprocess.run([sys.executable, os.path.join(GRADBENCH, "tool.py")],
                          input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["id"] for a in answers] == [0, 1, 2, 3, None, 4]
    assert answers[2]["success"] and answers[4]["success"] is False


# --- the intermediary, with a fake eval in a fake checkout ---------------------

FAKE_EVAL = textwrap.dedent("""
    import json, sys
    def send(message):
        print(json.dumps(message), flush=True)
        return json.loads(sys.stdin.readline())
    send({"id": 0, "kind": "start", "eval": "lse"})
    if send({"id": 1, "kind": "define", "module": "lse"})["success"]:
        x = {"x": [1.0, 2.0, 3.0], "min_runs": 2, "min_seconds": 0}
        for id, function in ((2, "primal"), (4, "gradient")):
            r = send({"id": id, "kind": "evaluate", "module": "lse", "function": function,
                      "input": x, "description": "n=3"})
            if r["success"]:
                valid = function != "gradient" or abs(sum(r["output"]) - 1) < 1e-12
                send({"id": id + 1, "kind": "analysis", "of": id, "valid": valid})
""")


@pytest.fixture
def checkout(tmp_path):
    evals = tmp_path / "python" / "gradbench" / "gradbench" / "evals" / "lse"
    evals.mkdir(parents=True)
    (evals / "run.py").write_text(FAKE_EVAL)
    return str(tmp_path)


def test_run_eval_relays_a_session(checkout, tmp_path, capsys):
    summary = tmp_path / "run.json"
    status = run_eval.main(["lse", "--gradbench", checkout, "--timeout", "60",
                            "--json", str(summary), "--log", str(tmp_path / "log.jsonl")])
    assert status == 0, capsys.readouterr().out
    run = json.loads(summary.read_text())
    assert run["ok"] and [e["valid"] for e in run["evaluations"]] == [True, True]
    assert [r["description"] for r in run["ratios"]] == ["n=3"]
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(log) == 12       # six messages, six responses
    table = run_eval.table([str(summary)])
    assert "| lse | n=3 |" in table and "shadowad" in table


def test_run_eval_fails_without_hanging_when_the_tool_dies(checkout, capsys):
    dies = f"{sys.executable} -c \"import sys; sys.stdin.readline(); sys.exit(3)\""
    status = run_eval.main(["lse", "--gradbench", checkout, "--timeout", "20",
                            "--tool-command", dies])
    assert status == 1
    assert "the tool exited (status 3) without answering message 0" in capsys.readouterr().out


def test_run_eval_times_out_on_a_silent_tool(checkout, capsys):
    silent = f"{sys.executable} -c \"import time; time.sleep(30)\""
    # the timeout applies to the eval too, whose Python must start within it:
    # under make test-asan (the sanitizers preloaded) on a busy machine, 0.5 s
    # was not always enough
    status = run_eval.main(["lse", "--gradbench", checkout, "--timeout", "3",
                            "--tool-command", silent])
    assert status == 1
    assert "the tool said nothing for 3 s" in capsys.readouterr().out
