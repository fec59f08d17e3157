"""The benchmark suite (`make bench`; not part of `make test`).

For every workload (benchmarks/w*.py) and size, in one process: the plain
numpy primal, shadowad's gradient, and the peers -- PyTorch eager on the same
in-place code (its error text is recorded where it refuses), JAX
jax.jit(jax.grad(...)) on a functional rewrite (the first call, i.e. tracing
and compilation, reported separately), HIPS autograd on a functional rewrite.
Times are the best of N after a warm-up call.  Every peer's gradient is
checked against shadowad's (to a float32 tolerance on the float32 cases of W2
and W3).  Then the peak memory of one run of each method is measured in a
child process (see probe()).

Prints the table and the targets (PASS/FAIL; "info" for the float32 cases,
compared without a target, see compared_float32()), and writes docs/benchmarks.md
and docs/benchmarks.png.

    python benchmarks/run.py                 # everything (a few minutes)
    python benchmarks/run.py --only W1,W4    # some workloads; docs not written
    python benchmarks/run.py --no-memory     # skip the memory probes
    python benchmarks/run.py --only W5 --docs-dir /tmp   # docs of a partial run elsewhere
"""
import os
import sys

# One thread everywhere: numpy/shadowad run on one core, so the peers do too
# (on a small shared machine, thread pools also make the timings erratic).
# Must happen before numpy, torch or jax is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from common import same_gradient, to_numpy, tolerance  # noqa: E402

MODULES = ["w1_scalar_loop", "w2_heat", "w3_loglike", "w4_lu", "w5_jacobian",
           "w6_gmm", "w7_rk4", "w8_plain_stepper", "w9_c_rule", "w10_checkpoint"]
PEER_KINDS = ("torch", "jax", "autograd")
LOAD_AT_START = (0.0, 0.0, 0.0)
MALLOC_PINNED = False
PEER_NAMES = {"torch": "PyTorch eager", "jax": "JAX jit", "autograd": "autograd"}


# --------------------------------------------------------------------------
# timing

MALLOC_NOTE = ("glibc's malloc is pinned to the state it reaches by itself after the "
               "first free of a large block (`mallopt`: mmap threshold 32 MiB, trim "
               "threshold 64 MiB): before that, every temporary above 128 KiB is a fresh "
               "mmap whose pages fault in on first touch, which makes numpy code on large "
               "arrays several times slower (W2's primal at m=1e5: ~68 ms cold, ~17 ms "
               "warm) and every time depend on what ran before")


def pin_malloc():
    """See MALLOC_NOTE.  Returns whether it worked (glibc only)."""
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
                and libc.mallopt(M_TRIM_THRESHOLD, 64 << 20))

def best_of(fn, first):
    """Best time of one call of fn, after the warm-up call that took `first`
    seconds.  Fast calls: batches of `number` calls, the number doubled until
    a batch takes >= 1/7 of a 0.25 s budget, best of 7 batches.  Slow calls
    get fewer repeats (3 above 0.25 s, 1 above 2 s)."""
    if first > 2.0:
        return min(timeit.repeat(fn, number=1, repeat=1))
    if first > 0.25:
        return min(timeit.repeat(fn, number=1, repeat=3))
    repeat, budget = 7, 0.25
    number = 1
    while timeit.timeit(fn, number=number) < budget / repeat and number < 1 << 20:
        number *= 2
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def error_text(exc):
    """The first line of an exception, without PyTorch's trailing hint."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.split(" Hint:")[0]
    return f"{type(exc).__name__}: {text}"


def run_case(mod, ci, case):
    """Time every method of one case; returns a dict of rows."""
    P = mod.problem(case)
    rows, ref, ref_name = [], None, None
    for mi, m in enumerate(mod.methods(P)):
        row = {"method": m.name, "kind": m.kind, "index": mi, "time": None, "first": None,
               "error": None, "check": "", "mem_kb": None}
        rows.append(row)
        try:
            fn = m.build()
            t0 = time.perf_counter()
            out = fn()
            row["first"] = time.perf_counter() - t0
        except ImportError as exc:
            row["error"] = f"not installed ({exc})"
            continue
        except Exception as exc:                               # noqa: BLE001
            row["error"] = error_text(exc)
            continue
        if m.kind == "shadowad" and ref is None:
            ref, ref_name = out, m.name
            if hasattr(mod, "closed_form"):
                ok = same_gradient(out, mod.closed_form(P),
                                   tol=tolerance(P.dtype, closed_form=True))
                row["check"] = "= closed form" if ok else "CLOSED FORM MISMATCH"
                row["closed_form_ok"] = ok
                if not ok:
                    print(f"WARNING: {mod.KEY} {mod.label(case)}: shadowad's gradient "
                          f"differs from the closed form", flush=True)
            else:
                row["check"] = "reference"
        elif m.kind != "primal":
            ok = ref is not None and same_gradient(out, ref, tol=tolerance(P.dtype))
            row["check"] = "ok" if ok else "DIFFERS"
            if not ok:
                err = _max_rel_err(out, ref)
                row["check"] = f"DIFFERS (rel. err. {err:.1e})"
                print(f"WARNING: {mod.KEY} {mod.label(case)}: {m.name}'s gradient differs "
                      f"from {ref_name}'s (max relative error {err:.1e})", flush=True)
        del out
        t = best_of(fn, row["first"])
        row["time"] = t if m.kind == "jax" else min(t, row["first"])
        del fn
        gc.collect()
    return {"key": mod.KEY, "module": mod.__name__, "ci": ci, "label": mod.label(case),
            "dtype": P.dtype.name, "rows": rows}


def _max_rel_err(got, ref):
    got, ref = to_numpy(got), to_numpy(ref)
    if not isinstance(ref, tuple):
        got, ref = (got,), (ref,)
    try:
        return max(float(np.max(np.abs(np.asarray(g) - np.asarray(r))))
                   / max(float(np.max(np.abs(r))), 1e-300) for g, r in zip(got, ref))
    except Exception:                                          # noqa: BLE001
        return float("nan")


# --------------------------------------------------------------------------
# memory: one run of one method in a child process

PROBE_METHOD = ("peak RSS growth of one run, in a child process that imports, sets up "
                "and calls the method once (warm-up, JAX compilation), frees what it can "
                "(gc.collect, malloc_trim, and shadowad's save-stack pool, "
                "`sad.set_memory_pool(0)`, so that the run's save stack counts), "
                "resets its peak RSS (`echo 5 > "
                "/proc/self/clear_refs`), then runs the method once more: the table gives "
                "the peak RSS after that run minus the RSS at the reset (VmHWM of "
                "/proc/self/status; ru_maxrss cannot be used here, since Linux carries the "
                "parent's peak into a child's ru_maxrss across fork+exec)")


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


def probe(module, ci, mi):
    """Child side of the memory measurement; prints one JSON line."""
    import ctypes
    mod = importlib.import_module(module)
    P = mod.problem(mod.CASES[ci])
    fn = mod.methods(P)[mi].build()
    fn()                                                       # warm-up / compile
    if "shadowad" in sys.modules:  # pooled save-stack chunks would already be resident
        sys.modules["shadowad"].set_memory_pool(0)
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)                # give freed memory back
    except (OSError, AttributeError):
        pass
    try:
        for _ in range(5):         # the reset can race with the kernel; check that it held
            if not _reset_peak():
                raise OSError("cannot write /proc/self/clear_refs")
            # the reset sets the peak to the RSS of that moment: the baseline
            hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
            if hwm <= rss + 512:
                break
        else:
            raise OSError(f"peak not reset: VmHWM {hwm} kB, VmRSS {rss} kB")
        base = hwm
    except OSError as exc:
        print(json.dumps({"kb": None, "why": str(exc)}))
        return
    out = fn()
    peak = _status_kb("VmHWM")
    del out
    print(json.dumps({"kb": peak - base}))


def measure_memory(results):
    jobs = [(res, row) for res in results for row in res["rows"] if row["error"] is None]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")   # big blocks: mmap, freed at once

    def one(job):
        res, row = job
        cmd = [sys.executable, os.path.abspath(__file__), "--probe",
               res["module"], str(res["ci"]), str(row["index"])]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
            line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
            got = json.loads(line[-1]) if line else {"kb": None, "why": (
                p.stderr.strip().splitlines() or ["no output"])[-1]}
            row["mem_kb"] = got["kb"]
            if got["kb"] is None:
                print(f"\nWARNING: memory probe of {res['key']} {res['label']} {row['method']} "
                      f"failed: {got['why']}", flush=True)
        except subprocess.TimeoutExpired:
            row["mem_kb"] = None
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as ex:
        list(ex.map(one, jobs))


# --------------------------------------------------------------------------
# formatting

def fmt_time(t):
    if t is None:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1.0:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def fmt_mem(kb):
    if kb is None:
        return "-"
    mb = kb / 1024
    return f"{mb:.1f} MB" if mb < 100 else f"{mb:.0f} MB"


def fmt_ratio(r):
    if r is None:
        return "-"
    if r < 0.1:
        return f"{r:.2g}x"
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x" if r < 100 else f"{r:.0f}x"


def calls_text(calls):
    if calls == float("inf"):
        return "never"
    n = max(1, int(np.ceil(calls)))
    return f"{n} call" + ("s" if n > 1 else "")


def ref_time(res):
    """The reference shadowad time of a case (its first shadowad method)."""
    for row in res["rows"]:
        if row["kind"] == "shadowad":
            return row["time"], row["method"]
    return None, None


def primal_time(res):
    return next((r["time"] for r in res["rows"] if r["kind"] == "primal"), None)


def ratio_text(res, row):
    """shadowad rows: time / numpy primal; peers: time / shadowad."""
    if row["time"] is None or row["kind"] == "primal":
        return ""
    if row["kind"] == "shadowad":
        p = primal_time(res)
        return f"{fmt_ratio(row['time'] / p)} numpy" if p else ""
    s, _ = ref_time(res)
    return f"{fmt_ratio(row['time'] / s)} shadowad" if s else ""


def first_text(row):
    if row["kind"] == "jax" and row["first"] is not None:
        return fmt_time(row["first"])
    return ""


def table_rows(res):
    out = []
    for row in res["rows"]:
        if row["error"]:
            out.append([row["method"], "fails", "", "", "", "see errors below"
                        if row["kind"] == "torch" else row["error"][:60]])
        else:
            out.append([row["method"], fmt_time(row["time"]), ratio_text(res, row),
                        first_text(row), fmt_mem(row["mem_kb"]), row["check"]])
    return out


HEAD = ["method", "time", "ratio", "JAX 1st call", "peak RSS", "gradient"]


def print_results(results, modules):
    for key, mod in modules.items():
        print(f"\n{key}  {mod.TITLE}")
        for res in (r for r in results if r["key"] == key):
            rows = table_rows(res)
            widths = [max(len(HEAD[j]), *(len(r[j]) for r in rows)) for j in range(len(HEAD))]
            print(f"  {res['label']}")
            print("    " + "  ".join(h.ljust(w) for h, w in zip(HEAD, widths)))
            for r in rows:
                print("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print("\nratio: shadowad rows = time / numpy primal; peer rows = time / shadowad's "
          "(>1: shadowad is faster).  JAX 1st call = tracing + compilation + one run.")
    print("peak RSS: " + PROBE_METHOD + ".")


# --------------------------------------------------------------------------
# targets

def find(results, key, label=None):
    return [r for r in results if r["key"] == key and (label is None or r["label"] == label)]


def row_of(res, kind=None, name=None):
    for row in res["rows"]:
        if (kind is None or row["kind"] == kind) and (name is None or row["method"] == name):
            return row
    return None


def best_peer(res, kind):
    """The fastest method of a peer that ran, or None; and whether it failed."""
    rows = [r for r in res["rows"] if r["kind"] == kind]
    ran = [r for r in rows if r["time"] is not None]
    if ran:
        return min(ran, key=lambda r: r["time"]), False
    return None, bool(rows)


def targets(results):
    """(description, measured, verdict) for each target."""
    out = []

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    def vs_primal(key, label, limit, what):
        for res in find(results, key, label):
            p, (s, _) = primal_time(res), ref_time(res)
            if p and s:
                r = s / p
                out.append((f"{key} {label}: {what} <= {limit:g}x the numpy primal",
                            f"{r:.1f}x", verdict(r <= limit)))

    vs_primal("W1", "n=1000", 10, "gradient")
    vs_primal("W2", "m=1e5,T=100", 3, "gradient")
    for res in find(results, "W3", "n=1000"):
        s, _ = ref_time(res)
        t, failed = best_peer(res, "torch")
        if s and t:
            r = t["time"] / s
            note = ""
            fw = row_of(res, name="shadowad fwddiff")
            if fw and fw["time"]:
                note = f" (PyTorch/fwddiff = {t['time'] / fw['time']:.2f}x)"
            out.append(("W3 n=1000: gradient faster than PyTorch eager's",
                        f"PyTorch/shadowad = {r:.2f}x{note}", verdict(r > 1)))
    vs_primal("W4", "n=64", 3, "gradient")
    vs_primal("W4", "n=128", 3, "gradient")
    # W8 reads a plain 8 MB W in every step: the gradient compares it with its
    # snapshot (reading both) and reads it again in the sweep, besides the
    # primal's own read
    vs_primal("W8", "n=1000,T=200", 6, "gradient")
    # W9's solves are a C rule: one C record each, reversed by its C adjoint
    vs_primal("W9", "m=1000,T=1000", 3, "gradient")
    # W10 recomputes 3.6 steps untaped per step and tapes each once
    vs_primal("W10", "m=1e5,T=1000,s=10", 8, "gradient")
    for res in find(results, "W10"):
        # the tape's own peak, as the issue states it: 12 copies of the state
        # (10 snapshots, the record's copy, the last step's save) plus one
        # step's tape, measured alone; the loop's bookkeeping (Python objects
        # of a few KiB, whatever the state's size) is not a copy of the state
        import w10_checkpoint
        peak, one_step, state = w10_checkpoint.tape_peaks(w10_checkpoint.CASES[res["ci"]])
        bookkeeping = 64 << 10
        out.append((f"W10 {res['label']}: the tape's peak <= 12 state copies + one step's "
                    f"tape ({one_step / state:.2f} copies) + 64 KiB",
                    f"{peak / state:.3f} copies", verdict(peak <= 12 * state + one_step +
                                                         bookkeeping)))
    for res in results:
        s, sname = ref_time(res)
        if not s or res["dtype"] != "float64":
            continue
        for kind in ("torch", "autograd"):
            t, failed = best_peer(res, kind)
            desc = f"{res['key']} {res['label']}: {sname} faster than {PEER_NAMES[kind]}"
            if t is not None:
                r = t["time"] / s
                if t["method"] not in ("torch eager", "autograd"):
                    desc += f" ({t['method']})"
                out.append((desc, f"{r:.2f}x", verdict(r > 1)))
            elif failed:
                out.append((desc, f"{PEER_NAMES[kind]} cannot differentiate it", "n/a"))
    for res in find(results, "W5"):
        f, r = row_of(res, name="shadowad forward"), row_of(res, name="shadowad reverse")
        if f and r and f["time"] and r["time"]:
            ratio = r["time"] / f["time"]
            out.append(("W5: shadowad's forward-mode Jacobian >= 5x faster than its "
                        "reverse-mode one", f"{ratio:.2f}x", verdict(ratio >= 5)))
    out += compared_float32(results)
    return out


def compared_float32(results):
    """Informational rows ("info", no PASS/FAIL) for the float32 cases: they
    record how shadowad's float32 path (the C kernels' float instance for the
    elementwise work, the generic numpy rules for the rest) compares with the
    peers and with its float64 twin, without a target of their own."""
    out = []
    for res in results:
        s, sname = ref_time(res)
        if not s or res["dtype"] == "float64":
            continue
        name = f"{res['key']} {res['label']}"
        p = primal_time(res)
        if p:
            out.append((f"{name}: {sname} gradient / the numpy {res['dtype']} primal",
                        fmt_ratio(s / p), "info"))
        for kind in ("torch", "jax", "autograd"):
            t, failed = best_peer(res, kind)
            if t is not None:
                out.append((f"{name}: {PEER_NAMES[kind]} {res['dtype']} / {sname} "
                            "(>1: shadowad faster)", fmt_ratio(t["time"] / s), "info"))
            elif failed:
                out.append((f"{name}: {PEER_NAMES[kind]} {res['dtype']} / {sname}",
                            f"{PEER_NAMES[kind]} cannot differentiate it", "info"))
        base = res["label"].removesuffix("," + res["dtype"])
        for res64 in find(results, res["key"], base):
            s64, _ = ref_time(res64)
            if s64:
                out.append((f"{name}: {sname} {res['dtype']} / {sname} float64 ({base})",
                            fmt_ratio(s / s64), "info"))
    return out


def jax_faster(results):
    """Cases where JAX's jitted rewrite beats shadowad's gradient (steady state)."""
    lines = []
    for res in results:
        s, sname = ref_time(res)
        j, _ = best_peer(res, "jax")
        if not (s and j):
            continue
        if j["time"] < s:
            compile_t = j["first"] - j["time"]
            gain = s - j["time"]
            calls = compile_t / gain if gain > 0 else float("inf")
            lines.append((res, j, s / j["time"], compile_t, calls))
    return lines


# --------------------------------------------------------------------------
# docs

def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}"


def versions():
    out = {"Python": platform.python_version()}
    for pkg in ("numpy", "torch", "jax", "jaxlib", "autograd", "matplotlib"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "shadowad", "csrc"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        out["shadowad"] = f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "?"
    except OSError:
        out["shadowad"] = "?"
    return out


def doc_markdown(doc):
    """A module docstring as markdown: indented blocks become code blocks."""
    import textwrap
    out = []
    for para in textwrap.dedent("\n" + doc.strip("\n")).strip().split("\n\n"):
        lines = para.split("\n")
        if all(ln.startswith("    ") or not ln.strip() for ln in lines):
            out.append("```python\n" + textwrap.dedent(para) + "\n```")
        else:
            out.append(" ".join(" ".join(ln.split()) for ln in lines))
    return "\n\n".join(out)


def write_markdown(path, results, modules, tgts, memory, elapsed):
    L = []
    add = L.append
    add("# Benchmarks")
    add("")
    add("Generated by `make bench` (`benchmarks/run.py`); do not edit by hand.")
    add("")
    vers = versions()
    add(f"* **Date:** {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, "
        f"whole run {elapsed / 60:.1f} min")
    add(f"* **Machine:** {machine()}; load average {LOAD_AT_START[0]:.2f} when the run "
        "started (other processes may share the machine, so repeated runs differ "
        "by some percent)")
    add("* **Versions:** " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    add("* **Threads:** every library runs on one thread (`OMP_NUM_THREADS=1`, "
        "`OPENBLAS_NUM_THREADS=1`, `torch.set_num_threads(1)`, "
        "`XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`), as numpy and shadowad do.")
    add("* **Time:** best of N after one warm-up call (N adaptive: batches of calls "
        "lasting >= 36 ms, best of 7; 3 single calls above 0.25 s; 1 above 2 s). "
        "Each call includes copying the inputs it overwrites, for every method alike.")
    if MALLOC_PINNED:
        add(f"* **Memory allocator (timings):** {MALLOC_NOTE}.")
    else:
        add("* **Memory allocator (timings):** glibc's malloc could not be pinned "
            "(`mallopt` unavailable): times of numpy code on large temporaries depend on "
            "what ran before.")
    add("* **Ratio:** for shadowad rows, time / the numpy primal's; for peer rows, "
        "time / shadowad's (the case's first shadowad row): above 1, shadowad is faster.")
    add("* **JAX 1st call:** `jax.jit(jax.grad(f))` on a functional rewrite, in float64 "
        "(`jax_enable_x64`; in float32 on the float32 cases); its first call (tracing + "
        "XLA compilation + one run) is reported separately and is not in the time.")
    add("* **float32 cases** (labels ending in `,float32`, W2 and W3): every method on "
        "float32 inputs (the numpy primal too, which is their ratio's baseline); shadowad "
        "runs their elementwise work on the C kernels' float instance and the rest on its "
        "primitives' generic numpy rules (docs/float32.md).")
    if memory:
        add(f"* **Peak RSS (memory):** {PROBE_METHOD}. So it is what the run allocates at "
            "its peak (tape, saved values, temporaries, results), not what the imports "
            "cost. Chosen over tracemalloc + `tape.nbytes` because it measures every "
            "library the same way, including memory allocated in C. Allocations below a "
            "few pages can hide in memory the process already holds, so small values "
            "(under ~1 MB) mean \"small\", not an exact size.")
    else:
        add("* **Peak RSS:** not measured in this run (`--no-memory`).")
    add("* **Gradient:** every peer's gradient is compared with shadowad's "
        "(`np.allclose`, rtol 1e-6; on the float32 cases rtol 1e-5 and atol 1e-5 times the "
        "largest magnitude); shadowad's with the closed form where there is one (evaluated "
        "in float64).")
    add("")
    add("![benchmarks](benchmarks.png)")
    add("")
    add("## Targets")
    add("")
    add("| target | measured | |")
    add("|---|---|---|")
    for desc, meas, v in tgts:
        add(f"| {desc} | {meas} | **{v}** |")
    n_pass = sum(v == "PASS" for _, _, v in tgts)
    n_fail = sum(v == "FAIL" for _, _, v in tgts)
    n_info = sum(v == "info" for _, _, v in tgts)
    n_na = len(tgts) - n_pass - n_fail - n_info
    add("")
    add("\"shadowad\" is the case's first shadowad row (plain reverse mode; forward mode for "
        "W5); a peer with several variants is represented by its fastest. Ratios are "
        "peer time / shadowad time, or shadowad time / numpy primal time. Where PyTorch "
        "raises on the in-place code the target is not applicable (shadowad computes a "
        "gradient PyTorch cannot).")
    add("")
    add(f"{n_pass} pass, {n_fail} fail"
        + (f", {n_na} not applicable (the peer cannot differentiate the code at all)"
           if n_na else "")
        + (f", {n_info} informational (\"info\": the float32 cases of W2 and W3, compared "
           "with the peers' float32 and shadowad's float64 without a target of their own)"
           if n_info else "") + ".")
    add("")
    add("## Results")
    for key, mod in modules.items():
        add("")
        add(f"### {key}: {mod.TITLE}")
        add("")
        add(doc_markdown(mod.__doc__ or ""))
        add("")
        add("| case | " + " | ".join(HEAD) + " |")
        add("|---|" + "---|" * len(HEAD))
        for res in (r for r in results if r["key"] == key):
            for i, r in enumerate(table_rows(res)):
                add(f"| {res['label'] if i == 0 else ''} | " + " | ".join(r) + " |")
    errs = [(res, row) for res in results for row in res["rows"] if row["error"]]
    if errs:
        add("")
        add("## Errors")
        add("")
        add("The peers that refuse the code, with their error text:")
        add("")
        groups = {}
        for res, row in errs:
            groups.setdefault((res["key"], row["method"]), []).append((res, row))
        for (key, method), items in groups.items():
            sizes = ", ".join(res["label"] for res, _ in items)
            add(f"* **{key} ({sizes}), {method}:** `{items[-1][1]['error']}`")
    add("")
    add("## Where JAX's jitted rewrite is faster")
    add("")
    fast = jax_faster(results)
    if not fast:
        add("Nowhere: shadowad's gradient is at least as fast as JAX's jitted rewrite "
            "on every case.")
    else:
        add("Steady-state time of `jax.jit(jax.grad(...))` on the functional rewrite "
            "against shadowad's gradient, and the calls needed to win back the "
            "compilation (first call minus one steady call):")
        add("")
        add("| case | shadowad | JAX | JAX faster by | compilation | pays off after |")
        add("|---|---|---|---|---|---|")
        for res, j, by, comp, calls in fast:
            s, _ = ref_time(res)
            name = "" if j["method"] == "jax jit(grad)" else f" ({j['method']})"
            add(f"| {res['key']} {res['label']} | {fmt_time(s)} | {fmt_time(j['time'])}{name} "
                f"| {by:.1f}x | {fmt_time(comp)} | {calls_text(calls)} |")
        slower = [res for res in results if best_peer(res, "jax")[0] is not None
                  and res not in [f[0] for f in fast]]
        if slower:
            add("")
            add("shadowad is faster than JAX's steady state on: "
                + ", ".join(f"{r['key']} {r['label']}" for r in slower) + ".")
        add("")
        add("JAX compiles the whole computation (loops included, via `lax.scan` / "
            "`fori_loop`) into one XLA program and pays no Python cost per operation; "
            "shadowad runs the user's Python once and records each operation, so its cost "
            "grows with the number of operations executed, not with the data size.")
    add("")
    with open(path, "w") as f:
        f.write("\n".join(L))


COLORS = {"primal": "#7f7f7f", "shadowad": "#1f77b4", "torch": "#ff7f0e",
          "jax": "#2ca02c", "autograd": "#d62728"}


def write_plot(path, results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(max(10, 1.15 * len(results) + 2), 5.5))
    width = 0.11
    xt, xl = [], []
    tmin = min(r["time"] for res in results for r in res["rows"] if r["time"])
    for g, res in enumerate(results):
        rows = res["rows"]
        seen = {}
        for b, row in enumerate(rows):
            x = g + (b - (len(rows) - 1) / 2) * width
            variant = seen.get(row["kind"], 0)
            seen[row["kind"]] = variant + 1
            if row["time"] is None:
                ax.plot(x, tmin / 3, marker="x", color=COLORS[row["kind"]], ms=7, mew=2)
                continue
            ax.bar(x, row["time"], width * 0.95, color=COLORS[row["kind"]],
                   hatch="//" if variant else None, edgecolor="white" if variant else None)
            if row["kind"] == "jax" and row["first"]:
                ax.plot(x, row["first"], marker="_", color="black", ms=8, mew=1.5)
        xt.append(g)
        xl.append(f"{res['key']}\n{res['label'].replace(',', chr(10))}")
    ax.set_yscale("log")
    ax.set_ylim(bottom=tmin / 6)
    ax.set_xticks(xt)
    ax.set_xticklabels(xl, fontsize=8)
    ax.set_ylabel("seconds per call (log scale)")
    ax.set_title("numpy primal, shadowad's gradient and the peers' (best of N, one thread)")
    ax.grid(axis="y", which="major", alpha=0.3)
    handles = [Patch(color=COLORS[k], label=lbl) for k, lbl in
               [("primal", "numpy primal"), ("shadowad", "shadowad"),
                ("torch", "PyTorch eager"), ("jax", "JAX jit (steady)"),
                ("autograd", "autograd")]]
    handles += [Patch(facecolor="#bbbbbb", hatch="//", edgecolor="white",
                      label="2nd variant (fwddiff / reverse / jacrev)"),
                Line2D([], [], color="black", marker="_", ls="", ms=8, mew=1.5,
                       label="JAX first call (compile)"),
                Line2D([], [], color="#ff7f0e", marker="x", ls="", ms=7, mew=2,
                       label="cannot differentiate")]
    ax.legend(handles=handles, fontsize=8, ncol=4, loc="upper center",
              bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated workload keys, e.g. W1,W4 (docs not written)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.*")
    ap.add_argument("--docs-dir", help="write benchmarks.md/.png there (even with --only)")
    ap.add_argument("--probe", nargs=3, metavar=("MODULE", "CASE", "METHOD"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        probe(args.probe[0], int(args.probe[1]), int(args.probe[2]))
        return 0

    global LOAD_AT_START, MALLOC_PINNED
    LOAD_AT_START = os.getloadavg()
    MALLOC_PINNED = pin_malloc()
    t_start = time.perf_counter()
    mods = [importlib.import_module(m) for m in MODULES]
    if args.only:
        keep = {k.strip().upper() for k in args.only.split(",")}
        mods = [m for m in mods if m.KEY in keep]
    modules = {m.KEY: m for m in mods}
    results = []
    for mod in mods:
        for ci, case in enumerate(mod.CASES):
            print(f"{mod.KEY} {mod.label(case)} ...", end="", flush=True)
            t0 = time.perf_counter()
            results.append(run_case(mod, ci, case))
            print(f" {time.perf_counter() - t0:.1f} s", flush=True)
    memory = not args.no_memory
    if memory:
        t0 = time.perf_counter()
        print("memory probes ...", end="", flush=True)
        measure_memory(results)
        print(f" {time.perf_counter() - t0:.1f} s", flush=True)

    print_results(results, modules)
    errs = [(res, row) for res in results for row in res["rows"] if row["error"]]
    if errs:
        print("\nerrors:")
        for res, row in errs:
            print(f"  {res['key']} {res['label']} {row['method']}: {row['error']}")
    fast = jax_faster(results)
    if fast:
        print("\nwhere JAX's jitted rewrite is faster than shadowad (steady state):")
        for res, j, by, comp, calls in fast:
            print(f"  {res['key']} {res['label']}: {by:.1f}x faster "
                  f"(compilation {fmt_time(comp)}, pays off after {calls_text(calls)})")
    tgts = targets(results)
    print("\ntargets:")
    for desc, meas, v in tgts:
        print(f"  {v:4s}  {desc}: {meas}")
    elapsed = time.perf_counter() - t_start
    docs = args.docs_dir or (None if args.only or args.no_docs else os.path.join(ROOT, "docs"))
    if docs:
        write_markdown(os.path.join(docs, "benchmarks.md"), results, modules, tgts, memory,
                       elapsed)
        write_plot(os.path.join(docs, "benchmarks.png"), results)
        print(f"\nwrote {os.path.join(docs, 'benchmarks.md')} and benchmarks.png")
    print(f"total {elapsed:.0f} s")
    bad = [res for res in results for row in res["rows"] if row.get("closed_form_ok") is False]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
