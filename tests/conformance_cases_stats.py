"""Conformance cases of the statistics family (issue #16): cumprod, diff, var,
std, average, median, quantile, percentile, nansum, nanmean, ptp, and the
array methods x.std(), x.var(), x.cumprod(), x.sort().  Each case's first
input is ordinary; the others are the family's degenerate points (zeros of
cumprod, constant data of std, ties and NaNs of median and quantile, all-NaN
slices of nanmean), compared across every engine."""
import numpy as np

from conformance_cases import SUB, SEVERAL_PATHS, arr, case, inf, nan, ordinary, wsum

# -- cumprod: zeros (one, two, first, last), infinities, signed zeros ---------
case("cumprod", ["np.cumprod", "method:cumprod"],
     lambda x: wsum(np.cumprod(x, axis=0)) + wsum(x.cumprod(axis=1)) + wsum(np.cumprod(x)),
     [ordinary(3, 4),
      arr(0.0, 2.0, 3.0, 1.5, 2.0, 0.0, -1.0, 0.5, 1.0, 3.0, 0.0, 0.0, shape=(3, 4)),
      arr(1.0, 0.0, 2.0, 0.0, 3.0, 4.0, shape=(2, 3)),
      arr(inf, 0.0, 2.0, -0.0, nan, 1.0, shape=(2, 3)),
      arr(-0.0, 0.0, SUB, 1e200, 1e200, 1e-200, shape=(2, 3)),
      np.zeros((0, 3)), np.zeros((2, 2))],
     **SEVERAL_PATHS)
case("cumprod_1d", ["np.cumprod"], lambda x: wsum(np.cumprod(x)) + np.cumprod(x[:1])[0],
     [ordinary(5), arr(2.0, 0.0, 3.0, 0.0, 4.0), arr(0.0), arr(1e200, 1e200, 1e-200, 0.0, 2.0),
      arr(2.0, inf, 3.0, -0.0, nan)], **SEVERAL_PATHS)

# -- diff ------------------------------------------------------------------------
case("diff", ["np.diff"],
     lambda x: (wsum(np.diff(x)) + wsum(np.diff(x, n=2, axis=0)) + wsum(np.diff(x, n=0))
                + wsum(np.diff(x, axis=0, prepend=1.5, append=x[:1] * 2.0))
                + wsum(np.diff(x, n=3, prepend=x[:, :1]))),
     [ordinary(3, 4), arr(inf, -inf, nan, 0.0, -0.0, 1.0, SUB, 2.0, 3.0, inf, 1.0, 1.0,
                          shape=(3, 4))], **SEVERAL_PATHS)

# -- var and std: constant data (zero variance), ddof, axes ------------------------
# deviations so small that the variance underflows to 0: sqrt's infinite partial
# meets non-zero deviations, so the derivative overflows; forward mode gives
# +-inf and reverse mode NaN (inf - inf in the mean's adjoint).  JAX too.
UNDERFLOW = "std where the variance underflows: inf in forward mode, NaN in reverse (docs/conventions.md)"
CONSTANT = arr(2.0, 2.0, 2.0, 2.0, 2.0, 2.0, shape=(2, 3))
case("var_std", ["np.var", "np.std", "method:var", "method:std"],
     lambda x: (np.var(x) + wsum(np.std(x, axis=0, ddof=1)) + wsum(x.std(axis=1, keepdims=True))
                + x.var(ddof=1) + np.std(x, axis=(0, 1)) + wsum(np.var(x, axis=-1, correction=1))),
     [ordinary(2, 3), CONSTANT, arr(1.0, 1.0, 3.0, -0.0, 0.0, 0.0, shape=(2, 3)),
      arr(inf, 1.0, 2.0, nan, 0.0, 1.0, shape=(2, 3)), arr(SUB, 0.0, -SUB, 1.0, 1.0, 1.0, shape=(2, 3))],
     diverge={(e, 4): UNDERFLOW for e in ("forward", "batch", "jacobian(F)", "nested forward",
                                          "nested jacobian(F)")},
     **SEVERAL_PATHS)
case("std_one_entry", ["np.std", "np.var"],  # ddof = n: 0 / 0, numpy's NaN
     lambda x: np.std(x) + np.var(x[:1]) + np.std(x, ddof=2),
     [ordinary(3), arr(1.0, 1.0, 1.0)], smooth=False, **SEVERAL_PATHS)

# -- average: weights plain and traced, axes, returned= -------------------------------
def _average(x):
    w = np.array([1.0, 2.0, 0.5, 3.0])
    avg, scl = np.average(x, axis=1, weights=w, returned=True)
    s = wsum(avg) + np.sum(scl) * 0.0 + np.average(x)
    s = s + wsum(np.average(x, axis=0, weights=x[:, 0] * x[:, 0] + 1.0, keepdims=True))
    s = s + np.average(x[0], weights=x[1] * x[1] + 0.5) + wsum(np.average(x, axis=(0, 1)) * 1.0)
    return s + wsum(np.average(x, axis=0, returned=True)[0])


case("average", ["np.average"], _average,
     [ordinary(3, 4), arr(inf, 1.0, 2.0, 3.0, 0.0, -0.0, nan, 1.0, 1.0, 1.0, 1.0, 1.0, shape=(3, 4))],
     **SEVERAL_PATHS)

# -- median, quantile, percentile: ties, NaNs, infinities, signed zeros -----------------
TIES = arr(1.0, 3.0, 1.0, 3.0, 2.0, 2.0, 2.0, 1.0, shape=(2, 4))
WITH_NAN = arr(1.0, nan, 0.5, 2.0, -1.0, 4.0, 0.0, 3.0, shape=(2, 4))
INFS = arr(inf, 1.0, -inf, 2.0, inf, inf, 0.0, -0.0, shape=(2, 4))
case("median", ["np.median"],
     lambda x: (np.median(x) + wsum(np.median(x, axis=0)) + wsum(np.median(x[:, :3], axis=1))
                + wsum(np.median(x, axis=1, keepdims=True)) + np.median(x, axis=(0, 1))),
     [ordinary(2, 4), TIES, WITH_NAN, INFS, np.zeros((2, 4))], **SEVERAL_PATHS)
case("quantile_percentile", ["np.quantile", "np.percentile"],
     lambda x: (wsum(np.quantile(x, [0.0, 0.3, 0.5, 0.75, 1.0], axis=1)) + np.quantile(x, 0.4)
                + wsum(np.percentile(x, 25.0, axis=0)) + np.percentile(x, 100.0)
                + wsum(np.percentile(x, [10.0, 90.0], axis=0, keepdims=True))),
     [ordinary(2, 4), TIES, WITH_NAN, INFS, np.zeros((2, 4))], **SEVERAL_PATHS)

# -- nansum, nanmean: NaN entries get nothing; an all-NaN slice too ---------------------
case("nansum_nanmean", ["np.nansum", "np.nanmean"],
     lambda x: (np.nansum(x) + wsum(np.nansum(x, axis=0)) + wsum(np.nanmean(x, axis=1))
                + np.nanmean(x) + wsum(np.nanmean(x, axis=0, keepdims=True))),
     [ordinary(2, 3), arr(nan, 1.0, 2.0, 3.0, nan, 0.5, shape=(2, 3)),
      arr(nan, 1.0, inf, nan, nan, -inf, shape=(2, 3)), arr(nan, nan, nan, nan, nan, nan, shape=(2, 3))],
     **SEVERAL_PATHS)

# -- ptp: ties at the max and the min, NaN ------------------------------------------------
case("ptp", ["np.ptp"], lambda x: np.ptp(x) + wsum(np.ptp(x, axis=0)) + wsum(np.ptp(x, axis=1, keepdims=True)),
     [ordinary(2, 3), arr(1.0, 1.0, 0.0, 1.0, 2.0, 2.0, shape=(2, 3)), CONSTANT,
      arr(nan, 1.0, 0.0, inf, -inf, 1.0, shape=(2, 3))], **SEVERAL_PATHS)


# -- x.sort(): in place, on a copy and on x itself; ties and NaNs --------------------------
def _sort_method(x):
    y = x * 1.0
    y.sort()
    s = wsum(y)
    z = x[:, ::-1] * 2.0
    z.sort(axis=0, kind="stable")
    x.sort(axis=0)  # x itself: the gradient is with respect to x before the call
    return s + wsum(z) + wsum(x * x)


case("sort_method_in_place_axes", ["method:sort"], _sort_method,
     [ordinary(3, 2), arr(2.0, 1.0, 2.0, 1.0, 2.0, 1.0, shape=(3, 2)),
      arr(nan, 1.0, -0.0, 0.0, inf, nan, shape=(3, 2))], **SEVERAL_PATHS)


# -- x.astype to integers and booleans: plain values (masks, indices), no derivative;
#    x.clip with ndarray's keyword names; x.argmax(keepdims=True) --------------------------
def _plain_kinds(x):
    mask = x.astype(bool)
    idx = x.astype(np.int64) * 0 + np.array([2, 0, 1])  # plain integers
    return (wsum(np.where(mask, x * x, 0.0)) + wsum(x[idx]) + wsum(x.clip(min=0.0))
            + wsum(x.clip(max=0.5)) + x[x.argmax(keepdims=True)][0] + x[x.argmin(axis=0)])


case("astype_plain_kinds", ["method:astype", "method:clip", "method:argmax", "method:argmin"],
     _plain_kinds, [arr(1.5, -0.25, 0.75), arr(0.0, -0.0, nan), arr(inf, 0.5, -inf)],
     smooth=False)
