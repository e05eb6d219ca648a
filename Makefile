# The two commands of the README, and the variants CI runs. Everything that
# must be installed is installed by scripts/setup.sh, never by hand.
BUILD      ?= build
BUILD_TSAN ?= build-tsan
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
BUILD_BENCH ?= build-bench
JOBS       ?= $(shell nproc)
PORT       ?= 3000

.PHONY: all setup build run test test-tsan test-asan test-fuzz bench clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Starts the server with the embedded store and the demo bot on
# http://127.0.0.1:$(PORT)/ (data in ./data).
run: build
	./$(BUILD)/anywhere --port $(PORT) --data-dir data --bot demo

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 600

# The threaded tests again, built with ThreadSanitizer.
test-tsan: setup
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAW_TSAN=ON >/dev/null
	cmake --build $(BUILD_TSAN) -j $(JOBS)
	cd $(BUILD_TSAN) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	    ctest --output-on-failure -j 2 -L 'unit|stress|net|cluster' --timeout 900

# The whole suite again with AddressSanitizer and UndefinedBehaviorSanitizer
# (any finding fails the test).
test-asan: setup
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAW_ASAN=ON -DAW_UBSAN=ON >/dev/null
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && LSAN_OPTIONS="suppressions=$(CURDIR)/tests/lsan.supp print_suppressions=0" \
	    ctest --output-on-failure -j 2 --timeout 900

# Each fuzz target for a bounded time (libFuzzer, clang), from its corpus.
test-fuzz: setup
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAW_FUZZ=ON >/dev/null
	cmake --build $(BUILD_FUZZ) -j $(JOBS)
	cd $(BUILD_FUZZ) && ctest --output-on-failure -j 2 -L fuzz --timeout 300

# anywhere against Botkit and nginx, side by side on loopback, in release mode
# (bench/README.md). Installs its peers itself (scripts/bench-setup.sh).
# Two I/O threads and one worker: nginx runs a worker per core (auto), and on
# two cores this split served both loads best (bench/README.md).
BENCH_IO_THREADS ?= 2
BENCH_WORKERS    ?= 1
bench: setup
	@bash scripts/bench-setup.sh
	cmake -S . -B $(BUILD_BENCH) -DCMAKE_BUILD_TYPE=Release -DAW_TESTS=OFF >/dev/null
	cmake --build $(BUILD_BENCH) -j $(JOBS)
	BENCH_IO_THREADS=$(BENCH_IO_THREADS) BENCH_WORKERS=$(BENCH_WORKERS) bash bench/run.sh $(CURDIR)/$(BUILD_BENCH)

clean:
	rm -rf $(BUILD) $(BUILD_TSAN) $(BUILD_ASAN) $(BUILD_FUZZ) $(BUILD_BENCH)
