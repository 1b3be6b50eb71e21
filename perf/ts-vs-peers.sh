#!/usr/bin/env bash
# perf/ts-vs-peers.sh: the time-series layer against the time-series
# servers Debian packages, loading the same TSBS-shaped file in one run:
# bytes per point on disk after compaction, ingest rate, and query latency.
#
# Data: perf/tsbs-cpu.py (TSBS "cpu-only" devops shape: per host ten
# integer random walks every 10 s; 100 hosts over a day = 8,640,000 points),
# generated once into $PERF_DATA_DIR and reused.
#
# Peers (PEERS, default "cityhall victoria-metrics influxdb"), each from an
# empty data directory, one at a time:
#   cityhall          release server, durability sync (every TS_ADD batch is
#                     fdatasync'ed before it is acknowledged), loaded with
#                     `cityhall client ts import FILE --batch 50000`;
#                     compacted with `cityhall client compact` (seals every
#                     head, flushes, compacts). Bytes at rest: the tables and
#                     the manifest; the WAL is shown apart (after a manual
#                     compaction it is one pre-zeroed 1 MiB idle segment,
#                     whatever the data).
#   victoria-metrics  Debian's victoria-metrics, `POST /write` (line protocol;
#                     acknowledged before any fsync), then
#                     /internal/force_flush and force_merge; bytes: its whole
#                     -storageDataPath.
#   influxdb          Debian's influxdb 1.x, `POST /write?db=bench` (its WAL is
#                     fsync'ed per write), in batches of 10,000 lines; cache
#                     snapshots and full compaction of cold shards after 1 s;
#                     then waits (at most INFLUX_WAIT_S, 900 s) until every
#                     shard is fully compacted by InfluxDB's own test (one
#                     TSM generation, no tombstone, no temporary file) and
#                     its WAL segments are empty, and reports the wait;
#                     bytes: what its data and wal directories occupy then
#                     (allocated blocks: its series file is preallocated
#                     sparse), the TSM files alone shown apart.
#   prometheus        Debian's prometheus 2.x: the same file converted to
#                     OpenMetrics (perf/lp-to-openmetrics.py, timed apart),
#                     loaded OFFLINE with `promtool tsdb create-blocks-from
#                     openmetrics` (a bulk load into 2 h blocks, not a server
#                     ingest: no WAL, nothing served meanwhile); then
#                     `prometheus` is started on those blocks (retention
#                     100y; its time retention counts from the newest block,
#                     not from now, so 2016 data stays) and left to compact
#                     them (at most PROM_WAIT_S, 300 s, for the block count
#                     to drop, then until the directory settles); bytes: the
#                     block directories. Queries through its HTTP API.
# Ingest rate: points / wall time from the first byte sent until every point
# is queryable. Queries (REPEAT times on one connection after a warm-up):
#   raw        one series (cpu.usage_user of host_0) over the day
#   hourly     the same series' hourly averages over the day
#   count all  the number of points of every cpu series over the day
# CityHall through cityhall-tsquery (the client library; "count all" is one
# TS_AGG request, `ts agg count --prefix cpu.`, and is also timed the old
# way, one count range query per series, as count_all_per_series_us), the
# peers through perf/http-query.py (one keep-alive HTTP connection;
# VictoriaMetrics with nocache=1, so its rollup cache does not answer).
#
# Usage: perf/ts-vs-peers.sh
# Environment: HOSTS (100), HOURS (24), SEED (1), REPEAT (200), PEERS,
# PERF_DATA_DIR (target/perf-data), KEEP_WORK=1, INFLUX_WAIT_S, PROM_WAIT_S,
# SKIP_BUILD=1 (use the release binaries as they are).
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

HOSTS="${HOSTS:-100}"
HOURS="${HOURS:-24}"
SEED="${SEED:-1}"
REPEAT="${REPEAT:-200}"
PEERS="${PEERS:-cityhall victoria-metrics influxdb prometheus}"
INFLUX_WAIT_S="${INFLUX_WAIT_S:-900}"
PROM_WAIT_S="${PROM_WAIT_S:-300}"
TSQUERY="$TARGET_DIR/release/cityhall-tsquery"
wants() { [[ " $PEERS " == *" $1 "* ]]; }

ensure_packages curl curl python3 python3
wants victoria-metrics && ensure_packages victoria-metrics victoria-metrics
wants influxdb && ensure_packages influxd influxdb
wants prometheus && ensure_packages prometheus prometheus promtool prometheus
[ -n "${SKIP_BUILD:-}" ] || build_release

DATA="$PERF_DATA_DIR/tsbs-cpu-${HOSTS}hosts-${HOURS}h-seed${SEED}.lp"
if [ ! -s "$DATA" ]; then
    mkdir -p "$PERF_DATA_DIR"
    run python3 "$ROOT/perf/tsbs-cpu.py" --hosts "$HOSTS" --hours "$HOURS" --seed "$SEED" >"$DATA.tmp"
    mv "$DATA.tmp" "$DATA"
fi
LINES="$(wc -l <"$DATA")"
POINTS=$((LINES * 10))
FROM_MS=1451606400000
TO_MS=$((FROM_MS + ${HOURS%.*} * 3600000 - 1))
FROM_S=$((FROM_MS / 1000))
TO_S=$(((TO_MS + 1) / 1000))
# host_0's tags, as a CityHall label set and as PromQL/InfluxQL matchers.
HOST0_TAGS="$(head -1 "$DATA" | sed 's/^cpu,\([^ ]*\) .*/\1/')"
HOST0_SERIES="cpu.usage_user{$HOST0_TAGS}"

make_work_dir
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
p50_of() { sed -n 's/.*p50 \([0-9.]*\).*/\1/p' "$1"; }
result() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }
dir_bytes() { du -sb "$@" | awk '{ s += $1 } END { print s }'; }
# Waits until a directory's size stops changing for 5 checks a second apart.
settle_dir() {
    local last="" same=0 cur
    for _ in $(seq 1 300); do
        cur="$(dir_bytes "$@")"
        if [ "$cur" = "$last" ]; then same=$((same + 1)); else same=0; fi
        [ "$same" -ge 5 ] && return 0
        last="$cur"
        sleep 1
    done
}
wait_http() {
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "no answer from $1" >&2
    return 1
}

echo "Setup"
echo "  Date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "  CPU:      $(nproc) x $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
echo "  Kernel:   $(uname -r); data dirs on $(fs_of "$WORK")"
echo "  Commit:   $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "  Data:     $DATA: $LINES lines, $POINTS points, $HOSTS hosts x 10 fields, $HOURS h at 10 s"
echo "  Load:     $(uptime)"

# --- CityHall ----------------------------------------------------------------
if wants cityhall; then
    start_cityhall "$WORK/cityhall"
    t0="$(now)"
    run "$CITYHALL" client --addr "$CITYHALL_ADDR" ts import "$DATA" --batch 50000 \
        2> >(grep -v '^\.\.\. ' >&2)
    ingest_s="$(elapsed "$t0")"
    t0="$(now)"
    run "$CITYHALL" client --addr "$CITYHALL_ADDR" compact
    compact_s="$(elapsed "$t0")"
    # Tables a compaction replaced are deleted just after it answers.
    settle_dir "$WORK/cityhall"
    tables="$(dir_bytes "$WORK"/cityhall/*.sst "$WORK"/cityhall/MANIFEST-*)"
    wal="$(dir_bytes "$WORK"/cityhall/*.log)"
    echo "cityhall: ingest ${ingest_s} s, compact ${compact_s} s, tables+manifest $tables bytes, WAL segments $wal bytes"
    result cityhall ingest_pps "$(awk -v p="$POINTS" -v s="$ingest_s" 'BEGIN { printf "%.0f", p / s }')"
    result cityhall bytes_per_point "$(awk -v b="$tables" -v p="$POINTS" 'BEGIN { printf "%.3f", b / p }')"
    q="$WORK/q.txt"
    run "$TSQUERY" --addr "$CITYHALL_ADDR" --series "$HOST0_SERIES" --from "$FROM_MS" --to "$TO_MS" \
        --repeat "$REPEAT" | tee "$q"
    result cityhall raw_us "$(p50_of "$q")"
    run "$TSQUERY" --addr "$CITYHALL_ADDR" --series "$HOST0_SERIES" --from "$FROM_MS" --to "$TO_MS" \
        --agg avg --bucket-ms 3600000 --repeat "$REPEAT" | tee "$q"
    result cityhall hourly_us "$(p50_of "$q")"
    run "$TSQUERY" --addr "$CITYHALL_ADDR" --count-all cpu. --from "$FROM_MS" --to "$TO_MS" \
        --repeat $((REPEAT / 20 + 1)) | tee "$q"
    result cityhall count_all_us "$(p50_of "$q")"
    run "$TSQUERY" --addr "$CITYHALL_ADDR" --count-all cpu. --per-series --from "$FROM_MS" \
        --to "$TO_MS" --repeat $((REPEAT / 20 + 1)) | tee "$q"
    result cityhall count_all_per_series_us "$(p50_of "$q")"
    stop_pid "$CITYHALL_PID"
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK/cityhall"
fi

# --- VictoriaMetrics ---------------------------------------------------------
if wants victoria-metrics; then
    port="$(free_port)"
    vm="127.0.0.1:$port"
    start_bg "$WORK/vm.log" victoria-metrics -storageDataPath "$WORK/vm" -httpListenAddr "$vm" \
        -retentionPeriod 100y -search.disableCache
    VM_PID=$BG_PID
    wait_http "http://$vm/health"
    # The window reaches an hour before the first point: (t - w, t] would
    # leave out the points at exactly t - w.
    count_q="sum(count_over_time({__name__=~\"cpu_.*\"}[$((${HOURS%.*} + 1))h]))"
    vm_count() {
        curl -fsS -G "http://$vm/api/v1/query" --data-urlencode "query=$count_q" \
            --data-urlencode "time=$TO_S" --data-urlencode nocache=1 |
            python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)'
    }
    t0="$(now)"
    run curl -fsS --data-binary "@$DATA" "http://$vm/write"
    curl -fsS "http://$vm/internal/force_flush" >/dev/null
    for _ in $(seq 1 600); do
        [ "$(vm_count)" -ge "$POINTS" ] && break
        sleep 0.2
    done
    ingest_s="$(elapsed "$t0")"
    echo "victoria-metrics: $(vm_count) points queryable after ${ingest_s} s"
    curl -fsS "http://$vm/internal/force_merge?partition_prefix=2016" >/dev/null || true
    settle_dir "$WORK/vm"
    bytes="$(dir_bytes "$WORK/vm")"
    result victoria-metrics ingest_pps "$(awk -v p="$POINTS" -v s="$ingest_s" 'BEGIN { printf "%.0f", p / s }')"
    result victoria-metrics bytes_per_point "$(awk -v b="$bytes" -v p="$POINTS" 'BEGIN { printf "%.3f", b / p }')"
    sel="cpu_usage_user{hostname=\"host_0\"}"
    enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
    q="$WORK/q.txt"
    run python3 "$ROOT/perf/http-query.py" "$vm" \
        "/api/v1/export?match[]=$(enc "$sel")&start=$FROM_S&end=$TO_S" "$REPEAT" | tee "$q"
    result victoria-metrics raw_us "$(p50_of "$q")"
    run python3 "$ROOT/perf/http-query.py" "$vm" \
        "/api/v1/query_range?query=$(enc "avg_over_time($sel[1h])")&start=$((FROM_S + 3600))&end=$TO_S&step=3600&nocache=1" \
        "$REPEAT" | tee "$q"
    result victoria-metrics hourly_us "$(p50_of "$q")"
    run python3 "$ROOT/perf/http-query.py" "$vm" \
        "/api/v1/query?query=$(enc "$count_q")&time=$TO_S&nocache=1" $((REPEAT / 20 + 1)) | tee "$q"
    result victoria-metrics count_all_us "$(p50_of "$q")"
    stop_pid "$VM_PID"
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK/vm"
fi

# --- InfluxDB ----------------------------------------------------------------
if wants influxdb; then
    port="$(free_port)"
    ix="127.0.0.1:$port"
    mkdir -p "$WORK/influx"
    cat >"$WORK/influx.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$(free_port)"
[meta]
  dir = "$WORK/influx/meta"
[data]
  dir = "$WORK/influx/data"
  wal-dir = "$WORK/influx/wal"
  cache-snapshot-write-cold-duration = "1s"
  compact-full-write-cold-duration = "1s"
  max-series-per-database = 0
[coordinator]
  write-timeout = "10m"
[http]
  bind-address = "$ix"
  max-body-size = 0
  log-enabled = false
[monitor]
  store-enabled = false
EOF
    # InfluxDB's own "fully compacted": per shard one TSM generation, no
    # tombstone, no compaction in progress; and no WAL segment with data.
    influx_compacted() {
        local shard gens
        for shard in "$WORK"/influx/data/bench/autogen/*/; do
            [ -d "$shard" ] || return 1
            gens="$(find "$shard" -maxdepth 1 -name '*.tsm' -printf '%f\n' | sed 's/-.*//' | sort -u | wc -l)"
            [ "$gens" -eq 1 ] || return 1
            [ -z "$(find "$shard" -maxdepth 1 \( -name '*.tombstone' -o -name '*.tmp' \) -print -quit)" ] ||
                return 1
        done
        [ -z "$(find "$WORK/influx/wal" -name '*.wal' -size +0 -print -quit)" ]
    }
    start_bg "$WORK/influx.log" influxd -config "$WORK/influx.conf"
    IX_PID=$BG_PID
    wait_http "http://$ix/ping"
    curl -fsS -XPOST "http://$ix/query" --data-urlencode "q=CREATE DATABASE bench" >/dev/null
    # Batches of 10,000 lines (100,000 points), as Telegraf and TSBS send.
    mkdir -p "$WORK/influx-batches"
    split -l 10000 "$DATA" "$WORK/influx-batches/b."
    show curl --data-binary @BATCH "http://$ix/write?db=bench" "(each of $(ls "$WORK/influx-batches" | wc -l) batches)"
    t0="$(now)"
    for b in "$WORK"/influx-batches/b.*; do
        curl -fsS --data-binary "@$b" "http://$ix/write?db=bench"
    done
    ingest_s="$(elapsed "$t0")"
    rm -rf "$WORK/influx-batches"
    t0="$(now)"
    compacted=no
    for _ in $(seq 1 "$INFLUX_WAIT_S"); do
        if influx_compacted; then
            compacted=yes
            break
        fi
        sleep 1
    done
    settle_dir "$WORK/influx/data" "$WORK/influx/wal"
    wait_s="$(elapsed "$t0")"
    # Its series file (data/bench/_series) is eight segments of 4 MiB,
    # sparse: their length is not what they hold. Bytes: what the data and
    # wal directories occupy on disk (du, allocated blocks).
    bytes="$(du -s --block-size=1 "$WORK/influx/data" "$WORK/influx/wal" | awk '{ s += $1 } END { print s }')"
    tsm="$(find "$WORK/influx/data" -name '*.tsm' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
    echo "influxdb: ingest ${ingest_s} s; fully compacted: $compacted after waiting ${wait_s} s (bound ${INFLUX_WAIT_S} s);" \
        "$bytes bytes allocated in data+wal ($(dir_bytes "$WORK/influx/data" "$WORK/influx/wal") bytes of file lengths)," \
        "TSM files $tsm bytes ($(awk -v b="$tsm" -v p="$POINTS" 'BEGIN { printf "%.3f", b / p }') bytes/point)"
    find "$WORK/influx/data" "$WORK/influx/wal" -type f -printf '  %s\t%P\n' | sort -k2
    result influxdb ingest_pps "$(awk -v p="$POINTS" -v s="$ingest_s" 'BEGIN { printf "%.0f", p / s }')"
    result influxdb bytes_per_point "$(awk -v b="$bytes" -v p="$POINTS" 'BEGIN { printf "%.3f", b / p }')"
    iq() { python3 -c 'import sys, urllib.parse; print("/query?db=bench&q=" + urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
    where="hostname='host_0' AND time >= ${FROM_MS}ms AND time <= ${TO_MS}ms"
    q="$WORK/q.txt"
    run python3 "$ROOT/perf/http-query.py" "$ix" "$(iq "SELECT usage_user FROM cpu WHERE $where")" "$REPEAT" | tee "$q"
    result influxdb raw_us "$(p50_of "$q")"
    run python3 "$ROOT/perf/http-query.py" "$ix" \
        "$(iq "SELECT mean(usage_user) FROM cpu WHERE $where GROUP BY time(1h)")" "$REPEAT" | tee "$q"
    result influxdb hourly_us "$(p50_of "$q")"
    run python3 "$ROOT/perf/http-query.py" "$ix" \
        "$(iq "SELECT count(*) FROM cpu WHERE time >= ${FROM_MS}ms AND time <= ${TO_MS}ms")" \
        $((REPEAT / 20 + 1)) | tee "$q"
    result influxdb count_all_us "$(p50_of "$q")"
    stop_pid "$IX_PID"
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK/influx"
fi

# --- Prometheus --------------------------------------------------------------
if wants prometheus; then
    om="$WORK/data.om"
    t0="$(now)"
    show python3 "$ROOT/perf/lp-to-openmetrics.py" "<$DATA" ">$om"
    python3 "$ROOT/perf/lp-to-openmetrics.py" <"$DATA" >"$om"
    convert_s="$(elapsed "$t0")"
    t0="$(now)"
    run promtool tsdb create-blocks-from openmetrics "$om" "$WORK/prom" >"$WORK/promtool.log"
    ingest_s="$(elapsed "$t0")"
    rm -f "$om"
    blocks_of() { find "$WORK/prom" -mindepth 2 -maxdepth 2 -name meta.json | wc -l; }
    blocks0="$(blocks_of)"
    echo "prometheus: OFFLINE bulk load (promtool, not a server ingest): ${ingest_s} s into $blocks0 blocks" \
        "(the conversion to OpenMetrics before it: ${convert_s} s, not counted)"
    port="$(free_port)"
    pa="127.0.0.1:$port"
    printf 'global:\n  scrape_interval: 1h\nscrape_configs: []\n' >"$WORK/prometheus.yml"
    start_bg "$WORK/prometheus.log" prometheus --config.file "$WORK/prometheus.yml" \
        --storage.tsdb.path "$WORK/prom" --storage.tsdb.retention.time 100y \
        --web.listen-address "$pa"
    PROM_PID=$BG_PID
    wait_http "http://$pa/-/ready"
    # Prometheus compacts on a one-minute tick: wait for the block count to
    # drop (bounded), then for the directory to hold still.
    t0="$(now)"
    for _ in $(seq 1 "$PROM_WAIT_S"); do
        [ "$(blocks_of)" -lt "$blocks0" ] && break
        sleep 1
    done
    settle_dir "$WORK/prom"
    wait_s="$(elapsed "$t0")"
    mapfile -t block_dirs < <(find "$WORK/prom" -mindepth 2 -maxdepth 2 -name meta.json -printf '%h\n')
    bytes="$(dir_bytes "${block_dirs[@]}")"
    echo "prometheus: $(blocks_of) blocks (from $blocks0) after ${wait_s} s; blocks $bytes bytes," \
        "whole storage dir $(dir_bytes "$WORK/prom") bytes"
    result prometheus ingest_pps "$(awk -v p="$POINTS" -v s="$ingest_s" 'BEGIN { printf "%.0f", p / s }')"
    result prometheus bytes_per_point "$(awk -v b="$bytes" -v p="$POINTS" 'BEGIN { printf "%.3f", b / p }')"
    enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
    # Windows are [t - w, t] in Prometheus 2: evaluated at the last
    # millisecond of the day (and of each hour), they hold exactly its points.
    end_t="$((TO_MS / 1000)).$(printf '%03d' $((TO_MS % 1000)))"
    sel="cpu_usage_user{hostname=\"host_0\"}"
    # One sum per metric: count_over_time drops the metric name, and
    # Prometheus refuses a vector whose series then share a label set
    # (VictoriaMetrics lets them through).
    count_q="$(head -1 "$DATA" | awk '{ print $2 }' | tr ',' '\n' | sed 's/=.*//' |
        while read -r f; do printf 'sum(count_over_time(cpu_%s[%sh])) + ' "$f" "${HOURS%.*}"; done |
        sed 's/ + $//')"
    got="$(curl -fsS -G "http://$pa/api/v1/query" --data-urlencode "query=$count_q" \
        --data-urlencode "time=$end_t" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)')"
    echo "prometheus: $got points counted (of $POINTS)"
    q="$WORK/q.txt"
    run python3 "$ROOT/perf/http-query.py" "$pa" \
        "/api/v1/query?query=$(enc "$sel[${HOURS%.*}h]")&time=$end_t" "$REPEAT" | tee "$q"
    result prometheus raw_us "$(p50_of "$q")"
    run python3 "$ROOT/perf/http-query.py" "$pa" \
        "/api/v1/query_range?query=$(enc "avg_over_time($sel[1h])")&start=$((FROM_S + 3599)).999&end=$end_t&step=3600" \
        "$REPEAT" | tee "$q"
    result prometheus hourly_us "$(p50_of "$q")"
    run python3 "$ROOT/perf/http-query.py" "$pa" \
        "/api/v1/query?query=$(enc "$count_q")&time=$end_t" $((REPEAT / 20 + 1)) | tee "$q"
    result prometheus count_all_us "$(p50_of "$q")"
    stop_pid "$PROM_PID"
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK/prom"
fi

# --- Table -------------------------------------------------------------------
echo
echo "| metric | $(for p in $PEERS; do printf '%s | ' "$p"; done)"
echo "| --- |$(for _ in $PEERS; do printf ' ---: |'; done)"
for m in bytes_per_point ingest_pps raw_us hourly_us count_all_us count_all_per_series_us; do
    printf '| %s |' "$m"
    for p in $PEERS; do
        printf ' %s |' "$(awk -F'\t' -v p="$p" -v m="$m" '$1 == p && $2 == m { print $3 }' "$RESULTS")"
    done
    echo
done
echo "(ingest_pps: points per second, prometheus an offline bulk load; *_us: p50 latency in microseconds)"
