"""Restore drills: prove the backups restore. Restore the latest point (or a random one) of
the window beside the live cluster, check it (pg_amcheck, schema version, row counts), record
the measured RTO, remove the copy. A failed drill is an error, and is recorded as one."""

from __future__ import annotations

import json
import random
import shlex
import time

from pgops import backrest
from pgops.backup import BackupError, Plan, info, run
from pgops.restore import cleanup, execute, iso
from pgops.restore import plan as restore_plan

# Drill results live with the backups they prove, on the repository host.
DRILL_DIR = f"{backrest.REPO_HOME}/pgops-drills"


def _log(db: str) -> str:
    return f"{DRILL_DIR}/{backrest.stanza(db)}.jsonl"


def record(p: Plan, db: str, entry: dict) -> None:
    line = shlex.quote(json.dumps(entry, default=str) + "\n")
    run(p.repo(db), f"mkdir -p {DRILL_DIR} && printf '%s' {line} >> {_log(db)}", p.repo_user(db))


def last(p: Plan, db: str) -> dict | None:
    """The most recent drill of a database host's stanza, or None."""
    out = run(p.repo(db), f"tail -n 1 {_log(db)} 2>/dev/null || true", p.repo_user(db)).strip()
    return json.loads(out) if out else None


def drill(p: Plan, db: str, point: str = "latest", seed: int | None = None, say=lambda m: None) -> dict:
    """Run one drill; returns the record (also appended to the drill log)."""
    w = info(p, db)["window"]
    if not w["earliest"]:
        raise BackupError(f"{db} has no backup to drill (run `pgops backup`)")
    if point == "random":
        target = random.Random(seed).uniform(w["earliest"], w["latest"])
    else:
        target = time.time()  # now: the restore archives past it first while the primary is up
    entry: dict = {"host": db, "at": time.time(), "target_time": iso(target), "point": point}
    rp = None
    t0 = time.monotonic()
    try:
        rp = restore_plan(p, db, iso(target))
        result = execute(p, rp, say=say)
        entry["rto_s"] = round(time.monotonic() - t0, 2)
        say("pg_amcheck on every database of the copy")
        amcheck = f"/usr/lib/postgresql/{p.settings[db].pg_major}/bin/pg_amcheck"
        out = run(p.db(result["host"]), f"runuser -u postgres -- {amcheck} -p {result['port']} "
                                        "--all --install-missing --heapallindexed 2>&1; echo rc=$?")
        entry["amcheck"] = "ok" if out.strip().endswith("rc=0") else out.strip()[-1000:]
        entry["verify"] = result["verify"]
        entry["ok"] = entry["amcheck"] == "ok"
    except BackupError as e:
        entry.update(ok=False, error=str(e))
    finally:
        if rp is not None:
            cleanup(p, rp)  # also after a failure: a drill leaves nothing behind
            entry["cleaned_up"] = True
        record(p, db, entry)
    return entry
