"""The shared shell wait, run by sh: it ends when its condition holds, or at its limit by
the clock, failing with its message or (with none) just ending."""

from __future__ import annotations

import subprocess
import time

from pgops.shell import wait_until


def _sh(script: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    r = subprocess.run(["sh", "-c", script + "; echo after"], capture_output=True, text=True,
                       timeout=20)
    return r, time.monotonic() - t0


def test_a_wait_ends_when_its_condition_holds():
    r, took = _sh(wait_until("[ -n \"$x\" ]", 5, 0.05, "never", each="x=1; "))
    assert r.returncode == 0 and r.stdout == "after\n" and took < 2


def test_at_its_limit_a_wait_fails_with_its_message_or_without_one_ends():
    r, took = _sh(wait_until("false", 1, 0.1, "it's still not there after 1 s"))
    assert r.returncode == 1 and r.stderr.strip() == "it's still not there after 1 s"
    assert r.stdout == "" and took < 3
    r, took = _sh(wait_until("false", 1, 0.1, None))
    assert r.returncode == 0 and r.stdout == "after\n" and took < 3
