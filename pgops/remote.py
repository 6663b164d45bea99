"""One way to reach hosts outside a deploy: validate the inventory, check SSH, connect with
pyinfra, and run a command (optionally as another user) with its failure as one error."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

import gevent
from pyinfra.api import Config, State
from pyinfra.api.connect import connect_all
from pyinfra.api.host import Host
from pyinfra.context import ctx_config, ctx_host, ctx_inventory, ctx_state

from pgops.errors import CommandFailed, UnreachableHostError
from pgops.greenlets import spawn
from pgops.settings import Settings
from pgops.settings.inventory import load_inventory, validate_inventory


def address(host: Host) -> str:
    """Where this machine reaches a host: its ssh_hostname, else its inventory name."""
    return host.data.get("ssh_hostname") or host.name


def check_reachable(inventory, timeout: float = 5.0) -> None:
    """TCP-check every host's SSH port first, so an unreachable host stops the run before any
    host is changed, with the host and address in the message."""
    bad = []
    for h in inventory:
        addr = address(h)
        port = int(h.data.get("ssh_port") or 22)
        try:
            socket.create_connection((addr, port), timeout=timeout).close()
        except OSError as e:
            bad.append(f"{h.name} ({addr}:{port}): {e.strerror or e.__class__.__name__}")
    if bad:
        raise UnreachableHostError(
            "unreachable over SSH, nothing was changed on any host: " + "; ".join(bad)
        )


def connect(inventory_path: Path, require_all: bool = True) -> tuple[State, dict[str, Settings]]:
    """Validate the inventory and connect to its hosts with pyinfra. With require_all=False
    (status, restore) an unreachable host is reported by the caller instead of stopping all."""
    inventory = load_inventory(inventory_path)
    settings = validate_inventory(inventory, str(inventory_path))
    if require_all:
        check_reachable(inventory)
    config = Config()
    state = State(inventory, config)
    for ctx, value in ((ctx_state, state), (ctx_config, config), (ctx_inventory, inventory)):
        ctx.set(value)
    connect_all(state)
    return state, settings


def try_run(host: Host, command: str, user: str | None = None,
            timeout: int = 3600) -> tuple[bool, str]:
    """Run a shell command on a connected host (as `user` through sudo when given), from /:
    (succeeded, stdout), or (False, stderr or stdout) when it failed."""
    kw = {"_sudo": True, "_sudo_user": user} if user else {}
    with ctx_host.use(host):
        ok, out = host.run_shell_command(f"cd / && {command}", _timeout=timeout, **kw)
    return bool(ok), out.stdout if ok else (out.stderr.strip() or out.stdout.strip())


def outcome(g: gevent.Greenlet) -> tuple[bool, str]:
    """A finished try_run greenlet's (succeeded, output); one that raised (a lost connection,
    a timeout) is a failure whose text names the exception."""
    return g.value if g.successful() else (False, f"{type(g.exception).__name__}: {g.exception}")


def try_run_each(jobs: Sequence[tuple[Host, str]], user: str | None = None,
                 timeout: int = 3600) -> list[tuple[bool, str]]:
    """try_run of each (host, command) at once, one greenlet each: a step on every member
    costs one round trip, not one per member. The results in the jobs' order, every
    command waited for (a command that raised is its host's failure)."""
    greenlets = [spawn(try_run, h, c, user, timeout) for h, c in jobs]
    gevent.joinall(greenlets)
    return [outcome(g) for g in greenlets]


def run(host: Host, command: str, user: str | None = None, timeout: int = 3600) -> str:
    """Run a shell command on a connected host; its stdout, or CommandFailed with its stderr."""
    ok, out = try_run(host, command, user, timeout)
    if not ok:
        raise CommandFailed(f"{host.name}: `{command}` failed: {out[-2000:]}")
    return out
