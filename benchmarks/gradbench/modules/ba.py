"""GradBench ``ba``: bundle adjustment residuals and their sparse Jacobian.

Every observation's residuals depend on one camera (11 parameters), one
point (3) and its own weight (1), so the Jacobian is made of 2 x 15 blocks
(and a 1 x 1 block for each weight residual).  The residuals are computed
for all observations at once, on the cameras and points gathered per
observation.  The gathered columns are per-observation copies, so the
gradient of one error coordinate summed over all observations, with respect
to them, holds every observation's row of its block: reverse mode gives all
blocks in two sweeps over one tape (forward mode would need 15 lanes; it was
about 6 times slower here).  The weight error is elementwise, so one forward
tangent along ones gives its derivatives.
"""
import numpy as np

import shadowad as sad
import timed

NCAM = 11  # rotation (3), centre (3), focal length, principal point (2), radial distortion (2)


def rodrigues_rotate(rot, pt):
    """Rotate each column of pt by the angle-axis vector in the same column of rot."""
    sqtheta = np.sum(rot * rot, axis=0)
    zero = sqtheta == 0
    # 1 where the angle is 0 keeps the branch that is not taken finite
    theta = np.sqrt(np.where(zero, 1.0, sqtheta))
    costheta, sintheta = np.cos(theta), np.sin(theta)
    axis = rot / theta
    along = np.sum(axis * pt, axis=0) * (1 - costheta)
    rotated = pt * costheta + np.cross(axis, pt, axis=0) * sintheta + axis * along
    if np.any(zero):
        rotated = np.where(zero, pt + np.cross(rot, pt, axis=0), rotated)
    return rotated


def project(cam, pt):
    """Pixel coordinates (2, p) of points pt (3, p) seen by cameras cam (11, p)."""
    xcam = rodrigues_rotate(cam[0:3], pt - cam[3:6])
    proj = xcam[:2] / xcam[2]
    rsq = np.sum(proj * proj, axis=0)
    distortion = 1 + cam[9] * rsq + cam[10] * rsq * rsq
    return proj * (distortion * cam[6]) + cam[7:9]


def reprojection_error(cam, pt, w, feat, err):
    """Write the reprojection errors (2, p) of p observations into err: one
    column of cam (11, p), pt (3, p), w (p,) and feat (2, p) per observation
    (columns, so that every operation runs on contiguous rows of length p)."""
    err[...] = w * (project(cam, pt) - feat)


def weight_error(w):
    return 1 - w * w


def prepare(input):
    """JSON -> (cams (11, n), points (3, m), w (p,), obs (p, 2), feats (2, p)):
    the input repeated as GradBench asks, observation i being of camera
    i % n and point i % m.  Cameras and points are columns."""
    n, m, p = (timed.integer(input, name, minimum=1) for name in ("n", "m", "p"))
    cam, x, feat = (timed.vector(input, name) for name in ("cam", "x", "feat"))
    for name, a, size in (("cam", cam, NCAM), ("x", x, 3), ("feat", feat, 2)):
        if len(a) != size:
            raise timed.InputError(f"input field {name!r} must have {size} numbers, "
                                   f"got {len(a)}")
    w = timed.field(input, "w")
    if isinstance(w, bool) or not isinstance(w, (int, float)):
        raise timed.InputError(f"input field 'w' must be a number, got {w!r:.60}")
    obs = np.stack([np.arange(p) % n, np.arange(p) % m], axis=1)
    return (np.repeat(cam[:, None], n, axis=1), np.repeat(x[:, None], m, axis=1),
            np.full(p, float(w)), obs, np.repeat(feat[:, None], p, axis=1))


def finish_objective(errors):
    # GradBench undoes the repetition: one observation and a count
    reproj_err, w_err = errors
    return {"reproj_error": {"elements": reproj_err[:, 0].tolist(),
                             "repeated": reproj_err.shape[1]},
            "w_err": {"element": float(w_err[0]), "repeated": len(w_err)}}


@timed.function(prepare=prepare, finish=finish_objective)
def objective(args):
    cams, points, w, obs, feats = args
    reproj_err = np.empty_like(feats)
    reprojection_error(cams[:, obs[:, 0]], points[:, obs[:, 1]], w, feats, reproj_err)
    return reproj_err, weight_error(w)


def reprojection_blocks(cam, pt, w, feat):
    """The (p, 2, 15) blocks d err[:, i] / d (cam[:, i], pt[:, i], w[i]) of
    reprojection_error: one reverse sweep per error coordinate, seeded at
    every observation at once."""
    p = len(w)
    seeds = (np.zeros((2, p)), np.zeros((2, p)))
    seeds[0][0] = seeds[1][1] = 1
    dcam, dpt, dw = ((np.zeros_like(a), np.zeros_like(a)) for a in (cam, pt, w))
    sad.autodiff(reprojection_error, sad.BatchDuplicated(cam, dcam), sad.BatchDuplicated(pt, dpt),
                 sad.BatchDuplicated(w, dw), sad.Const(feat),
                 sad.BatchDuplicated(np.empty((2, p)), seeds))
    J = np.empty((p, 2, NCAM + 4))
    for r in range(2):
        J[:, r, :NCAM], J[:, r, NCAM:NCAM + 3], J[:, r, -1] = dcam[r].T, dpt[r].T, dw[r]
    return J


def finish_jacobian(csr):
    # GradBench undoes the repetition: the first 30 entries and the last one
    return {name: a[:30].tolist() + a[-1:].tolist()
            for name, a in zip(("rows", "cols", "vals"), csr)}


@timed.function(prepare=prepare, finish=finish_jacobian)
def jacobian(args):
    """The Jacobian of (reprojection errors, weight errors) with respect to
    (cameras, points, weights), in CSR form (row starts, columns, values):
    2p rows of 15 entries (camera, point, weight), then p rows of 1."""
    cams, points, w, obs, feats = args
    (n, m), p = (cams.shape[1], points.shape[1]), len(w)
    reproj = reprojection_blocks(cams[:, obs[:, 0]], points[:, obs[:, 1]], w, feats)
    # weight_error is elementwise: its tangent along ones is its derivative
    dw_err = sad.autodiff(weight_error, sad.Duplicated(w, np.ones_like(w)), mode=sad.Forward)
    cols = np.empty((p, 2, NCAM + 4), dtype=np.int64)
    cols[:, :, :NCAM] = (NCAM * obs[:, 0])[:, None, None] + np.arange(NCAM)
    cols[:, :, NCAM:NCAM + 3] = (NCAM * n + 3 * obs[:, 1])[:, None, None] + np.arange(3)
    cols[:, :, -1] = (NCAM * n + 3 * m + np.arange(p))[:, None]
    rows = np.concatenate([np.arange(2 * p + 1) * (NCAM + 4),
                           2 * p * (NCAM + 4) + np.arange(1, p + 1)])
    return (rows, np.concatenate([cols.ravel(), NCAM * n + 3 * m + np.arange(p)]),
            np.concatenate([reproj.ravel(), dw_err]))
