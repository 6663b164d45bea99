"""PITR RTO against its physical parts (issue 15, part 3), in one run on a fresh `bench` lab
(db1, db2 and the repository host backup1).

`pgops restore --to T --onto db2 --json`, timed end to end as an operator runs it (the
command line's start, planning over SSH, the restore, verification), against the same
restore by hand: the very pgBackRest command pgops runs (`restore.pgbackrest_restore`) into
a Debian cluster made beforehand, outside the timing, then a start that replays WAL to T and
promotes, timed on db2 itself until `pg_is_in_recovery()` is false. The replay's own share
is read from the server log ("redo done ... elapsed"). Rounds are interleaved, with the page
cache of db2 and backup1 reclaimed before each, so drift on a noisy machine hits both.

Printed: each part's median, pgops's phases (`phases` in the restore's JSON), the ratio
(goal: pgops <= 1.2x the parts) and the overhead broken down.

    .venv/bin/python bench/pitr_rto.py [--scale 100] [--load-seconds 60] [--rounds 3] [--keep]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backup import BIN, ROOT, Hosts, data_bytes, init_pgbench, pgops, say  # noqa: E402  (bench/backup.py)

from pgops.backup import repository as backup  # noqa: E402
from pgops.backup import restore, rules  # noqa: E402
from pgops.lab import Lab  # noqa: E402

INVENTORY = ROOT / "inventory" / "lab.py"
RAW, RAW_PORT = "bench_raw", 5499
MB = 1e6


def by_hand(hs: Hosts, rp: restore.RestorePlan, stanza: str) -> dict:
    """The same restore by hand: (restore s, start-to-promoted s, replay s from the log)."""
    data = f"/var/lib/postgresql/17/{RAW}"
    hs.sh("db2", f"pg_dropcluster 17 {RAW} --stop 2>/dev/null; pg_createcluster 17 {RAW} "
                 f"--port {RAW_PORT} >/dev/null && pg_ctlcluster 17 {RAW} stop 2>/dev/null; "
                 f"find {data} -mindepth 1 -delete; : > /var/log/postgresql/postgresql-17-{RAW}.log")
    cmd = restore.pgbackrest_restore(dataclasses.replace(rp, data_directory=data), stanza)
    hs.drop_caches("db2", "backup1")
    t_restore = hs.timed("db2", f"runuser -u postgres -- {cmd} --archive-mode=off restore")
    limits = rules.recovery_limits_conf(hs.sh("db2", f"{BIN}/pg_controldata {data}"))
    hs.sh("db2", f"printf '%s' {shlex.quote(limits)} > /etc/postgresql/17/{RAW}/conf.d/50-restore.conf")
    poll = (f"runuser -u postgres -- psql -XAtq -p {RAW_PORT} -c 'select pg_is_in_recovery()' "
            "2>/dev/null")
    t_start = hs.timed("db2", f"systemctl start postgresql@17-{RAW} && n=0; "
                              f"until [ \"$({poll})\" = f ]; do n=$((n + 1)); "
                              "[ $n -lt 18000 ] || exit 1; sleep 0.05; done")
    log = hs.sh("db2", f"cat /var/log/postgresql/postgresql-17-{RAW}.log")
    m = re.search(r"redo done at .*elapsed: ([\d.]+) s", log)
    hs.sh("db2", f"pg_dropcluster 17 {RAW} --stop")
    return {"restore": t_restore, "start": t_start, "replay": float(m.group(1)) if m else None}


def with_pgops(hs: Hosts, target: str) -> dict:
    """`pgops restore` end to end, as an operator runs it; the copy removed afterwards."""
    hs.drop_caches("db2", "backup1")
    t0 = time.monotonic()
    r = json.loads(pgops("restore", "--to", target, "--onto", "db2", "--json"))
    wall = time.monotonic() - t0
    hs.sh("db2", f"pg_dropcluster {r['cluster'].replace('/', ' ')} --stop")
    return {"wall": wall, "seconds": r["seconds"], **r["phases"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=100, help="pgbench scale (about 15 MB each)")
    ap.add_argument("--load-seconds", type=int, default=60,
                    help="pgbench -R 200 after the backup: the WAL to replay")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpus", type=float, default=2, help="CPUs per lab host (PGOPS_LAB_CPUS)")
    ap.add_argument("--keep", action="store_true", help="keep the bench lab afterwards")
    a = ap.parse_args()
    started = time.monotonic()
    lab = Lab("bench")
    hs = Hosts(lab)
    quiet = lambda m: None  # noqa: E731
    lab.down(say=quiet, stop_engine=False)
    try:
        say(f"lab up (db1, db2, backup1; {a.cpus:g} CPUs / 2 GiB each) and deploy")
        pgops("lab", "up", "--hosts", "2", env={**os.environ, "PGOPS_LAB_CPUS": f"{a.cpus:g}"})
        pgops("deploy")
        backups = backup.connect(INVENTORY, "db1")
        say(f"pgbench scale {a.scale}, a full backup, then {a.load_seconds} s of pgbench -R 200")
        init_pgbench(hs, backups, a.scale)
        size = data_bytes(hs)
        backup.take(backups, "db1", "full")
        lsn = hs.psql("db1", "select pg_current_wal_lsn()")
        hs.sh("db1", f"runuser -u postgres -- {BIN}/pgbench -n -c 2 -j 2 -R 200 "
                     f"-T {a.load_seconds} bench >/dev/null")
        target = restore.iso(time.time())
        wal = int(hs.psql("db1", f"select pg_wal_lsn_diff(pg_current_wal_lsn(), '{lsn}')"))
        restore.archive_past(backups, "db1")  # as an operator's target would be: archived
        rp = restore.plan(backups, "db1", target, onto="db2")
        stanza = backups.stanza("db1")
        ours: list[dict] = []
        raw: list[dict] = []
        for i in range(a.rounds):
            say(f"round {i + 1}/{a.rounds}: pgops restore, then the same by hand")
            ours.append(with_pgops(hs, target))
            raw.append(by_hand(hs, rp, stanza))

        def med(rows: list[dict], key: str) -> float:
            vals = [r[key] for r in rows if r.get(key) is not None]
            return statistics.median(vals) if vals else 0.0

        parts = med(raw, "restore") + med(raw, "start")
        wall = med(ours, "wall")
        print(f"data: pgbench scale {a.scale}, data directory {size / MB:.0f} MB; "
              f"{wal / MB:.0f} MB of WAL after the backup to replay; target {target}")
        print(f"hosts: {a.cpus:g} CPUs / 2 GiB each on a {os.cpu_count()}-core machine; "
              f"{a.rounds} rounds interleaved, medians")
        print()
        print("the parts, by hand on db2                             seconds   runs")
        for label, key in (("pgbackrest restore (pgops's command)", "restore"),
                           ("start: replay to T, promote, accept", "start")):
            print(f"  {label:<50} {med(raw, key):7.2f}   {[round(r[key], 2) for r in raw]}")
        print(f"    of which WAL replay (server log)                   {med(raw, 'replay'):7.2f}")
        print(f"  sum                                                {parts:7.2f}")
        print()
        print("pgops restore --onto db2, end to end                  seconds   runs")
        print(f"  wall time of the command                           {wall:7.2f}   "
              f"{[round(r['wall'], 2) for r in ours]}")
        phase_keys = [k for k in ours[0] if k not in ("wall", "seconds")]
        for k in phase_keys:
            print(f"    {k:<48} {med(ours, k):7.2f}")
        rest = wall - sum(med(ours, k) for k in phase_keys)
        print(f"    {'start of the command, connections, plan':<48} {rest:7.2f}")
        print()
        print(f"RTO ratio: pgops / (restore + start, replay inside it) = {wall / parts:.2f} x  "
              "(goal <= 1.2)")
        over = {"pgBackRest restore, pgops - by hand": med(ours, "pgbackrest_restore") - med(raw, "restore"),
                "start to promoted, pgops - by hand": med(ours, "start_replay_promote") - med(raw, "start"),
                **{k: med(ours, k) for k in phase_keys
                   if k not in ("pgbackrest_restore", "start_replay_promote")},
                "start of the command, connections, plan": rest}
        print(f"overhead {wall - parts:.2f} s:")
        for k, v in over.items():
            print(f"  {k:<48} {v:7.2f}")
        print(f"\nbench run time {(time.monotonic() - started) / 60:.1f} min")
    finally:
        if not a.keep:
            lab.down(say=quiet, stop_engine=False)


if __name__ == "__main__":
    main()
