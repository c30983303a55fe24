#!/bin/sh
# Creates (once) the git-ignored venv with the pymerkle 7.0.0 peer (an RFC 9162 Merkle tree from PyPI) used by the
# audit peer test. Prints the venv's python on success; exits non-zero with the reason otherwise, so the test fails
# loudly instead of passing without its peer.
# Usage: scripts/audit/setup-venv.sh [VENV_DIR]   (default: <repo>/.build-venv-audit)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-$root/.build-venv-audit}
want=7.0.0
check="import pymerkle, importlib.metadata as m, sys; sys.exit(m.version('pymerkle') != '$want')"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "$venv/bin/python"
    exit 0
fi
python3 -m venv "$venv" >&2 || { echo "setup-venv: python3 -m venv failed (Debian package python3-venv missing?)" >&2; exit 1; }
"$venv/bin/pip" install --quiet --disable-pip-version-check "pymerkle==$want" >&2 \
    || { echo "setup-venv: pip install pymerkle==$want failed (no PyPI access?)" >&2; exit 1; }
"$venv/bin/python" -c "$check" || { echo "setup-venv: pymerkle $want does not import" >&2; exit 1; }
echo "$venv/bin/python"
