#!/usr/bin/env python3
"""Times one HTTP GET repeated on one keep-alive connection: the query side
of perf/ts-vs-peers.sh for VictoriaMetrics and InfluxDB.

Usage: perf/http-query.py HOST:PORT PATH [REPEAT]
Prints: the answer's size in bytes and latency percentiles in microseconds,
after one untimed warm-up; exits 1 if an answer is not 200.
"""

import http.client
import sys
import time


def main():
    hostport, path = sys.argv[1], sys.argv[2]
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    times = []
    size = 0
    for i in range(repeat + 1):
        start = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - start
        if resp.status != 200:
            print(f"HTTP {resp.status}: {body[:300]!r}", file=sys.stderr)
            sys.exit(1)
        if i > 0:
            times.append(elapsed * 1e6)
        size = len(body)
    times.sort()

    def q(p):
        return times[min(len(times) - 1, int(p * len(times)))]

    print(f"{size} bytes; latency us: p50 {q(0.5):.0f} p90 {q(0.9):.0f} "
          f"p99 {q(0.99):.0f} max {times[-1]:.0f} (mean {sum(times) / len(times):.1f}, "
          f"{len(times)} runs)")


if __name__ == "__main__":
    main()
