"""GradBench ``ht``: ADBench's hand tracking residuals and their Jacobian.

The hand is a skinned mesh posed by 26 parameters (global rotation and
translation, finger joint angles); the residuals are the offsets of observed
points from their corresponding mesh vertices ("simple") or from points on
mesh triangles at barycentric coordinates ``us`` ("complicated", which adds
the us to the unknowns).  The Jacobian is tall (3 per point x 26 or 28), so
it comes from forward mode: one lane per pose parameter.  In the complicated
variant point i's residual depends on its own us[i] only, so the us columns
are compressed into two more lanes (every u0 at once, every u1 at once).
"""
from dataclasses import dataclass

import numpy as np

import shadowad as sad
import timed

NTHETA = 26
NFINGERS = 5


@dataclass(frozen=True)
class Model:
    parents: tuple                  # parent bone of each bone (-1: root), parents first
    base_relatives: np.ndarray      # (b, 4, 4)
    inverse_base_absolutes: np.ndarray  # (b, 4, 4)
    base_positions_t: np.ndarray    # (4, v) homogeneous vertex positions
    weights_t: np.ndarray           # (b, v) skinning weights
    triangles: np.ndarray           # (t, 3) vertex indices
    is_mirrored: bool


def pose_index(nbones):
    """(nbones, 3) positions into [theta, 0] of each bone's Euler angles:
    per finger, its first three bones get (2, 1, 1) of the finger's 4 angles."""
    idx = np.full((nbones, 3), NTHETA, dtype=np.intp)
    for f in range(NFINGERS):
        bone, t = 2 + 4 * f, 6 + 4 * f
        idx[bone, :2] = t, t + 1
        idx[bone + 1, 0], idx[bone + 2, 0] = t + 2, t + 3
    return idx


def euler_rotations(angles):
    """Rz(a1) @ Ry(a2) @ Rx(a0) for each row a of angles (b, 3), as (b, 3, 3)."""
    c, s = np.cos(angles), np.sin(angles)
    cx, cz, cy = c[:, 0], c[:, 1], c[:, 2]
    sx, sz, sy = s[:, 0], s[:, 1], s[:, 2]
    return np.stack([cz * cy, cz * sy * sx - sz * cx, sz * sx + cz * sy * cx,
                     sz * cy, cz * cx + sz * sy * sx, sz * sy * cx - cz * sx,
                     -sy, cy * sx, cy * cx], axis=1).reshape(-1, 3, 3)


def angle_axis_rotation(aa):
    """The rotation (3, 3) by angle |aa| about aa (the identity for tiny angles)."""
    norm = np.sqrt(np.sum(aa * aa))
    if norm < 1e-4:
        return np.eye(3)
    n = aa / norm
    # the cross-product matrix of n, picked from [n, -n, 0]
    k = np.concatenate([n, -n, np.zeros_like(n[:1])])[[[6, 5, 1], [2, 6, 3], [4, 0, 6]]]
    c = np.cos(norm)
    return c * np.eye(3) + (1 - c) * np.outer(n, n) + np.sin(norm) * k


def vertex_positions(theta, model):
    """The posed mesh vertices as columns (3, v)."""
    nbones = len(model.parents)
    angles = np.concatenate([theta, np.zeros_like(theta[:1])])[pose_index(nbones)]
    # base_relative @ [[R, 0], [0, 1]]: only the first three columns change
    relatives = np.concatenate([np.matmul(model.base_relatives[:, :, :3], euler_rotations(angles)),
                                model.base_relatives[:, :, 3:]], axis=2)
    absolutes = []
    for i, parent in enumerate(model.parents):
        absolutes.append(relatives[i] if parent < 0 else absolutes[parent] @ relatives[i])
    transforms = np.matmul(np.stack(absolutes), model.inverse_base_absolutes)
    # blend the bones' transforms per vertex, (12, b) @ (b, v), then apply
    # them; vertices are columns, as the one large product is faster this way
    # round in forward mode (numpy's stacked matmul broadcasting the constant
    # (v, b) operand against the lanes is 5-10 times slower)
    blended = (transforms[:, :3, :].reshape(nbones, 12).T @ model.weights_t).reshape(3, 4, -1)
    positions = np.sum(blended * model.base_positions_t, axis=1)                # (3, v)
    if model.is_mirrored:
        positions = positions * np.array([[-1.0], [1.0], [1.0]])
    # the global scale is 1 (ADBench fixes it)
    return angle_axis_rotation(theta[0:3]) @ positions + theta[3:6, np.newaxis]


def residuals(theta, us, model, correspondences, points):
    """points (n, 3) minus their hand points (n, 3); us (n, 2), or empty for
    the simple variant (each point corresponds to a vertex)."""
    positions = vertex_positions(theta, model)
    if us.size == 0:
        return points - positions[:, correspondences].T
    corners = positions[:, model.triangles[correspondences].T]     # (3, 3 corners, n)
    u0, u1 = us[:, 0], us[:, 1]
    return points - (u0 * corners[:, 0] + u1 * corners[:, 1] + (1 - u0 - u1) * corners[:, 2]).T


def _array(obj, name, dtype=np.float64, shape=None):
    """obj[name] as an array; None in shape matches any length."""
    try:
        a = np.array(timed.field(obj, name), dtype=dtype)
    except (TypeError, ValueError):
        raise timed.InputError(f"input field {name!r} must be numbers") from None
    if shape is not None and (a.ndim != len(shape) or any(
            want is not None and have != want for have, want in zip(a.shape, shape))):
        raise timed.InputError(f"input field {name!r} has shape {a.shape}, expected "
                               f"{tuple('any' if s is None else s for s in shape)}")
    return a


def prepare(input):
    """JSON -> (theta, us, model, correspondences, points)."""
    theta = _array(input, "theta", shape=(NTHETA,))
    data = timed.field(input, "data")
    m = timed.field(data, "model")
    parents = tuple(_array(m, "parents", np.intp, (None,)).tolist())
    nbones = len(parents)
    if nbones < 2 + 4 * NFINGERS or any(not -1 <= p < i for i, p in enumerate(parents)):
        raise timed.InputError(f"the model needs at least {2 + 4 * NFINGERS} bones, "
                               "each after its parent")
    base_positions = _array(m, "base_positions", shape=(None, 4))
    nverts = len(base_positions)
    model = Model(parents, _array(m, "base_relatives", shape=(nbones, 4, 4)),
                  _array(m, "inverse_base_absolutes", shape=(nbones, 4, 4)),
                  base_positions.T.copy(), _array(m, "weights", shape=(nverts, nbones)).T.copy(),
                  _array(m, "triangles", np.intp, (None, 3)), bool(timed.field(m, "is_mirrored")))
    correspondences = _array(data, "correspondences", np.intp, (None,))
    npoints = len(correspondences)
    points = _array(data, "points", shape=(npoints, 3))
    us = np.array(input.get("us", []), dtype=np.float64)
    us = us.reshape(0, 2) if us.size == 0 else _array(input, "us", shape=(npoints, 2))

    def outside(index, bound):
        return index.size > 0 and not 0 <= index.min() <= index.max() < bound
    # correspondences are vertices (simple) or triangles (complicated)
    if outside(correspondences, nverts if us.size == 0 else len(model.triangles)) or \
            outside(model.triangles, nverts):
        raise timed.InputError("correspondences or triangles index outside the model")
    return theta, us, model, correspondences, points


@timed.function(prepare=prepare, finish=lambda err: err.ravel().tolist())
def objective(args):
    return residuals(*args)


@timed.function(prepare=prepare, finish=timed.to_list)
def jacobian(args):
    """(3n, 26) d residuals / d theta, or (3n, 28) with [d/du0, d/du1] first."""
    theta, us, *consts = args
    n = len(consts[-1])
    if us.size == 0:
        J = sad.jacobian(lambda theta: residuals(theta, us, *consts), theta, mode=sad.Forward)
        return J.reshape(3 * n, NTHETA)
    lanes = NTHETA + 2
    dtheta = tuple(np.eye(lanes, NTHETA, -2))          # lanes 2.. are the pose directions
    dus = tuple(np.zeros_like(us) for _ in range(lanes))
    dus[0][:, 0] = dus[1][:, 1] = 1
    tangents = sad.autodiff(residuals, sad.BatchDuplicated(theta, dtheta),
                            sad.BatchDuplicated(us, dus), *map(sad.Const, consts),
                            mode=sad.Forward)
    return np.stack(tangents).reshape(lanes, 3 * n).T
