#!/usr/bin/env bash
# Loopback HTTP throughput of bare axum, sessionware and tower-sessions.
#
# The server (benches/rivals/src/bin/server.rs, one tokio worker) is pinned to
# CPU 0 and wrk to CPU 1; a fresh server process serves each run, so every
# run starts with an empty store. Reads and writes send a session cookie made
# beforehand with curl (GET /new); new-session runs send no cookie. The bare
# baseline of each scenario is sent a cookie of the same length, or none.
#
#   bash benches/http.sh            # 3 rounds, 10 s per run, 64 connections
#   DURATION=5 REPEAT=5 CONNS=32 bash benches/http.sh
#
# Each round runs, per scenario, bare then sessionware then tower-sessions; a
# ratio is taken against the bare run just before it, and the table shows the
# median over the rounds of the req/s and of the ratios, which is steadier
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

cpu_ticks() { # pid -> utime + stime in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

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
declare -A CPU CPU_RATIO # server CPU µs per request, and bare's / this one's
# run ROUND LIB PATH COOKIE(yes|no); sets LAST_RPS
run() {
    local round="$1" lib="$2" path="$3" with_cookie="$4" cookie="" out rps errors p99
    start_server "$lib"
    local args=(-t1 "-c$CONNS" "-d${DURATION}s" --latency)
    if [ "$with_cookie" = yes ]; then
        if [ "$lib" = bare ]; then
            # Same length as a session cookie: parsing the header is the
            # client's cost, so the baseline carries it too.
            cookie="__Host-sid=$(printf 'A%.0s' $(seq 1 71))"
        else
            cookie="$(make_cookie)"
        fi
        [ -n "$cookie" ] || { echo "no cookie from $lib" >&2; exit 1; }
        args+=(-H "Cookie: $cookie")
    fi
    local ticks0 ticks1
    ticks0="$(cpu_ticks "$SERVER_PID")"
    out="$(taskset -c "$WRK_CPU" wrk "${args[@]}" "http://127.0.0.1:$PORT$path")"
    ticks1="$(cpu_ticks "$SERVER_PID")"
    cleanup
    # Server CPU (user + system) per request: steadier than req/s on a VM
    # whose other tenants steal time, since stolen time is not charged.
    local requests
    requests="$(awk '/requests in/ {print $1}' <<<"$out")"
    LAST_CPU="$(awk -v t="$((ticks1 - ticks0))" -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }')"
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    errors="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    if [ -n "$errors" ] && [ "$errors" != 0 ]; then
        echo "WARNING: $lib $path: $errors non-2xx responses" >&2
    fi
    LAST_RPS="$rps"
    printf 'round %s  %-15s %-7s cookie %-3s %12s req/s   server CPU %7s µs/req   p99 %8s   non-2xx %s   load %s\n' \
        "$round" "$lib" "$path" "$with_cookie" "$rps" "$LAST_CPU" "$p99" "${errors:-0}" "$(cut -d' ' -f1 /proc/loadavg)" >&2
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Per round and scenario, the bare route (sent the same cookie, or none),
# sessionware and tower-sessions run back to back, so that load drift hits
# the three alike; each ratio is taken against that bare run.
for round in $(seq 1 "$REPEAT"); do
    for spec in untouched:/plain:yes read:/read:yes write:/write:yes new:/new:no; do
        IFS=: read -r name path cookie <<<"$spec"
        run "$round" bare /plain "$cookie"
        bare="$LAST_RPS" bare_cpu="$LAST_CPU"
        RPS["bare $name"]+="$bare "
        CPU["bare $name"]+="$bare_cpu "
        for lib in sessionware tower-sessions; do
            run "$round" "$lib" "$path" "$cookie"
            RPS["$lib $name"]+="$LAST_RPS "
            CPU["$lib $name"]+="$LAST_CPU "
            RATIO["$lib $name"]+="$(awk -v a="$LAST_RPS" -v b="$bare" 'BEGIN { printf "%.4f", a / b }') "
            CPU_RATIO["$lib $name"]+="$(awk -v a="$LAST_CPU" -v b="$bare_cpu" 'BEGIN { printf "%.4f", b / a }') "
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo
echo "HTTP/1.1 over loopback: ${REPEAT} rounds x ${DURATION} s per run, ${CONNS} connections; server on CPU $SERVER_CPU (1 tokio worker), wrk on CPU $WRK_CPU"
echo
echo "| scenario | bare req/s (same cookie) | sessionware req/s | ratio to bare | tower-sessions req/s | ratio to bare |"
echo "|---|---:|---:|---:|---:|---:|"
for name in untouched read write new; do
    b="$(median <<<"${RPS[bare $name]}")"
    o="$(median <<<"${RPS[sessionware $name]}")" t="$(median <<<"${RPS[tower-sessions $name]}")"
    ro="$(median <<<"${RATIO[sessionware $name]}")" rt="$(median <<<"${RATIO[tower-sessions $name]}")"
    printf '| %s | %s | %s | %.2f | %s | %.2f |\n' "$name" "$b" "$o" "$ro" "$t" "$rt"
done
echo
echo "Server CPU per request (user + system, from /proc; stolen time is not charged). The ratio is bare's CPU per request over the library's, i.e. the throughput ratio a saturated core would give:"
echo
echo "| scenario | bare µs | sessionware µs | ratio | tower-sessions µs | ratio |"
echo "|---|---:|---:|---:|---:|---:|"
for name in untouched read write new; do
    printf '| %s | %s | %s | %.2f | %s | %.2f |\n' "$name" "$(median <<<"${CPU[bare $name]}")" \
        "$(median <<<"${CPU[sessionware $name]}")" "$(median <<<"${CPU_RATIO[sessionware $name]}")" \
        "$(median <<<"${CPU[tower-sessions $name]}")" "$(median <<<"${CPU_RATIO[tower-sessions $name]}")"
done
echo
echo "(req/s and ratios are medians over the rounds; each ratio is taken against the bare run just before it, sent the same cookie or none)"
