"""What restoring one tenant costs on top of restoring the database: on a `bench` single-host
lab, for one tenant out of 20 and out of 200 (`pgops seed`, --kb knowledge-base rows each,
384-dim embeddings with the HNSW index), measured side by side in one run, rounds
interleaved, medians:

- `pgops restore --to T` (beside the live cluster; the copy dropped after), wall time;
- `pgops tenant restore CLIENT --to T --apply --yes`, wall time, and its own split: the
  restore beside, and the tenant steps (read at T, stage, compare, apply).

Goal (issue 16): the tenant steps add at most 20% to the restore.

    .venv/bin/python bench/tenant.py [--tenants 20,200] [--kb 50] [--rounds 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ["PGOPS_LAB"] = "bench"
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from pgops.backup.restore import iso  # noqa: E402
from pgops.client.targets import inventory_target  # noqa: E402
from pgops.lab import Lab  # noqa: E402
from pgops.schema.seed import _id, seed  # noqa: E402

PGOPS = str(Path(sys.executable).parent / "pgops")


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def pgops(*args: str) -> tuple[str, float]:
    t0 = time.monotonic()
    r = subprocess.run([PGOPS, *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"pgops {' '.join(args)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r.stdout, time.monotonic() - t0


def prepare(url: str, tenants: int, kb: int) -> str:
    """tenants seeded afresh, a full backup, T, then tenant 1's knowledge base deleted and its
    users changed after T. Returns T."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("delete from clients")  # every tenant's rows (cascade)
        seed(c, tenants=tenants, kb_per_tenant=kb, say=lambda m: None)
    pgops("backup", "--type", "full")
    time.sleep(1.1)
    t = time.time()
    time.sleep(1.1)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("delete from knowledge_base where client_id = %s", (str(_id("client", 1)),))
        c.execute("update users set email = 'x' || email where client_id = %s", (str(_id("client", 1)),))
    return iso(t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", default="20,200")
    ap.add_argument("--kb", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    lab = Lab("bench")
    say("pgops up (bench lab: db1 and the repository host)")
    subprocess.run([PGOPS, "up", "--hosts", "1"], cwd=ROOT, check=True, capture_output=True)
    url = inventory_target(None, "db1", "migrator", None).url
    client = str(_id("client", 1))
    rows = []
    try:
        for n in (int(x) for x in a.tenants.split(",")):
            say(f"{n} tenants, {a.kb} knowledge-base rows each")
            t = prepare(url, n, a.kb)
            whole, tenant, split_r, split_t = [], [], [], []
            for i in range(a.rounds):
                out, s = pgops("restore", "--to", t, "--json")
                r = json.loads(out)
                lab.ssh(r["host"], f"pg_dropcluster {r['cluster'].replace('/', ' ')} --stop")
                whole.append(s)
                out, s = pgops("tenant", "restore", client, "--to", t, "--apply", "--yes", "--json")
                r = json.loads(out)
                tenant.append(s)
                split_r.append(r["seconds"]["restore"])
                split_t.append(r["seconds"]["tenant"])
                say(f"  round {i + 1}: restore {whole[-1]:.1f} s, tenant restore {s:.1f} s "
                    f"(beside {split_r[-1]:.1f} s + tenant steps {split_t[-1]:.1f} s)")
            m = {k: statistics.median(v) for k, v in
                 (("restore", whole), ("tenant", tenant), ("beside", split_r), ("steps", split_t))}
            rows.append((n, m))
    finally:
        if not a.keep:
            subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)
    print(f"{'tenants':>8} {'restore s':>10} {'tenant restore s':>17} {'of which steps s':>17} "
          f"{'steps / restore':>16} {'(goal <= 0.20)':>15}")
    for n, m in rows:
        print(f"{n:>8} {m['restore']:>10.1f} {m['tenant']:>17.1f} {m['steps']:>17.1f} "
              f"{m['steps'] / m['restore']:>16.2f}")


if __name__ == "__main__":
    main()
