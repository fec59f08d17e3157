# shadowad -- build, test, demo.  Works on a fresh machine with Python >= 3.10,
# gcc and pip: every target installs what it needs first.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
STAMP = .install.stamp
SRC = $(wildcard csrc/*.c csrc/*.h) shadowad/_build.py pyproject.toml setup.py

.PHONY: install test demo test-asan bench fuzz gradbench-evals clean

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

# The C core built with AddressSanitizer and UBSan, the whole suite run against it.
# The instrumented build goes to $(ASAN_DIR) (a copy of the package), so the
# normal in-place build is left untouched and keeps working while this runs.
# Python itself is not instrumented, so the runtime is preloaded and leak
# detection (which would report the interpreter's own allocations) is off.
ASAN_DIR = build/asan
ASAN_LIB = $(shell gcc -print-file-name=libasan.so)
UBSAN_LIB = $(shell gcc -print-file-name=libubsan.so)
ASAN_ENV = LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" PYTHONPATH="$(CURDIR)/$(ASAN_DIR)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
test-asan:
	$(PIP) install --quiet --upgrade setuptools wheel cffi numpy pytest hypothesis
	rm -rf $(ASAN_DIR)
	mkdir -p $(ASAN_DIR)
	cp -R shadowad $(ASAN_DIR)/shadowad
	rm -rf $(ASAN_DIR)/shadowad/_csad* $(ASAN_DIR)/shadowad/__pycache__ $(ASAN_DIR)/shadowad/*/__pycache__
	SHADOWAD_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1" \
	SHADOWAD_LDFLAGS="-fsanitize=address,undefined" \
	    $(PYTHON) setup.py --quiet build_ext --force --build-lib $(ASAN_DIR) --build-temp $(ASAN_DIR)/tmp
	# run from $(ASAN_DIR) so `import shadowad` finds the instrumented copy
	cd $(ASAN_DIR) && $(ASAN_ENV) $(PYTHON) -c "import shadowad._csad as c; \
	    assert '$(ASAN_DIR)' in c.__file__, c.__file__; print('sanitized core:', c.__file__)"
	cd $(ASAN_DIR) && $(ASAN_ENV) $(PYTHON) -m pytest -q -p no:cacheprovider \
	    --rootdir="$(CURDIR)" "$(CURDIR)/tests"

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
	rm -rf build dist *.egg-info shadowad/_csad* csrc/*.o $(STAMP) .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
