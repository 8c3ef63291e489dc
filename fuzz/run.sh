#!/bin/sh
# Run every cargo-fuzz target for SECONDS each (default 300), starting from the
# committed seed corpus. New inputs go to build/fuzz/<target>/ (not the
# committed corpus; minimise and copy the interesting ones by hand with
# `cargo +nightly fuzz cmin`). Crashes land in fuzz/artifacts/<target>/ and
# make this script fail. Prints the executions per target at the end.
set -eu
seconds=${1:-300}
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../build/fuzz"
cd "$here"
for target in manifest archive_import ffi_json; do
    mkdir -p "$out/$target"
    echo "== fuzz $target for ${seconds}s"
    cargo +nightly fuzz run -O "$target" "$out/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
        2>&1 | tee "$out/$target.log" | grep -E '^(#[0-9]+ +(INITED|DONE)|stat::number_of_executed_units|==[0-9]+== ERROR|SUMMARY)' || true
    if grep -qE 'ERROR: libFuzzer|panicked|SUMMARY: ' "$out/$target.log"; then
        echo "fuzz $target: FAILED (see $out/$target.log and fuzz/artifacts/$target/)"
        exit 1
    fi
done
