"""Tenant isolation, fuzzed (hypothesis) against the lab's `app` database: random reads and
writes as the application role with `app.client_id` set to one tenant never read, change,
delete or reference a row of another; hostile values of the setting give an error or zero
rows, never another tenant's rows.

The tables, keys and references are read from the catalog, so a new tenant table is fuzzed
without a change here. The data is `pgops seed`'s: tenants 1 and 2 (A and B) have rows in
every tenant table."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from pgops.schema.seed import _id
from tests.lab.conftest import connect, pgops

A, B = str(_id("client", 1)), str(_id("client", 2))
#: The tenant column of each table: `id` for clients itself.
TENANT_COLUMN_SQL = """
select c.table_name, c.column_name from information_schema.columns c
join information_schema.tables t using (table_schema, table_name)
where c.table_schema = 'public' and t.table_type = 'BASE TABLE'
  and (c.column_name = 'client_id' or (c.table_name = 'clients' and c.column_name = 'id'))
order by 1
"""
#: Primary key columns, identity columns, and single references to another tenant table.
KEYS_SQL = """
select conrelid::regclass::text, array_agg(a.attname order by k.n)
from pg_constraint, unnest(conkey) with ordinality k(attnum, n)
join pg_attribute a on a.attnum = k.attnum
where contype = 'p' and a.attrelid = conrelid and connamespace = 'public'::regnamespace
group by 1
"""
IDENTITY_SQL = """select table_name, column_name from information_schema.columns
                  where table_schema = 'public' and is_identity = 'YES'"""
#: Every foreign key to a tenant table other than clients, by its non-tenant column: the
#: reference a row could make across tenants.
REFERENCES_SQL = """
select conrelid::regclass::text, a.attname, confrelid::regclass::text
from pg_constraint, unnest(conkey) k(attnum)
join pg_attribute a on a.attnum = k.attnum
where contype = 'f' and a.attrelid = conrelid and connamespace = 'public'::regnamespace
  and confrelid <> 'clients'::regclass and a.attname <> 'client_id'
"""


@dataclass(frozen=True)
class Schema:
    tenant_column: dict[str, str]
    keys: dict[str, list[str]]
    identity: dict[str, list[str]]
    references: list[tuple[str, str, str]]  # (table, column, referenced table)


@pytest.fixture(scope="module")
def schema(lab, first_deploy, secrets) -> Schema:
    pgops("seed", "--tenants", "2", "--kb-per-tenant", "3")
    with connect(lab, "db1", "migrator", secrets["PGOPS_ROLE_MIGRATOR_PASSWORD"], sslmode="require") as c:
        tenant = dict(c.execute(TENANT_COLUMN_SQL).fetchall())
        keys = dict(c.execute(KEYS_SQL).fetchall())
        identity: dict[str, list[str]] = {}
        for table, column in c.execute(IDENTITY_SQL).fetchall():
            identity.setdefault(table, []).append(column)
        refs = [r for r in c.execute(REFERENCES_SQL).fetchall() if r[2] in tenant]
    assert {"clients", "users", "conversations", "messages", "knowledge_base"} <= set(tenant)
    return Schema(tenant, keys, identity, refs)


@pytest.fixture(scope="module")
def owner(lab, secrets, schema):
    """The migration role (the tables' owner, so row-level security does not apply to it)."""
    with connect(lab, "db1", "migrator", secrets["PGOPS_ROLE_MIGRATOR_PASSWORD"], sslmode="require",
                 autocommit=True) as c:
        yield c


@pytest.fixture(scope="module")
def app(lab, secrets, schema):
    with connect(lab, "db1", "app", secrets["PGOPS_ROLE_APP_PASSWORD"], sslmode="require",
                 autocommit=True) as c:
        yield c


def rows_of(owner: psycopg.Connection, schema: Schema, tenant: str) -> dict[str, str]:
    """Every row of `tenant`, table by table, as the owner sees them (a digest per table)."""
    out = {}
    for table, col in schema.tenant_column.items():
        q = sql.SQL("select md5(coalesce(string_agg(to_jsonb(t)::text, ',' order by to_jsonb(t)::text), "
                    "'')), count(*) from {} t where {} = %s").format(
            sql.Identifier(table), sql.Identifier(col))
        out[table] = owner.execute(q, (tenant,)).fetchone()
    return out


def keys_of(owner: psycopg.Connection, schema: Schema, table: str, tenant: str) -> list[dict]:
    q = sql.SQL("select jsonb_build_object({}) from {} where {} = %s order by 1 limit 5").format(
        sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(k), sql.Identifier(k))
                           for k in schema.keys[table]),
        sql.Identifier(table), sql.Identifier(schema.tenant_column[table]))
    return [r[0] for r in owner.execute(q, (tenant,)).fetchall()]


def where_key(key: dict) -> sql.Composed:
    return sql.SQL(" and ").join(sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(str(v)))
                                 for k, v in key.items())


def as_tenant(app: psycopg.Connection, tenant: str | None) -> None:
    app.execute("select set_config('app.client_id', %s, false)", (tenant or "",))


def clone(app: psycopg.Connection, schema: Schema, table: str, changes: dict) -> sql.Composed:
    """An INSERT of a copy of one of the current tenant's rows of `table`, with `changes` and
    a new key (identity columns left to their default)."""
    one = sql.SQL("select to_jsonb(t) from {} t limit 1").format(sql.Identifier(table))
    row = app.execute(one).fetchone()
    assert row, f"tenant A has no row in {table}"
    new = dict(row[0])
    # A new key, except where the key is a reference (conversation_tags' is two): those keep
    # pointing at the tenant's own rows unless `changes` says otherwise.
    referencing = {c for src, c, _ in schema.references if src == table} | {"client_id"}
    for k in schema.keys[table]:
        if k in new and k not in changes and k not in referencing and _is_uuid(str(new[k])):
            new[k] = str(uuid.uuid4())
    new.update(changes)
    cols = [c for c in new if c not in schema.identity.get(table, [])]
    return sql.SQL("insert into {t} ({cols}) select {cols} "
                   "from jsonb_populate_record(null::{t}, {row})").format(
        t=sql.Identifier(table), cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
        row=sql.Literal(json.dumps({c: new[c] for c in cols})))


def _is_uuid(v: str) -> bool:
    try:
        uuid.UUID(v)
        return True
    except ValueError:
        return False


def refused(app: psycopg.Connection, statement: sql.Composable) -> bool:
    try:
        app.execute(statement)
    except psycopg.Error:
        return True
    return False


# -- random reads and writes as tenant A -------------------------------------------------------

OPS = ("read", "read B's row", "update B's row", "delete B's row", "insert as B", "move to B",
       "reference B's row")


def run_op(op: str, i: int, app, owner, schema: Schema) -> None:
    tables = sorted(schema.tenant_column)
    table = tables[i % len(tables)]
    col = schema.tenant_column[table]
    b_keys = keys_of(owner, schema, table, B)
    assert b_keys, f"tenant B has no row in {table}"
    b_key = b_keys[i % len(b_keys)]
    t = sql.Identifier(table)
    if op == "read":
        seen = {r[0] for r in app.execute(sql.SQL("select {}::text from {}").format(
            sql.Identifier(col), t)).fetchall()}
        assert seen <= {A}, (table, seen)
    elif op == "read B's row":
        assert app.execute(sql.SQL("select 1 from {} where ").format(t) + where_key(b_key)).fetchall() == []
    elif op in ("update B's row", "delete B's row"):
        statement = (sql.SQL("update {} set {c} = {c} where ").format(t, c=sql.Identifier(col))
                     if op == "update B's row" else sql.SQL("delete from {} where ").format(t))
        try:  # no row of B matches; or the role may not change the table at all (audit_events)
            assert app.execute(statement + where_key(b_key)).rowcount == 0, (op, table, b_key)
        except psycopg.errors.InsufficientPrivilege:
            pass
    elif op == "insert as B":
        if table == "clients":
            assert refused(app, clone(app, schema, table, {"id": str(uuid.uuid4())}))
        else:
            assert refused(app, clone(app, schema, table, {col: B})), table
    elif op == "move to B":
        a_key = keys_of(owner, schema, table, A)[0]
        changed = app.execute(sql.SQL("select 1 from {} where ").format(t) + where_key(a_key)).fetchall()
        if changed:
            statement = sql.SQL("update {} set {} = {} where ").format(t, sql.Identifier(col), sql.Literal(B))
            assert refused(app, statement + where_key(a_key)), (table, a_key)
    elif op == "reference B's row":
        refs = schema.references
        src, column, target = refs[i % len(refs)]
        target_b = keys_of(owner, schema, target, B)[0]
        statement = clone(app, schema, src, {column: target_b["id"]})
        if not refused(app, statement):
            owner.execute(sql.SQL("delete from {} where {} = %s and client_id = %s").format(
                sql.Identifier(src), sql.Identifier(column)), (target_b["id"], A))
            pytest.fail(f"tenant A's new {src} row references tenant B's {target} row {target_b['id']} "
                        f"through {src}.{column}")


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50)), min_size=1, max_size=6))
def test_random_reads_and_writes_as_one_tenant_never_reach_another(app, owner, schema, ops):
    before = rows_of(owner, schema, B)
    as_tenant(app, A)
    for op, i in ops:
        run_op(op, i, app, owner, schema)
    assert rows_of(owner, schema, B) == before, f"tenant B's rows changed after {ops}"


def test_every_kind_of_operation_on_every_table(app, owner, schema):
    """The fuzzing above samples; this walks every operation over every table once."""
    before = rows_of(owner, schema, B)
    as_tenant(app, A)
    for op in OPS:
        for i in range(len(schema.tenant_column)):
            run_op(op, i, app, owner, schema)
    assert len(schema.references) >= 3  # messages and conversation_tags reach their parents
    assert rows_of(owner, schema, B) == before


# -- hostile values of the tenant setting ------------------------------------------------------

HOSTILE = ["", " ", "null", "NULL", "0", "-1", "1.5", "true", "[]", "{}", "%", "*", "\\x00",
           "{A}' or '1'='1", "{A} or true", "' or client_id is not null --", "{A},{B}", "{{{A},{B}}}",
           "{A};{B}", "{A}; reset app.client_id", "'{B}'", "{A}--", "{A} ", " {A}", "{A}\n{B}",
           "(select id from clients)", "{B}'::uuid or '1'='1", "0000-{A}"]


def designated(owner: psycopg.Connection, value: str | None) -> str | None:
    """The tenant a value names as PostgreSQL reads it (None: not a uuid, or empty/unset)."""
    if not value or not value.strip() or "\x00" in value:
        return None
    try:
        row = owner.execute("select nullif(%s, '')::uuid::text", (value,)).fetchone()
    except psycopg.Error:
        return None
    return row[0] if row else None


def visible(app: psycopg.Connection, schema: Schema) -> set[str] | None:
    """Tenants of every row the application role sees now (None: the queries failed)."""
    seen: set[str] = set()
    try:
        for table, col in schema.tenant_column.items():
            seen |= {r[0] for r in app.execute(sql.SQL("select {}::text from {}").format(
                sql.Identifier(col), sql.Identifier(table))).fetchall()}
    except psycopg.Error:
        return None
    return seen


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=60)))
def test_hostile_tenant_values_give_an_error_or_no_rows(app, owner, schema, value):
    value = value.replace("{A}", A).replace("{B}", B).replace("{{", "{").replace("}}", "}")
    try:
        app.execute("select set_config('app.client_id', %s, false)", (value,))
    except (psycopg.Error, ValueError):  # a NUL byte: refused before it reaches the server
        return
    seen = visible(app, schema)
    names = designated(owner, value)
    if seen is not None:
        assert seen <= ({names} if names else set()), (value, names, seen)


def test_unset_and_reset_tenant_sees_nothing(app, schema):
    app.execute("reset app.client_id")
    assert visible(app, schema) in (None, set())
    as_tenant(app, None)
    assert visible(app, schema) == set()
