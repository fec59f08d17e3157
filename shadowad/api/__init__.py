"""The public entry points: autodiff and its modes, jacobian, the kernels, Vector."""
