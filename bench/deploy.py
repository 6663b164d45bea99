"""Deploy benchmark, measured side by side in one run on a fresh `bench` lab (6 database
hosts, no repository host).

Prints: first-deploy and no-op re-deploy times for 1, 3 and 6 hosts (the no-ops' ratios to
one host: goal 6 hosts <= 1.5x), and the one-host no-op against a raw-pyinfra deploy of the
same kind of work with pyinfra's shipped operations (`bench/reference_deploy.py`, runs
interleaved: goal <= 1.2x). The tuned config against Debian's stock one: bench/tuning.py.

    .venv/bin/python bench/deploy.py [--keep] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ["PGOPS_LAB"] = "bench"  # the commands below run on the bench lab
PGOPS = str(Path(sys.executable).parent / "pgops")
PYINFRA = str(Path(sys.executable).parent / "pyinfra")


def timed(*args: str, cmd: list[str] | None = None, env: dict | None = None) -> float:
    """Seconds `pgops ARGS` (or `cmd`) took; the benchmark stops on a failure."""
    argv = cmd or [PGOPS, *args]
    t0 = time.monotonic()
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if r.returncode:
        sys.exit(f"{' '.join(argv)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return time.monotonic() - t0


def first_hosts(directory: Path, n: int) -> str:
    """An inventory of the lab's first `n` database hosts, with the lab's group data."""
    if not (directory / "group_data").exists():
        (directory / "group_data").symlink_to(ROOT / "inventory" / "group_data")
    path = directory / f"first{n}.py"
    path.write_text("from pgops.lab.inventory import db_servers as _db\n"
                    "_hosts, _data = _db()\n"
                    f"db_servers = (_hosts[:{n}], _data)\n")
    return str(path)


def runs(xs: list[float]) -> str:
    return f"{statistics.median(xs):6.2f} s   runs {[round(x, 2) for x in xs]}"


def deploy_times(rounds: int, tmp: Path) -> None:
    inv = {n: first_hosts(tmp, n) for n in (1, 3, 6)}
    ref_env = {"PGOPS_BENCH_REF_PASSWORD": secrets.token_urlsafe(18)}
    reference = [PYINFRA, inv[1], "bench/reference_deploy.py", "-y"]
    noop: dict[int, list[float]] = {}
    ref: list[float] = []
    for n in (1, 3, 6):
        first = timed("deploy", "-i", inv[n])
        print(f"first deploy, {n} host(s)                 {first:6.1f} s"
              + ("" if n == 1 else f"   ({n - (1 if n == 3 else 3)} hosts new)"))
        if n == 1:
            print(f"first raw-pyinfra reference deploy        {timed(cmd=reference, env=ref_env):6.1f} s")
            noop[1] = []
            for _ in range(rounds):  # interleaved: drift on a noisy machine hits both
                noop[1].append(timed("deploy", "-i", inv[1]))
                ref.append(timed(cmd=reference, env=ref_env))
        else:
            noop[n] = [timed("deploy", "-i", inv[n]) for _ in range(rounds)]
    for n in (1, 3, 6):
        print(f"no-op re-deploy, {n} host(s) (median)     {runs(noop[n])}")
    print(f"raw-pyinfra reference no-op (median)     {runs(ref)}")
    one = statistics.median(noop[1])
    print(f"ratio pgops / raw pyinfra, 1 host         {one / statistics.median(ref):6.2f} x  (goal <= 1.2)")
    for n in (3, 6):
        print(f"ratio {n} hosts / 1 host                   {statistics.median(noop[n]) / one:6.2f} x"
              + ("  (goal <= 1.5)" if n == 6 else ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep the bench lab afterwards")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)
    tmp = Path(tempfile.mkdtemp(prefix="pgops-bench-deploy-"))
    try:
        up = timed("lab", "up", "--hosts", "6", "--no-backup")
        print(f"lab up (6 hosts, image cached)           {up:6.1f} s")
        deploy_times(a.rounds, tmp)
    finally:
        if not a.keep:
            subprocess.run([PGOPS, "lab", "down"], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
