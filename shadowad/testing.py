"""Checkers for derivative rules, shipped so users can run them on their own code.

All checkers take ``f`` and annotated arguments exactly as ``autodiff`` does,
work on copies (the caller's arrays are not touched), and raise
``AssertionError`` with a message that says what went wrong.

* ``check_gradient``  -- reverse mode against central finite differences, with
  random seeds in the shadows of Duplicated arguments.
* ``check_restore``   -- ``restore=True`` puts every primal back bit for bit,
  and the default leaves exactly what an untraced call of ``f`` leaves.
* ``check_accumulate_once`` -- pre-filled shadows are accumulated exactly once
  (the sweep is linear in its seeds and never counts an adjoint twice).
* ``check_failure_atomic`` -- if ``f`` raises half-way, primals are restored bit
  for bit and shadows are untouched.
* ``check_dot_product`` -- forward and reverse mode are transposes of each
  other: <J xdot, ybar> == <xdot, J^T ybar> for random xdot and ybar.
* ``check_forward`` -- forward mode against central finite differences (the
  result's tangent and the output tangents of mutated arrays), the dot-product
  test, and k batch lanes against k one-lane calls.
* ``check_rule`` -- the checks every primitive gets: gradient, restore,
  accumulate-once and the dot-product test.
* ``check_fused_sweep`` -- the reverse sweep that takes runs of elementwise
  records block by block leaves the bits the record-by-record sweep leaves
  (``fused_sweeps(False)`` makes tapes that never fuse).
"""
import numpy as np

from . import activity as act
from .api.autodiff import autodiff, autodiff_split
from .engines.reverse.tape import fused_sweeps
from .api.vector import Vector

__all__ = ["finite_differences", "check_gradient", "check_restore",
           "check_accumulate_once", "check_failure_atomic", "check_dot_product",
           "check_forward", "check_rule", "check_fused_sweep", "fused_sweeps", "same_bits"]


def _copy(v):
    if isinstance(v, np.ndarray):
        return v.copy(order="K")  # keep the layout: Fortran order must be tested as such
    if isinstance(v, Vector):
        return Vector(v[:])
    return v


def _copy_ann(a):
    if type(a) is act.Active:
        return act.Active(_copy(a.val))
    if isinstance(a, act.Duplicated):
        return type(a)(_copy(a.val), _copy(a.dval))
    if type(a) is act.Const:
        return act.Const(_copy(a.val))
    return act.Const(_copy(a))


def _annotate(args):
    return [a if isinstance(a, act.ANNOTATIONS) else act.Const(a) for a in args]


def _single(anns):
    """Does a differentiated argument hold float32 values?  Then the checks
    compare at float32's precision (docs/float32.md)."""
    return any(type(a) is not act.Const and getattr(getattr(a, "val", None), "dtype", None)
               == np.float32 for a in anns)


def _widened(anns):
    """anns with float32 arrays as float64 copies: finite differences need
    float64's resolution (a step of 1e-6 is below float32's)."""
    def up(v):
        return v.astype(np.float64) if getattr(v, "dtype", None) == np.float32 else v
    out = []
    for a in anns:
        if type(a) is act.Active:
            out.append(act.Active(up(a.val)))
        elif isinstance(a, act.Duplicated):
            out.append(type(a)(up(a.val), up(a.dval)))
        else:
            out.append(act.Const(up(a.val)))
    return out


def _as_array(v):
    return v[:] if isinstance(v, Vector) else np.asarray(v, dtype=float)


def same_bits(a, b):
    """True when a and b hold exactly the same bytes (nan == nan, -0 != 0)."""
    a, b = _as_array(a), _as_array(b)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def _objective(f, anns, seeds):
    """L = result + sum_j <seed_j, state_j after f>, on plain values."""
    plain = [_copy(a.val) for a in anns]
    r = f(*plain)
    total = 0.0 if r is None else float(np.asarray(r))
    for a, v, s in zip(anns, plain, seeds):
        if s is not None:
            if isinstance(v, Vector):
                continue  # seeded with zeros, see _random_seeds
            total += float(np.dot(_as_array(s).ravel(), _as_array(v).ravel()))
    return total


def finite_differences(f, *args, seeds=None, eps=1e-6):
    """Central differences of L = f(...) + sum <seed_j, x_j after f> with
    respect to the value before the call of every Active or Duplicated
    argument; None for the others."""
    anns = _annotate(args)
    seeds = seeds or [None] * len(anns)
    out = []
    for k, a in enumerate(anns):
        if type(a) is act.Const:
            out.append(None)
            continue
        val = a.val
        if isinstance(val, float):
            def at(v, k=k):
                trial = list(anns)
                trial[k] = act.Const(v)
                return _objective(f, trial, seeds)
            h = eps * max(1.0, abs(val))
            out.append((at(val + h) - at(val - h)) / (2 * h))
            continue
        base = _as_array(val)
        grad = np.zeros(base.shape)
        for i in np.ndindex(base.shape):
            vals = []
            for sign in (1.0, -1.0):
                x = base.copy(order="K")  # the layout of the call: ravel("K") depends on it
                h = eps * max(1.0, abs(base[i]))
                x[i] += sign * h
                trial = list(anns)
                trial[k] = act.Const(Vector(x) if isinstance(val, Vector) else x)
                vals.append(_objective(f, trial, seeds))
            grad[i] = (vals[0] - vals[1]) / (2 * h)
        out.append(grad)
    return out


def _random_seeds(anns, rng):
    # A Vector's seed entry follows its element: if f pops it, the seed is the
    # adjoint of the value at the pop, which finite differences of the final
    # state cannot see; so Vectors are seeded through f's result only.
    seeds = []
    for a in anns:
        if isinstance(a, act.Duplicated) and isinstance(a.val, Vector):
            seeds.append(np.zeros(len(a.dval)))
        elif isinstance(a, act.Duplicated) and not isinstance(a.val, float):
            seeds.append(rng.standard_normal(a.dval.shape))
        else:
            seeds.append(None)
    return seeds


def _seeded(anns, seeds):
    out = []
    for a, s in zip(anns, seeds):
        a = _copy_ann(a)
        if s is not None:
            if isinstance(a.dval, Vector):
                a = type(a)(a.val, Vector(np.array(s, dtype=float)))
            else:
                a.dval[...] = s
        out.append(a)
    return out


def _reverse_grads(anns, grads):
    out = []
    for a, g in zip(anns, grads):
        if type(a) is act.Active:
            out.append(g)
        elif isinstance(a, act.Duplicated):
            out.append(_as_array(a.dval))
        else:
            out.append(None)
    return out


def check_gradient(f, *args, rtol=None, atol=None, eps=1e-6, seed=0):
    """Reverse-mode gradients of ``f`` agree with finite differences.  With
    float32 arguments the differences are taken on float64 copies and
    compared at float32's precision (default rtol 1e-3; else 1e-5)."""
    anns = _annotate(args)
    single = _single(anns)
    rtol = (1e-3 if single else 1e-5) if rtol is None else rtol
    atol = (1e-5 if single else 1e-7) if atol is None else atol
    rng = np.random.default_rng(seed)
    seeds = _random_seeds(anns, rng)
    runs = _seeded(anns, seeds)
    grads = autodiff(f, *runs)
    got = _reverse_grads(runs, grads)
    if single:
        anns = _widened(anns)
    want = finite_differences(f, *anns, seeds=seeds, eps=eps)
    halved = None  # differences at eps/2, taken only when needed
    for k, (g, w) in enumerate(zip(got, want)):
        if w is None:
            continue
        g = np.asarray(g, dtype=float)
        if isinstance(anns[k].val, Vector) and g.shape != w.shape:
            raise AssertionError(f"argument {k}: the shadow Vector has length {len(g)}; "
                                 f"the Vector had length {len(w)} before the call")
        if np.allclose(g, w, rtol=rtol, atol=atol):
            continue
        # Large values or curvature leave central differences only a few
        # digits: their error, estimated from the step halved, is allowed too,
        # and so is the rounding of L itself, |L| * machine epsilon / step.
        if halved is None:
            halved = finite_differences(f, *anns, seeds=seeds, eps=eps / 2)
            rounding = 8 * np.finfo(float).eps * abs(_objective(f, anns, seeds)) / eps
        error = np.abs(np.asarray(w) - np.asarray(halved[k]))
        if not np.all(np.abs(g - halved[k])
                      <= atol + rtol * np.abs(halved[k]) + 4 * error + rounding):
            raise AssertionError(f"argument {k}: reverse-mode gradient\n{np.asarray(g)}\n"
                                 f"differs from finite differences\n{np.asarray(w)}")
    return got


def check_restore(f, *args):
    """restore=True gives back every primal bit for bit; the default leaves what
    an untraced call of f leaves, bit for bit."""
    anns = _annotate(args)
    before = [_copy(a.val) for a in anns]
    runs = [_copy_ann(a) for a in anns]
    autodiff(f, *runs, restore=True)
    for k, (a, b) in enumerate(zip(runs, before)):
        if isinstance(b, (np.ndarray, Vector)) and not same_bits(a.val, b):
            raise AssertionError(f"argument {k}: restore=True did not restore the primal "
                                 f"bit for bit:\n{_as_array(a.val)}\nwas\n{_as_array(b)}")
    plain = [_copy(a.val) for a in anns]
    f(*plain)
    runs = [_copy_ann(a) for a in anns]
    autodiff(f, *runs)
    for k, (a, p) in enumerate(zip(runs, plain)):
        if isinstance(p, (np.ndarray, Vector)) and not same_bits(a.val, p):
            raise AssertionError(f"argument {k}: after autodiff the primal is\n"
                                 f"{_as_array(a.val)}\nbut an untraced call leaves\n"
                                 f"{_as_array(p)}")


def check_accumulate_once(f, *args, seed=1, rtol=None, atol=None):
    """Shadows are linear in their seeds, each counted once:
    sweep(result seed 1, shadow seeds P) == sweep(1, 0) + sweep(0, P)
    (to 1e-12, or 1e-5 with float32 arguments, whose sums round so)."""
    anns = _annotate(args)
    single = _single(anns)
    rtol = (1e-5 if single else 1e-12) if rtol is None else rtol
    atol = (1e-6 if single else 1e-12) if atol is None else atol
    rng = np.random.default_rng(seed)
    seeds = _random_seeds(anns, rng)
    zero = [None if s is None else np.zeros_like(s) for s in seeds]

    def run(shadow_seeds, result_seed):
        runs = _seeded(anns, shadow_seeds)
        _, tape = autodiff_split(f, *runs)
        grads = tape.reverse(seed=result_seed)
        return [None if g is None else np.array(g, dtype=float)
                for g in _reverse_grads(runs, grads)]

    both = run(seeds, 1.0)
    only_result = run(zero, 1.0)
    only_shadows = run(seeds, 0.0)
    for k, (b, r, s) in enumerate(zip(both, only_result, only_shadows)):
        if b is None:
            continue
        if not np.allclose(b, r + s, rtol=rtol, atol=atol):
            raise AssertionError(f"argument {k}: pre-filled shadows were not accumulated "
                                 f"exactly once:\n{b}\n!=\n{r + s}")


def check_fused_sweep(f, *args):
    """The fused reverse sweep (csrc/core/fuse.c) and the record-by-record one give
    the same gradients and leave the same shadows and primals, bit for bit.
    Returns how many records the fused sweep took in fused runs."""
    anns = _annotate(args)
    out = []
    for on in (True, False):
        runs = [_copy_ann(a) for a in anns]
        with fused_sweeps(on):
            _, tape = autodiff_split(f, *runs)
        grads = tape.reverse()
        out.append((grads, runs, tape.stats()["fused_records"]))
    (g1, r1, fused), (g0, r0, _) = out
    for k in range(len(anns)):
        pairs = [("gradient", g1[k], g0[k]), ("primal", r1[k].val, r0[k].val),
                 ("shadow", getattr(r1[k], "dval", None), getattr(r0[k], "dval", None))]
        for what, a, b in pairs:
            if (a is None) != (b is None) or (a is not None and not same_bits(a, b)):
                raise AssertionError(f"argument {k}: the fused sweep's {what} differs from "
                                     f"the record-by-record one's:\n{a}\n!=\n{b}")
    return fused


def check_failure_atomic(f, *args, exc=Exception):
    """If f raises, primals come back bit for bit and shadows are untouched."""
    anns = [_copy_ann(a) for a in _annotate(args)]
    before = [_copy(a.val) for a in anns]
    shadows = [_copy(getattr(a, "dval", None)) for a in anns]
    try:
        autodiff(f, *anns)
    except exc:
        pass
    else:
        raise AssertionError("f did not raise")
    for k, (a, b, s) in enumerate(zip(anns, before, shadows)):
        if isinstance(b, (np.ndarray, Vector)) and not same_bits(a.val, b):
            raise AssertionError(f"argument {k}: primal not restored after the exception")
        if isinstance(s, (np.ndarray, Vector)) and not same_bits(a.dval, s):
            raise AssertionError(f"argument {k}: shadow changed although f raised")


def _directions(anns, rng):
    """A random direction for each differentiated array or float (None for
    constants and Vectors, whose seeds stay zero)."""
    out = []
    for a in anns:
        v = getattr(a, "val", None)
        if type(a) is act.Const or isinstance(v, Vector):
            out.append(None)
        elif isinstance(v, float):
            out.append(float(rng.standard_normal()))
        else:
            out.append(_like(rng.standard_normal(np.shape(v)), v))
    return out


def _like(d, v):
    """Random values d in the dtype of array v: a float32 array's tangents and
    cotangents are float32 (its shadow has its dtype)."""
    return d.astype(np.float32) if getattr(v, "dtype", None) == np.float32 else d


def _dot(a, b):
    """<a, b> in float64, whatever the arrays' dtypes."""
    return float(np.vdot(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))


def _forward_args(anns, xdots):
    out = []
    for a, d in zip(anns, xdots):
        if d is None:
            a = _copy_ann(a)
            if isinstance(a, act.Duplicated) and isinstance(a.val, Vector):
                a = type(a)(a.val, Vector(np.zeros(len(a.val))))
            out.append(a)
        else:
            out.append(act.Duplicated(_copy(a.val), _copy(d)))
    return out


def _reverse_args(anns, ybars):
    out = []
    for a, s in zip(anns, ybars):
        a = _copy_ann(a)
        if isinstance(a, act.Duplicated) and isinstance(a.val, Vector):
            a = type(a)(a.val, Vector(np.zeros(len(a.val))))
        elif s is not None and isinstance(a, act.Duplicated):
            a.dval[...] = s
        out.append(a)
    return out


def check_dot_product(f, *args, seed=2, rtol=None):
    """Forward and reverse mode agree as transposes: with random tangents xdot
    of the inputs, random cotangents ybar of the outputs (mutated arrays and a
    scalar result), <J xdot, ybar> == <xdot, J^T ybar>.  Active arguments are
    differentiated, and passed as Duplicated in forward mode.  f must return a
    scalar or None.  The directions of a float32 array are float32 and both
    sides then carry float32 rounding: the default rtol is then 1e-4 (else
    1e-12)."""
    anns = _annotate(args)
    if rtol is None:
        rtol = 1e-4 if _single(anns) else 1e-12
    rng = np.random.default_rng(seed)
    xdots = _directions(anns, rng)
    ybars = [None if type(a) is not act.Duplicated and type(a) is not act.DuplicatedNoNeed
             or d is None else _like(rng.standard_normal(np.shape(d)), d)
             for a, d in zip(anns, xdots)]
    rbar = float(rng.standard_normal())

    fwd = _forward_args(anns, xdots)
    rdot = autodiff(f, *fwd, mode=act.Forward)
    terms = [0.0 if rdot is None else float(rdot) * rbar]
    terms += [_dot(a.dval, y) for a, y in zip(fwd, ybars) if y is not None]
    lhs = sum(terms)

    rev = _reverse_args(anns, ybars)
    _, tape = autodiff_split(f, *rev)
    grads = _reverse_grads(rev, tape.reverse(seed=rbar))
    back = [_dot(d, g) for d, g in zip(xdots, grads) if d is not None]
    rhs = sum(back)
    scale = sum(abs(t) for t in terms + back) or 1.0
    if not abs(lhs - rhs) <= rtol * scale:  # written so that a NaN on either side fails
        raise AssertionError(f"dot-product test failed: <J xdot, ybar> = {lhs!r} but "
                             f"<xdot, J^T ybar> = {rhs!r} (difference {abs(lhs - rhs):.3g}, "
                             f"scale {scale:.3g})")
    return lhs, rhs


def check_forward(f, *args, rtol=None, atol=None, eps=1e-6, lanes=3, seed=3):
    """Forward mode of ``f(*args)``, which may mutate its arrays and return a
    scalar, an array or None.  Bare floats and arrays are differentiated
    (``Const(v)`` marks a constant).  Checks that the result's tangent and the
    output tangents left in the shadows equal central differences of the result
    and of the final arrays; the dot-product test against reverse mode; and
    that ``lanes`` BatchDuplicated lanes give the tangents of one-lane calls."""
    rng = np.random.default_rng(seed)
    vals = [a.val if type(a) is act.Const else a for a in args]
    single = any(getattr(v, "dtype", None) == np.float32 for a, v in zip(args, vals)
                 if type(a) is not act.Const)
    rtol = (1e-3 if single else 1e-6) if rtol is None else rtol
    atol = (1e-5 if single else 1e-8) if atol is None else atol
    live = [k for k, a in enumerate(args) if type(a) is not act.Const]
    arrays = [k for k in live if isinstance(vals[k], np.ndarray)]

    def direction():  # (a float32 array's tangents are float32)
        return {k: _like(rng.standard_normal(np.shape(vals[k])), vals[k]) if k in arrays
                else float(rng.standard_normal()) for k in live}

    def annotate(v, d):
        v = _copy(v)
        if d is None:
            return act.Const(v)
        if type(d) is tuple:  # one direction per lane
            return act.BatchDuplicated(v, tuple(map(_copy, d)))
        return act.Duplicated(v, _copy(d))

    def forward(dirs):
        """(result tangent, shadows of the array arguments) of one call."""
        anns = [annotate(v, dirs.get(k)) for k, v in enumerate(vals)]
        t = autodiff(f, *anns, mode=act.Forward)
        return t, [anns[k].dvals if type(anns[k]) is act.BatchDuplicated else anns[k].dval
                   for k in arrays]

    def final(step, d):
        """The result and the final arrays of a plain call at vals + step*d
        (float32 arrays as float64 copies: finite differences need its
        resolution)."""
        vs = [_copy(v) for v in vals]
        vs = [v.astype(np.float64) if getattr(v, "dtype", None) == np.float32 else v for v in vs]
        for k in live:
            vs[k] += step * d[k]  # in place for arrays: their layout is kept
        r = f(*vs)
        return [np.asarray(0.0 if r is None else r, dtype=float)] + [vs[k] for k in arrays]

    d = direction()
    t, shadows = forward(d)
    got = [np.asarray(0.0 if t is None else t, dtype=float)] + shadows
    names = ["the result"] + [f"argument {k}" for k in arrays]
    for name, g, a, b in zip(names, got, final(eps, d), final(-eps, d)):
        want = (a - b) / (2 * eps)
        if g.shape != want.shape or not np.allclose(g, want, rtol=rtol, atol=atol):
            raise AssertionError(f"{name}: forward-mode tangent\n{g}\ndiffers from finite "
                                 f"differences\n{want}")

    ybar = rng.standard_normal(got[0].shape)
    g = f if got[0].ndim == 0 else (lambda *a: np.sum(f(*a) * ybar))
    check_dot_product(g, *[a if type(a) is act.Const else
                           act.Active(a) if type(a) is float else act.Duplicated(a, np.zeros_like(a))
                           for a in args])

    per_lane = [direction() for _ in range(lanes)]
    t, shadows = forward({k: tuple(lane[k] for lane in per_lane) for k in live})
    for i, lane in enumerate(per_lane):
        t1, shadows1 = forward(lane)
        pairs = ([] if t is None else [(t[i], t1)]) + [(s[i], s1) for s, s1 in zip(shadows, shadows1)]
        for a, b in pairs:
            if not np.allclose(a, b, rtol=1e-12, atol=1e-14):
                raise AssertionError(f"lane {i} of a batch of {lanes} differs from a one-lane "
                                     f"call:\n{a}\n!=\n{b}")


def check_rule(f, *args, **gradient_options):
    """The checks every primitive gets: finite differences, restoration bit
    for bit, shadows accumulated exactly once, and the dot-product test
    between forward and reverse mode.  Each compares at float32's precision
    when an argument is float32."""
    check_gradient(f, *args, **gradient_options)
    check_restore(f, *args)
    check_accumulate_once(f, *args)
    check_dot_product(f, *args)
