"""Greenlets that carry pyinfra's context: pyinfra keeps its config and current host
greenlet-local, so a greenlet spawned bare would see neither."""

from __future__ import annotations

from collections.abc import Callable

import gevent
from pyinfra.context import ctx_config, ctx_host


def spawn(fn: Callable[..., object], *args: object) -> gevent.Greenlet:
    """fn(*args) in a new greenlet that sees this one's pyinfra config and current host
    (pyinfra's connections are gevent's: hosts are reached at once)."""
    config, current = ctx_config.get(), ctx_host.get()

    def within() -> object:
        with ctx_config.use(config), ctx_host.use(current):
            return fn(*args)

    return gevent.spawn(within)
