"""The scheduled-jobs runner behind `pgops schedule run`: a foreground process (fit for
systemd or a container) built on the `schedule` library. Jobs run one at a time (never
overlapping), a failing job is retried with exponential backoff and reported, the runner
never dies from a job's error, and every run is one JSON line on stdout."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import schedule
from tenacity import Retrying, stop_after_attempt, wait_exponential

from pgops.backup.rules import JOBS
from pgops.client.dump import KEEP
from pgops.errors import PgopsError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_interval(text: str) -> float:
    """`90s`, `15m`, `1h`, `1d`, `1w` -> seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if not m or float(m[1]) <= 0:
        raise PgopsError(f"interval {text!r}: use a positive number with s, m, h, d or w (e.g. 1h)")
    return float(m[1]) * UNITS[m[2]]


@dataclass
class Job:
    name: str
    every_s: float
    func: Callable[[], object]
    retries: int = 2


class Runner:
    def __init__(self, jobs: list[Job], out: IO[str] = sys.stdout, backoff_base: float = 1.0,
                 backoff_max: float = 60.0):
        self.jobs = jobs
        self.out = out
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.scheduler = schedule.Scheduler()
        self.running: str | None = None
        for job in jobs:
            # schedule annotates `every` with int, but float seconds work (they go into a timedelta).
            self.scheduler.every(job.every_s).seconds.do(self.run_job, job)  # type: ignore[arg-type]

    def _log(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, default=str) + "\n")
        self.out.flush()

    def run_job(self, job: Job) -> dict[str, Any]:
        """Run one job with retries; report, never raise (the runner must outlive any job)."""
        record: dict[str, Any]
        if self.running:  # cannot happen with one thread; kept as the invariant's guard
            record = {"job": job.name, "event": "skipped", "ok": False,
                      "reason": f"{self.running} is running"}
            self._log(record)
            return record
        self.running = job.name
        started, attempts = time.time(), 0
        record = {"job": job.name, "event": "run", "started": started}
        try:
            for attempt in Retrying(stop=stop_after_attempt(job.retries + 1), reraise=True,
                                    wait=wait_exponential(multiplier=self.backoff_base,
                                                          max=self.backoff_max)):
                with attempt:
                    attempts += 1
                    result = job.func()
            record.update(ok=True, result=result)
        except Exception as e:  # noqa: BLE001 - any job error is reported, not fatal
            record.update(ok=False, error=f"{e.__class__.__name__}: {str(e).strip()[:2000]}")
        finally:
            self.running = None
        record.update(attempts=attempts, seconds=round(time.time() - started, 3))
        self._log(record)
        return record

    def run(self, until: float | None = None, tick: float = 0.2) -> None:
        """Run pending jobs until `until` (monotonic seconds) or forever; jobs due at start
        run first, so a fresh runner does not wait a whole interval."""
        self.scheduler.run_all()
        while until is None or time.monotonic() < until:
            self.scheduler.run_pending()
            time.sleep(tick)


#: The jobs: the repository jobs (backup.rules.JOBS), and logical dumps.
JOB_NAMES = (*JOBS, "dump")


def pgops_jobs(inventory, intervals: dict[str, str], names: tuple[str, ...] = JOBS,
               keep: int = KEEP, dump_target=None) -> list[Job]:
    """The operator's jobs on an inventory: backups of each type, drills, status checks; and
    logical dumps into backups/ keeping the newest `keep` (of `dump_target`, a DSN Target, when
    given: the dev stack's backup service; else of the inventory's first database host)."""
    if set(names) - {"dump"}:  # these need pyinfra; the dev image schedules dumps without it
        from pgops.backup import drill as d
        from pgops.backup import repository
        from pgops.status import server_status

    def take_backups(kind: str) -> Callable[[], object]:
        def run() -> object:
            backups = repository.connect(inventory)
            return [repository.take(backups, db, kind) for db in backups.stanzas]
        return run

    def drills() -> object:
        backups = repository.connect(inventory)
        results = [d.drill(backups, db) for db in backups.stanzas]
        failed = [r for r in results if not r["ok"]]
        if failed:
            raise PgopsError(f"drill failed: {failed[0].get('error') or failed[0].get('amcheck')}")
        return [{"host": r["host"], "rto_s": r["rto_s"]} for r in results]

    def status() -> object:
        rows = server_status(inventory)
        alerts = {r["host"]: (r.get("backup") or {}).get("alerts", []) for r in rows}
        down = [r["host"] for r in rows if not r["up"]]
        if down or any(alerts.values()):
            raise PgopsError(f"unhealthy: down={down} alerts={ {h: a for h, a in alerts.items() if a} }")
        return {"hosts": len(rows), "healthy": True}

    def dumps() -> object:
        from pgops.client import dump, dump_dsn

        if dump_target is not None:
            r = dump_dsn.dump(dump_target, keep=keep)
        else:
            r = dump.dump(inventory, keep=keep)
        return {"file": r["file"], "bytes": r["bytes"], "pruned": len(r["pruned"])}

    funcs = {"full": take_backups("full"), "diff": take_backups("diff"), "incr": take_backups("incr"),
             "drill": drills, "status": status, "dump": dumps}
    retries = {"status": 0}
    unknown = set(names) - set(JOB_NAMES)
    if unknown:
        raise PgopsError(f"--jobs: unknown job(s) {', '.join(sorted(unknown))} (have {', '.join(JOB_NAMES)})")
    return [Job(n, parse_interval(intervals[n]), funcs[n], retries.get(n, 2)) for n in names]
