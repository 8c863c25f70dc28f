#!/usr/bin/env bash
# Fuzz one target continuously on the stable toolchain: fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]
#
# Builds the libFuzzer binary with rustc's stable coverage flags (no nightly, no
# RUSTC_BOOTSTRAP, no cargo-fuzz needed: libfuzzer-sys compiles libFuzzer with the C++
# compiler), then runs it niced over the committed seeds in fuzz/corpus/TARGET. New
# interesting inputs go to fuzz/work/TARGET, crashes to fuzz/artifacts/TARGET (both
# ignored by git). Without SECONDS it runs until stopped. Targets: see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")"

usage="usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]; the targets are: $(ls corpus | tr '\n' ' ')"
if [[ $# -lt 1 ]]; then
    echo "fuzz/run.sh: $usage" >&2
    exit 2
fi
target=$1
seconds=${2:-0}
if [[ ! $seconds =~ ^[0-9]+$ ]]; then
    echo "fuzz/run.sh: SECONDS must be a whole number (0 runs until stopped), not $seconds; $usage" >&2
    exit 2
fi
shift $(( $# >= 2 ? 2 : 1 ))
if [[ -z $target || ! -d corpus/$target ]]; then
    echo "fuzz/run.sh: no target ${target@Q}; $usage" >&2
    exit 2
fi
command -v c++ >/dev/null || {
    echo "fuzz/run.sh: libFuzzer needs a C++ compiler; install one (apt-get install g++)" >&2
    exit 1
}

triple=$(rustc -vV | sed -n 's/^host: //p')
# What cargo-fuzz passes, minus the nightly-only sanitizer: SanitizerCoverage with inline
# 8-bit counters, the PC table and comparison tracing, which libFuzzer reads.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares ${RUSTFLAGS:-}"
# --target keeps the flags off build scripts and proc macros, which do not link libFuzzer.
nice -n 10 cargo build --release --target "$triple" --bin "$target"

mkdir -p "work/$target" "artifacts/$target"
exec nice -n 10 "target/$triple/release/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=1048576 \
    -artifact_prefix="artifacts/$target/" "$@" "work/$target" "corpus/$target"
