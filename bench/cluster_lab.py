"""What the cluster benchmarks share: the `pgops` command and the bench lab cluster's status
(bench/ha.py, bench/endpoint.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

PGOPS = str(Path(sys.executable).parent / "pgops")


def pgops(*args: str) -> str:
    """Run the real `pgops`; its stdout, or exit with its output when it fails."""
    r = subprocess.run([PGOPS, *args], capture_output=True, text=True, timeout=1800)
    if r.returncode:
        raise SystemExit(f"pgops {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def cluster() -> dict:
    return json.loads(pgops("cluster", "status", "--json"))["clusters"][0]


def healthy(timeout: float = 240) -> dict:
    """The cluster once it has a leader and every member runs, on one timeline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = cluster()
        except SystemExit:
            c = {"leader": None, "members": []}
        if c["leader"] and all(m["state"] in ("running", "streaming") for m in c["members"]) \
                and len({m["timeline"] for m in c["members"]}) == 1:
            return c
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster not healthy after {timeout} s: {c}")
        time.sleep(1)


def arguments(doc: str, seconds: int, more=None):
    """The cluster benchmarks' options: --rounds, --seconds, --keep, --reuse."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=seconds)
    ap.add_argument("--keep", action="store_true", help="Keep the bench lab afterwards.")
    ap.add_argument("--reuse", action="store_true",
                    help="Measure on the bench lab left by --keep instead of a fresh one "
                         "(for trying a change; report figures from a fresh lab).")
    if more:
        more(ap)
    return ap.parse_args()


def fresh_cluster(reuse: bool = False) -> None:
    """A fresh bench lab with a 3-member cluster and no repository host, deployed from bare
    hosts by `pgops up --cluster --no-backup` (with `reuse`, the running one as it is)."""
    t0 = time.monotonic()
    if reuse:
        print("bench lab reused", flush=True)
        return
    pgops("lab", "down")
    pgops("up", "--cluster", "--no-backup")
    print(f"cluster up from bare hosts in {time.monotonic() - t0:.0f} s", flush=True)
