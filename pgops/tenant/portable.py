"""One tenant's rows in one file (`pgops tenant export`), loadable elsewhere (`pgops tenant
load`): data portability.

The file is a psql script: a header line (JSON in a comment: the client, when, the schema
version, rows per table), then per table, parents first, `COPY ... FROM stdin` and its rows in
COPY's text format (exact for every type). `psql -f FILE` loads it too (the file is one transaction).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pgops.tenant import model, statements
from pgops.tenant.catalog import CATALOG_SQL, parse
from pgops.tenant.model import Tenancy, TenantError

MAGIC = "-- pgops tenant export "
SCHEMA_VERSION_SQL = ("select case when to_regclass('pgops.schema_history') is null then null "
                      "else (select max(version) from pgops.schema_history) end")
_COPY = re.compile(r"^COPY (\S+) \((.*)\) FROM stdin;$")
_IDENT = re.compile(r'"((?:[^"]|"")*)"')


@dataclass(frozen=True)
class Block:
    table: str
    columns: tuple[str, ...]
    data: bytes  # COPY text: one row per line

    @property
    def rows(self) -> int:
        return self.data.count(b"\n")


def tenancy_of(conn: psycopg.Connection) -> Tenancy:
    row = conn.execute(CATALOG_SQL).fetchone()
    return model.discover(parse(row[0] if row else "[]"))


def schema_version(conn: psycopg.Connection) -> int | None:
    row = conn.execute(SCHEMA_VERSION_SQL).fetchone()
    return row[0] if row else None


def sequences(tenancy: Tenancy, parts: list[Block]) -> list[str]:
    """The statements moving each loaded serial or identity column's sequence on."""
    return [sql for b in parts for sql in statements.advance_sequences(tenancy.tables[b.table], b.columns)]


def blocks(tenancy: Tenancy, cid: str, copy_out: Callable[[str], bytes],
           columns: Callable[[str], tuple[str, ...]]) -> list[Block]:
    """Each tenant table's rows of cid, parents first, read by `copy_out` (a COPY TO STDOUT)."""
    out = []
    for name in tenancy.order:
        cols = columns(name)
        out.append(Block(name, cols, copy_out(statements.copy_out(name, tenancy.key(name), cols, cid))))
    return out


def live_copy(conn: psycopg.Connection) -> Callable[[str], bytes]:
    def copy(sql: str) -> bytes:
        buf = bytearray()
        with conn.cursor().copy(sql) as cp:
            for chunk in cp:
                buf += chunk
        return bytes(buf)
    return copy


def render(header: dict, parts: list[Block], after: list[str] | tuple[str, ...] = ()) -> bytes:
    """The file's bytes (pure); `after`: statements before the commit (sequences moved past
    the loaded keys, so that `psql -f` leaves the target as `pgops tenant load` does)."""
    out = [f"{MAGIC}{json.dumps(header, sort_keys=True)}\n".encode(),
           b"\\set ON_ERROR_STOP on\nbegin;\n"]
    for b in parts:
        cols = ", ".join(statements.ident(c) for c in b.columns)
        out += [f"COPY {b.table} ({cols}) FROM stdin;\n".encode(), b.data, b"\\.\n"]
    out += [f"{sql};\n".encode() for sql in after]
    out.append(b"commit;\n")
    return b"".join(out)


def parse_file(data: bytes, where: str) -> tuple[dict, list[Block]]:
    """(header, blocks) of an export (pure); TenantError naming the file and line otherwise."""
    lines = data.split(b"\n")
    if not lines[0].startswith(MAGIC.encode()):
        raise TenantError(f"{where}: not a pgops tenant export (its first line is not "
                          f"'{MAGIC.strip()} {{...}}')")
    try:
        header = json.loads(lines[0][len(MAGIC):])
    except ValueError as e:
        raise TenantError(f"{where}:1: the header is not JSON ({e})") from None
    parts, i = [], 1
    while i < len(lines):
        m = _COPY.match(lines[i].decode("utf-8", "replace"))
        i += 1
        if not m:
            continue
        start = i
        while i < len(lines) and lines[i] != b"\\.":
            i += 1
        if i == len(lines):
            raise TenantError(f"{where}:{start}: the rows of {m[1]} never end (no '\\.' line): "
                              "the file is cut short")
        cols = tuple(c.replace('""', '"') for c in _IDENT.findall(m[2]))
        parts.append(Block(m[1], cols, b"".join(x + b"\n" for x in lines[start:i])))
        i += 1
    counts = {b.table: b.rows for b in parts}
    if counts != header.get("rows"):
        raise TenantError(f"{where}: rows per table {counts} differ from its header's "
                          f"{header.get('rows')}: the file was changed or cut")
    return header, parts


def write(path: Path, data: bytes) -> None:
    """Owner-only (a tenant's data), atomically: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def load(url: str, path: Path, with_triggers: bool = False) -> dict:
    """Load an export into a database that has the schema and not this tenant, in one
    transaction; sequences moved past the loaded keys. Keys are kept, except in a table
    whose surrogate keys the target already holds (two databases' audit_events both count
    from 1): its rows take new ones. Any other key already there is refused, and so are
    the target's triggers on tenant tables unless with_triggers."""
    if not path.is_file():
        raise TenantError(f"{path}: no such file")
    header, parts = parse_file(path.read_bytes(), str(path))
    cid = header["client_id"]
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        ten = tenancy_of(conn)
        version = schema_version(conn)
        if header.get("schema_version") != version:
            raise TenantError(f"{path} holds schema version {header.get('schema_version')}; the "
                              f"target is at {version}: migrate it to the same version first")
        missing = [b.table for b in parts if b.table not in ten.tables]
        if missing:
            raise TenantError(f"the target has no table {', '.join(missing)}: load into a "
                              "database migrated to the same schema")
        refusal = ten.trigger_refusal("loaded", "load")
        if refusal and not with_triggers:
            raise TenantError(f"{path}: the target's {refusal}")
        key = statements.ident(ten.root_key)
        if conn.execute(f"select 1 from {ten.root} where {key} = %s", (cid,)).fetchone():
            raise TenantError(f"tenant {cid} is already in the target: pgops loads a tenant only "
                              "into a database without it (nothing was changed)")
        loaded, renumbered = {}, []
        with conn.transaction():
            for i, b in enumerate(parts):
                table = ten.tables[b.table]
                conn.execute(statements.create_staged(i, b.table, b.columns))
                with conn.cursor().copy(statements.copy_in(i, b.columns)) as cp:
                    cp.write(b.data)
                taken, first = conn.execute(statements.taken_keys(i, table)).fetchone() or (0, None)
                if taken and not ten.renumberable(b.table):
                    raise TenantError(
                        f"{path}: {taken} row(s) of {b.table} have keys the target already holds "
                        f"(the first: {first}), and other rows may refer to them: load into a "
                        "database without them (nothing was loaded)")
                if taken:  # a surrogate key nothing refers to: the rows take new ones
                    conn.execute(statements.insert_renumbered(i, table, b.columns))
                    renumbered.append(b.table)
                else:
                    conn.execute(statements.insert(i, table, b.columns))
                for sql in statements.advance_sequences(table, b.columns):
                    conn.execute(sql)
                loaded[b.table] = b.rows
    return {"client_id": cid, "file": str(path), "rows": loaded, "schema_version": version,
            "renumbered": renumbered}
