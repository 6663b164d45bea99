"""Deploy benchmark, measured side by side in one run on a fresh `bench` lab (3 hosts).

Prints: first-deploy time for one host; no-op re-deploy time for one host and for three
hosts, and their ratio (goal <= 1.5x); pgbench TPS of the tuned config over Debian's stock
config on the same lab host (a stock cluster beside the tuned one, only one running at a
time), runs interleaved.

    .venv/bin/python bench/deploy.py [--keep] [--seconds 20] [--scale 30]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ["PGOPS_LAB"] = "bench"
sys.path.insert(0, str(ROOT))

from pgops.lab import Lab  # noqa: E402

PGOPS = str(Path(sys.executable).parent / "pgops")


def timed(*args: str) -> float:
    t0 = time.monotonic()
    r = subprocess.run([PGOPS, *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"pgops {' '.join(args)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return time.monotonic() - t0


CLUSTERS = {5432: "main", 5433: "stock"}


def pgbench(lab: Lab, port: int, seconds: int) -> float:
    """One measured run with only this cluster running (they share the host's 2 GiB, page
    cache included), after a short warm-up run that is discarded."""
    other = CLUSTERS[5433 if port == 5432 else 5432]
    lab.ssh("db1", f"systemctl stop postgresql@17-{other} && "
                   f"systemctl start postgresql@17-{CLUSTERS[port]}")
    run = (f"cd / && runuser -u postgres -- /usr/lib/postgresql/17/bin/pgbench -p {port} "
           f"-c 8 -j 2 -n bench -T ")
    lab.ssh("db1", run + "5", timeout=120)
    r = lab.ssh("db1", run + str(seconds), timeout=seconds + 120)
    return float(re.search(r"tps = ([\d.]+)", r.stdout).group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep the bench lab afterwards")
    ap.add_argument("--seconds", type=int, default=20, help="length of each pgbench run")
    ap.add_argument("--scale", type=int, default=30, help="pgbench scale (15 MB per unit)")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    lab = Lab("bench")
    subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)
    try:
        up = timed("lab", "up", "--hosts", "3", "--no-backup")
        first = timed("deploy", "--limit", "db1")
        noop1 = [timed("deploy", "--limit", "db1") for _ in range(a.rounds)]
        timed("deploy")  # first deploy of db2 and db3
        noop3 = [timed("deploy") for _ in range(a.rounds)]
        n1, n3 = statistics.median(noop1), statistics.median(noop3)
        print(f"lab up (3 hosts, image cached)     {up:6.1f} s")
        print(f"first deploy, 1 host                {first:6.1f} s")
        print(f"no-op re-deploy, 1 host (median)    {n1:6.1f} s   runs {[round(x, 1) for x in noop1]}")
        print(f"no-op re-deploy, 3 hosts (median)   {n3:6.1f} s   runs {[round(x, 1) for x in noop3]}")
        print(f"ratio 3 hosts / 1 host              {n3 / n1:6.2f} x  (goal <= 1.5)")

        # Stock Debian cluster beside the tuned one, same host, same data.
        lab.ssh("db1", "pg_lsclusters | grep -q '^17 *stock' || "
                       "pg_createcluster 17 stock --port 5433 --start >/dev/null")
        for port in (5432, 5433):
            lab.ssh("db1", f"systemctl start postgresql@17-{CLUSTERS[port]}")
            lab.ssh("db1", f"cd / && runuser -u postgres -- sh -c 'dropdb -p {port} --if-exists bench; "
                           f"createdb -p {port} bench && /usr/lib/postgresql/17/bin/pgbench -p {port} "
                           f"-i -q -s {a.scale} bench' >/dev/null 2>&1", timeout=900)
        tuned, stock = [], []
        for _ in range(a.rounds):  # interleaved, so drift on a noisy machine hits both
            tuned.append(pgbench(lab, 5432, a.seconds))
            stock.append(pgbench(lab, 5433, a.seconds))
        t, s = statistics.median(tuned), statistics.median(stock)
        print(f"pgbench TPS tuned (median)          {t:8.0f}   runs {[round(x) for x in tuned]}")
        print(f"pgbench TPS stock (median)          {s:8.0f}   runs {[round(x) for x in stock]}")
        print(f"ratio tuned / stock                 {t / s:6.2f} x  (scale {a.scale}, 8 clients, "
              f"{a.seconds} s runs, 1 CPU / 2 GiB host, one cluster running at a time)")
        lab.ssh("db1", "systemctl start postgresql@17-main")
    finally:
        if not a.keep:
            subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
