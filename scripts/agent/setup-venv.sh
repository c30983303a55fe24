#!/bin/sh
# Creates (once) the git-ignored venv with jwcrypto for the independent Python KBS (scripts/agent/kbs_peer.py) the
# guest agent's interop test runs against. Prints the venv's python on success; exits non-zero with the reason
# otherwise, so the test fails loudly (CUSTOS_REQUIRE_ALL=1) instead of passing without its peer.
# Usage: scripts/agent/setup-venv.sh [VENV_DIR]   (default: $CUSTOS_AGENT_VENV, else <repo>/.build-venv-agent)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-${CUSTOS_AGENT_VENV:-$root/.build-venv-agent}}
check() { "$venv/bin/python" -c "import jwcrypto" 2>/dev/null; }
mkdir -p "$(dirname "$venv")"
# One builder at a time (tests run in parallel).
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && check; then
    echo "$venv/bin/python"
    exit 0
fi
python3 -m venv "$venv" >&2 || { echo "setup-venv: python3 -m venv failed (Debian package python3-venv missing?)" >&2; exit 1; }
"$venv/bin/pip" install --quiet --disable-pip-version-check "jwcrypto>=1.5" >&2 \
    || { echo "setup-venv: pip install jwcrypto failed (no PyPI access?)" >&2; exit 1; }
check || { echo "setup-venv: jwcrypto does not import" >&2; exit 1; }
echo "$venv/bin/python"
