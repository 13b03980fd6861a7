#!/usr/bin/env bash
# Fuzz smoke run for CI: builds the cargo-fuzz crate in fuzz/ and runs each target for a
# short, fixed time. About 5 minutes of fuzzing in total (plus ~30 s to install
# cargo-fuzz when missing and 2-4 minutes to build on 2 cores).
#
# Environment (all optional):
#   FUZZ_TOOLCHAIN             toolchain for cargo-fuzz (needs nightly)   default: nightly
#   FUZZ_SEED                  libFuzzer seed; fixed so a CI failure can be replayed
#                              exactly. Set it (e.g. to the run id) for varied runs.
#                                                                         default: 1
#   FUZZ_SECS_DIFFERENTIAL     seconds for the `differential` target      default: 150
#   FUZZ_SECS_KEY_ENCODING     seconds for the `key_encoding` target      default: 60
#   FUZZ_SECS_CACHED           seconds for the `cached` target            default: 90
#   CARGO_FUZZ_VERSION         cargo-fuzz version to install if missing   default: 0.13.2
#
# Sanitizer: `-s none`. The crate has no `unsafe` code (its dependencies' unsafe code
# has its own tests and fuzzing), so AddressSanitizer would mostly slow the run
# (about 2x fewer executions, a slower build) without finding anything the assertions
# do not: what these targets look for are logic bugs, caught by comparing with a model
# and by `validate()`. Debug assertions and overflow checks stay on (cargo-fuzz's
# default without `-O`), so the crate's `debug_assert!`s fire too.
#
# On failure: libFuzzer writes the crashing input to fuzz/artifacts/<target>/ and the
# script prints the end of the log, including cargo-fuzz's `Debug` rendering of the
# input. Replay it locally with
#   cargo +nightly fuzz run -s none <target> fuzz/artifacts/<target>/crash-...
# and shrink it with
#   cargo +nightly fuzz tmin -s none <target> fuzz/artifacts/<target>/crash-...

set -euo pipefail

toolchain="${FUZZ_TOOLCHAIN:-nightly}"
seed="${FUZZ_SEED:-1}"
cargo_fuzz_version="${CARGO_FUZZ_VERSION:-0.13.2}"

cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

step() { printf '\n==> %s\n' "$*"; }

elapsed() { printf '%ds' "$((SECONDS - $1))"; }

if ! rustup toolchain list | grep -q "^${toolchain}"; then
    step "installing toolchain ${toolchain}"
    rustup toolchain install "${toolchain}" --profile minimal
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    step "installing cargo-fuzz ${cargo_fuzz_version}"
    t=$SECONDS
    cargo install cargo-fuzz --locked --version "${cargo_fuzz_version}"
    echo "installed cargo-fuzz in $(elapsed "$t")"
fi
echo "cargo-fuzz: $(cargo fuzz --version)"
echo "toolchain:  $(cargo "+${toolchain}" --version)"

step "cargo +${toolchain} fuzz build -s none"
t=$SECONDS
cargo "+${toolchain}" fuzz build -s none
echo "built in $(elapsed "$t")"

# target:seconds:extra libFuzzer flags
runs=(
    # Operation sequences: let inputs grow to thousands of bytes early (-len_control),
    # so that runs reach stores with enough objects to split the 32-wide tree nodes.
    "differential:${FUZZ_SECS_DIFFERENTIAL:-150}:-max_len=8192 -len_control=0"
    "key_encoding:${FUZZ_SECS_KEY_ENCODING:-60}:-max_len=4096"
    # The on-demand tier (CachedStore) against a deterministic API server: operation
    # sequences with reads left pending across watch events and cancellations.
    "cached:${FUZZ_SECS_CACHED:-90}:-max_len=4096 -len_control=0"
)

mkdir -p artifacts
for run in "${runs[@]}"; do
    IFS=: read -r target secs extra <<<"${run}"
    mkdir -p "artifacts/${target}"
    log="artifacts/${target}/smoke.log"
    # shellcheck disable=SC2086 # `extra` is a list of flags.
    cmd=(cargo "+${toolchain}" fuzz run -s none "${target}" --
        "-max_total_time=${secs}" "-seed=${seed}" -timeout=30 -print_final_stats=1 ${extra})
    step "fuzzing ${target} for ${secs}s: ${cmd[*]}"
    echo "(libFuzzer output: fuzz/${log})"
    t=$SECONDS
    if "${cmd[@]}" >"${log}" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "${log}" || true
        echo "${target}: ok in $(elapsed "$t")"
    else
        status=$?
        echo "${target}: FAILED (exit ${status}) after $(elapsed "$t"); end of the log:"
        tail -n 200 "${log}"
        echo
        echo "crashing inputs:"
        ls -l "artifacts/${target}/" | grep -v smoke.log || true
        exit "${status}"
    fi
done

step "fuzz smoke run passed"
