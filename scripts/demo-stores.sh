#!/usr/bin/env bash
# The demo on every external store. For each SESSION_STORE value:
#   1. starts the demo on a free loopback port with a two-key SESSION_KEYS ring,
#   2. runs the shared HTTP contract check (../shared/contract/demo_smoke.py),
#      or says that it is skipped when that file is missing,
#   3. checks that a session outlives the process: it counts twice, restarts
#      the demo with the same keys and store, reads the count back, logs out,
#   4. drives the session list routes: GET /api/sessions, DELETE
#      /api/sessions/{handle} (never another user's), POST /api/logout-others,
#   5. drives POST /api/credentials-changed: the caller stays signed in under
#      a new ID, the user's other sessions end, another user's do not, the
#      caller's old ID gets no removal cookie (also on the memory store),
#   6. stops the demo (SIGTERM; it must exit cleanly),
#   7. restarts it with SESSION_RENEW_AFTER=1 and checks periodic renewal over
#      HTTP: a new cookie once the ID is a second old, the old ID working
#      within SESSION_RENEW_OVERLAP only until the new one is used, and no
#      overlap at all with SESSION_RENEW_OVERLAP=0 (this step also runs on
#      the embedded memory store).
# The stores, by default:
#   redis://127.0.0.1:6379                      (REDIS_URL overrides it)
#   postgres://postgres@127.0.0.1:5432/test     (DATABASE_URL overrides it)
#   sqlite://<a file in a temporary folder>
#   mysql://root@127.0.0.1:3306/test            (MYSQL_URL overrides it; MariaDB here)
# A store whose server does not answer is skipped with a message, or fails the
# script when SESSIONWARE_REQUIRE_STORES=1. Exits non-zero on any failure.
#
# Environment:
#   DEMO_STORES_CARGO_ARGS  `cargo build` arguments (default --features redis,postgres,sqlite,mysql,
#                           the same feature set as --all-features, so `cargo test --all-features`
#                           artifacts are reused)
#   DEMO_STORES             space-separated SESSION_STORE values instead of the four above
#   DEMO_SMOKE_CONTRACT     the contract script (default ../shared/contract/demo_smoke.py)
#   SESSIONWARE_REQUIRE_STORES=1  fail instead of skipping a store that is not running
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
tmp="${TMPDIR:-/tmp}"

# shellcheck source=scripts/demo-lib.sh
source "$repo/scripts/demo-lib.sh" demo-stores
url=""

step() { printf '\n==> %s\n' "$*"; }
die() {
    printf 'demo-stores: FAIL: %s\n' "$*" >&2
    exit 1
}
command -v curl >/dev/null || die "curl is needed"

# --- build --------------------------------------------------------------------
step "building the demo"
# shellcheck disable=SC2086 # word splitting of the extra arguments is intended
exe="$(cargo build --example demo ${DEMO_STORES_CARGO_ARGS:---features redis,postgres,sqlite,mysql} \
    --message-format=json-render-diagnostics | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)"
[[ -n "$exe" && -x "$exe" ]] || die "could not find the demo executable after the build"
echo "built $exe"

key() { head -c 64 /dev/urandom | base64 | tr -d '\n'; }
keys="$(key),$(key)"

# start_demo <SESSION_STORE> [VAR=value ...]: starts the demo (with the extra
# settings) and sets $url. Returns 3 when the demo stopped because it could
# not reach the store (the log says why).
start_demo() {
    local store="$1"
    shift
    : >"$work/demo.log"
    env DEMO_ADDR=127.0.0.1:0 \
        SESSION_KEYS="$keys" \
        SESSION_STORE="$store" \
        RUST_LOG="${RUST_LOG:-info}" \
        NO_COLOR=1 \
        "$@" \
        "$exe" >"$work/demo.log" 2>&1 &
    demo_pid=$!
    url=""
    for _ in $(seq 300); do
        url="$(sed -n 's|.*listening on \(http://[^ ]*[0-9]\)/\{0,1\}$|\1|p' "$work/demo.log" | head -n 1 || true)"
        [[ -n "$url" ]] && break
        if ! kill -0 "$demo_pid" 2>/dev/null; then
            local status=0
            wait "$demo_pid" 2>/dev/null || status=$?
            demo_pid=""
            if grep -q "error: SESSION_STORE" "$work/demo.log"; then
                return 3
            fi
            die "the demo exited (status $status) before listening"
        fi
        sleep 0.1
    done
    [[ -n "$url" ]] || die "the demo did not report its address within 30 s"
    local ready=""
    for _ in $(seq 50); do
        if curl -fsS --max-time 2 "$url/api/counter" >/dev/null 2>&1; then
            ready=1
            break
        fi
        sleep 0.1
    done
    [[ -n "$ready" ]] || die "GET $url/api/counter did not answer"
    echo "demo is listening on $url (pid $demo_pid)"
}

stop_cleanly() {
    kill -0 "$demo_pid" 2>/dev/null || die "the demo died during the checks"
    local status=0
    stop_demo || status=$?
    [[ $status -eq 0 ]] || die "the demo exited with status $status on SIGTERM"
    grep -q "shutting down" "$work/demo.log" || die "the demo did not shut down gracefully"
}

# http <method> <path> [cookie] [JSON body]: prints the status code, a space
# and the body; the `Set-Cookie` pair (name=value) goes to $work/set-cookie.
http() {
    local args=(-sS --max-time 10 -X "$1" -D "$work/headers" -o "$work/body")
    [[ -n "${3:-}" ]] && args+=(-H "Cookie: $3")
    [[ -n "${4:-}" ]] && args+=(-H "Content-Type: application/json" --data "$4")
    local code
    code="$(curl "${args[@]}" -w '%{http_code}' "$url$2")" || die "$1 $2: no answer"
    sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' "$work/headers" | tr -d '\r' | head -n 1 >"$work/set-cookie"
    printf '%s %s' "$code" "$(tr -d '\n' <"$work/body")"
}

expect() {
    # expect <what> <got> <want>
    if [[ "$2" == "$3" ]]; then
        echo "ok   $1"
    else
        die "$1: got '$2', want '$3'"
    fi
}

# login <user>: logs in on a new "device" and prints its cookie.
login() {
    local got
    got="$(http POST /api/login "" "{\"username\":\"$1\",\"password\":\"$1-pass\"}")"
    [[ "$got" == "200 {\"user\":\"$1\"}" ]] || die "login as $1: got '$got'"
    cat "$work/set-cookie"
}

# handle <current|other> <cookie>: a handle from the cookie's session list.
handle() {
    http GET /api/sessions "$2" >/dev/null
    python3 - "$1" "$work/body" <<'PY'
import json, sys
want_current = sys.argv[1] == "current"
listed = json.load(open(sys.argv[2]))["sessions"]
print(next(s["handle"] for s in listed if s["current"] == want_current))
PY
}

# count <cookie>: how many sessions the cookie's user has.
count() {
    http GET /api/sessions "$1" >/dev/null
    python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["sessions"]))' "$work/body"
}

command -v python3 >/dev/null || die "python3 is needed"
contract="${DEMO_SMOKE_CONTRACT:-$repo/../shared/contract/demo_smoke.py}"
if [[ ! -f "$contract" ]]; then
    echo "note: $contract not found; the HTTP contract check is skipped for every store"
fi

# reset_store <SESSION_STORE>: removes what an earlier run of the demo left
# in the store (the checks count alice's sessions; a run that failed half way
# leaves some live): the demo's keys in that Redis database (default prefix),
# or its three tables (the demo migrates them again at start). A store
# without its client program on PATH is left as it is.
reset_store() {
    local store="$1"
    case "$store" in
    redis://* | rediss://*)
        if command -v redis-cli >/dev/null; then
            redis-cli -u "$store" --scan --pattern 'sessionware:*' | xargs -r redis-cli -u "$store" DEL >/dev/null || true
        fi
        ;;
    postgres://* | postgresql://*)
        if command -v psql >/dev/null; then
            psql "$store" -qc 'DROP TABLE IF EXISTS sessionware_sessions, sessionware_sessions_locks,
                sessionware_sessions_cutoffs' >/dev/null 2>&1 || true
        fi
        ;;
    mysql://* | mariadb://*)
        if command -v mysql >/dev/null; then
            # scheme://user[:password]@host[:port]/database
            local rest="${store#*://}" user host port db password=""
            user="${rest%%@*}"
            rest="${rest#*@}"
            if [[ "$user" == *:* ]]; then
                password="${user#*:}"
                user="${user%%:*}"
            fi
            db="${rest#*/}"
            db="${db%%\?*}"
            host="${rest%%/*}"
            port=3306
            if [[ "$host" == *:* ]]; then
                port="${host##*:}"
                host="${host%:*}"
            fi
            MYSQL_PWD="$password" mysql -h "$host" -P "$port" -u "$user" "$db" -e \
                'DROP TABLE IF EXISTS sessionware_sessions, sessionware_sessions_locks, sessionware_sessions_cutoffs' \
                >/dev/null 2>&1 || true
        fi
        ;;
    esac
}

# check_store <label> <SESSION_STORE>
check_store() {
    local label="$1" store="$2" rc=0
    reset_store "$store"
    step "$label: starting the demo"
    start_demo "$store" || rc=$?
    if [[ $rc -eq 3 ]]; then
        local why
        why="$(grep -m 1 "error: SESSION_STORE" "$work/demo.log")"
        if [[ "${SESSIONWARE_REQUIRE_STORES:-0}" == 1 ]]; then
            die "$label: $why"
        fi
        echo "SKIPPED: $label ($why)"
        skipped+=("$label")
        return 0
    fi

    step "$label: HTTP contract check"
    if [[ -f "$contract" ]]; then
        timeout 120 python3 "$contract" "$url" || die "$label: the HTTP contract check failed"
    else
        echo "skipped: $contract not found"
    fi

    step "$label: a session outlives the process"
    local got cookie
    got="$(http POST /api/counter)"
    cookie="$(cat "$work/set-cookie")"
    expect "POST /api/counter creates a session" "$got" '200 {"count":1}'
    [[ -n "$cookie" ]] || die "$label: no session cookie"
    expect "the cookie carries it" "$(http POST /api/counter "$cookie")" '200 {"count":2}'
    stop_cleanly
    start_demo "$store" || die "$label: the demo did not start again"
    expect "after a restart, the count is still there" "$(http GET /api/counter "$cookie")" '200 {"count":2}'
    expect "logout" "$(http POST /api/logout "$cookie" | cut -c1-3)" "204"
    expect "after logout the cookie names no session" "$(http GET /api/counter "$cookie")" '200 {"count":0}'

    step "$label: the session list routes"
    local a b c bob other own
    a="$(login alice)"
    b="$(login alice)"
    expect "GET /api/sessions lists both of alice's sessions" "$(count "$a")" 2
    other="$(handle other "$a")"
    own="$(handle current "$a")"
    bob="$(login bob)"
    expect "bob cannot end alice's session" "$(http DELETE "/api/sessions/$own" "$bob" | cut -c1-3)" 404
    expect "DELETE /api/sessions/{handle} ends alice's other session" \
        "$(http DELETE "/api/sessions/$other" "$a" | cut -c1-3)" 204
    expect "the ended session is logged out" "$(http GET /api/me "$b" | cut -c1-3)" 401
    expect "it is listed no more" "$(count "$a")" 1
    c="$(login alice)"
    expect "POST /api/logout-others ends the others" "$(http POST /api/logout-others "$a")" '200 {"revoked":1}'
    expect "the other device is logged out" "$(http GET /api/me "$c" | cut -c1-3)" 401
    expect "this device is not" "$(http GET /api/me "$a")" '200 {"user":"alice"}'
    expect "bob is not" "$(http GET /api/me "$bob")" '200 {"user":"bob"}'
    for cookie in "$a" "$bob"; do
        expect "logout" "$(http POST /api/logout "$cookie" | cut -c1-3)" 204
    done

    check_credentials "$label"

    step "$label: stopping the demo"
    stop_cleanly
    echo "the demo stopped cleanly"
    check_renewal "$label" "$store"
    passed+=("$label")
}

# check_credentials <label>: POST /api/credentials-changed on the running demo.
check_credentials() {
    local label="$1" mine other bob renewed
    step "$label: a password change ends the user's other sessions"
    expect "not logged in: 401" "$(http POST /api/credentials-changed | cut -c1-3)" 401
    mine="$(login alice)"
    other="$(login alice)"
    bob="$(login bob)"
    # Sign-ins and the cutoff are compared in milliseconds.
    sleep 0.01
    expect "POST /api/credentials-changed" "$(http POST /api/credentials-changed "$mine")" "204 "
    renewed="$(cat "$work/set-cookie")"
    [[ -n "$renewed" && "$renewed" != "$mine" ]] || die "$label: no renewed cookie after credentials-changed"
    expect "the caller stays signed in under the new ID" "$(http GET /api/me "$renewed")" '200 {"user":"alice"}'
    expect "alice's other session is signed out" "$(http GET /api/me "$other" | cut -c1-3)" 401
    expect "the caller's old ID is no session, and gets no removal cookie" \
        "$(http GET /api/me "$mine" | cut -c1-3)$(cat "$work/set-cookie")" 401
    expect "bob is not signed out" "$(http GET /api/me "$bob")" '200 {"user":"bob"}'
    expect "the list shows the caller's session only" "$(count "$renewed")" 1
    for cookie in "$renewed" "$bob"; do
        expect "logout" "$(http POST /api/logout "$cookie" | cut -c1-3)" 204
    done
}

# check_renewal <label> <SESSION_STORE>: periodic renewal through the HTTP API.
check_renewal() {
    local label="$1" store="$2" old new
    step "$label: periodic renewal (SESSION_RENEW_AFTER=1, SESSION_RENEW_OVERLAP=30)"
    start_demo "$store" SESSION_RENEW_AFTER=1 SESSION_RENEW_OVERLAP=30 || die "$label: the demo did not start"
    http POST /api/counter >/dev/null
    old="$(cat "$work/set-cookie")"
    [[ -n "$old" ]] || die "$label: no session cookie"
    expect "a fresh ID is not renewed" "$(http POST /api/counter "$old")$(cat "$work/set-cookie")" '200 {"count":2}'
    sleep 1.2
    expect "once the ID is a second old, the next request renews it" "$(http POST /api/counter "$old")" '200 {"count":3}'
    new="$(cat "$work/set-cookie")"
    [[ -n "$new" && "$new" != "$old" ]] || die "$label: no new cookie after renew_after"
    expect "within the overlap the old ID still works, and sets no cookie" \
        "$(http GET /api/counter "$old")$(cat "$work/set-cookie")" '200 {"count":3}'
    expect "the new ID carries the session" "$(http GET /api/counter "$new")" '200 {"count":3}'
    expect "once the new ID was used, the old one is no session (and gets no removal cookie)" \
        "$(http GET /api/counter "$old")$(cat "$work/set-cookie")" '200 {"count":0}'
    expect "logout" "$(http POST /api/logout "$new" | cut -c1-3)" "204"
    stop_cleanly

    step "$label: periodic renewal without overlap (SESSION_RENEW_OVERLAP=0)"
    start_demo "$store" SESSION_RENEW_AFTER=1 SESSION_RENEW_OVERLAP=0 || die "$label: the demo did not start"
    http POST /api/counter >/dev/null
    old="$(cat "$work/set-cookie")"
    sleep 1.2
    expect "renewed" "$(http POST /api/counter "$old")" '200 {"count":2}'
    new="$(cat "$work/set-cookie")"
    [[ -n "$new" && "$new" != "$old" ]] || die "$label: no new cookie after renew_after"
    expect "the old ID is no session at once" "$(http GET /api/counter "$old")$(cat "$work/set-cookie")" '200 {"count":0}'
    expect "the new one is" "$(http GET /api/counter "$new")" '200 {"count":2}'
    expect "logout" "$(http POST /api/logout "$new" | cut -c1-3)" "204"
    stop_cleanly
}

if [[ -n "${DEMO_STORES:-}" ]]; then
    read -r -a stores <<<"$DEMO_STORES"
else
    stores=(
        "${REDIS_URL:-redis://127.0.0.1:6379}"
        "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
        "sqlite://$work/sessions.db"
        "${MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
    )
fi

passed=()
skipped=()
check_renewal memory memory
step "memory: starting the demo"
start_demo memory || die "memory: the demo did not start"
check_credentials memory
stop_cleanly
passed+=("memory (renewal, credentials)")
for store in "${stores[@]}"; do
    label="${store%%://*}"
    check_store "$label" "$store"
done

printf '\ndemo-stores: passed: %s' "${passed[*]:-none}"
((${#skipped[@]} == 0)) || printf '; skipped: %s' "${skipped[*]}"
printf '\n'
