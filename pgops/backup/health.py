"""Backup health of one database host for `pgops status`: fetch the facts (pgBackRest info,
pg_stat_archiver, the last drill), then decide with the shared rules (backup.rules)."""

from __future__ import annotations

import time

from pgops.backup import drill, rules
from pgops.backup.repository import Backups, info


def assess(st: dict, last_drill: dict | None, t: rules.Thresholds, now: float) -> dict:
    """The health report of one stanza's info (pure): ages, RPO, alerts."""
    ages = rules.backup_ages(st["backups"], now)
    arch = st["archiver"]
    rpo = rules.rpo_estimate(arch)
    age = arch.get("last_archived_age_s")
    age = None if age is None else round(float(age), 1)
    return {
        "backup_age_s": ages,
        "archiver_failed_count": arch.get("failed_count"),
        "last_archived_age_s": age,
        "unarchived_wal_bytes": rules.unarchived_bytes(arch),
        "rpo_estimate_s": None if rpo is None else round(float(rpo), 1),
        "repo_size_bytes": sum(backup["repo_size"] for backup in st["backups"]),
        "window": st["window"],
        "last_drill": last_drill and {k: last_drill.get(k) for k in ("at", "ok", "rto_s", "target_time")},
        "alerts": rules.alerts(ages, rpo, t, rules.archiving_failing(arch), last_drill, wal_age_s=age),
    }


def health(backups: Backups, db: str, t: rules.Thresholds | None = None) -> dict:
    """Backup health of one database host, with the alerts that make `pgops status` fail."""
    return assess(info(backups, db), drill.last(backups, db), t or rules.Thresholds(), time.time())
