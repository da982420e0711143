#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 30)
#
# Only the stable toolchain exists on our machines, and cargo-fuzz passes
# -Z flags to cargo/rustc, so RUSTC_BOOTSTRAP=1 unlocks them. libFuzzer
# writes new inputs to a scratch corpus under fuzz/target/ and reads the
# committed seeds in fuzz/corpus/<target>/ (kept small and hand-curated);
# crashes land in fuzz/artifacts/<target>/. Set FUZZ_SANITIZER=none if
# AddressSanitizer is unavailable (the code under test has no unsafe).
set -euo pipefail

secs="${1:-30}"
sanitizer="${FUZZ_SANITIZER:-address}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
mapfile -t targets < <(cargo fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets found" >&2
    exit 1
fi

cargo fuzz build --sanitizer "$sanitizer"

failed=()
for t in "${targets[@]}"; do
    work="target/corpus-work/$t"
    mkdir -p "$work"
    echo "== fuzzing $t for ${secs}s"
    if ! cargo fuzz run --sanitizer "$sanitizer" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=2048 -print_final_stats=1; then
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz targets failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "all ${#targets[@]} fuzz targets ran ${secs}s without a crash"
