"""The scheduled-jobs runner with real jobs (plain functions) on short intervals: jobs fire,
never overlap, failures are retried and reported, and the runner keeps going."""

import io
import json
import threading
import time

import pytest

from pgops.errors import PgopsError
from pgops.schedule import Job, Runner, parse_interval


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(x) for x in out.getvalue().splitlines()]


def test_parse_interval():
    assert parse_interval("90s") == 90 and parse_interval("1h") == 3600 and parse_interval("1w") == 604800
    for bad in ("", "5", "0s", "1y", "-1h"):
        with pytest.raises(PgopsError, match="interval"):
            parse_interval(bad)


def test_jobs_fire_failures_are_retried_and_the_runner_survives():
    calls = {"ok": 0, "bad": 0}

    def ok():
        calls["ok"] += 1
        return {"n": calls["ok"]}

    def bad():
        calls["bad"] += 1
        raise RuntimeError("repository unreachable")

    out = io.StringIO()
    runner = Runner([Job("status", 0.3, ok), Job("backup", 0.5, bad, retries=2)], out,
                    backoff_base=0.01, backoff_max=0.02)
    runner.run(until=time.monotonic() + 2.0, tick=0.05)
    recs = lines(out)
    ok_runs = [r for r in recs if r["job"] == "status"]
    bad_runs = [r for r in recs if r["job"] == "backup"]
    assert len(ok_runs) >= 4 and all(r["ok"] and r["attempts"] == 1 for r in ok_runs)
    assert len(bad_runs) >= 2
    assert all(not r["ok"] and r["attempts"] == 3 and "repository unreachable" in r["error"]
               for r in bad_runs)
    assert calls["bad"] == 3 * len(bad_runs)
    # The runner went on after the first failure.
    first_fail = recs.index(bad_runs[0])
    assert any(r["job"] == "status" for r in recs[first_fail + 1:])


def test_jobs_never_overlap():
    active, peak = 0, 0
    lock = threading.Lock()

    def slow():
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.3)
        with lock:
            active -= 1

    out = io.StringIO()
    runner = Runner([Job("full", 0.1, slow), Job("diff", 0.1, slow), Job("drill", 0.1, slow)], out)
    runner.run(until=time.monotonic() + 1.5, tick=0.02)
    recs = lines(out)
    assert peak == 1 and len(recs) >= 3
    starts = sorted((r["started"], r["started"] + r["seconds"]) for r in recs)
    for (_s1, e1), (s2, _e2) in zip(starts, starts[1:], strict=False):
        assert s2 >= e1 - 0.01  # each run starts after the previous one ended
