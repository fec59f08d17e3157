"""The definitions of shadowad's primitives: each derivative written once,
in one place, for every engine to derive its rules from."""
