"""Generic numpy helpers for primitive definitions: they work on plain arrays
and on every engine's values (traced, dual, nested Boxes), using only
operations that every engine differentiates."""
import numpy as np

__all__ = ["shape_of", "ndim", "plain", "PLAIN", "swap", "moveaxis", "unbroadcast",
           "expand_last", "prod_others", "array_operand", "float_dtype"]

# engine value type -> its value one level down; each engine registers its own
PLAIN = {}
_PLAIN_TYPES = (np.ndarray, float, int, np.generic, bool)


def plain(x):
    """The plain numpy value under any number of levels, without derivative
    (for tests on values: masks, singularity)."""
    while not isinstance(x, _PLAIN_TYPES):
        down = PLAIN.get(type(x))
        if down is None:
            return x
        x = down(x)
    return x


def float_dtype(*xs):
    """The floating type numpy computes ``xs`` in (values of any level;
    Python numbers are weak): float32 for float32 operands and Python
    numbers, float64 as soon as a float64 (or integer) array takes part.
    The constants a formula makes (zeros, ones, an identity) take this type,
    so that float32 values stay float32."""
    types = []
    for x in xs:
        p = plain(x)
        d = getattr(p, "dtype", None)
        types.append(d if d is not None else p if type(p) in (float, int, bool) else
                     np.asarray(p).dtype)
    return np.result_type(*types, 0.0)


def array_operand(x):
    """A list or tuple operand as numpy reads it (an array of numbers); any
    other operand as it is."""
    if type(x) is list or type(x) is tuple:
        return np.asarray(x, dtype=np.float64)
    return x


def shape_of(x):
    if type(x) is float or type(x) is int:
        return ()
    s = getattr(x, "shape", None)
    return np.shape(x) if s is None else tuple(s)


def ndim(x):
    return len(shape_of(x))


def swap(m):
    """m with its last two axes swapped."""
    nd = ndim(m)
    if type(m) is np.ndarray:
        return m.swapaxes(-1, -2)
    return np.transpose(m, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def moveaxis(x, source, destination):
    if source == destination:
        return x
    nd = ndim(x)
    order = [d for d in range(nd) if d != source]
    order.insert(destination, source)
    return np.transpose(x, tuple(order))


def unbroadcast(g, shape):
    """Adjoint ``g`` of a broadcast result summed back to an operand's shape."""
    shape = tuple(shape)
    gs = shape_of(g)
    if gs == shape:
        return g
    if len(gs) < len(shape):
        return np.zeros(shape, float_dtype(g)) + g
    extra = len(gs) - len(shape)
    if extra:
        g = np.sum(g, axis=tuple(range(extra)))
        gs = shape_of(g)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and gs[i] != 1)
    if axes:
        g = np.sum(g, axis=axes, keepdims=True)
    return g


def expand_last(g, k):
    """g with ``k`` unit axes appended (a scalar too)."""
    return np.reshape(g, shape_of(g) + (1,) * k)


def prod_others(x):
    """The product of the other entries along the last axis, for each entry
    of plain ``x``: prefix times suffix products, so zeros need no division."""
    left = np.ones(x.shape, float_dtype(x))
    right = np.ones(x.shape, float_dtype(x))
    if x.shape[-1] > 1:
        np.cumprod(x[..., :-1], axis=-1, out=left[..., 1:])
        np.cumprod(x[..., :0:-1], axis=-1, out=right[..., -2::-1])
    left *= right
    return left
