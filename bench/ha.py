"""High-availability benchmark on a fresh `bench` cluster lab (db1-db3, also the etcd
members), measured in one run:

- unplanned leader loss, each kind `--rounds` times (median, min, max): the leader's
  container killed (`docker kill`, then started again to rejoin), its postmaster killed
  (`kill -9`), Patroni stopped on it (then started again); a client on this machine commits
  numbered rows one per transaction through the read-write multi-host URL
  (pgops.ha.writer), and the figure is the longest time without an acknowledged commit
  after the fault, with the acknowledged rows missing afterwards;
- planned switchover (`pgops cluster switchover`), the same way;
- replication lag under pgbench load (bytes and seconds, from pg_stat_replication, sampled
  each second on the leader);
- the write cost of synchronous replication: pgbench TPS with synchronous_mode on against
  off, rounds interleaved, switched with `patronictl edit-config` between rounds; and rows
  lost when the leader's container is killed in synchronous mode.

    .venv/bin/python bench/ha.py [--rounds 3] [--seconds 20] [--keep]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ["PGOPS_LAB"] = "bench"

from bench.cluster_lab import arguments, fresh_cluster, healthy, pgops  # noqa: E402
from pgops.ha.writer import Writer  # noqa: E402
from pgops.lab import Lab  # noqa: E402
from pgops.lab.faults import FAULTS as LEADER_FAULTS  # noqa: E402
from pgops.settings import read_secrets_file  # noqa: E402

MEMBERS = ("db1", "db2", "db3")
CONF = "/etc/patroni/17-main.yml"


def url(lab: Lab, role: str = "migrator") -> str:
    pw = read_secrets_file(lab.secrets_file)[f"PGOPS_ROLE_{role.upper()}_PASSWORD"]
    hosts = ",".join(lab.host(m).address for m in MEMBERS)
    return f"postgresql://{role}:{pw}@{hosts}/app?sslmode=require&target_session_attrs=read-write"


FAULTS = {**LEADER_FAULTS, "switchover": (lambda lab, m: pgops("cluster", "switchover"), None)}


def one_fault(lab: Lab, kind: str) -> tuple[float, int]:
    inject, heal = FAULTS[kind]
    leader = healthy()["leader"]
    w = Writer(url(lab)).start()
    if not w.wait_writes(50, 60):
        raise SystemExit(f"writer did not start: {w.errors}")
    t = time.monotonic()
    inject(lab, leader)
    if not w.wait_writes(50, 180):
        raise SystemExit(f"{kind}: writes did not resume: {w.errors}")
    w.stop()
    if heal:
        heal(lab, leader)
    healthy()
    return w.longest_gap(t), len(w.missing())


def patronictl(lab: Lab, args: str) -> str:
    leader = healthy()["leader"]
    return lab.ssh(leader, f"cd / && runuser -u postgres -- patronictl -c {CONF} {args}").stdout


def pgbench(lab: Lab, seconds: int, clients: int = 4) -> float:
    leader = healthy()["leader"]
    out = lab.ssh(leader, f"cd / && runuser -u postgres -- pgbench -n -c {clients} -T {seconds} "
                          "-d bench 2>&1", timeout=seconds + 120).stdout
    return float(next(line.split("=")[1].split()[0] for line in out.splitlines()
                      if line.startswith("tps")))


def lag_under_load(lab: Lab, seconds: int) -> tuple[int, float]:
    """(max replay lag bytes, max replay lag s) on the leader while pgbench runs."""
    leader = healthy()["leader"]
    sql = ("select coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint, "
           "coalesce(max(extract(epoch from replay_lag)), 0) from pg_stat_replication")
    bench = subprocess.Popen([sys.executable, "-c", f"""
import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
import os; os.environ['PGOPS_LAB'] = 'bench'
from pgops.lab import Lab
Lab().ssh({leader!r}, 'cd / && runuser -u postgres -- pgbench -n -c 4 -T {seconds} -d bench',
          timeout={seconds + 120})
"""])
    worst_b, worst_s = 0, 0.0
    while bench.poll() is None:
        out = lab.ssh(leader, f"cd / && runuser -u postgres -- psql -XAt -F' ' -c \"{sql}\"").stdout
        b, s = out.split()
        worst_b, worst_s = max(worst_b, int(b)), max(worst_s, float(s))
        time.sleep(1)
    return worst_b, worst_s


def main() -> None:
    args = arguments(__doc__, seconds=20)
    lab = Lab()
    fresh_cluster(args.reuse)
    lab.ssh(healthy()["leader"], "cd / && runuser -u postgres -- createdb bench && "
            "runuser -u postgres -- pgbench -q -i -s 10 bench")

    rows = []
    for kind in FAULTS:
        runs = [one_fault(lab, kind) for _ in range(args.rounds)]
        secs = [r[0] for r in runs]
        rows.append((kind, statistics.median(secs), min(secs), max(secs), [r[1] for r in runs]))
        print(f"{kind:<20} writes again after median {rows[-1][1]:.1f} s "
              f"(min {rows[-1][2]:.1f}, max {rows[-1][3]:.1f}); rows lost {rows[-1][4]}", flush=True)

    lag_b, lag_s = lag_under_load(lab, args.seconds)
    print(f"replication lag under pgbench (4 clients): max {lag_b} bytes, {lag_s:.3f} s", flush=True)

    tps = {"off": [], "on": []}
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            sync = "true" if mode == "on" else "false"
            patronictl(lab, f"edit-config --force --set synchronous_mode={sync}")
            time.sleep(5)
            tps[mode].append(pgbench(lab, args.seconds))
    ratio = statistics.median(tps["on"]) / statistics.median(tps["off"])
    print(f"pgbench TPS synchronous {statistics.median(tps['on']):.0f} / asynchronous "
          f"{statistics.median(tps['off']):.0f} = {ratio:.2f}x", flush=True)

    patronictl(lab, "edit-config --force --set synchronous_mode=true")
    time.sleep(5)
    sync_kill = [one_fault(lab, "docker kill") for _ in range(args.rounds)]
    print(f"docker kill in synchronous mode: writes again after median "
          f"{statistics.median(r[0] for r in sync_kill):.1f} s; rows lost {[r[1] for r in sync_kill]}",
          flush=True)
    patronictl(lab, "edit-config --force --set synchronous_mode=false")
    if not args.keep:
        pgops("lab", "down")


if __name__ == "__main__":
    main()
