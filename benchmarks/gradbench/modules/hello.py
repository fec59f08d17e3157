"""GradBench ``hello``: ``square`` is x*x and ``double`` its derivative,
taken by shadowad (the protocol smoke test, not a benchmark)."""
import shadowad as sad
import timed


def square_of(x):
    return x * x


@timed.function(prepare=timed.number)
def square(x):
    return square_of(x)


@timed.function(prepare=timed.number)
def double(x):
    (dx,) = sad.autodiff(square_of, sad.Active(x))
    return dx
