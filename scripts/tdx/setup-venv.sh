#!/bin/sh
# Creates (once) the git-ignored venv with the dcap-qvl 0.7.0 peer verifier used by the TDX differential test and
# the cold-path benchmark. Prints the venv's python on success; exits non-zero with the reason otherwise, so a test
# that needs the peer fails loudly instead of passing silently.
# Usage: scripts/tdx/setup-venv.sh [VENV_DIR]   (default: <repo>/.build-venv)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-$root/.build-venv}
want=0.7.0
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import dcap_qvl, sys; sys.exit(dcap_qvl.__version__ != '$want')" 2>/dev/null; then
    echo "$venv/bin/python"
    exit 0
fi
python3 -m venv "$venv" >&2 || { echo "setup-venv: python3 -m venv failed (Debian package python3-venv missing?)" >&2; exit 1; }
"$venv/bin/pip" install --quiet --disable-pip-version-check "dcap-qvl==$want" >&2 \
    || { echo "setup-venv: pip install dcap-qvl==$want failed (no PyPI access?)" >&2; exit 1; }
"$venv/bin/python" -c "import dcap_qvl, sys; sys.exit(dcap_qvl.__version__ != '$want')" \
    || { echo "setup-venv: dcap_qvl $want does not import" >&2; exit 1; }
echo "$venv/bin/python"
