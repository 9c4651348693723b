#!/usr/bin/env bash
# Loopback HTTP throughput of bare axum, sessionware and tower-sessions.
#
# The server (benches/rivals/src/bin/server.rs, one tokio worker) is pinned to
# CPU 0 and wrk to CPU 1; a fresh server process serves each run, so every
# run starts with an empty store. Reads and writes send a session cookie made
# beforehand with curl (GET /new); new-session runs send no cookie.
#
#   bash benches/http.sh            # 3 rounds, 10 s per run, 64 connections
#   DURATION=5 REPEAT=5 CONNS=32 bash benches/http.sh
#
# Each round runs every configuration once (bare first); a configuration's
# ratio is taken against the bare run of the same round, and the table shows
# the median over the rounds of the req/s and of the ratios, which is steadier
# than one run on a machine whose load drifts.
#
# Environment: DURATION (s, default 10), REPEAT (rounds, default 3), CONNS
# (default 64), PORT (default 18080), SERVER_CPU (default 0), WRK_CPU
# (default 1), CARGO_TARGET_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-10}"
REPEAT="${REPEAT:-3}"
CONNS="${CONNS:-64}"
PORT="${PORT:-18080}"
SERVER_CPU="${SERVER_CPU:-0}"
WRK_CPU="${WRK_CPU:-1}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2
fi
for tool in curl taskset; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

(cd "$ROOT" && cargo build --release -q -p sessionware-rivals --bin server)
SERVER="$TARGET/release/server"

SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap cleanup EXIT

start_server() { # lib
    taskset -c "$SERVER_CPU" "$SERVER" "$1" "$PORT" >/dev/null &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/plain" && return 0
        sleep 0.05
    done
    echo "server $1 did not start" >&2
    exit 1
}

# The `name=value` of the session cookie that GET /new sets.
make_cookie() {
    curl -s -D - -o /dev/null "http://127.0.0.1:$PORT/new" |
        tr -d '\r' | grep -i '^set-cookie:' | head -1 | sed -e 's/^[Ss]et-[Cc]ookie: *//' -e 's/;.*//'
}

declare -A RPS   # "lib path" -> req/s of every round, space separated
declare -A RATIO # "lib path" -> ratio to the round's bare run, space separated
declare -A P99
# run ROUND LIB PATH COOKIE(yes|no); sets LAST_RPS
run() {
    local round="$1" lib="$2" path="$3" with_cookie="$4" cookie="" out rps errors p99
    start_server "$lib"
    local args=(-t1 "-c$CONNS" "-d${DURATION}s" --latency)
    if [ "$with_cookie" = yes ]; then
        cookie="$(make_cookie)"
        [ -n "$cookie" ] || { echo "no cookie from $lib" >&2; exit 1; }
        args+=(-H "Cookie: $cookie")
    fi
    out="$(taskset -c "$WRK_CPU" wrk "${args[@]}" "http://127.0.0.1:$PORT$path")"
    cleanup
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    errors="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    if [ -n "$errors" ] && [ "$errors" != 0 ]; then
        echo "WARNING: $lib $path: $errors non-2xx responses" >&2
    fi
    LAST_RPS="$rps"
    RPS["$lib $path"]+="$rps "
    P99["$lib $path"]+="$p99 "
    printf 'round %s  %-15s %-7s %12s req/s   p99 %8s   non-2xx %s   load %s\n' \
        "$round" "$lib" "$path" "$rps" "$p99" "${errors:-0}" "$(cut -d' ' -f1 /proc/loadavg)" >&2
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq 1 "$REPEAT"); do
    run "$round" bare /plain no
    bare="$LAST_RPS"
    for lib in sessionware tower-sessions; do
        for spec in /plain:yes /read:yes /write:yes /new:no; do
            path="${spec%%:*}"
            run "$round" "$lib" "$path" "${spec#*:}"
            RATIO["$lib $path"]+="$(awk -v a="$LAST_RPS" -v b="$bare" 'BEGIN { printf "%.4f", a / b }') "
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
echo "HTTP/1.1 over loopback: ${REPEAT} rounds x ${DURATION} s per run, ${CONNS} connections; server on CPU $SERVER_CPU (1 tokio worker), wrk on CPU $WRK_CPU"
echo
echo "bare /plain: median $(median <<<"${RPS[bare /plain]}") req/s (rounds: ${RPS[bare /plain]% })"
echo
echo "| scenario | sessionware req/s | ratio to bare | tower-sessions req/s | ratio to bare |"
echo "|---|---:|---:|---:|---:|"
for pair in "untouched:/plain" "read:/read" "write:/write" "new:/new"; do
    name="${pair%%:*}" path="${pair#*:}"
    o="$(median <<<"${RPS[sessionware $path]}")" t="$(median <<<"${RPS[tower-sessions $path]}")"
    ro="$(median <<<"${RATIO[sessionware $path]}")" rt="$(median <<<"${RATIO[tower-sessions $path]}")"
    printf '| %s | %s | %.2f | %s | %.2f |\n' "$name" "$o" "$ro" "$t" "$rt"
done
echo
echo "(req/s and ratios are medians over the rounds; each ratio is taken against the bare run of its own round)"
