# shellcheck shell=bash disable=SC2034 # (variables set here are read by the scripts)
# Helpers shared by the perf/ scripts; sourced by them, not run.
#
# Every command that produces a number is echoed first ("+ cmd ..."), so
# the output of a script carries the exact commands behind its figures.
# Data directories live under $PERF_DATA_DIR (default: target/perf-data in
# the checkout, on the repository's own disk; /tmp is tmpfs on some
# machines, where a sync costs nothing and durable numbers mean nothing).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CITYHALL="$TARGET_DIR/release/cityhall"
LOADGEN="$TARGET_DIR/release/cityhall-loadgen"
PERF_DATA_DIR="${PERF_DATA_DIR:-$ROOT/target/perf-data}"
STARTED_PIDS=()
WORK=""

# Prints a command, shell-quoted, as it is about to run.
show() {
    local a out=""
    for a in "$@"; do
        if [[ "$a" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
            out+=" $a"
        else
            out+=" $(printf '%q' "$a")"
        fi
    done
    printf '+%s\n' "$out" >&2
}

# Prints then runs a command.
run() {
    show "$@"
    "$@"
}

# ensure_packages CMD PACKAGE [CMD PACKAGE ...]: installs, with apt-get, the
# Debian package of every command that is missing.
ensure_packages() {
    local missing=() sudo=""
    while [ $# -ge 2 ]; do
        command -v "$1" >/dev/null 2>&1 || missing+=("$2")
        shift 2
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    run $sudo apt-get update -q
    run $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# Builds the server and the load generator in release mode.
build_release() {
    (cd "$ROOT" && run cargo build --release -p cityhall -p cityhall-loadgen)
}

# Makes a fresh work directory under $PERF_DATA_DIR, removed on exit
# together with every process started through start_bg.
make_work_dir() {
    mkdir -p "$PERF_DATA_DIR"
    WORK="$(mktemp -d "$PERF_DATA_DIR/run.XXXXXX")"
    trap cleanup EXIT
}

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$WORK" ] && [ -z "${KEEP_WORK:-}" ]; then
        rm -rf "$WORK"
    fi
}

# start_bg LOG CMD ARGS...: starts a command in the background with its
# stderr and stdout in LOG; its pid is in BG_PID.
start_bg() {
    local log="$1"
    shift
    show "$@"
    "$@" >"$log" 2>&1 &
    BG_PID=$!
    STARTED_PIDS+=("$BG_PID")
}

# stop_pid PID: SIGTERM, then waits for it.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# start_cityhall DATA_DIR [server flags]: a release server on a free
# loopback port; sets CITYHALL_ADDR and CITYHALL_PID.
start_cityhall() {
    local dir="$1" log="$1.log" i
    shift
    start_bg "$log" "$CITYHALL" server --listen 127.0.0.1:0 --data-dir "$dir" "$@"
    CITYHALL_PID=$BG_PID
    for i in $(seq 1 300); do
        CITYHALL_ADDR="$(sed -n 's/^cityhall: listening on \([^ ]*\).*/\1/p' "$log")"
        if [ -n "$CITYHALL_ADDR" ]; then
            sed -n 's/^cityhall: //p' "$log" | head -1 >&2
            return 0
        fi
        kill -0 "$CITYHALL_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "cityhall server did not start; its log:" >&2
    cat "$log" >&2
    return 1
}

# cpu_seconds PID: user + system CPU time of a process so far (all its
# threads), in seconds.
cpu_seconds() {
    sed 's/.*) //' "/proc/$1/stat" |
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }'
}

# timed OUT CMD ARGS...: prints and runs a command with its stdout in OUT
# and its stderr in OUT.err (then shown); sets CLIENT_CPU to the user +
# system CPU seconds it used.
timed() {
    local out="$1" t TIMEFORMAT='%U %S'
    shift
    show "$@"
    t="$({ time "$@" >"$out" 2>"$out.err"; } 2>&1)" || {
        cat "$out.err" >&2
        return 1
    }
    cat "$out.err" >&2
    CLIENT_CPU="$(awk '{ printf "%.2f", $1 + $2 }' <<<"$t")"
}

# A TCP port on 127.0.0.1 that nothing answers on, below the ephemeral
# range (a port some client connection holds cannot be listened on).
free_port() {
    local port _ low
    low="$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
    [ "$low" -gt 11000 ] || low=32768
    for _ in $(seq 1 100); do
        port=$((10000 + RANDOM % (low - 10000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# The file system under a directory: type and device.
fs_of() {
    df -PT "$1" | awk 'NR == 2 { print $2 " on " $1 }'
}

# ratio A B: A / B with two decimals ("-" when B is zero or missing).
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else printf "-" }'
}
