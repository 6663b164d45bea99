"""Debian packages on the host being deployed."""

from __future__ import annotations

from collections.abc import Iterable
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt, server

from pgops.facts.system import DpkgInterrupted, HasAesInstructions, HostResources
from pgops.operations import apt as apt_ops
from pgops.operations import cache, files

APT_CONF = "/etc/apt/apt.conf.d/50pgops"
#: Another apt run (one left over from a deploy that was killed, unattended-upgrades) holds
#: dpkg's lock: wait for it, rather than fail at once. A mirror that cannot be reached fails
#: `apt-get update` with apt's own "Failed to fetch <url>", rather than the update passing
#: with a warning and the install failing later with "Unable to locate package".
APT_SETTINGS = """// Managed by pgops: wait for another apt or dpkg run instead of failing at once,
// and fail an update that could not fetch every list.
DPkg::Lock::Timeout "600";
APT::Update::Error-Mode "any";
"""


#: Set on a host whose apt lists this run already updates (its first deploy).
_UPDATED = "_pgops_apt_lists_updated"


def missing(packages: Iterable[str]) -> bool:
    """Whether any of `packages` is not installed here: then apt's lists are updated before
    installing (a fresh host's may be empty or stale)."""
    return bool(apt_ops.missing(list(packages), cache.fact(DebPackages)))


def lists_stale_for(packages: Iterable[str]) -> bool:
    """Whether apt's lists need an update before installing `packages`: one is missing, and
    this run's first step does not already update them here (each update costs 10-15 s, and
    pyinfra runs one operation on every host before the next)."""
    return missing(packages) and not getattr(host, _UPDATED, False)


@deploy("Package manager ready")
def apt_ready() -> None:
    """Before any install: apt waits for a lock another run holds, an update that cannot
    reach the mirror fails by saying so, and a dpkg run that was stopped half-way is
    finished, so a deploy re-run after one was killed converges."""
    # What the deploys ask of every host first, in one round trip instead of one each.
    cache.read_together([(File, {"path": APT_CONF}), (DpkgInterrupted, {}), (DebPackages, {}),
                         (LinuxDistribution, {}), (HostResources, {}), (HasAesInstructions, {})])
    first = not cache.fact(File, path=APT_CONF)  # no deploy has reached this host yet
    files.put(name="apt waits for another run's lock", src=StringIO(APT_SETTINGS), dest=APT_CONF,
              mode="644")
    if cache.fact(DpkgInterrupted):
        # dpkg takes no lock timeout: a run still going (the killed deploy's) is waited for.
        server.shell(name="Finish the dpkg run that was interrupted",
                     commands=["for i in $(seq 300); do DEBIAN_FRONTEND=noninteractive dpkg "
                               "--force-confdef --force-confold --configure -a && exit 0; "
                               "sleep 2; done; exit 1"])
    if first:  # one update on every new host at once, before any deploy installs there
        apt.update(name="Update apt lists (first deploy here)")
        setattr(host, _UPDATED, True)
