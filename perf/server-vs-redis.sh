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
# them from CLIENT_THREADS (2) threads, each an epoll loop over its
# connections in which, as in redis-benchmark, a connection sends its next
# request (or -P batch) as soon as its answers are in. The CityHall
# server runs as it does by default, one event loop per core (its WAL,
# flush and compaction threads aside); SERVER_THREADS=1 gives it one, like
# Redis. On 2 cores shared with the client, one loop leaves the WAL thread
# a core and made durable SETs 5-9% faster, but GETs at pipeline 16 over a
# million keys a third slower (BENCHMARKS.md), so the default is what is
# measured.
#
# Size: N is 1,000,000 by default, so the data (~150 MB of keys and
# values) outgrows the 64 MiB memtable and GETs read tables too, as they
# would on a store of any size; N=200000 keeps everything in the memtable.
#
# Usage: perf/server-vs-redis.sh
# Environment: N (operations per test, default 1000000), KEYSPACE (default
# N), CONNECTIONS (50), CLIENT_THREADS (2), SERVER_THREADS (0: one per core),
# VALUE_SIZE (100), PIPELINES ("1 16"), ROUNDS (1; more repeats the whole
# comparison, each system starting empty in every round, and adds a summary
# table: the median, min and max ops/s over the rounds, the median p50 and
# p99, CityHall's median ops/s divided by the row's, and that ratio round
# by round; a median of an even count is the mean of the middle two),
# PERF_DATA_DIR (where the data directories go, default target/perf-data),
# KEEP_WORK=1 to keep them.
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

N="${N:-1000000}"
KEYSPACE="${KEYSPACE:-$N}"
CONNECTIONS="${CONNECTIONS:-50}"
CLIENT_THREADS="${CLIENT_THREADS:-2}"
SERVER_THREADS="${SERVER_THREADS:-0}"
VALUE_SIZE="${VALUE_SIZE:-100}"
PIPELINES="${PIPELINES:-1 16}"
ROUNDS="${ROUNDS:-1}"
if ! [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]]; then
    echo "ROUNDS must be a positive integer, not '$ROUNDS'" >&2
    exit 2
fi

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
# row SYSTEM PIPELINE OP OPS P50_US P99_US CLIENT_CPU SERVER_CPU: a line
# of the results, with the current round as a ninth column.
row() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "$round" >>"$RESULTS"
}

# cityhall_run PIPELINE: fillrandom, then readrandom, on a fresh server.
cityhall_run() {
    local p="$1" dir="$ROUND_DIR/cityhall-p$1" w op before server_cpu ops p50 p99
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
    local p="$1" mode="$2" dir="$ROUND_DIR/redis-$2-p$1" port persist pipe=() pid i t before server_cpu ops p50 p99
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

# Each round has data directories of its own (under $WORK itself when
# there is only one), so every system starts empty in every round.
for round in $(seq 1 "$ROUNDS"); do
    ROUND_DIR="$WORK"
    if [ "$ROUNDS" -gt 1 ]; then
        ROUND_DIR="$WORK/round$round"
        mkdir -p "$ROUND_DIR"
        echo "== Round $round of $ROUNDS" >&2
    fi
    for p in $PIPELINES; do
        cityhall_run "$p"
        redis_run "$p" aof-always
        redis_run "$p" no-persistence
    done
done

# values SYSTEM PIPELINE OP COLUMN [ROUND]: that column of the system's
# rows for the test (of one round, or of every round in order), one a line.
values() {
    awk -F'\t' -v sys="$1" -v p="$2" -v op="$3" -v c="$4" -v r="${5:-}" \
        '$1 == sys && $2 == p && $3 == op && (r == "" || $9 == r) { print $c }' "$RESULTS"
}

# median: the median of the numbers on stdin, one a line (the mean of the
# middle two for an even count).
median() {
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else if (NR) printf "%.10g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

label() {
    if [ "$1" = cityhall ]; then echo "cityhall (sync)"; else echo "$1"; fi
}

echo
echo "Results: $N operations per test, $CONNECTIONS connections, ${VALUE_SIZE}-byte values," \
    "key space $KEYSPACE; latency in microseconds; CPU in seconds used by the client and the" \
    "server during the test"
for round in $(seq 1 "$ROUNDS"); do
    if [ "$ROUNDS" -gt 1 ]; then
        echo
        echo "Round $round of $ROUNDS"
    fi
    printf '%-8s %-4s %-22s %10s %9s %9s %10s %10s %14s\n' \
        pipeline op system ops/s p50_us p99_us client_cpu server_cpu CityHall/this
    for p in $PIPELINES; do
        for op in set get; do
            ch="$(values cityhall "$p" "$op" 4 "$round")"
            for sys in cityhall redis-aof-always redis-no-persistence; do
                awk -F'\t' -v p="$p" -v op="$op" -v sys="$sys" -v r="$round" \
                    '$1 == sys && $2 == p && $3 == op && $9 == r { print $4, $5, $6, $7, $8 }' "$RESULTS" |
                    while read -r ops p50 p99 ccpu scpu; do
                        printf '%-8s %-4s %-22s %10.0f %9.1f %9.1f %10s %10s %14s\n' \
                            "$p" "$op" "$(label "$sys")" "$ops" "$p50" "$p99" "$ccpu" "$scpu" "$(ratio "$ch" "$ops")"
                    done
            done
        done
    done
done

[ "$ROUNDS" -gt 1 ] || exit 0
echo
echo "Summary over $ROUNDS rounds: median, min and max ops/s; median p50 and p99;" \
    "CityHall's median ops/s divided by the row's; and CityHall's ops/s divided by the row's," \
    "round by round"
printf '%-8s %-4s %-22s %10s %10s %10s %9s %9s %14s  %s\n' \
    pipeline op system ops/s min max p50_us p99_us CityHall/this per-round
for p in $PIPELINES; do
    for op in set get; do
        ch="$(values cityhall "$p" "$op" 4 | median)"
        for sys in cityhall redis-aof-always redis-no-persistence; do
            ops="$(values "$sys" "$p" "$op" 4 | median)"
            [ -n "$ops" ] || continue
            printf '%-8s %-4s %-22s %10.0f %10.0f %10.0f %9.1f %9.1f %14s  %s\n' \
                "$p" "$op" "$(label "$sys")" "$ops" \
                "$(values "$sys" "$p" "$op" 4 | sort -g | head -1)" \
                "$(values "$sys" "$p" "$op" 4 | sort -g | tail -1)" \
                "$(values "$sys" "$p" "$op" 5 | median)" \
                "$(values "$sys" "$p" "$op" 6 | median)" \
                "$(ratio "$ch" "$ops")" \
                "$(paste <(values cityhall "$p" "$op" 4) <(values "$sys" "$p" "$op" 4) |
                    awk '{ printf "%s%s", (NR > 1 ? " " : ""), ($2 + 0 > 0 ? sprintf("%.2f", $1 / $2) : "-") } END { print "" }')"
        done
    done
done
