"""What a primitive is, and the registry that maps numpy functions to them.

A ``Primitive`` holds one operation's derivative, once:

* ``impl(*operands, **params)``: the value (numpy on whatever it is given:
  plain arrays, traced values of an enclosing differentiation, Boxes of a
  nested one);
* ``jvp(tangents, operands, out, params)``: the output's tangent, where a
  tangent is None for an operand that is constant;
* ``vjp(k, g, operands, out, params)``: the adjoint of operand ``k`` for the
  output's adjoint ``g`` (None: no contribution), of operand k's shape.

Both formulas are written in generic numpy, so every engine can run them on
its own values: the reverse engine on plain arrays at sweep time, the
forward engine once per lane, the nested engine on values one level down
(which the enclosing differentiation then records and differentiates).
``defbilinear`` derives the JVP of a product-like operation from ``impl``
itself (as JAX's ``deflinear2`` and autograd's ``def_linear`` do), so only
its two transposes are written.

The engines' fast paths (C records, a batched tangent over lanes) are
registered on the primitive as specialisations keyed by engine; each has a
test comparing it bit for bit with the generic path, which ``generic_only``
forces.
"""
import contextlib
import contextvars

__all__ = ["Primitive", "deflinear", "defbilinear", "implements", "registered",
           "generic_only", "generic_only_active", "specialised", "BINDERS", "apply"]


class Primitive:
    __slots__ = ("name", "impl", "jvp", "vjp", "reads_out", "reads", "reads_for", "mutates",
                 "specialisations", "derived", "ufunc_out", "__weakref__")

    def __init__(self, name, impl, jvp=None, vjp=None, reads_out=False, mutates=(), reads=None):
        """``reads_out``: vjp reads ``out`` (else it is given None, and a
        reverse record need not keep the result alive).  ``mutates=(k,)``:
        the value is operand k's new content, which the engines store into
        operand k (``a[idx] = v``); then ``jvp`` gives that operand's new
        tangent, ``vjp(k, g, ...)`` its adjoint before the call from ``g``,
        its adjoint after, and the other operands' adjoints as usual.
        ``reads``: the operands whose values vjp reads (None: all of them);
        of the others it reads only the shape and dtype, so a reverse record
        need not keep their memory alive.  ``reads_for[k]``, when set: the
        operands vjp reads for operand k's adjoint."""
        self.name, self.impl, self.jvp, self.vjp = name, impl, jvp, vjp
        self.reads_out, self.mutates = reads_out, tuple(mutates)
        self.reads = None if reads is None else tuple(reads)
        self.reads_for = None
        # a ufunc's primitive: its result broadcasts into out= (numpy's ufuncs
        # broadcast to out's shape; other functions want out's shape exactly)
        self.ufunc_out = False
        self.specialisations = {}
        # the record protocol's rule the engines derive from this primitive
        # (made once, and gone with the primitive: some are made per call)
        self.derived = None

    def specialise(self, engine):
        """Register ``fn`` as ``engine``'s fast path for this primitive (what
        it takes and returns is the engine's business; see the engines)."""
        def register(fn):
            self.specialisations[engine] = fn
            return fn
        return register

    def __repr__(self):
        return f"Primitive({self.name})"


def deflinear(prim, transpose):
    """``prim`` is linear in its one operand: its tangent is impl(dx), and the
    adjoint of the operand is ``transpose(g, x, params)``."""
    impl = prim.impl

    def jvp(ts, vals, out, params):
        return impl(ts[0], **params)

    def vjp(k, g, vals, out, params):
        return transpose(g, vals[0], params)

    prim.jvp, prim.vjp = jvp, vjp
    prim.reads = ()  # a transpose reads the operand's shape and dtype, not its values
    return prim


def defbilinear(prim, transpose_left, transpose_right, product=None):
    """``prim`` is linear in each of its two operands: its tangent is
    product(da, b) + product(a, db), and the adjoint of operand 0 (1) is
    ``transpose_left(g, a, b, params)`` (``transpose_right``).  ``product``
    is impl formed as the chain rule forms it (default impl itself)."""
    impl = prim.impl if product is None else product

    def jvp(ts, vals, out, params):
        ta, tb = ts
        a, b = vals
        da = None if ta is None else impl(ta, b, **params)
        db = None if tb is None else impl(a, tb, **params)
        if da is None:
            return db
        return da if db is None else da + db

    transposes = (transpose_left, transpose_right)

    def vjp(k, g, vals, out, params):
        return transposes[k](g, vals[0], vals[1], params)

    prim.jvp, prim.vjp = jvp, vjp
    return prim


# --------------------------------------------------------------------------
# binding a primitive without a numpy spelling

# value type -> (level, the engine's bind(prim, operands, params)).  Level 0:
# the reverse and forward engines, whose values run a numpy impl themselves
# (their dispatch records what the impl does); level 1: a nested
# differentiation's Box, which is innermost and cannot.
BINDERS = {}


def apply(prim, operands, params, numpy_impl=True):
    """``prim`` on any engine's values, for formulas that call a primitive
    with no numpy spelling.  ``numpy_impl=False``: the impl runs on plain
    values only (a C rule's parts), so every engine binds it."""
    best = None
    for x in operands:
        b = BINDERS.get(type(x))
        if b is not None and (b[0] or not numpy_impl) and (best is None or b[0] > best[0]):
            best = b
    if best is None:
        return prim.impl(*operands, **params)
    return best[1](prim, operands, params)


# --------------------------------------------------------------------------
# the registry: numpy function -> entry(bind, *args, **kwargs)
#
# An entry parses numpy's signature into operands and static params and calls
# ``bind(prim, operands, params, out)``, which each engine supplies; so a
# numpy function's argument handling is written once too.

_ENTRIES = {}


def implements(*funcs):
    def register(entry):
        for f in funcs:
            _ENTRIES[f] = entry
        return entry
    return register


def registered():
    """(numpy function, entry) pairs, for the engines to bind."""
    return list(_ENTRIES.items())


_generic = contextvars.ContextVar("shadowad_generic_only", default=False)


@contextlib.contextmanager
def generic_only():
    """Engines ignore every specialisation while this is active: for tests
    comparing a fast path with the generic derivation."""
    token = _generic.set(True)
    try:
        yield
    finally:
        _generic.reset(token)


def generic_only_active():
    """Is generic_only in force?  (For fast paths that run before the
    registry is consulted, such as TArray's np.outer shortcut.)"""
    return _generic.get()


def specialised(prim, engine):
    """``engine``'s specialisation of ``prim``, or None (also under
    generic_only)."""
    fn = prim.specialisations.get(engine)
    if fn is None or _generic.get():
        return None
    return fn
