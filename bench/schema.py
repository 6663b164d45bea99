"""Schema benchmark on a fresh `bench` lab host, measured in one run:

- time to migrate from empty (all of sql/migrations/) and to seed N tenants;
- nearest-neighbour queries on the seeded knowledge base: HNSW index vs exact scan,
  median latency of each, their ratio, and recall@10 of the index against the exact answer.

    .venv/bin/python bench/schema.py [--tenants 20] [--kb-per-tenant 1000] [--queries 100] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ["PGOPS_LAB"] = "bench"
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from pgops.client.targets import inventory_target  # noqa: E402
from pgops.schema.migrate import MIGRATIONS_DIR, Migrator  # noqa: E402
from pgops.schema.seed import TOPICS, WORDS, embed, seed, vector_literal  # noqa: E402

PGOPS = str(Path(sys.executable).parent / "pgops")


def sh(*args: str) -> None:
    r = subprocess.run([PGOPS, *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"pgops {' '.join(args)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")


PATHS = {
    "exact": "set local enable_indexscan = off",  # sequential scan + sort: the exact answer
    "hnsw": "set local enable_seqscan = off",  # the HNSW index (as pgvector's docs test it)
    "planner": None,  # whatever the planner picks on its own
}


def top10(conn, q: str, path: str) -> tuple[list, float]:
    with conn.transaction():
        if PATHS[path]:
            conn.execute(PATHS[path])
        t0 = time.perf_counter()
        # prepare=False: a prepared statement would keep the plan of whichever path ran
        # first and measure it for every path.
        rows = conn.execute("select id from knowledge_base order by embedding <=> %s::vector limit 10",
                            (q,), prepare=False).fetchall()
        return [r[0] for r in rows], (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=20)
    ap.add_argument("--kb-per-tenant", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)
    try:
        sh("lab", "up", "--hosts", "1", "--no-backup")
        sh("deploy")
        url = inventory_target(None, "db1", "migrator", None).url
        m = Migrator(url, MIGRATIONS_DIR)
        m.down(0)
        t0 = time.monotonic()
        m.up()
        migrate_s = time.monotonic() - t0
        with psycopg.connect(url) as conn:
            t0 = time.monotonic()
            counts = seed(conn, a.tenants, a.kb_per_tenant)
            seed_s = time.monotonic() - t0
            conn.execute("analyze")
            conn.commit()
        # Queries on a fresh connection, outside the seeding session's transaction.
        with psycopg.connect(url, autocommit=True) as conn:
            n = conn.execute("select count(*) from knowledge_base").fetchone()[0]
            rnd = random.Random(42)
            queries = [vector_literal(embed(" ".join(rnd.sample(TOPICS, 3) + rnd.sample(WORDS, 3))))
                       for _ in range(a.queries)]
            plan = "\n".join(r[0] for r in conn.execute(
                "explain select id from knowledge_base order by embedding <=> %s::vector limit 10",
                (queries[0],)))
            planner_uses_hnsw = "hnsw" in plan
            for q in queries[:5]:  # warm every path
                for path in PATHS:
                    top10(conn, q, path)
            exact_ms, hnsw_ms, planner_ms, recall = [], [], [], []
            for q in queries:  # interleaved per query, so machine noise hits every path alike
                e_ids, e_ms = top10(conn, q, "exact")
                h_ids, h_ms = top10(conn, q, "hnsw")
                planner_ms.append(top10(conn, q, "planner")[1])
                exact_ms.append(e_ms)
                hnsw_ms.append(h_ms)
                recall.append(len(set(e_ids) & set(h_ids)) / 10)
        rows = sum(counts.values())
        print(f"migrate from empty ({len(m.migrations)} files)    {migrate_s:7.2f} s")
        print(f"seed {a.tenants} tenants ({rows} rows, {n} vectors)  {seed_s:7.2f} s  "
              f"({rows / seed_s:.0f} rows/s)")
        e, h = statistics.median(exact_ms), statistics.median(hnsw_ms)
        print(f"top-10 exact scan, median           {e:7.2f} ms")
        print(f"top-10 HNSW index, median           {h:7.2f} ms")
        print(f"speed-up exact / HNSW               {e / h:7.1f} x")
        print(f"planner's own choice, median        {statistics.median(planner_ms):7.2f} ms  "
              f"({'HNSW' if planner_uses_hnsw else 'not HNSW'})")
        print(f"recall@10 of HNSW (ef_search 40)    {statistics.mean(recall):7.3f}  "
              f"over {a.queries} queries, 384-dim, cosine")
    finally:
        if not a.keep:
            subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
