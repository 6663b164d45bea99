"""Restore drills: prove the backups restore. Restore the latest point (or a random one) of
the window beside the live cluster, check it (pg_amcheck, schema version, row counts), record
the measured RTO, remove the copy. A failed drill is an error, and is recorded as one."""

from __future__ import annotations

import random
import shlex
import time
from collections.abc import Callable

from pgops.backup import rules
from pgops.backup.repository import Backups, info
from pgops.backup.restore import cleanup, execute, iso
from pgops.backup.restore import plan as restore_plan
from pgops.errors import BackupError, CommandFailed
from pgops.remote import run
from pgops.server.cluster import bindir


def record(backups: Backups, db: str, entry: dict) -> None:
    line = shlex.quote(rules.drill_line(entry))
    log = rules.drill_log(backups.stanza(db))
    backups.run_on_repo(db, f"mkdir -p {rules.DRILL_DIR} && printf '%s' {line} >> {log}")


def last(backups: Backups, db: str) -> dict | None:
    """The most recent drill of a database host's stanza, or None."""
    log = rules.drill_log(backups.stanza(db))  # the repository host's timer writes the same
    return rules.last_drill(backups.run_on_repo(db, f"tail -n 1 {log} 2>/dev/null || true"))


def drill(backups: Backups, db: str, point: str = "latest", seed: int | None = None,
          say: Callable[[str], None] = lambda m: None) -> dict:
    """Run one drill; returns the record (also appended to the drill log)."""
    w = info(backups, db)["window"]
    if not w["earliest"]:
        raise BackupError(f"{db} has no backup to drill (run `pgops backup`)")
    if point == "random":
        target = random.Random(seed).uniform(w["earliest"], w["latest"])
    else:
        target = time.time()  # now: the restore archives past it first while the primary is up
    entry = rules.new_drill(db, point, iso(target), at=time.time(), where=db)
    rp = None
    t0 = time.monotonic()
    try:
        rp = restore_plan(backups, db, iso(target), scratch=True)
        result = execute(backups, rp, say=say)
        entry["rto_s"] = round(time.monotonic() - t0, 2)
        say("pg_amcheck on every database of the copy")
        amcheck = f"{bindir(backups.settings[db].pg_major)}/pg_amcheck"
        out = run(backups.db(result["host"]), f"runuser -u postgres -- {amcheck} -p {result['port']} "
                                        "--all --install-missing --heapallindexed 2>&1; echo rc=$?")
        text, _, rc = out.strip().rpartition("rc=")
        entry["amcheck"] = rules.amcheck_result(int(rc), text)
        entry["verify"] = result["verify"]
        entry["ok"] = entry["amcheck"] == "ok"
    except (BackupError, CommandFailed) as e:
        entry.update(ok=False, error=str(e))
    finally:
        if rp is not None:
            cleanup(backups, rp)  # also after a failure: a drill leaves nothing behind
            entry["cleaned_up"] = True
        record(backups, db, entry)
    return entry
