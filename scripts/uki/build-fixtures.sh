#!/bin/bash
# build-fixtures.sh - build the signed-UKI test fixtures with the shared recipe (../shared/recipes/uki) and record
# what the *peer tools* say about them, so the Swift tests compare against osslsigncode / pesign / sbverify /
# systemd-measure and never against Custos's own output.
#
# usage: scripts/uki/build-fixtures.sh [VARIANT...]     VARIANT = ukify-254 | ukify-252 | objcopy-252 | objcopy-254
#   default: all four. Output: $UKI_FIXTURES (default <repo>/.build-fixtures/uki)/<variant>/ — git-ignored, never
#   committed. A variant is rebuilt only when its peers.txt is missing or was made by other recipe/script versions.
# Runs as root on Debian 12 (the recipe installs its packages and enables bookworm-backports through
# ../shared/recipes/ensure-backports.sh). Prints the fixture root on success; exit != 0 if any step fails.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd)
RECIPES=${CUSTOS_RECIPES:-$(cd "$REPO/../shared/recipes" 2>/dev/null && pwd || true)}
[ -n "$RECIPES" ] && [ -x "$RECIPES/uki/make-signed-uki.sh" ] || { echo "build-fixtures: ../shared/recipes/uki not found" >&2; exit 3; }
ROOT=${UKI_FIXTURES:-$REPO/.build-fixtures/uki}
VARIANTS=("$@"); [ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(ukify-254 objcopy-252 ukify-252 objcopy-254)
mkdir -p "$ROOT"
# One builder at a time (tests in several processes may ask at once).
exec 9>"$ROOT/.lock"; flock 9
# The cache key: the recipe scripts and this script. A change to either rebuilds.
KEY=$(cat "$RECIPES/uki/make-signed-uki.sh" "$RECIPES"/uki/tools/*.py "$RECIPES/ensure-backports.sh" "$0" | sha256sum | cut -c1-16)

peers() { # peers DIR STUBVERSION -> DIR/peers.txt
  local d=$1 sv=$2 f v
  {
    echo "key $KEY"
    echo "stub $sv"
    for f in signed signed-sha384 unsigned wrongkey tampered multi-wrongfirst multi-wrongonly stub-signed stub-unsigned; do
      echo "size uki-$f.efi $(stat -c %s "$d/uki-$f.efi")"
      echo "pesign uki-$f.efi sha256 $(pesign -h -i "$d/uki-$f.efi" | awk '/^hash:/{print $2}')"
      # osslsigncode prints the signed ("Current") and recomputed ("Calculated") digests of each signature.
      { osslsigncode verify -CAfile "$d/keys/db.crt" -in "$d/uki-$f.efi" 2>&1 || true; } | awk -v f="uki-$f.efi" '
        /^Message digest algorithm/ {alg=tolower($5)}
        /^Current message digest/ {cur=tolower($5)}
        /^Calculated message digest/ {print "osslsigncode " f " " alg " current " cur " calculated " tolower($5)}'
      if osslsigncode verify -CAfile "$d/keys/db.crt" -in "$d/uki-$f.efi" >/dev/null 2>&1; then v=OK; else v=FAIL; fi
      echo "verdict uki-$f.efi osslsigncode $v"
      if sbverify --cert "$d/keys/db.crt" "$d/uki-$f.efi" >/dev/null 2>&1; then v=OK; else v=FAIL; fi
      echo "verdict uki-$f.efi sbverify $v"
    done
    # A zero-padded copy of the unsigned image: what the signing tools hash (spec: the 8-byte padding rule).
    echo "pesign-padded uki-unsigned.efi sha256 $(pesign -h -i "$d/uki-unsigned-padded.efi" | awk '/^hash:/{print $2}')"
    # systemd-measure 254 (from the backports .deb, as the recipe runs it), the section set chosen from the
    # stub *package* version the recipe used.
    sed -n 's/^11:\(sha[0-9]*\)=/pcr11 \1 /p' "$d/pcr11-systemd-measure.txt"
  } > "$d/peers.txt.new"
  mv "$d/peers.txt.new" "$d/peers.txt"
}

for v in "${VARIANTS[@]}"; do
  case $v in
    ukify-254) B=ukify S=bookworm-backports ;; ukify-252) B=ukify S=bookworm ;;
    objcopy-254) B=objcopy S=bookworm-backports ;; objcopy-252) B=objcopy S=bookworm ;;
    *) echo "build-fixtures: unknown variant $v" >&2; exit 2 ;;
  esac
  d=$ROOT/$v
  if [ -f "$d/peers.txt" ] && [ "$(head -1 "$d/peers.txt")" = "key $KEY" ]; then continue; fi
  echo "build-fixtures: building $v (BUILDER=$B STUB_SUITE=$S)" >&2
  rm -f "$d/peers.txt"
  OUT=$d BUILDER=$B STUB_SUITE=$S SIGNIFY=0 "$RECIPES/uki/make-signed-uki.sh" > "$ROOT/$v.log" 2>&1 \
    || { echo "build-fixtures: recipe failed for $v, see $ROOT/$v.log" >&2; tail -20 "$ROOT/$v.log" >&2; exit 1; }
  # Extras beyond the recipe: two WIN_CERTIFICATE entries (sbattach appends one), and the bare stub signed
  # (small enough for exhaustive truncation sweeps).
  sbsign --key "$d/keys/db.key" --cert "$d/keys/db.crt" --detached --output "$d/db.sig" "$d/uki-unsigned.efi" 2>/dev/null
  sbsign --key "$d/keys/wrong.key" --cert "$d/keys/wrong.crt" --detached --output "$d/wrong.sig" "$d/uki-unsigned.efi" 2>/dev/null
  cp "$d/uki-wrongkey.efi" "$d/uki-multi-wrongfirst.efi"; sbattach --attach "$d/db.sig" "$d/uki-multi-wrongfirst.efi" >/dev/null 2>&1
  cp "$d/uki-wrongkey.efi" "$d/uki-multi-wrongonly.efi"; sbattach --attach "$d/wrong.sig" "$d/uki-multi-wrongonly.efi" >/dev/null 2>&1
  cp "$d/x/usr/lib/systemd/boot/efi/linuxx64.efi.stub" "$d/uki-stub-unsigned.efi"
  sbsign --key "$d/keys/db.key" --cert "$d/keys/db.crt" --output "$d/uki-stub-signed.efi" "$d/uki-stub-unsigned.efi" 2>/dev/null
  cp "$d/uki-unsigned.efi" "$d/uki-unsigned-padded.efi"
  size=$(stat -c %s "$d/uki-unsigned-padded.efi")
  truncate -s $(( (size + 7) / 8 * 8 )) "$d/uki-unsigned-padded.efi"
  sv=$(dpkg-deb -f "$d"/debs/systemd-boot-efi_*.deb Version)
  peers "$d" "$sv"
done
echo "$ROOT"
