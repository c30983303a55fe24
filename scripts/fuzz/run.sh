#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Fuzz/, with --sanitize=fuzzer --sanitize=address) and runs each one in turn.
#
# usage: scripts/fuzz/run.sh [--no-build] [--smoke] [--runs N] [SECONDS] [HARNESS…]
#   --no-build  reuse the build, seeds and key of an earlier run (a second lane beside a running one: the first
#               lane's run rebuilds the seed directory)
#   SECONDS   per harness (default $FUZZ_SECONDS or 60); --smoke: 10 s each, as `make test` runs them
#   --runs N  each harness runs until exactly N executions (libFuzzer -runs=N), with no time limit (default
#             $FUZZ_RUNS when set: `make fuzz FUZZ_RUNS=10000000`); overrides SECONDS
#   HARNESS   names from Fuzz/Sources/CustosFuzz/Harnesses.swift (default: all, in that order)
# Seed corpora are rebuilt from $CUSTOS_TESTDATA into .build-fuzz/seeds (seeds.py, plus the seeds the harness binary
# makes with its fixed JOSE/EAR keys); what libFuzzer finds accumulates in
# .build-fuzz/corpus (git-ignored). Crash/leak/OOM/timeout inputs go to .build-fuzz/artifacts/<harness>/. Prints
# executions and crashes per harness and exits 1 if any harness found something. One fuzzer process at a time.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
seconds=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-}
build=1
if [[ ${1:-} == --no-build ]]; then build=; shift; fi
if [[ ${1:-} == --smoke ]]; then seconds=10; runs=; shift; fi
if [[ ${1:-} == --runs ]]; then runs=${2:?--runs needs a count}; shift 2; fi
if [[ ${1:-} =~ ^[0-9]+$ ]]; then seconds=$1; shift; fi
if [[ -n $runs && ! $runs =~ ^[1-9][0-9]*$ ]]; then echo "run.sh: --runs/FUZZ_RUNS must be a positive count, not '$runs'" >&2; exit 2; fi
if [[ -n $runs ]]; then limit=(-runs="$runs"); else limit=(-max_total_time="$seconds"); fi
testdata=${CUSTOS_TESTDATA:-$root/../shared/testdata}
out=$root/.build-fuzz

# Same pins as the product (Package.resolved): the fuzz package resolves the same graph.
# swiftc keeps only the last -sanitize= option: SwiftPM's `--sanitize=fuzzer --sanitize=address` passes two, so the
# Swift modules got ASan but no coverage instrumentation (libFuzzer saw only the C code's edges and mutated blind).
# The -Xswiftc option comes after SwiftPM's and names both. Only the harness product is built (not the CLI/server).
binary=$out/build/release/CustosFuzz
export CUSTOS_FUZZ_RSA_KEY=$out/rsa-key.pem
if [[ -n $build ]]; then
  cmp -s Package.resolved Fuzz/Package.resolved || cp Package.resolved Fuzz/Package.resolved
  swift build --package-path Fuzz --scratch-path "$out/build" -c release --force-resolved-versions --product CustosFuzz \
    --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address 2>&1 | grep -v "Cannot export local symbol '__asan" >&2

  rm -rf "$out/seeds"
  python3 scripts/fuzz/seeds.py "$testdata" "$out/seeds" >&2
  # The fixed RSA key of the jose-jwe harness (made once; the EC keys are fixed scalars in the harness), then the
  # seeds made with those keys.
  [[ -s $out/rsa-key.pem ]] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$out/rsa-key.pem" 2>/dev/null
  CUSTOS_FUZZ_WRITE_SEEDS=$out/seeds ASAN_OPTIONS=detect_leaks=0 "$binary" >&2
elif [[ ! -x $binary || ! -d $out/seeds || ! -s $out/rsa-key.pem ]]; then
  echo "run.sh: --no-build needs an earlier run's build, seeds and key in $out" >&2
  exit 2
fi

if [[ $# -eq 0 ]]; then
  set -- $(sed -n 's/^ *"\([a-z0-9-]*\)": [a-zA-Z0-9]*,$/\1/p' Fuzz/Sources/CustosFuzz/Harnesses.swift)
fi

# Input size cap per harness: 64 KiB (the largest evidence a parser takes: collateral documents, event logs, PE
# headers) where real inputs reach tens of KiB; elsewhere about twice the largest real input, because these bugs need
# structure, not bulk, and libFuzzer grows inputs toward the cap: with 64 KiB for everything, jose-jwk and
# x509-pem-chain ran at a tenth of their smoke rate once the corpus held 27-39 KB inputs. 4 KiB for the JSON and
# init-data grammars (whole 16-60 KB collateral documents kept json-value at ~600 exec/s; seeds.py cuts them into
# subtrees) and the PCK certificate's SGX extension (~600 bytes in a 1.2 KB certificate); 8 KiB for policy YAML (the
# shipped files are 0.6-2.5 KB), JWKs (an RSA-4096 private JWK is ~3.3 KB), JWEs, EAR tokens (kept under 8 KiB by
# design) and PEM chains (the PCK chain in a quote is ~3 KB; at 16 KiB the corpus grew to 14-16 KB inputs and the
# rate fell to ~1,000 exec/s); 16 KiB for quotes (5-8 KB with their certification data) and Authenticode signatures
# (~1-3 KB).
max_len() {
  case $1 in
    json-value|kbs-init-data|tdx-pck-extension) echo 4096 ;;
    policy-yaml|jose-jwk|jose-jwe|ear-token|x509-pem-chain) echo 8192 ;;
    tdx-quote|uki-authenticode) echo 16384 ;;
    *) echo 65536 ;;
  esac
}

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
  status=0 start=$SECONDS
  CUSTOS_FUZZ_HARNESS=$harness ASAN_OPTIONS=detect_leaks=1 "$binary" "$corpus" $seeds \
    "${limit[@]}" -rss_limit_mb=2048 -timeout=60 -max_len="$(max_len "$harness")" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  findings=$(( $(ls "$artifacts" | wc -l) - before ))
  elapsed=$((SECONDS - start))
  if [[ $status -ne 0 || $findings -ne 0 ]]; then
    failed=1
    printf '%-20s %12s %10s %8s %s\n' "$harness" "${execs:-?}" "${rate:-?}" "$elapsed" "$findings (exit $status, see $log)"
    grep -m3 -E "ERROR: |Fatal error|SUMMARY" "$log" >&2 || true
  else
    printf '%-20s %12s %10s %8s %s\n' "$harness" "${execs:-?}" "${rate:-?}" "$elapsed" 0
  fi
done
exit $failed
