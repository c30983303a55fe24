#!/bin/sh
# Creates (once) the git-ignored venv with the independent JOSE peers (jwcrypto, PyJWT) used by the JOSE and EAR
# interop tests. Prints the venv's python on success; exits non-zero with the reason otherwise, so a test that needs
# the peer can fail loudly (CUSTOS_REQUIRE_ALL=1) instead of passing silently.
# Usage: scripts/jose/setup-venv.sh [VENV_DIR]   (default: $CUSTOS_JOSE_VENV, else <repo>/.build-venv-jose)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-${CUSTOS_JOSE_VENV:-$root/.build-venv-jose}}
check() { "$venv/bin/python" -c "import jwcrypto, jwt, cryptography" 2>/dev/null; }
mkdir -p "$(dirname "$venv")"
# One builder at a time (tests run in parallel).
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && check; then
    echo "$venv/bin/python"
    exit 0
fi
python3 -m venv "$venv" >&2 || { echo "setup-venv: python3 -m venv failed (Debian package python3-venv missing?)" >&2; exit 1; }
"$venv/bin/pip" install --quiet --disable-pip-version-check "jwcrypto>=1.5" "pyjwt[crypto]>=2.8" >&2 \
    || { echo "setup-venv: pip install jwcrypto pyjwt failed (no PyPI access?)" >&2; exit 1; }
check || { echo "setup-venv: jwcrypto/pyjwt do not import" >&2; exit 1; }
echo "$venv/bin/python"
