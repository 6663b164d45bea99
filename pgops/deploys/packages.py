"""Debian packages on the host being deployed."""

from __future__ import annotations

from collections.abc import Iterable

from pyinfra import host
from pyinfra.facts.deb import DebPackages


def missing(packages: Iterable[str]) -> bool:
    """Whether any of `packages` is not installed here: then apt's lists are updated before
    installing (a fresh host's may be empty or stale)."""
    installed = host.get_fact(DebPackages) or {}
    return any(p not in installed for p in packages)
