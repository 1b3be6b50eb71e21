#!/usr/bin/env python3
"""Converts InfluxDB line protocol (as perf/tsbs-cpu.py writes it) to
OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`, the
Prometheus side of perf/ts-vs-peers.sh. Streams: one input line at a time.

Each numeric field of `measurement,k=v,... f1=1i,f2=2.5 TIME_NS` becomes
the sample `measurement_f1{k="v",...} 1 TIME_S` (the series CityHall names
`measurement.f1{k=v,...}` and VictoriaMetrics `measurement_f1`), with the
timestamp in seconds (decimals only when it is not a whole second). String
and boolean fields are skipped. The output ends with `# EOF`.

Metric families are interleaved (every line of the input carries ten),
which OpenMetrics frowns on and promtool accepts: it reads the file once per
block range and appends each sample where it belongs.

Usage: perf/lp-to-openmetrics.py < in.lp > out.om
"""

import re
import sys

NAME_BAD = re.compile(r"[^a-zA-Z0-9_:]")


def metric_name(measurement, field):
    name = NAME_BAD.sub("_", f"{measurement}_{field}")
    return name if not name[0].isdigit() else "_" + name


def escape(v):
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def seconds(ns_text):
    ns = int(ns_text)
    s, frac = divmod(ns, 10**9)
    return str(s) if frac == 0 else f"{s}.{frac:09d}".rstrip("0")


def value(text):
    if text.endswith("i") or text.endswith("u"):
        return text[:-1]
    if text in ("t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"):
        return None
    if text.startswith('"'):
        return None
    return text


def convert(line, out, lineno):
    # This reads what perf/tsbs-cpu.py writes: no escaped spaces, commas or
    # quotes inside tags or fields.
    try:
        series, fields, ts = line.split(" ")
    except ValueError:
        raise SystemExit(f"line {lineno}: expected `series fields timestamp`: {line[:200]!r}")
    measurement, *tags = series.split(",")
    labels = []
    for t in tags:
        k, sep, v = t.partition("=")
        if not sep:
            raise SystemExit(f"line {lineno}: tag {t!r} has no `=`")
        labels.append(f'{NAME_BAD.sub("_", k)}="{escape(v)}"')
    label_text = "{" + ",".join(labels) + "}" if labels else ""
    stamp = seconds(ts)
    for f in fields.split(","):
        k, sep, v = f.partition("=")
        if not sep:
            raise SystemExit(f"line {lineno}: field {f!r} has no `=`")
        v = value(v)
        if v is not None:
            out.append(f"{metric_name(measurement, k)}{label_text} {v} {stamp}\n")


def main():
    out = []
    write = sys.stdout.write
    for n, line in enumerate(sys.stdin, 1):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        convert(line, out, n)
        if len(out) >= 100_000:
            write("".join(out))
            out.clear()
    out.append("# EOF\n")
    write("".join(out))


if __name__ == "__main__":
    main()
