# Front door. `make run` and `make test` install what is missing (Debian
# packages, as root), configure, build, and run; CMake does the real work.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
MODEL      ?= models/vim2-tiny.json
CMAKE_FLAGS = -DMIXC_WERROR=ON -DMIXC_CHECKS=OFF
# The suite runs with internal checks on: assertions and the verifier
# between passes, which the optimised build would otherwise compile out.
TEST_FLAGS  = -DMIXC_WERROR=ON -DMIXC_CHECKS=ON
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
# make test's share: a minute of each fuzz target (as many at once as there are cores)
FUZZ_TEST_SECONDS ?= 60

.PHONY: all deps build run test test-plain test-asan test-fuzz fuzz clean

all: build

deps:
	@tools/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

# The main job on the default model.
run: build
	$(BUILD)/mixc run $(MODEL)

# The whole suite, plain and under ASan + UBSan (a sanitizer report fails it).
test: deps test-plain test-asan test-fuzz

test-plain:
	cmake -S . -B $(BUILD) $(TEST_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

test-asan:
	cmake -S . -B $(ASAN_BUILD) $(TEST_FLAGS) -DMIXC_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS)

# Each fuzz target for FUZZ_SECONDS (libFuzzer, clang; docs/reliability.md).
fuzz: deps
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test-fuzz:
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TEST_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
