#!/usr/bin/env bash
# perf/overwrite-vs-rocksdb.sh: leveled compaction under random overwrites,
# CityHall against RocksDB's db_bench, one after the other in one run on
# one machine, each from an empty database.
#
# Steps, the same for both (16-byte keys, 100-byte values):
#   overwrite  WRITES (10,000,000) puts of random keys of a KEYS
#              (1,000,000) key space, one thread, WAL written and not
#              synced per write (CityHall --durability relaxed: synced
#              once a second; db_bench --sync=0)
#   compact    flush and compact the whole key space (db_bench `compact`,
#              CompactRange over everything)
#   deleteall  delete every key once, in key order (db_bench `deleteseq`)
#   compact    again: the tombstones and what they cover go
# After each step: throughput, stall time, write amplification, bytes of
# tables, bytes on disk (du), and space amplification measured as table
# bytes over the table bytes after the first full compaction (when one
# version of every key is left), next to the engine's own estimate.
# CityHall's engine line is printed twice per step: when the step's last
# operation is answered, and once the background work has settled
# (`--settle`: flushes, compactions and the idle compaction, which
# compacts what sits above the last level once the writes pause).
# RocksDB has no idle compaction: what it holds at the end stays.
#
# Write amplification, both engines, since the database was opened:
# (bytes written to the WAL + by flushes + by compactions) / (bytes of
# user writes in the WAL). CityHall: its `db.write_amplification`.
# RocksDB: from db_bench's `stats` ("Cumulative WAL ... written",
# "Cumulative compaction ... write", which includes flushes, over
# "Cumulative writes ... ingest").
#
# db_bench is Debian's rocksdb-tools, built with assertions on (it warns
# "Assertions are enabled; benchmarks unnecessarily slow"), so its
# throughput is pessimistic; its amplification figures are not affected.
#
# Time: about 10-20 minutes on 2 cores with the defaults.
#
# Usage: perf/overwrite-vs-rocksdb.sh
# Environment: WRITES (10000000), KEYS (1000000), SEED (1),
# ENGINES ("cityhall db_bench"), PERF_DATA_DIR (target/perf-data),
# KEEP_WORK=1 keeps the databases.
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

WRITES="${WRITES:-10000000}"
KEYS="${KEYS:-1000000}"
SEED="${SEED:-1}"
ENGINES="${ENGINES:-cityhall db_bench}"
wants() { [[ " $ENGINES " == *" $1 "* ]]; }

wants db_bench && ensure_packages db_bench rocksdb-tools
build_release
make_work_dir

echo "== Setup"
"$LOADGEN" --setup-only --workload overwrite --embedded "$WORK/setup" \
    --num "$WRITES" --key-space "$KEYS" --seed "$SEED"
echo "  Data dirs:   $WORK ($(fs_of "$WORK"))"
wants db_bench && echo "  db_bench:    rocksdb-tools $(dpkg-query -W -f='${Version}' rocksdb-tools 2>/dev/null || echo '?'), assertions on"
echo "  Load before: $(uptime)"

du_bytes() { du -sb "$1" | awk '{ print $1 }'; }

if wants cityhall; then
    echo "== CityHall"
    run "$LOADGEN" --workload overwrite,compact,deleteall,compact \
        --embedded "$WORK/cityhall" --num "$WRITES" --key-space "$KEYS" \
        --key-size 16 --value-size 100 --durability relaxed --seed "$SEED" --settle \
        | tee "$WORK/cityhall.out"
    echo "  du after the run: $(du_bytes "$WORK/cityhall") bytes"
    rm -rf "$WORK/cityhall"
fi

if wants db_bench; then
    echo "== db_bench"
    common=(--num="$KEYS" --key_size=16 --value_size=100 --sync=0 --threads=1
        --db="$WORK/rocksdb" --seed="$SEED" --stats_per_interval=0)
    db_step() {
        local name="$1"
        shift
        run db_bench "$@" "${common[@]}" >"$WORK/db_bench-$name.out" 2>&1 || {
            cat "$WORK/db_bench-$name.out" >&2
            return 1
        }
        grep -E "^(overwrite|compact|deleteseq) +:|Cumulative (writes|WAL|compaction|stall)|^ *(L[0-9]|Sum) " \
            "$WORK/db_bench-$name.out" || true
        local sst
        sst="$(find "$WORK/rocksdb" -name '*.sst' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
        echo "  $name: tables $sst bytes; du $(du_bytes "$WORK/rocksdb") bytes"
    }
    db_step overwrite --benchmarks=overwrite,stats --writes="$WRITES"
    db_step compact --benchmarks=compact,stats --use_existing_db=1
    db_step deleteseq --benchmarks=deleteseq,compact,stats --use_existing_db=1
    rm -rf "$WORK/rocksdb"
fi
echo "  Load after:  $(uptime)"
