#!/usr/bin/env python3
"""perf/plot-hgrm.py: several HdrHistogram .hgrm percentile distributions
(as cityhall-loadgen and peer-bench write them with --hdr-out) in one PNG,
drawn like HdrHistogram's plotter: the x axis is 1/(1-percentile) on a log
scale, labelled 0%, 90%, 99%, 99.9%, ..., the y axis the latency in
microseconds (log scale unless --linear).

Usage:
    perf/plot-hgrm.py -o OUT.png [--title TITLE] [--linear] LABEL=FILE.hgrm ...

A bare FILE.hgrm is labelled with its file name. Draws with matplotlib
(`pip install matplotlib`); without it, with gnuplot (Debian `gnuplot-nox`)
if that is installed; exits 1 naming what is missing otherwise.
"""

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile

# Percentiles drawn past this many nines are not meaningful for the
# sample sizes here; the 100% point is drawn at the last tick's x.
NINES_MAX = 6


def read_hgrm(path):
    """[(percentile, value_us)] of the data lines of a .hgrm file.

    A data line is "Value Percentile TotalCount 1/(1-Percentile)"; the 100%
    line has no fourth column. Header, blank and "#[" lines are skipped.
    """
    points = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.split()
            if len(cols) not in (3, 4) or line.startswith("#"):
                continue
            try:
                value, pct = float(cols[0]), float(cols[1])
            except ValueError:
                continue
            points.append((pct, value))
    if not points:
        raise SystemExit(f"plot-hgrm: no data lines in {path}")
    return points


def x_of(pct, x_max):
    """1/(1-p), capped at x_max (the 100% point)."""
    if pct >= 1.0:
        return x_max
    return min(1.0 / (1.0 - pct), x_max)


def total_count(path):
    """The "Total count" of a .hgrm footer, or None."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if "Total count" in line:
                try:
                    return int(line.split("=")[-1].strip(" ]\n"))
                except ValueError:
                    return None
    return None


def series(specs):
    """[(legend label, points)] of LABEL=FILE or FILE arguments; the
    label gets the sample count."""
    out = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            label, path = os.path.basename(spec), spec
        n = total_count(path)
        if n is not None:
            label = f"{label} (n={n:,})"
        out.append((label, read_hgrm(path)))
    return out


def x_limit(data):
    """The x of the largest finite 1/(1-p) over all series, times 10, at
    most 10^NINES_MAX: where the 100% points are drawn."""
    best = 10.0
    for _, pts in data:
        for pct, _ in pts:
            if pct < 1.0:
                best = max(best, 1.0 / (1.0 - pct))
    nines = min(NINES_MAX, math.ceil(math.log10(best)) + 1)
    return 10.0 ** nines


def tick_labels(x_max):
    ticks, labels = [], []
    n = 0
    while 10.0 ** n <= x_max:
        ticks.append(10.0 ** n)
        labels.append("0%" if n == 0 else f"{100 - 100 / 10 ** n:.{max(0, n - 2)}f}%")
        n += 1
    return ticks, labels


def plot_matplotlib(data, out, title, linear):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_max = x_limit(data)
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for label, pts in data:
        xs = [x_of(p, x_max) for p, _ in pts]
        ys = [max(v, 1e-3) for _, v in pts]
        ax.plot(xs, ys, label=label, linewidth=1.6)
    ax.set_xscale("log")
    if not linear:
        ax.set_yscale("log")
    ticks, labels = tick_labels(x_max)
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    ax.set_xlim(1, x_max)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (us)" + ("" if linear else ", log scale"))
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", axis="y", alpha=0.15)
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_gnuplot(data, out, title, linear):
    x_max = x_limit(data)
    tmp = tempfile.mkdtemp(prefix="plot-hgrm.")
    plots = []
    for i, (label, pts) in enumerate(data):
        dat = os.path.join(tmp, f"{i}.dat")
        with open(dat, "w", encoding="utf-8") as f:
            for p, v in pts:
                f.write(f"{x_of(p, x_max)} {max(v, 1e-3)}\n")
        plots.append(f"'{dat}' using 1:2 with lines lw 2 title '{label}'")
    ticks, labels = tick_labels(x_max)
    xtics = ", ".join(f'"{l}" {t}' for t, l in zip(ticks, labels))
    script = "\n".join(
        [
            "set terminal pngcairo size 990,605" if _has_pngcairo() else "set terminal png size 990,605",
            f"set output '{out}'",
            f"set title '{title}'",
            "set logscale x",
            "" if linear else "set logscale y",
            f"set xrange [1:{x_max}]",
            f"set xtics ({xtics})",
            "set xlabel 'percentile'",
            "set ylabel 'latency (us)'",
            "set grid",
            "set key top left",
            "plot " + ", ".join(plots),
        ]
    )
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    shutil.rmtree(tmp, ignore_errors=True)


def _has_pngcairo():
    r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
    return "pngcairo" in (r.stdout + r.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, help="PNG to write")
    ap.add_argument("--title", default="latency by percentile")
    ap.add_argument("--linear", action="store_true", help="linear latency axis")
    ap.add_argument("hgrm", nargs="+", help="LABEL=FILE.hgrm or FILE.hgrm")
    args = ap.parse_args()
    data = series(args.hgrm)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if shutil.which("gnuplot"):
            plot_gnuplot(data, args.output, args.title, args.linear)
            return
        sys.exit("plot-hgrm: needs matplotlib (pip install matplotlib) or gnuplot (apt-get install gnuplot-nox)")
    plot_matplotlib(data, args.output, args.title, args.linear)


if __name__ == "__main__":
    main()
