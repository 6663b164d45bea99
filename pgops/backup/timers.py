"""systemd units for the scheduled jobs on a repository host (pure rendering).

One template service per job (`pgops-full@.service`, instance = stanza) running
`pgops-repo-job`, and one timer per job and stanza (`pgops-full@db1.timer`), so each database
host can have its own calendar. The same jobs as `pgops schedule run`."""

from __future__ import annotations

from pathlib import Path

from pgops.backup import backrest
from pgops.backup.rules import JOBS
from pgops.settings import BackupTimers

#: The job runner and the rules it shares with pgops, installed side by side.
SCRIPT_SOURCE = Path(__file__).parent / "repo_job.py"
RULES_SOURCE = Path(__file__).parent / "rules.py"
SCRIPT = f"{backrest.LIB_DIR}/pgops-repo-job"
RULES = f"{backrest.LIB_DIR}/rules.py"
UNIT_DIR = "/etc/systemd/system"

_WHAT = {"full": "full backup", "diff": "differential backup", "incr": "incremental backup",
         "drill": "restore drill", "status": "backup status check"}


def service_name(job: str) -> str:
    """The template service (instance = stanza, which the timer of the same name starts)."""
    return f"pgops-{job}@.service"


def timer_name(job: str, stanza: str) -> str:
    return f"pgops-{job}@{stanza}.timer"


def service(job: str, user: str = backrest.REPO_USER) -> str:
    # Backups and drills can run for hours; status must be quick.
    limit = "5min" if job == "status" else "infinity"
    return (
        "# Managed by pgops: edits here are overwritten on the next deploy.\n"
        "[Unit]\n"
        f"Description=pgops {_WHAT[job]} of stanza %i\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"User={user}\n"
        f"Group={user}\n"
        f"ExecStart={SCRIPT} {job} %i\n"
        f"TimeoutStartSec={limit}\n"
        "Nice=5\n"
        "IOSchedulingClass=best-effort\n"
    )


def timer(job: str, stanza: str, calendar: str) -> str:
    return (
        "# Managed by pgops: edits here are overwritten on the next deploy.\n"
        "[Unit]\n"
        f"Description=pgops {_WHAT[job]} of stanza {stanza}: {calendar}\n\n"
        "[Timer]\n"
        f"OnCalendar={calendar}\n"
        "AccuracySec=1s\n"
        # A full or diff missed while the host was off runs at boot; status and drills need not.
        f"Persistent={'true' if job in ('full', 'diff') else 'false'}\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )


def wanted(timers: BackupTimers | None) -> dict[str, str]:
    """job -> calendar for the jobs that get a timer."""
    if timers is None:
        return {}
    return {j: getattr(timers, j) for j in JOBS if getattr(timers, j)}
