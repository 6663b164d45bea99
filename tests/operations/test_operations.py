"""Every fixture in fixtures/<module>.<operation>/<case>.json: the operation
pgops.operations.<module>.<operation>, given `args`/`kwargs` and the fake host's `facts`
(and its `peers`' facts), yields exactly `commands`, or raises `exception`.

Fixture keys:
  description       what the case is (free text)
  args, kwargs      the operation's arguments; `role` and `db` dicts become Role/Database
  host, data        the host's name (default db1) and host.data
  facts             fact class name -> value, or -> {"<get_kwargs_str>": value} (see harness)
  peers             inventory host name -> its facts, for operations that read a peer's facts
  commands          the rendered commands, in order (harness.render)
  noop_description  the host.noop text; a list for several, null or absent for none
  exception         {"name": class name, "message": str(exception)}
  secrets           strings no command may show, masked or not; a `password` kwarg always is
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from pgops.server import scram
from pgops.settings import Database, Role
from tests.operations.harness import MissingFact, make_host, resolve, run_operation

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(FIXTURES.glob("*.*/*.json"))
MODELS = {"role": Role, "db": Database}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def case_kwargs(fixture: dict) -> dict:
    return {k: MODELS[k](**v) if k in MODELS and isinstance(v, dict) else v
            for k, v in fixture.get("kwargs", {}).items()}


def run(path: Path):
    fixture = load(path)
    op = resolve(f"operations.{path.parent.name}")
    host = make_host(fixture)
    return fixture, run_operation(op, host, fixture.get("args", ()), case_kwargs(fixture))


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_operation(path: Path):
    fixture = load(path)
    unknown = set(fixture) - {"description", "args", "kwargs", "host", "data", "facts", "peers",
                              "commands", "noop_description", "exception", "secrets"}
    assert not unknown, f"unknown fixture keys {sorted(unknown)}"
    if "exception" in fixture:
        with pytest.raises(Exception) as info:
            run(path)
        assert type(info.value).__name__ == fixture["exception"]["name"]
        assert str(info.value) == fixture["exception"]["message"]
        return
    fixture, result = run(path)
    assert result.commands == fixture["commands"]
    noops = fixture.get("noop_description")
    assert result.noops == ([] if noops is None else [noops] if isinstance(noops, str) else noops)
    secrets = list(fixture.get("secrets", []))
    if isinstance(fixture.get("kwargs", {}).get("password"), str):
        secrets.append(fixture["kwargs"]["password"])
    for secret in secrets:
        for text in [*map(json.dumps, result.commands), *result.raw]:
            assert secret not in text


def test_every_operation_has_cases():
    ops = {p.parent.name for p in CASES}
    assert {"postgres.role", "postgres.settings_file", "postgres.hba_file", "postgres.database",
            "postgres.extension", "pgbackrest.stanza", "pgbackrest.ssh_key", "pgbackrest.trust",
            "pgbackrest.legacy_config_moved_aside"} <= ops


def test_fixture_verifier_matches_its_password():
    """The `current` fixture stores a verifier's params and digest made once from its password
    with a fixed salt: recompute them, so the no-op case rests on a real verifier."""
    fixture = load(FIXTURES / "postgres.role" / "password_unchanged.json")
    current = fixture["facts"]["PgRoles"]["port=5432"][fixture["kwargs"]["role"]["name"]]
    params = current["scram_params"]
    iterations, salt = params.split(":")
    v = scram.verifier(fixture["kwargs"]["password"], base64.b64decode(salt), int(iterations))
    assert hashlib.sha256(v.encode()).hexdigest() == current["scram_digest"]


def test_password_sent_is_a_verifier_of_the_password():
    """The masked `<scram-verifier>` stands for a SCRAM verifier of the given password, not
    the password: take it from the unmasked command and check it against the password."""
    for name in ("password_changed", "create_with_password"):
        fixture, result = run(FIXTURES / "postgres.role" / f"{name}.json")
        found = [m for raw in result.raw for m in re.findall(r"SCRAM-SHA-256\$[^']+", raw)]
        assert len(found) == 1, name
        v = found[0]
        params = v.split("$")[1]
        digest = hashlib.sha256(v.encode()).hexdigest()
        assert scram.matches(fixture["kwargs"]["password"], params, digest)
        assert not scram.matches(fixture["kwargs"]["password"] + "x", params, digest)


def test_a_fact_the_fixture_lacks_is_an_error():
    """Facts are strict: an operation reading a fact (or fact arguments) the fixture does not
    state fails, rather than planning against a silent None."""
    op = resolve("operations.postgres.extension")
    host = make_host({"facts": {"PgExtensions": {"database=app, port=5433": {}}}})
    with pytest.raises(MissingFact, match=r"PgExtensions \[database=app, port=5432\]"):
        run_operation(op, host, kwargs={"database": "app", "extension_name": "vector"})
