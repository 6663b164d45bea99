"""The lab's traffic rules: hosts talk to each other and to the package mirror, nothing else.

Rules live in Docker's DOCKER-USER chain, each tagged with a comment naming the lab, so
teardown removes exactly what this module added.
"""

from __future__ import annotations

import subprocess

CHAIN = "DOCKER-USER"


def _tag(lab: str) -> str:
    return f"pgops-lab:{lab}"


def rules(lab: str, subnet: str, mirror_ip: str) -> list[list[str]]:
    """The rules in the order they must match (first match wins)."""
    c = ["-m", "comment", "--comment", _tag(lab)]
    return [
        ["-s", subnet, "-d", subnet, *c, "-j", "ACCEPT"],
        ["-s", subnet, "-d", f"{mirror_ip}/32", "-p", "tcp", "-m", "multiport",
         "--dports", "80,443", *c, "-j", "ACCEPT"],
        ["-d", subnet, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", *c, "-j", "ACCEPT"],
        ["-s", subnet, *c, "-j", "DROP"],
        ["-d", subnet, *c, "-j", "DROP"],
    ]


def apply(lab: str, subnet: str, mirror_ip: str) -> None:
    remove(lab)
    # Insert at the top in reverse so the chain reads in the order above.
    for rule in reversed(rules(lab, subnet, mirror_ip)):
        subprocess.run(["iptables", "-I", CHAIN, "1", *rule], check=True)


def present(lab: str) -> list[str]:
    out = subprocess.run(["iptables", "-S", CHAIN], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if _tag(lab) in (w.strip('"') for w in line.split())]


def remove(lab: str) -> int:
    """Delete every rule tagged for this lab; returns how many were removed."""
    removed = 0
    for line in present(lab):
        spec = line.split()[2:]  # drop "-A DOCKER-USER"
        spec = [s.strip('"') for s in spec]
        subprocess.run(["iptables", "-D", CHAIN, *spec], check=False)
        removed += 1
    return removed
