"""PITR soak: many random restore targets over one synthetic history, each restored beside the
live database with `pgops restore --to`, and counted. The figure is exact restores out of N
(goal N/N) and the RTO distribution.

History, on db1 of the lab (a fresh `bench` lab unless --lab names one that is up): a writer
commits numbered rows (pitr_probe, one transaction each, --pause s apart) from before the
first backup to after the last, while pgops takes a full backup, then by turns incremental
and differential ones, --segment-s apart. A target is a time strictly between two commits
(row k returned, row k+1 not yet begun), chosen at random over the history after the full
backup finished (earlier, only backups this run did not take could serve it): a correct
restore holds exactly rows 1..k. Each copy is dropped after it is counted.

    .venv/bin/python bench/pitr_soak.py [--targets 100] [--segment-s 30] [--seed N]
                                        [--lab NAME] [--keep] [--json]

`--lab test --targets 2 --segment-s 2 --backups 0` is the small sample CI runs
(tests/lab/test_pitr_soak.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgops.backup.restore import iso  # noqa: E402
from pgops.lab import Lab  # noqa: E402
from pgops.lab.pitr import TABLE, Writer, fresh_table  # noqa: E402

PGOPS = str(Path(sys.executable).parent / "pgops")
HOST = "db1"
#: The backups after the first full, in turn.
KINDS = ("incr", "diff", "incr", "incr", "diff", "incr")


def say(msg: str) -> None:
    print(f"soak: {msg}", file=sys.stderr, flush=True)


def pgops(*args: str) -> str:
    r = subprocess.run([PGOPS, *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"pgops {' '.join(args)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r.stdout


def psql(lab: Lab, host: str, query: str, port: int = 5432, db: str = "app") -> str:
    return lab.ssh(host, f"cd / && runuser -u postgres -- psql -XAtq -p {port} -d {db} "
                         f"-c \"{query}\"").stdout.strip()


def history(lab: Lab, segment_s: float, pause: float,
            backups: int) -> tuple[Writer, float, list[dict]]:
    """The writer over a full backup and `backups` more (KINDS in turn); when the full one
    had finished; the repository's list of backups once every row is archived."""
    from pgops.client.targets import inventory_target

    url = inventory_target(None, HOST, "migrator", None).url
    fresh_table(url)
    w = Writer(url, None, pause=pause)
    w.start()
    time.sleep(segment_s / 2)
    full_done = 0.0
    for kind in ("full", *[KINDS[i % len(KINDS)] for i in range(backups)]):
        t0 = time.monotonic()
        pgops("backup", "--type", kind, "--host", HOST)
        full_done = full_done or time.time()
        say(f"{kind} backup in {time.monotonic() - t0:.1f} s, {len(w.done)} rows so far")
        time.sleep(segment_s)
    w.stop()
    if w.error:
        sys.exit(f"the writer failed: {w.error}")
    # The last rows' WAL into the repository: a commit, a switch, the segment archived.
    archived = "select archived_count from pg_stat_archiver"
    before = int(psql(lab, HOST, archived, db="postgres"))
    psql(lab, HOST, "select txid_current()", db="postgres")
    psql(lab, HOST, "select pg_switch_wal()", db="postgres")
    deadline = time.monotonic() + 120
    while int(psql(lab, HOST, archived, db="postgres")) <= before:
        if time.monotonic() > deadline:
            sys.exit("WAL was not archived within 120 s")
        time.sleep(0.5)
    [listed] = json.loads(pgops("backup", "list", "--host", HOST, "--json"))
    return w, full_done, listed["backups"]


def restore(lab: Lab, w: Writer, k: int) -> dict:
    """Restore beside to just after row k: whether the copy holds exactly rows 1..k, the RTO."""
    out = json.loads(pgops("restore", "--to", iso(w.gap_after(k)), "--host", HOST, "--json"))
    try:
        got = psql(lab, out["host"], f"select count(*), coalesce(min(n), 0), coalesce(max(n), 0) "
                                     f"from {TABLE}", port=out["port"])
    finally:
        major, name = out["cluster"].split("/")
        lab.ssh(out["host"], f"pg_dropcluster {major} {name} --stop")
    return {"k": k, "exact": got == (f"{k}|1|{k}" if k else "0|0|0"), "got": got,
            "rto_s": out["seconds"], "backup": out["backup"]}


def summary(runs: list[dict]) -> dict:
    rto = sorted(r["rto_s"] for r in runs)
    kinds: dict[str, int] = {}
    for r in runs:  # pgBackRest's labels end in F, D or I
        kind = {"F": "full", "D": "diff", "I": "incr"}[r["backup"][-1]]
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"targets": len(runs), "exact": sum(r["exact"] for r in runs),
            "rto_s": {"min": rto[0], "median": statistics.median(rto),
                      "p90": rto[min(len(rto) - 1, int(len(rto) * 0.9))], "max": rto[-1]},
            "restored_from": kinds,
            "wrong": [r for r in runs if not r["exact"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", type=lambda v: max(1, int(v)), default=100)
    ap.add_argument("--segment-s", type=float, default=30.0, help="seconds between backups")
    ap.add_argument("--backups", type=int, default=len(KINDS), help="backups after the full one")
    ap.add_argument("--pause", type=float, default=0.1, help="seconds between the writer's commits")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--lab", default="bench", help="a lab that is up is used as it is")
    ap.add_argument("--keep", action="store_true", help="leave a lab this run booted up")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ["PGOPS_LAB"] = args.lab
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    lab = Lab(args.lab)
    booted = not lab.network_exists()
    if booted:
        say(f"booting the {args.lab} lab (pgops up)")
        pgops("up", "--hosts", "1")
    try:
        w, full_done, backups = history(lab, args.segment_s, args.pause, args.backups)
        rows = max(w.done)
        # k+1 has begun (k < rows), and row k committed after the full backup finished.
        ks = [k for k in range(1, rows) if w.done[k] > full_done]
        if not ks:
            sys.exit("no row was committed after the full backup; raise --segment-s")
        say(f"history: {rows} rows over {w.done[rows] - w.began[1]:.0f} s, backups "
            + ", ".join(f"{b['label']} ({b['type']})" for b in backups))
        rng = random.Random(seed)
        runs = []
        for i in range(args.targets):
            r = restore(lab, w, rng.choice(ks))
            runs.append(r)
            say(f"{i + 1}/{args.targets}: after row {r['k']} from {r['backup']}: "
                f"{'exact' if r['exact'] else 'WRONG ' + r['got']} in {r['rto_s']:.1f} s")
    finally:
        if booted and not args.keep:
            subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)
    result = {"seed": seed, "rows": rows, **summary(runs)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        t = result["rto_s"]
        print(f"exact restores: {result['exact']}/{result['targets']} (seed {seed}); RTO s: "
              f"min {t['min']:.1f}, median {t['median']:.1f}, p90 {t['p90']:.1f}, max {t['max']:.1f}; "
              f"restored from {result['restored_from']}")
    sys.exit(0 if result["exact"] == result["targets"] else 1)


if __name__ == "__main__":
    main()
