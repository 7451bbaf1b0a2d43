#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer (from the Swift toolchain) and the address sanitizer.
#
# Builds `swiftvs-fuzz` with -sanitize=fuzzer,address into .build-fuzz, then runs each target from its committed
# seed corpus (fuzz/corpus/TARGET) for FUZZ_SECONDS (or RUNS inputs). New inputs libFuzzer finds interesting go to a
# scratch folder, not the repository. A crash stops the run with the input in fuzz/artifacts/; copy it into
# fuzz/corpus/TARGET/crash-NAME once fixed, and the tests replay it from then on (CorpusTests).
#
# Usage: scripts/fuzz.sh [TARGET...]          every target when none is named
# Knobs: FUZZ_SECONDS=20 per target, RUNS=N (a number of inputs instead of a time).
# Targets: http-request http-response exchange ts vrrp config scenario front h2 (FuzzTargets.all).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}
targets=("$@")
((${#targets[@]})) || targets=(http-request http-response exchange ts vrrp config scenario front h2)

# lld: gold fails on this link with an internal error (dwarf_reader.cc) under the sanitizers.
swift build -c release --product swiftvs-fuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -use-ld=lld
binary=.build-fuzz/release/swiftvs-fuzz
mkdir -p fuzz/artifacts
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

for target in "${targets[@]}"; do
    [ -d "fuzz/corpus/$target" ] || { echo "no fuzz/corpus/$target" >&2; exit 2; }
    mkdir -p "$scratch/$target"
    limit=(-max_total_time="$SECONDS_PER_TARGET")
    [ -z "${RUNS:-}" ] || limit=(-runs="$RUNS")
    if [ -n "${RUNS:-}" ]; then echo "== $target ($RUNS inputs)"; else echo "== $target (${SECONDS_PER_TARGET}s)"; fi
    log="$scratch/$target.log"
    if ! SWIFTVS_FUZZ_TARGET=$target "$binary" "${limit[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$target-" "$scratch/$target" "fuzz/corpus/$target" \
        > "$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz: $target failed; the input is in fuzz/artifacts/" >&2
        exit 1
    fi
    # What libFuzzer says at the end: inputs run, coverage (cov: edges, ft: features), corpus size.
    done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 | tr -s '[:space:]' ' ')
    echo "$target: ${done_line:-no DONE line} $(grep -E '^stat::peak_rss_mb' "$log" | tr -s '[:space:]' ' ')"
done
