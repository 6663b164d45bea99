"""Tuned against stock, workload by workload and setting by setting, in one run on a fresh
`bench` lab host (1 CPU, 2 GiB: the lab's host size).

pgops deploys db1 (its tuned config); a second cluster beside it (`stock`, port 5433) keeps
Debian's defaults. Both hold the same data; only one runs at a time (they share the host's
RAM, page cache included) and the runs are interleaved, stock first in odd rounds and tuned
first in even ones, so drift on a noisy machine hits both alike. Workloads:

  write-sb    pgbench TPC-B-like, scale larger than the tuned shared_buffers
  write-ram   the same at a scale larger than the host's RAM (--no-big skips it)
  read        pgbench's select-only point lookups
  kb          the knowledge base: HNSW top-10 nearest neighbours of a stored embedding (9 in
              10 transactions) and inserts that maintain the index (1 in 10)

Each prints TPS and p95 latency for stock and tuned and their ratio, with the checkpoints,
WAL written and full-page images of the median run. Every run starts from the same state:
the workload's tables vacuumed (kb's inserted rows deleted), a checkpoint, a 5 s warm-up.
Write runs last `--write-seconds` (300: checkpoints, 5 min apart at most, fall inside them;
the window starts right after a checkpoint, the most full-page images, the worst moment for
the tuned side's rarer checkpoints). `--ablate` then runs write-sb with the tuned config and
one setting put back to the stock cluster's value, `--try NAME=VALUE` with one setting
changed: paired runs (tuned, then the variant, each round), so drift hits both.

    .venv/bin/python bench/tuning.py [--keep] [--reuse] [--seconds 60] [--write-seconds 300]
                                     [--rounds 3] [--no-big] [--workloads kb,read] [--ablate]
                                     [--try NAME=VALUE] [--only-variants]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
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
BIN = "/usr/lib/postgresql/17/bin"
PORTS = {"tuned": 5432, "stock": 5433}
UNITS = {"tuned": "postgresql@17-main", "stock": "postgresql@17-stock"}
KB_ROWS = 20000
#: The settings pgops changes from the default that could cost on a small host (issue 15).
ABLATE = ("wal_compression", "shared_preload_libraries", "shared_buffers", "max_wal_size",
          "min_wal_size", "wal_buffers", "effective_io_concurrency", "random_page_cost",
          "checkpoint_completion_target", "work_mem", "maintenance_work_mem")

KB_QUERY = """\\set q random(1, {rows})
select id from kb order by embedding <=> (select embedding from kb where id = :q) limit 10;
"""
KB_INSERT = """\\set q random(1, {rows})
insert into kb (embedding) select embedding from kb where id = :q;
"""


def sh(lab: Lab, cmd: str, timeout: int = 1800) -> str:
    return lab.ssh("db1", cmd, timeout=timeout).stdout


def as_pg(lab: Lab, cmd: str, timeout: int = 1800) -> str:
    return sh(lab, f"cd / && runuser -u postgres -- sh -c {shlex.quote(cmd)}", timeout)


def lit(s: str) -> str:
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def only(lab: Lab, which: str) -> None:
    """Only this cluster running."""
    other = "stock" if which == "tuned" else "tuned"
    sh(lab, f"systemctl stop {UNITS[other]} && systemctl start {UNITS[which]}")


def psql(lab: Lab, which: str, sql: str, db: str = "postgres") -> str:
    return as_pg(lab, f"psql -XAtq -p {PORTS[which]} -d {db} -c {shlex.quote(sql)}").strip()


def scales(lab: Lab, big: bool) -> dict[str, int]:
    """pgbench scales (15 MB each): 1.5x the tuned shared_buffers, and 1.25x the host's RAM."""
    only(lab, "tuned")
    sb = int(psql(lab, "tuned", "select setting::bigint * 8192 from pg_settings "
                                "where name = 'shared_buffers'"))
    out = {"sbdb": max(sb * 3 // 2 // (15 * 2**20), 10)}
    if big:
        mem = int(sh(lab, "cat /sys/fs/cgroup/memory.max 2>/dev/null || echo 2147483648").strip() or 2**31)
        out["ramdb"] = mem * 5 // 4 // (15 * 2**20)
    return out


def load(lab: Lab, which: str, scales: dict[str, int]) -> None:
    """The same data in both clusters: pgbench tables at those scales and the kb table."""
    only(lab, which)
    p = PORTS[which]
    for db, scale in scales.items():
        as_pg(lab, f"dropdb -p {p} --if-exists {db}; createdb -p {p} {db} && "
                   f"{BIN}/pgbench -p {p} -i -q -s {scale} {db} >/dev/null 2>&1", timeout=3600)
    as_pg(lab, f"dropdb -p {p} --if-exists kbdb; createdb -p {p} kbdb")
    psql(lab, which, "create extension vector; "
                     "create table kb (id bigint generated always as identity primary key, "
                     "embedding vector(384) not null); "
                     # g > 0: a subquery of each row (else one vector for all)
                     "insert into kb (embedding) select (select array_agg(random() - 0.5) "
                     "from generate_series(1, 384) where g > 0)::vector "
                     f"from generate_series(1, {KB_ROWS}) g; "
                     "create index on kb using hnsw (embedding vector_cosine_ops) "
                     "with (m = 16, ef_construction = 64)", db="kbdb")
    psql(lab, which, "vacuum analyze kb", db="kbdb")
    psql(lab, which, "checkpoint", db="kbdb")
    for name, text in (("kb_query.sql", KB_QUERY), ("kb_insert.sql", KB_INSERT)):
        sh(lab, f"cat > /var/lib/postgresql/{name} <<'EOF'\n{text.format(rows=KB_ROWS)}EOF")
    print(f"  {which}: loaded {scales} (pgbench scale per database) and {KB_ROWS} embeddings", flush=True)


WORKLOADS = {
    "write-sb": ("sbdb", "-c 8 -j 2"),
    "write-ram": ("ramdb", "-c 8 -j 2"),
    "read": ("sbdb", "-S -c 8 -j 2"),
    "kb": ("kbdb", "-c 4 -j 2 -f /var/lib/postgresql/kb_query.sql@9 -f /var/lib/postgresql/kb_insert.sql@1"),
}


#: Checkpoints and WAL written so far (PG 17's views): what the WAL settings change.
WAL_STATS = ("select (select num_timed + num_requested from pg_stat_checkpointer) || ' ' || "
             "wal_bytes || ' ' || wal_fpi from pg_stat_wal")


def wal_stats(lab: Lab, which: str) -> tuple[int, int, int]:
    c, b, f = psql(lab, which, WAL_STATS).split()
    return int(c), int(float(b)), int(f)


#: What each run saw besides TPS and p95: checkpoints, WAL MB and full-page images.
SEEN: dict[tuple[str, str], list[tuple[int, int, int]]] = {}

#: Before each run, the workload's tables back to one state, then a checkpoint: without it
#: every run bloats pgbench_accounts (and kb) and runs drift downwards (10% over an hour,
#: measured), which an ablation of one cluster reads as the setting's cost.
RESET = {
    "sbdb": "vacuum pgbench_branches, pgbench_tellers, pgbench_accounts; truncate pgbench_history",
    "ramdb": "vacuum pgbench_branches, pgbench_tellers, pgbench_accounts; truncate pgbench_history",
    "kbdb": f"delete from kb where id > {KB_ROWS}; vacuum kb",
}


def run(lab: Lab, which: str, workload: str, seconds: int, label: str = "") -> tuple[float, float]:
    """(TPS, p95 latency in ms) of one measured run: the tables reset, a checkpoint, a 5 s
    warm-up (caches after a restart), then `seconds` measured."""
    only(lab, which)
    db, args = WORKLOADS[workload]
    for sql in RESET[db].split("; "):
        psql(lab, which, sql, db=db)
    psql(lab, which, "checkpoint", db=db)
    base = f"{BIN}/pgbench -p {PORTS[which]} -n {args} {db}"
    as_pg(lab, f"{base} -T 5 >/dev/null 2>&1")
    as_pg(lab, "rm -f /tmp/pgb_log*")
    before = wal_stats(lab, which)
    out = as_pg(lab, f"cd /tmp && {base} -T {seconds} -l --log-prefix=pgb_log", timeout=seconds + 600)
    after = wal_stats(lab, which)
    SEEN.setdefault((label or which, workload), []).append(
        (after[0] - before[0], (after[1] - before[1]) // 2**20, after[2] - before[2]))
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    p95 = float(as_pg(lab, "cat /tmp/pgb_log* | awk '{print $3}' | sort -n | "
                           "awk '{a[NR]=$1} END {print a[int(NR*0.95)] / 1000}'"))
    return tps, p95


def seen(which: str, workload: str) -> str:
    """The median run's checkpoints, WAL MB and full-page images."""
    runs = SEEN.get((which, workload), [])
    if not runs:
        return ""
    c, mb, fpi = (statistics.median(x[i] for x in runs) for i in range(3))
    return f"{c:.0f} ckpt {mb:.0f} MB WAL {fpi / 1000:.0f}k FPI"


def length(workload: str, seconds: int, write_seconds: int) -> int:
    return write_seconds if workload.startswith("write") else seconds


def compare(lab: Lab, workloads: list[str], seconds: int, write_seconds: int, rounds: int) -> None:
    for w in workloads:
        got: dict[str, list[tuple[float, float]]] = {"stock": [], "tuned": []}
        for r in range(rounds):
            # stock first, then tuned first (ABBA): drift over the runs does not favour one
            for which in ("stock", "tuned")[::1 if r % 2 == 0 else -1]:
                got[which].append(run(lab, which, w, length(w, seconds, write_seconds)))
        tps = {k: statistics.median(t for t, _ in v) for k, v in got.items()}
        p95 = {k: statistics.median(p for _, p in v) for k, v in got.items()}
        print(f"{w:10} stock {tps['stock']:8.0f} TPS p95 {p95['stock']:7.2f} ms | tuned {tps['tuned']:8.0f} "
              f"TPS p95 {p95['tuned']:7.2f} ms | tuned/stock {tps['tuned'] / tps['stock']:5.2f} x  "
              f"runs {[round(t) for t, _ in got['stock']]} {[round(t) for t, _ in got['tuned']]}", flush=True)
        print(f"{'':10} stock {seen('stock', w)} | tuned {seen('tuned', w)}", flush=True)


def variants(lab: Lab, changes: list[tuple[str, str]], seconds: int, rounds: int,
             workload: str = "write-sb") -> None:
    """`workload` with the tuned config and one setting changed (ALTER SYSTEM, a restart),
    each round a run of each, the tuned config first in odd rounds and the variant first in
    even ones, so drift hits both alike."""
    for name, value in changes:
        label = f"{name}={value}"
        SEEN.pop(("tuned", workload), None)
        base, var = [], []
        for r in range(rounds):
            if r % 2 == 0:  # the tuned config first, then the variant first (ABBA)
                base.append(run(lab, "tuned", workload, seconds)[0])
            psql(lab, "tuned", f"alter system set {name} = {lit(value)}")
            try:  # a value the server refuses to start with is reset all the same
                sh(lab, f"systemctl restart {UNITS['tuned']}")
                var.append(run(lab, "tuned", workload, seconds, label)[0])
            finally:
                only(lab, "tuned")
                psql(lab, "tuned", f"alter system reset {name}")
                sh(lab, f"systemctl restart {UNITS['tuned']}")
            if r % 2 == 1:
                base.append(run(lab, "tuned", workload, seconds)[0])
        ratio = statistics.median(var) / statistics.median(base)
        print(f"  {label:44} {statistics.median(var):8.0f} TPS against {statistics.median(base):8.0f}: "
              f"{ratio:5.2f} x tuned  {seen(label, workload)} | tuned {seen('tuned', workload)}  "
              f"runs {[round(x) for x in var]} {[round(x) for x in base]}", flush=True)


def ablation(lab: Lab) -> list[tuple[str, str]]:
    """Each setting pgops changes, put back to the stock cluster's value."""
    out = []
    for n in ABLATE:
        only(lab, "stock")
        stock = psql(lab, "stock", f"select current_setting('{n}')")
        only(lab, "tuned")
        if psql(lab, "tuned", f"select current_setting('{n}')") != stock:
            # An empty list cannot be written with ALTER SYSTEM (it becomes one library
            # named ""): plpgsql stands for "nothing preloaded", every session loads it anyway.
            out.append((n, stock or ("plpgsql" if n == "shared_preload_libraries" else "")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep the bench lab afterwards")
    ap.add_argument("--reuse", action="store_true", help="use a bench lab already loaded (--keep)")
    ap.add_argument("--seconds", type=int, default=60, help="length of each read and kb run")
    ap.add_argument("--write-seconds", type=int, default=300,
                    help="length of each write run: checkpoints (5 min apart at most) inside it")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-big", action="store_true", help="skip the scale larger than RAM")
    ap.add_argument("--workloads", help=f"comma-separated, of {', '.join(WORKLOADS)} (default: all)")
    ap.add_argument("--ablate", action="store_true", help="then one setting at a time")
    ap.add_argument("--try", dest="tries", action="append", default=[], metavar="NAME=VALUE",
                    help="write-sb with the tuned config and this setting (repeatable)")
    ap.add_argument("--variant-workload", default="write-sb", choices=WORKLOADS,
                    help="the workload --ablate and --try run (default write-sb)")
    ap.add_argument("--only-variants", action="store_true", help="no stock comparison: only "
                                                                 "--ablate and --try (with --reuse)")
    a = ap.parse_args()
    if bad := [t for t in a.tries if "=" not in t]:
        ap.error(f"--try {bad[0]}: NAME=VALUE")
    if a.workloads and (bad := [w for w in a.workloads.split(",") if w not in WORKLOADS]):
        ap.error(f"--workloads {bad[0]}: one of {', '.join(WORKLOADS)}")
    lab = Lab("bench")
    t0 = time.monotonic()
    try:
        if not a.reuse:
            subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)
            for args in (["lab", "up", "--hosts", "1", "--no-backup"], ["deploy"]):
                r = subprocess.run([PGOPS, *args], cwd=ROOT, capture_output=True, text=True)
                if r.returncode:
                    sys.exit(f"pgops {' '.join(args)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
            sh(lab, "pg_lsclusters | grep -q '^17 *stock' || "
                    "pg_createcluster 17 stock --port 5433 >/dev/null")
            sizes = scales(lab, not a.no_big)
            for which in ("tuned", "stock"):
                load(lab, which, sizes)
        print("settings pgops changes (tuned | stock):")
        for n in ABLATE:
            only(lab, "tuned")
            t = psql(lab, "tuned", f"select current_setting('{n}')")
            only(lab, "stock")
            print(f"  {n:32} {t:>16} | {psql(lab, 'stock', f'select current_setting({lit(n)})')}")
        workloads = [w for w in (a.workloads.split(",") if a.workloads else WORKLOADS)
                     if not (a.no_big and w == "write-ram")]
        print(f"write runs {a.write_seconds} s, others {a.seconds} s; {a.rounds} rounds, interleaved; "
              "one cluster running at a time; before each run the tables vacuumed and a checkpoint")
        if not a.only_variants:
            compare(lab, workloads, a.seconds, a.write_seconds, a.rounds)
        changes = ablation(lab) if a.ablate else []
        changes += [(t.split("=", 1)[0], t.split("=", 1)[1]) for t in a.tries]
        if changes:
            print(f"{a.variant_workload}, the tuned config with one setting changed, paired runs:")
            variants(lab, changes, a.write_seconds if a.variant_workload.startswith("write")
                     else a.seconds, a.rounds, a.variant_workload)
        print(f"bench took {time.monotonic() - t0:.0f} s")
    finally:
        if not a.keep:
            subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
