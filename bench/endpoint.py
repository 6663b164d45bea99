"""The endpoint's benchmark on a fresh `bench` cluster lab (db1-db3, no repository host),
measured side by side in one run, rounds interleaved:

- short-lived connections (connect over TLS, one query, disconnect: `pgbench -C -S`, as a
  serverless or PHP-style client does), direct to the leader's Postgres against through its
  PgBouncer: throughput and p95 latency, and their ratio (goal: >= 3x);
- long-lived connections through HAProxy's read-write port and PgBouncer against direct to
  the leader's Postgres, read-only (`-S`) and read-write (TPC-B-like): throughput ratio
  (goal: >= 0.9x);
- `pgops cluster switchover` while pgbench (8 clients) and a write probe run through the
  read-write port: the longest time without an acknowledged commit, and the errors clients
  saw (goal: <= 2 s, 0 errors).

pgbench runs on a replica's host (PostgreSQL 17's), so every path crosses the lab network.

    .venv/bin/python bench/endpoint.py [--rounds 3] [--seconds 15] [--keep]

`--seconds 0` measures the switchover alone. `--baseline DIR` (a checkout of another commit,
e.g. `git worktree add /tmp/base HEAD~1`) alternates its `pgops cluster switchover` with this
one's, round by round, and prints both medians and their ratio.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ["PGOPS_LAB"] = "bench"

from bench.cluster_lab import PGOPS, arguments, fresh_cluster, healthy, pgops  # noqa: E402
from pgops.ha.writer import Writer  # noqa: E402
from pgops.lab import Lab  # noqa: E402
from pgops.settings import read_secrets_file  # noqa: E402

PGBENCH = "/usr/lib/postgresql/17/bin/pgbench"
PGPASS = "/root/.pgops-bench-pgpass"
DIRECT, POOLER, RW = 5432, 6432, 5000


def pgbench(lab: Lab, on: str, host: str, port: int, args: str, timeout: float) -> tuple[float, float, str]:
    """(tps, p95 latency ms, output) of pgbench on `on` against host:port as migrator."""
    r = lab.ssh(on, f"cd \"$(mktemp -d)\" && PGPASSFILE={PGPASS} {PGBENCH} -h {host} -p {port} "
                    f"-U migrator 'dbname=app sslmode=require' -n {args} -l 2>&1; "
                    "echo '--latencies--'; cat pgbench_log.* | awk '{print $3}'",
                check=False, timeout=timeout)
    out, _, lat = r.stdout.partition("--latencies--")
    tps = re.search(r"^tps = ([\d.]+)", out, re.M)
    if not tps or "aborted" in out:
        raise SystemExit(f"pgbench {args} against {host}:{port} failed:\n{out[-3000:]}")
    us = sorted(int(x) for x in lat.split())
    p95 = us[int(0.95 * (len(us) - 1))] / 1000 if us else float("nan")
    return float(tps[1]), p95, out


def switchover(lab: Lab, runner: str, password: str, n: int, command_line: list[str],
               checkout: Path | None) -> tuple[float, int]:
    """One switchover by `command_line` (run from `checkout`, when given, on this lab) while
    pgbench and a write probe run through the read-write port of a replica's host: (the
    longest time without an acknowledged commit, the errors clients saw)."""
    c = healthy()
    entry = next(m["member"] for m in c["members"] if m["member"] != c["leader"])
    ea = lab.host(entry).address
    writer = Writer(f"postgresql://migrator:{password}@{ea}:{RW}/app?sslmode=require").start()
    writer.wait_writes(30, timeout=60)
    load: dict = {}
    command = (f"PGPASSFILE={PGPASS} {PGBENCH} -h {ea} -p {RW} -U migrator "
               f"'dbname=app sslmode=require' -n -c {n} -T 20 2>&1")

    def run() -> None:
        load["out"] = lab.ssh(runner, command, check=False, timeout=200).stdout

    th = threading.Thread(target=run)
    th.start()
    time.sleep(5)
    t1 = time.monotonic()
    env = dict(os.environ)
    if checkout:
        env.update(PYTHONPATH=str(checkout), PGOPS_LAB_DIR=str(lab.dir.parent))
    r = subprocess.run([*command_line, "cluster", "switchover"], capture_output=True, text=True,
                       timeout=600, cwd=checkout, env=env)
    if r.returncode:
        raise SystemExit(f"switchover failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    th.join()
    writer.wait_writes(30, timeout=60)
    writer.stop()
    failed = re.search(r"number of failed transactions: (\d+)", load["out"])
    aborted = load["out"].count("aborted")
    pause = writer.longest_gap(t1)
    errors = len(writer.errors) + aborted + int(failed[1] if failed else 0)
    print(f"switchover{' (baseline)' if checkout else ''}: clients paused {pause:.2f} s, errors "
          f"{errors} (pgbench failed {failed[1] if failed else '?'}, aborted {aborted}; "
          f"probe {len(writer.errors)}), rows missing {len(writer.missing())}", flush=True)
    return pause, errors


def main() -> None:
    args = arguments(__doc__, seconds=15, more=lambda ap: ap.add_argument(
        "--baseline", type=Path, help="A checkout whose switchover alternates with this one's."))
    lab = Lab()
    fresh_cluster(args.reuse)
    c = healthy()
    leader = c["leader"]
    runner = next(m["member"] for m in c["members"] if m["member"] != leader)
    la = lab.host(leader).address
    password = read_secrets_file(lab.secrets_file)["PGOPS_ROLE_MIGRATOR_PASSWORD"]
    lab.ssh(runner, f"umask 077; cat > {PGPASS}", input=f"*:*:app:migrator:{password}\n")
    # migrator's connection_limit (10) is for migrations; short-lived clients overlap their
    # backends' exits, so the bench lab lifts it (a deploy would set it back).
    lab.ssh(leader, "cd / && runuser -u postgres -- psql -XAtq -c "
                    "'alter role migrator connection limit 60'")
    lab.ssh(runner, f"cd / && PGPASSFILE={PGPASS} {PGBENCH} -h {la} -p {DIRECT} -U migrator "
                    "'dbname=app sslmode=require' -i -s 10 -q", timeout=600)
    s, n = args.seconds, 8
    t = s + 120

    results: dict[str, list[tuple[float, float]]] = {}
    cases = {
        "short-lived direct": (la, DIRECT, f"-C -S -c {n} -j 4 -T {s}"),
        "short-lived PgBouncer": (la, POOLER, f"-C -S -c {n} -j 4 -T {s}"),
        "long-lived read-only direct": (la, DIRECT, f"-S -c {n} -j 4 -T {s}"),
        "long-lived read-only HAProxy+PgBouncer": (la, RW, f"-S -c {n} -j 4 -T {s}"),
        "long-lived TPC-B direct": (la, DIRECT, f"-c {n} -j 4 -T {s}"),
        "long-lived TPC-B HAProxy+PgBouncer": (la, RW, f"-c {n} -j 4 -T {s}"),
    }
    for r in range(args.rounds if s > 0 else 0):
        for name, (host, port, flags) in cases.items():
            tps, p95, _ = pgbench(lab, runner, host, port, flags, timeout=t)
            results.setdefault(name, []).append((tps, p95))
            print(f"round {r + 1} {name:<40} {tps:9.0f} tps  p95 {p95:7.2f} ms", flush=True)

    def med(name: str, i: int) -> float:
        return statistics.median(x[i] for x in results[name])

    if results:
        print("\nmedians over rounds:")
        for name in cases:
            print(f"  {name:<40} {med(name, 0):9.0f} tps  p95 {med(name, 1):7.2f} ms")
        pooled, direct = "short-lived PgBouncer", "short-lived direct"
        print(f"short-lived through PgBouncer / direct: {med(pooled, 0) / med(direct, 0):.2f}x "
              f"throughput, p95 {med(pooled, 1):.2f} ms / {med(direct, 1):.2f} ms (goal >= 3x)")
        for kind in ("read-only", "TPC-B"):
            ratio = (med(f"long-lived {kind} HAProxy+PgBouncer", 0)
                     / med(f"long-lived {kind} direct", 0))
            print(f"long-lived {kind} through HAProxy+PgBouncer / direct: {ratio:.2f}x "
                  "(goal >= 0.9x)")

    variants = {"this": [PGOPS]}
    if args.baseline:
        variants["baseline"] = [sys.executable, "-m", "pgops"]
    pauses: dict[str, list[float]] = {v: [] for v in variants}
    errors: dict[str, list[int]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant, command_line in variants.items():
            pause, error = switchover(lab, runner, password, n, command_line,
                                      args.baseline if variant == "baseline" else None)
            pauses[variant].append(pause)
            errors[variant].append(error)
    for variant in variants:
        p = pauses[variant]
        print(f"switchover ({variant}) pause median {statistics.median(p):.2f} s (min {min(p):.2f}, "
              f"max {max(p):.2f}), errors {errors[variant]} (goal <= 2 s, 0 errors)")
    if args.baseline:
        print(f"switchover pause this / baseline: "
              f"{statistics.median(pauses['this']) / statistics.median(pauses['baseline']):.2f}x")
    if not args.keep:
        pgops("lab", "down")


if __name__ == "__main__":
    main()
