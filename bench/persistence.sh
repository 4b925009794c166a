#!/usr/bin/env bash
# Persistence costs of ferrokv next to redis-server.
#
# Builds ferrokv in release mode and loads the same data set into it and
# into redis-server (separate directories, no save points): K keys, of
# which 80% strings and 5% each hashes, lists, sets and sorted sets of 10
# items. Then, for each server in turn (never both at once), it measures:
#   - SAVE: wall time of the command and the size of the dump;
#   - start-up load: a restart on that dump, time until PING answers PONG;
#   - SET throughput (redis-benchmark -c C -P 1 -t set) without persistence,
#     with the AOF on and `appendfsync everysec`, with `appendfsync always`,
#     and with the AOF off while BGSAVEs of the data set run back to back;
# and prints a table with the ferrokv/redis ratio of each figure.
#
# Usage: bench/persistence.sh [options]
#   -k N          keys in the data set                   (BENCH_KEYS, default 1000000)
#   -n N          requests per SET run                   (BENCH_N, default 200000)
#   -c N          parallel clients                       (BENCH_CLIENTS, default 50)
#   -r N          keyspace of the SET runs (__rand_int__) (BENCH_KEYSPACE, default 100000)
#   -T N          ferrokv event loops (--server-threads)  (BENCH_THREADS, default: ferrokv's own,
#                 one per core; 1 is the shape comparable to Redis's single thread)
#   -B            skip `cargo build --release`           (BENCH_NO_BUILD=1)
#   -p PORT       look for free ports from PORT upwards  (BENCH_PORT_BASE; default: kernel-chosen)
#
# With the defaults it takes a few minutes and about 1 GB of disk and RAM
# per server. `appendfsync always` figures depend mostly on the disk.
# Numbers are only meaningful on an otherwise idle machine.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

KEYS=${BENCH_KEYS:-1000000}
N=${BENCH_N:-200000}
CLIENTS=${BENCH_CLIENTS:-50}
KEYSPACE=${BENCH_KEYSPACE:-100000}
NO_BUILD=${BENCH_NO_BUILD:-0}
THREADS=${BENCH_THREADS:-}
PORT_BASE=${BENCH_PORT_BASE:-}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

while getopts "k:n:c:r:T:Bp:h" opt; do
    case $opt in
        k) KEYS=$OPTARG ;;
        n) N=$OPTARG ;;
        c) CLIENTS=$OPTARG ;;
        r) KEYSPACE=$OPTARG ;;
        T) THREADS=$OPTARG ;;
        B) NO_BUILD=1 ;;
        p) PORT_BASE=$OPTARG ;;
        h) usage 0 ;;
        *) usage 1 >&2 ;;
    esac
done

for tool in redis-server redis-cli redis-benchmark python3; do
    command -v "$tool" >/dev/null || { echo "persistence: $tool not found" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferrokv-persist-bench.XXXXXX")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# Prints a port nobody listens on: from the base upwards, or one the kernel
# chooses.
free_port() {
    python3 - "$PORT_BASE" <<'EOF'
import socket, sys
base = sys.argv[1]
for p in (range(int(base), 65536) if base else [0]):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(s.getsockname()[1])
    break
EOF
}

# One INFO persistence field.
info_field() {
    redis-cli -p "$1" info persistence | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}

# Waits until neither a BGSAVE nor an AOF rewrite runs or waits to.
wait_idle() {
    local port=$1
    until [[ $(info_field "$port" rdb_bgsave_in_progress) == 0 &&
        $(info_field "$port" aof_rewrite_in_progress) == 0 &&
        $(info_field "$port" aof_rewrite_scheduled) == 0 ]]; do
        sleep 0.05
    done
}

# Starts a BGSAVE whenever none runs, until killed.
keep_saving() {
    while :; do
        if [[ $(info_field "$1" rdb_bgsave_in_progress) == 0 ]]; then
            redis-cli -p "$1" bgsave >/dev/null
        fi
        sleep 0.02
    done
}

# The data set: key:<i> is a hash, list, set or sorted set of 10 items
# for i % 20 in 0..3, else a 10-byte string. Sent pipelined in batches over
# one connection; error replies are counted and fail the run.
cat >"$WORK/load.py" <<'EOF'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])

def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def command(i):
    key = b"key:%d" % i
    kind = i % 20
    if kind == 0:
        return cmd(b"HSET", key, *[x for j in range(10) for x in (b"f%d" % j, b"v%d" % (i + j))])
    if kind == 1:
        return cmd(b"RPUSH", key, *[b"item:%d" % (i + j) for j in range(10)])
    if kind == 2:
        return cmd(b"SADD", key, *[b"m:%d" % (i + j) for j in range(10)])
    if kind == 3:
        return cmd(b"ZADD", key, *[x for j in range(10) for x in (b"%d.5" % j, b"z:%d" % (i + j))])
    return cmd(b"SET", key, b"v%09d" % i)

sock = socket.create_connection(("127.0.0.1", port))
errors, first_error, rest = 0, None, b""
batch = 10000
for start in range(0, n, batch):
    count = min(n, start + batch) - start
    sock.sendall(b"".join(command(i) for i in range(start, start + count)))
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
    sys.exit("%d error replies, first: %s" % (errors, first_error))
EOF

# SET requests per second against PORT.
set_rps() {
    local out rps
    out=$(redis-benchmark -p "$1" -c "$CLIENTS" -n "$N" -r "$KEYSPACE" -P 1 --csv -t set 2>&1) || true
    rps=$(awk -F'","' '{ gsub(/^"|"$/, "", $1); gsub(/"/, "", $2) }
        $1 == "SET" && $2 ~ /^[0-9.]+$/ { print $2; exit }' <<<"$out")
    if [[ -z $rps ]]; then
        echo "persistence: no SET result on port $1; redis-benchmark said:" >&2
        echo "$out" | tail -5 >&2
        rps=n/a
    fi
    echo "$rps"
}

if [[ $NO_BUILD != 1 ]]; then
    echo "== cargo build --release"
    (cd "$ROOT" && cargo build --release --bin ferrokv)
fi
FERROKV="$ROOT/target/release/ferrokv"
[[ -x $FERROKV ]] || { echo "persistence: $FERROKV missing (build it or drop -B)" >&2; exit 1; }

declare -A R

# measure WHO PORT CMD... : the whole sequence for one server, results in R.
measure() {
    local who=$1 port=$2 pid
    shift 2
    echo "== $who: loading $KEYS keys" >&2
    start_server "$who" "$port" "$@"
    pid=$SERVER_PID
    local began
    began=$(now)
    python3 "$WORK/load.py" "$port" "$KEYS"
    R[$who.load]=$(since "$began")
    R[$who.dbsize]=$(redis-cli -p "$port" dbsize | tr -d '\r')
    echo "== $who: SAVE" >&2
    began=$(now)
    redis-cli -p "$port" save >/dev/null
    R[$who.save]=$(since "$began")
    R[$who.size]=$(stat -c %s "$WORK/$who/dump.rdb")
    stop_server "$pid"

    echo "== $who: restart on the dump" >&2
    start_server "$who" "$port" "$@"
    pid=$SERVER_PID
    R[$who.startup]=$STARTUP_SECS
    R[$who.loaded]=$(redis-cli -p "$port" dbsize | tr -d '\r')

    echo "== $who: SET throughput" >&2
    R[$who.set]=$(set_rps "$port")
    redis-cli -p "$port" config set appendonly yes >/dev/null
    # ferrokv starts the AOF (and its base) from its persistence thread.
    until [[ $(info_field "$port" aof_enabled) == 1 ]]; do sleep 0.05; done
    wait_idle "$port"
    redis-cli -p "$port" config set appendfsync everysec >/dev/null
    R[$who.everysec]=$(set_rps "$port")
    redis-cli -p "$port" config set appendfsync always >/dev/null
    R[$who.always]=$(set_rps "$port")
    redis-cli -p "$port" config set appendonly no >/dev/null
    wait_idle "$port"

    # A BGSAVE of this data set is shorter than a SET run: saves follow
    # each other for the whole run, so every request meets one.
    local saves keeper
    saves=$(info_field "$port" rdb_saves)
    keep_saving "$port" &
    keeper=$!
    R[$who.bgsave]=$(set_rps "$port")
    kill "$keeper"
    wait "$keeper" 2>/dev/null || true
    wait_idle "$port"
    R[$who.saves]=$(($(info_field "$port" rdb_saves) - saves))
    R[$who.bgsave_secs]=$(info_field "$port" rdb_last_bgsave_time_sec)
    stop_server "$pid"
}

echo "== $(redis-server --version | awk '{print $1, $2, $3}'), $("$FERROKV" --version)"
echo "== $(nproc) CPUs, $KEYS keys, SET runs: $N requests, $CLIENTS clients, keyspace $KEYSPACE, ferrokv loops: ${THREADS:-default}"

mkdir -p "$WORK/redis" "$WORK/ferrokv"
port=$(free_port)
measure redis "$port" redis-server --port "$port" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$WORK/redis" --dbfilename dump.rdb --daemonize no --logfile ''
port=$(free_port)
measure ferrokv "$port" "$FERROKV" --port "$port" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$WORK/ferrokv" --dbfilename dump.rdb ${THREADS:+--server-threads "$THREADS"}

row() { printf "%-36s %14s %14s %7s\n" "$1" "${R[redis.$2]}" "${R[ferrokv.$2]}" \
    "$(ratio "${R[ferrokv.$2]}" "${R[redis.$2]}")"; }

echo
printf "%-36s %14s %14s %7s\n" "" redis ferrokv ratio
row "keys loaded (DBSIZE)" dbsize
row "initial load over the network (s)" load
row "SAVE (s)" save
row "dump size (bytes)" size
row "start-up until PONG (s)" startup
row "keys after restart (DBSIZE)" loaded
row "SET rps, no persistence" set
row "SET rps, AOF everysec" everysec
row "SET rps, AOF always" always
row "SET rps during BGSAVEs" bgsave
row "BGSAVEs during that run" saves
row "last BGSAVE's duration (s, INFO)" bgsave_secs
