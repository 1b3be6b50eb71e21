#!/usr/bin/env bash
# perf/server-vs-redis.sh: the server path, CityHall against Redis, side by
# side in one run on one machine.
#
#   CityHall  `cityhall server --durability sync` (release build, every
#             write synced before it is acknowledged), driven by
#             `cityhall-loadgen --workload fillrandom,readrandom`.
#   Redis     `redis-server` (Debian) twice: with `--appendonly yes
#             --appendfsync always` (the same promise) and with persistence
#             off (`--save '' --appendonly no`), driven by
#             `redis-benchmark -t set,get`.
#
# Both get the same operation count, connections, value size and key space
# (`-r`; redis-benchmark's keys `key:<12 digits>` are 16 bytes, as are the
# load generator's), with and without pipelining (`-P 16` and
# `--pipeline 16`, both sending 16 requests and then reading 16 answers).
# Each system starts empty; GET/readrandom follows the SET/fillrandom of
# the same run, so about 63% of reads find a key when the key space equals
# the count. The table gives ops/s, p50 and p99 in microseconds, the CPU
# seconds the client and the server used during that test, and CityHall's
# ops/s divided by the row's.
#
# Threads: redis-benchmark drives all connections from one event-loop
# thread, and Redis serves them from one. Here the load generator drives
# them from CLIENT_THREADS (2) threads, each sending on its connections and
# then reading every answer (with one such thread its in-order blocking
# reads cost more context switches than an event loop's), and the
# CityHall server runs SERVER_THREADS (1) event loop, like Redis (its WAL,
# flush and compaction threads aside): client and server share the
# machine's 2 cores, and a second event loop only adds context switches.
#
# Usage: perf/server-vs-redis.sh
# Environment: N (operations per test, default 200000), KEYSPACE (default
# N), CONNECTIONS (50), CLIENT_THREADS (2), SERVER_THREADS (1),
# VALUE_SIZE (100), PIPELINES ("1 16"),
# PERF_DATA_DIR (where the data directories go, default target/perf-data),
# KEEP_WORK=1 to keep them.
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

N="${N:-200000}"
KEYSPACE="${KEYSPACE:-$N}"
CONNECTIONS="${CONNECTIONS:-50}"
CLIENT_THREADS="${CLIENT_THREADS:-2}"
SERVER_THREADS="${SERVER_THREADS:-1}"
VALUE_SIZE="${VALUE_SIZE:-100}"
PIPELINES="${PIPELINES:-1 16}"

ensure_packages redis-server redis-server redis-benchmark redis-tools jq jq
build_release
make_work_dir

"$LOADGEN" --setup-only --workload fillrandom,readrandom --addr 127.0.0.1:0 \
    --connections "$CONNECTIONS" --client-threads "$CLIENT_THREADS" --num "$N" --key-space "$KEYSPACE" --value-size "$VALUE_SIZE"
echo "  Data dirs:   $WORK ($(fs_of "$WORK"))"
echo "  Redis:       $(redis-server --version)"
echo

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# Each test is its own client run, so that the CPU seconds of the client
# and of the server (deltas of /proc/PID/stat) belong to that test alone.
# row SYSTEM PIPELINE OP OPS P50_US P99_US CLIENT_CPU SERVER_CPU
row() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
}

# cityhall_run PIPELINE: fillrandom, then readrandom, on a fresh server.
cityhall_run() {
    local p="$1" dir="$WORK/cityhall-p$1" w op before server_cpu ops p50 p99
    start_cityhall "$dir" --durability sync --threads "$SERVER_THREADS"
    for w in fillrandom readrandom; do
        before="$(cpu_seconds "$CITYHALL_PID")"
        timed "$dir-$w.json" "$LOADGEN" --workload "$w" --addr "$CITYHALL_ADDR" \
            --connections "$CONNECTIONS" --client-threads "$CLIENT_THREADS" \
            --pipeline "$p" --num "$N" --key-space "$KEYSPACE" \
            --value-size "$VALUE_SIZE" --key-size 16 --json
        server_cpu="$(awk -v a="$before" -v b="$(cpu_seconds "$CITYHALL_PID")" 'BEGIN { printf "%.2f", b - a }')"
        op="set"
        [ "$w" = readrandom ] && op="get"
        read -r ops p50 p99 < <(jq -r '[.ops_per_sec, .latency_us.p50, .latency_us.p99] | @tsv' "$dir-$w.json")
        row cityhall "$p" "$op" "$ops" "$p50" "$p99" "$CLIENT_CPU" "$server_cpu"
    done
    stop_pid "$CITYHALL_PID"
}

# redis_run PIPELINE MODE(aof-always|no-persistence): SET, then GET, on a
# fresh redis-server.
redis_run() {
    local p="$1" mode="$2" dir="$WORK/redis-$2-p$1" port persist pipe=() pid i t before server_cpu ops p50 p99
    mkdir -p "$dir"
    case "$mode" in
    aof-always) persist=(--appendonly yes --appendfsync always --save '') ;;
    no-persistence) persist=(--save '' --appendonly no) ;;
    esac
    port="$(free_port)"
    start_bg "$dir.log" redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
        --daemonize no "${persist[@]}"
    pid=$BG_PID
    for i in $(seq 1 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        if ! kill -0 "$pid" 2>/dev/null || [ "$i" = 100 ]; then
            echo "redis-server did not start; its log:" >&2
            cat "$dir.log" >&2
            return 1
        fi
        sleep 0.1
    done
    if [ "$p" -gt 1 ]; then
        pipe=(-P "$p")
    fi
    for t in set get; do
        before="$(cpu_seconds "$pid")"
        timed "$dir-$t.csv" redis-benchmark -h 127.0.0.1 -p "$port" -t "$t" -n "$N" \
            -c "$CONNECTIONS" -d "$VALUE_SIZE" -r "$KEYSPACE" "${pipe[@]}" --csv
        server_cpu="$(awk -v a="$before" -v b="$(cpu_seconds "$pid")" 'BEGIN { printf "%.2f", b - a }')"
        # "SET","rps","avg_ms","min_ms","p50_ms","p95_ms","p99_ms","max_ms"
        read -r ops p50 p99 < <(tr -d '"' <"$dir-$t.csv" |
            awk -F, 'NR == 2 { printf "%s %.1f %.1f\n", $2, $5 * 1000, $7 * 1000 }')
        row "redis-$mode" "$p" "$t" "$ops" "$p50" "$p99" "$CLIENT_CPU" "$server_cpu"
    done
    stop_pid "$pid"
}

for p in $PIPELINES; do
    cityhall_run "$p"
    redis_run "$p" aof-always
    redis_run "$p" no-persistence
done

echo
echo "Results: $N operations per test, $CONNECTIONS connections, ${VALUE_SIZE}-byte values," \
    "key space $KEYSPACE; latency in microseconds; CPU in seconds used by the client and the" \
    "server during the test"
printf '%-8s %-4s %-22s %10s %9s %9s %10s %10s %14s\n' \
    pipeline op system ops/s p50_us p99_us client_cpu server_cpu CityHall/this
for p in $PIPELINES; do
    for op in set get; do
        ch="$(awk -F'\t' -v p="$p" -v op="$op" '$1 == "cityhall" && $2 == p && $3 == op { print $4 }' "$RESULTS")"
        for sys in cityhall redis-aof-always redis-no-persistence; do
            awk -F'\t' -v p="$p" -v op="$op" -v sys="$sys" \
                '$1 == sys && $2 == p && $3 == op { print $4, $5, $6, $7, $8 }' "$RESULTS" |
                while read -r ops p50 p99 ccpu scpu; do
                    label="$sys"
                    [ "$sys" = cityhall ] && label="cityhall (sync)"
                    printf '%-8s %-4s %-22s %10.0f %9.1f %9.1f %10s %10s %14s\n' \
                        "$p" "$op" "$label" "$ops" "$p50" "$p99" "$ccpu" "$scpu" "$(ratio "$ch" "$ops")"
                done
        done
    done
done
