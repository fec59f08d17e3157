"""shadowad.testing's checkers: they accept what is right, rounding of a large
objective included, and still catch a gradient that is wrong."""
import numpy as np
import pytest

import shadowad as sad
from shadowad import Duplicated
from shadowad.testing import check_gradient


@pytest.mark.parametrize("seed", range(8))
def test_check_gradient_allows_the_rounding_of_a_large_objective(seed):
    """L ~ 1e7: central differences at a step of 1e-6 carry ~1e-3 of rounding."""
    x = np.random.default_rng(seed).standard_normal(6)
    check_gradient(lambda x: 1e7 + np.sum(x * x), Duplicated(x, np.zeros(6)), seed=seed)


@pytest.mark.parametrize("offset", [0.0, 1e7])
def test_check_gradient_catches_a_derivative_that_differs(offset):
    """sad.primal takes a factor without its derivative on purpose: half of
    d(x*x)/dx is missing, which the allowances must not hide, even beside a
    large objective."""
    x = np.array([1.0, 2.0, -3.0])
    with pytest.raises(AssertionError, match="differs from finite differences"):
        check_gradient(lambda x: offset + np.sum(x * sad.primal(x)), Duplicated(x, np.zeros(3)))
