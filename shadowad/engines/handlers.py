"""The explicit link from the value types to the rules that differentiate
operations on them.

The traced types (engines/reverse/traced.py and scalar.py, engines/forward/dual.py) must
exist before the rules, which import them to build their results; so a type
calls its rules through a ``Handlers`` table, which the rules package
(shadowad/engines/rules/__init__.py) fills once, when it is imported.  The
table is the one place that names which rule answers which of numpy's
protocols for an engine.
"""

ENTRIES = ("apply_ufunc", "array_ufunc", "array_function", "setindex", "gather",
           "outer_by_numpy")


class Handlers:
    """One engine's entry points into its rules; filled by ``bind``."""

    __slots__ = ("engine",) + ENTRIES

    def __init__(self, engine):
        self.engine = engine

    def bind(self, **entries):
        for name, fn in entries.items():
            if name not in ENTRIES:
                raise TypeError(f"{name} is not a rule entry point (one of {ENTRIES})")
            setattr(self, name, fn)

    def __getattr__(self, name):
        # only reached for an entry that was never bound (slots raise here)
        raise RuntimeError(f"shadowad: the {self.engine} rules are not loaded ({name}); "
                           "import shadowad rather than its engine modules alone")


REVERSE = Handlers("reverse")
FORWARD = Handlers("forward")
NESTED = Handlers("nested")  # shadowad/engines/nested/rules.py binds it
