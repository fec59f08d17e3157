import runpy

from setuptools import setup

# shadowad/_build.py describes both C modules; it is run as a file, since
# importing the package needs them built
build = runpy.run_path("shadowad/_build.py")

setup(cffi_modules=["shadowad/_build.py:ffibuilder"], ext_modules=[build["fast_extension"]()])
