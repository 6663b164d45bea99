"""pg_migration_role must name a role in pg_roles whenever pg_app_database is set."""

from __future__ import annotations

import pytest

from pgops.errors import ConfigError
from pgops.settings import load_settings, reference_problems


def data(**over) -> dict:
    """Roles without passwords: no secrets needed."""
    base = {
        "pg_roles": [
            {"name": "owner", "password": False},
            {"name": "app", "password": False},
        ],
        "pg_databases": [{"name": "appdb", "owner": "owner"}],
        "pg_app_database": "appdb",
        "pg_migration_role": "owner",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def problems_of(d: dict, **kw) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_settings("db1", d, environ={}, **kw)
    return exc.value.problems


def test_valid_migration_role_loads():
    s = load_settings("db1", data(), environ={})
    assert s.pg_migration_role == "owner"
    assert s.role(s.pg_migration_role).name == "owner"


def test_undefined_migration_role_reported():
    ps = problems_of(data(pg_migration_role="x"))
    assert ps == ["inventory: host db1: pg_migration_role: role 'x' is not defined in pg_roles"]


def test_undefined_migration_role_names_its_source_file():
    ps = problems_of(data(pg_migration_role="x"), sources={"pg_migration_role": "inventory/db1.py"})
    assert ps == ["inventory/db1.py: host db1: pg_migration_role: role 'x' is not defined in pg_roles"]


def test_default_migration_role_must_exist_too():
    # Not setting pg_migration_role means "migrator", which must then be in pg_roles.
    d = data()
    del d["pg_migration_role"]
    ps = problems_of(d)
    assert ps == ["inventory: host db1: pg_migration_role: role 'migrator' is not defined in pg_roles"]


def test_default_migration_role_defined_ok():
    d = data()
    del d["pg_migration_role"]
    d["pg_roles"].append({"name": "migrator", "password": False})
    assert load_settings("db1", d, environ={}).pg_migration_role == "migrator"


def test_migration_role_reported_with_other_problems():
    d = data(
        pg_migration_role="x",
        pg_port=0,
        pg_databases=[{"name": "appdb", "owner": "ghost"}],
        pg_typo=1,
    )
    d["pg_roles"].append({"name": "writer", "password": False, "member_of": ["nobody"]})
    ps = problems_of(d)
    expected = [
        "pg_migration_role: role 'x' is not defined in pg_roles",
        "pg_databases.0.owner: role 'ghost' is not defined in pg_roles",
        "pg_roles.2.member_of: role 'nobody' is not defined in pg_roles",
        "pg_typo: unknown setting (typo?)",
        "pg_port:",
    ]
    for e in expected:
        assert any(e in p for p in ps), (e, ps)
    assert all(p.startswith("inventory: host db1: ") for p in ps)
    assert len(ps) == 5


def test_migration_role_reported_with_missing_secret():
    d = data(pg_migration_role="x")
    d["pg_roles"].append({"name": "needs_secret"})
    ps = problems_of(d)
    assert any("pg_migration_role: role 'x'" in p for p in ps)
    assert any("PGOPS_ROLE_NEEDS_SECRET_PASSWORD is not set" in p for p in ps)


def test_migration_role_not_required_without_app_database():
    d = data(pg_migration_role="x", pg_app_database=None)
    assert "pg_app_database" not in d
    s = load_settings("db1", d, environ={})
    assert s.pg_app_database is None
    assert s.pg_migration_role == "x"
    assert reference_problems(d) == []


def test_default_migration_role_not_required_without_app_database():
    d = data(pg_app_database=None, pg_migration_role=None)
    assert load_settings("db1", d, environ={}).pg_migration_role == "migrator"


def test_migration_role_without_any_roles():
    ps = problems_of({"pg_app_database": "appdb", "pg_migration_role": "owner"})
    assert any("pg_migration_role: role 'owner' is not defined in pg_roles" in p for p in ps)
    assert any("pg_app_database: database 'appdb' is not defined in pg_databases" in p for p in ps)
