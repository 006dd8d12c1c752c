#!/usr/bin/env bash
# Long property-test ("fuzz") runs on stable Rust: repeats one target's proptest properties with
# fresh random seeds until SECONDS_PER_TARGET (default 600) have passed, one core, and reports the
# cases run. cargo test runs the same properties briefly; cargo fuzz would need nightly.
#
#   scripts/fuzz.sh heads|config|json|file|dns|wire [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh heads|config|json|file|dns|wire [seconds]}
secs=${2:-600}
case $target in
  heads) filters=(fuzz::request_heads fuzz::raw_bytes fuzz::split_reads) ;;
  config) filters=(fuzz::config_load fuzz::ports fuzz::endpoint_lists fuzz::paths fuzz::durations fuzz::one_edit_apart) ;;
  json) filters=(fuzz::json_agrees_with_serde_json fuzz::json_reads_what_serde_json_writes) ;;
  file) filters=(fuzz::readiness_file_never_panics fuzz::readiness_file_reads_what_it_says fuzz::set_always_writes_a_readable_file) ;;
  dns) filters=(fuzz::dns_answer fuzz::resolver_files) ;;
  wire) filters=(fuzz::wire_readers_never_panic fuzz::instances_agree_with_their_keys fuzz::base64_round_trips fuzz::json_writes_what_serde_json_writes) ;;
  *) echo "fuzz.sh: unknown target $target (heads, config, json, file, dns or wire)" >&2; exit 2 ;;
esac
per=${PROPTEST_CASES:-20000}
cargo test --release --quiet --bin healthd --no-run
start=$SECONDS rounds=0
while [ $((SECONDS - start)) -lt "$secs" ]; do
  PROPTEST_CASES=$per cargo test --release --quiet --bin healthd -- --test-threads=1 "${filters[@]}" >/tmp/fuzz-$target.log 2>&1 || {
    cat /tmp/fuzz-$target.log
    echo "fuzz.sh: $target failed after $rounds rounds" >&2
    exit 1
  }
  rounds=$((rounds + 1))
done
echo "fuzz $target: $((SECONDS - start)) s, $rounds rounds x ${#filters[@]} properties x $per cases = $((rounds * ${#filters[@]} * per)) cases, no failure"
