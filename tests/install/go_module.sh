#!/usr/bin/env bash
# A Go module of a user's, outside the clone, on an installed microsnap:
# the README's "Go module" block run as written in an empty temp directory
# (with the Go quick start's main.go), then the program and the `go install`ed
# CLI run. Nothing links the clone's target/: the binding is built with
# -tags microsnap_pkgconfig and finds the library through PREFIX's pkg-config
# file only. The binding's public dependencies (cobra, ...) come the usual
# way, from the module cache or the Go module proxy, as for any user (the
# CLI's go.sum lines need modules of the whole graph, such as the Windows-only
# mousetrap, that no Linux build downloads, so the run is not offline).
#
#   tests/install/go_module.sh PREFIX      (run by `make test-install`)
set -euo pipefail
prefix=$(cd "$1" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case "$work/" in "$repo"/*) echo "go_module: $work is inside the clone"; exit 1 ;; esac

readme_block() { # SECTION LANG [NTH]: a README code block, as tests/readme reads it
  python3 - "$repo" "$@" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("r", sys.argv[1] + "/tests/readme/test_readme.py")
r = importlib.util.module_from_spec(spec); sys.modules["r"] = r; spec.loader.exec_module(r)
sys.stdout.write(r.block(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0))
PY
}

cd "$work"
readme_block Go go > main.go
readme_block "Go module" sh > build.sh
# The image the quick start imports (the README's image block).
MICROSNAP_SRC=$repo bash -e -c "$(readme_block 'Quick starts' sh 1)" >/dev/null

# The block's `go install` puts the CLI back (make install's copy was
# checked before this script runs).
rm -f "$prefix/bin/microsnap"
env -u MICROSNAP_LIB -u MICROSNAP_HOME -u CGO_CFLAGS -u CGO_LDFLAGS -u PKG_CONFIG_PATH \
  MICROSNAP_SRC="$repo" PREFIX="$prefix" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
  bash -e build.sh

# It linked the installed library, not the clone's build.
links_to_prefix() { ldd "$1" | grep -F "=> $prefix/lib/libmicrosnap.so.0 " >/dev/null; }
links_to_prefix ./app || { ldd ./app; echo "go_module: app does not link $prefix/lib"; exit 1; }
out=$(./app)
[[ $(tail -n1 <<<"$out") =~ ^sha256:[0-9a-f]{64}\ not_recorded$ ]] || { echo "go_module: app printed: $out"; exit 1; }
links_to_prefix "$prefix/bin/microsnap" || { echo "go_module: go-installed CLI does not link $prefix/lib"; exit 1; }
version=$(env -i PATH=/usr/bin:/bin "$prefix/bin/microsnap" --version)
grep -qx "libmicrosnap [0-9.]* (ABI 1)" <<<"$version" || { echo "go_module: --version: $version"; exit 1; }
echo "go_module: module and go install built and ran on $prefix"
