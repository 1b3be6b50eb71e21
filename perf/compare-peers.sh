#!/usr/bin/env bash
# perf/compare-peers.sh: the whole peer comparison in one run, one after
# the other on this machine: the engine against RocksDB (release build
# through the `rocksdb` crate), fjall and Debian's db_bench
# (perf/engine-vs-peers.sh, which also draws the latency plots), then the
# server against redis-server with `appendfsync always` and with
# persistence off (perf/server-vs-redis.sh). Each prints its table with
# ratios; both logs are kept in $PERF_DATA_DIR/compare-peers/.
#
# On a fresh machine: `apt-get install rocksdb-tools redis-server` (the
# scripts install what is missing, and clang/libclang-dev for the peer
# crate). The first run also compiles RocksDB's C++ from source for
# perf/peers (20-40 minutes on 2 cores, reused afterwards); the comparison
# itself takes about 10 minutes.
#
# Usage: perf/compare-peers.sh      (environment: see the two scripts)
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

OUT="$PERF_DATA_DIR/compare-peers"
mkdir -p "$OUT"
start="$(date +%s)"
echo "== engine: CityHall, RocksDB, fjall, db_bench (perf/engine-vs-peers.sh)"
"$ROOT/perf/engine-vs-peers.sh" 2>&1 | tee "$OUT/engine-vs-peers.log"
echo
echo "== server: CityHall, Redis (perf/server-vs-redis.sh)"
"$ROOT/perf/server-vs-redis.sh" 2>&1 | tee "$OUT/server-vs-redis.log"
echo
echo "compare-peers: done in $(($(date +%s) - start)) s; logs in $OUT"
