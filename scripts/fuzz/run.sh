#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Fuzz/, with --sanitize=fuzzer --sanitize=address) and runs each one in turn.
#
# usage: scripts/fuzz/run.sh [--smoke] [SECONDS] [HARNESS…]
#   SECONDS   per harness (default $FUZZ_SECONDS or 60); --smoke: 10 s each, as `make test` runs them
#   HARNESS   names from Fuzz/Sources/CustosFuzz/Harnesses.swift (default: all)
# Seed corpora are rebuilt from $CUSTOS_TESTDATA into .build-fuzz/seeds; what libFuzzer finds accumulates in
# .build-fuzz/corpus (git-ignored). Crash/leak/OOM/timeout inputs go to .build-fuzz/artifacts/<harness>/. Prints
# executions and crashes per harness and exits 1 if any harness found something. One fuzzer process at a time.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
seconds=${FUZZ_SECONDS:-60}
if [[ ${1:-} == --smoke ]]; then seconds=10; shift; fi
if [[ ${1:-} =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi
testdata=${CUSTOS_TESTDATA:-$root/../shared/testdata}
out=$root/.build-fuzz

# Same pins as the product (Package.resolved): the fuzz package resolves the same graph.
cp Package.resolved Fuzz/Package.resolved
swift build --package-path Fuzz --scratch-path "$out/build" -c release --force-resolved-versions \
  --sanitize=fuzzer --sanitize=address 2>&1 | grep -v "Cannot export local symbol '__asan" >&2
binary=$out/build/release/CustosFuzz

rm -rf "$out/seeds"
python3 scripts/fuzz/seeds.py "$testdata" "$out/seeds" >&2

if [[ $# -eq 0 ]]; then
  set -- $(sed -n 's/^ *"\([a-z0-9-]*\)": [a-zA-Z0-9]*,$/\1/p' Fuzz/Sources/CustosFuzz/Harnesses.swift)
fi

failed=0
printf '%-20s %12s %10s %8s %s\n' harness execs exec/s seconds findings
for harness in "$@"; do
  corpus=$out/corpus/$harness artifacts=$out/artifacts/$harness
  mkdir -p "$corpus" "$artifacts"
  seeds=$out/seeds/$harness
  [[ -d $seeds ]] || seeds=
  log=$out/logs/$harness.log
  mkdir -p "$out/logs"
  before=$(ls "$artifacts" | wc -l)
  status=0
  CUSTOS_FUZZ_HARNESS=$harness ASAN_OPTIONS=detect_leaks=1 "$binary" "$corpus" $seeds \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  findings=$(( $(ls "$artifacts" | wc -l) - before ))
  if [[ $status -ne 0 || $findings -ne 0 ]]; then
    failed=1
    printf '%-20s %12s %10s %8s %s\n' "$harness" "${execs:-?}" "${rate:-?}" "$seconds" "$findings (exit $status, see $log)"
    grep -m3 -E "ERROR: |Fatal error|SUMMARY" "$log" >&2 || true
  else
    printf '%-20s %12s %10s %8s %s\n' "$harness" "${execs:-?}" "${rate:-?}" "$seconds" 0
  fi
done
exit $failed
