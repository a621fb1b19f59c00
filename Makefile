# prenv — top-level entry points. `make demo` and `make test` each install what
# they need (scripts/deps.sh), build, and run their job.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build build-asan test test-unit test-e2e demo bench static static-test clean clean-static

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPRENV_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS)

test: build build-asan
	@./scripts/run-tests.sh build build-asan

demo: build
	@./scripts/demo.sh

bench: build
	@./bench/engine.sh

# one fully static, stripped binary in build-static/prenv (docs/static.md);
# the dependencies are built once from Debian's sources and cached
static:
	@./scripts/static-build.sh

# the static binary's checks: ldd, size, and an empty chroot (needs root)
static-test: static
	@./scripts/static-test.sh

clean:
	rm -rf build build-asan

clean-static:
	rm -rf build-static
