"""Prometheus textfile-collector metrics for the rows of `pgops status` (pure rendering)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: name, help, and the samples of one host's backup report: (extra labels, value) pairs.
Samples = Callable[[dict], Iterable[tuple[str, object]]]


def _one(key: str, default: object = None) -> Samples:
    return lambda report: [] if report.get(key, default) is None else [("", report.get(key, default))]


BACKUP_METRICS: tuple[tuple[str, str, Samples], ...] = (
    ("pgops_backup_age_seconds", "Age of the newest backup of a type.",
     lambda report: [(f',type="{k}"', v) for k, v in (report.get("backup_age_s") or {}).items()
                     if v is not None]),
    ("pgops_wal_last_archived_age_seconds", "Seconds since the last WAL was archived.",
     _one("last_archived_age_s")),
    ("pgops_rpo_estimate_seconds", "Seconds of work at risk (0: no WAL waiting).",
     _one("rpo_estimate_s")),
    ("pgops_wal_archive_failed_total", "pg_stat_archiver.failed_count.",
     # A host whose repository did not answer has no report but its alerts.
     lambda report: ([("", report["archiver_failed_count"] or 0)] if "archiver_failed_count" in report
                     else [])),
    ("pgops_repo_size_bytes", "Repository bytes of this host's backups.", _one("repo_size_bytes")),
    ("pgops_alerts", "Number of backup alerts.", lambda report: [("", len(report["alerts"]))]),
)


def prometheus(rows: list[dict]) -> str:
    out = ["# HELP pgops_up 1 if the server answered.", "# TYPE pgops_up gauge"]
    out += [f'pgops_up{{host="{r["host"]}"}} {1 if r["up"] else 0}' for r in rows]
    for name, help_, samples in BACKUP_METRICS:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
        for r in rows:
            if r.get("backup"):
                out += [f'{name}{{host="{r["host"]}"{labels}}} {v}' for labels, v in samples(r["backup"])]
    return "\n".join(out) + "\n"
