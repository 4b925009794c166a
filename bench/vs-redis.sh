#!/usr/bin/env bash
# Throughput, CPU cost and memory of ferrokv next to redis-server.
#
# Builds ferrokv in release mode, starts it and redis-server (no
# persistence) on free loopback ports, and runs redis-benchmark against
# each, one after the other, for every test and pipeline depth. ferrokv is
# measured twice: with --server-threads 1 (the shape comparable to Redis's
# single thread) and with its default thread count. Per run it prints
# requests/s, the ferrokv/redis ratio and each server's CPU time per
# request (utime+stime of the server process, all threads, from
# /proc/<pid>/stat). The multi test is driven by bench/txn (txn_bench, built
# alongside ferrokv) instead, as redis-benchmark cannot send a queued
# transaction as one unit; there a request is one whole transaction. Then
# it loads the same N distinct keys into fresh servers and compares DBSIZE,
# INFO used_memory and RSS.
#
# Usage: bench/vs-redis.sh [options]
#   -n N          requests per run without pipelining   (BENCH_N, default 200000)
#   -N N          requests per pipelined run             (BENCH_N_PIPELINED, default 1000000)
#   -r N          keyspace for __rand_int__ keys         (BENCH_KEYSPACE, default 100000)
#   -t LIST       tests, comma separated                 (BENCH_TESTS, default set,get,incr,mset)
#                 redis-benchmark built-ins (lpush, sadd, zadd ...) and zrange,
#                 evalsha, publish1, publish100 (PUBLISH with 1 or 100 subscribers),
#                 multi (MULTI, 5 x INCR counter:__rand_int__ on one key, EXEC; rps and
#                 us/req count transactions, -P pipelines whole transactions)
#   -P LIST       pipeline depths, comma separated       (BENCH_PIPELINES, default 1,16)
#   -c N          parallel clients                       (BENCH_CLIENTS, default 50)
#   -m N          keys loaded for the memory section, 0 skips it (BENCH_MEM_KEYS, default 1000000)
#   -s LIST       ferrokv shapes: 1 and/or default       (BENCH_SHAPES, default 1,default)
#   -R N          rounds per figure: each round runs redis then ferrokv, and
#                 the table shows each server's median   (BENCH_ROUNDS, default 1)
#   -q            quick smoke run, tiny counts           (BENCH_QUICK=1)
#   -B            skip `cargo build --release`           (BENCH_NO_BUILD=1)
#   -p PORT       look for free ports from PORT upwards  (BENCH_PORT_BASE; default: kernel-chosen)
#   -C            pin each server to the last CPU and the benchmark client to
#                 CPU 0 with taskset, so that they stop trading cores; meant for
#                 -s 1 on small machines (with more loops than the server's
#                 CPUs they share one)                    (BENCH_PIN=1)
#
# The default run takes about 3-5 minutes on 2 cores. Numbers are only
# meaningful on an otherwise idle machine.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

N=${BENCH_N:-}
NP=${BENCH_N_PIPELINED:-}
KEYSPACE=${BENCH_KEYSPACE:-100000}
TESTS=${BENCH_TESTS:-set,get,incr,mset}
PIPELINES=${BENCH_PIPELINES:-1,16}
CLIENTS=${BENCH_CLIENTS:-50}
MEM_KEYS=${BENCH_MEM_KEYS:-}
SHAPES=${BENCH_SHAPES:-1,default}
ROUNDS=${BENCH_ROUNDS:-1}
QUICK=${BENCH_QUICK:-0}
NO_BUILD=${BENCH_NO_BUILD:-0}
PORT_BASE=${BENCH_PORT_BASE:-}
PIN=${BENCH_PIN:-0}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

while getopts "n:N:r:t:P:c:m:s:R:qBp:Ch" opt; do
    case $opt in
        n) N=$OPTARG ;;
        N) NP=$OPTARG ;;
        r) KEYSPACE=$OPTARG ;;
        t) TESTS=$OPTARG ;;
        P) PIPELINES=$OPTARG ;;
        c) CLIENTS=$OPTARG ;;
        m) MEM_KEYS=$OPTARG ;;
        s) SHAPES=$OPTARG ;;
        R) ROUNDS=$OPTARG ;;
        q) QUICK=1 ;;
        B) NO_BUILD=1 ;;
        p) PORT_BASE=$OPTARG ;;
        C) PIN=1 ;;
        h) usage 0 ;;
        *) usage 1 >&2 ;;
    esac
done

# Counts given explicitly win over the quick mode's.
if [[ $QUICK == 1 ]]; then
    N=${N:-10000} NP=${NP:-50000} MEM_KEYS=${MEM_KEYS:-100000}
else
    N=${N:-200000} NP=${NP:-1000000} MEM_KEYS=${MEM_KEYS:-1000000}
fi

for tool in redis-server redis-cli redis-benchmark python3 getconf; do
    command -v "$tool" >/dev/null || { echo "vs-redis: $tool not found" >&2; exit 1; }
done

# Commands put before each server and before the benchmark client (-C).
SERVER_PIN=() CLIENT_PIN=()
if [[ $PIN == 1 ]]; then
    command -v taskset >/dev/null || { echo "vs-redis: taskset not found" >&2; exit 1; }
    SERVER_PIN=(taskset -c "$(($(nproc) - 1))") CLIENT_PIN=(taskset -c 0)
fi

TICKS=$(getconf CLK_TCK)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferrokv-bench.XXXXXX")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# Prints N distinct ports nobody listens on. With a base, scans upwards from
# it; otherwise lets the kernel choose. Sockets stay open until all are
# chosen so the ports differ; a server may still lose the race, which
# start_server reports.
free_ports() {
    python3 - "$1" "$PORT_BASE" <<'EOF'
import socket, sys
want, base = int(sys.argv[1]), sys.argv[2]
held, ports = [], []
candidates = iter(range(int(base), 65536)) if base else iter(lambda: 0, None)
for p in candidates:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close()
        continue
    held.append(s)
    ports.append(s.getsockname()[1])
    if len(ports) == want:
        break
print(" ".join(map(str, ports)))
EOF
}

# utime+stime of a process and all its threads, in clock ticks. The command
# name in field 2 may contain spaces, so fields are counted after its ')'.
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    # After the name: state is field 3, so utime (14) and stime (15) are the
    # 12th and 13th words here.
    awk '{ print $12 + $13 }' <<<"$stat"
}

# Tests that are not redis-benchmark built-ins: the command each runs.
# evalsha's script is loaded (and its SHA filled in) by prepare().
custom_cmd() {
    case $1 in
        zrange) echo "ZRANGE bench:zset 0 9" ;;
        evalsha) echo "EVALSHA $SCRIPT_SHA 1 counter:__rand_int__" ;;
        publish | publish1 | publish100) echo "PUBLISH bench:channel hello" ;;
        *) return 1 ;;
    esac
}

# redis-benchmark's CSV test name for a -t name.
csv_name() {
    case $1 in
        mset) echo "MSET (10 keys)" ;;
        *) custom_cmd "$1" || echo "${1^^}" ;;
    esac
}

SUBSCRIBERS=()
SCRIPT_SHA=""
# Data and subscribers a custom test needs on the server at PORT.
prepare() {
    local port=$1 test=$2 i
    case $test in
        zrange)
            for i in $(seq 0 99); do echo "ZADD bench:zset $i member:$i"; done |
                redis-cli -p "$port" >/dev/null
            ;;
        evalsha)
            SCRIPT_SHA=$(redis-cli -p "$port" SCRIPT LOAD "return redis.call('INCR', KEYS[1])")
            ;;
        publish1 | publish100)
            local n=${test#publish}
            for ((i = 0; i < n; i++)); do
                "${CLIENT_PIN[@]}" redis-cli -p "$port" SUBSCRIBE bench:channel >/dev/null &
                SUBSCRIBERS+=($!)
            done
            # Until every subscriber is in, PUBLISH would reach fewer.
            while [[ $(redis-cli -p "$port" PUBSUB NUMSUB bench:channel | tail -1) -lt $n ]]; do
                sleep 0.05
            done
            ;;
    esac
}

unprepare() {
    if ((${#SUBSCRIBERS[@]})); then
        kill "${SUBSCRIBERS[@]}" 2>/dev/null || true
        wait "${SUBSCRIBERS[@]}" 2>/dev/null || true
    fi
    SUBSCRIBERS=()
}

# Whether the server knows the command a test sends. redis-benchmark counts
# error replies as answers, so a missing command would look fast.
supports() {
    local port=$1 test=$2 probe
    case $test in
        ping*) probe=(PING) ;;
        zrange) probe=(ZCARD __vs_redis_probe__) ;;
        evalsha) probe=(SCRIPT EXISTS 0) ;;
        multi) probe=(EXEC) ;;
        publish*) probe=(PUBLISH __vs_redis_probe__ x) ;;
        get) probe=(GET __vs_redis_probe__) ;;
        set | mset) probe=("${test^^}" __vs_redis_probe__ x) ;;
        *) probe=("${test^^}" __vs_redis_probe__) ;;
    esac
    ! redis-cli -p "$port" "${probe[@]}" 2>&1 | grep -qi "unknown command"
}

# run_bench PID PORT TEST PIPELINE REQUESTS: prints "rps cpu_us_per_request",
# or "unsupported -" when the server lacks the command.
run_bench() {
    local pid=$1 port=$2 test=$3 pipeline=$4 requests=$5
    local before after out rps
    if ! supports "$port" "$test"; then
        echo "unsupported -"
        return
    fi
    prepare "$port" "$test"
    local what=(-t "$test") cmd
    if cmd=$(custom_cmd "$test"); then
        read -ra what <<<"$cmd"
    fi
    # txn_bench takes redis-benchmark's options and prints the same CSV
    # shape, with the test named MULTI, transactions/s in the second column
    # and the count of transactions with unexpected replies in the fourth.
    # redis-benchmark takes a custom command after all of its options.
    local driver=(redis-benchmark --csv) args=("${what[@]}")
    [[ $test == multi ]] && driver=("$TXN_BENCH") args=()
    before=$(cpu_ticks "$pid")
    out=$("${CLIENT_PIN[@]}" "${driver[@]}" -p "$port" -c "$CLIENTS" -n "$requests" -r "$KEYSPACE" \
        -P "$pipeline" "${args[@]}" 2>&1) || true
    after=$(cpu_ticks "$pid")
    unprepare
    # Header line first, then one quoted line per test; match ours by name
    # so warnings or extra lines do not confuse the parse.
    rps=$(awk -F'","' -v name="$(csv_name "$test")" '
        { gsub(/^"|"$/, "", $1); gsub(/"/, "", $2) }
        $1 == name && $2 ~ /^[0-9.]+$/ { print $2; exit }' <<<"$out")
    if [[ -z $rps ]]; then
        echo "vs-redis: no result for $test -P $pipeline on port $port; redis-benchmark said:" >&2
        echo "$out" | tail -5 >&2
        rps=0
    fi
    if [[ $test == multi ]]; then
        local errors
        errors=$(awk -F'","' '$1 == "\"MULTI" { print $4 }' <<<"$out")
        if [[ $errors != 0 ]]; then
            echo "vs-redis: $errors transactions with unexpected replies on port $port" >&2
        fi
    fi
    awk -v rps="$rps" -v t="$((after - before))" -v hz="$TICKS" -v n="$requests" \
        'BEGIN { printf "%s %.2f\n", rps, t / hz * 1e6 / n }'
}

# median_run "rps cpu"...: the run with the median rps (the lower middle
# one for an even count), so that a figure and its CPU cost stay a pair.
median_run() {
    printf '%s\n' "$@" | sort -g -k1,1 | awk '{ runs[NR] = $0 } END { print runs[int((NR + 1) / 2)] }'
}

if [[ $NO_BUILD != 1 ]]; then
    echo "== cargo build --release"
    # One invocation for both binaries: txn_bench's tokio features are a
    # subset of ferrokv's, so they unify and nothing is compiled twice.
    bins=(--bin ferrokv)
    [[ ,$TESTS, == *,multi,* ]] && bins+=(--bin txn_bench)
    (cd "$ROOT" && cargo build --release "${bins[@]}")
fi
FERROKV="$ROOT/target/release/ferrokv"
TXN_BENCH="$ROOT/target/release/txn_bench"
[[ -x $FERROKV ]] || { echo "vs-redis: $FERROKV missing (build it or drop -B)" >&2; exit 1; }
if [[ ,$TESTS, == *,multi,* && ! -x $TXN_BENCH ]]; then
    echo "vs-redis: $TXN_BENCH missing (build it or drop -B)" >&2
    exit 1
fi

start_redis() {
    start_server "redis-$1" "$1" "${SERVER_PIN[@]}" redis-server --port "$1" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$WORK" --daemonize no --logfile ''
}

start_ferrokv() {
    local port=$1 threads=$2
    local extra=()
    [[ $threads != default ]] && extra=(--server-threads "$threads")
    start_server "ferrokv-$port" "$port" "${SERVER_PIN[@]}" "$FERROKV" --port "$port" --bind 127.0.0.1 \
        --dir "$WORK" --save "" "${extra[@]}"
}

echo "== $(redis-server --version | awk '{print $1, $2, $3}'), $("$FERROKV" --version)"
echo "== $(nproc) CPUs$([[ $PIN == 1 ]] && echo ", servers pinned to CPU $(($(nproc) - 1)), client to CPU 0"), clients $CLIENTS, keyspace $KEYSPACE, requests $N (pipelined: $NP)," \
    "CPU per request from /proc/<pid>/stat at $TICKS ticks/s, median of $ROUNDS round(s)"

IFS=, read -ra test_list <<<"$TESTS"
IFS=, read -ra pipe_list <<<"$PIPELINES"
IFS=, read -ra shape_list <<<"$SHAPES"

for shape in "${shape_list[@]}"; do
    read -r rport fport <<<"$(free_ports 2)"
    start_redis "$rport"
    rpid=$SERVER_PID
    start_ferrokv "$fport" "$shape"
    fpid=$SERVER_PID
    if [[ $shape == default ]]; then
        label="ferrokv (default threads)"
    else
        label="ferrokv --server-threads $shape"
    fi
    echo
    echo "== $label vs redis-server"
    printf "%-16s %3s %12s %12s %7s %14s %14s\n" test P "redis rps" "ferrokv rps" ratio \
        "redis us/req" "ferrokv us/req"
    for test in "${test_list[@]}"; do
        for p in "${pipe_list[@]}"; do
            requests=$N
            [[ $p -gt 1 ]] && requests=$NP
            r_runs=() f_runs=()
            for ((round = 0; round < ROUNDS; round++)); do
                r_runs+=("$(run_bench "$rpid" "$rport" "$test" "$p" "$requests")")
                f_runs+=("$(run_bench "$fpid" "$fport" "$test" "$p" "$requests")")
            done
            read -r r_rps r_cpu <<<"$(median_run "${r_runs[@]}")"
            read -r f_rps f_cpu <<<"$(median_run "${f_runs[@]}")"
            label=$(csv_name "$test")
            custom_cmd "$test" >/dev/null && label=${test^^}
            printf "%-16s %3s %12s %12s %7s %14s %14s\n" "$label" "$p" "$r_rps" \
                "$f_rps" "$(ratio "$f_rps" "$r_rps")" "$r_cpu" "$f_cpu"
        done
    done
    stop_server "$fpid"
    stop_server "$rpid"
done

[[ $MEM_KEYS -gt 0 ]] || exit 0

# Memory: the same MEM_KEYS distinct keys (key:<i>, 10-byte values that are
# not integers, so both servers keep them as strings) into fresh servers.
# The loader pipelines batches over one connection and counts the replies,
# so it needs nothing from the server beyond SET.
echo
echo "== memory: $MEM_KEYS keys of 10-byte values (ferrokv with default threads)"
cat >"$WORK/load.py" <<'EOF'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
batch = 10000
batches = []
for start in range(0, n, batch):
    cmds = []
    for i in range(start, min(n, start + batch)):
        key = b"key:%d" % i
        cmds.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$10\r\nv%09d\r\n" % (len(key), key, i))
    batches.append((len(cmds), b"".join(cmds)))
sock = socket.create_connection(("127.0.0.1", port))
errors, first_error, rest = 0, None, b""
began = time.monotonic()
for count, blob in batches:
    sock.sendall(blob)
    got = 0
    while got < count:
        data = sock.recv(1 << 20)
        if not data:
            sys.exit("connection closed by the server")
        lines = (rest + data).split(b"\r\n")
        rest = lines.pop()
        got += len(lines)
        for line in lines:
            if line.startswith(b"-"):
                errors += 1
                first_error = first_error or line.decode(errors="replace")
if errors:
    print("%d error replies, first: %s" % (errors, first_error), file=sys.stderr)
print("%.2f" % (time.monotonic() - began))
EOF

# One INFO field, or n/a when the server has no INFO (or not that field).
info_field() {
    local v
    v=$(redis-cli -p "$1" info memory 2>/dev/null | tr -d '\r' |
        awk -F: -v f="$2" '$1 == f { print $2 }') || true
    echo "${v:-n/a}"
}
dbsize() {
    local v
    v=$(redis-cli -p "$1" dbsize 2>/dev/null | tr -d '\r') || true
    if [[ $v =~ ^[0-9]+$ ]]; then echo "$v"; else echo n/a; fi
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

read -r rport fport <<<"$(free_ports 2)"
start_redis "$rport"
rpid=$SERVER_PID
start_ferrokv "$fport" default
fpid=$SERVER_PID
declare -A mem
for who in redis ferrokv; do
    if [[ $who == redis ]]; then port=$rport pid=$rpid; else port=$fport pid=$fpid; fi
    mem[$who.rss0]=$(rss_kb "$pid")
    mem[$who.secs]=$(python3 "$WORK/load.py" "$port" "$MEM_KEYS") || {
        echo "vs-redis: loading $who failed" >&2
        mem[$who.secs]=n/a
    }
    mem[$who.dbsize]=$(dbsize "$port")
    mem[$who.used]=$(info_field "$port" used_memory)
    mem[$who.rss]=$(rss_kb "$pid")
done

row() { printf "%-30s %14s %14s %7s\n" "$1" "$2" "$3" "$(ratio "$3" "$2")"; }
per_key() {
    awk -v v="$1" -v base="$2" -v n="$MEM_KEYS" \
        'BEGIN { if (v ~ /^[0-9]+$/) printf "%.1f", (v - base) / n; else print "n/a" }'
}
printf "%-30s %14s %14s %7s\n" "" redis ferrokv ratio
row "load time (s)" "${mem[redis.secs]}" "${mem[ferrokv.secs]}"
row DBSIZE "${mem[redis.dbsize]}" "${mem[ferrokv.dbsize]}"
row "used_memory (bytes)" "${mem[redis.used]}" "${mem[ferrokv.used]}"
row "used_memory per key (bytes)" "$(per_key "${mem[redis.used]}" 0)" \
    "$(per_key "${mem[ferrokv.used]}" 0)"
row "RSS before load (kB)" "${mem[redis.rss0]}" "${mem[ferrokv.rss0]}"
row "RSS after load (kB)" "${mem[redis.rss]}" "${mem[ferrokv.rss]}"
row "RSS growth per key (bytes)" \
    "$(per_key "$((mem[redis.rss] * 1024))" "$((mem[redis.rss0] * 1024))")" \
    "$(per_key "$((mem[ferrokv.rss] * 1024))" "$((mem[ferrokv.rss0] * 1024))")"
