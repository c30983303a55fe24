#!/bin/bash
# boot-test.sh - boot the ukify-254 fixtures under QEMU (TCG, q35 + SMM) with OVMF Secure Boot enforcing our own
# PK/KEK/db (the vars store the recipe enrolled), two boots at a time, and report what the *firmware* decided:
#   signed   -> must boot: the initramfs marker and "secureboot: Secure boot enabled" on serial
#   unsigned, wrongkey, tampered -> must be refused: "Access Denied"
# One line per case on stdout:  BOOT <case> <booted|refused|timeout> <seconds> <evidence…>
# Each boot has a hard timeout (TIMEOUT, default 60 s; QEMU is also killed by `timeout` 15 s later), and the
# recipe's tools/qemu-boot.sh stops QEMU as soon as the verdict line appears. Exit != 0 if a case deviates.
# Runs as root on Debian 12; installs qemu-system-x86/ovmf if missing; builds the fixtures if needed.
set -euo pipefail
# A parent that ignores SIGTERM (swift test does) passes that on, and bash cannot undo it: then the recipe's
# `kill $qpid` would not stop QEMU. Re-exec once with default signal dispositions.
if [ -z "${UKI_BOOT_SIGNALS_RESET:-}" ]; then exec env --default-signal UKI_BOOT_SIGNALS_RESET=1 "$0" "$@"; fi
HERE=$(cd "$(dirname "$0")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd)
RECIPES=${CUSTOS_RECIPES:-$(cd "$REPO/../shared/recipes" 2>/dev/null && pwd || true)}
[ -n "$RECIPES" ] && [ -x "$RECIPES/uki/tools/qemu-boot.sh" ] || { echo "boot-test: ../shared/recipes/uki not found" >&2; exit 3; }
ROOT=${UKI_FIXTURES:-$REPO/.build-fixtures/uki}
TIMEOUT=${TIMEOUT:-60}
PARALLEL=${PARALLEL:-2}
"$HERE/build-fixtures.sh" ukify-254 >/dev/null
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -f /usr/share/OVMF/OVMF_CODE_4M.secboot.fd ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends qemu-system-x86 ovmf >/dev/null
fi
F=$ROOT/ukify-254
B=$F/boot-test
rm -rf "$B" && mkdir -p "$B"

run_case() { # run_case NAME
  local name=$1 r
  r=$(timeout -k 5 $((TIMEOUT + 15)) "$RECIPES/uki/tools/qemu-boot.sh" esp "$F/esp-$name.img" "$F/vars-ours.fd" \
      "$B/$name.log" "$TIMEOUT" 2>/dev/null || true)
  [ -n "$r" ] || r="RESULT timeout $TIMEOUT"
  echo "$r" > "$B/$name.result"
}

pids=()
for name in signed unsigned wrongkey tampered; do
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n || true; done
  run_case "$name" &
  pids+=($!)
done
wait

fail=0
for name in signed unsigned wrongkey tampered; do
  read -r _ result secs < "$B/$name.result" || { result=missing; secs=0; }
  ev=$(sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' "$B/$name.log" | tr -d '\r' \
       | grep -aoE "UKI-MARKER: initrd reached|secureboot: Secure boot (enabled|disabled)|Access Denied|Security Violation" \
       | sort -u | paste -sd, - || true)
  echo "BOOT $name $result $secs ${ev:-none}"
  case $name in
    signed) [ "$result" = booted ] && [[ $ev == *"Secure boot enabled"* ]] && [[ $ev == *"initrd reached"* ]] || fail=1 ;;
    *) [ "$result" = refused ] && [[ $ev == *"Access Denied"* ]] || fail=1 ;;
  esac
done
exit $fail
