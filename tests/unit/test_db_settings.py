"""DbSettings.from_env and .check, read_env_file, redact and Target.without_password (no
database: check runs against a fake connection)."""

from __future__ import annotations

import psycopg
import pytest
from pydantic import ValidationError

from pgops.client import db
from pgops.client.db import DbSettings, read_env_file, redact
from pgops.client.targets import Target
from pgops.errors import ConfigError, DbUnavailable

FILE_URL = "postgresql://file_user@file-host:5432/file_db"
ENV_URL = "postgresql://env_user@env-host:5432/env_db"
TEST_URL = "postgresql://test_user@test-host:5432/test_db"


@pytest.fixture
def env_file(tmp_path):
    path = tmp_path / ".env"
    path.write_text(f"DATABASE_URL={FILE_URL}\nDATABASE_URL_TEST={TEST_URL}\n")
    return path


def settings(env_file=None, **environ) -> DbSettings:
    return DbSettings.from_env(environ=environ, env_file=env_file)


def problems(env_file=None, **environ) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        settings(env_file, **environ)
    return exc.value.problems


# --- from_env -----------------------------------------------------------------------------


def test_defaults_without_anything(tmp_path):
    s = settings(tmp_path / "missing.env")
    assert s.url == ""
    assert s.environment == "dev"
    assert (s.pool_min, s.pool_max) == (2, 20)
    assert s.pool_idle_timeout == 30.0
    assert s.pool_timeout == 10.0


def test_env_file_is_read(env_file):
    assert settings(env_file).url == FILE_URL


def test_environ_database_url_wins_over_env_file(env_file):
    assert settings(env_file, DATABASE_URL=ENV_URL).url == ENV_URL


def test_environ_wins_for_every_key(env_file):
    env_file.write_text(env_file.read_text() + "DB_POOL_MAX=7\nPGOPS_ENV=staging\n")
    s = settings(env_file, DB_POOL_MAX="9")
    assert s.pool_max == 9
    assert s.environment == "staging"


def test_explicit_url_argument_wins(env_file):
    s = DbSettings.from_env(environ={"DATABASE_URL": ENV_URL}, env_file=env_file, url="host=x")
    assert s.url == "host=x"


def test_pgops_env_test_reads_database_url_test(env_file):
    s = settings(env_file, PGOPS_ENV="test", DATABASE_URL=ENV_URL)
    assert s.environment == "test"
    assert s.url == TEST_URL


def test_pgops_env_test_from_env_file(env_file):
    env_file.write_text(env_file.read_text() + "PGOPS_ENV=test\n")
    assert settings(env_file).url == TEST_URL


def test_test_environment_never_falls_back_to_database_url(tmp_path):
    s = settings(tmp_path / "missing.env", PGOPS_ENV="test", DATABASE_URL=ENV_URL)
    assert s.url == ""


def test_node_env_development_maps_to_dev(env_file):
    s = settings(env_file, NODE_ENV="development")
    assert s.environment == "dev"
    assert s.url == FILE_URL


def test_node_env_test_reads_database_url_test(env_file):
    assert settings(env_file, NODE_ENV="test").url == TEST_URL


def test_pgops_env_takes_precedence_over_node_env(env_file):
    s = settings(env_file, PGOPS_ENV="staging", NODE_ENV="test")
    assert s.environment == "staging"
    assert s.url == FILE_URL


def test_unknown_environment_refused():
    assert any("environment" in p for p in problems(PGOPS_ENV="prod"))


def test_idle_timeout_given_in_ms():
    s = settings(DB_POOL_IDLE_TIMEOUT="30000", DB_POOL_TIMEOUT="2500")
    assert s.pool_idle_timeout == 30.0
    assert s.pool_timeout == 2.5


def test_pool_sizes_parsed_from_strings():
    s = settings(DB_POOL_MIN="3", DB_POOL_MAX="4", DB_CONNECT_TIMEOUT="7", DB_RETRY_ATTEMPTS="2")
    assert (s.pool_min, s.pool_max, s.connect_timeout, s.retry_attempts) == (3, 4, 7, 2)


def test_pool_min_equal_to_max_ok():
    assert settings(DB_POOL_MIN="5", DB_POOL_MAX="5").pool_min == 5


def test_pool_min_above_max_refused():
    (p,) = problems(DB_POOL_MIN="10", DB_POOL_MAX="5")
    assert "DB_POOL_MIN" in p and "DB_POOL_MAX" in p
    assert "10" in p and "5" in p


def test_production_with_sslmode_disable_refused():
    (p,) = problems(PGOPS_ENV="production", DATABASE_URL="postgresql://u@h/db?sslmode=disable")
    assert "production" in p and "TLS" in p


def test_production_with_tls_ok():
    s = settings(PGOPS_ENV="production", DATABASE_URL="postgresql://u@h/db?sslmode=verify-full")
    assert s.environment == "production"


def test_sslmode_disable_outside_production_ok():
    assert settings(PGOPS_ENV="staging", DATABASE_URL="host=h sslmode=disable").url


def test_production_with_spaced_sslmode_disable_refused():
    url = "host=h dbname=db sslmode = disable"
    assert psycopg.conninfo.conninfo_to_dict(url)["sslmode"] == "disable"
    problems(PGOPS_ENV="production", DATABASE_URL=url)


def test_invalid_pool_max_is_config_error():
    ps = problems(DB_POOL_MAX="abc")
    assert len(ps) == 1
    assert ps[0].startswith("database settings: pool_max")


def test_every_invalid_field_reported_at_once():
    ps = problems(DB_POOL_MAX="abc", DB_POOL_MIN="-1", DB_RETRY_ATTEMPTS="0")
    assert len(ps) == 3
    assert {p.split(":")[1].strip() for p in ps} == {"pool_max", "pool_min", "retry_attempts"}


def test_invalid_idle_timeout_is_config_error():
    problems(DB_POOL_IDLE_TIMEOUT="abc")


def test_zero_idle_timeout_refused():
    assert any("pool_idle_timeout" in p for p in problems(DB_POOL_IDLE_TIMEOUT="0"))


# --- read_env_file ------------------------------------------------------------------------


def test_read_env_file(tmp_path):
    path = tmp_path / ".env"
    path.write_text(
        "# a comment\n"
        "\n"
        "PLAIN=value\n"
        "  SPACED = padded  \n"
        "export EXPORTED=yes\n"
        'DOUBLE="two words"\n'
        "SINGLE='it is'\n"
        "URL=postgresql://u:p@h/db?sslmode=require&x=1\n"
        "EMPTY=\n"
        "no equals sign here\n"
        "   # indented comment=ignored\n"
    )
    assert read_env_file(path) == {
        "PLAIN": "value",
        "SPACED": "padded",
        "EXPORTED": "yes",
        "DOUBLE": "two words",
        "SINGLE": "it is",
        "URL": "postgresql://u:p@h/db?sslmode=require&x=1",
        "EMPTY": "",
    }


def test_read_env_file_missing(tmp_path):
    assert read_env_file(tmp_path / "nope.env") == {}
    assert read_env_file(str(tmp_path / "nope.env")) == {}


# --- redact -------------------------------------------------------------------------------


def test_redact_url():
    out = redact("postgresql://alice:s3cr%40t@db.example:6543/shop?sslmode=require&application_name=x")
    assert "s3cr" not in out
    info = psycopg.conninfo.conninfo_to_dict(out)
    assert info == {
        "user": "alice", "password": "***", "host": "db.example", "port": "6543",
        "dbname": "shop", "sslmode": "require", "application_name": "x",
    }


def test_redact_key_value():
    out = redact("host=h port=5432 user=bob password=hunter2 dbname=app")
    assert "hunter2" not in out
    assert psycopg.conninfo.conninfo_to_dict(out) == {
        "host": "h", "port": "5432", "user": "bob", "password": "***", "dbname": "app",
    }


def test_redact_quoted_password_with_spaces():
    out = redact("host=h password='two words' dbname=app")
    assert "two" not in out and "words" not in out
    assert "password=***" in out


def test_redact_without_password_keeps_everything():
    out = redact("postgresql://carol@h/db")
    assert "***" not in out
    assert psycopg.conninfo.conninfo_to_dict(out) == {"user": "carol", "host": "h", "dbname": "db"}


def test_redact_unparsable():
    out = redact("host='unterminated password=x")
    assert out == "<unparsable connection string>"


# --- Target.without_password --------------------------------------------------------------


def test_target_without_password_url():
    t = Target("postgresql://dave:pa55@h:5433/app?sslmode=require", "label")
    conninfo, password = t.without_password()
    assert password == "pa55"
    assert "pa55" not in conninfo
    assert psycopg.conninfo.conninfo_to_dict(conninfo) == {
        "user": "dave", "host": "h", "port": "5433", "dbname": "app", "sslmode": "require",
    }


def test_target_without_password_key_value():
    t = Target("host=h user=erin password='a b' dbname=app", "label")
    conninfo, password = t.without_password()
    assert password == "a b"
    assert "password" not in psycopg.conninfo.conninfo_to_dict(conninfo)


def test_target_without_password_when_none():
    conninfo, password = Target("host=h dbname=app", "label").without_password()
    assert password is None
    assert psycopg.conninfo.conninfo_to_dict(conninfo) == {"host": "h", "dbname": "app"}


# --- DbSettings.check ---------------------------------------------------------------------


class FakeConnection:
    """What check_connection uses of a psycopg connection: `select 1`, `show server_version`."""

    def __enter__(self) -> FakeConnection:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def execute(self, sql: str) -> FakeConnection:
        return self

    def fetchone(self) -> tuple[str]:
        return ("17.2",)


def fake_connect(monkeypatch, failures: int) -> list[tuple[str, int]]:
    """Replace db.connect: the first `failures` attempts fail as an unreachable server does;
    returns the (url, connect_timeout) of every attempt."""
    calls: list[tuple[str, int]] = []

    def connect(url: str, connect_timeout: int = 10) -> FakeConnection:
        calls.append((url, connect_timeout))
        if len(calls) <= failures:
            raise psycopg.OperationalError("connection to server at \"h\" failed: Connection refused\nmore")
        return FakeConnection()

    monkeypatch.setattr(db, "connect", connect)
    return calls


def test_check_connects_with_the_settings_timeout_and_retries(monkeypatch):
    s = DbSettings(url="host=h password=pw", connect_timeout=3, retry_attempts=2, retry_max_wait=0.01)
    calls = fake_connect(monkeypatch, failures=1)
    retried: list[int] = []
    report = s.check(on_retry=lambda n, e: retried.append(n))
    assert report["server_version"] == "17.2" and report["latency_ms"] >= 0
    assert calls == [("host=h password=pw", 3)] * 2 and retried == [1]


def test_check_of_an_unreachable_database_names_it_redacted_and_the_attempts(monkeypatch):
    s = DbSettings(url="host=h password=pw", retry_attempts=2, retry_max_wait=0.01)
    fake_connect(monkeypatch, failures=2)
    with pytest.raises(DbUnavailable) as e:
        s.check()
    message = str(e.value)
    assert message.startswith("database ") and "host=h" in message and "password=***" in message
    assert "pw" not in message
    assert message.endswith(" unreachable after 2 attempts: "
                            "connection to server at \"h\" failed: Connection refused")


def test_an_invalid_retry_budget_never_reaches_check_and_is_named():
    with pytest.raises(ValidationError, match="retry_attempts"):
        DbSettings(url="host=h", retry_attempts=0)
