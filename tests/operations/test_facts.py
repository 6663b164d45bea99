"""Every fixture in facts/<path under pgops>.<Fact>/<case>.json (e.g. facts.postgres.PgRoles):
the fact's `command(**kwargs)` is `command` (a string, or a list of lines joined by newlines),
its `requires_command` is `requires_command`, and `process(output)` of the output lines is
`fact` (a dataclass compared as a dict). Keys other than `kwargs`, `output` and `fact` are
optional, so a case about parsing need not repeat the command.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.operations.harness import resolve

FIXTURES = Path(__file__).parent / "facts"
CASES = sorted(FIXTURES.glob("*.*/*.json"))


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fact(path: Path):
    fixture = json.loads(path.read_text(encoding="utf-8"))
    unknown = set(fixture) - {"description", "kwargs", "command", "requires_command", "output", "fact"}
    assert not unknown, f"unknown fixture keys {sorted(unknown)}"
    fact = resolve(path.parent.name)()
    kwargs = fixture.get("kwargs", {})
    if "command" in fixture:
        want = fixture["command"]
        assert fact.command(**kwargs) == ("\n".join(want) if isinstance(want, list) else want)
    if "requires_command" in fixture:
        required = fact.requires_command
        assert (required(**kwargs) if callable(required) else required) == fixture["requires_command"]
    got = fact.process(fixture["output"])
    if dataclasses.is_dataclass(got):
        got = dataclasses.asdict(got)
    assert got == fixture["fact"]


def test_every_fact_has_a_command_case():
    facts = {p.parent.name for p in CASES}
    with_command = {p.parent.name for p in CASES if "command" in json.loads(p.read_text())}
    assert facts == with_command
    assert {"facts.postgres.PgServer", "facts.postgres.PgRoles", "facts.postgres.PgDatabases",
            "facts.postgres.PgExtensions", "facts.postgres.PgArchiver",
            "facts.pgbackrest.PgbackrestInfo", "facts.system.HostResources",
            "facts.system.HasAesInstructions", "facts.system.BadCalendars",
            "operations.pgbackrest.SshHostKeys"} <= facts
