#!/usr/bin/env bash
# perf/agent-cpu.sh: what the monitoring agent costs per sample, next to
# Prometheus' node_exporter doing the same job on the same machine in the
# same run (one scrape of its /metrics = one sample).
#
#   cityhall agent   `cityhall agent --interval $INTERVAL --samples $SAMPLES`
#                    against a release server (self-monitoring off), each
#                    sample written durably as one TS_ADD. Measured: the
#                    agent's own getrusage figure for its sampling thread
#                    (its stop summary), the whole process's user + system
#                    time (bash `time`), and the server's CPU time over the
#                    run (/proc/PID/stat), i.e. what storing a sample costs.
#   in the server    `cityhall server --self-monitor $INTERVAL --agent-interval
#                    $INTERVAL` for SAMPLES x INTERVAL: the getrusage summaries
#                    of both threads (writing through the library, no socket).
#   cityhall --once  `perf stat -r $ONCE_RUNS cityhall agent --once`: a whole
#                    process per sample (start, two /proc/stat readings,
#                    connect, one write), task-clock.
#   node_exporter    Debian's prometheus-node-exporter with its default
#                    collectors, scraped $SAMPLES times with curl every
#                    $INTERVAL; its CPU time over the scrapes, and the
#                    samples in one scrape (lines that are not comments).
#
# Usage: perf/agent-cpu.sh   (SAMPLES=600 INTERVAL=100ms ONCE_RUNS=20)
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

SAMPLES="${SAMPLES:-600}"
INTERVAL="${INTERVAL:-100ms}"
ONCE_RUNS="${ONCE_RUNS:-20}"
interval_s="$(awk -v i="$INTERVAL" 'BEGIN { if (i ~ /ms$/) print substr(i, 1, length(i) - 2) / 1000; else print substr(i, 1, length(i) - 1) }')"

ensure_packages prometheus-node-exporter prometheus-node-exporter curl curl perf linux-perf
[ -n "${SKIP_BUILD:-}" ] || build_release
make_work_dir

start_cityhall "$WORK/db" --self-monitor 0
server_before="$(cpu_seconds "$CITYHALL_PID")"
timed "$WORK/agent" "$CITYHALL" agent --addr "$CITYHALL_ADDR" --interval "$INTERVAL" --samples "$SAMPLES"
server_after="$(cpu_seconds "$CITYHALL_PID")"
agent_cpu="$CLIENT_CPU"
summary="$(grep 'stopped:' "$WORK/agent.err")"
thread_ms="$(sed -n 's/.*CPU \([0-9.]*\) ms a sample.*/\1/p' <<<"$summary")"
points="$(sed -n 's/.*points, \([0-9.]*\) a sample.*/\1/p' <<<"$summary")"

show perf stat -r "$ONCE_RUNS" -x, -e task-clock "$CITYHALL" agent --once --interval "$INTERVAL" --addr "$CITYHALL_ADDR"
perf stat -r "$ONCE_RUNS" -x, -e task-clock -o "$WORK/once.perf" \
    "$CITYHALL" agent --once --interval "$INTERVAL" --addr "$CITYHALL_ADDR" >/dev/null
once_ms="$(awk -F, '/task-clock/ { printf "%.2f", $1 }' "$WORK/once.perf")"
stop_pid "$CITYHALL_PID"

# The same agent and self-monitoring inside a server (no connection):
# their threads' getrusage summaries when the server stops.
start_cityhall "$WORK/db2" --self-monitor "$INTERVAL" --agent-interval "$INTERVAL"
show sleep "$(awk -v n="$SAMPLES" -v i="$interval_s" 'BEGIN { print n * i }')"
sleep "$(awk -v n="$SAMPLES" -v i="$interval_s" 'BEGIN { print n * i }')"
stop_pid "$CITYHALL_PID"
inproc="$(grep '^cityhall agent: stopped:' "$WORK/db2.log")"
selfmon="$(grep '^cityhall self-monitor: stopped:' "$WORK/db2.log")"
inproc_ms="$(sed -n 's/.*CPU \([0-9.]*\) ms a sample.*/\1/p' <<<"$inproc")"
selfmon_ms="$(sed -n 's/.*CPU \([0-9.]*\) ms a sample.*/\1/p' <<<"$selfmon")"
selfmon_points="$(sed -n 's/.*points, \([0-9.]*\) a sample.*/\1/p' <<<"$selfmon")"

port="$(free_port)"
start_bg "$WORK/node_exporter.log" prometheus-node-exporter --web.listen-address="127.0.0.1:$port"
ne_pid=$BG_PID
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/metrics" -o "$WORK/scrape" && break
    sleep 0.1
done
ne_before="$(cpu_seconds "$ne_pid")"
show curl -sf "http://127.0.0.1:$port/metrics" "x $SAMPLES, every $INTERVAL"
for _ in $(seq 1 "$SAMPLES"); do
    curl -sf "http://127.0.0.1:$port/metrics" -o "$WORK/scrape"
    sleep "$interval_s"
done
ne_after="$(cpu_seconds "$ne_pid")"
ne_points="$(grep -vc '^#' "$WORK/scrape")"
stop_pid "$ne_pid"

per_sample() { awk -v a="$1" -v b="$2" -v n="$SAMPLES" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }'; }
agent_ms="$(awk -v c="$agent_cpu" -v n="$SAMPLES" 'BEGIN { printf "%.2f", c * 1000 / n }')"
server_ms="$(per_sample "$server_before" "$server_after")"
ne_ms="$(per_sample "$ne_before" "$ne_after")"

echo
echo "agent: $summary"
echo "in the server: $inproc"
echo "in the server: $selfmon"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| what | CPU ms per sample | points per sample |"
echo "| --- | ---: | ---: |"
echo "| cityhall agent, sampling thread (getrusage) | $thread_ms | $points |"
echo "| cityhall agent, whole process (user + system) | $agent_ms | $points |"
echo "| cityhall server, storing the samples durably | $server_ms | |"
echo "| cityhall agent --once, whole process (perf stat task-clock) | $once_ms | |"
echo "| agent inside the server (--agent-interval), its thread | $inproc_ms | $points |"
echo "| self-monitoring (--self-monitor), its thread | $selfmon_ms | $selfmon_points |"
echo "| node_exporter, per scrape | $ne_ms | $ne_points |"
echo
echo "agent process / node_exporter: $(ratio "$agent_ms" "$ne_ms")"
