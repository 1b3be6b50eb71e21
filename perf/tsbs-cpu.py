#!/usr/bin/env python3
"""Writes data shaped like TSBS's "cpu-only" devops workload as InfluxDB
line protocol, the input of perf/ts-vs-peers.sh.

Per host one line every 10 s with the ten fields usage_user ... usage_guest_nice;
each field is an independent random walk that starts uniform in [0, 100),
steps by a standard normal draw, is clamped to [0, 100] and is emitted
truncated to an integer (`58i`), as TSBS emits it. Tags are TSBS's ten
(hostname, region, datacenter, rack, os, arch, team, service,
service_version, service_environment). Time starts at 2016-01-01T00:00:00Z,
as in TSBS. 100 hosts over one day = 864,000 lines, 8,640,000 points.

Usage: perf/tsbs-cpu.py [--hosts 100] [--hours 24] [--seed 1] > cpu.lp
"""

import argparse
import random
import sys

FIELDS = [
    "usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait",
    "usage_irq", "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice",
]
REGIONS = {
    "us-east-1": ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"],
    "us-west-1": ["us-west-1a", "us-west-1b"],
    "us-west-2": ["us-west-2a", "us-west-2b", "us-west-2c"],
    "eu-west-1": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
    "eu-central-1": ["eu-central-1a", "eu-central-1b"],
    "ap-southeast-1": ["ap-southeast-1a", "ap-southeast-1b"],
    "ap-southeast-2": ["ap-southeast-2a", "ap-southeast-2b"],
    "ap-northeast-1": ["ap-northeast-1a", "ap-northeast-1c"],
    "sa-east-1": ["sa-east-1a", "sa-east-1b", "sa-east-1c"],
}
START_NS = 1451606400 * 10**9  # 2016-01-01T00:00:00Z
STEP_NS = 10 * 10**9


def host_tags(rng, i):
    region = rng.choice(sorted(REGIONS))
    return ",".join([
        f"hostname=host_{i}",
        f"region={region}",
        f"datacenter={rng.choice(REGIONS[region])}",
        f"rack={rng.randrange(100)}",
        f"os={rng.choice(['Ubuntu16.10', 'Ubuntu16.04LTS', 'Ubuntu15.10'])}",
        f"arch={rng.choice(['x64', 'x86'])}",
        f"team={rng.choice(['SF', 'NYC', 'LON', 'CHI'])}",
        f"service={rng.randrange(20)}",
        f"service_version={rng.randrange(2)}",
        f"service_environment={rng.choice(['production', 'staging', 'test'])}",
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    heads = [f"cpu,{host_tags(rng, i)} " for i in range(args.hosts)]
    walks = [[rng.uniform(0, 100) for _ in FIELDS] for _ in range(args.hosts)]
    steps = int(args.hours * 3600 / 10)
    out = sys.stdout
    gauss = rng.gauss
    buf = []
    for s in range(steps):
        ts = START_NS + s * STEP_NS
        for h in range(args.hosts):
            w = walks[h]
            parts = []
            for f in range(len(FIELDS)):
                v = w[f] + gauss(0.0, 1.0)
                v = 0.0 if v < 0.0 else (100.0 if v > 100.0 else v)
                w[f] = v
                parts.append(f"{FIELDS[f]}={int(v)}i")
            buf.append(f"{heads[h]}{','.join(parts)} {ts}\n")
        if len(buf) >= 10000:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))


if __name__ == "__main__":
    main()
