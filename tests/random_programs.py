"""Random straight-line in-place programs and the checks run on each of them.

Used by tests/test_random_programs.py (a few hundred programs through
hypothesis, deterministic) and by tests/fuzz.py (``make fuzz``: 10**4 programs
from a seeded generator, with mismatch rates and minimized reproducers).

A program is Python source: a function ``f(u, v, w, c, a)`` over two vectors
``u`` (Duplicated) and ``v`` (Duplicated or Const), a matrix ``w`` (Duplicated
or Const, C or Fortran order), a Const vector ``c`` and a float ``a`` (Active
or Const), built from instructions that each belong to one class
(``CLASSES``), so a class can be switched on or off and a failure can be
attributed to it.  Instructions address four vectors: ``u``, ``v``, the row
``w[1]`` and the column ``w[:, 2]`` (which share ``w[1, 2]``).  Two sizes:
n=6 with a 3x4 matrix, n=40 with a 6x8 matrix (long enough for strided views
that overtake each other), and n=10**4 with a 50x200 matrix, where the C
fast paths and the tiling and fusion thresholds are reached.

Generation goes through a small ``draw`` interface, implemented on top of
hypothesis (``HypothesisDraw``) and of a numpy Generator (``RngDraw``), so
the same generator serves shrinking hypothesis runs and fast seeded fuzzing.
"""
import dataclasses
import warnings

import numpy as np

import shadowad as sad
from shadowad import Active, Const, Duplicated
from shadowad.api import autodiff as driver
from shadowad.testing import (check_accumulate_once, check_dot_product, check_gradient,
    check_restore, same_bits)

# ---------------------------------------------------------------- sizes


@dataclasses.dataclass(frozen=True)
class Size:
    name: str
    n: int
    matrix: tuple

    @property
    def vectors(self):
        """Lengths of u, v, w[1], w[:, 2]."""
        return (self.n, self.n, self.matrix[1], self.matrix[0])


SMALL = Size("small", 6, (3, 4))
MEDIUM = Size("medium", 40, (6, 8))    # long enough for strided views that overtake each other
LARGE = Size("large", 10_000, (50, 200))
SIZES = {s.name: s for s in (SMALL, MEDIUM, LARGE)}

WHOLE = ("u", "v", "w[1]", "w[:, 2]")
VIEW = ("u[{}]", "v[{}]", "w[1, {}]", "w[{}, 2]")
RETURNS = (None, "u[0] * v[-1] + np.sin(w[1, 3]) * u[2]",
           "np.sum(np.sin(u) * v) + np.sum(w[1] * w[1])")

# ---------------------------------------------------------------- draws


class RngDraw:
    """Draws from a numpy Generator (tests/fuzz.py)."""

    def __init__(self, rng):
        self.rng = rng

    def int(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def coef(self):
        return round(float(self.rng.uniform(-1.5, 1.5)), 3)


class HypothesisDraw:
    """Draws through hypothesis' ``draw``, so failures shrink."""

    def __init__(self, draw):
        from hypothesis import strategies as st
        self.draw, self.st = draw, st

    def int(self, lo, hi):
        return self.draw(self.st.integers(lo, hi))

    def choice(self, seq):
        return self.draw(self.st.sampled_from(seq))

    def coef(self):
        return round(self.draw(self.st.floats(-1.5, 1.5, allow_nan=False)), 3)


# ---------------------------------------------------------------- building blocks


class Ctx:
    """What an instruction generator needs: the size and fresh names."""

    def __init__(self, size):
        self.size = size
        self.lens = size.vectors
        self.count = 0

    def fresh(self, stem):
        self.count += 1
        return f"{stem}{self.count}"


def fmt_slice(s):
    start, stop, step = s
    text = f"{start}:{'' if stop is None else stop}"
    return text if step == 1 else f"{text}:{step}"


def draw_len(d, most, long=False):
    """A length up to `most`: any for short vectors; for long ones mostly
    long (only long with `long`), so that the large-array code paths are reached."""
    if most <= 64:
        return d.int(1, most)
    return d.choice(sorted({most // 3, most // 2, most - 1, most} | (set() if long else {1, 3})))


def draw_slice(d, n, length):
    """A basic slice (start, stop, step) of an axis of size n with `length` elements."""
    steps = [s for s in (1, 2, 3, -1, -2) if abs(s) * (length - 1) < n]
    step = d.choice(steps)
    span = abs(step) * (length - 1)
    if step > 0:
        start = d.int(0, n - 1 - span)
        return (start, start + span + 1, step)
    start = d.int(span, n - 1)
    stop = start - span - 1
    return (start, None if stop < 0 else stop, step)


def view(k, s):
    return VIEW[k].format(fmt_slice(s))


def element(d, c):
    k = d.int(0, 3)
    return VIEW[k].format(d.int(-c.lens[k], c.lens[k] - 1))


def two_views(d, c, same=False, most=None):
    """Two equally long views (source, destination) as source text, and the
    length; with `same`, of the same vector (long ones at the large size, where
    they overlap)."""
    src = d.int(0, 3)
    dst = src if same else d.int(0, 3)
    top = min(c.lens[src], c.lens[dst])
    length = draw_len(d, top if most is None else min(top, most), long=same)
    ss = draw_slice(d, c.lens[src], length)
    ds = draw_slice(d, c.lens[dst], length)
    return view(src, ss), view(dst, ds), length, (src, ss, dst, ds)


SMOOTH = ("np.sin({x})", "np.cos({x})", "np.tanh({x})", "np.arctan({x})",
          "np.exp(np.sin({x}))", "{x} / (1.0 + {x} * {x})", "np.log1p({x} * {x})",
          "np.hypot({x}, 1.0)", "{x} * 1.0")
IN_PLACE = {"iadd": "{y} += {x}", "isub": "{y} -= 0.5 * {x}", "imul": "{y} *= {x}",
            "mul_out": "np.multiply({x}, {y}, out={y})", "add_out": "np.add({x}, {x}, out={y})",
            "sin_out": "np.sin({x}, out={y})", "tanh_out": "np.tanh({y}, out={y})"}
AUGMENTED = ("iadd", "isub", "imul")


def in_place(d, c, op, x, y):
    """y op= x, either on a view bound to a name (no __setitem__) or written
    as `a[s] op= x` (Python then also assigns the view back into itself)."""
    if op in AUGMENTED and d.int(0, 1):
        return [IN_PLACE[op].format(x=x, y=y)]
    t = c.fresh("y")
    return [f"{t} = {y}", IN_PLACE[op].format(x=x, y=t)]


# ---------------------------------------------------------------- instructions
# Each takes (draw, ctx) and returns the instruction's source lines.

def i_axpy(d, c):
    x, y, _, _ = two_views(d, c)
    return [f"sad.axpy({d.coef()!r}, {x}, {y})"]


def i_axpy_traced_a(d, c):
    e = element(d, c)
    x, y, _, _ = two_views(d, c)
    return [f"sad.axpy(0.5 * {e}, {x}, {y})"]


def i_axpy_scalar_x(d, c):
    return [f"sad.axpy({d.coef()!r}, {element(d, c)}, {WHOLE[d.int(0, 3)]})"]


def i_set_slice(d, c):
    x, _, _, (_, _, dst, ds) = two_views(d, c)
    fn = d.choice(SMOOTH)
    return [f"sad.setindex({WHOLE[dst]}, np.s_[{fmt_slice(ds)}], {fn.format(x=x)})"]


def i_set_int(d, c):
    e0, e1, e2 = element(d, c), element(d, c), element(d, c)
    return [f"{e0} = {e1} * {e2} + {d.coef()!r} * np.sin({e1})"]


def i_set_const(d, c):
    k = d.int(0, 3)
    return [f"sad.setindex({WHOLE[k]}, {d.int(-c.lens[k], c.lens[k] - 1)}, {d.coef()!r})"]


def i_set_fancy(d, c):
    # the source is u, always active: a Const v's or w's would be const_write's
    dst, src = d.int(0, 3), 0
    idx = [d.int(0, 2) for _ in range(d.int(1, 3))]
    return [f"{WHOLE[dst]}[{idx}] = np.tanh({WHOLE[src]}[:{len(idx)}])"]


def i_in_place(d, c):
    x, y, _, _ = two_views(d, c)
    return in_place(d, c, d.choice(sorted(IN_PLACE)), x, y)


def i_scal(d, c):
    return [f"sad.scal({d.coef()!r}, {WHOLE[d.int(0, 3)]})"]


def i_broadcast(d, c):
    return [f"{WHOLE[d.int(0, 3)]} *= np.cos({element(d, c)})"]


def i_matrix(d, c):
    """Two equally shaped 2-D basic views of w, possibly overlapping."""
    rows, cols = c.size.matrix
    r, k = draw_len(d, rows), draw_len(d, cols)
    b1 = f"w[{fmt_slice(draw_slice(d, rows, r))}, {fmt_slice(draw_slice(d, cols, k))}]"
    b2 = f"w[{fmt_slice(draw_slice(d, rows, r))}, {fmt_slice(draw_slice(d, cols, k))}]"
    op = d.choice(sorted(IN_PLACE) + ["axpy", "copy"])
    if op == "axpy":
        return [f"sad.axpy(0.75, {b1}, {b2})"]
    if op == "copy":
        return [f"{b2}[...] = {b1}"]
    return in_place(d, c, op, b1, b2)


def i_bcast_view(d, c):
    """A 1-element view broadcast over another view."""
    x, y, _, _ = two_views(d, c)
    return in_place(d, c, d.choice(["iadd", "imul"]), f"{x}[:1]", y)


# -- issue #13 item 1: plain scratch arrays mutated after a recorded op read them

SCRATCH_ALLOC = ("{s} = np.ones({shape})", "{s} = np.full({shape}, 1.5)",
                 "{s} = np.empty({shape})\n{s}[...] = 0.75",
                 "{s} = np.linspace(0.5, 1.5, {size}).reshape({shape})")
SCRATCH_MUTATE = ("{s}[...] = 2.0", "{s} *= 3.0", "{s}.fill(-0.5)",
                  "np.multiply({s}, 1.5, out={s})", "{s}.flat[0] = 7.0",
                  "{s}[:] = np.arange({size}).reshape({shape}) % 5 + 1.0")  # small: FD stays exact


def _scratch(d, c, shape, size):
    s = c.fresh("s" if len(shape) == 1 else "m")
    if len(shape) == 1 and d.int(0, 4) == 0:  # a global coefficient buffer
        alloc = f"{s} = G[:{size}]\n{s}[...] = 1.25"
    else:
        alloc = d.choice(SCRATCH_ALLOC)
    fmt = dict(s=s, shape=shape if len(shape) > 1 else shape[0], size=size)
    return s, alloc.format(**fmt).split("\n"), d.choice(SCRATCH_MUTATE).format(**fmt).split("\n")


def i_scratch(d, c):
    """s = plain buffer; t = op(x, s); s mutated; y += t (and maybe y += op(x, s) again)."""
    x, y, n, _ = two_views(d, c, most=64)
    use = d.choice(("mul", "div", "sin_mul", "scalar", "dot", "matmul", "rmatmul", "outer"))
    matrix = use in ("matmul", "rmatmul")
    s, alloc, mutate = _scratch(d, c, (n, n) if matrix else (n,), n * n if matrix else n)
    expr = {"mul": "{x} * {s}", "div": "{x} / {s}", "sin_mul": "np.sin({x}) * {s}",
            "scalar": "{e} * {s}", "dot": "np.dot({s}, {x})", "matmul": "{s} @ {x}",
            "rmatmul": "{x} @ {s}", "outer": "np.outer({s}, {x})[-1]"}[use]
    expr = expr.format(x=x, s=s, e=element(d, c) if use == "scalar" else None)
    t = c.fresh("t")
    lines = alloc + [f"{t} = {expr}"] + mutate + [f"{y} += {t}"]
    if d.int(0, 1):
        lines.append(f"{y} += {expr}")
    return lines


def i_scratch_stepper(d, c):
    """A time stepper reusing one plain work buffer each step."""
    x, y, n, _ = two_views(d, c, most=64)
    s = c.fresh("wk")
    matrix = d.int(0, 2) == 0
    shape = f"({n}, {n})" if matrix else f"{n}"
    use = f"{s} @ {x}" if matrix else d.choice(("{x} * {s}", "np.sin({x}) * {s}")).format(x=x, s=s)
    refill = d.choice(("{s}[...] = 0.5 * (step + 1)", "{s}.fill(1.0 / (step + 1))"))
    return [f"{s} = np.empty({shape})", "for step in range(3):",
            "    " + refill.format(s=s), f"    {y} += 0.5 * {use}"]


# -- issue #13 item 2: fancy-index, mask and setindex writes of Const values

def _const_values(d, c, m):
    a = d.int(0, c.size.n - m)
    return d.choice((f"c[{a}:{a + m}]", f"2.0 * c[{a}:{a + m}]", f"np.sin(c[{a}:{a + m}])",
                     f"c[{d.int(0, c.size.n - 1)}]", f"{d.coef()!r}",
                     f"np.array({[d.coef() for _ in range(m)]})",
                     f"np.tanh(w[:, 2][:{m}])"))  # inactive when w is Const


def i_const_fancy(d, c):
    k = d.int(0, 3)
    idx = [d.int(-c.lens[k], c.lens[k] - 1) for _ in range(d.int(1, 3))]
    index = d.choice((str(idx), f"np.array({idx})"))
    val = _const_values(d, c, len(idx))
    if d.int(0, 1):
        return [f"sad.setindex({WHOLE[k]}, {index}, {val})"]
    return [f"{WHOLE[k]}[{index}] = {val}"]


def i_const_mask(d, c):
    k = d.int(0, 3)
    m, n = c.fresh("mask"), c.lens[k]
    thr = round(d.coef() / 3, 3)
    # the mask compares the Const c (or, at small sizes, the array itself): finite
    # differences of 10**4 entries would flip one near the threshold
    a = d.int(0, c.size.n - n)
    cond = f"c[{a}:{a + n}] > {thr}" if n > 64 or d.int(0, 1) else f"{WHOLE[k]} > {thr}"
    if d.int(0, 1):  # a scalar broadcast into the selected entries
        val = d.choice((f"c[{d.int(0, c.size.n - 1)}]", f"{d.coef()!r}"))
        return [f"{m} = {cond}", f"{WHOLE[k]}[{m}] = {val}"]
    b = d.int(0, c.size.n - n)
    val = d.choice(("c[{a}:{b}][{m}]", "0.5 * c[{a}:{b}][{m}]")).format(a=b, b=b + n, m=m)
    return [f"{m} = {cond}", f"{WHOLE[k]}[{m}] = {val}"]


# -- issue #13 item 5: overlapping strided copies and in-place ufuncs with overlapping out

def i_overlap_copy(d, c):
    """A view copied over a view, of the same vector (they often overlap) or
    not: setitem, setindex, np.copyto, or a mask selecting the destination."""
    x, y, _, (k, _, dst, ds) = two_views(d, c, same=bool(d.int(0, 3)))
    form = d.int(0, 4)
    if form == 0:
        return [f"{y} = {x}"]
    if form == 1:
        t = c.fresh("y")
        return [f"{t} = {y}", f"{t}[...] = {x}"]
    if form == 2:
        return [f"np.copyto({y}, {x})"]
    if form == 3:
        m = c.fresh("mask")
        return [f"{m} = np.zeros({c.lens[dst]}, bool)",
                f"{m}[np.arange({c.lens[dst]})[{fmt_slice(ds)}]] = True",
                f"{WHOLE[dst]}[{m}] = {x}"]
    return [f"sad.setindex({WHOLE[dst]}, np.s_[{fmt_slice(ds)}], {x})"]


def i_overlap_ufunc(d, c):
    x, y, n, (k, _, _, _) = two_views(d, c, same=True)
    x2 = view(k, draw_slice(d, c.lens[k], n))
    op = d.choice(("np.add({x}, {x2}, out={y})", "np.subtract({x}, {x2}, out={y})",
                   "np.multiply({x}, {x2}, out={y})", "np.multiply({x}, 1.5, out={y})",
                   "np.sin({x}, out={y})", "{y} += {x}", "{y} *= {x}"))
    return [op.format(x=x, x2=x2, y=y)]


# -- issue #13 item 3: fmax / fmin with a NaN operand (the NaN side is constant)

def i_fmax_nan(d, c):
    x, y, n, _ = two_views(d, c)
    fn = d.choice(("np.fmax", "np.fmin"))
    lines = []
    form = d.int(0, 3)
    if form == 0:
        nan = "np.nan"
    elif form == 1:
        nan = f"np.full({n}, np.nan)"
    elif form == 2:
        nan = f"np.where(np.arange({n}) % 2 == 0, np.nan, 0.25)"
    else:  # a Const array with NaN entries
        nan, a = c.fresh("q"), d.int(0, c.size.n - n)
        lines = [f"{nan} = c[{a}:{a + n}] * 1.0", f"{nan}[::2] = np.nan"]  # float if c is not
    args = (x, nan) if d.int(0, 1) else (nan, x)
    if d.int(0, 1):
        return lines + [f"{fn}({args[0]}, {args[1]}, out={y})"]
    return lines + [f"{y} = {fn}({args[0]}, {args[1]})"]


def i_fmax_nan_scalar(d, c):
    fn = d.choice(("np.fmax", "np.fmin"))
    e0, e1 = element(d, c), element(d, c)
    args = (e1, "np.nan") if d.int(0, 1) else ("np.nan", e1)
    return [f"{e0} = {fn}({args[0]}, {args[1]})"]


# -- beyond the issue: the float argument a (an Active scalar: C scalar records)

def i_scalar(d, c):
    x, y, _, _ = two_views(d, c)
    return [d.choice((f"sad.axpy(a, {x}, {y})", f"{y} *= a", f"{y} += a * {x}",
                      f"{element(d, c)} = a * {element(d, c)} + np.sin(a)",
                      f"sad.scal(a, {WHOLE[d.int(0, 3)]})", f"{y}[...] = np.tanh(a * {x})",
                      f"sad.axpy(a * a, {x}, {y})", f"{y} /= 1.0 + a * a",
                      f"{y} += a ** 2 * {x}", f"np.multiply({x}, a, out={y})"))]


# -- issue #13 item 8: Const arrays that are float32 (traced, on the generic
# rules), float16, int64 or unaligned (the program's c), written with plain
# values inside f, restored and left as numpy does

def i_const_dtype(d, c):
    n = c.size.n
    m = d.int(1, min(n, 64))
    a = d.int(0, n - m)
    dst = f"c[{a}:{a + m}]"
    write = d.choice((f"{dst} = 3", f"{dst} *= 2", f"c[{d.int(0, n - 1)}] = -1",
                      f"{dst} += c[{d.int(0, n - m)}:][:{m}]", f"np.negative({dst}, out={dst})"))
    x, y, k, _ = two_views(d, c, most=m)
    return [write, f"{y} += 0.5 * c[{a}:{a + k}] * {x}"]


# -- beyond the issue: a NaN that is itself traced (its adjoint is zero)

def i_nan_traced(d, c):
    x, y, n, (src, _, _, _) = two_views(d, c)
    x2 = view(src, draw_slice(d, c.lens[src], n))
    q = c.fresh("q")
    fn = d.choice(("np.fmax", "np.fmin"))
    return [f"{q} = {x2} * np.nan", f"{y} = {fn}({q}, {x})"]


# -- beyond the issue: Const memory that receives an active value (promotion)

def i_promote(d, c):
    x, y, n, _ = two_views(d, c)
    a = d.int(0, c.size.n - n)
    dst = f"c[{a}:{a + n}]"
    write = d.choice((f"{dst} = {d.choice(SMOOTH).format(x=x)}",
                      f"sad.axpy(0.5, {x}, {dst})", f"{dst} *= {x}"))
    return [write, f"{y} += 2.0 * {dst}"]


# -- beyond the issue: expressions (the fusion of elementwise chains at n=10**4),
# reductions, and writes through views kept across other writes

UNARY = ("np.sin({a})", "np.cos({a})", "np.tanh({a})", "np.exp(np.sin({a}))",
         "np.sqrt(1.0 + {a} * {a})", "np.abs({a})", "{a} ** 2", "({a}) ** 3", "-{a}",
         "np.arctan({a})", "np.expm1(np.sin({a}))", "np.square({a})", "np.clip({a}, -0.5, 0.5)",
         "np.log1p({a} * {a})", "np.negative({a})", "np.sinh(np.sin({a}))")
BINARY = ("({a} + {b})", "({a} - {b})", "({a} * {b})", "{a} / (1.0 + {b} * {b})",
          "np.maximum({a}, {b})", "np.minimum({a}, {b})", "np.hypot({a}, {b})",
          "np.arctan2({a}, 1.0 + {b} * {b})", "np.where({a} > {b}, {a}, 2.0 * {b})",
          "np.fmax({a}, {b})", "np.multiply({a}, {b})", "np.add({a}, {b})")


def _expr(d, c, n, depth, array=True, top=False):
    """An elementwise expression of length-n views, traced scalars, Const
    slices and numbers; with `array`, at least one leaf is a length-n array;
    with `top`, an operation (a bare view would be the overlap class's copy)."""
    if depth == 0 or (not top and d.int(0, 3) == 0):
        leaf = d.int(2, 5) if array else d.int(0, 5)
        if leaf == 0:
            return element(d, c)
        if leaf == 1:
            return repr(d.coef())
        if leaf == 2:
            a = d.int(0, c.size.n - n)
            return f"c[{a}:{a + n}]"
        k = d.choice([k for k in range(4) if c.lens[k] >= n])
        return view(k, draw_slice(d, c.lens[k], n))
    if d.int(0, 1):
        return d.choice(UNARY).format(a=_expr(d, c, n, depth - 1, array))
    left = array and d.int(0, 1) == 0
    return d.choice(BINARY).format(a=_expr(d, c, n, depth - 1, left),
                                   b=_expr(d, c, n, depth - 1, array and not left))


def i_expr(d, c):
    k = d.int(0, 3)
    n = draw_len(d, c.lens[k])
    y = view(k, draw_slice(d, c.lens[k], n))
    e = _expr(d, c, n, d.int(1, 3), top=True)
    form = d.int(0, 3)
    if form == 0:
        return [f"{y} = {e}"]
    if form == 1:
        return [f"{y} += {e}"]
    if form == 2:
        return [f"np.multiply({e}, 0.5, out={y})"]
    t = c.fresh("y")
    return [f"{t} = {y}", f"{t}[...] = {e}"]


def i_reduce(d, c):
    k = d.int(0, 3)
    n = draw_len(d, c.lens[k])
    e = _expr(d, c, n, d.int(0, 2))
    x = view(k, draw_slice(d, c.lens[k], n))
    red = d.choice(("np.sum({e})", "np.mean({e})", "np.max({e})", "np.min({e})",
                    "np.dot({x}, {e})", "{x} @ ({e})", "np.sum({e} * {e}) * 0.1", "({e}).sum()"))
    return [f"{element(d, c)} {d.choice(('=', '+='))} {red.format(e=e, x=x)}"]


def i_matrix_ops(d, c):
    """w against the vectors: w @ x, x @ w, row and column sums."""
    rows, cols = c.size.matrix
    form = d.int(0, 3)
    if form == 0:
        x, y = view(2, draw_slice(d, cols, cols)), view(3, draw_slice(d, rows, rows))
        return [f"{d.choice(('u', 'v'))}[:{rows}] += 0.5 * (w @ {x})"]
    if form == 1:
        return [f"{d.choice(('u', 'v'))}[:{cols}] += 0.1 * (w[:, 2] @ w)"]
    if form == 2:
        return [f"{d.choice(('u', 'v'))}[:{cols}] += np.sum(np.sin(w), axis=0)"]
    return [f"w[:, 1] = np.sum(w * w, axis=1) * 0.1"]


def i_kept_view(d, c):
    """A view bound to a name, its memory written through another path, then
    read: the view must see the write."""
    x, y, n, (k, ss, _, _) = two_views(d, c)
    t = c.fresh("kept")
    write = d.choice((f"sad.setindex({WHOLE[k]}, {d.int(0, c.lens[k] - 1)}, 2.0 * {element(d, c)})",
                      f"{WHOLE[k]} *= 1.5",
                      f"sad.axpy(0.5, {element(d, c)}, {WHOLE[k]})",
                      f"{view(k, draw_slice(d, c.lens[k], n))} = np.cos({y})"))
    return [f"{t} = {x}", write, f"{y} += np.sin({t})"]


def i_reshaped(d, c):
    """Writes through transposed, reshaped and raveled views of w."""
    rows, cols = c.size.matrix
    r = d.int(0, cols - 1)
    return [d.choice((f"w.T[{r}] += np.sin(w.T[{(r + 1) % cols}])",
                      f"w.reshape(-1)[{d.int(0, rows * cols - 2)}::{d.int(1, 3)}] *= 0.5",
                      f"w.T[{r}, :] = w[:, {(r + 2) % cols}] * 0.5",
                      f"u.reshape(2, -1)[1] += np.tanh(v.reshape(2, -1)[0])",
                      f"w.ravel()[:{rows}] = np.exp(np.sin(u[:{rows}]))"))]


# -- issue #13 item 4: the edge-value conventions (a zero adjoint or tangent
# contributes nothing, even through an infinite partial; zero partials at the
# origin; x ** 0 is constant), which every engine must share

EDGE = ("np.sqrt({x} * 0.0) * 0.0", "({x} * 0.0) ** 0.5 * 0.0", "({x} * 0.0) ** 0.0",
        "np.arctan2({x} * 0.0, {x2} * 0.0)", "np.hypot({x} * 0.0, {x2} * 0.0)",
        "np.sqrt(np.abs({x}) * 0.0) * 0.0",
        # zeros with a nonzero tangent: sqrt's infinite partial meets a zero adjoint
        "np.sqrt({x} - sad.primal({x})) * 0.0", "np.sqrt({x} - sad.primal({x})) ** 2")


def i_edge(d, c):
    x, y, n, (src, _, _, _) = two_views(d, c)
    x2 = view(src, draw_slice(d, c.lens[src], n))
    return [f"{y} += {d.choice(EDGE).format(x=x, x2=x2)}"]


# -- beyond the issue: pure expressions differentiated by the nested engine
# (the inner call of forward-over-reverse) against the C engine: one
# convention in every engine (issue #13 item 4's class).  A program of this
# class is the single instruction `r = <scalar expression of x and y>` of
# g(x, y), and is checked by the "nested" check only.

N_UNARY = ("np.sin({a})", "np.cos({a})", "np.tanh({a})", "np.exp(np.sin({a}))",
           "np.sqrt(1.0 + {a} * {a})", "np.abs({a})", "{a} ** 2", "-{a}", "np.arctan({a})",
           "np.expm1(np.sin({a}))", "np.square({a})", "np.log1p({a} * {a})",
           "np.sinh(np.sin({a}))", "np.reciprocal(1.0 + {a} * {a})", "np.sqrt(np.abs({a}))",
           "np.sqrt({a} * 0.0)", "({a} * 0.0) ** 0.5", "np.where(np.arange({n}) % 2 == 0, "
           "np.sqrt(np.abs({a})), 0.0)")
N_BINARY = ("({a} + {b})", "({a} - {b})", "({a} * {b})", "{a} / (1.0 + {b} * {b})",
            "np.maximum({a}, {b})", "np.minimum({a}, {b})", "np.where({a} > {b}, {a}, 2.0 * {b})")
N_REDUCE = ("np.sum({e})", "np.mean({e})", "np.max({e})", "np.min({e})", "np.dot({x}, {e})")


def _nested_expr(d, n, depth, array=True):
    if depth == 0 or d.int(0, 3) == 0:
        leaf = d.int(1, 4) if array else d.int(0, 4)
        if leaf == 0:
            return f"{d.choice('xy')}[{d.int(0, n - 1)}]"
        if leaf == 1:
            return f"{d.choice('xy')}"
        if leaf == 2:
            return f"{d.choice('xy')}[::-1]"
        if leaf == 3:
            return f"({d.choice('xy')} * 0.0)"
        return f"{d.choice('xy')}[{d.int(0, n - 1)}] * {d.choice('xy')}"
    if d.int(0, 1):
        return d.choice(N_UNARY).format(a=_nested_expr(d, n, depth - 1, array), n=n)
    left = array and d.int(0, 1) == 0
    return d.choice(N_BINARY).format(a=_nested_expr(d, n, depth - 1, left),
                                     b=_nested_expr(d, n, depth - 1, array and not left))


def i_nested(d, c):
    n = min(c.size.n, 12)
    terms = [d.choice(N_REDUCE).format(e=_nested_expr(d, n, d.int(1, 3)), x=d.choice("xy"))
             for _ in range(d.int(1, 2))]
    return [f"r = {' + '.join(terms)}"]


CLASSES = {
    "base": {"axpy": i_axpy, "axpy_traced_a": i_axpy_traced_a, "axpy_scalar_x": i_axpy_scalar_x,
             "set_slice": i_set_slice, "set_int": i_set_int, "set_const": i_set_const,
             "set_fancy": i_set_fancy, "in_place": i_in_place, "scal": i_scal,
             "broadcast": i_broadcast, "matrix": i_matrix, "bcast_view": i_bcast_view},
    "scratch": {"scratch": i_scratch, "scratch_stepper": i_scratch_stepper},
    "const_write": {"const_fancy": i_const_fancy, "const_mask": i_const_mask},
    "overlap": {"overlap_copy": i_overlap_copy, "overlap_ufunc": i_overlap_ufunc},
    "fmax_nan": {"fmax_nan": i_fmax_nan, "fmax_nan_scalar": i_fmax_nan_scalar},
    "nan_traced": {"nan_traced": i_nan_traced},
    "promote": {"promote": i_promote},
    "expr": {"expr": i_expr, "reduce": i_reduce, "matrix_ops": i_matrix_ops},
    "views": {"kept_view": i_kept_view, "reshaped": i_reshaped},
    "edge": {"edge": i_edge},
    "scalar": {"scalar": i_scalar},
    "const_dtype": {"const_dtype": i_const_dtype},
    "nested": {"nested": i_nested},
}
ISSUE_ITEMS = {"scratch": 1, "const_write": 2, "fmax_nan": 3, "edge": 4, "overlap": 5,
               "const_dtype": 8}

# ---------------------------------------------------------------- programs


@dataclasses.dataclass(frozen=True)
class Instr:
    cls: str
    kind: str
    lines: tuple


@dataclasses.dataclass(frozen=True)
class Program:
    size: Size
    body: tuple
    ret: int        # index into RETURNS
    seed: int       # inputs and the checks' random seeds
    w_const: bool
    stop: int       # where the injected exception is raised
    v_const: bool = False    # v Const (promoted where it receives active values)
    w_fortran: bool = False  # w (and its shadow) in Fortran order
    a_active: bool = False   # the float a Active (else Const)
    zeros: bool = False      # nested programs: x and y with exact zeros
    c_kind: int = 0          # index into C_KINDS: the dtype and alignment of c

    @property
    def nested(self):
        return self.body[0].cls == "nested"

    @property
    def classes(self):
        return sorted({i.cls for i in self.body})

    @property
    def kinds(self):
        return sorted({i.kind for i in self.body})

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)


def generate(d, classes=tuple(CLASSES), size=SMALL, require=None, max_len=8):
    """A program drawing each instruction from a class chosen uniformly among
    `classes` (so a class with few kinds is not drowned); with `require`, at
    least one instruction comes from that class."""
    classes = sorted(classes)
    c = Ctx(size)
    if require == "nested" or classes == ["nested"] or (
            "nested" in classes and require is None and d.int(1, len(classes)) == 1):
        return Program(size, (Instr("nested", "nested", tuple(i_nested(d, c))),), 0,
                       d.int(0, 2 ** 16), True, 0, zeros=bool(d.int(0, 1)))
    classes = [k for k in classes if k != "nested"]
    count = d.int(1, max_len)
    forced = d.int(0, count - 1) if require else -1
    body = []
    for i in range(count):
        cls = require if i == forced else d.choice(classes)
        kind = d.choice(sorted(CLASSES[cls]))
        body.append(Instr(cls, kind, tuple(CLASSES[cls][kind](d, c))))
    c_kind = d.int(0, len(C_KINDS) - 1) if "const_dtype" in classes else 0
    if any(i.cls == "promote" for i in body):
        # an active value written into a float16, int64 or unaligned Const is refused
        # (tests/test_untraced_consts.py): only float64 c is promoted here
        c_kind = 0
    return Program(size, tuple(body), d.int(0, len(RETURNS) - 1), d.int(0, 2 ** 16),
                   bool(d.int(0, 1)), d.int(0, count), d.int(0, 3) == 0, d.int(0, 3) == 0,
                   d.int(0, 3) > 0, c_kind=c_kind)


def seeded_program(seed, i, classes=tuple(CLASSES), size=SMALL, require=None):
    """Program i of the run `seed` (numpy's Generator seeded with (seed, i))."""
    return generate(RngDraw(np.random.default_rng([seed, i])), classes, size, require)


def programs(classes=tuple(CLASSES), size=SMALL, require=None):
    """The hypothesis strategy of `generate`."""
    from hypothesis import strategies as st
    return st.composite(lambda draw: generate(HypothesisDraw(draw), classes, size, require))()


class Stop(Exception):
    """The exception injected into a program."""


def source(prog, stop=False):
    """f as Python source; with stop, `raise Stop` before instruction prog.stop."""
    if prog.nested:
        return f"def g(x, y):\n    {prog.body[0].lines[0]}\n    return r\n"
    body = [line for ins in prog.body for line in ins.lines]
    if stop:
        at = sum(len(ins.lines) for ins in prog.body[:prog.stop])
        body.insert(at, 'raise Stop("injected")')
    ret = RETURNS[prog.ret]
    body.append("return" if ret is None else f"return {ret}")
    return "def f(u, v, w, c, a):\n" + "".join(f"    {line}\n" for line in body)


def compile_program(prog, stop=False):
    ns = {"np": np, "sad": sad, "Stop": Stop, "G": np.zeros(prog.size.n)}
    exec(compile(source(prog, stop), "<random program>", "exec"), ns)
    return ns["g" if prog.nested else "f"]


def inputs(prog):
    """The plain values of u, v, w, c, a (x, y for a nested program)."""
    rng = np.random.default_rng(prog.seed)
    if prog.nested:
        n = min(prog.size.n, 12)
        x, y = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
        if prog.zeros:
            x[::3] = 0.0
            y[1::4] = 0.0
        return [x, y]
    n, shape = prog.size.n, prog.size.matrix
    u, v, w, c = (rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(-1, 1, shape),
                  rng.uniform(-1, 1, n))
    a = round(float(rng.uniform(0.5, 1.5)), 3)
    return [u, v, np.asfortranarray(w) if prog.w_fortran else w, C_KINDS[prog.c_kind][1](c), a]


def annotate(prog, vals):
    if prog.nested:
        return [Active(v) for v in vals]
    u, v, w, c, a = vals
    return [Duplicated(u, np.zeros_like(u)),
            Const(v) if prog.v_const else Duplicated(v, np.zeros_like(v)),
            Const(w) if prog.w_const else Duplicated(w, np.zeros_like(w)), Const(c),
            Active(a) if prog.a_active else Const(a)]


def args_source(prog):
    if prog.nested:
        zeros = "x[::3] = 0.0\ny[1::4] = 0.0\n" if prog.zeros else ""
        n = min(prog.size.n, 12)
        return (f"rng = np.random.default_rng({prog.seed})\n"
                f"x, y = rng.uniform(-1, 1, {n}), rng.uniform(-1, 1, {n})\n{zeros}"
                f"args = [Active(x), Active(y)]\n")
    n, shape = prog.size.n, prog.size.matrix
    v = "Const(v)" if prog.v_const else "Duplicated(v, np.zeros_like(v))"
    w = "Const(w)" if prog.w_const else "Duplicated(w, np.zeros_like(w))"
    fortran = "w = np.asfortranarray(w)\n" if prog.w_fortran else ""
    a = "Active(a)" if prog.a_active else "Const(a)"
    return (f"rng = np.random.default_rng({prog.seed})\n"
            f"u, v = rng.uniform(-1, 1, {n}), rng.uniform(-1, 1, {n})\n"
            f"w, c = rng.uniform(-1, 1, {shape}), rng.uniform(-1, 1, {n})\n{fortran}"
            f"{C_KINDS[prog.c_kind][2]}"
            f"a = round(float(rng.uniform(0.5, 1.5)), 3)\n"
            f"args = [Duplicated(u, np.zeros_like(u)), {v}, {w}, Const(c), {a}]\n")


def unaligned(x):
    """A copy of the 1-D float64 x in memory that is not 8-byte aligned."""
    out = np.zeros(x.size * 8 + 1, np.uint8)[1:].view(np.float64)
    out[...] = x
    return out


# c's kinds: (name, from the float64 draw, the reproducer's line)
C_KINDS = (("float64", lambda c: c, ""),
           ("float32", lambda c: c.astype(np.float32), "c = c.astype(np.float32)\n"),
           ("float16", lambda c: c.astype(np.float16), "c = c.astype(np.float16)\n"),
           ("int64", lambda c: np.round(4 * c).astype(np.int64),
            "c = np.round(4 * c).astype(np.int64)\n"),
           ("unaligned", unaligned, "from random_programs import unaligned\nc = unaligned(c)\n"))


# ---------------------------------------------------------------- checks
# Each check takes (f, args, seed) and raises AssertionError on a mismatch;
# the checks of shadowad.testing work on copies of args, so do these.

def _val(a):
    """A copy of an annotation's value (K: a Fortran-ordered w stays so; an
    unaligned c stays unaligned)."""
    if isinstance(a.val, float):
        return a.val
    if not a.val.flags.aligned:
        return unaligned(a.val)
    return a.val.copy(order="K")


def _copies(args):
    return [Duplicated(_val(a), a.dval.copy(order="K")) if isinstance(a, Duplicated)
            else type(a)(_val(a)) for a in args]


def _live(a):
    return isinstance(a, (Duplicated, Active))


def _random_like(a, rng):
    """A random tangent or seed for a differentiated argument, else None."""
    if not _live(a):
        return None
    return float(rng.standard_normal()) if isinstance(a.val, float) \
        else rng.standard_normal(a.val.shape)


def _copy_tangent(t):
    return t if isinstance(t, float) else t.copy()


def _forward_args(args, tangents):
    """Forward-mode annotations: differentiated arguments (Active scalars too)
    as Duplicated with the given tangents, the rest Const."""
    return [Const(_val(a)) if t is None else Duplicated(_val(a), _copy_tangent(t))
            for a, t in zip(args, tangents)]


def _arrays(args):
    return [k for k, a in enumerate(args) if not isinstance(a.val, float)]


def _bits_equal(what, got, want, whose="the untraced call's"):
    if same_bits(got, want):
        return
    got, want = np.asarray(got), np.asarray(want)
    if got.shape == want.shape and got.ndim:
        bits = np.dtype(f"u{got.itemsize}")
        where = np.argwhere(got.view(bits) != want.view(bits)) if got.dtype == want.dtype \
            else np.argwhere(np.ones(got.shape, bool))
        at = [tuple(int(i) for i in ix) for ix in where[:6]]
        raise AssertionError(f"{what} {len(where)} entries that differ from {whose}; at "
                             f"{at}: {[float(got[i]) for i in at]} instead of "
                             f"{[float(want[i]) for i in at]}")
    raise AssertionError(f"{what}:\n{got!r}\ninstead of {whose}\n{want!r}")


def _result(r):
    return np.float64(np.nan if r is None else r)


def _directional(f, args, seed):
    """(seeds of the final states, direction, central difference of
    L = result + sum <seed, final state> along the direction)."""
    rng = np.random.default_rng(seed)
    seeds = [rng.standard_normal(a.val.shape) if isinstance(a, Duplicated) else None for a in args]
    dirs = [_random_like(a, rng) for a in args]

    def objective(step):
        vals = [_val(a) for a in args]
        for k, d in enumerate(dirs):
            if isinstance(d, float):
                vals[k] += step * d
            elif d is not None:
                vals[k] += step * d  # in place: the layout is kept
        r = f(*vals)
        return (0.0 if r is None else float(r)) + sum(
            float(np.vdot(s, x)) for s, x in zip(seeds, vals) if s is not None)
    h = 1e-6
    fd = (objective(h) - objective(-h)) / (2 * h)
    # a kink (a mask, np.where, abs) within h of one of 10**4 entries makes the
    # difference meaningless; two step sizes that disagree reveal it (then None)
    half = (objective(h / 2) - objective(-h / 2)) / h
    smooth = abs(fd - half) <= 1e-5 * max(abs(fd), 1.0)
    return seeds, dirs, fd if smooth else None


def _close_to_fd(what, got, terms, fd):
    if fd is None:
        return  # not differentiable along this direction at this point
    scale = max(abs(fd), np.nan_to_num(sum(terms)), 1.0)
    if not abs(got - fd) <= 1e-5 * scale:  # a NaN fails
        raise AssertionError(f"{what} {got!r} but finite differences give {fd!r}")


def check_fd(f, args, seed):
    """Reverse mode against central differences of every entry (small programs)."""
    check_gradient(f, *args, seed=seed, rtol=1e-5, atol=1e-7)


def check_fd_direction(f, args, seed):
    """Reverse mode against central differences along one random direction."""
    seeds, dirs, fd = _directional(f, args, seed)
    runs = _copies(args)
    for a, s in zip(runs, seeds):
        if s is not None:
            a.dval[...] = s
    grads = sad.autodiff(f, *runs)
    terms = [np.asarray(g if isinstance(a, Active) else a.dval) * d
             for a, g, d in zip(runs, grads, dirs) if d is not None]
    _close_to_fd("reverse mode: <gradient, direction> is", float(sum(np.sum(t) for t in terms)),
                 [float(np.sum(np.abs(t))) for t in terms], fd)


def check_forward_fd(f, args, seed):
    """Forward mode against central differences along one random direction."""
    seeds, dirs, fd = _directional(f, args, seed)
    runs = _forward_args(args, dirs)
    rdot = sad.autodiff(f, *runs, mode=sad.Forward)
    terms = [0.0 if rdot is None else float(rdot)]
    terms += [float(np.vdot(s, a.dval)) for s, a in zip(seeds, runs) if s is not None]
    _close_to_fd("forward mode: the directional derivative is", sum(terms),
                 [abs(t) for t in terms], fd)


def check_bits(f, args, seed):
    """Reverse, forward and split mode leave the untraced call's values and
    return its result, bit for bit."""
    plain = [_val(a) for a in args]
    want = _result(f(*plain))
    rng = np.random.default_rng(seed)
    runs = _copies(args)
    _, res = sad.autodiff(f, *runs, mode=sad.ReverseWithPrimal)
    _bits_equal("reverse mode returns", _result(res), want)
    for k, (a, p) in enumerate(zip(runs, plain)):
        _bits_equal(f"reverse mode leaves argument {k}", a.val, p)
    runs = _forward_args(args, [_random_like(a, rng) for a in args])
    _, res = sad.autodiff(f, *runs, mode=sad.ForwardWithPrimal)
    _bits_equal("forward mode returns", _result(res), want)
    for k, (a, p) in enumerate(zip(runs, plain)):
        _bits_equal(f"forward mode leaves argument {k}", a.val, p)
    runs = _copies(args)
    res, tape = sad.autodiff_split(f, *runs)
    _bits_equal("autodiff_split returns", _result(res), want)
    for k, (a, p) in enumerate(zip(runs, plain)):
        _bits_equal(f"autodiff_split leaves argument {k}", a.val, p)
    tape.reverse()
    for k, (a, p) in enumerate(zip(runs, plain)):
        _bits_equal(f"after tape.reverse() argument {k}", a.val, p)


def check_restore_all(f, args, seed):
    """restore=True (autodiff, a split tape, forward mode) puts every primal
    back bit for bit; the default leaves the untraced call's values
    (shadowad.testing); in forward mode restore=True leaves the tangents of
    a call without it."""
    check_restore(f, *args)
    runs = _copies(args)
    _, tape = sad.autodiff_split(f, *runs)
    tape.reverse(restore=True)
    for k, (a, b) in enumerate(zip(runs, args)):
        _bits_equal(f"tape.reverse(restore=True) leaves argument {k}", a.val, b.val,
                    "its value before the call")
    rng = np.random.default_rng(seed)
    tangents = [_random_like(a, rng) for a in args]
    outs = []
    for restore in (True, False):
        runs = _forward_args(args, tangents)
        outs.append((sad.autodiff(f, *runs, mode=sad.Forward, restore=restore), runs))
    (t_restored, restored), (t_plain, plain) = outs
    for k, (a, b) in enumerate(zip(restored, args)):
        _bits_equal(f"forward mode with restore=True leaves argument {k}", a.val, b.val,
                    "its value before the call")
    _bits_equal("forward mode with restore=True: the result's tangent", _result(t_restored),
                _result(t_plain), "that of a call without restore")
    for k, (a, b) in enumerate(zip(restored, plain)):
        if isinstance(a, Duplicated):
            _bits_equal(f"forward mode with restore=True: the tangent of argument {k}",
                        a.dval, b.dval, "that of a call without restore")


def check_exception(f, args, seed):
    """f raises Stop half-way: in reverse, split and forward mode every primal
    is restored bit for bit and every shadow (tangent) is untouched."""
    rng = np.random.default_rng(seed)
    for mode in ("reverse", "split", "forward"):
        if mode == "forward":
            runs = _forward_args(args, [_random_like(a, rng) for a in args])
        else:
            runs = [Duplicated(_val(a), rng.standard_normal(a.val.shape))
                    if isinstance(a, Duplicated) else type(a)(_val(a)) for a in args]
        shadows = [_copy_tangent(a.dval) if isinstance(a, Duplicated) else None for a in runs]
        try:
            if mode == "reverse":
                sad.autodiff(f, *runs)
            elif mode == "split":
                sad.autodiff_split(f, *runs)
            else:
                sad.autodiff(f, *runs, mode=sad.Forward)
        except Stop:
            pass
        else:
            raise AssertionError(f"{mode} mode: f did not raise")
        for k, (a, b, s) in enumerate(zip(runs, args, shadows)):
            _bits_equal(f"{mode} mode, after the exception, argument {k}", a.val, b.val,
                        "its value before the call")
            if s is not None:
                _bits_equal(f"{mode} mode, after the exception, the shadow of argument {k}",
                            a.dval, s, "its value before the call")


def check_dot(f, args, seed):
    """<J xdot, ybar> == <xdot, J^T ybar>, forward against reverse mode."""
    check_dot_product(f, *args, seed=seed, rtol=1e-12 if args[0].val.size < 100 else 1e-10)


def check_accumulate(f, args, seed):
    check_accumulate_once(f, *args, seed=seed)


def check_final_copy(f, args, seed):
    """The final values put back by a copy of the written memory
    (driver.FINAL_COPY_RATIO 0) and by the last redo (inf) are the same bits,
    and so are the gradients."""
    def run_with(ratio):
        saved, driver.FINAL_COPY_RATIO = driver.FINAL_COPY_RATIO, ratio
        try:
            runs = _copies(args)
            grads = sad.autodiff(f, *runs)
        finally:
            driver.FINAL_COPY_RATIO = saved
        return ([a.val for a in runs] + [a.dval for a in runs if isinstance(a, Duplicated)]
                + [g for g in grads if g is not None])
    for k, (a, b) in enumerate(zip(run_with(0.0), run_with(float("inf")))):
        _bits_equal(f"array {k}: the final copy leaves", a, b, "the last redo's")


def _close(what, got, want):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-12, atol=1e-14):
        raise AssertionError(f"{what}:\n{got!r}\nbut\n{want!r}")


def check_batch(f, args, seed):
    """Two BatchDuplicated lanes give what two one-lane calls give, in forward
    mode (tangents) and in reverse mode (gradients), and the primal effects of
    an untraced call."""
    rng = np.random.default_rng(seed)
    plain = [_val(a) for a in args]
    f(*plain)
    for mode in (sad.Forward, sad.Reverse):
        name = "forward" if mode is sad.Forward else "reverse"
        lanes = [[_random_like(a, rng) if isinstance(a, Duplicated) or mode is sad.Forward
                  else None for a in args] for _ in range(2)]
        batch = []
        for k, a in enumerate(args):
            if lanes[0][k] is None:
                batch.append(type(a)(_val(a)) if isinstance(a, Active) else Const(_val(a)))
            else:
                batch.append(sad.BatchDuplicated(_val(a), tuple(_copy_tangent(lane[k])
                                                                for lane in lanes)))
        got = sad.autodiff(f, *batch, mode=mode)
        for k, p in enumerate(plain):
            _bits_equal(f"{name} batch mode leaves argument {k}", batch[k].val, p)
        for i, lane in enumerate(lanes):
            one = [Duplicated(_val(a), _copy_tangent(t)) if t is not None
                   else type(a)(_val(a)) if isinstance(a, Active) else Const(_val(a))
                   for a, t in zip(args, lane)]
            want = sad.autodiff(f, *one, mode=mode)
            if mode is sad.Forward and want is not None:
                _close(f"forward batch lane {i}: the result's tangent is", got[i], want)
            for k, a in enumerate(one):
                if isinstance(a, Duplicated) and not isinstance(a.val, float):
                    _close(f"{name} batch lane {i}: the shadow of argument {k} is",
                           batch[k].dvals[i], a.dval)
                elif isinstance(a, Active):
                    _close(f"reverse batch lane {i}: the gradient of argument {k} is",
                           got[k][i], want[k])


def check_jacobian(f, args, seed):
    """sad.jacobian of x -> (u, v after f(u, v, w, c, a)) with (u, v) = x and
    w, c, a Const: forward and reverse mode agree and match finite
    differences, and every argument is left as it was."""
    u, v, w, c, a = (x.val for x in args)
    n = u.size

    def g(x, w, c, a):
        f(x[:n], x[n:], w, c, a)
        return x * 1.0
    x = np.concatenate((u, v))
    before = [z.copy() for z in (x, w, c)]
    jf = sad.jacobian(g, x, Const(w), Const(c), Const(a), mode=sad.Forward)
    jr = sad.jacobian(g, x, Const(w), Const(c), Const(a), mode=sad.Reverse)
    for k, (y, b) in enumerate(zip((x, w, c), before)):
        _bits_equal(f"sad.jacobian leaves argument {k}", y, b, "its value before the call")
    if not np.allclose(jf, jr, rtol=1e-10, atol=1e-12):
        raise AssertionError(f"sad.jacobian: forward mode gives\n{jf!r}\nreverse mode\n{jr!r}")
    def differences(scale):
        fd = np.zeros_like(jr)
        for i in range(x.size):
            h = scale * max(1.0, abs(x[i]))
            step = np.zeros_like(x)
            step[i] = h
            plus = g(x + step, w.copy(order="K"), c.copy(), a)  # K: ravel of a Fortran w copies
            minus = g(x - step, w.copy(order="K"), c.copy(), a)
            fd[:, i] = (plus - minus) / (2 * h)
        return fd
    fd = differences(1e-6)
    # where they disagree, the differences' own error (the step halved) is allowed too
    if not np.allclose(jr, fd, rtol=1e-5, atol=1e-7):
        half = differences(5e-7)
        error = np.abs(fd - half)
        if np.all(np.abs(jr - half) <= 1e-7 + 1e-5 * np.abs(half) + 4 * error):
            return
        raise AssertionError(f"sad.jacobian (reverse mode) gives\n{jr!r}\n"
                             f"finite differences give\n{fd!r}")


def check_nested(g, args, seed):
    """g(x, y) -> scalar: its gradient by the nested engine (the inner call of
    forward over reverse) equals the C engine's (NaN where it has NaN), and
    where it is finite and smooth, the Hessian-vector product matches central
    differences of the C engine's gradient."""
    x, y = (a.val for a in args)
    want = sad.autodiff(g, Active(x.copy()), Active(y.copy()))

    def outer(x, y, gx, gy):
        a, b = sad.autodiff(g, Active(x), Active(y))
        gx[...] = a
        gy[...] = b
    rng = np.random.default_rng(seed)
    vx, vy = rng.standard_normal(x.shape), rng.standard_normal(y.shape)
    gx, gy, hx, hy = (np.zeros_like(x) for _ in range(4))
    sad.autodiff(outer, Duplicated(x.copy(), vx.copy()), Duplicated(y.copy(), vy.copy()),
                 Duplicated(gx, hx), Duplicated(gy, hy), mode=sad.Forward)
    for name, got, w in (("x", gx, want[0]), ("y", gy, want[1])):
        if not np.allclose(got, w, rtol=1e-12, atol=1e-14, equal_nan=True):
            raise AssertionError(f"the gradient in {name}: the nested engine gives\n{got!r}\n"
                                 f"the C engine\n{w!r}")
    if (x == 0).any() or (y == 0).any() or not all(np.isfinite(w).all() for w in want):
        return  # kinks at exact zeros: no finite differences there
    h = 1e-6

    def grad_at(step):
        return sad.autodiff(g, Active(x + step * vx), Active(y + step * vy))
    plus, minus = grad_at(h), grad_at(-h)
    for name, got, p, m in (("x", hx, plus[0], minus[0]), ("y", hy, plus[1], minus[1])):
        fd = (p - m) / (2 * h)
        if not np.allclose(got, fd, rtol=1e-4, atol=1e-6):
            raise AssertionError(f"the Hessian-vector product in {name}: forward over "
                                 f"reverse gives\n{got!r}\nfinite differences of the "
                                 f"gradient\n{fd!r}")


# name -> (check, sizes it runs on, whether f raises Stop)
def _single(a):
    """Annotation a with its float64 arrays (value and shadow) in float32."""
    def down(x):
        return x.astype(np.float32) if isinstance(x, np.ndarray) and x.dtype == np.float64 else x
    if isinstance(a, Duplicated):
        return Duplicated(down(_val(a)), down(a.dval.copy(order="K")))
    return type(a)(down(_val(a)))


def check_float32(f, args, seed):
    """The program on float32 arrays (docs/float32.md): reverse mode leaves
    and returns numpy's float32 values bit for bit, its gradients are
    float32, and they agree with the float64 program's where that one's are
    well conditioned (float32 rounding differs by 1e-7 relative per
    operation, so the comparison is loose: it catches a wrong formula, not
    rounding)."""
    args32 = [_single(a) for a in args]
    # an Active float is a traced scalar, which computes as an np.float64 does
    # (docs/float32.md): strong beside float32 arrays, where a Python float is weak
    plain = [np.float64(a.val) if isinstance(a, Active) and isinstance(a.val, float) else _val(a)
             for a in args32]
    with np.errstate(all="ignore"):
        want = f(*plain)
    runs = _copies(args32)
    grads, res = sad.autodiff(f, *runs, mode=sad.ReverseWithPrimal)
    if want is not None:
        if not same_bits(np.asarray(res), np.asarray(want)) or np.asarray(res).dtype != np.asarray(want).dtype:
            raise AssertionError(f"float32: reverse mode returns {res!r}, numpy {want!r}")
    for k, (a, p) in enumerate(zip(runs, plain)):
        _bits_equal(f"float32: reverse mode leaves argument {k}", a.val, p)
    # forward mode: numpy's values too, and the directional derivative of the
    # result close to the float64 program's
    rng = np.random.default_rng(seed)
    dirs = [_random_like(a, rng) for a in args]
    down = [None if d is None else d if isinstance(d, float) else d.astype(np.float32)
            for d in dirs]
    fruns = _forward_args(args32, down)
    t32, res = sad.autodiff(f, *fruns, mode=sad.ForwardWithPrimal)
    if want is not None and not same_bits(np.asarray(res), np.asarray(want)):
        raise AssertionError(f"float32: forward mode returns {res!r}, numpy {want!r}")
    for k, (a, p) in enumerate(zip(fruns, plain)):
        _bits_equal(f"float32: forward mode leaves argument {k}", a.val, p)
    t64 = sad.autodiff(f, *_forward_args(args, dirs), mode=sad.Forward)
    if t64 is not None and np.isfinite(t64) and abs(t64) < 1e6:
        if not abs(float(t32) - float(t64)) <= 1e-2 * max(1.0, abs(float(t64))):
            raise AssertionError(f"float32: forward mode's tangent {t32!r}, float64's {t64!r}")
    runs64 = _copies(args)
    grads64 = sad.autodiff(f, *runs64)
    for k, (a, b, g, g64) in enumerate(zip(runs, runs64, grads, grads64)):
        got = np.asarray(g if isinstance(a, Active) else getattr(a, "dval", None), dtype=float) \
            if _live(a) else None
        ref = np.asarray(g64 if isinstance(b, Active) else getattr(b, "dval", None), dtype=float) \
            if _live(b) else None
        if got is None:
            continue
        if isinstance(a, Duplicated) and a.dval.dtype != np.float32:
            raise AssertionError(f"float32: argument {k}'s gradient is {a.dval.dtype}")
        scale = np.nanmax(np.abs(ref), initial=1.0)
        ok = np.abs(got - ref) <= 1e-2 * scale
        finite = np.isfinite(ref) & (np.abs(ref) < 1e6)
        if not np.all(ok | ~finite):
            at = np.argwhere(~(ok | ~finite))[:4].tolist()
            raise AssertionError(f"float32: argument {k}'s gradient differs from float64's at "
                                 f"{at}: {got[tuple(np.array(at).T)]} instead of "
                                 f"{ref[tuple(np.array(at).T)]}")


CHECKS = {
    "fd": (check_fd, ("small", "medium"), False),
    "fd_direction": (check_fd_direction, ("small", "medium", "large"), False),
    "forward_fd": (check_forward_fd, ("small", "medium", "large"), False),
    "bits": (check_bits, ("small", "medium", "large"), False),
    "restore": (check_restore_all, ("small", "medium", "large"), False),
    "exception": (check_exception, ("small", "medium", "large"), True),
    "dot": (check_dot, ("small", "medium", "large"), False),
    "accumulate": (check_accumulate, ("small", "medium", "large"), False),
    "final_copy": (check_final_copy, ("small", "medium", "large"), False),
    "batch": (check_batch, ("small", "medium", "large"), False),
    "jacobian": (check_jacobian, ("small", "medium"), False),
    "nested": (check_nested, ("small", "medium", "large"), False),
    "float32": (check_float32, ("small", "medium"), False),
}


class InvalidProgram(Exception):
    """The untraced program itself fails: a generator bug, not a mismatch."""


def run_check(prog, name):
    """None if check `name` passes on prog, else the failure's message."""
    check, _, stop = CHECKS[name]
    f = compile_program(prog, stop=stop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            check(f, annotate(prog, inputs(prog)), prog.seed)
        except AssertionError as e:
            return f"AssertionError: {e}"
        except Exception as e:  # noqa: BLE001 -- any exception the untraced call lacks is a bug
            return f"{type(e).__name__}: {e}"
    return None


def validate(prog):
    """Raise InvalidProgram if the untraced program fails or is not finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vals = inputs(prog)
        try:
            r = compile_program(prog)(*vals)
        except Exception as e:
            raise InvalidProgram(f"{type(e).__name__}: {e}\n{source(prog)}") from e
    if not (np.isfinite(_result(r)) or r is None) or not all(np.isfinite(v).all() for v in vals):
        raise InvalidProgram(f"non-finite values\n{source(prog)}")


def checks_for(prog, names=None):
    return [n for n in (names or CHECKS) if prog.size.name in CHECKS[n][1]
            and (n == "nested") == prog.nested]


def run_checks(prog, names=None):
    """{check name: failure message} of the checks that fail on prog."""
    validate(prog)
    out = {}
    for name in checks_for(prog, names):
        msg = run_check(prog, name)
        if msg is not None:
            out[name] = msg
    return out


def shrink(prog, name, budget=300):
    """A shorter program on which check `name` still fails: drop instructions
    one at a time, then simplify the return value and the matrix' activity."""
    def still_fails(p):
        nonlocal budget
        if budget <= 0:
            return False
        budget -= 1
        try:
            validate(p)
        except InvalidProgram:
            return False
        return run_check(p, name) is not None

    changed = True
    while changed:
        changed = False
        for i in reversed(range(len(prog.body))):
            if len(prog.body) == 1:
                break
            body = prog.body[:i] + prog.body[i + 1:]
            trial = prog.replace(body=body, stop=min(prog.stop, len(body)))
            if name == "exception" and i < prog.stop:
                trial = trial.replace(stop=prog.stop - 1)
            if still_fails(trial):
                prog, changed = trial, True
    for field, value in (("ret", 0), ("ret", 1), ("w_const", True), ("v_const", False),
                         ("w_fortran", False), ("a_active", False), ("zeros", False),
                         ("c_kind", 0)):
        if getattr(prog, field) != value and still_fails(prog.replace(**{field: value})):
            prog = prog.replace(**{field: value})
    return prog


def reproducer(prog, name, message=None):
    """The failing program as a runnable Python snippet (run from the
    repository root) with the failure's message."""
    if message is None:
        message = run_check(prog, name)
    classes = ", ".join(f"{c} (issue #13 item {ISSUE_ITEMS[c]})" if c in ISSUE_ITEMS
                        else f"{c} (NEW)" for c in prog.classes)
    text = (f"# check {name!r} fails; size {prog.size.name}; instruction classes: {classes}\n"
            "import sys; sys.path.insert(0, 'tests')\n"
            "import numpy as np\nimport shadowad as sad\nfrom shadowad import Active, Const, Duplicated\n"
            "from random_programs import CHECKS, Stop\n")
    if "G[" in source(prog):
        text += f"G = np.zeros({prog.size.n})\n"
    text += source(prog, stop=CHECKS[name][2]) + args_source(prog)
    text += f"CHECKS[{name!r}][0]({'g' if prog.nested else 'f'}, args, seed={prog.seed})\n"
    lines = message.splitlines()
    if len(lines) > 24:
        lines = lines[:24] + ["..."]
    return text + "".join(f"# {line}\n" for line in lines)
