"""Gradient through many in-place steps of the explicit heat equation.

    u[1:-1] += r * (u[2:] - 2*u[1:-1] + u[:-2])

overwrites the interior of u at every step.  shadowad records each step once,
saves only the values the step overwrites, and sweeps the tape backwards in C,
restoring u step by step.  We differentiate the energy in the right half of the
rod at the final time with respect to the *initial* temperature profile and
check it against central finite differences.
"""
import numpy as np

import shadowad as sad

R, STEPS = 0.25, 500                       # r <= 1/2 keeps the scheme stable


def simulate(u, r, steps):
    for _ in range(steps):
        u[1:-1] += r * (u[2:] - 2 * u[1:-1] + u[:-2])
    right = u[u.shape[0] // 2:]             # energy in the right half of the rod
    return np.sum(right * right)


def main():
    n = 40
    s = np.linspace(0.0, 1.0, n)
    u0 = np.exp(-100 * (s - 0.3) ** 2)     # a hot spot left of the middle

    u, du = u0.copy(), np.zeros(n)
    _, tape = sad.autodiff_split(simulate, sad.Duplicated(u, du), R, STEPS)
    print(f"{STEPS} steps: {len(tape)} records, {tape.nbytes / 1e6:.2f} MB on the tape")
    tape.reverse()                         # du += d energy / d u0; u keeps its final state

    def energy(v):
        return simulate(v.copy(), R, STEPS)

    h = 1e-6
    fd = np.array([(energy(u0 + h * e) - energy(u0 - h * e)) / (2 * h) for e in np.eye(n)])
    err = np.max(np.abs(du - fd)) / np.max(np.abs(fd))
    print(f"gradient vs finite differences: max relative error {err:.1e}")
    assert err < 1e-6

    final = u0.copy()
    energy_final = simulate(final, R, STEPS)
    assert np.array_equal(u, final)        # u holds the final state, as after a plain call
    print(f"final energy in the right half: {energy_final:.6f}")
    print("ok")


if __name__ == "__main__":
    main()
