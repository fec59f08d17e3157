"""The cases of the cross-engine conformance suite (tests/test_conformance.py).

``primitives()`` lists every primitive shadowad differentiates, read from the
registries; ``CASES`` gives each one programs ``f(x) -> scalar`` on ordinary
and edge inputs.  A primitive without a case fails the completeness test, so
a new rule cannot land untested.

Each case's first input is ordinary (finite, away from kinks): the suite
checks it against finite differences (when ``smooth``), the dot-product test,
restoration and accumulate-once.  Every input, edges included, is checked
across engines.  ``f`` may overwrite ``x`` in place (the engines then
differentiate with respect to x's value before the call).
"""
from dataclasses import dataclass, field

import numpy as np

import shadowad as sad

inf, nan = np.inf, np.nan
TINY = 5e-324          # the smallest subnormal
SUB = 2.5e-310         # a subnormal


# --------------------------------------------------------------------------
# the one enumeration (repoint it when the registries move)

def registered_functions(engine=None):
    """(numpy function -> name) of the reverse, forward and nested tables, or
    of the nested engine's alone (``engine="nested"``)."""
    from shadowad.support.naming import qualified_name
    from shadowad.engines.nested.rules import FUNCTIONS as NESTED
    from shadowad.engines.rules.registry import FUNCTIONS, JVPS
    tables = (NESTED,) if engine == "nested" else (FUNCTIONS, JVPS, NESTED)
    return {f: qualified_name(f) for table in tables for f in table}


# numpy functions registered with rules that take ``out=`` (their out form is a primitive too)
OUT_FUNCTIONS = ("np.sum", "np.mean", "np.prod", "np.max", "np.min", "np.amax", "np.amin",
                 "np.cumsum", "np.clip", "np.dot", "np.matmul")
KERNELS = ("sad.axpy", "sad.scal", "sad.setindex", "sad.fwddiff", "sad.Vector.push",
           "sad.Vector.pop", "sad.Vector.load", "sad.Vector.store")
INDEXING = ("getitem:basic", "getitem:fancy", "getitem:boolean", "setitem:basic",
            "setitem:fancy", "setitem:boolean", "view:negative-stride", "view:write-through",
            "view:overlapping")
IN_PLACE_OPERATORS = ("out:+=", "out:-=", "out:*=", "out:/=", "out:**=", "out:@=",
                      "out:ufunc")


# methods that would take a plain value out of a traced one: they raise
# (test_conformance checks it), they are not primitives
DETACHING_METHODS = ("item", "tolist")


def array_methods():
    """The ndarray methods a traced array implements (reading the others
    raises NotImplementedError, by design)."""
    names = []

    def f(x):
        for name in dir(np.ndarray):
            if name.startswith("_") or name in ("ctypes", "data", "flat", "base", "device"):
                continue
            try:
                attr = getattr(x, name)
            except (NotImplementedError, AttributeError):
                continue
            if callable(attr) and name not in DETACHING_METHODS:
                names.append(name)
        return np.sum(x)
    sad.gradient(f, np.ones(2))
    return tuple(names)


def primitives():
    """Every primitive the suite must cover, as the names CASES use."""
    names = set(registered_functions().values())
    names.update(KERNELS, INDEXING, IN_PLACE_OPERATORS)
    names.update(f"out:{n}" for n in OUT_FUNCTIONS)
    names.update(f"method:{m}" for m in array_methods())
    return names


# --------------------------------------------------------------------------
# cases

@dataclass
class Case:
    name: str
    covers: tuple          # primitive names (see primitives())
    f: object              # f(x) -> scalar; may overwrite x
    inputs: list           # arrays; inputs[0] ordinary
    smooth: bool = True    # finite differences apply at inputs[0]
    exact: bool = True     # engines agree bit for bit (else to rtol 1e-12, NaN/inf/0 placed alike)
    nested: str = ""       # why the nested engine cannot run it yet (strict xfail)
    # (engine, input k or None) -> reason, or (reason, the exception it raises)
    diverge: dict = field(default_factory=dict)
    nested_raises_name: str = ""  # the class it raises meanwhile (see nested_unsupported)
    nested_message: str = ""      # and a part of its message

    def __repr__(self):  # short: pytest prints it in every report
        return f"Case({self.name!r})"


def weights(shape):
    """A fixed, non-uniform cotangent, so a transposed or misplaced adjoint shows."""
    n = int(np.prod(shape))
    return (np.arange(1.0, n + 1.0) / 4.0 + (np.arange(n) % 3 == 1)).reshape(shape)


def wsum(r):
    """sum(r * w): a scalar whose gradient with respect to r is w."""
    return np.sum(r * weights(r.shape))


def arr(*values, shape=None):
    a = np.array(values, dtype=float)
    return a.reshape(shape) if shape is not None else a


RNG = np.random.default_rng(14)


def ordinary(*shape):
    return np.round(RNG.standard_normal(shape) + 0.1, 3) + 0.0


# What the nested engine raises for what it lacks (the suite names the classes once).
def nested_unsupported(name):
    from shadowad.engines.nested.box import UnsupportedError
    from shadowad.engines.reverse.errors import DeferToNested, NoRuleError
    return {"UnsupportedError": UnsupportedError, "NoRuleError": NoRuleError,
            "DeferToNested": DeferToNested, "TypeError": TypeError}[name]


CASES = []


def case(name, covers, f, inputs, **kw):
    # asarray keeps a Fortran-ordered input so: layouts are part of the cases
    CASES.append(Case(name, tuple(covers), f, [np.asarray(x, dtype=float) for x in inputs], **kw))


def lacks(what, raises="UnsupportedError", message=None):
    """The nested engine refuses ``what``: it raises ``raises`` with ``message``
    (default: ``what``) in its text."""
    return dict(nested=f"nested engine lacks {what} until it is a Primitive (#14)",
                nested_raises_name=raises, nested_message=message or what)


# x reaches the result along several paths; forward and reverse mode add the
# terms in different orders, so finite values agree to rounding, not bit for bit
SEVERAL_PATHS = dict(exact=False)


MAX_EDGES = [arr(1.0, nan, 3.0), arr(3.0, 1.0, 3.0), arr(nan, nan, 1.0), arr(inf, inf, -inf),
             arr(-0.0, 0.0, -1.0), arr(0.0, -0.0, -1.0), arr(SUB, TINY, SUB)]
MIN_EDGES = [arr(1.0, nan, -3.0), arr(-3.0, 1.0, -3.0), arr(nan, 1.0, nan),
             arr(-inf, 2.0, -inf), arr(-0.0, 0.0, 1.0), arr(-SUB, -TINY, -SUB)]
VEC_EDGES = [arr(0.0, -0.0, inf, -inf, nan, SUB)]

# -- reductions ------------------------------------------------------------
case("sum", ["np.sum", "method:sum"], lambda x: np.sum(x) + x.sum(),
     [ordinary(5)] + VEC_EDGES + [np.zeros(0)])
case("sum_axis", ["np.sum"], lambda x: wsum(np.sum(x, axis=0)) + wsum(np.sum(x, axis=1, keepdims=True)),
     [ordinary(3, 4), arr(inf, -inf, nan, 0.0, -0.0, 1.0, shape=(2, 3)), np.zeros((0, 3)),
      np.ones((1, 1)), np.asfortranarray(ordinary(3, 2))])
case("mean", ["np.mean", "method:mean"],
     lambda x: np.mean(x) + wsum(x.mean(axis=0)), [ordinary(3, 2), arr(inf, -inf, nan, 0.0,
                                                                       -0.0, SUB, shape=(3, 2))])
case("prod", ["np.prod", "method:prod"], lambda x: np.prod(x) + wsum(x.prod(axis=1)),
     [ordinary(2, 3), arr(0.0, 2.0, 3.0, 1.0, 1.0, 1.0, shape=(2, 3)),
      arr(0.0, 0.0, 2.0, 1.0, 1.0, 1.0, shape=(2, 3)), arr(0.0, inf, 1.0, nan, 0.0, 1.0, shape=(2, 3)),
      arr(-0.0, 1.0, 2.0, 0.0, -0.0, 1.0, shape=(2, 3))], exact=False)
case("max", ["np.max", "method:max"], lambda x: np.max(x) + 0.5 * x.max(), [arr(1.0, 4.0, 2.0)] + MAX_EDGES)
case("amax_axis", ["np.amax"], lambda x: wsum(np.amax(x, axis=0)),
     [ordinary(3, 2), arr(1.0, 2.0, 1.0, 2.0, nan, 0.0, shape=(3, 2)), arr(-0.0, 0.0, 0.0, -0.0, 0.0, 0.0, shape=(3, 2))])
case("min", ["np.min", "method:min"], lambda x: np.min(x) + 0.5 * x.min(), [arr(1.0, -4.0, 2.0)] + MIN_EDGES)
case("amin_axis", ["np.amin"], lambda x: wsum(np.amin(x, axis=1, keepdims=True)),
     [ordinary(2, 3), arr(1.0, 1.0, 2.0, nan, -inf, -inf, shape=(2, 3))])
case("ufunc_reduce", ["np.sum", "np.max", "np.min"],  # np.add/maximum/minimum.reduce are these
     lambda x: wsum(np.add.reduce(x)) + wsum(np.maximum.reduce(x, axis=1))
     + wsum(np.minimum.reduce(x, axis=0, keepdims=True)),
     [ordinary(3, 2), arr(1.0, 1.0, nan, 2.0, -inf, -inf, shape=(3, 2)),
      arr(-0.0, 0.0, inf, inf, 0.0, -0.0, shape=(3, 2))])
case("cumsum", ["np.cumsum", "method:cumsum"], lambda x: wsum(np.cumsum(x)) + wsum(x.cumsum(axis=0)),
     [ordinary(4), arr(inf, -inf, 1.0, nan), np.zeros(0)])
case("trace", ["np.trace", "method:trace"], lambda x: np.trace(x) + 2.0 * x.trace(offset=1),
     [ordinary(3, 3), arr(inf, 1.0, 2.0, nan, shape=(2, 2))])
case("diagonal", ["np.diagonal", "method:diagonal"],
     lambda x: wsum(np.diagonal(x)) + wsum(x.diagonal(offset=-1)),
     [ordinary(3, 4), arr(inf, 1.0, -0.0, nan, shape=(2, 2))])

# -- products and linalg ---------------------------------------------------
SQ = arr(2.0, 1.0, 0.5, 3.0, shape=(2, 2))
case("matmul", ["np.matmul"],
     lambda x: wsum(np.matmul(x, x.T)) + wsum(x @ x[0]),
     [ordinary(2, 3), arr(0.0, inf, 1.0, nan, 0.0, 2.0, shape=(2, 3)), np.zeros((2, 0)),
      np.asfortranarray(ordinary(3, 2)), arr(SUB, 1.0, -TINY, 2.0, shape=(2, 2))],
     exact=False)
case("matmul_batched", ["np.matmul"], lambda x: wsum(np.matmul(x, x[:, ::-1, :].transpose(0, 2, 1))),
     [ordinary(2, 2, 3)], exact=False)
case("matmul_broadcast", ["np.matmul"],
     lambda x: wsum(x @ x[0, 0]) + wsum(np.matmul(x[:1], x[1].T)),
     [ordinary(2, 3, 3), np.concatenate([np.eye(3)[None], np.zeros((1, 3, 3))])], exact=False)
case("dot", ["np.dot", "method:dot"], lambda x: np.dot(x[0], x[1]) + wsum(x.dot(x[0])) + np.dot(x[0, 0], x[1, 1]),
     [ordinary(3, 3), arr(0.0, inf, nan, -0.0, 1.0, 0.0, 2.0, 0.0, 1.0, shape=(3, 3))], exact=False)
case("inner_vdot", ["np.inner", "np.vdot"], lambda x: wsum(np.inner(x, x[::-1])) + np.vdot(x[0], x[1]) + np.vdot(x, x),
     [ordinary(2, 2), arr(0.0, inf, -0.0, nan, shape=(2, 2))], exact=False)
case("outer", ["np.outer"], lambda x: wsum(np.outer(x, x[::-1] * 2.0)),
     [ordinary(3), arr(0.0, inf, 1.0), arr(nan, 0.0, -0.0), np.zeros(0)], **SEVERAL_PATHS)
case("cross", ["np.cross"], lambda x: wsum(np.cross(x[:3], x[3:])),
     [ordinary(6), arr(0.0, inf, 1.0, 2.0, 0.0, nan)], exact=False)
SINGULAR = arr(1.0, 2.0, 2.0, 4.0, shape=(2, 2))
RANK1_3 = arr(1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 1.0, 1.0, 1.0, shape=(3, 3))
NAN_3 = arr(0.0, -inf, 1.0, nan, nan, 0.0, 0.0, -0.0, 0.0, shape=(3, 3))
NEAR_SINGULAR = [np.diag([SUB, 1.0, 2.0]), np.diag([inf, 1.0]), NAN_3]
case("det", ["np.linalg.det"], lambda x: np.linalg.det(x) + wsum(np.linalg.det(np.stack([x, 2.0 * x]))),
     [SQ, SINGULAR, RANK1_3, np.zeros((3, 3)), arr(5.0, shape=(1, 1)), arr(0.0, shape=(1, 1)),
      np.asfortranarray(RANK1_3)] + NEAR_SINGULAR + [arr(inf, shape=(1, 1)), arr(nan, shape=(1, 1))],
     exact=False)
case("slogdet", ["np.linalg.slogdet"], lambda x: np.linalg.slogdet(x)[1],
     [SQ, arr(-1.0, 2.0, 3.0, 1.0, shape=(2, 2)), SINGULAR, arr(3.0, shape=(1, 1))] + NEAR_SINGULAR,
     exact=False)
case("inv", ["np.linalg.inv"], lambda x: wsum(np.linalg.inv(x)),
     [SQ, arr(4.0, shape=(1, 1))] + NEAR_SINGULAR[:2],
     exact=False)
case("solve", ["np.linalg.solve"], lambda x: wsum(np.linalg.solve(x[:, :2], x[:, 2])),
     [np.hstack([SQ, arr(1.0, -1.0, shape=(2, 1))]), arr(2.0, 0.0, 0.0, 0.0, 3.0, 0.0, shape=(2, 3))],
     exact=False)

# -- shape functions ---------------------------------------------------------
case("reshape_ravel", ["np.reshape", "np.ravel", "method:reshape", "method:ravel", "method:flatten"],
     lambda x: wsum(np.reshape(x, (3, 2))) + wsum(x.reshape(6)) + wsum(np.ravel(x.T))
     + wsum(x.ravel()) + wsum(x.flatten()), [ordinary(2, 3), arr(0.0, -0.0, inf, -inf, nan, SUB, shape=(2, 3))])
case("transpose", ["np.transpose", "method:transpose"],
     lambda x: wsum(np.transpose(x, (2, 0, 1))) + wsum(x.transpose(1, 0, 2)) + wsum(x.T),
     [ordinary(2, 1, 3), arr(inf, nan, -0.0, 0.0, SUB, -inf, shape=(3, 1, 2))])
case("moveaxis_swapaxes", ["np.moveaxis", "np.swapaxes", "method:swapaxes"],
     lambda x: wsum(np.moveaxis(x, 0, -1)) + wsum(np.swapaxes(x, 0, 2)) + wsum(x.swapaxes(1, 2)),
     [ordinary(2, 1, 3)])
case("squeeze_expand", ["np.squeeze", "method:squeeze", "np.expand_dims", "np.atleast_1d", "np.atleast_2d"],
     lambda x: wsum(np.squeeze(x)) + wsum(x.squeeze(0)) + wsum(np.expand_dims(x, 1))
     + wsum(np.atleast_1d(x[0, 0])) + wsum(np.atleast_2d(x[0])), [ordinary(1, 3)])
case("broadcast_to", ["np.broadcast_to"], lambda x: wsum(np.broadcast_to(x, (3, 2))),
     [ordinary(2), arr(inf, nan)])
case("flip", ["np.flip", "view:negative-stride"],
     lambda x: wsum(np.flip(x)) + wsum(x[::-2]) + wsum(np.flip(x, 0)[1:]), [ordinary(5)])
case("concatenate_stack", ["np.concatenate", "np.stack"],
     lambda x: wsum(np.concatenate([x, 2.0 * x[::-1]])) + wsum(np.stack([x, x * x], axis=1)),
     [ordinary(3), VEC_EDGES[0], np.zeros(0)], **SEVERAL_PATHS)
case("hstack_vstack", ["np.hstack", "np.vstack"],
     lambda x: wsum(np.hstack([x, x[:1]])) + wsum(np.vstack([x, x * 3.0])), [ordinary(3)])

# -- copies and allocation ---------------------------------------------------
def _copies(x):
    c = np.copy(x)
    u = np.full_like(x, 2.0)
    return (wsum(c) + wsum(np.ones_like(x) * x) + wsum(u * x) + wsum(x.copy())
            + wsum(np.zeros_like(x) + x * 2.0) + wsum(x) * float(np.empty_like(x).shape[0]))


def _writes_into_new_buffers(x):
    z = np.zeros_like(x)
    e = np.empty_like(x)
    z[...] = x * 2.0
    e[...] = np.copy(x) * 3.0
    return wsum(z) + wsum(e)


case("copies", ["np.copy", "np.zeros_like", "np.empty_like", "np.ones_like", "np.full_like",
                "method:copy"], _copies, [ordinary(3), VEC_EDGES[0]])
case("astype", ["method:astype"], lambda x: wsum(x.astype(float)) + wsum(x.astype(np.float64) * x),
     [ordinary(3), VEC_EDGES[0]])
case("new_buffers", ["np.zeros_like", "np.empty_like"], _writes_into_new_buffers,
     [ordinary(3), VEC_EDGES[0]])


def _copyto(x):
    y = np.zeros_like(x)
    np.copyto(y, x * 2.0)
    np.copyto(y[:1], x[1:2])
    return wsum(y)


case("copyto", ["np.copyto"], _copyto, [ordinary(3), VEC_EDGES[0][:3]])


def _fill(x):
    y = x * 1.0
    y[1:].fill(2.0)
    return wsum(y) + wsum(x)


case("fill", ["method:fill"], _fill, [ordinary(3)])

# -- selection -------------------------------------------------------------
case("where", ["np.where"], lambda x: wsum(np.where(x > 0.0, np.sqrt(x), x * x)),
     [arr(1.0, -2.0, 4.0), arr(0.0, -0.0, -1.0, inf, -inf, nan, SUB), np.zeros(0)])
# A derivative that is exactly -0.0 is +0.0 in every engine: an adjoint is added
# into a zero shadow (docs/conventions-nonelementwise.md, signed zeros)
case("sum_of_squares", ["np.sum"], lambda x: np.sum(x * x), [arr(1.0, 2.0), arr(-0.0, 1.0, 0.0)])
case("negative_zero_factor", ["np.sum"],
     lambda x: np.sum(x * -0.0) + x[0] * x[1] + np.sum(np.sqrt(x * x) * 0.0),
     [arr(1.0, 2.0), arr(-0.0, 0.0), arr(-0.0, -1.0), arr(-0.0, inf)], smooth=False)
case("where_unselected_const", ["np.where"], lambda x: wsum(np.where(x > 0.0, np.log(x), 0.0)),
     [arr(1.0, 2.0), arr(0.0, -1.0, 2.0, -0.0, -inf, nan)])
case("where_unselected_inf", ["np.where"], lambda x: wsum(np.where(x > 0.0, np.log(x), 2.0 * x)),
     [arr(1.0, -2.0), arr(0.0, -1.0, -0.0, inf, nan)])
case("clip", ["np.clip", "method:clip"],
     lambda x: wsum(np.clip(x, -1.0, 2.0)) + wsum(x.clip(0.0)) + wsum(np.clip(x, None, 1.0)),
     [arr(0.5, -3.0, 3.0, 1.5), arr(-1.0, 2.0, 0.0, -0.0, 1.0), arr(inf, -inf, nan, SUB)])
case("clip_broadcast_bounds", ["np.clip"], lambda x: wsum(np.clip(x[:, :2], x[:1, 2:], 1.0)),
     [arr(0.5, -3.0, 0.25, 3.0, 0.1, 0.0, shape=(2, 3)), arr(0.0, 0.0, 0.0, 2.0, -1.0, 1.0, shape=(2, 3))])
case("where_broadcast", ["np.where"], lambda x: wsum(np.where(x[:1] > 0.0, x, x[1:] * 2.0)),
     [arr(1.0, -1.0, 0.5, 2.0, shape=(2, 2)), arr(0.0, nan, inf, -inf, shape=(2, 2))])
case("clip_array_bounds", ["np.clip"], lambda x: wsum(np.clip(x[:3], x[3:], 1.0)),
     [arr(0.5, -3.0, 3.0, 0.0, 0.0, 0.0), arr(1.0, 0.0, 2.0, 1.0, 0.0, 0.0),
      arr(1.0, nan, nan, nan, 0.0, nan), arr(2.0, -1.0, nan, 0.0, nan, inf)])


# -- derivative-free functions ----------------------------------------------------
def _argmax_index(x):
    return x[np.argmax(x)] * 2.0 + x[np.argmin(x)] + x[x.argmax()] + x[x.argmin()]


case("argmax_index", ["np.argmax", "np.argmin", "method:argmax", "method:argmin"], _argmax_index,
     [arr(1.0, 4.0, -2.0)] + MAX_EDGES)


def _sort_gather(x):
    order = np.argsort(x, kind="stable")
    return wsum(x[order]) + wsum(x[x.argsort()])


def _argsort_index(x):
    order = np.argsort(x)          # plain integers: the derivative follows numpy's choice
    first = np.nonzero(x)[0]
    return (x[int(order[0])] * 2.0 + x[int(x.argsort()[-1])] + x[int(first[0])] * 3.0
            + x[int(x.nonzero()[0][-1])])


case("argsort_index", ["np.argsort", "method:argsort", "np.nonzero", "method:nonzero"],
     _argsort_index, [arr(3.0, 1.0, 2.0), arr(2.0, 1.0, 2.0, 1.0), arr(0.0, -0.0, 1.0, 1.0),
                      arr(nan, 1.0, nan, -0.0, 0.0)])
case("argsort_gather", ["np.argsort", "method:argsort", "getitem:fancy"], _sort_gather,
     [arr(3.0, 1.0, 2.0), arr(2.0, 1.0, 2.0, 1.0), arr(nan, 1.0, nan, -0.0, 0.0)])


def _derivative_free(x):
    s = np.sum(np.sign(x) * x) + np.sum(np.floor(x) * x) + np.sum(np.ceil(x) * x)
    s = s + np.sum(np.round(x) * x) + np.sum(x.round(1) * x)
    if np.allclose(x, x) and np.all(np.isclose(x, x)):
        s = s + 2.0 * np.sum(x)
    if x.all() or x.any() or np.all(x) or np.any(x):
        s = s + np.sum(x * x)
    if np.all(np.isfinite(x)) and not np.any(np.isnan(x)) and not np.any(np.isinf(x)):
        s = s + 3.0 * np.sum(x)
    k = np.count_nonzero(x) + np.size(x) + np.ndim(x) + np.shape(x)[0]
    return s + float(k) * x[0]


case("derivative_free", ["np.sign", "np.floor", "np.ceil", "np.round", "method:round",
                         "np.allclose", "np.isclose", "np.all", "np.any", "method:all", "method:any",
                         "np.count_nonzero", "np.size", "np.ndim", "np.shape", "np.isfinite",
                         "np.isnan", "np.isinf"],
     _derivative_free, [arr(1.5, -2.5, 0.25), arr(0.0, -0.0, 0.5, -0.5, 2.5), arr(nan, inf, -inf)],
     smooth=False)


def _tests_of_values(x):
    s = np.sum(x)
    if np.array_equal(x, x) and np.result_type(x) == np.float64:
        s = s + 2.0 * x[0]
    if np.may_share_memory(x, x) and np.shares_memory(x, x):
        s = s + x[1]
    return s


case("tests_of_values", ["np.array_equal", "np.result_type", "np.may_share_memory",
                         "np.shares_memory"],
     _tests_of_values, [arr(1.5, -2.5, 0.25), arr(0.0, nan, inf)])


def _nonzero_gather(x):
    return (wsum(x[np.nonzero(x)]) + wsum(x[np.flatnonzero(x)]) + wsum(x[x.nonzero()])
            + wsum(x[np.argwhere(x)[:, 0]]) + wsum(x[np.searchsorted(np.arange(5.0), 2.5):]))


case("nonzero_gather", ["np.nonzero", "np.flatnonzero", "method:nonzero", "np.argwhere",
                        "np.searchsorted", "method:searchsorted"],
     _nonzero_gather, [arr(1.0, 0.0, -2.0, 3.0), arr(0.0, -0.0, nan, inf)], smooth=False)

# -- indexing ---------------------------------------------------------------
case("getitem_basic", ["getitem:basic", "view:negative-stride"],
     lambda x: x[1, 2] * 3.0 + wsum(x[0]) + wsum(x[:, 1:3]) + wsum(x[None, ..., -1]) + wsum(x[::-1, ::2]),
     [ordinary(2, 4), arr(0.0, -0.0, inf, -inf, nan, SUB, 1.0, 2.0, shape=(2, 4)),
      np.asfortranarray(ordinary(2, 4))])
# issue #14's second example: a zero adjoint through sqrt's infinite partial at 0
case("sqrt_index", ["getitem:basic"], lambda x: np.sqrt(x)[0],
     [arr(4.0, 1.0), arr(4.0, 0.0), arr(0.0, 4.0), arr(4.0, -1.0)])
case("getitem_fancy", ["getitem:fancy"],
     lambda x: wsum(x[[0, 2, 2, 0]]) + wsum(x[np.array([1, -1])]),
     [ordinary(3), arr(inf, nan, -0.0)])
case("getitem_fancy_2d", ["getitem:fancy"],
     lambda x: wsum(x[[0, 1, 1], [2, 0, 0]]) + wsum(x[:, [1, 1]]), [ordinary(2, 3)])
case("take", ["np.take", "method:take"],
     lambda x: wsum(np.take(x, [0, 2, 2])) + wsum(x.take([1, 1], axis=0)) + wsum(np.take(x, -1)),
     [ordinary(3), arr(inf, nan, -0.0)])
case("getitem_boolean", ["getitem:boolean"],
     lambda x: wsum(x[x > 0.0]) + wsum(x[np.array([True, False, True, False])]),
     [arr(1.0, -1.0, 2.0, 0.5), arr(0.0, -0.0, nan, inf)])


def _setitem_basic(x):
    y = x * 1.0
    y[0] = x[1] * x[2]
    y[1:3] = x[:2] * 2.0
    y[::-1][0] = 5.0
    x[1] = y[0] * 0.5         # x overwritten: its gradient is with respect to its value before
    return wsum(y) + wsum(x)


case("setitem_basic", ["setitem:basic"], _setitem_basic,
     [ordinary(4), arr(inf, 0.0, nan, -0.0), arr(0.0, inf, 0.0, 1.0)], **SEVERAL_PATHS)


def _setitem_fancy(x):
    y = x * 1.0
    y[[0, 2, 0]] = x[1:] * 3.0     # repeated index: the last write wins
    return wsum(y) + wsum(x)


case("setitem_fancy", ["setitem:fancy"], _setitem_fancy, [ordinary(4), arr(nan, inf, 0.0, -0.0)])


def _setitem_boolean(x):
    y = x * 2.0
    y[x < 0.0] = 0.0
    y[np.array([True, False, False, True])] = x[1:3] * x[1:3]
    return wsum(y)


case("setitem_boolean", ["setitem:boolean"], _setitem_boolean,
     [arr(1.0, -1.0, 2.0, -0.5), arr(-0.0, 0.0, nan, -inf)])


def _view_write_through(x):
    v = x[1:]
    v *= 2.0                  # writes into x through the view
    w = x.reshape(2, 2)
    w[0, :] = w[1, :] * x[0]
    return wsum(x)


case("view_write_through", ["view:write-through", "out:*="], _view_write_through,
     [ordinary(4), arr(0.0, inf, -0.0, nan)])


def _overlapping(x):
    x[1:] += x[:-1]           # numpy reads the overlapping source as it was (a buffered copy)
    x[:-1] = x[1:] * 2.0
    x[::-1] -= x
    return wsum(x)


case("view_overlapping", ["view:overlapping", "out:+=", "out:-="], _overlapping,
     [ordinary(5), arr(inf, 0.0, nan, -0.0, 1.0)])


# -- out= forms and in-place operators -------------------------------------------------
def _inplace_ops(x):
    y = x * 1.0
    y *= x
    y /= 2.0
    y **= 2.0
    y -= x
    y += 1.0
    return wsum(y)


case("inplace_operators", ["out:+=", "out:-=", "out:*=", "out:/=", "out:**="], _inplace_ops,
     [ordinary(4), arr(0.0, -0.0, inf, nan)], **SEVERAL_PATHS)


def _ufunc_out(x):
    y = np.zeros_like(x)
    np.multiply(x, x, out=y)
    np.add(y, x, out=y)
    np.exp(x, out=x)           # x overwritten
    return wsum(y) + wsum(x)


case("ufunc_out", ["out:ufunc"], _ufunc_out, [ordinary(3), arr(0.0, -inf, nan)], **SEVERAL_PATHS)


def _reduction_out(x):
    r = np.zeros(x.shape[1:])
    t = np.zeros_like(x[0])
    out = 0.0
    np.sum(x, axis=0, out=t)
    s = wsum(t)
    np.mean(x, axis=0, out=t)
    s = s + wsum(t)
    np.prod(x, axis=0, out=t)
    s = s + wsum(t)
    np.max(x, axis=0, out=t)
    s = s + wsum(t)
    np.amax(x, axis=0, out=t)
    s = s + wsum(t)
    np.min(x, axis=0, out=t)
    s = s + wsum(t)
    np.amin(x, axis=0, out=t)
    s = s + wsum(t)
    np.clip(x[0], -0.5, 0.5, out=t)
    s = s + wsum(t)
    c = np.zeros_like(x)
    np.cumsum(x, axis=0, out=c)
    del r, out
    return s + wsum(c)


case("reduction_out", ["out:np.sum", "out:np.mean", "out:np.prod", "out:np.max", "out:np.amax",
                       "out:np.min", "out:np.amin", "out:np.clip", "out:np.cumsum"],
     _reduction_out, [ordinary(2, 3), arr(1.0, nan, 0.0, 1.0, -inf, -0.0, shape=(2, 3))],
     smooth=True, exact=False)


def _product_out(x):
    a = np.reshape(x[:4], (2, 2))
    m = np.zeros_like(a)
    np.matmul(a, a, out=m)
    d = np.zeros_like(a)
    np.dot(a, a.T, out=d)
    m @= a
    return wsum(m) + wsum(d)


case("product_out", ["out:np.matmul", "out:np.dot", "out:@="], _product_out,
     [ordinary(6), arr(0.0, inf, nan, -0.0, 1.0, 0.0)], exact=False)


# -- kernels -------------------------------------------------------------------
def _axpy(x):
    y = x * x
    sad.axpy(x[0], x[1:], y[:-1])
    sad.axpy(2.0, x, y)
    return wsum(y) + wsum(x)


case("axpy", ["sad.axpy"], _axpy, [ordinary(3), arr(0.0, inf, nan), arr(inf, 0.0, -0.0)],
     **SEVERAL_PATHS)


def _scal(x):
    y = x * 1.0
    sad.scal(x[0], y)
    sad.scal(0.5, x)
    return wsum(y) + wsum(x)


case("scal", ["sad.scal"], _scal, [ordinary(3), arr(0.0, inf, nan), arr(inf, 0.0, -0.0)], **SEVERAL_PATHS)


def _setindex(x):
    y = x * 1.0
    sad.setindex(y, 0, x[1] * x[2])
    sad.setindex(y, slice(1, None), x[:2])
    sad.setindex(x, 2, 7.0)
    return wsum(y) + wsum(x)


case("setindex", ["sad.setindex"], _setindex, [ordinary(3), arr(inf, 0.0, nan)], **SEVERAL_PATHS)


def _vector(x):
    v = sad.Vector()
    v.push(x[0] * 2.0)
    v.push(x[1:])
    v[1] = x[2] * x[0]          # store
    a = v[2]                    # load
    b = v.pop()
    c = v.pop()
    return a * 3.0 + b + c * 5.0 + v[0] + wsum(v[:])


case("vector", ["sad.Vector.push", "sad.Vector.pop", "sad.Vector.load", "sad.Vector.store"], _vector,
     [ordinary(3), arr(inf, nan, 0.0)])


def _g(a, b):
    return a * np.sin(b) + np.sqrt(a * a + 1.0)


def _fwddiff(x):
    return wsum(sad.fwddiff(_g)(x[:3], x[3:])) + wsum(sad.fwddiff(np.exp)(x))


case("fwddiff", ["sad.fwddiff"], _fwddiff, [ordinary(6), arr(0.0, inf, nan, -0.0, inf, 1.0)],
     exact=False)
from conformance_cases_stats import *  # noqa
from conformance_cases_shape import *  # noqa
from conformance_cases_linalg import *  # noqa
from conformance_cases_ew import *  # noqa
