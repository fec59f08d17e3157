from setuptools import setup

setup(cffi_modules=["shadowad/_build.py:ffibuilder"])
