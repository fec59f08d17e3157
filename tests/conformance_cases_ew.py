"""Conformance cases of the elementwise family that is not a C table entry:
np.sinc, and scipy.special's ufuncs (generic rules, no C kernel),
logsumexp and softmax.  The numpy ufuncs with C kernels (log10 ... logaddexp2)
are covered entry by entry by tests/test_conformance_elementwise.py, which
runs over the whole partials table."""
import numpy as np

from conformance_cases import SEVERAL_PATHS, SUB, TINY, arr, case, inf, nan, ordinary, wsum

try:
    import scipy.special as special
except ImportError:  # scipy is optional: its functions are then not registered
    special = None

EDGES = [arr(0.0, -0.0, inf, -inf, nan, SUB, TINY, 1.0, -1.0)]

case("sinc", ["np.sinc"], lambda x: wsum(np.sinc(x)),
     [ordinary(5), arr(0.0, -0.0, 1.0, -2.0, inf, nan, SUB, 0.5)])


def _halves(fn):
    """fn(x[:n], x[n:]) of an input of even length."""
    def f(x):
        n = x.shape[0] // 2
        return wsum(fn(x[:n], x[n:]))
    return f


if special is not None:
    unit = [arr(0.25, 0.5, 0.875), arr(0.0, 1.0, -0.0, 2.0, nan, inf, TINY)]
    case("scipy_expit", ["scipy.special.expit"], lambda x: wsum(special.expit(x)),
         [ordinary(5)] + EDGES + [arr(800.0, -800.0, 40.0)])
    case("scipy_logit", ["scipy.special.logit"], lambda x: wsum(special.logit(x)), unit)
    case("scipy_erf", ["scipy.special.erf", "scipy.special.erfc"],
         lambda x: wsum(special.erf(x)) + wsum(special.erfc(x) * x), [ordinary(5)] + EDGES,
         **SEVERAL_PATHS)
    case("scipy_ndtr", ["scipy.special.ndtr", "scipy.special.log_ndtr"],
         lambda x: wsum(special.ndtr(x)) + wsum(special.log_ndtr(x)),
         [ordinary(5)] + EDGES + [arr(-40.0, -1e200, 40.0, -1e10)], **SEVERAL_PATHS)
    case("scipy_gammaln", ["scipy.special.gammaln", "scipy.special.psi"],
         lambda x: wsum(special.gammaln(x)) + wsum(special.digamma(x)),
         [np.abs(ordinary(5)) + 0.5] + EDGES + [arr(-2.5, -1.0, -0.5, 1e-300, 1e300)],
         **SEVERAL_PATHS)
    case("scipy_xlogy", ["scipy.special.xlogy", "scipy.special.xlog1py"],
         _halves(lambda x, y: special.xlogy(x, y) + special.xlog1py(x, y)),
         [np.abs(ordinary(6)) + 0.1, arr(0.0, 0.0, -0.0, 2.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0,
                                         inf, -1.0),
          arr(nan, 0.0, 1.0, 0.0, nan, -1.0)], **SEVERAL_PATHS)
    case("scipy_logsumexp", ["scipy.special.logsumexp"],
         lambda x: special.logsumexp(x) + wsum(special.logsumexp(x, axis=1))
         + wsum(special.logsumexp(x, axis=0, keepdims=True))
         + special.logsumexp(x, b=np.arange(1.0, 7.0).reshape(2, 3)),
         [ordinary(2, 3), arr(0.0, 0.0, 0.0, 1.0, 1.0, 1.0, shape=(2, 3)),
          arr(-inf, -inf, -inf, 1.0, -inf, 2.0, shape=(2, 3)),
          arr(inf, inf, 1.0, nan, 0.0, 1.0, shape=(2, 3)),
          arr(800.0, -800.0, 0.0, 1e300, -1e300, SUB, shape=(2, 3))], **SEVERAL_PATHS)
    case("scipy_softmax", ["scipy.special.softmax"],
         lambda x: wsum(special.softmax(x)) + wsum(special.softmax(x, axis=1))
         + wsum(special.softmax(x, axis=0)),
         [ordinary(2, 3), arr(0.0, 0.0, 0.0, 1.0, 1.0, 1.0, shape=(2, 3)),
          arr(-inf, 0.0, -inf, 1.0, -inf, 2.0, shape=(2, 3)),
          arr(800.0, -800.0, 0.0, 1e300, -1e300, SUB, shape=(2, 3))], **SEVERAL_PATHS)
