"""Hypothesis keeps its files (the constants it caches from source files; the
tests keep no example database) in the temporary directory, not in the
checkout."""
import os
import tempfile

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(tempfile.gettempdir(), "shadowad-hypothesis"))

# The suite is deterministic: every property test draws the same examples on
# every run (a red CI names a bug, not bad luck). Long random runs are
# `make fuzz`'s job; a test may still ask for more examples itself.
from hypothesis import settings  # noqa: E402

settings.register_profile("shadowad", derandomize=True, deadline=None)
settings.load_profile("shadowad")
