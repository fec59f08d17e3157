"""Run a function on a module once it is imported, without importing it.

shadowad gives derivatives to functions of optional libraries (scipy) by
putting dispatching wrappers into their namespaces; importing scipy.linalg
costs most of a second, so shadowad does not import it: ``when_imported``
runs the installer at once if the module is loaded, else right after the
module's own code runs, whenever the user's code first imports it (a finder
on sys.meta_path that wraps the module's loader; it leaves sys.meta_path as
soon as it has seen the module).
"""
import importlib.abc
import sys

__all__ = ["when_imported"]


class _Loader(importlib.abc.Loader):
    def __init__(self, loader, callback):
        self.loader, self.callback = loader, callback

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.callback(module)

    def __getattr__(self, name):  # get_code, is_package, ... as the real loader
        return getattr(self.loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, name, callback):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        self.remove()
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, self.callback)
                return spec
        return None

    def remove(self):
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass


def when_imported(name, callback):
    """callback(module) now if ``name`` is imported, else once it is."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
    else:
        sys.meta_path.insert(0, _Finder(name, callback))
