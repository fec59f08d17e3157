"""GradBench ``kmeans``: the k-means objective (each point's squared distance
to its nearest centroid, summed) and Newton's direction for the centroids,
J / diag(H), as the JAX tool computes it: the Hessian's diagonal is the
Hessian-vector product with ones (the Hessian is diagonal), taken by forward
mode over the reverse-mode gradient -- a nested differentiation.
"""
import numpy as np

import shadowad as sad
import timed


def objective(centroids, points):
    """sum_i min_j |c_j - p_i|^2, with the distances as |p|^2 + |c|^2 - 2 p.c
    (one matrix product instead of an n x k x d array of differences)."""
    p_sqr = np.sum(points * points, axis=1)[:, None]
    c_sqr = np.sum(centroids * centroids, axis=1)[None, :]
    dists = p_sqr + c_sqr - 2.0 * (points @ centroids.T)
    return np.sum(np.min(dists, axis=1))


def gradient(centroids, points):
    """d objective / d centroids by reverse mode (nested when called inside a
    differentiation, as by ``newton_direction``)."""
    g, _ = sad.autodiff(objective, sad.Active(centroids), sad.Const(points))
    return g


def newton_direction(centroids, points):
    # one forward pass over the gradient gives both the gradient (the primal)
    # and H . ones (its tangent along ones), which is diag(H)
    hess, grad = sad.autodiff(gradient, sad.Duplicated(centroids.copy(),
                                                       np.ones_like(centroids)),
                              sad.Const(points), mode=sad.ForwardWithPrimal)
    return grad / hess


def points_and_centroids(input):
    points = timed.field(input, "points")
    centroids = timed.field(input, "centroids")
    try:
        points = np.array(points, dtype=np.float64)
        centroids = np.array(centroids, dtype=np.float64)
    except (TypeError, ValueError):
        raise timed.InputError("input fields 'points' and 'centroids' must be lists of "
                               "equally long lists of numbers") from None
    if points.ndim != 2 or centroids.ndim != 2 or points.shape[1] != centroids.shape[1] \
            or 0 in points.shape or 0 in centroids.shape:
        raise timed.InputError(f"points (n x d) and centroids (k x d) must be non-empty "
                               f"matrices of the same width, got shapes {points.shape} "
                               f"and {centroids.shape}")
    return points, centroids


@timed.function(prepare=points_and_centroids, finish=float)
def cost(args):
    points, centroids = args
    return objective(centroids, points)


@timed.function(prepare=points_and_centroids, finish=timed.to_list)
def dir(args):  # noqa: A001  (GradBench's name for the function)
    points, centroids = args
    return newton_direction(centroids, points)

