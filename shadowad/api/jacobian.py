"""sad.jacobian: the full Jacobian of an array function, by forward lanes or
by one reverse sweep per output over a tape recorded once."""
import numpy as np

from .. import activity as act
from ..engines.nested import engine as nested
from .._c import lib
from .autodiff import check_function, record_call, sweep_lanes
from ..engines.forward.forward import forward
from ..engines.reverse.tape import Tape
from ..engines.reverse.buffers import shadow_of
from ..engines.reverse.scalar import TScalar
from ..engines.reverse.traced import TArray
from ..engines.reverse.values import ARRAY_TYPES, SCALAR_TYPES, primal

_F32 = np.dtype(np.float32)
CHUNK = 64  # tangent lanes per forward pass: memory is CHUNK tangents of each value


def _input(x):
    if type(x) is float:
        return x
    if isinstance(x, np.ndarray):
        act._check_float_array(x, "sad.jacobian: x")
        return x.copy()  # f may write to it; every pass starts from the same x
    if act.is_real_scalar(x):
        return float(x)
    raise TypeError(f"sad.jacobian: x must be a float or a float64 or float32 array, got "
                    f"{type(x).__name__}")


def _consts(consts):
    for k, c in enumerate(consts):
        if isinstance(c, act.ANNOTATIONS) and not isinstance(c, act.Const):
            raise TypeError(f"sad.jacobian: consts[{k}] is {type(c).__name__}; the "
                            "arguments after x are constants (bare or Const(...)): "
                            "sad.jacobian differentiates with respect to x only")
    return [c if isinstance(c, act.Const) else act.Const(c) for c in consts]


def _output_shape(out, where):
    t = type(out)
    if t is np.ndarray and out.dtype.kind in "iuf":
        return out.shape
    if t in ARRAY_TYPES or t in SCALAR_TYPES or act.is_real_scalar(out):
        return np.shape(out)
    raise TypeError(f"sad.jacobian: f must return one float or array (of real numbers), got "
                    f"{_a(out)} ({where})")


def _a(out):
    if isinstance(out, np.ndarray):
        return f"an array of dtype {out.dtype}"
    name = type(out).__name__
    return f"{'an' if name[:1] in 'aeiouAEIOU' else 'a'} {name}"


def _dtype(x, out):
    """The Jacobian's dtype: float32 when x and f's value are float32 (or
    Python scalars), float64 as soon as either is float64, as numpy promotes."""
    dx, dout = getattr(x, "dtype", None), getattr(out, "dtype", None)
    if dx != _F32 and dout != _F32:  # (the common case, without numpy's promotion)
        return np.float64
    return np.result_type(np.float64 if dx is None else dx, np.float64 if dout is None else dout)


def jacobian_forward(f, x, consts):
    """Columns of the Jacobian, CHUNK lanes (input directions) per pass."""
    if type(x) is float:
        tangent, value = forward(f, [act.Duplicated(x, 1.0)] + consts, True, True, checked=True)
        shape = _output_shape(value, "forward")
        if type(tangent) is np.ndarray and tangent.shape == shape:  # forward's own copy
            return tangent
        return np.asarray(tangent, dtype=float).reshape(shape)
    n = x.size
    if n == 0:  # no columns: run f once (one empty tangent) for the output's shape
        _, value = forward(f, [act.Duplicated(x.copy(), np.zeros_like(x))] + consts, True, True, checked=True)
        return np.zeros(_output_shape(value, "forward") + x.shape)
    cols = None
    for j0 in range(0, max(n, 1), CHUNK):
        k = min(CHUNK, n - j0)
        seeds = np.zeros((k, n), x.dtype)  # the tangents of x have its dtype
        seeds[np.arange(k), j0 + np.arange(k)] = 1.0
        ann = act.BatchDuplicated(x.copy(), tuple(s.reshape(x.shape) for s in seeds))
        tangents, value = forward(f, [ann] + consts, True, True, checked=True)
        shape = _output_shape(value, "forward")
        if cols is None:
            cols = np.zeros((int(np.prod(shape)), n), _dtype(x, value))
        for lane, t in enumerate(tangents):
            cols[:, j0 + lane] = np.ravel(t)
    return cols.reshape(shape + x.shape)


def jacobian_reverse(f, x, consts, recorded=None):
    """Rows of the Jacobian: one reverse sweep per output over one tape."""
    tape, wrapped, res = recorded or _record_for_reverse(f, x, consts)
    xarg = wrapped[0]
    try:
        shape = _output_shape(res, "reverse")
        m = int(np.prod(shape))
        rows = np.zeros((m,) + np.shape(x), _dtype(x, primal(res)))
        if type(x) is float:
            pair = xarg.traced.g

            def after(i):
                rows[i] = lib.sad_pair_grad(pair)  # x's adjoint
        else:
            def after(i):
                rows[i] = xarg.grad
        sweep_lanes(tape, m, _seeder(res), after, restore=True)
    finally:
        if tape.state != "freed":
            tape.free()
    return rows.reshape(shape + np.shape(x))


def _record_for_reverse(f, x, consts):
    tape = Tape()
    if type(x) is float:
        ann = act.Active(x)
    else:
        ann = act.Duplicated(x, np.zeros_like(x))
    wrapped, res = record_call(f, [ann] + consts, tape)
    try:
        _output_shape(res, "reverse")
    except BaseException:  # put back what f wrote (constants too) before raising
        tape.undo()
        tape.free()
        raise
    if type(x) is not float:
        wrapped[0].grad = ann.dval
    return tape, wrapped, res


def _seeder(res):
    """seed(i): make output i's adjoint 1 (the sweep has zeroed the rest)."""
    t = type(res)
    if t is TScalar:
        return lambda i: lib.sad_pair_add(res.g, 1.0)
    s = shadow_of(res) if t is TArray else None
    if s is None:  # the output does not depend on x: its rows stay zero
        return lambda i: None

    def seed(i):
        s.flat[i] += 1.0  # output i in C order, whatever the shadow's layout
    return seed


def jacobian(f, x, *consts, mode=None):
    """The Jacobian of ``f(x, *consts)`` with respect to ``x``: an array of
    shape ``out.shape + x.shape``.  Forward mode (in chunks of lanes) when the
    output is at least as large as the input, else reverse mode with one sweep
    per output; ``mode=Forward`` or ``mode=Reverse`` forces one.  ``x`` is not
    modified, and the constants are left as they were."""
    check_function(f, "jacobian")
    if mode is not None and mode not in (act.Forward, act.Reverse):
        raise TypeError(f"sad.jacobian: mode must be None, Forward or Reverse, got {mode!r}")
    if nested.running():  # inside a running differentiation
        return nested.jacobian(f, x, _consts(consts), mode)
    x = _input(x)
    consts = _consts(consts)
    if mode is act.Forward or (mode is None and np.size(x) == 1):
        return jacobian_forward(f, x, consts)
    recorded = _record_for_reverse(f, x, consts)
    out = recorded[2]
    if mode is None and np.size(out) >= np.size(x):  # tall: columns are cheaper
        tape = recorded[0]
        tape.undo()
        tape.free()
        return jacobian_forward(f, x, consts)
    return jacobian_reverse(f, x, consts, recorded)
