# shadowad -- build, test, demo.  Works on a fresh machine with Python >= 3.10,
# gcc and pip: every target installs what it needs first.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
STAMP = .install.stamp
, := ,
SRC = $(wildcard csrc/*/*.c csrc/*/*.h) shadowad/_build.py pyproject.toml setup.py

.PHONY: install test demo test-asan test-python test-pythons bench fuzz gradbench-evals clean

$(STAMP): $(SRC)
	$(PIP) install --quiet --upgrade "pip>=23" setuptools wheel cffi numpy pytest hypothesis
	$(PIP) install --quiet --no-build-isolation -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

test: install
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

# FUZZ_N random in-place programs (tests/random_programs.py), every check on
# each; prints the mismatch rate per check and per instruction class and a
# minimized reproducer per distinct failure; fails if any program fails.
FUZZ_N ?= 10000
FUZZ_SEED ?= 0
fuzz: install
	$(PYTHON) tests/fuzz.py --n $(FUZZ_N) --seed $(FUZZ_SEED)

demo: install
	$(PYTHON) examples/quickstart.py

# A copy of the package with both C modules (the cffi core _csad and the
# extension _fast) built for interpreter $(1) into directory $(2) (extra
# compiler flags $(3), linker flags $(4)): the normal in-place build is left
# untouched and keeps working while a suite runs against the copy.
define build_copy
	rm -rf $(2)/shadowad $(2)/tmp
	mkdir -p $(2)
	cp -R shadowad $(2)/shadowad
	rm -rf $(2)/shadowad/_csad* $(2)/shadowad/_fast* $(2)/shadowad/__pycache__ $(2)/shadowad/*/__pycache__
	SHADOWAD_CFLAGS="$(3)" SHADOWAD_LDFLAGS="$(4)" \
	    $(1) setup.py --quiet build_ext --force --build-lib $(2) --build-temp $(2)/tmp
endef
# The whole suite from directory $(2), on its path (so `import shadowad` finds
# its copy, in the tests' subprocesses too), with interpreter $(1) under
# environment $(3).
define run_suite
	cd $(2) && export PYTHONPATH="$(CURDIR)/$(2)" && $(3) $(1) -c "import shadowad._csad as c, shadowad._fast as f, sys; \
	    assert '$(2)' in c.__file__, c.__file__; assert '$(2)' in f.__file__, f.__file__; \
	    print(sys.version.split()[0], 'core:', c.__file__, 'extension:', f.__file__)"
	cd $(2) && export PYTHONPATH="$(CURDIR)/$(2)" && $(3) $(1) -m pytest -q -p no:cacheprovider --rootdir="$(CURDIR)" "$(CURDIR)/tests"
endef

# The C core built with AddressSanitizer and UBSan, the whole suite run against it.
# Python itself is not instrumented, so the runtime is preloaded and leak
# detection (which would report the interpreter's own allocations) is off.
# PYTHONMALLOC=malloc: pymalloc would keep a freed object's block in its own
# pools, where ASAN cannot see a read of it after the free.
# Missing tools are installed; installed ones are left at their versions.
ASAN_DIR = build/asan
ASAN_LIB = $(shell gcc -print-file-name=libasan.so)
UBSAN_LIB = $(shell gcc -print-file-name=libubsan.so)
ASAN_ENV = LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" PYTHONMALLOC=malloc \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
test-asan:
	$(PIP) install --quiet setuptools wheel cffi numpy pytest hypothesis scipy
	$(call build_copy,$(PYTHON),$(ASAN_DIR),-fsanitize=address$(,)undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1,-fsanitize=address$(,)undefined)
	$(call run_suite,$(PYTHON),$(ASAN_DIR),$(ASAN_ENV))

# The whole suite on another interpreter: make test-python PY=/path/to/python.
# A venv of its own under build/py<X.Y> gets the latest numpy, cffi, pytest,
# hypothesis and scipy (the test extras) for that Python, and the C core is
# built with it there.
# -Werror: both C modules build warning-free under -Wall -Wextra on every Python.
PY ?=
PY_TAG = $(if $(PY),$(shell $(PY) -c 'import sys; print("py%d.%d" % sys.version_info[:2])' 2>/dev/null))
PY_DIR = build/$(PY_TAG)
test-python:
	@test -n "$(PY_TAG)" || { echo "make test-python: PY='$(PY)' is not a Python that runs; usage: make test-python PY=/path/to/python" >&2; exit 2; }
	test -x $(PY_DIR)/venv/bin/python || $(PY) -m venv $(PY_DIR)/venv
	$(PY_DIR)/venv/bin/python -m pip install --quiet --upgrade setuptools wheel cffi numpy pytest hypothesis scipy
	$(call build_copy,$(CURDIR)/$(PY_DIR)/venv/bin/python,$(PY_DIR),-Werror,)
	@cd $(PY_DIR) && venv/bin/python -c "import numpy, cffi; print('numpy', numpy.__version__, 'cffi', cffi.__version__)"
	$(call run_suite,venv/bin/python,$(PY_DIR),)

# The suite on each Python that CI runs besides $(PYTHON), from pyenv.
CI_PYTHONS ?= 3.10 3.13
test-pythons:
	@root=$$(pyenv root 2>/dev/null) || { echo "test-pythons: pyenv not found; CI needs Python $(CI_PYTHONS) from pyenv" >&2; exit 2; }; \
	for v in $(CI_PYTHONS); do \
	    py=$$(ls -d $$root/versions/$$v.*/bin/python 2>/dev/null | sort -V | tail -n 1); \
	    test -n "$$py" || { echo "test-pythons: no Python $$v under $$root/versions (pyenv install $$v); CI runs the suite on $(CI_PYTHONS)" >&2; exit 2; }; \
	    $(MAKE) --no-print-directory test-python PY=$$py || exit 1; \
	done

bench: install
	$(PIP) install --quiet --no-build-isolation -e ".[bench]"
	$(PYTHON) benchmarks/run.py

# The real GradBench evals at small sizes against benchmarks/gradbench/tool.py,
# one per module there.  Needs a checkout with its C++ reference tool built
# (see benchmarks/gradbench/README.md); no network.
GRADBENCH ?= /tmp/gradbench
GRADBENCH_EVALS ?= $(filter $(notdir $(wildcard $(GRADBENCH)/python/gradbench/gradbench/evals/*)),\
	$(basename $(notdir $(wildcard benchmarks/gradbench/modules/*.py))))
gradbench-evals: install
	@test -x $(GRADBENCH)/tools/manual/bin/lse || { echo "no GradBench checkout with a built manual tool at GRADBENCH=$(GRADBENCH); see benchmarks/gradbench/README.md"; exit 1; }
	@for e in $(GRADBENCH_EVALS); do \
	    $(PYTHON) benchmarks/gradbench/run_eval.py $$e --smoke --quiet --gradbench $(GRADBENCH) \
	        || exit 1; done

clean:
	rm -rf build dist *.egg-info shadowad/_csad* shadowad/_fast* csrc/*/*.o $(STAMP) .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
