#!/usr/bin/env bash
# Creates (once) the git-ignored venv with selenium from PyPI that scripts/console/browser_test.py runs in, and prints
# its python. The browser itself is Debian's `chromium` with `chromium-driver` (Makefile TEST_PACKAGES).
#   CUSTOS_CONSOLE_VENV  the venv (default <repo>/.build-venv-console)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${CUSTOS_CONSOLE_VENV:-$root/.build-venv-console}
selenium_version=4.45.0

mkdir -p "$(dirname "$venv")"
# One builder at a time (tests may run in parallel).
exec 9>"$venv.lock"
flock 9
if ! "$venv/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$selenium_version')" 2>/dev/null; then
    python3 -m venv "$venv" >&2 || { echo "setup-venv: python3 -m venv failed (Debian package python3-venv missing?)" >&2; exit 1; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "selenium==$selenium_version" >&2
fi
echo "$venv/bin/python"
