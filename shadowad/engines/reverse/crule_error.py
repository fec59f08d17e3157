"""The error of a C custom rule (shadowad/rule.h) whose function returned a
non-zero code: raised when recording the call, in forward mode, and by the
sweep (tape.py), so it lives apart from both."""

__all__ = ["CRuleError"]


class CRuleError(RuntimeError):
    """A function of a C rule returned a non-zero code (``.code``)."""

    def __init__(self, rule, part, code):
        super().__init__(f"C rule {rule}: its {part} returned error code {code}"
                         + ("; the primals are restored" if part != "primal" else ""))
        self.rule, self.part, self.code = rule, part, code
