"""numpy functions whose results carry no derivative -- integers, booleans,
shapes, signs, roundings, searches -- so every engine runs them on the
primal values of its operands.  One list, which each engine binds."""
import numpy as np

DERIVATIVE_FREE = (
    np.shape, np.ndim, np.size, np.argmax, np.argmin, np.argsort, np.nonzero, np.flatnonzero,
    np.count_nonzero, np.any, np.all, np.isclose, np.allclose, np.array_equal, np.result_type,
    np.sign, np.floor, np.ceil, np.round, np.isnan, np.isinf, np.isfinite, np.searchsorted,
    np.argwhere, np.may_share_memory, np.shares_memory)

# ufuncs whose result has no derivative (piecewise constant, or not a float)
DERIVATIVE_FREE_UFUNCS = (
    np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal,
    np.logical_and, np.logical_or, np.logical_xor, np.logical_not,
    np.isnan, np.isinf, np.isfinite, np.signbit, np.sign, np.floor, np.ceil,
    np.rint, np.trunc, np.floor_divide)
