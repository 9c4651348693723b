#!/usr/bin/env bash
# Smoke test of the demo app, end to end:
#   1. builds `examples/demo.rs`,
#   2. starts it on a free loopback port with a two-key SESSION_KEYS ring,
#   3. runs the shared HTTP contract check (../shared/contract/demo_smoke.py)
#      if that file exists, scripts/demo-tokens.py (token sessions, with
#      examples/service.rs verifying the demo's tokens), and
#      scripts/demo-web-protections.py (CSRF tokens,
#      cross-origin refusals, the /api/header/… API),
#   4. runs scripts/browser-check.mjs in headless Chromium if Chromium and
#      node are available (playwright-core is installed into a temp folder),
#   5. stops the demo (SIGTERM; it must exit cleanly).
# Exits non-zero on any failure.
#
# Environment:
#   DEMO_SMOKE_ADDR              listen address (default 127.0.0.1:0, a free port)
#   DEMO_SMOKE_CARGO_ARGS        extra `cargo build` arguments, e.g. --all-features to
#                                reuse the artifacts of `cargo test --all-features`
#   DEMO_SMOKE_CONTRACT          the contract script (default ../shared/contract/demo_smoke.py)
#   DEMO_SMOKE_STORE             SESSION_STORE for the demo (default memory); with `cookie`
#                                (encrypted cookie sessions) the HTTP checks run through
#                                scripts/cookie-jar.py, which sends the cookie the server last
#                                set, as a browser does
#   DEMO_SMOKE_REQUIRE_BROWSER=1 fail instead of skipping when Chromium or node is missing
#   DEMO_SMOKE_SCREENSHOT        screenshot path (default $TMPDIR/sessionware-demo.png)
#   PLAYWRIGHT_DIR               where playwright-core lives or is installed
#                                (default $TMPDIR/sessionware-playwright)
#   CHROMIUM                     the Chromium binary (default: found on PATH)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
tmp="${TMPDIR:-/tmp}"

# shellcheck source=scripts/demo-lib.sh
source "$repo/scripts/demo-lib.sh" demo-smoke

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo-smoke: FAIL: %s\n' "$*" >&2; exit 1; }

# --- 1. build -----------------------------------------------------------------
step "building the demo"
# shellcheck disable=SC2086 # word splitting of the extra arguments is intended
exe="$(cargo build --example demo ${DEMO_SMOKE_CARGO_ARGS:-} --message-format=json-render-diagnostics \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)"
[[ -n "$exe" && -x "$exe" ]] || die "could not find the demo executable after the build"
echo "built $exe"

# --- 2. start -----------------------------------------------------------------
step "starting the demo"
key() { head -c 64 /dev/urandom | base64 | tr -d '\n'; }
: >"$work/demo.log"
DEMO_ADDR="${DEMO_SMOKE_ADDR:-127.0.0.1:0}" \
    SESSION_KEYS="$(key),$(key)" \
    SESSION_STORE="${DEMO_SMOKE_STORE:-memory}" \
    SESSION_ACCESS_TOKEN_TTL=2 \
    RUST_LOG="${RUST_LOG:-info}" \
    NO_COLOR=1 \
    "$exe" >"$work/demo.log" 2>&1 &
demo_pid=$!

url=""
for _ in $(seq 300); do
    url="$(sed -n 's|.*listening on \(http://[^ ]*[0-9]\)/\{0,1\}$|\1|p' "$work/demo.log" | head -n 1 || true)"
    [[ -n "$url" ]] && break
    kill -0 "$demo_pid" 2>/dev/null || die "the demo exited before listening"
    sleep 0.1
done
[[ -n "$url" ]] || die "the demo did not report its address within 30 s"
echo "demo is listening on $url (pid $demo_pid)"

if command -v curl >/dev/null; then
    ready=""
    for _ in $(seq 50); do
        if curl -fsS --max-time 2 "$url/api/counter" >/dev/null 2>&1; then
            ready=1
            break
        fi
        sleep 0.1
    done
    [[ -n "$ready" ]] || die "GET $url/api/counter did not answer"
fi

# --- 3. HTTP contract ---------------------------------------------------------
# Encrypted cookie sessions: the client must send the cookie the server last
# set (the session is in it), as a browser does.
jar=()
[[ "${DEMO_SMOKE_STORE:-memory}" == cookie ]] && jar=("$repo/scripts/cookie-jar.py")
step "HTTP contract check"
contract="${DEMO_SMOKE_CONTRACT:-$repo/../shared/contract/demo_smoke.py}"
if [[ -f "$contract" ]]; then
    command -v python3 >/dev/null || die "python3 is needed to run $contract"
    timeout 120 python3 "${jar[@]}" "$contract" "$url" || die "the HTTP contract check failed"
else
    echo "skipped: $contract not found"
fi

step "web protections and the header transport (issue 10)"
timeout 120 python3 "${jar[@]}" "$repo/scripts/demo-web-protections.py" "$url" || die "the web-protections check failed"

step "token sessions, and examples/service.rs verifying the demo's tokens"
# shellcheck disable=SC2086 # word splitting of the extra arguments is intended
service_exe="$(cargo build --example service ${DEMO_SMOKE_CARGO_ARGS:-} --message-format=json-render-diagnostics \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)"
[[ -n "$service_exe" && -x "$service_exe" ]] || die "could not find the service executable after the build"
DEMO_URL="$url" SERVICE_ADDR=127.0.0.1:0 NO_COLOR=1 "$service_exe" >"$work/service.log" 2>&1 &
service_pid=$!
service_url=""
for _ in $(seq 100); do
    service_url="$(sed -n 's|.*listening on \(http://[^ ]*[0-9]\)/\{0,1\}$|\1|p' "$work/service.log" | head -n 1 || true)"
    [[ -n "$service_url" ]] && break
    kill -0 "$service_pid" 2>/dev/null || { cat "$work/service.log" >&2; die "the service exited before listening"; }
    sleep 0.1
done
[[ -n "$service_url" ]] || die "the service did not report its address within 10 s"
status=0
timeout 120 python3 "$repo/scripts/demo-tokens.py" "$url" 2 "$service_url" || status=$?
kill -TERM "$service_pid" 2>/dev/null || true
wait "$service_pid" 2>/dev/null || true
[[ $status -eq 0 ]] || die "the token sessions check failed"

# --- 4. browser ---------------------------------------------------------------
step "headless Chromium check"
chromium="${CHROMIUM:-}"
if [[ -z "$chromium" ]]; then
    for c in chromium chromium-browser google-chrome; do
        if command -v "$c" >/dev/null; then
            chromium="$(command -v "$c")"
            break
        fi
    done
fi
if [[ -z "$chromium" ]] || ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing="$([[ -z "$chromium" ]] && echo "chromium ")$(command -v node >/dev/null || echo "node ")$(command -v npm >/dev/null || echo "npm")"
    if [[ "${DEMO_SMOKE_REQUIRE_BROWSER:-0}" == 1 ]]; then
        die "browser check required but missing: $missing"
    fi
    echo "skipped: missing $missing"
else
    pw="${PLAYWRIGHT_DIR:-$tmp/sessionware-playwright}"
    if ! node -e 'require.resolve("playwright-core", { paths: [process.argv[1]] })' "$pw" 2>/dev/null; then
        echo "installing playwright-core into $pw"
        mkdir -p "$pw"
        [[ -f "$pw/package.json" ]] || echo '{ "private": true }' >"$pw/package.json"
        timeout 300 npm install --prefix "$pw" --no-audit --no-fund --loglevel=error playwright-core@1 \
            || die "npm install playwright-core failed"
    fi
    screenshot="${DEMO_SMOKE_SCREENSHOT:-$tmp/sessionware-demo.png}"
    PLAYWRIGHT_DIR="$pw" CHROMIUM="$chromium" \
        timeout 180 node "$repo/scripts/browser-check.mjs" "$url" "$screenshot" \
        || die "the browser check failed"
fi

# --- 5. stop ------------------------------------------------------------------
step "stopping the demo"
kill -0 "$demo_pid" 2>/dev/null || die "the demo died during the checks"
status=0
stop_demo || status=$?
[[ $status -eq 0 ]] || die "the demo exited with status $status on SIGTERM"
grep -q "shutting down" "$work/demo.log" || die "the demo did not shut down gracefully"
echo "the demo stopped cleanly"

printf '\ndemo-smoke: all checks passed\n'
