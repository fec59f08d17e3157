"""sad.Vector inside a nested differentiation.

A Vector created while a nested call's function runs holds that call's values
(Boxes) and plain floats as a Python list of scalars, so pushing a value of
the nested differentiation keeps its derivative: push, pop, load and store are
list operations on the values themselves, which the nested engine and every
enclosing differentiation then see as the ordinary operations they are.
"""
import numpy as np

from .box import Box, shape_of


def _scalars(x, what):
    """The scalars x adds: itself, or the elements of a 1-D array."""
    shape = shape_of(x)
    if shape == ():
        if type(x) is not Box:
            x = float(x)
        return [x]
    if len(shape) != 1:
        raise ValueError(f"{what}: expected a scalar or a 1-D array, got shape {shape}")
    if type(x) is Box:
        return list(x)
    return [float(e) for e in np.asarray(x, dtype=np.float64)]


class NestedVector:
    """A growable vector of the values of a nested differentiation."""

    __slots__ = ("items",)

    def __init__(self, data=None):
        self.items = []
        if data is not None:
            self.push(data)

    def __len__(self):
        return len(self.items)

    def push(self, x):
        self.items.extend(_scalars(x, "Vector.push"))

    def pop(self):
        if not self.items:
            raise IndexError("pop from an empty Vector")
        return self.items.pop()

    def __getitem__(self, i):
        if type(i) is slice:
            items = self.items[i]
            if not items:
                return np.zeros(0)
            if any(type(e) is Box for e in items):
                return np.stack(items)
            return np.array(items, dtype=np.float64)
        return self.items[self._index(i)]

    def __setitem__(self, i, x):
        if shape_of(x) != ():
            raise TypeError(f"Vector elements are floats, got shape {shape_of(x)}")
        self.items[self._index(i)] = x if type(x) is Box else float(x)

    def _index(self, i):
        if not (type(i) is int or isinstance(i, np.integer)):
            raise TypeError(f"Vector indices must be integers or slices, got {type(i).__name__}")
        n = len(self.items)
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"Vector index {i} out of range for length {n}")
        return j

    def __iter__(self):
        return iter(list(self.items))

    def __repr__(self):
        return f"Vector(nested, {len(self.items)} elements)"
