"""np.einsum as one multilinear primitive.

The entry rewrites any subscripts numpy accepts (implicit or explicit
output, ellipsis, the operand-list form) into a normal form: one letter per
axis, no ellipsis, every letter of one size wherever it occurs (an axis of
size 1 that numpy would broadcast is reshaped away from its operand).  On
that form the derivative is short:

* tangent: the sum over operands k of the einsum with operand k replaced by
  its tangent (multilinear);
* adjoint of operand k: the einsum of the output's adjoint with the other
  operands, written to operand k's letters.  A letter repeated in operand k
  (a diagonal, ``'ii->i'``) gets a fresh letter and an identity factor that
  puts the adjoint on the diagonal; a letter summed out of operand k alone
  (``'ij->i'``) gets a factor of ones, which broadcasts the adjoint along it.

Every product the chain rule forms follows the zero-factor convention term
by term (primitives/contractions.py): where numpy's einsum gives NaN, the
entries are recomputed as the sum of their terms, each term exactly 0 when a
factor is 0 (the full product over all letters is formed there, so that
fallback costs the size of the index space; it runs only where a NaN
appears).
"""
import numpy as np

from ..support.products import times
from .core import Primitive, implements
from .values import float_dtype, plain, shape_of

__all__ = ["einsum", "einsum_times", "normal_subscripts"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --------------------------------------------------------------------------
# the normal form

def _sublist_letters(sub):
    """numpy's operand-list subscripts ([0, 1, Ellipsis]) as tokens."""
    toks = []
    for s in sub:
        if s is Ellipsis:
            toks.append("...")
        else:
            i = int(s)
            if not 0 <= i < len(_LETTERS):
                raise ValueError(f"np.einsum: subscript {s!r} out of range [0, 52)")
            toks.append(_LETTERS[i])
    return toks


def _tokens(s):
    """A subscript string as tokens (letters and '...'), spaces dropped."""
    s = s.replace(" ", "")
    toks, i = [], 0
    while i < len(s):
        if s.startswith("...", i):
            toks.append("...")
            i += 3
        elif s[i] in _LETTERS:
            toks.append(s[i])
            i += 1
        else:
            raise ValueError(f"np.einsum: invalid subscript {s[i]!r} in {s!r}")
    return toks


def _parse(args):
    """(operand tokens, output tokens or None for implicit, operands)."""
    if isinstance(args[0], str):
        spec, operands = args[0], list(args[1:])
        if "->" in spec:
            left, right = spec.split("->")
            out = _tokens(right)
        else:
            left, out = spec, None
        ins = [_tokens(s) for s in left.split(",")]
    else:
        operands, ins = [], []
        rest = list(args)
        while len(rest) >= 2:
            operands.append(rest.pop(0))
            ins.append(_sublist_letters(rest.pop(0)))
        out = _sublist_letters(rest[0]) if rest else None
    if len(ins) != len(operands):
        raise ValueError(f"np.einsum: {len(ins)} subscripts for {len(operands)} operands")
    return ins, out, operands


def normal_subscripts(args):
    """(subscripts, operand shapes to reshape to (None: keep), operands):
    numpy's einsum arguments in the normal form described above."""
    ins, out, operands = _parse(args)
    shapes = [shape_of(op) for op in operands]
    used = {t for toks in ins for t in toks if t != "..."} | set(out or ())
    fresh = [c for c in _LETTERS if c not in used]
    nell = 0
    for toks, shape in zip(ins, shapes):
        named = sum(1 for t in toks if t != "...")
        if "..." in toks:
            nell = max(nell, len(shape) - named)
        elif named != len(shape):
            raise ValueError(f"np.einsum: operand has {len(shape)} axes but subscripts "
                             f"{''.join(toks)!r} name {named}")
    if nell > len(fresh):
        raise ValueError("np.einsum: too many axes for the subscript letters")
    ell = fresh[:nell]
    full = []
    for toks, shape in zip(ins, shapes):
        letters = []
        for t in toks:
            if t == "...":
                k = len(shape) - sum(1 for u in toks if u != "...")
                letters.extend(ell[nell - k:])
            else:
                letters.append(t)
        full.append(letters)
    sizes = {}
    for letters, shape in zip(full, shapes):
        for c, n in zip(letters, shape):
            if sizes.get(c, 1) != 1 and n != 1 and sizes[c] != n:
                raise ValueError(f"np.einsum: operands could not be broadcast: subscript "
                                 f"{c!r} has sizes {sizes[c]} and {n}")
            sizes[c] = max(sizes.get(c, 1), n)
    if out is None:
        counts = {}
        for letters in full:
            for c in letters:
                counts[c] = counts.get(c, 0) + 1
        named = sorted((c for c, n in counts.items() if n == 1 and c not in ell), key=ord)
        out_letters = ell + named
    else:
        out_letters = []
        for t in out:
            out_letters.extend(ell if t == "..." else [t])
        if len(set(out_letters)) != len(out_letters):
            raise ValueError("np.einsum: an output subscript is repeated")
        for c in out_letters:
            if c not in sizes:
                raise ValueError(f"np.einsum: output subscript {c!r} is not in any operand")
    reshapes, kept = [], []
    for letters, shape in zip(full, shapes):
        keep = [(c, n) for c, n in zip(letters, shape) if not (n == 1 and sizes[c] != 1)]
        if len(keep) != len(letters):
            reshapes.append(tuple(n for _, n in keep))
        else:
            reshapes.append(None)
        kept.append("".join(c for c, _ in keep))
    return ",".join(kept) + "->" + "".join(out_letters), reshapes, operands


def _split(subscripts):
    left, out = subscripts.split("->")
    return left.split(","), out


# --------------------------------------------------------------------------
# the product under the zero-factor convention

def _terms(subscripts, ops):
    """The einsum as the sum of its terms, each term a product under the
    convention: every operand laid out over all letters, multiplied, summed."""
    ins, out = _split(subscripts)
    letters = []
    for s in ins:
        letters.extend(c for c in s if c not in letters)
    full = "".join(letters)
    sizes = {c: n for s, op in zip(ins, ops) for c, n in zip(s, shape_of(op))}
    prod = None
    for s, op in zip(ins, ops):
        uniq = "".join(dict.fromkeys(s))
        ordered = "".join(c for c in full if c in uniq)
        laid = np.einsum(f"{s}->{ordered}", op)
        laid = np.reshape(laid, tuple(sizes[c] if c in uniq else 1 for c in full))
        prod = laid if prod is None else times(prod, laid, plain)
    return np.einsum(f"{full}->{out}", prod)


def einsum_times(subscripts, *ops, optimize=False):
    """np.einsum on engine values, under the zero-factor convention."""
    with np.errstate(invalid="ignore"):
        r = np.einsum(subscripts, *ops, optimize=optimize)
        nan = np.isnan(plain(r))
        if len(ops) < 2 or not np.any(nan):
            return r
        terms = _terms(subscripts, ops)
    if np.ndim(nan) == 0:
        return terms
    return np.where(nan, terms, r)


# --------------------------------------------------------------------------
# the primitive

def _impl(*ops, subscripts, optimize):
    return np.einsum(subscripts, *ops, optimize=optimize)


def _derived_optimize(opt, nops):
    """The chain rule's einsums have other operands than the user's (and
    extra factors), so a path computed for the user's does not fit them;
    with three operands or more they take numpy's greedy path (a naive loop
    over every index would cost the product of all sizes)."""
    if nops < 3:
        return False
    return "greedy" if opt is False or isinstance(opt, (list, tuple)) else opt


def _jvp(ts, vals, out, params):
    sub = params["subscripts"]
    opt = _derived_optimize(params["optimize"], len(vals))
    r = None
    for k, t in enumerate(ts):
        if t is None:
            continue
        ops = list(vals)
        ops[k] = t
        term = einsum_times(sub, *ops, optimize=opt)
        r = term if r is None else r + term
    return r


def _vjp(k, g, vals, out, params):
    ins, out_sub = _split(params["subscripts"])
    target = ins[k]
    used = set(params["subscripts"])
    fresh = iter(c for c in _LETTERS if c not in used)
    sizes = {c: n for s, v in zip(ins, vals) for c, n in zip(s, shape_of(v))}
    subs, ops = [out_sub], [g]
    for j, (s, v) in enumerate(zip(ins, vals)):
        if j != k:
            subs.append(s)
            ops.append(v)
    result, seen = [], set()
    for c in target:
        if c in seen:  # a diagonal: the adjoint lands where the two letters agree
            d = next(fresh)
            subs.append(c + d)
            ops.append(np.eye(sizes[c], dtype=float_dtype(g)))
            result.append(d)
        else:
            seen.add(c)
            result.append(c)
    present = set("".join(subs))
    for c in dict.fromkeys(target):
        if c not in present:  # summed out of operand k alone: broadcast along it
            subs.append(c)
            ops.append(np.ones(sizes[c], float_dtype(g)))
    spec = ",".join(subs) + "->" + "".join(result)
    opt = _derived_optimize(params["optimize"], len(ops))
    return einsum_times(spec, *ops, optimize=opt)


einsum = Primitive("einsum", _impl, _jvp, _vjp)


def _view(op, sub, out):
    """A one-operand einsum that sums nothing is a view in numpy (an axis
    permutation, diagonals): the same view here, so that a write into it
    reaches the operand (numpy's np.diagonal views, which this uses, are
    read-only: a write into a diagonal is refused rather than lost)."""
    letters = list(sub)
    while len(set(letters)) != len(letters):
        c = next(c for c in letters if letters.count(c) > 1)
        p = letters.index(c)
        q = letters.index(c, p + 1)
        op = np.diagonal(op, 0, p, q)
        letters = [x for i, x in enumerate(letters) if i not in (p, q)] + [c]
    perm = tuple(letters.index(c) for c in out)
    return op if perm == tuple(range(len(perm))) else np.transpose(op, perm)

_EINSUM_OPTIONS = {"dtype": None, "order": "K", "casting": "safe"}


@implements(np.einsum)
def einsum_entry(bind, *args, out=None, optimize=False, **kwargs):
    for key, value in kwargs.items():
        if key not in _EINSUM_OPTIONS:
            raise TypeError(f"np.einsum() got an unexpected keyword argument {key!r}")
        if key == "dtype" and value is not None and np.dtype(value) != np.float64:
            raise TypeError(f"shadowad: np.einsum(..., dtype={np.dtype(value)}) of traced "
                            "values would drop their derivative (traced results are float64); "
                            "leave dtype out")
    if not args:
        raise TypeError("np.einsum() needs subscripts and operands")
    subscripts, reshapes, operands = normal_subscripts(args)
    ops = []
    for op, shape in zip(operands, reshapes):
        if type(op) is list or type(op) is tuple:
            op = np.asarray(op, dtype=np.float64)
        ops.append(op if shape is None else np.reshape(op, shape))
    ins, out_sub = _split(subscripts)
    if len(ops) == 1 and out is None and set(ins[0]) == set(out_sub):
        return _view(ops[0], ins[0], out_sub)
    return bind(einsum, tuple(ops), {"subscripts": subscripts, "optimize": optimize}, out)
