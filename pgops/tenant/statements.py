"""The SQL of a tenant restore (pure). Table names come from the catalog already quoted;
column names are quoted here; the client id is a validated UUID or a bound parameter.
The rows at the target are staged in temporary tables of the restoring session, numbered by
the table's place in the tenancy's order: they vanish with the session, even when pgops is
killed, and no other session sees them."""

from __future__ import annotations

from pgops.tenant.catalog import Table


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cols(cols: tuple[str, ...], alias: str = "") -> str:
    return ", ".join(f"{alias}{ident(c)}" for c in cols)


def staged(i: int) -> str:
    return f"pg_temp.pgops_tenant_{i}"


def copy_out(table: str, key: str, cols: tuple[str, ...], client: str) -> str:
    """COPY of one tenant's rows (text format: exact for every type, vectors included)."""
    value = client.replace("'", "''")  # runs in psql on the copy: no parameters there
    return f"copy (select {_cols(cols)} from {table} where {ident(key)} = '{value}') to stdout"


def create_staged(i: int, table: str, cols: tuple[str, ...]) -> str:
    return f"create table {staged(i)} as select {_cols(cols)} from {table} with no data"


def copy_in(i: int, cols: tuple[str, ...]) -> str:
    return f"copy {staged(i)} ({_cols(cols)}) from stdin"


def _key_json(pk: tuple[str, ...], alias: str) -> str:
    if len(pk) == 1:
        return f"to_json({alias}.{ident(pk[0])})"
    return f"json_build_array({_cols(pk, alias + '.')})"


def _same_key(pk: tuple[str, ...]) -> str:
    return f"({_cols(pk, 'l.')}) = ({_cols(pk, 's.')})"


def diff(i: int, table: Table, key: str, cols: tuple[str, ...]) -> str:
    """One row: rows at the target, rows now, and the keys only then, only now, changed
    (any restored column differs, compared as text), and of rows at the target whose key
    another tenant holds now. Parameter: %(client)s."""
    pk, s = table.primary_key, staged(i)
    live = f"(select {_cols(cols)} from {table.name} where {ident(key)} = %(client)s)"
    keys = "coalesce(json_agg({k}), '[]')"
    return (
        f"with s as (select * from {s}), l as {live} select "
        f"(select count(*) from s), (select count(*) from l), "
        f"(select {keys.format(k=_key_json(pk, 's'))} from s where not exists "
        f"(select from l where {_same_key(pk)})), "
        f"(select {keys.format(k=_key_json(pk, 'l'))} from l where not exists "
        f"(select from s where {_same_key(pk)})), "
        f"(select {keys.format(k=_key_json(pk, 's'))} from s join l on {_same_key(pk)} "
        f"where row({_cols(cols, 's.')})::text is distinct from row({_cols(cols, 'l.')})::text), "
        f"(select {keys.format(k=_key_json(pk, 's'))} from s join {table.name} l on {_same_key(pk)} "
        f"where l.{ident(key)} is distinct from %(client)s)")


def _overriding(table: Table, cols: tuple[str, ...]) -> str:
    always = any(table.columns_by_name[c].identity == "a" for c in cols)
    return " overriding system value" if always else ""


def update_root(table: Table, key: str, cols: tuple[str, ...]) -> str | None:
    """The tenant's own row set to its values at the target, in place (deleting it would
    cascade into every table); None when only its key was restored."""
    rest = tuple(c for c in cols if c not in table.primary_key)
    if not rest:
        return None
    return (f"update {table.name} l set ({_cols(rest)}) = (select {_cols(rest)} from "
            f"{staged(0)}) where l.{ident(key)} = %(client)s")


def insert_root(table: Table, cols: tuple[str, ...]) -> str:
    return (f"insert into {table.name} ({_cols(cols)}){_overriding(table, cols)} "
            f"select {_cols(cols)} from {staged(0)}")


def delete(table: str, key: str) -> str:
    return f"delete from {table} where {ident(key)} = %(client)s"


def insert(i: int, table: Table, cols: tuple[str, ...], missing_only: bool = False) -> str:
    """The rows at the target into the live table; missing_only (append-only tables): only
    those whose key is not there now."""
    where = (f" s where not exists (select from {table.name} l where {_same_key(table.primary_key)})"
             if missing_only else " s")
    return (f"insert into {table.name} ({_cols(cols)}){_overriding(table, cols)} "
            f"select {_cols(cols, 's.')} from {staged(i)}{where}")


def advance_sequences(table: Table, cols: tuple[str, ...]) -> list[str]:
    """Each serial or identity column's sequence moved past the largest value now in the
    table (restored rows carry their old values; a sequence never moves back)."""
    out = []
    for c in cols:
        seq = table.columns_by_name[c].sequence
        if seq:
            literal = seq.replace("'", "''")
            out.append(f"select setval('{literal}'::regclass, m) from (select max({ident(c)}) m "
                       f"from {table.name}) x where m > (select last_value from {seq})")
    return out


def taken_keys(i: int, table: Table) -> str:
    """How many staged rows have a key the table already holds, and the first such key."""
    pk = table.primary_key
    return (f"select count(*), min({_key_json(pk, 's')}::text) from {staged(i)} s "
            f"where exists (select from {table.name} l where {_same_key(pk)})")


def insert_renumbered(i: int, table: Table, cols: tuple[str, ...]) -> str:
    """The staged rows with new keys from the table's own sequence (its key left out)."""
    rest = tuple(c for c in cols if c not in table.primary_key)
    return f"insert into {table.name} ({_cols(rest)}) select {_cols(rest)} from {staged(i)}"
