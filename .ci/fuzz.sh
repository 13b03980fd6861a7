#!/usr/bin/env bash
# Fuzz smoke run for CI: builds the cargo-fuzz crate in fuzz/ and runs each target for a
# short, fixed time, starting from its committed seed corpus. About 5 minutes of
# fuzzing in total (plus ~40 s to install cargo-fuzz when missing and 5-6 minutes to
# build on 2 cores). After each run it prints a line such as
#   differential: 270000 executions in 91 s = 2967 exec/s
# (from libFuzzer's final stats), and all of them again at the end.
#
# Environment (all optional):
#   FUZZ_TOOLCHAIN               toolchain for cargo-fuzz (needs nightly) default: nightly
#   FUZZ_SEED                    libFuzzer seed; fixed so a CI failure can be replayed
#                                exactly. Set it (e.g. to the run id) for varied runs.
#                                                                         default: 1
#   FUZZ_SECS_DIFFERENTIAL       seconds for `differential`               default: 90
#   FUZZ_SECS_DIFFERENTIAL_TYPED seconds for `differential_typed`         default: 90
#   FUZZ_SECS_KEY_ENCODING       seconds for `key_encoding`               default: 45
#   FUZZ_SECS_CACHED             seconds for `cached`                     default: 75
#   CARGO_FUZZ_VERSION           cargo-fuzz version to install if missing default: 0.13.2
#
# Corpus: fuzz/corpus/<target>/ holds a small minimised seed corpus, committed. It is
# never written to here: each run copies it to fuzz/artifacts/<target>/corpus/ (ignored
# by git, like the rest of artifacts/) and libFuzzer adds new inputs there. To refresh
# a seed corpus, fuzz into it for a few minutes and minimise it with the run's -max_len
# (-set_cover_merge=1 keeps the same features in well under half the files):
#   cargo +nightly fuzz run -s none <target> -- -max_total_time=300 <flags below>
#   cargo +nightly fuzz cmin -s none <target> -- -max_len=<the same> -set_cover_merge=1
#
# Sanitizer: `-s none`. What these short runs look for are logic bugs, caught by
# comparing with a model and by `validate()`; AddressSanitizer would halve the
# executions and slow the build. The crate's one `unsafe` part (the trees' uncounted
# object pointers, `src/index/retire.rs`) is checked by Miri and a loom model; a longer
# campaign that should also catch a use-after-free there runs the differential targets
# with `-s address` (`cargo +nightly fuzz run -s address differential ...`). Debug
# assertions and overflow checks stay on (cargo-fuzz's default without `-O`), so the
# crate's `debug_assert!`s fire too.
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

# target:seconds:extra libFuzzer flags. Each run starts from the target's committed seed
# corpus; -max_len must match the one the corpus was minimised with (see the top).
runs=(
    # Operation sequences, at most 48 operations an input (see each target's LIMITS),
    # which fit in 1,024 bytes; -len_control=0 lets inputs be that long from the start.
    # The store of JSON objects, its metadata quirks and the watch feeder; secondary
    # indexes (multi-valued [*] paths, the bound on keys per object) and label selectors
    # (generated and raw strings, with a label index or none).
    "differential:${FUZZ_SECS_DIFFERENTIAL:-90}:-max_len=1024 -len_control=0"
    # The same model on typed objects, with stores large enough to split tree nodes.
    "differential_typed:${FUZZ_SECS_DIFFERENTIAL_TYPED:-90}:-max_len=1024 -len_control=0"
    "key_encoding:${FUZZ_SECS_KEY_ENCODING:-45}:-max_len=4096"
    # The on-demand tier (CachedStore) against a deterministic API server: operation
    # sequences (at most 64) with reads left pending across watch events and
    # cancellations; its references' secondary indexes and selectors.
    "cached:${FUZZ_SECS_CACHED:-75}:-max_len=1024 -len_control=0"
)

# Prints `<target>: <units> executions in <secs> s = <rate> exec/s` from libFuzzer's
# final stats (`stat::number_of_executed_units`) and its `Done <runs> runs in <secs>
# second(s)` line, in the log `$2`.
rate() {
    local units secs
    units=$(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "$2" | grep -Eo '[0-9]+$' | tail -n 1)
    secs=$(grep -Eo '^Done [0-9]+ runs in [0-9]+ second' "$2" | grep -Eo '[0-9]+ second' | grep -Eo '[0-9]+' | tail -n 1)
    if [[ -n "${units}" && -n "${secs}" ]]; then
        echo "$1: ${units} executions in ${secs} s = $((units / (secs > 0 ? secs : 1))) exec/s"
    else
        echo "$1: no final stats in the log"
    fi
}

rates=()
mkdir -p artifacts
for run in "${runs[@]}"; do
    IFS=: read -r target secs extra <<<"${run}"
    mkdir -p "artifacts/${target}"
    log="artifacts/${target}/smoke.log"
    # The committed seed corpus stays read-only: libFuzzer writes new inputs to the
    # first corpus directory only, a scratch copy under artifacts/ (ignored by git).
    seeds="corpus/${target}"
    scratch="artifacts/${target}/corpus"
    rm -rf "${scratch}"
    mkdir -p "${scratch}"
    if [[ -d "${seeds}" ]]; then
        cp -R "${seeds}/." "${scratch}/"
    fi
    # shellcheck disable=SC2086 # `extra` is a list of flags.
    cmd=(cargo "+${toolchain}" fuzz run -s none "${target}" "${scratch}" --
        "-max_total_time=${secs}" "-seed=${seed}" -timeout=30 -print_final_stats=1 ${extra})
    step "fuzzing ${target} for ${secs}s: ${cmd[*]}"
    echo "(libFuzzer output: fuzz/${log}; seed corpus: $(find "${scratch}" -type f | wc -l) inputs from fuzz/${seeds})"
    t=$SECONDS
    if "${cmd[@]}" >"${log}" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "${log}" || true
        echo "corpus after the run: $(find "${scratch}" -type f | wc -l) inputs"
        rates+=("$(rate "${target}" "${log}")")
        echo "${rates[-1]}"
        echo "${target}: ok in $(elapsed "$t")"
    else
        status=$?
        echo "${target}: FAILED (exit ${status}) after $(elapsed "$t"); end of the log:"
        tail -n 200 "${log}"
        echo
        echo "crashing inputs:"
        ls -l "artifacts/${target}/" | grep -Ev 'smoke.log|corpus' || true
        exit "${status}"
    fi
done

step "fuzz smoke run passed"
printf '%s\n' "${rates[@]}"
