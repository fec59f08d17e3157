"""The definitions of shadowad's primitives, one place per derivative.

``elementwise`` is the partials table of the elementwise operations, and
``elementwise_rules`` the generic rule each entry derives from it; ``core``
says what any other primitive is and keeps the registry (numpy function ->
its entry); ``protocol`` is the record protocol every reverse record follows
(and the rule a primitive derives from its definition); the family modules
define the primitives (``scipy_special`` scipy.special's, when scipy
imports).  Nothing here imports an engine: the engines import this package
and derive their rules from it.
"""
from . import (core, protocol, values, elementwise, linalg, reductions, indexing,  # noqa: F401
               einsum, decompositions, linalg_composites, sequences, scipy_linalg,
               shape, selection, statistics, arrange, scatter,
               elementwise_rules, special, scipy_special)
