"""The engines that differentiate: reverse (the C tape), forward (duals), nested, mixed."""
