"""Which tables hold a tenant, in which order, and what can be restored (pure).

The schema says it all: the tenant table is the one every `client_id` references; every table
with a `client_id` holds tenant rows; foreign keys order them (parents first). Refused, by
name: a table without a primary key (rows could not be compared), a `client_id` without an
index (each step would scan the whole table under its locks), a table that references tenant
rows but has no `client_id` (its rows would vanish by cascade and never come back), a foreign
key between tenant tables that leaves out `client_id` (it could link two tenants), an
append-only table referencing a replaced one, a cycle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pgops.errors import PgopsError
from pgops.tenant.catalog import Table

KEY = "client_id"
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class TenantError(PgopsError):
    pass


@dataclass(frozen=True)
class Tenancy:
    """The tenant's tables: `root` (the tenants table, keyed by `root_key`) and the tables with
    a client_id, parents before children."""

    root: str
    root_key: str
    order: tuple[str, ...]  # every tenant table, the root first, parents before children
    tables: dict[str, Table] = field(compare=False)

    def key(self, table: str) -> str:
        """The column naming the tenant in `table`."""
        return self.root_key if table == self.root else KEY

    @property
    def replaced(self) -> tuple[str, ...]:
        """Tables whose tenant rows a restore replaces: all but the root row (updated in
        place: deleting it would cascade) and append-only tables (their rows after the target
        are kept: an audit trail is not rolled back)."""
        return tuple(t for t in self.order if t != self.root and not self.tables[t].append_only)

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(t for t in self.order if t != self.root and self.tables[t].append_only)

    def renumberable(self, table: str) -> bool:
        """Whether `table`'s rows may take new keys when loaded elsewhere: one key column
        drawn from a sequence (a surrogate, like audit_events.id) that no table references."""
        t = self.tables[table]
        return (len(t.primary_key) == 1 and bool(t.columns_by_name[t.primary_key[0]].sequence)
                and not any(fk.references == table for other in self.tables.values()
                            for fk in other.foreign_keys))


    @property
    def triggers(self) -> dict[str, tuple[str, ...]]:
        """Tenant tables with triggers of their own (they fire on re-inserted rows)."""
        return {t: self.tables[t].triggers for t in self.order if self.tables[t].triggers}

    def trigger_refusal(self, rows: str = "re-inserted", doing: str = "apply") -> str | None:
        """Why applying a restore (or loading an export) here would not be exact (None: no
        trigger would fire)."""
        if not self.triggers:
            return None
        named = "; ".join(f"{t} ({', '.join(names)})" for t, names in self.triggers.items())
        return (f"tenant tables have triggers that would fire on the {rows} rows: {named}. "
                "They may change those rows or write others, so the tenant would not be "
                f"exactly as it was: add --with-triggers to {doing} anyway (nothing was changed)")


def discover(tables: dict[str, Table]) -> Tenancy:
    """The tenancy of a database's tables, or TenantError naming each table that breaks it."""
    roots = {(fk.references, fk.referenced[0]) for t in tables.values() for fk in t.foreign_keys
             if fk.columns == (KEY,) and len(fk.referenced) == 1}
    if len(roots) != 1:
        found = ", ".join(sorted(f"{r}({k})" for r, k in roots)) or "none"
        raise TenantError(f"no single tenants table: {KEY} columns reference {found} (each "
                          f"{KEY} must reference the same table)")
    ((root, root_key),) = roots
    members = {root} | {n for n, t in tables.items() if t.has(KEY)}
    problems = []
    for n in sorted(members):
        t = tables[n]
        key = root_key if n == root else KEY
        if not t.primary_key:
            problems.append(f"table {n} has no primary key: its rows cannot be compared")
        if key not in t.indexed_first:
            problems.append(f"table {n}: {key} leads no index, so every tenant step would scan the "
                            f"whole table (create index on {n} ({key}))")
    for n, t in sorted(tables.items()):
        if n in members:
            continue
        for fk in t.foreign_keys:
            if fk.references in members:
                problems.append(f"table {n} references {fk.references} but has no {KEY}: its rows "
                                "cannot be scoped to a tenant (add a client_id column)")
    for n in sorted(members - {root}):
        t = tables[n]
        for fk in t.foreign_keys:
            if fk.references not in members - {root}:
                continue
            cols = ", ".join(fk.columns)
            if KEY not in fk.columns or fk.referenced[fk.columns.index(KEY)] != KEY:
                problems.append(f"table {n}: its foreign key ({cols}) to {fk.references} leaves "
                                f"out {KEY}, so it can link another tenant's rows (and a cascade "
                                f"from them reach this tenant): make it ({cols}, {KEY})")
            elif t.append_only and not tables[fk.references].append_only:
                problems.append(f"table {n} is append-only but references {fk.references}, whose "
                                "rows a restore replaces: its rows would be deleted, nulled or "
                                "block the restore")
    if problems:
        raise TenantError("the schema cannot be restored per tenant:\n  " + "\n  ".join(problems))
    return Tenancy(root, root_key, tuple(_parents_first(members, tables, root)), tables)


def _parents_first(members: set[str], tables: dict[str, Table], root: str) -> list[str]:
    """Topological order over the foreign keys among tenant tables (self-references allowed:
    rows of one statement are checked at its end); ties by name."""
    parents = {n: {fk.references for fk in tables[n].foreign_keys
                   if fk.references in members and fk.references != n} for n in members}
    done: list[str] = []
    while len(done) < len(members):
        ready = sorted(n for n in members if n not in done and parents[n] <= set(done))
        if not ready:
            left = sorted(n for n in members if n not in done)
            raise TenantError(f"the foreign keys among {', '.join(left)} form a cycle: no order "
                              "restores their rows")
        # The root first, then names: one order for one schema.
        done.extend(sorted(ready, key=lambda n: (n != root, n)))
    return done


@dataclass(frozen=True)
class Columns:
    """What of one table comes back from the past: columns present then and now, with notes."""

    shared: tuple[str, ...]
    notes: tuple[str, ...] = ()
    at_target: bool = True  # the table existed at the target time


def columns_at(name: str, then: Table | None, now: Table, when: str) -> Columns:
    """The columns a restore copies from the table as it was (`then`) into it as it is, or
    TenantError when a column added since cannot be filled or a type changed."""
    if then is None:  # staged empty, with today's columns: its live rows show as "only now"
        return Columns(now.stored, (f"{name} did not exist at {when}: the tenant had no rows in it",), False)
    shared, notes, problems = [], [], []
    for c in now.columns:
        old = then.columns_by_name.get(c.name)
        if c.generated:
            continue  # computed by the server
        if old is None:
            if c.not_null and not c.has_default:
                problems.append(f"{name}.{c.name} was added after {when}, is NOT NULL and has no "
                                "default: the restored rows have no value for it")
            else:
                notes.append(f"{name}.{c.name} was added after {when}: restored rows get its default")
        elif old.type != c.type:
            problems.append(f"{name}.{c.name} was {old.type} at {when} and is {c.type} now")
        else:
            shared.append(c.name)
    dropped = [c for c in then.stored if not now.has(c)]
    if dropped:
        notes.append(f"{name}: {', '.join(dropped)} dropped after {when}, not restored")
    missing = [k for k in now.primary_key if k not in shared]
    if missing and not problems:
        problems.append(f"{name}: primary key column {', '.join(missing)} did not exist at {when}")
    if problems:
        raise TenantError("the schema changed since the target time in a way a tenant restore "
                          "cannot bridge (restore to a time after that migration):\n  "
                          + "\n  ".join(problems))
    return Columns(tuple(shared), tuple(notes))


def client_id(text: str) -> str | None:
    """CLIENT as a client id (a UUID), or None (then it is an API key)."""
    return text.strip().lower() if UUID_RE.fullmatch(text.strip()) else None
