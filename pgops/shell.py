"""Shell fragments shared by the commands pgops runs on hosts."""

from __future__ import annotations

import shlex


def wait_until(condition: str, seconds: int, interval: float, failure: str | None,
               each: str = "") -> str:
    """A shell loop polling `condition` every `interval` s for at most `seconds` of
    wall-clock time (a counted number of polls runs long when each starts a process or
    waits for an answer). At the limit it fails with `failure` on stderr, or with no
    `failure` the loop just ends. `each`: shell run before each look at the clock (it may
    exit: a wait that can end early)."""
    limit = f"echo {shlex.quote(failure)} >&2; exit 1" if failure is not None else "break"
    return (f"end=$(( $(date +%s) + {seconds} )); until {condition}; do {each}"
            f"if [ $(date +%s) -ge $end ]; then {limit}; fi; sleep {interval}; done")
