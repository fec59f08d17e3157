# shadowad -- build, test, demo.  Works on a fresh machine with Python >= 3.10,
# gcc and pip: every target installs what it needs first.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
STAMP = .install.stamp
SRC = $(wildcard csrc/*.c csrc/*.h) shadowad/_build.py pyproject.toml setup.py

.PHONY: install test demo test-asan bench clean

$(STAMP): $(SRC)
	$(PIP) install --quiet --upgrade "pip>=23" setuptools wheel cffi numpy pytest hypothesis
	$(PIP) install --quiet --no-build-isolation -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

test: install
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

demo: install
	$(PYTHON) examples/quickstart.py

# The C core built with AddressSanitizer and UBSan, the whole suite run against it.
# Python itself is not instrumented, so the runtime is preloaded and leak
# detection (which would report the interpreter's own allocations) is off.
ASAN_LIB = $(shell gcc -print-file-name=libasan.so)
UBSAN_LIB = $(shell gcc -print-file-name=libubsan.so)
test-asan:
	$(PIP) install --quiet --upgrade setuptools wheel cffi numpy pytest hypothesis
	rm -f $(STAMP) shadowad/_csad*.so
	SHADOWAD_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1" \
	SHADOWAD_LDFLAGS="-fsanitize=address,undefined" \
	    $(PIP) install --quiet --no-build-isolation -e ".[test]"
	LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(PYTHON) -m pytest -q -p no:cacheprovider tests
	rm -f shadowad/_csad*.so   # the next `make` rebuilds without sanitizers

bench: install
	$(PIP) install --quiet -e ".[bench]"
	$(PYTHON) benchmarks/run.py

clean:
	rm -rf build dist *.egg-info shadowad/_csad* csrc/*.o $(STAMP) .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
