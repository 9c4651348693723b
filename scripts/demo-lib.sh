# Shared by scripts/demo-smoke.sh and scripts/demo-stores.sh (sourced, not run):
# a work directory, stopping the demo by the PID we started it with, and a
# cleanup trap that prints the demo's log when the script fails.
# Expects $tmp and a tag in $1.

work="$(mktemp -d "$tmp/$1.XXXXXX")"
demo_pid=""

stop_demo() {
    # Stops the demo we started (by its PID) and returns its exit status.
    local pid="$demo_pid" status=0
    [[ -n "$pid" ]] || return 0
    demo_pid=""
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "demo did not stop within 10 s of SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || status=$?
    return "$status"
}

cleanup() {
    local rc=$?
    stop_demo || true
    if [[ $rc -ne 0 && -s "$work/demo.log" ]]; then
        echo "--- demo log ---" >&2
        cat "$work/demo.log" >&2
        echo "--- end of demo log ---" >&2
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

