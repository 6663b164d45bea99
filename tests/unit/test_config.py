"""load_settings / reference_problems: defaults load, every problem reported at once, secrets."""

from __future__ import annotations

import runpy

import pytest
from pydantic import ValidationError

from pgops import PROJECT_ROOT
from pgops.errors import ConfigError
from pgops.settings import (
    SUPPORTED_MAJORS,
    Settings,
    load_settings,
    read_secrets_file,
    reference_problems,
)

SECRETS = {"PGOPS_ROLE_MIGRATOR_PASSWORD": "m-secret", "PGOPS_ROLE_APP_PASSWORD": "a-secret"}


def defaults() -> dict:
    ns = runpy.run_path(str(PROJECT_ROOT / "inventory" / "group_data" / "all.py"))
    return {k: v for k, v in ns.items() if k.startswith("pg_")}


def problems_of(data: dict, **kw) -> list[str]:
    kw.setdefault("environ", {})
    with pytest.raises(ConfigError) as exc:
        load_settings("db1", data, **kw)
    return exc.value.problems


def has(problems: list[str], *parts: str) -> bool:
    """Some single problem contains every one of `parts`."""
    return any(all(p in line for p in parts) for line in problems)


def minimal(**over) -> dict:
    """A valid config with no secrets needed (no password roles)."""
    data = {
        "pg_roles": [{"name": "owner", "password": False}],
        "pg_databases": [{"name": "app", "owner": "owner"}],
        "pg_app_database": "app",
        "pg_migration_role": "owner",
    }
    data.update(over)
    return data


# --- defaults -----------------------------------------------------------------------------


def test_defaults_load_with_secrets_from_environ():
    s = load_settings("db1", defaults(), environ=SECRETS)
    assert s.pg_major == 17
    assert s.pg_port == 5432
    assert s.pg_app_database == "app"
    assert [r.name for r in s.pg_roles] == ["migrator", "app_rw", "app"]
    assert s.role("app").member_of == ("app_rw",)
    assert s.pg_databases[0].owner == "migrator"
    assert s.pg_databases[0].extensions == ("vector",)
    assert s.password(s.role("app")) == "a-secret"
    assert s.password(s.role("migrator")) == "m-secret"


def test_defaults_without_secrets_name_both_missing():
    problems = problems_of(defaults())
    assert has(problems, "PGOPS_ROLE_APP_PASSWORD")
    assert has(problems, "PGOPS_ROLE_MIGRATOR_PASSWORD")
    assert len(problems) == 2


def test_non_pg_keys_are_ignored():
    s = load_settings("db1", {**minimal(), "ssh_user": "root", "_sudo": True}, environ={})
    assert s.pg_app_database == "app"


def test_secrets_are_not_read_from_inventory():
    # `secrets` is not a pg_ key: inventory data cannot inject resolved secrets.
    s = load_settings("db1", {**minimal(), "secrets": {"X": "y"}}, environ={})
    assert s.secrets == {}


@pytest.mark.parametrize("major", sorted(SUPPORTED_MAJORS))
def test_supported_majors_load(major):
    assert load_settings("db1", minimal(pg_major=major), environ={}).pg_major == major


# --- every problem at once ----------------------------------------------------------------

BAD = {
    "pg_major": 19,
    "pg_prot": 5433,  # typo of pg_port
    "pg_roles": [
        {"name": "migrator", "password": False},
        {"name": "app", "password": False, "member_of": ["readers"]},
        {"name": "Bad-Name", "password": False},
    ],
    "pg_databases": [
        {"name": "app", "owner": "ghost"},
        {"name": "1db", "owner": "migrator"},
    ],
    "pg_hba_rules": [
        {"database": "app", "user": "app", "address": "10.0.0.0/33"},
        {"database": "nodb", "user": "nobody", "address": "10.0.0.1/8"},
        {"database": "app", "user": "app", "address": "10.0.0.0/8", "method": "trust"},
    ],
    "pg_app_database": "missing",
    "ssh_user": "deploy",
}


@pytest.fixture(scope="module")
def bad_problems() -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_settings(
            "db1",
            BAD,
            sources={"pg_major": "inventory/prod.py", "pg_roles": "inventory/group_data/all.py"},
            environ={},
        )
    return exc.value.problems


@pytest.mark.parametrize(
    "parts",
    [
        ("pg_major", "19", "not a supported PostgreSQL major"),
        ("pg_hba_rules.0.address", "10.0.0.0/33", "CIDR"),
        ("pg_hba_rules.1.address", "10.0.0.1/8", "CIDR"),
        ("pg_roles.1.member_of", "'readers'", "not defined"),
        ("pg_databases.0.owner", "'ghost'", "not defined"),
        ("pg_hba_rules.1.database", "'nodb'", "not defined"),
        ("pg_hba_rules.1.user", "'nobody'", "not defined"),
        ("pg_app_database", "'missing'", "not defined"),
        ("pg_prot", "unknown setting"),
        ("pg_hba_rules.2.method", "scram-sha-256"),
        ("pg_roles.2.name", "'Bad-Name'", "identifier"),
        ("pg_databases.1.name", "'1db'", "identifier"),
    ],
    ids=lambda p: p[0],
)
def test_every_problem_is_reported(bad_problems, parts):
    assert has(bad_problems, *parts), bad_problems


def test_all_problems_in_one_error(bad_problems):
    assert len(bad_problems) == 12
    assert len(set(bad_problems)) == len(bad_problems)
    assert not has(bad_problems, "ssh_user")


def test_problems_are_prefixed_with_source_file_and_host(bad_problems):
    major = next(p for p in bad_problems if "pg_major" in p)
    assert major.startswith("inventory/prod.py: host db1: pg_major: ")
    roles = [p for p in bad_problems if ": pg_roles." in p]
    assert roles and all(p.startswith("inventory/group_data/all.py: host db1: ") for p in roles)
    # A key with no known source falls back to "inventory".
    app_db = next(p for p in bad_problems if ": pg_app_database:" in p)
    assert app_db.startswith("inventory: host db1: ")


def test_error_message_lists_every_problem():
    with pytest.raises(ConfigError) as exc:
        load_settings("db1", BAD, environ={})
    text = str(exc.value)
    assert text.startswith("invalid configuration:")
    assert all(p in text for p in exc.value.problems)


def test_missing_secret_reported_together_with_field_errors():
    data = {**minimal(), "pg_major": 12, "pg_roles": [{"name": "owner"}]}
    problems = problems_of(data)
    assert has(problems, "pg_major", "12")
    assert has(problems, "PGOPS_ROLE_OWNER_PASSWORD")


@pytest.mark.parametrize("major", [12, 19])
def test_unknown_major_refused(major):
    problems = problems_of(minimal(pg_major=major))
    assert problems == [
        f"inventory: host db1: pg_major: {major} is not a supported PostgreSQL major (13-18)"
    ]


@pytest.mark.parametrize("address", ["10.0.0.0/33", "10.0.0.1/8", "not-a-net", "300.1.1.0/24"])
def test_invalid_cidr_refused(address):
    data = minimal(pg_hba_rules=[{"database": "app", "user": "owner", "address": address}])
    assert has(problems_of(data), "pg_hba_rules.0.address", "CIDR")


@pytest.mark.parametrize("address", ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "::1/128"])
def test_valid_cidr_accepted(address):
    data = minimal(pg_hba_rules=[{"database": "app", "user": "owner", "address": address}])
    assert load_settings("db1", data, environ={}).pg_hba_rules[0].address == address


@pytest.mark.parametrize("method", ["trust", "password", "md5", "ident", "peer"])
def test_weak_tcp_methods_refused(method):
    data = minimal(
        pg_hba_rules=[{"database": "app", "user": "owner", "address": "10.0.0.0/8", "method": method}]
    )
    assert has(problems_of(data), "pg_hba_rules.0.method")


@pytest.mark.parametrize(
    "over, field",
    [
        ({"pg_roles": [{"name": "App", "password": False}]}, "pg_roles.0.name"),
        ({"pg_roles": [{"name": "a;drop", "password": False}]}, "pg_roles.0.name"),
        ({"pg_roles": [{"name": "x" * 64, "password": False}]}, "pg_roles.0.name"),
        ({"pg_databases": [{"name": "my-db", "owner": "owner"}]}, "pg_databases.0.name"),
        ({"pg_app_database": "App"}, "pg_app_database"),
        (
            {"pg_databases": [{"name": "app", "owner": "owner", "extensions": ["Vector"]}]},
            "pg_databases.0.extensions",
        ),
        (
            {"pg_hba_rules": [{"database": "app", "user": "o'wner", "address": "10.0.0.0/8"}]},
            "pg_hba_rules.0.user",
        ),
    ],
)
def test_names_must_be_plain_identifiers(over, field):
    assert has(problems_of(minimal(**over)), field)


def test_hba_keywords_accepted():
    rules = [
        {"database": "replication", "user": "owner", "address": "10.0.0.0/8"},
        {"database": "sameuser", "user": "all", "address": "10.0.0.0/8"},
        {"database": "app,all", "user": "owner", "address": "10.0.0.0/8", "method": "cert"},
    ]
    s = load_settings("db1", minimal(pg_hba_rules=rules), environ={})
    assert [r.database for r in s.pg_hba_rules] == ["replication", "sameuser", "app,all"]


def test_unknown_nested_key_is_a_typo():
    problems = problems_of(minimal(pg_tuning={"workload": "web", "max_conections": 50}))
    assert has(problems, "pg_tuning.max_conections", "unknown setting")


def test_bad_setting_name_refused():
    assert has(problems_of(minimal(pg_settings={"Work Mem": "4MB"})), "pg_settings")


# --- reference_problems directly ----------------------------------------------------------


def test_reference_problems_clean_config_has_none():
    assert reference_problems(defaults()) == []


def test_reference_problems_postgres_owner_allowed():
    assert reference_problems({"pg_databases": [{"name": "x", "owner": "postgres"}]}) == []


def test_reference_problems_duplicates_and_tls_pair(tmp_path):
    cert = tmp_path / "c.crt"
    cert.write_text("x")
    problems = reference_problems(
        {
            "pg_roles": [{"name": "a"}, {"name": "a"}],
            "pg_databases": [{"name": "d", "owner": "a"}, {"name": "d", "owner": "a"}],
            "pg_tls_cert_file": str(cert),
        }
    )
    assert "pg_roles: a role name appears twice" in problems
    assert "pg_databases: a database name appears twice" in problems
    assert any(p.startswith("pg_tls_cert_file: give") for p in problems)
    assert any(p.startswith("pg_tls_ca_file: give the CA") for p in problems)
    assert len(problems) == 4


def test_reference_problems_missing_tls_files(tmp_path):
    problems = reference_problems(
        {"pg_tls_cert_file": str(tmp_path / "no.crt"), "pg_tls_key_file": str(tmp_path / "no.key"),
         "pg_tls_ca_file": str(tmp_path / "no-ca.crt")}
    )
    assert len(problems) == 3
    assert all("does not exist" in p for p in problems)


def test_a_ca_file_alone_is_refused(tmp_path):
    (tmp_path / "ca.crt").write_text("x")
    assert reference_problems({"pg_tls_ca_file": str(tmp_path / "ca.crt")}) == [
        "pg_tls_ca_file: only with pg_tls_cert_file and pg_tls_key_file (without them pgops "
        "issues the certificates from its own CA)"]


@pytest.mark.parametrize("name", ["db.example.com", "10.0.0.5", "::1", "pg-1"])
def test_tls_names_take_host_names_and_addresses(name):
    assert Settings(pg_tls_names=[name]).pg_tls_names == (name,)


@pytest.mark.parametrize("name", ["bad name", "-x.example", "a..b", ""])
def test_tls_names_refuse_what_is_no_name(name):
    with pytest.raises(ValidationError, match="is not a host name or an IP address"):
        Settings(pg_tls_names=[name])


# --- secrets ------------------------------------------------------------------------------


def test_missing_secret_names_variable_and_secrets_file(tmp_path):
    f = tmp_path / "secrets.env"
    f.write_text("PGOPS_ROLE_OTHER_PASSWORD=x\n")
    data = minimal(pg_roles=[{"name": "owner"}, {"name": "app"}], pg_secrets_file=str(f))
    problems = problems_of(data, environ={"PGOPS_ROLE_OWNER_PASSWORD": "o"})
    assert len(problems) == 1
    assert "PGOPS_ROLE_APP_PASSWORD" in problems[0]
    assert str(f) in problems[0]
    assert problems[0].startswith("inventory: host db1: pg_roles[app].password:")


def test_missing_secret_without_secrets_file_names_environment():
    problems = problems_of(minimal(pg_roles=[{"name": "app"}], pg_databases=[], pg_app_database=None))
    assert len(problems) == 1
    assert "PGOPS_ROLE_APP_PASSWORD" in problems[0]
    assert "environment" in problems[0]


def test_empty_secret_counts_as_missing():
    data = minimal(pg_roles=[{"name": "owner"}])
    assert has(problems_of(data, environ={"PGOPS_ROLE_OWNER_PASSWORD": ""}), "PGOPS_ROLE_OWNER_PASSWORD")


def test_secrets_file_is_read(tmp_path):
    f = tmp_path / "secrets.env"
    f.write_text(
        "# comment line\n"
        "\n"
        "PGOPS_ROLE_OWNER_PASSWORD=from=file\n"
        "PGOPS_ROLE_APP_PASSWORD = \"quoted value\"\n"
        "not a pair\n"
    )
    data = minimal(pg_roles=[{"name": "owner"}, {"name": "app"}], pg_secrets_file=str(f))
    s = load_settings("db1", data, environ={})
    assert s.password(s.role("owner")) == "from=file"
    assert s.password(s.role("app")) == "quoted value"


def test_read_secrets_file_parses_key_value(tmp_path):
    f = tmp_path / "s"
    f.write_text("A=1\n#B=2\nC='three'\n  D = four  \n")
    assert read_secrets_file(f) == {"A": "1", "C": "three", "D": "four"}


def test_environment_wins_over_secrets_file(tmp_path):
    f = tmp_path / "secrets.env"
    f.write_text("PGOPS_ROLE_OWNER_PASSWORD=from-file\n")
    data = minimal(pg_roles=[{"name": "owner"}], pg_secrets_file=str(f))
    s = load_settings("db1", data, environ={"PGOPS_ROLE_OWNER_PASSWORD": "from-env"})
    assert s.password(s.role("owner")) == "from-env"


def test_unreadable_secrets_file_reported(tmp_path):
    data = minimal(pg_roles=[{"name": "owner"}], pg_secrets_file=str(tmp_path / "absent.env"))
    problems = problems_of(data)
    assert has(problems, "pg_secrets_file: cannot read", "absent.env")


def test_role_without_password_needs_no_secret():
    data = minimal(pg_roles=[{"name": "owner", "password": False}, {"name": "grp", "login": False}])
    s = load_settings("db1", data, environ={})
    assert s.secrets == {}
    assert s.role("grp").login is False


def test_secret_value_is_hidden_in_repr():
    s = load_settings("db1", minimal(pg_roles=[{"name": "owner"}]),
                      environ={"PGOPS_ROLE_OWNER_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(s)
    assert s.password(s.role("owner")) == "hunter2"
