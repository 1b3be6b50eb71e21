#!/usr/bin/env bash
# perf/engine-vs-peers.sh: the engine, CityHall against RocksDB (a release
# build through the `rocksdb` crate), fjall, and, for reference, Debian's
# db_bench, side by side in one run on one machine, in-process, with
# ratios. It also draws the latency distributions as PNGs.
#
# Drivers, all in-process, one database per row group, each from empty:
#   CityHall  `cityhall-loadgen --embedded DIR` (tools/loadgen, release).
#   RocksDB   `peer-bench --engine rocksdb` (perf/peers: RocksDB 11.8 from
#             the rocksdb crate, compiled with -O3 -DNDEBUG and, through
#             CXXFLAGS, SSE4.2/PCLMUL/AVX2/BMI/LZCNT, as RocksDB's own
#             build enables by default; set ROCKSDB_CXXFLAGS="" for the
#             crate's portable x86-64 baseline, software CRC32C).
#   fjall     `peer-bench --engine fjall` (fjall 3.1, the Rust LSM).
#   db_bench  Debian rocksdb-tools, built with assertions on (it warns
#             "Assertions are enabled; benchmarks unnecessarily slow"):
#             reference rows only, no plots.
# peer-bench compiles in the load generator's own rng.rs, zipf.rs and
# keys.rs, so keys (16-byte zero-padded decimal; a missing key is a real
# one with "." appended) and values (100 bytes, about half compressible)
# are the same bytes, drawn in the same order from the same --seed.
# db_bench's keys are its own 16-byte keys (8-byte big-endian + padding).
#
# Settings, mapped (everything not named is the engine's default):
#   setting       CityHall (Options::default)  RocksDB (peer-bench)        fjall (peer-bench)     db_bench
#   block cache   256 MiB decoded blocks       256 MiB LRU                 its default, 32 MiB    --cache_size=256 MiB
#   filter        BinaryFuse8, ~9 bits/key     full Bloom, 10 bits/key     its default            --bloom_bits=10
#   compression   Snappy, 4 KiB blocks         Snappy, 4 KiB blocks        its default, LZ4       snappy (default)
#   memtable      64 MiB                       64 MiB (default)            its default            64 MiB (default)
#   non-durable   --durability relaxed: the    WAL written, never synced   journal written to     --sync=0
#                 log is synced once a second  (sync=false)                the OS, never synced
#   durable       --durability sync: a write   WriteOptions::set_sync      insert, then           --sync=1
#                 returns after its group's    (true): group commit        Database::persist(
#                 fdatasync                                                PersistMode::SyncData)
# Reads: CityHall's Db::get returns an owned copy of the value; peer-bench
# uses RocksDB's get_pinned and fjall's get (a shared slice), no copy.
# Scans: all three copy each pair out, reading limit+1 pairs per scan.
#
# Rows, per engine (N keys, 16-byte keys, 100-byte values, THREADS=1):
#   fillrandom    N random puts into an empty database (about 63% of the
#                 key space ends up present)
#   overwrite     N random puts into that database
#   fillseq       N puts in key order into a second, empty database
#   readrandom    N gets of random keys of that database: every key is
#                 present, and the data fits in the 256 MiB cache
#   readmissing   N gets of keys that sort next to real ones, never written
#   scan          SCAN_NUM scans of SCAN_LENGTH (100) pairs from random
#                 keys (db_bench: seekrandom --seek_nexts=SCAN_LENGTH), a
#                 new process on the same database
#   scan10000     LONG_SCAN_NUM scans of 10,000 pairs each
#   fillrandom-sync-tT  N_SYNC durable random puts, T threads (SYNC_THREADS,
#                 "1 16"), each from an empty database; db_bench's --num
#                 is per thread, so it gets N_SYNC/T per thread
# Each engine's databases are deleted when its rows are done (KEEP_WORK=1
# keeps them), so the disk holds one engine's data at a time.
#
# Output: the Setup, every command ("+ ..."), each tool's own report on
# stderr, then the table: ops/s, p50/p99/p99.9 in microseconds, and
# CityHall's ops/s over the row's. Plots: one PNG per row under
# $PLOTS_DIR (default target/perf-data/plots), drawn by perf/plot-hgrm.py
# from the .hgrm files (kept in $PLOTS_DIR/hgrm); the table is also saved
# as $PLOTS_DIR/engine-vs-peers.txt.
#
# Time: with the defaults about 10-15 minutes on 2 cores, not counting the
# first build of perf/peers, which compiles RocksDB from source (20-40
# minutes on 2 cores; later runs reuse it from $PEERS_TARGET_DIR).
#
# Usage: perf/engine-vs-peers.sh
# Environment: N (2000000), N_SYNC (20000), SYNC_THREADS ("1 16"),
# SCAN_NUM (100000), SCAN_LENGTH (100), LONG_SCAN_NUM (200), THREADS (1),
# ENGINES ("cityhall rocksdb fjall db_bench"), SEED (1), STEP_SECONDS_MAX
# (900: a step that runs longer is stopped and its rows shown as "-"),
# ROCKSDB_CXXFLAGS (see above), PEERS_TARGET_DIR (target/peers),
# PLOTS_DIR, PERF_DATA_DIR (target/perf-data), KEEP_WORK=1.
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

N="${N:-2000000}"
N_SYNC="${N_SYNC:-20000}"
SYNC_THREADS="${SYNC_THREADS:-1 16}"
SCAN_NUM="${SCAN_NUM:-100000}"
SCAN_LENGTH="${SCAN_LENGTH:-100}"
LONG_SCAN_NUM="${LONG_SCAN_NUM:-200}"
LONG_SCAN_LENGTH=10000
THREADS="${THREADS:-1}"
ENGINES="${ENGINES:-cityhall rocksdb fjall db_bench}"
SEED="${SEED:-1}"
STEP_SECONDS_MAX="${STEP_SECONDS_MAX:-900}"
ROCKSDB_CXXFLAGS="${ROCKSDB_CXXFLAGS--msse4.2 -mpclmul -mavx2 -mbmi -mlzcnt -g1}"
PEERS_DIR="$ROOT/perf/peers"
PEERS_TARGET_DIR="${PEERS_TARGET_DIR:-$TARGET_DIR/peers}"
PEER_BENCH="$PEERS_TARGET_DIR/release/peer-bench"
PLOTS_DIR="${PLOTS_DIR:-$PERF_DATA_DIR/plots}"
KEY_SIZE=16
VALUE_SIZE=100

wants() { [[ " $ENGINES " == *" $1 "* ]]; }

# --- Tools -----------------------------------------------------------------

ensure_packages jq jq
wants db_bench && ensure_packages db_bench rocksdb-tools
if wants rocksdb || wants fjall; then
    ensure_packages clang clang
    dpkg -s libclang-dev >/dev/null 2>&1 || ensure_packages __libclang_dev__ libclang-dev
fi
if ! python3 -c 'import matplotlib' 2>/dev/null; then
    run python3 -m pip install -q matplotlib ||
        ensure_packages gnuplot gnuplot-nox ||
        echo "no matplotlib and no gnuplot: the plots will be missing" >&2
fi

build_release
if wants rocksdb || wants fjall; then
    if [ ! -x "$PEER_BENCH" ]; then
        echo "Building perf/peers (peer-bench) for the first time: this compiles RocksDB's C++" \
            "from source and takes 20-40 minutes on 2 cores; later runs reuse it." >&2
    fi
    (cd "$PEERS_DIR" && CXXFLAGS="$ROCKSDB_CXXFLAGS" run cargo build --release \
        --target-dir "$PEERS_TARGET_DIR")
fi

make_work_dir
HG="$WORK/hgrm"
mkdir -p "$HG" "$PLOTS_DIR/hgrm"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# --- Setup -----------------------------------------------------------------

LOAD_BEFORE="$(uptime)"
"$LOADGEN" --setup-only --workload fillrandom --embedded "$WORK/setup" \
    --num "$N" --key-size "$KEY_SIZE" --value-size "$VALUE_SIZE" --seed "$SEED"
lock_version() {
    awk -v p="$1" '$0 == "name = \"" p "\"" { getline; gsub(/version = |"/, ""); print; exit }' \
        "$PEERS_DIR/Cargo.lock"
}
echo "  Data dirs:   $WORK ($(fs_of "$WORK"))"
echo "  RocksDB:     rocksdb crate $(lock_version rocksdb), librocksdb-sys $(lock_version librocksdb-sys)," \
    "CXXFLAGS='$ROCKSDB_CXXFLAGS'"
echo "  fjall:       $(lock_version fjall) (lsm-tree $(lock_version lsm-tree))"
wants db_bench && echo "  db_bench:    Debian rocksdb-tools" \
    "$(dpkg-query -W -f='${Version}' rocksdb-tools 2>/dev/null || echo '(version unknown)')," \
    "assertions on"
echo "  Sizes:       N=$N N_SYNC=$N_SYNC SYNC_THREADS='$SYNC_THREADS' SCAN_NUM=$SCAN_NUM" \
    "SCAN_LENGTH=$SCAN_LENGTH LONG_SCAN_NUM=$LONG_SCAN_NUM THREADS=$THREADS SEED=$SEED"
echo "  Load before: $LOAD_BEFORE"
echo

# --- Steps -----------------------------------------------------------------

# row ENGINE LABEL THREADS NUM OPS P50 P99 P99_9 FOUND_PCT
row() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
}

# step OUT CMD...: runs CMD (printed first) with its stdout in OUT and its
# stderr shown; a failure or a run past STEP_SECONDS_MAX is reported and
# leaves its rows empty instead of ending the script.
step() {
    local out="$1" rc=0
    shift
    show "$@"
    timeout "$STEP_SECONDS_MAX" "$@" >"$out" || rc=$?
    if [ "$rc" -eq 124 ]; then
        echo "*** step stopped after STEP_SECONDS_MAX=${STEP_SECONDS_MAX}s: $*" >&2
        return 1
    elif [ "$rc" -ne 0 ]; then
        echo "*** step failed (exit $rc): $*" >&2
        return 1
    fi
}

# collect ENGINE JSON [LABEL]: a row per JSON line (cityhall-loadgen's or
# peer-bench's), labelled with the workload or LABEL; the .hgrm files are
# renamed after the row.
collect() {
    local engine="$1" json="$2" label="${3:-}"
    jq -r --arg l "$label" '[ (if $l == "" then .workload else $l end), .options.connections,
            .ops, .ops_per_sec, .latency_us.p50, .latency_us.p99, .latency_us.p99_9,
            (if .found + .not_found > 0 then (100 * .found / (.found + .not_found) | floor | tostring) + "%"
             else "" end) ] | @tsv' "$json" |
        while IFS=$'\t' read -r l t num ops p50 p99 p999 found; do
            row "$engine" "$l" "$t" "$num" "$ops" "$p50" "$p99" "$p999" "$found"
        done
}

# embedded_rows ENGINE CMD...: the rows of one engine driven by CMD
# (cityhall-loadgen or peer-bench, which take the same flags but for the
# database and durability ones given by the callers below through $DBF,
# $RELAXED and $DURABLE).
embedded_rows() {
    local e="$1" t
    shift
    local common=(--key-size "$KEY_SIZE" --value-size "$VALUE_SIZE" --seed "$SEED" --json)
    if step "$WORK/$e-a.json" "$@" "${RELAXED[@]}" --workload fillrandom,overwrite \
        "$DBF" "$WORK/$e-a" --connections "$THREADS" --num "$N" --key-space "$N" \
        --hdr-out "$HG/$e.hgrm" "${common[@]}"; then
        collect "$e" "$WORK/$e-a.json"
    fi
    if step "$WORK/$e-b.json" "$@" "${RELAXED[@]}" --workload fillseq,readrandom,readmissing \
        "$DBF" "$WORK/$e-b" --connections "$THREADS" --num "$N" --key-space "$N" \
        --hdr-out "$HG/$e.hgrm" "${common[@]}"; then
        collect "$e" "$WORK/$e-b.json"
    fi
    if step "$WORK/$e-scan.json" "$@" "${RELAXED[@]}" --workload scan "$DBF" "$WORK/$e-b" \
        --connections "$THREADS" --num "$SCAN_NUM" --key-space "$N" --scan-length "$SCAN_LENGTH" \
        --hdr-out "$HG/$e.scan.hgrm" "${common[@]}"; then
        collect "$e" "$WORK/$e-scan.json" scan
    fi
    if step "$WORK/$e-scan10000.json" "$@" "${RELAXED[@]}" --workload scan "$DBF" "$WORK/$e-b" \
        --connections "$THREADS" --num "$LONG_SCAN_NUM" --key-space "$N" \
        --scan-length "$LONG_SCAN_LENGTH" --hdr-out "$HG/$e.scan10000.hgrm" "${common[@]}"; then
        collect "$e" "$WORK/$e-scan10000.json" scan10000
    fi
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK/$e-a" "$WORK/$e-b"
    for t in $SYNC_THREADS; do
        if step "$WORK/$e-sync-t$t.json" "$@" "${DURABLE[@]}" --workload fillrandom \
            "$DBF" "$WORK/$e-sync-t$t" --connections "$t" --num "$N_SYNC" --key-space "$N_SYNC" \
            --hdr-out "$HG/$e.fillrandom-sync-t$t.hgrm" "${common[@]}"; then
            collect "$e" "$WORK/$e-sync-t$t.json" "fillrandom-sync-t$t"
        fi
        [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK/$e-sync-t$t"
    done
}

# db_bench_collect OUT [LABEL] [THREADS] [NUM]: rows from db_bench's text
# ("fillrandom : 4.544 micros/op 219510 ops/sec ..." then
# "Percentiles: P50: 2.98 P75: 3.63 P99: 9.19 P99.9: 15.3 ...").
db_bench_collect() {
    local out="$1" label="${2:-}" t="${3:-$THREADS}" num="${4:-$N}"
    grep -E 'micros/op|^Percentiles:|WARNING' "$out" >&2 || true
    awk -v label="$label" '
        $2 == ":" && $4 == "micros/op" {
            name = (label == "" ? $1 : label); ops = $5; found = ""
            if (match($0, /\([0-9]+ of [0-9]+ found\)/)) {
                split(substr($0, RSTART + 1, RLENGTH - 2), f, " ")
                if (f[3] > 0) found = int(100 * f[1] / f[3]) "%"
            }
        }
        $1 == "Percentiles:" && name != "" {
            print name "\t" ops "\t" $3 "\t" $7 "\t" $9 "\t" found; name = ""
        }
    ' "$out" | while IFS=$'\t' read -r l ops p50 p99 p999 found; do
        row db_bench "$l" "$t" "$num" "$ops" "$p50" "$p99" "$p999" "$found"
    done
}

db_bench_rows() {
    local t common=(--key_size="$KEY_SIZE" --value_size="$VALUE_SIZE" --histogram=1 --progress_reports=false
        --cache_size=$((256 << 20)) --bloom_bits=10 --compression_type=snappy --seed="$SEED")
    step "$WORK/db_bench-a.out" db_bench --benchmarks=fillrandom,overwrite,fillseq,readrandom,readmissing \
        --num="$N" --threads="$THREADS" --sync=0 --db="$WORK/db_bench-a" "${common[@]}" &&
        db_bench_collect "$WORK/db_bench-a.out"
    step "$WORK/db_bench-scan.out" db_bench --benchmarks=seekrandom --use_existing_db=1 \
        --num="$N" --reads="$SCAN_NUM" --seek_nexts="$SCAN_LENGTH" --threads="$THREADS" \
        --db="$WORK/db_bench-a" "${common[@]}" &&
        db_bench_collect "$WORK/db_bench-scan.out" scan "$THREADS" "$SCAN_NUM"
    step "$WORK/db_bench-scan10000.out" db_bench --benchmarks=seekrandom --use_existing_db=1 \
        --num="$N" --reads="$LONG_SCAN_NUM" --seek_nexts="$LONG_SCAN_LENGTH" --threads="$THREADS" \
        --db="$WORK/db_bench-a" "${common[@]}" &&
        db_bench_collect "$WORK/db_bench-scan10000.out" scan10000 "$THREADS" "$LONG_SCAN_NUM"
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK/db_bench-a"
    for t in $SYNC_THREADS; do
        step "$WORK/db_bench-sync-t$t.out" db_bench --benchmarks=fillrandom --sync=1 \
            --num=$((N_SYNC / t)) --threads="$t" --db="$WORK/db_bench-sync-t$t" "${common[@]}" &&
            db_bench_collect "$WORK/db_bench-sync-t$t.out" "fillrandom-sync-t$t" "$t" "$N_SYNC"
        [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK/db_bench-sync-t$t"
    done
}

T_START=$SECONDS
for e in $ENGINES; do
    echo "=== $e ($(uptime | sed 's/.*load average/load average/'))" >&2
    case "$e" in
    cityhall)
        DBF=--embedded RELAXED=(--durability relaxed) DURABLE=(--durability sync)
        embedded_rows cityhall "$LOADGEN"
        ;;
    rocksdb | fjall)
        DBF=--db RELAXED=() DURABLE=(--sync)
        embedded_rows "$e" "$PEER_BENCH" --engine "$e"
        ;;
    db_bench) db_bench_rows ;;
    *) echo "unknown engine $e (ENGINES takes cityhall rocksdb fjall db_bench)" >&2 ;;
    esac
done
RUN_SECONDS=$((SECONDS - T_START))
LOAD_AFTER="$(uptime)"

# --- Plots -----------------------------------------------------------------

LABELS="fillrandom overwrite fillseq readrandom readmissing scan scan10000"
for t in $SYNC_THREADS; do LABELS+=" fillrandom-sync-t$t"; done
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
for l in $LABELS; do
    specs=()
    for e in cityhall rocksdb fjall; do
        f="$HG/$e.$l.hgrm"
        if [ -f "$f" ]; then
            cp "$f" "$PLOTS_DIR/hgrm/"
            specs+=("$e=$f")
        fi
    done
    [ ${#specs[@]} -gt 0 ] || continue
    python3 "$ROOT/perf/plot-hgrm.py" -o "$PLOTS_DIR/$l.png" \
        --title "$l: 16 B keys, 100 B values ($(date -u +%Y-%m-%d), commit $COMMIT)" "${specs[@]}" ||
        echo "plotting $l failed" >&2
done

# --- Table -----------------------------------------------------------------

table() {
    echo "Results: $KEY_SIZE-byte keys, $VALUE_SIZE-byte values, one run, ${RUN_SECONDS}s of runs;" \
        "latency in microseconds; found = share of gets that found a value"
    echo "Load before: $LOAD_BEFORE"
    echo "Load after:  $LOAD_AFTER"
    printf '%-20s %-9s %3s %9s %12s %9s %9s %9s %6s %14s\n' \
        row engine thr num ops/s p50_us p99_us p99.9_us found CityHall/this
    local l e
    for l in $LABELS; do
        ch="$(awk -F'\t' -v l="$l" '$1 == "cityhall" && $2 == l { print $5 }' "$RESULTS")"
        for e in cityhall rocksdb fjall db_bench; do
            awk -F'\t' -v l="$l" -v e="$e" '$1 == e && $2 == l' "$RESULTS" |
                while IFS=$'\t' read -r _ _ t num ops p50 p99 p999 found; do
                    r=""
                    [ "$e" = cityhall ] || r="$(ratio "$ch" "$ops")"
                    label="$e"
                    [ "$e" = db_bench ] && label="db_bench*"
                    printf '%-20s %-9s %3s %9s %12.0f %9.1f %9.1f %9.1f %6s %14s\n' \
                        "$l" "$label" "$t" "$num" "$ops" "$p50" "$p99" "$p999" "$found" "$r"
                done
        done
    done
    echo "* db_bench: Debian's build, assertions on; its own key format; reference only."
    echo "Plots: $PLOTS_DIR/*.png (.hgrm files in $PLOTS_DIR/hgrm)"
}

echo
table | tee "$PLOTS_DIR/engine-vs-peers.txt"
cp "$RESULTS" "$PLOTS_DIR/engine-vs-peers.tsv"
