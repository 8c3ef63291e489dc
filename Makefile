# microsnap build and test entry points. `make test` is what CI runs.
PREFIX ?= /usr/local
CARGO ?= cargo
PROFILE_DIR := target/debug
LIB := $(PROFILE_DIR)/libmicrosnap.so
CFLAGS_STRICT := -std=c99 -Wall -Wextra -pedantic -Werror -Iinclude
C_TESTS := $(patsubst tests/c/%.c,build/c/%,$(wildcard tests/c/test_*.c))
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

.PHONY: all lib cli demo release header test test-rust test-c test-c-asan test-c-valgrind test-install test-go test-python test-readme \
        test-release-clean install clean demo bench stress fuzz

all: lib cli

# The command-line tool, built from the Go binding.
cli: lib
	@mkdir -p bin
	cd bindings/go && go build -o ../../bin/microsnap ./cmd/microsnap

demo: cli
	bash tools/demo.sh

lib:
	$(CARGO) build --lib
	@ln -sf libmicrosnap.so $(PROFILE_DIR)/libmicrosnap.so.0

release:
	$(CARGO) build --release --lib

header:
	$(CARGO) run --quiet --example gen-header -- include/microsnap.h

test: test-rust test-release-clean test-c test-install test-go test-python test-readme

# The `testing` feature compiles in the fault points and the fuzz target
# bodies the Rust tests need; `make lib` (C, Go, Python tests) stays without.
TEST_FEATURES := --features testing

test-rust:
	$(CARGO) test $(TEST_FEATURES)

# The shipped library carries no test machinery: no environment variable
# that can kill or trace the host (MICROSNAP_FAULT), no fuzz target symbol.
RELEASE_LIB := target/release/libmicrosnap.so
test-release-clean: release
	@if strings -a $(RELEASE_LIB) | grep -q MICROSNAP_FAULT; then \
	  echo "test-release-clean: $(RELEASE_LIB) contains MICROSNAP_FAULT"; exit 1; fi
	@if nm -D --defined-only $(RELEASE_LIB) | grep -i fuzz; then \
	  echo "test-release-clean: $(RELEASE_LIB) exports fuzz symbols"; exit 1; fi
	@if nm -a $(RELEASE_LIB) | grep -E 'fuzz_targets|5fault5armed'; then \
	  echo "test-release-clean: $(RELEASE_LIB) links test machinery"; exit 1; fi
	@echo "test-release-clean: 1 passed, 0 failed"

# ---- C ----
build/c/%: tests/c/%.c tests/c/common.h include/microsnap.h lib
	@mkdir -p build/c
	$(CC) $(CFLAGS_STRICT) -g -o $@ $< -L$(PROFILE_DIR) -lmicrosnap -lpthread -Wl,-rpath,$(abspath $(PROFILE_DIR))

build/c-asan/%: tests/c/%.c tests/c/common.h include/microsnap.h lib
	@mkdir -p build/c-asan
	$(CC) $(CFLAGS_STRICT) -g -fsanitize=address,undefined -fno-omit-frame-pointer -o $@ $< \
	  -L$(PROFILE_DIR) -lmicrosnap -lpthread -Wl,-rpath,$(abspath $(PROFILE_DIR))

build/c/header_twice: tests/c/header_twice.c include/microsnap.h
	@mkdir -p build/c
	$(CC) $(CFLAGS_STRICT) -c -o $@.o $<
	$(CC) -x c++ -std=c++11 -Wall -Wextra -pedantic -Werror -Iinclude -c -o $@.cpp.o $<
	@touch $@

test-c: lib build/c/header_twice test-c-asan test-c-valgrind

test-c-asan: $(patsubst build/c/%,build/c-asan/%,$(C_TESTS))
	@set -e; for t in $^; do echo "== $$t (ASan+UBSan)"; \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  MICROSNAP_FIXTURES=$(abspath tests/fixtures) ./$$t; done

test-c-valgrind: $(C_TESTS)
	@set -e; for t in $^; do echo "== $$t (valgrind)"; \
	  MICROSNAP_FIXTURES=$(abspath tests/fixtures) valgrind --quiet --error-exitcode=99 \
	    --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
	    ./$$t; done

# ---- Go ----
test-go: lib
	cd bindings/go && go vet ./... && go test -race -count=1 ./...

# ---- Python ----
test-python: lib
	MICROSNAP_LIB=$(abspath $(LIB)) python3 -m pytest -q bindings/python/tests

# ---- README ----
# Every code block of README.md, read from the README by the test itself and
# run as written in a temporary directory outside the repository.
test-readme: cli
	python3 -m pytest -q tests/readme

# ---- benchmark (not part of `make test`: machines are shared and noisy) ----
# Builds its fixtures once into target/bench-cache, runs each operation and
# its peer tool alternately, and writes docs/BENCHMARKS.md.
bench:
	$(CARGO) build --release --lib
	$(CARGO) run --release --example bench

# ---- reliability (long runs; `make test` runs the short versions) ----
FUZZ_SECONDS ?= 300
# 200 SIGKILLs per operation and 60 s concurrency mixes.
stress:
	MICROSNAP_STRESS=1 $(CARGO) test $(TEST_FEATURES) --test reliability -- --nocapture crash:: concurrency::

# Each cargo-fuzz target for FUZZ_SECONDS (needs nightly and cargo-fuzz).
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

# ---- packaging ----
# INSTALL_PROFILE=debug installs the test build (what test-install uses, to
# avoid a second full compile in CI).
INSTALL_PROFILE ?= release
install: $(if $(filter debug,$(INSTALL_PROFILE)),lib,release)
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 target/$(INSTALL_PROFILE)/libmicrosnap.so $(DESTDIR)$(PREFIX)/lib/libmicrosnap.so.$(VERSION)
	ln -sf libmicrosnap.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libmicrosnap.so.0
	ln -sf libmicrosnap.so.0 $(DESTDIR)$(PREFIX)/lib/libmicrosnap.so
	install -m 0644 include/microsnap.h $(DESTDIR)$(PREFIX)/include/microsnap.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' microsnap.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/microsnap.pc

# Install into a scratch prefix, then build and run the C quick start the
# way a user would: with pkg-config only.
test-install:
	rm -rf build/prefix
	$(MAKE) --no-print-directory install PREFIX=$(abspath build/prefix) INSTALL_PROFILE=debug
	readelf -d build/prefix/lib/libmicrosnap.so.0 | grep -q 'SONAME.*libmicrosnap.so.0'
	PKG_CONFIG_PATH=$(abspath build/prefix/lib/pkgconfig) sh -c \
	  'cc -std=c99 -Wall -Wextra -Werror examples/c/quickstart.c $$(pkg-config --cflags --libs microsnap) \
	   -Wl,-rpath,$$(pkg-config --variable=libdir microsnap) -o build/quickstart'
	rm -rf build/qs-home && mkdir -p build/qs-home
	python3 tests/fixtures/make_oci_image.py build/qs-home/images alpine:3.20 >/dev/null
	./build/quickstart $(abspath build/qs-home) | grep -q '"ref":"alpine:3.20"'
	cd bindings/go && PKG_CONFIG_PATH=$(abspath build/prefix/lib/pkgconfig) go vet -tags microsnap_pkgconfig ./...
	@echo "test-install: 1 passed, 0 failed"

clean:
	$(CARGO) clean
	rm -rf build bin
