"""Leader faults that the cluster lab tests and bench/ha.py inject, defined once: per kind,
(inject, heal) taking the lab and the member; heal is None when Patroni recovers alone.
The lab's database hosts run the default cluster (`pg_major`, `main`)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from pgops.ha import patroni
from pgops.lab.core import Lab
from pgops.server.cluster import Cluster
from pgops.settings import Settings

Fault = Callable[[Lab, str], object]

LAB_CLUSTER = Cluster(Settings.model_fields["pg_major"].default, "main")
UNIT = patroni.service(LAB_CLUSTER)


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=120)


def _postmaster_killed(lab: Lab, member: str) -> object:
    return lab.ssh(member, f"kill -9 $(head -1 {LAB_CLUSTER.data}/postmaster.pid)")


FAULTS: dict[str, tuple[Fault, Fault | None]] = {
    # The host is gone: no RST, no goodbye; its leader key expires after the TTL.
    "docker kill": (lambda lab, m: docker("kill", lab.host(m).container),
                    lambda lab, m: docker("start", lab.host(m).container)),
    # PostgreSQL dies, Patroni lives: it restarts PostgreSQL or releases the leader key.
    "kill -9 postmaster": (_postmaster_killed, None),
    # Patroni stops cleanly: it stops PostgreSQL and releases the leader key.
    "Patroni stopped": (lambda lab, m: lab.ssh(m, f"systemctl stop {UNIT}"),
                        lambda lab, m: lab.ssh(m, f"systemctl start {UNIT}")),
}
