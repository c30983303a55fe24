#!/bin/sh
# Fuzzes the HTTP API of `custos serve` from openapi.yaml with schemathesis (PyPI), as `make test` does (issue 11 §4):
# starts the service on a free loopback port with a fresh data directory, authenticates with the bootstrap
# service-admin token, and fails on any finding: a 5xx, a status, content type, header or body the document does
# not describe. The server is stopped with SIGTERM (graceful shutdown) whatever happens.
#
# Usage: scripts/api-fuzz.sh [CUSTOS_BINARY]            (default: <repo>/.build/debug/custos)
# Environment:
#   CUSTOS_API_FUZZ_SEED      schemathesis seed (default: random; printed, so a failing run can be repeated)
#   CUSTOS_API_FUZZ_EXAMPLES  examples per operation (default 100; about 40 s on 2 cores)
#   CUSTOS_SCHEMATHESIS_VENV  the venv (default <repo>/.build-venv-schemathesis, created once, git-ignored)
# The trust anchors must be installed (`custos certs install`, which `make api-fuzz` runs): /readyz must be 200.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-$root/.build/debug/custos}
venv=${CUSTOS_SCHEMATHESIS_VENV:-$root/.build-venv-schemathesis}
examples=${CUSTOS_API_FUZZ_EXAMPLES:-100}
seed=${CUSTOS_API_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
# Pinned: the checks' behaviour and the CLI flags below are those of this release.
schemathesis_version=4.32.5

[ -x "$binary" ] || { echo "api-fuzz: $binary is not built (swift build)" >&2; exit 2; }

# The interpreter: the oldest CPython >= 3.12 on the machine (PATH or pyenv), else python3. CPython 3.11's ast module
# has a recursion-depth bug (gh-106905: "SystemError: AST constructor recursion depth mismatch") that Hypothesis hits
# while describing schemathesis' strategies for POST /v1/policies/{id}:test in the coverage phase, with every seed
# tried; 3.12 has the fix. Debian 12's own python3 is 3.11.
pick_python() {
    local candidate
    for candidate in python3.12 python3.13 python3.14 \
        $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do
        if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            command -v "$candidate" 2>/dev/null || echo "$candidate"
            return
        fi
    done
    echo "api-fuzz: no CPython >= 3.12 found; python3 ($(python3 --version 2>&1)) may fail on CPython's gh-106905" >&2
    command -v python3
}
python=$(pick_python)

# The venv, once per interpreter (one builder at a time).
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "version $schemathesis_version\$" \
    || [ "$(cat "$venv/.custos-python" 2>/dev/null)" != "$python" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2 || { echo "api-fuzz: $python -m venv failed (Debian package python3-venv missing?)" >&2; exit 1; }
    echo "$python" >"$venv/.custos-python"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version" >&2 \
        || { echo "api-fuzz: pip install schemathesis failed (no PyPI access?)" >&2; exit 1; }
fi
flock -u 9

work=$(mktemp -d "${TMPDIR:-/tmp}/custos-api-fuzz.XXXXXX")
pid=""
stop() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        # Graceful shutdown signs a final checkpoint; give it 20 s, then stop it hard.
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
        if kill -0 "$pid" 2>/dev/null; then
            echo "api-fuzz: the server did not stop on SIGTERM within 20 s" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
mkdir -p "$work/collateral"
# An empty offline collateral directory: nothing is fetched, and quotes get 503 "cannot decide" (documented).
"$binary" serve --listen "127.0.0.1:$port" --data "$work/var" --policies "$root/Policies" --certs "$root/Certs" \
    --collateral "$work/collateral" >"$work/serve.log" 2>&1 &
pid=$!

# GET URL → prints the status code (0 when nothing answers), the body goes to $work/body; no curl needed.
get() {
    "$venv/bin/python" -c '
import sys, urllib.request, urllib.error
def done(status, body):
    open(sys.argv[2], "wb").write(body); print(status)
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r: done(r.status, r.read())
except urllib.error.HTTPError as e: done(e.code, e.read())
except OSError: done(0, b"")' "$1" "$work/body"
}

i=0
until [ "$(get "$url/healthz")" = 200 ]; do
    i=$((i + 1))
    if [ $i -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "api-fuzz: custos serve did not come up on $url; its log:" >&2
        cat "$work/serve.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [ "$(get "$url/readyz")" != 200 ]; then
    echo "api-fuzz: /readyz is not ready: $(cat "$work/body") (custos certs install?)" >&2
    exit 1
fi
token=$(cat "$work/var/bootstrap-admin.token")

echo "api-fuzz: schemathesis $schemathesis_version against $url, seed $seed (CUSTOS_API_FUZZ_SEED=$seed to repeat)"
status=0
# The SEV launch and audit operations are documented from issue 11 §4 while another branch registers them; they
# are fuzzed once that branch is merged (remove the exclusion then, as OpenAPIRouteSetTests.pendingRegistration).
# From the scratch directory: schemathesis keeps state (.schemathesis/) in its working directory.
cd "$work"
"$venv/bin/schemathesis" run "$root/openapi.yaml" --url "$url" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing --max-examples "$examples" --workers 2 --seed "$seed" \
    --request-timeout 10 \
    --generation-database none --no-color || status=$?
if [ $status -ne 0 ]; then
    echo "api-fuzz: schemathesis reported findings (exit $status); server log tail:" >&2
    tail -n 40 "$work/serve.log" >&2
fi
exit $status
