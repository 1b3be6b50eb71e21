#!/usr/bin/env bash
# perf/flamegraph.sh: where an embedded load run spends its CPU time.
#
# Records `cityhall-loadgen --embedded` (release build, which keeps line
# tables: debug = 1) under `perf record` with call graphs, prints the top
# symbols from `perf report --stdio`, and, when inferno is installed
# (`cargo install inferno`), writes a flame graph SVG.
#
# Usage: perf/flamegraph.sh WORKLOAD [loadgen args...]
#   perf/flamegraph.sh fillrandom --num 500k --connections 4
#   perf/flamegraph.sh readrandom --workload fillseq,readrandom --num 1m
# The first argument becomes `--workload WORKLOAD` unless the extra
# arguments give their own --workload. Default length: --duration 10s.
#
# Environment: PERF_EVENT (default cpu-clock, which works in VMs without
# hardware counters; `cycles` is finer where available), PERF_CALLGRAPH
# (default dwarf: Rust release builds omit frame pointers; `fp` is cheaper
# where they are kept), PERF_FREQ (samples per second, default 999),
# TOP (lines of the report, default 40), OUT (output directory, default
# target/perf-data/flamegraph-WORKLOAD-DATE).
set -euo pipefail
# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

if [ $# -lt 1 ]; then
    echo "usage: $0 WORKLOAD [cityhall-loadgen args...]" >&2
    exit 2
fi
WORKLOAD="$1"
shift
PERF_EVENT="${PERF_EVENT:-cpu-clock}"
PERF_CALLGRAPH="${PERF_CALLGRAPH:-dwarf}"
PERF_FREQ="${PERF_FREQ:-999}"
TOP="${TOP:-40}"
OUT="${OUT:-$PERF_DATA_DIR/flamegraph-$WORKLOAD-$(date -u +%Y%m%dT%H%M%SZ)}"

ensure_packages perf linux-perf
build_release
mkdir -p "$OUT"
make_work_dir

args=("$@")
has_workload=0
has_length=0
for a in "${args[@]}"; do
    case "$a" in
    --workload | --workload=* | --benchmarks | --benchmarks=*) has_workload=1 ;;
    --num | --num=* | --duration | --duration=*) has_length=1 ;;
    esac
done
[ "$has_workload" = 1 ] || args=(--workload "$WORKLOAD" "${args[@]}")
[ "$has_length" = 1 ] || args+=(--duration 10s)
args+=(--embedded "$WORK/db")

"$LOADGEN" --setup-only "${args[@]}"
echo "  Profiler:    $(perf --version), event $PERF_EVENT, call graph $PERF_CALLGRAPH, $PERF_FREQ Hz"
echo

run perf record -e "$PERF_EVENT" -F "$PERF_FREQ" --call-graph "$PERF_CALLGRAPH" \
    -o "$OUT/perf.data" -- "$LOADGEN" "${args[@]}"

echo
echo "Top symbols by self time:"
run perf report -i "$OUT/perf.data" --stdio --no-children --sort symbol \
    --percent-limit 0.5 -g none 2>/dev/null | grep -v '^#' | grep -v '^$' |
    sed 's/[[:space:]-]*$//' | head -n "$TOP"

if command -v inferno-collapse-perf >/dev/null 2>&1 && command -v inferno-flamegraph >/dev/null 2>&1; then
    printf '+ perf script -i %q | inferno-collapse-perf >%q\n' "$OUT/perf.data" "$OUT/stacks.folded" >&2
    printf '+ inferno-flamegraph <%q >%q\n' "$OUT/stacks.folded" "$OUT/flamegraph.svg" >&2
    perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf >"$OUT/stacks.folded"
    inferno-flamegraph --title "cityhall-loadgen ${args[*]}" <"$OUT/stacks.folded" >"$OUT/flamegraph.svg"
    echo "Flame graph: $OUT/flamegraph.svg"
else
    echo "No flame graph: inferno is not installed (cargo install inferno)."
fi
echo "Profile: $OUT/perf.data (perf report -i $OUT/perf.data)"
