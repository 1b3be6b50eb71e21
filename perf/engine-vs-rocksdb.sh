#!/usr/bin/env bash
# perf/engine-vs-rocksdb.sh: the engine, CityHall against RocksDB, side by
# side in one run on one machine, no network in between.
#
#   RocksDB   `db_bench` from Debian's rocksdb-tools:
#             --benchmarks=fillrandom,readrandom,readmissing --num=N
#             --key_size=16 --value_size=100 --sync=1 (then 0), one thread,
#             db_bench's defaults otherwise (Snappy, 64 MiB memtable).
#   CityHall  `cityhall-loadgen --embedded DIR --workload
#             fillrandom,readrandom,readmissing` with the same count, sizes
#             and thread count; --durability sync for --sync=1, relaxed
#             (synced every second) for --sync=0.
#
# Each pair starts from an empty directory on the same file system. The
# table gives ops/s, p50 and p99 in microseconds and CityHall's ops/s
# divided by RocksDB's.
#
# Caveats, stated with the numbers:
# - Debian's db_bench is built with assertions on (it prints "WARNING:
#   Assertions are enabled; benchmarks unnecessarily slow"), so RocksDB's
#   figures here are pessimistic. perf/engine-vs-peers.sh adds a release
#   build of RocksDB (through the `rocksdb` crate, perf/peers) and fjall,
#   driven with the load generator's keys and values, beside these rows;
#   this script stays as the quick check that needs no C++ build.
# - --sync=0 means RocksDB never syncs its WAL; CityHall's relaxed mode
#   still syncs once a second.
# - db_bench keys are 8-byte big-endian integers padded to 16 bytes, the
#   load generator's are 16 decimal digits; both are 16 bytes and read in
#   random order.
# - With --sync=1 every write waits for its own sync (one thread), so N_SYNC
#   is smaller than N to keep the run to minutes.
#
# Usage: perf/engine-vs-rocksdb.sh
# Environment: N (operations per workload without sync, default 200000),
# N_SYNC (with sync, default 20000), THREADS (1), SYNC_MODES ("1 0"),
# PERF_DATA_DIR (default target/perf-data), KEEP_WORK=1 to keep the data.
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

N="${N:-200000}"
N_SYNC="${N_SYNC:-20000}"
THREADS="${THREADS:-1}"
SYNC_MODES="${SYNC_MODES:-1 0}"
WORKLOADS="fillrandom,readrandom,readmissing"

ensure_packages db_bench rocksdb-tools jq jq
build_release
make_work_dir

"$LOADGEN" --setup-only --workload "$WORKLOADS" --embedded "$WORK/setup" \
    --connections "$THREADS" --num "$N" --key-size 16 --value-size 100
echo "  RocksDB:     db_bench from Debian rocksdb-tools $(dpkg-query -W -f='${Version}' rocksdb-tools 2>/dev/null || echo "(version unknown)")"
echo

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

for sync in $SYNC_MODES; do
    if [ "$sync" = 1 ]; then
        n="$N_SYNC" durability=sync
    else
        n="$N" durability=relaxed
    fi
    # db_bench --threads=T runs --num operations in each thread; the load
    # generator's --num counts all connections together.
    total=$((n * THREADS))

    run db_bench --benchmarks="$WORKLOADS" --num="$n" --threads="$THREADS" \
        --key_size=16 --value_size=100 --sync="$sync" --histogram=1 \
        --db="$WORK/rocksdb-sync$sync" >"$WORK/rocksdb-sync$sync.out" 2>"$WORK/rocksdb-sync$sync.err"
    # "fillrandom   :   4.544 micros/op 219510 ops/sec ..." then, further
    # down, "Percentiles: P50: 2.98 P75: 3.63 P99: 9.19 ...".
    awk -v s="$sync" '
        $2 == ":" && ($1 == "fillrandom" || $1 == "readrandom" || $1 == "readmissing") {
            name = $1; ops = $5
        }
        $1 == "Percentiles:" && name != "" {
            printf "rocksdb\t%s\t%s\t%s\t%s\t%s\n", s, name, ops, $3, $7
            name = ""
        }' "$WORK/rocksdb-sync$sync.out" >>"$RESULTS"

    run "$LOADGEN" --workload "$WORKLOADS" --embedded "$WORK/cityhall-sync$sync" \
        --durability "$durability" --connections "$THREADS" --num "$total" --key-space "$n" \
        --key-size 16 --value-size 100 --json >"$WORK/cityhall-sync$sync.json"
    jq -r --arg s "$sync" '[ "cityhall", $s, .workload, .ops_per_sec,
            .latency_us.p50, .latency_us.p99 ] | @tsv' \
        "$WORK/cityhall-sync$sync.json" >>"$RESULTS"
done

echo
echo "Results: 16-byte keys, 100-byte values, $THREADS thread(s); latency in microseconds"
printf '%-6s %-12s %-9s %9s %12s %10s %10s %16s\n' \
    sync workload engine num ops/s p50_us p99_us CityHall/RocksDB
for sync in $SYNC_MODES; do
    n="$N"
    [ "$sync" = 1 ] && n="$N_SYNC"
    for w in ${WORKLOADS//,/ }; do
        rocks="$(awk -F'\t' -v s="$sync" -v w="$w" '$1 == "rocksdb" && $2 == s && $3 == w { print $4 }' "$RESULTS")"
        for engine in cityhall rocksdb; do
            awk -F'\t' -v s="$sync" -v w="$w" -v e="$engine" \
                '$1 == e && $2 == s && $3 == w { print $4, $5, $6 }' "$RESULTS" |
                while read -r ops p50 p99; do
                    r=""
                    [ "$engine" = cityhall ] && r="$(ratio "$ops" "$rocks")"
                    printf '%-6s %-12s %-9s %9s %12.0f %10.2f %10.2f %16s\n' \
                        "$sync" "$w" "$engine" "$n" "$ops" "$p50" "$p99" "$r"
                done
        done
    done
done
