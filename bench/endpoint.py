"""The endpoint's benchmark on a fresh `bench` cluster lab (db1-db3, no repository host),
measured side by side in one run, rounds interleaved:

- short-lived connections (connect over TLS, one query, disconnect: `pgbench -C -S`, as a
  serverless or PHP-style client does), direct to the leader's Postgres against through its
  PgBouncer: throughput and p95 latency, and their ratio (goal: >= 3x);
- long-lived connections through HAProxy's read-write port and PgBouncer against direct to
  the leader's Postgres, read-only (`-S`) and read-write (TPC-B-like): throughput ratio
  (goal: >= 0.9x);
- `pgops cluster switchover` while pgbench (8 clients) and a write probe run through the
  read-write port, and, rounds interleaved, with the write probe alone: the longest time
  without an acknowledged commit, and the errors clients saw (goal: <= 2 s, 0 errors).

pgbench runs on a replica's host (PostgreSQL 17's), so every path crosses the lab network.
Each pgbench run also reports where the CPU went, per transaction: pgbench's own (its user and
system time), each lab host's (its container's cgroup), and on the leader's host each program's
(haproxy, pgbouncer, postgres: /proc, so backends that exit during the run are not in it). The
lab caps every host at one CPU and the machine has two, so a ratio of throughputs is a ratio of
CPU per transaction on whichever host saturates first: these figures say which one that is.

    .venv/bin/python bench/endpoint.py [--rounds 3] [--seconds 15] [--keep]

`--seconds 0` measures the switchover alone. `--baseline DIR` (a checkout of another commit,
e.g. `git worktree add /tmp/base HEAD~1`) alternates its `pgops cluster switchover` with this
one's, round by round, and prints both medians and their ratio.
"""

from __future__ import annotations

import functools
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ["PGOPS_LAB"] = "bench"

from bench.cluster_lab import PGOPS, arguments, fresh_cluster, healthy, pgops  # noqa: E402
from pgops.ha.writer import Writer  # noqa: E402
from pgops.lab import Lab  # noqa: E402
from pgops.settings import read_secrets_file  # noqa: E402

PGBENCH = "/usr/lib/postgresql/17/bin/pgbench"
#: Each program's CPU time on a host, in clock ticks (utime + stime of its live processes).
PROGRAMS_CPU = r"""for p in /proc/[0-9]*; do read -r l < "$p/stat" 2>/dev/null || continue
c=${l#*(}; c=${c%%)*}; set -- ${l##*) }; echo "$c ${12} ${13}"; done |
awk '{t[$1] += $2 + $3} END {for (c in t) print c, t[c]}'; getconf CLK_TCK"""
PGPASS = "/root/.pgops-bench-pgpass"
DIRECT, POOLER, RW = 5432, 6432, 5000


@functools.cache
def container_id(container: str) -> str:
    """A lab host's container id (its cgroup's name), asked of Docker once."""
    return subprocess.run(["docker", "inspect", "-f", "{{.Id}}", container], capture_output=True,
                          text=True, check=True).stdout.strip()


def container_cpu(container: str) -> float:
    """CPU seconds a lab host's container has used (its cgroup, v1 or v2)."""
    cid = container_id(container)
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
    if v1.exists():
        return int(v1.read_text()) / 1e9
    for v2 in (Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"),
               Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat")):
        if v2.exists():
            usage = re.search(r"^usage_usec (\d+)", v2.read_text(), re.M)
            return int(usage[1]) / 1e6 if usage else float("nan")
    return float("nan")


def programs_cpu(lab: Lab, on: str) -> dict[str, float]:
    """CPU seconds each program's live processes on `on` have used."""
    *lines, tck = lab.ssh(on, PROGRAMS_CPU).stdout.split("\n")[:-1] or ["1"]
    return {c: int(t) / int(tck) for c, t in (ln.rsplit(" ", 1) for ln in lines if " " in ln)}


@dataclass
class Run:
    """One pgbench run: throughput, p95, and CPU milliseconds per transaction by where."""

    tps: float
    p95: float
    client_ms: float
    hosts_ms: dict[str, float]
    programs_ms: dict[str, float]


def pgbench(lab: Lab, on: str, host: str, port: int, args: str, timeout: float,
            leader: str | None = None) -> Run:
    """pgbench on `on` against host:port as migrator, with the CPU it cost (on `leader`'s host
    by program when given)."""
    hosts = [h.name for h in lab.hosts()]
    before = {h: container_cpu(lab.host(h).container) for h in hosts}
    progs = programs_cpu(lab, leader) if leader else {}
    r = lab.ssh(on, f"cd \"$(mktemp -d)\" && TIMEFORMAT='--cpu-- %U %S'; "
                    f"{{ time PGPASSFILE={PGPASS} {PGBENCH} -h {host} -p {port} "
                    f"-U migrator 'dbname=app sslmode=require' -n {args} -l 2>&1; }} 2>&1; "
                    "echo '--latencies--'; cat pgbench_log.* | awk '{print $3}'",
                check=False, timeout=timeout)
    after = {h: container_cpu(lab.host(h).container) for h in hosts}
    progs_after = programs_cpu(lab, leader) if leader else {}
    out, _, lat = r.stdout.partition("--latencies--")
    tps = re.search(r"^tps = ([\d.]+)", out, re.M)
    n = re.search(r"number of transactions actually processed: (\d+)", out)
    cpu = re.search(r"^--cpu-- ([\d.]+) ([\d.]+)", out, re.M)
    if not tps or not n or not cpu or "aborted" in out:
        raise SystemExit(f"pgbench {args} against {host}:{port} failed:\n{out[-3000:]}")
    us = sorted(int(x) for x in lat.split())
    p95 = us[int(0.95 * (len(us) - 1))] / 1000 if us else float("nan")
    per = 1000 / int(n[1])
    return Run(float(tps[1]), p95, (float(cpu[1]) + float(cpu[2])) * per,
               {h: (after[h] - before[h]) * per for h in hosts},
               {c: (t - progs.get(c, 0)) * per for c, t in progs_after.items()
                if t - progs.get(c, 0) > 0})


def switchover(lab: Lab, runner: str, password: str, n: int, command_line: list[str],
               checkout: Path | None) -> tuple[float, int]:
    """One switchover by `command_line` (run from `checkout`, when given, on this lab) while
    pgbench (`n` clients; none when 0) and a write probe run through the read-write port of a
    replica's host: (the longest time without an acknowledged commit, the errors clients
    saw)."""
    c = healthy()
    entry = next(m["member"] for m in c["members"] if m["member"] != c["leader"])
    ea = lab.host(entry).address
    writer = Writer(f"postgresql://migrator:{password}@{ea}:{RW}/app?sslmode=require").start()
    writer.wait_writes(30, timeout=60)
    load: dict = {}
    command = (f"PGPASSFILE={PGPASS} {PGBENCH} -h {ea} -p {RW} -U migrator "
               f"'dbname=app sslmode=require' -n -c {n} -T 20 2>&1")

    def run() -> None:
        load["out"] = lab.ssh(runner, command, check=False, timeout=200).stdout if n else ""

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
    print(f"switchover{' (baseline)' if checkout else ''}{'' if n else ', write probe alone'}: "
          f"clients paused {pause:.2f} s, errors "
          f"{errors} (pgbench failed {failed[1] if failed else '?' if n else '-'}, aborted {aborted}; "
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

    results: dict[str, list[Run]] = {}
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
            run = pgbench(lab, runner, host, port, flags, timeout=t, leader=leader)
            results.setdefault(name, []).append(run)
            print(f"round {r + 1} {name:<40} {run.tps:9.0f} tps  p95 {run.p95:7.2f} ms  "
                  f"CPU ms/tx: pgbench {run.client_ms:.3f}, {leader} (leader) "
                  f"{run.hosts_ms[leader]:.3f}, {runner} (pgbench's) {run.hosts_ms[runner]:.3f}",
                  flush=True)

    def med(name: str, get) -> float:
        return statistics.median(get(x) for x in results[name])

    def program(name: str, c: str) -> float:
        return statistics.median(x.programs_ms.get(c, 0) for x in results[name])

    if results:
        print("\nmedians over rounds (CPU in ms per transaction; a short-lived one is a connection):")
        for name in cases:
            progs = sorted({c for x in results[name] for c in x.programs_ms},
                           key=lambda c: -program(name, c))
            by_program = ", ".join(f"{c} {program(name, c):.3f}" for c in progs[:4])
            print(f"  {name:<40} {med(name, lambda x: x.tps):9.0f} tps  "
                  f"p95 {med(name, lambda x: x.p95):7.2f} ms  CPU: pgbench "
                  f"{med(name, lambda x: x.client_ms):.3f}, {leader}'s host "
                  f"{med(name, lambda x: x.hosts_ms[leader]):.3f} ({by_program}), {runner}'s host "
                  f"{med(name, lambda x: x.hosts_ms[runner]):.3f}")
        pooled, direct = "short-lived PgBouncer", "short-lived direct"
        tps = {k: med(k, lambda x: x.tps) for k in (pooled, direct)}
        server = {k: med(k, lambda x: x.hosts_ms[leader]) for k in (pooled, direct)}
        client = {k: med(k, lambda x: x.hosts_ms[runner]) for k in (pooled, direct)}
        print(f"short-lived through PgBouncer / direct: {tps[pooled] / tps[direct]:.2f}x "
              f"throughput (goal >= 3x), p95 {med(pooled, lambda x: x.p95):.2f} ms / "
              f"{med(direct, lambda x: x.p95):.2f} ms; the database host's CPU per connection "
              f"{server[direct] / server[pooled]:.2f}x less through PgBouncer "
              f"({server[pooled]:.2f} against {server[direct]:.2f} ms); the client's host spends "
              f"{client[pooled]:.2f} ms a connection (TLS and SCRAM on the client's side), so its "
              f"one CPU connects at most {1000 / client[pooled]:.0f} times a second")
        for kind in ("read-only", "TPC-B"):
            via, to = f"long-lived {kind} HAProxy+PgBouncer", f"long-lived {kind} direct"
            ratio = med(via, lambda x: x.tps) / med(to, lambda x: x.tps)
            cost = med(via, lambda x: x.hosts_ms[leader]) / med(to, lambda x: x.hosts_ms[leader])
            print(f"long-lived {kind} through HAProxy+PgBouncer / direct: {ratio:.2f}x "
                  f"(goal >= 0.9x); the leader's host spends {cost:.2f}x the CPU per transaction")

    # What a switchover costs clients under a load that takes every CPU here, and with the
    # write probe alone (the CPU free for Patroni, Postgres and pgops).
    loaded = f"under pgbench ({n} clients)"
    variants: dict[str, tuple[list[str], Path | None, int]] = {
        loaded: ([PGOPS], None, n), "write probe alone": ([PGOPS], None, 0)}
    if args.baseline:
        variants["baseline"] = ([sys.executable, "-m", "pgops"], args.baseline, n)
    pauses: dict[str, list[float]] = {v: [] for v in variants}
    errors: dict[str, list[int]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant, (command_line, checkout, clients) in variants.items():
            pause, error = switchover(lab, runner, password, clients, command_line, checkout)
            pauses[variant].append(pause)
            errors[variant].append(error)
    for variant in variants if args.rounds else ():
        p = pauses[variant]
        print(f"switchover ({variant}) pause median {statistics.median(p):.2f} s (min {min(p):.2f}, "
              f"max {max(p):.2f}), errors {errors[variant]} (goal <= 2 s, 0 errors)")
    if args.baseline:
        print(f"switchover pause this / baseline: "
              f"{statistics.median(pauses[loaded]) / statistics.median(pauses['baseline']):.2f}x")
    if not args.keep:
        pgops("lab", "down")


if __name__ == "__main__":
    main()
