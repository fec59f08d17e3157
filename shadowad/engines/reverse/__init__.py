"""Reverse mode: the tape, traced values, snapshots of plain operands, accounting."""
