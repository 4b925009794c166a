# Shared by the benchmark scripts (sourced, not run): the scratch directory,
# starting and stopping servers, and ratios. The caller sets WORK to a
# scratch directory before sourcing; it is removed on exit with every
# server started here.

PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# start_server NAME PORT CMD... : starts a server in the background and
# waits (up to two minutes, for a big dump to load) until PING answers PONG,
# not LOADING; sets SERVER_PID and STARTUP_SECS (from the spawn to the
# first PONG). The server's output goes to $WORK/NAME.log.
start_server() {
    local name=$1 port=$2 began i
    shift 2
    began=$(now)
    "$@" >>"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for i in $(seq 12000); do
        if [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]]; then
            STARTUP_SECS=$(since "$began")
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            break
        fi
        sleep 0.01
    done
    echo "$(basename "$0"): $name did not start on port $port; its log:" >&2
    cat "$WORK/$name.log" >&2
    exit 1
}

stop_server() {
    local pid=$1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# ratio A B: A/B with two decimals, or n/a.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'
}
