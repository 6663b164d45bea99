"""Deploy benchmark, measured side by side in one run on a fresh `bench` lab (6 database
hosts, no repository host).

Prints: first-deploy and no-op re-deploy times for 1, 3 and 6 hosts (the no-ops' ratios to
one host: goal 6 hosts <= 1.5x); the one-host no-op against a raw-pyinfra deploy of the same
kind of work with pyinfra's shipped operations (`bench/reference_deploy.py`, runs
interleaved: goal <= 1.2x); then pgbench TPS of the tuned config over Debian's stock config on
the same lab host (a stock cluster beside the tuned one, only one running at a time), runs
interleaved (`--no-pgbench` skips it).

    .venv/bin/python bench/deploy.py [--keep] [--no-pgbench] [--rounds 5] [--seconds 20] [--scale 30]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ["PGOPS_LAB"] = "bench"
sys.path.insert(0, str(ROOT))

from pgops.lab import Lab  # noqa: E402

PGOPS = str(Path(sys.executable).parent / "pgops")
PYINFRA = str(Path(sys.executable).parent / "pyinfra")


def timed(*args: str, cmd: list[str] | None = None, env: dict | None = None) -> float:
    """Seconds `pgops ARGS` (or `cmd`) took; the benchmark stops on a failure."""
    argv = cmd or [PGOPS, *args]
    t0 = time.monotonic()
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if r.returncode:
        sys.exit(f"{' '.join(argv)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return time.monotonic() - t0


def first_hosts(directory: Path, n: int) -> str:
    """An inventory of the lab's first `n` database hosts, with the lab's group data."""
    if not (directory / "group_data").exists():
        (directory / "group_data").symlink_to(ROOT / "inventory" / "group_data")
    path = directory / f"first{n}.py"
    path.write_text("from pgops.lab.inventory import db_servers as _db\n"
                    "_hosts, _data = _db()\n"
                    f"db_servers = (_hosts[:{n}], _data)\n")
    return str(path)


def runs(xs: list[float]) -> str:
    return f"{statistics.median(xs):6.2f} s   runs {[round(x, 2) for x in xs]}"


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


def deploy_times(rounds: int, tmp: Path) -> None:
    inv = {n: first_hosts(tmp, n) for n in (1, 3, 6)}
    ref_env = {"PGOPS_BENCH_REF_PASSWORD": secrets.token_urlsafe(18)}
    reference = [PYINFRA, inv[1], "bench/reference_deploy.py", "-y"]
    noop: dict[int, list[float]] = {}
    ref: list[float] = []
    for n in (1, 3, 6):
        first = timed("deploy", "-i", inv[n])
        print(f"first deploy, {n} host(s)                 {first:6.1f} s"
              + ("" if n == 1 else f"   ({n - (1 if n == 3 else 3)} hosts new)"))
        if n == 1:
            print(f"first raw-pyinfra reference deploy        {timed(cmd=reference, env=ref_env):6.1f} s")
            noop[1] = []
            for _ in range(rounds):  # interleaved: drift on a noisy machine hits both
                noop[1].append(timed("deploy", "-i", inv[1]))
                ref.append(timed(cmd=reference, env=ref_env))
        else:
            noop[n] = [timed("deploy", "-i", inv[n]) for _ in range(rounds)]
    for n in (1, 3, 6):
        print(f"no-op re-deploy, {n} host(s) (median)     {runs(noop[n])}")
    print(f"raw-pyinfra reference no-op (median)     {runs(ref)}")
    one = statistics.median(noop[1])
    print(f"ratio pgops / raw pyinfra, 1 host         {one / statistics.median(ref):6.2f} x  (goal <= 1.2)")
    for n in (3, 6):
        print(f"ratio {n} hosts / 1 host                   {statistics.median(noop[n]) / one:6.2f} x"
              + ("  (goal <= 1.5)" if n == 6 else ""))


def tuned_against_stock(lab: Lab, a: argparse.Namespace) -> None:
    """Stock Debian cluster beside the tuned one, same host, same data."""
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep the bench lab afterwards")
    ap.add_argument("--no-pgbench", action="store_true", help="deploy times only")
    ap.add_argument("--seconds", type=int, default=20, help="length of each pgbench run")
    ap.add_argument("--scale", type=int, default=30, help="pgbench scale (15 MB per unit)")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    lab = Lab("bench")
    subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)
    tmp = Path(tempfile.mkdtemp(prefix="pgops-bench-deploy-"))
    try:
        up = timed("lab", "up", "--hosts", "6", "--no-backup")
        print(f"lab up (6 hosts, image cached)           {up:6.1f} s")
        deploy_times(a.rounds, tmp)
        if not a.no_pgbench:
            tuned_against_stock(lab, a)
    finally:
        if not a.keep:
            subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
