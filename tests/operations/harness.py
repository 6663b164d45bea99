"""Run a pyinfra operation's generator against a fake host whose facts come from a fixture,
and render what it yields as plain data (pyinfra's own tests/test_operations.py idea).

Fixture facts are keyed by fact class name. A fact read with arguments is a mapping from
pyinfra's `get_kwargs_str` of those arguments (sorted `key=value`, joined by ", ", connector
arguments such as `_sudo=True` included) to its value; a fact read without arguments is
the value itself. A fact the operation reads that the fixture lacks is an error, so a
fixture states every fact the operation consults (null for "absent").
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from pyinfra.api import Config, FileUploadCommand, FunctionCommand, StringCommand
from pyinfra.api.util import get_kwargs_str
from pyinfra.context import ctx_host, ctx_inventory, ctx_state

_MISSING = object()


class MissingFact(KeyError):
    pass


class FakeHost:
    """What an operation (and pyinfra's files.put/directory) touches on `host`."""

    print_prefix = ""
    current_op_global_arguments: dict[str, Any] = {}
    current_deploy_kwargs: dict[str, Any] | None = None

    def __init__(self, name: str, facts: dict, data: dict | None = None,
                 inventory: FakeInventory | None = None):
        self.name = name
        self.facts = facts
        self.data = data or {}
        self.groups: list[str] = []
        self.inventory = inventory
        self.noops: list[str] = []
        self.state = SimpleNamespace(ops={})  # no operation has run (pgops.operations.cache)

    def get_fact(self, fact_cls, *args, **kwargs):
        if args:
            raise TypeError(f"{fact_cls.__name__}: pass fact arguments by keyword in operations")
        name = fact_cls.__name__
        value = self.facts.get(name, _MISSING)
        if value is not _MISSING and kwargs:
            key = get_kwargs_str(kwargs)
            value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
            name = f"{name} [{key}]"
        if value is _MISSING:
            raise MissingFact(f"{self.name}: the fixture has no fact {name}")
        return value

    def run_shell_command(self, command, **kwargs):
        """No shell here: a batch read (pgops.operations.cache.read_together) fails, and its
        facts are read alone, from the fixture."""
        return False, None

    def noop(self, description: str) -> None:
        self.noops.append(description)

    def log(self, message, log_func=None) -> None:  # files.put with config.DIFF
        pass

    def get_temp_filename(self, hash_key=None, hash_filename=True, *, temp_directory=None):
        return "_tempfile_"


class FakeInventory:
    def __init__(self):
        self.hosts: dict[str, FakeHost] = {}

    def get_host(self, name: str, default=_MISSING):
        if name in self.hosts:
            return self.hosts[name]
        if default is _MISSING:
            raise KeyError(f"no host {name} in the fixture's inventory")
        return default


class FakeState:
    cwd = "/"

    def __init__(self, inventory: FakeInventory):
        self.inventory = inventory
        self.config = Config()


def make_host(fixture: dict) -> FakeHost:
    """The host under test (`facts`, `host`, `data`) and its peers (`peers`: name -> facts)."""
    inventory = FakeInventory()
    host = FakeHost(fixture.get("host", "db1"), fixture.get("facts", {}), fixture.get("data"),
                    inventory)
    inventory.hosts[host.name] = host
    for name, facts in fixture.get("peers", {}).items():
        inventory.hosts[name] = FakeHost(name, facts, inventory=inventory)
    return host


@dataclass
class Result:
    commands: list = field(default_factory=list)   # rendered: masked text / upload lists
    raw: list[str] = field(default_factory=list)   # unmasked text of every command
    noops: list[str] = field(default_factory=list)


def _unroll(items):
    for item in items:
        if isinstance(item, types.GeneratorType):
            yield from _unroll(item)
        else:
            yield item


def render(command) -> tuple[Any, str]:
    """(rendered form for fixtures, unmasked text): strings as pyinfra strips them,
    StringCommands masked, uploads as ["upload", content, dest] like pyinfra's tests."""
    if isinstance(command, str):
        text = command.strip()
        return text, text
    if isinstance(command, StringCommand):
        masked, raw = command.get_masked_value(), command.get_raw_value()
        if command.connector_arguments:
            return {"command": masked, **command.connector_arguments}, raw
        return masked, raw
    if isinstance(command, FileUploadCommand):
        src = command.src
        if hasattr(src, "read"):
            src.seek(0)
            src = src.read()
        return ["upload", src, command.dest], f"upload {command.dest}\n{src}"
    if isinstance(command, FunctionCommand):
        rendered = ["function", command.function.__name__, list(command.args), command.kwargs]
        return rendered, repr(rendered)
    raise TypeError(f"an operation yielded {command!r}, which is not a pyinfra command")


def run_operation(op, host: FakeHost, args=(), kwargs=None) -> Result:
    """Call the operation's undecorated generator with `host` as pyinfra's `host`."""
    state = FakeState(host.inventory)
    result = Result(noops=host.noops)
    with ctx_state.use(state), ctx_inventory.use(host.inventory), ctx_host.use(host):
        for command in _unroll(op._inner(*args, **(kwargs or {}))):
            rendered, raw = render(command)
            result.commands.append(rendered)
            result.raw.append(raw)
    return result


def resolve(dotted: str, package: str = "pgops"):
    """`postgres.role` -> pgops.operations.postgres.role (operations), or a full path under
    pgops such as `facts.postgres.PgRoles`."""
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(f"{package}.{module}"), name)
