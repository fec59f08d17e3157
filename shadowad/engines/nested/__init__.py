"""Nested differentiation: autodiff inside a differentiated function, on a trace of Boxes."""
