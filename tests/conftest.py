"""Hypothesis keeps its files (the constants it caches from source files; the
tests keep no example database) in the temporary directory, not in the
checkout."""
import os
import tempfile

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(tempfile.gettempdir(), "shadowad-hypothesis"))
