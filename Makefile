# The two commands the README opens with. Everything else is plumbing for them.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: run test setup build test-sanitize clean

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

test-sanitize: setup
	@cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DOQ_SANITIZE=ON -DOQ_BUILD_BENCH=OFF >/dev/null
	@cmake --build build-sanitize -j $(JOBS)
	@cd build-sanitize && ctest --output-on-failure -j $(JOBS) -E '^py\.'
	@# The bad-input catalogue against the sanitized binary (determinism runs skipped: they only repeat good runs).
	@OQ_BIN=$(CURDIR)/build-sanitize/onnxquant OQ_BAD_INPUTS_SKIP_DETERMINISM=1 \
	  .venv/bin/python tests/python/test_bad_inputs.py

clean:
	rm -rf $(BUILD) build-sanitize
