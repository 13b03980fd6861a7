#!/usr/bin/env bash
# Runs every example against the in-process API server (no KUBECONFIG) and checks what
# the controller example (built with the metrics feature) reports: every Ingress
# reconciled with its Services, EndpointSlices and TLS Secrets read, the rotated Secret
# fetched again, its /metrics scrape, and exactly one watch and one list per resource at
# the server (the stores and the Controller share one watch each).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
unset KUBECONFIG

fail() { echo "examples check failed: $*" >&2; exit 1; }

for example in memory_store on_demand configuration; do
    echo "--- example ${example}"
    cargo run --quiet --example "${example}"
done

echo "--- example controller"
log=target/example-controller.log
cargo run --quiet --features metrics --example controller -- --namespaces 4 --seconds 5 | tee "$log"
field() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) { print $(i + 1); exit } }' "$log"; }
ingresses=$(field ingresses)
[ "${ingresses:-0}" = 12 ] || fail "expected 12 Ingresses in the store, got ${ingresses:-none}"
reconciles=$(field reconciles)
[ "${reconciles:-0}" -ge 12 ] || fail "expected every Ingress reconciled, got ${reconciles:-none} reconciles"
[ "$(field services_read)" -ge 12 ] || fail "the reconciles did not read every Service"
[ "$(field endpointslices_read)" -ge 24 ] || fail "the reconciles did not read every EndpointSlice"
[ "$(field secrets_read)" -ge 12 ] || fail "the reconciles did not read every TLS Secret"
grep -Eq 'secrets_cache fetches [0-9]+ hits [0-9]+ fetch_errors 0$' "$log" || fail "the on-demand store reported fetch errors"
fetches=$(awk '$1 == "secrets_cache" { print $3 }' "$log")
[ "${fetches:-0}" -ge 13 ] || fail "the rotated Secret was not fetched again (${fetches:-no} fetches for 12 Secrets)"
for series in 'k8s_store_objects{store="ingresses"} 12' 'k8s_store_objects{store="endpointslices"} 24' \
    'k8s_store_watch_relists_total{store="secrets"} 1'; do
    grep -Fqx "scraped ${series}" "$log" || fail "/metrics did not serve ${series}"
done
for plural in ingresses services endpointslices secrets; do
    grep -Eq "^server ${plural} watches 1 lists 1$" "$log" \
        || fail "${plural}: expected one watch and one list at the server"
done
echo "examples check: ok (${reconciles} reconciles of ${ingresses} Ingresses, one watch per resource)"
