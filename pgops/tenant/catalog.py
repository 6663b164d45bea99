"""The tables of a database as the tenant commands need them, read in one query (the same on
the live database and on a copy restored to a past time)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

#: Schemas that hold no application data: the system's and pgops's history.
SKIPPED = ("pg_catalog", "information_schema", "pgops")

CATALOG_SQL = f"""
select coalesce(json_agg(json_build_object(
  'name', quote_ident(n.nspname) || '.' || quote_ident(c.relname),
  'columns', (select json_agg(json_build_object(
       'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
       'has_default', a.atthasdef or a.attidentity <> '', 'identity', a.attidentity,
       'generated', a.attgenerated <> '',
       'sequence', pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                                          a.attname)) order by a.attnum)
     from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped),
  'primary_key', (select json_agg(a.attname order by k.i)
     from pg_constraint p, unnest(p.conkey) with ordinality k(num, i), pg_attribute a
     where p.conrelid = c.oid and p.contype = 'p' and a.attrelid = c.oid and a.attnum = k.num),
  'foreign_keys', (select json_agg(json_build_object(
       'references', quote_ident(fn.nspname) || '.' || quote_ident(fc.relname),
       'columns', (select json_agg(a.attname order by k.i) from unnest(f.conkey) with ordinality
                   k(num, i), pg_attribute a where a.attrelid = f.conrelid and a.attnum = k.num),
       'referenced', (select json_agg(a.attname order by k.i) from unnest(f.confkey) with
                      ordinality k(num, i), pg_attribute a where a.attrelid = f.confrelid
                      and a.attnum = k.num),
       'on_delete', f.confdeltype))
     from pg_constraint f join pg_class fc on fc.oid = f.confrelid
     join pg_namespace fn on fn.oid = fc.relnamespace
     where f.conrelid = c.oid and f.contype = 'f'),
  'indexed_first', (select json_agg(distinct a.attname) from pg_index i join pg_attribute a
     on a.attrelid = i.indrelid and a.attnum = i.indkey[0] where i.indrelid = c.oid),
  'append_only', coalesce((select bool_or(x.privilege_type = 'INSERT')
                                  and not bool_or(x.privilege_type in ('UPDATE', 'DELETE'))
                           from aclexplode(c.relacl) x where x.grantee <> c.relowner), false),
  'triggers', (select json_agg(t.tgname order by t.tgname) from pg_trigger t
     where t.tgrelid = c.oid and not t.tgisinternal)
) order by n.nspname, c.relname), '[]')
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and not c.relispartition
  and n.nspname not in {SKIPPED!r} and n.nspname not like 'pg\\_%'
"""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool = False
    has_default: bool = False
    identity: str = ""  # "a" (always), "d" (by default) or ""
    generated: bool = False
    sequence: str | None = None  # the sequence behind a serial or identity column


@dataclass(frozen=True)
class ForeignKey:
    references: str
    columns: tuple[str, ...]
    referenced: tuple[str, ...]
    on_delete: str = "a"  # pg_constraint.confdeltype: a, r, c (cascade), n, d


@dataclass(frozen=True)
class Table:
    name: str  # schema-qualified, quoted where needed: usable in SQL as is
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexed_first: frozenset[str] = frozenset()  # columns that lead an index
    append_only: bool = False  # others may insert, nobody but the owner update or delete
    triggers: tuple[str, ...] = ()
    columns_by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.columns_by_name.update({c.name: c for c in self.columns})

    def has(self, column: str) -> bool:
        return column in self.columns_by_name

    @property
    def stored(self) -> tuple[str, ...]:
        """The columns a row carries (generated ones are computed by the server)."""
        return tuple(c.name for c in self.columns if not c.generated)


def parse(data: str | list) -> dict[str, Table]:
    """CATALOG_SQL's JSON (text, or as psycopg decoded it): table name -> Table."""
    out = {}
    for t in json.loads(data or "[]") if isinstance(data, str) else data:
        out[t["name"]] = Table(
            name=t["name"],
            columns=tuple(Column(**c) for c in t["columns"] or []),
            primary_key=tuple(t["primary_key"] or ()),
            foreign_keys=tuple(ForeignKey(f["references"], tuple(f["columns"]), tuple(f["referenced"]),
                                          f["on_delete"]) for f in t["foreign_keys"] or []),
            indexed_first=frozenset(t["indexed_first"] or ()),
            append_only=bool(t["append_only"]),
            triggers=tuple(t["triggers"] or ()))
    return out
