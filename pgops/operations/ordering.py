"""A step every host passes at one call site, to order operations across hosts.

pyinfra orders each host's operations in its own sequence, and operations of different
hosts only through the operations they share (the same call site on several hosts is one
node of its ordering graph). A host's later operations therefore may run before another
host's earlier ones, unless both pass a shared step in between.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation


@operation()
def every_host_reaches(step: str):
    """Change nothing; every host that calls this (at one call site) runs what precedes it
    before any of them runs what follows.

    + step: what has happened on every host by then, for the output
    """
    host.noop(f"every host is past: {step}")
    yield from ()
