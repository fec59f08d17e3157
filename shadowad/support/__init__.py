"""Helpers every layer uses: memory ranges, names, products, aliasing, numpy's overlap rules."""
