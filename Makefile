# The two commands the README opens with. Everything else is plumbing for them.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: run test setup build test-sanitize test-tsan clean

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Set up if needed, build, and run the main job on the bundled example.
run: build
	@bash scripts/run_example.sh $(BUILD)

# Set up if needed, build, and run the whole test suite (C++ unit tests + Python oracle tests).
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# ASan + UBSan build of everything in build-sanitize, then every ctest test except the Python oracle tests, then
# the bad-input catalogue against the sanitized onnxquant (docs/reliability.md, Sanitizers). -O1 with debug info
# and without NDEBUG: the tests run several times faster than at -O0 and the stack traces stay exact.
# Any ASan or UBSan report ends the process with exit code 86 (UBSan cannot recover: -fno-sanitize-recover=all).
SANITIZE_ENV = ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:check_initialization_order=1:exitcode=86 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=86
test-sanitize: setup
	@cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo '-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g' \
	  -DOQ_SANITIZE=ON -DOQ_BUILD_BENCH=OFF >/dev/null
	@$(SANITIZE_ENV) cmake --build build-sanitize -j $(JOBS)
	@# Excluded: the Python oracle tests (py.*: the catalogue below is the one that matters here; the others
	@# compare numbers with onnxruntime and only repeat the plain build's runs, slowly), and
	@# TensorAlloc.ResidentMemoryStaysFlatOverManyRuns: it measures the process's resident set, which ASan's
	@# quarantine of freed blocks (256 MiB) makes grow by design; it runs in the plain build.
	@cd build-sanitize && $(SANITIZE_ENV) ctest --output-on-failure -j $(JOBS) \
	  -E '^py\.|^TensorAlloc\.ResidentMemoryStaysFlatOverManyRuns$$'
	@# The bad-input catalogue against the sanitized binary (determinism runs skipped: they only repeat good runs).
	@$(SANITIZE_ENV) OQ_BIN=$(CURDIR)/build-sanitize/onnxquant OQ_BAD_INPUTS_SKIP_DETERMINISM=1 \
	  .venv/bin/python tests/python/test_bad_inputs.py

# ThreadSanitizer on the concurrent code (exec::run_ordered's workers, the shared Session and kernels, the
# tensor allocator, the data loader): the unit tests of those parts in build-tsan. Not in .ci/run (a TSan build
# of the library takes ~20 min on two cores). OpenMP is limited to one thread: Debian's libgomp is not built
# with TSan, so its barriers are invisible and every parallel_for would be reported; the workers are
# std::threads running one intra-op thread each, which is what is checked. setarch -R: GCC 12's TSan runtime
# needs a fixed address-space layout on this kernel (gtest discovery runs the binary through it too).
TSAN_ENV = TSAN_OPTIONS=halt_on_error=1:exitcode=66 OMP_THREAD_LIMIT=1
test-tsan: setup
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo '-DCMAKE_CXX_FLAGS=-fsanitize=thread -O1 -g' \
	  '-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread' '-DCMAKE_CROSSCOMPILING_EMULATOR=setarch;x86_64;-R' \
	  -DOQ_BUILD_BENCH=OFF >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target oq_unit_tests
	@$(TSAN_ENV) setarch x86_64 -R build-tsan/tests/oq_unit_tests \
	  --gtest_filter='OrderedRuns.*:TensorAlloc.ThreadSafe:Loader.*'

clean:
	rm -rf $(BUILD) build-sanitize build-tsan
