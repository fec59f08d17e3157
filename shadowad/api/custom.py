"""sad.custom_rule: a user's derivative of a function, in the record protocol
that every built-in rule follows (shadowad/primitives/protocol.py).

    @sad.custom_rule(mutates=("d",))
    def thomas(a, b, c, d): ...               # the plain function

    @thomas.augmented_primal
    def _(config, a, b, c, d): ...            # primal effects -> AugmentedReturn

    @thomas.reverse
    def _(config, dret, tape, a, b, c, d): ...

    @thomas.forward
    def _(config, a, b, c, d): ...            # -> (primal, tangent) or None

Outside a differentiation the rule object calls the plain function.  Inside
one, the engines hand the call to shadowad/engines/rules/custom.py, which
passes the arguments as activity objects and checks what the parts return.
"""
import functools
import inspect

from ..engines.rules import custom as engine

__all__ = ["custom_rule", "CustomRule"]


def custom_rule(fn=None, *, mutates=(), implements=None):
    """Make ``fn`` a function with user-defined derivatives.

    ``mutates``: the names of the arguments ``fn`` overwrites (the engine
    saves their bytes before the call and restores them for ``reverse``).
    ``implements``: a numpy function (dispatched through
    ``__array_function__``) or a ufunc without a built-in rule, whose calls
    on traced values this rule then differentiates."""
    if fn is None:
        return lambda f: CustomRule(f, mutates=mutates, implements=implements)
    return CustomRule(fn, mutates=mutates, implements=implements)


class CustomRule:
    """A function with user-defined derivative parts; see custom_rule."""

    def __init__(self, fn, mutates=(), implements=None):
        if not callable(fn):
            raise TypeError(f"sad.custom_rule decorates a function, got {type(fn).__name__}")
        if isinstance(mutates, str):
            mutates = (mutates,)
        self.fn = fn
        self.name = getattr(fn, "__name__", "custom rule")
        self.signature = _positional_signature(fn, self.name)
        names = list(self.signature.parameters)
        for m in mutates:
            if m not in names:
                raise ValueError(f"sad.custom_rule({self.name}): mutates names {m!r}, which is "
                                 f"not an argument of {self.name}{self.signature}")
        self.mutates = tuple(sorted(names.index(m) for m in set(mutates)))
        self.augmented_primal_fn = self.reverse_fn = self.forward_fn = None
        self.implements = None
        functools.update_wrapper(self, fn)
        if implements is not None:
            self.implements = implements
            engine.register(self, implements)

    # -- the derivative parts, registered by decorators ------------------------
    def augmented_primal(self, fn):
        self.augmented_primal_fn = _part(self, fn, "augmented_primal")
        return fn

    def reverse(self, fn):
        self.reverse_fn = _part(self, fn, "reverse")
        return fn

    def forward(self, fn):
        self.forward_fn = _part(self, fn, "forward")
        return fn

    def unregister(self):
        """Give ``implements``'s function back its previous rule (if any)."""
        if self.implements is not None:
            engine.unregister(self, self.implements)
            self.implements = None

    # -- calls ---------------------------------------------------------------
    def bind(self, args, kwargs):
        """The arguments in the function's order, defaults filled in."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{self.name}: {e}") from None
        bound.apply_defaults()
        return list(bound.args)

    def __call__(self, *args, **kwargs):
        values = self.bind(args, kwargs)
        return engine.call(self, values)

    def __repr__(self):
        return f"custom_rule({self.name})"


def _positional_signature(fn, name):
    sig = inspect.signature(fn)
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY):
            raise TypeError(f"sad.custom_rule({name}): the function's arguments must be "
                            f"plain positional ones (each gets an activity); {p} is not")
    return sig


def _part(rule, fn, what):
    if not callable(fn):
        raise TypeError(f"{rule.name}.{what} decorates a function, got {type(fn).__name__}")
    return fn
