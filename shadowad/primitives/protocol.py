"""The record protocol (DESIGN.md section 4, "Custom rules"), EnzymeRules'
``augmented_primal``/``reverse`` pair, and the rule every Primitive derives
from its definition.

A rule's ``augmented_primal(config, *args, **params)`` performs the primal
effects and returns ``AugmentedReturn(primal=..., tape=...)``: what the
reverse pass needs that memory will not hold.  ``reverse(config, dret, tape,
*args, **params)`` runs in the sweep with every argument's memory as it was
before the call; the arguments arrive as activity objects (``Duplicated``
with ``.dval`` the adjoint memory of an active array, ``Active`` for an
active scalar, ``Const`` otherwise); it adds into read-only arguments'
``.dval`` and returns one entry per argument: the gradient of an ``Active``,
else None.  ``params`` are static keyword options (axes, flags), never
differentiated.  The built-in records use exactly this protocol; user rules
(``sad.custom_rule``) are the same objects written by hand.

A rule's ``mutates`` (a tuple of argument positions; () or absent: none)
names the arguments its ``augmented_primal`` overwrites.  The engine saves
their bytes before the call and puts them back before ``reverse`` runs (and
again after, for a replay), so ``reverse`` reads every argument as it was
before the call.  A mutated ``Duplicated`` argument's ``.dval`` arrives
holding the adjoint of its content after the call; ``reverse`` leaves there
the adjoint of its content before the call (zero where the call overwrote
it without reading it).  ``dret`` is None for such a call (it returns None).

A rule's ``forward(config, *args, **params)`` is the tangent half: active
arguments arrive as ``Duplicated(val, dval)`` with ``dval`` the tangent (for
``config.width`` > 1 as ``BatchDuplicated(val, dvals)``, one tangent per
lane); it performs the primal effects, writes a mutated argument's new
tangent into its ``.dval``, and returns ``(primal, tangent)`` of the result
(``tangent`` a tuple of ``width`` tangents when width > 1), or None when the
call returns None.
"""
import numpy as np

from ..activity import Active, BatchDuplicated, Const

__all__ = ["Config", "AugmentedReturn", "DerivedRule", "add_to_shadow", "delivered"]


class Config:
    """What the engine asks of a rule: ``needs_primal`` (the caller uses the
    result's value), ``width`` (shadows per active value: 1, or the lanes of
    BatchDuplicated) and ``mode`` (an activity.Mode)."""

    __slots__ = ("needs_primal", "width", "mode")

    def __init__(self, needs_primal, width, mode):
        self.needs_primal, self.width, self.mode = needs_primal, width, mode

    def __repr__(self):
        return (f"Config(needs_primal={self.needs_primal}, width={self.width}, "
                f"mode={self.mode})")


class AugmentedReturn:
    """The primal result of a call and the ``tape`` its reverse needs."""

    __slots__ = ("primal", "tape")

    def __init__(self, primal=None, tape=None):
        self.primal, self.tape = primal, tape

    def __repr__(self):
        return f"AugmentedReturn(primal={self.primal!r}, tape={self.tape!r})"


def add_to_shadow(arg, c):
    """arg.dval += c (c has arg's shape).  An engine's argument object may
    know a cheaper way (storing into adjoint memory no record has touched
    yet, summing into a broadcast view): its ``accumulate``."""
    acc = getattr(arg, "accumulate", None)
    if acc is not None:
        acc(c)
    else:
        arg.dval += c


def delivered(args, adjoints):
    """What a ``reverse`` returns, given each argument's adjoint contribution
    (None: none): an ``Active``'s is returned, a ``Duplicated``'s added into
    its ``.dval`` (None in its entry)."""
    grads = []
    for a, c in zip(args, adjoints):
        if c is not None and not isinstance(a, Active):
            add_to_shadow(a, c)
            c = None
        grads.append(c)
    return tuple(grads)


class DerivedRule:
    """The record of a Primitive: the primal by ``impl``; the reverse by
    ``vjp``, operand by operand.  Nothing is copied: the operands are read
    from memory at sweep time (restored by then), and the result only when
    the primitive's vjp reads it."""

    __slots__ = ("prim", "mutates", "reads", "reads_for")

    def __init__(self, prim):
        self.prim = prim
        self.mutates = prim.mutates
        self.reads, self.reads_for = prim.reads, prim.reads_for

    def augmented_primal(self, config, *args, **params):
        prim = self.prim
        z = prim.impl(*[a.val for a in args], **params)
        if self.mutates:  # a mutating primitive's value is the operand's new content
            args[self.mutates[0]].val[...] = z
            return AugmentedReturn(primal=None, tape=None)
        return AugmentedReturn(primal=z, tape=z if prim.reads_out else None)

    def forward(self, config, *args, **params):
        prim = self.prim
        vals = [a.val for a in args]
        z = prim.impl(*vals, **params)
        if config.width == 1:
            ts = [None if isinstance(a, Const) else a.dval for a in args]
            dz = prim.jvp(ts, vals, z, params)
        else:
            dz = tuple(prim.jvp([None if isinstance(a, Const) else a.dvals[lane] for a in args],
                                vals, z, params) for lane in range(config.width))
        if self.mutates:  # the operand's new content and tangents
            m = args[self.mutates[0]]
            if isinstance(m, BatchDuplicated):
                for d, t in zip(m.dvals, dz):
                    d[...] = t
            elif not isinstance(m, Const):
                m.dval[...] = dz
            m.val[...] = z
            return None
        return z, dz

    def reverse(self, config, dret, tape, *args, **params):
        vjp = self.prim.vjp
        vals = [a.val for a in args]
        mutated = self.mutates
        if mutated:
            target = args[mutated[0]]
            if type(target) is Const:  # the engine makes it Duplicated if anything is active
                return (None,) * len(args)
            dret = np.array(target.dval)  # the adjoint after; dval becomes the one before
        adjoints = []
        for k, a in enumerate(args):
            c = None
            if type(a) is not Const:
                c = vjp(k, dret, vals, tape, params)
                if k in mutated:  # its adjoint before the call, not a contribution
                    a.dval[...] = c
                    c = None
            adjoints.append(c)
        return delivered(args, adjoints)

    def __repr__(self):
        return f"DerivedRule({self.prim.name})"
