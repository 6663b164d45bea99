"""`pgops tenant restore`: one tenant's rows as they were at a time, compared with now and, with
--apply --yes, put back in one transaction, every other tenant untouched.

The database is restored beside the live cluster (pgops.backup.restore: the verified path);
the tenant's rows are read from that copy (COPY, exact for vectors and JSON), staged in the
live database in the restoring session's temporary tables, compared by primary key, and
applied: the tenant's own row updated in place, its rows in every other table deleted
(children first) and inserted as they were (parents first), append-only tables (an audit
trail) only given back what they lost. The copy is removed at the end, whatever happened.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from pgops.backup import restore as beside
from pgops.backup.repository import Backups
from pgops.remote import run
from pgops.server import psql
from pgops.tenant import model, statements
from pgops.tenant.catalog import CATALOG_SQL, parse
from pgops.tenant.model import Columns, Tenancy, TenantError

#: How long the apply waits for a row lock held by the tenant's own live traffic before it
#: gives up (and changes nothing): other tenants' rows are never locked.
LOCK_TIMEOUT = "5s"
#: The column of the tenants table that a public API key is looked up in.
API_KEY_COLUMN = "public_api_key"
AUDIT_TABLE = "audit_events"
AUDIT_COLUMNS = {"client_id", "actor", "action", "entity", "entity_id", "details"}


@dataclass
class TenantPlan:
    client: str  # as given: a client id or an API key
    client_id: str | None  # None until found (a tenant deleted since exists only at the target)
    restore: beside.RestorePlan
    tenancy: Tenancy = field(repr=False)
    database: str
    live_label: str
    apply: bool
    steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"client": self.client, "client_id": self.client_id, "database": self.database,
                "live": self.live_label, "apply": self.apply, "tables": list(self.tenancy.order),
                "restore": self.restore.as_dict(), "steps": self.steps}


def _one(cur: psycopg.Cursor) -> tuple:
    row = cur.fetchone()
    assert row is not None  # an aggregate answers one row
    return row


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def lookup_sql(tenancy: Tenancy, client: str) -> str | None:
    """The query finding a client id from CLIENT (an id, or an API key), None when the tenants
    table has no API key column and CLIENT is not an id."""
    root = tenancy.tables[tenancy.root]
    key = model.client_id(client)
    column = tenancy.root_key if key else API_KEY_COLUMN
    if not root.has(column):
        return None
    return (f"select {statements.ident(tenancy.root_key)}::text from {tenancy.root} "
            f"where {statements.ident(column)}::text = {_literal(key or client)}")


def find_client(conn: psycopg.Connection, tenancy: Tenancy, client: str) -> str | None:
    """CLIENT's id in a live database, None when it is not there (or cannot be looked up)."""
    lookup = lookup_sql(tenancy, client)
    row = conn.execute(lookup).fetchone() if lookup else None
    return row[0] if row else None


def plan(backups: Backups, db: str, client: str, to: str, url: str, live_label: str,
         apply: bool, with_triggers: bool = False) -> TenantPlan:
    """Read the live schema (refusing one that cannot be restored per tenant, and an apply
    that triggers would make inexact unless with_triggers), find the client, and plan the
    restore beside the live cluster."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        tenancy = model.discover(parse(_one(conn.execute(CATALOG_SQL))[0]))
        refusal = tenancy.trigger_refusal()
        if apply and refusal and not with_triggers:
            raise TenantError(refusal)
        lookup = lookup_sql(tenancy, client)
        if lookup is None:
            raise TenantError(f"{client!r} is not a client id, and {tenancy.root} has no "
                              f"{API_KEY_COLUMN} column to look it up in")
        row = conn.execute(lookup).fetchone()
        database = conn.info.dbname
    rp = beside.plan(backups, db, to, scratch=True)
    # Not found now: a tenant deleted since is found at the target, or nowhere (then refused).
    tp = TenantPlan(client, row[0] if row else None, rp, tenancy, database, live_label, apply)
    who = tp.client_id or client
    when = beside.iso(rp.target_time)
    tp.steps = [*rp.steps,
                f"read tenant {who}'s rows at {when} from the copy: {len(tenancy.order)} tables "
                f"({', '.join(tenancy.order)})",
                f"stage them in temporary tables of a session on {live_label} and compare them "
                "with the live rows, by primary key, table by table"]
    if apply:
        tp.steps += [f"in one transaction (lock_timeout {LOCK_TIMEOUT}): set {tenancy.root}'s row "
                     f"of the tenant to its values at {when}; delete the tenant's rows of "
                     f"{', '.join(reversed(tenancy.replaced)) or 'no other table'} (children first) "
                     "and insert them as they were (parents first)"
                     + (f"; give {', '.join(tenancy.kept)} (append-only) back the rows it lost, "
                        "keeping the newer ones" if tenancy.kept else "")
                     + "; advance sequences past the restored keys"
                     + ("; the triggers of " + ", ".join(tenancy.triggers) + " fire on those rows"
                        if tenancy.triggers else "")
                     + (f"; record an {AUDIT_TABLE} row" if _audit_table(tenancy) else "")]
    else:
        tp.steps += ["nothing in the live tenant changes (add --apply --yes to put its rows back)"]
    tp.steps += [f"remove the copy (cluster {rp.cluster} on {rp.target_host})"]
    return tp


def _audit_table(tenancy: Tenancy) -> str | None:
    for name in tenancy.kept:
        t = tenancy.tables[name]
        if name.split(".")[-1] == AUDIT_TABLE and AUDIT_COLUMNS <= set(t.columns_by_name):
            return name
    return None


def execute(backups: Backups, tp: TenantPlan, url: str, say: Callable[[str], None] = lambda m: None
            ) -> dict:
    """Restore beside, stage, compare and (with tp.apply) apply; the copy is always removed."""
    rp = tp.restore
    t0 = time.monotonic()
    try:  # the copy is removed however this ends, a failed restore included
        restored = beside.execute(backups, rp, say=say)
        t_restore = time.monotonic() - t0
        h = backups.db(rp.target_host)

        def at_target(sql: str) -> str:
            return run(h, psql.shell(sql, rp.port, tp.database))

        then = parse(at_target(CATALOG_SQL).strip())
        cid = tp.client_id
        if cid is None:
            lookup = lookup_sql(tp.tenancy, tp.client)
            cid = (at_target(lookup).strip() or None) if lookup else None
        if cid is None:
            raise TenantError(f"no tenant {tp.client!r}: not in {tp.tenancy.root} now, nor at "
                              f"{beside.iso(rp.target_time)}")
        when = beside.iso(rp.target_time)
        columns = {t: model.columns_at(t, then.get(t), tp.tenancy.tables[t], when)
                   for t in tp.tenancy.order}
        say(f"staging tenant {cid}'s rows at {when} on the live database")
        t1 = time.monotonic()
        out = _stage_compare_apply(tp, cid, columns, url, at_target_copy(h, rp.port, tp.database),
                                   say)
        out["seconds"] = {"restore": round(t_restore, 2), "tenant": round(time.monotonic() - t1, 2)}
    finally:
        say(f"removing the copy {rp.cluster} on {rp.target_host}")
        beside.cleanup(backups, rp)
    out.update({"client": tp.client, "client_id": cid, "target_time": when,
                "backup": restored["backup"], "applied": tp.apply,
                "notes": [n for c in columns.values() for n in c.notes]})
    return out


def at_target_copy(h, port: int, database: str) -> Callable[[str], bytes]:
    """A function running one COPY ... TO STDOUT on the copy; its bytes, exactly (base64 on
    the wire: the SSH session's text handling never touches the data)."""
    def copy(sql: str) -> bytes:
        tmp = "$t"
        cmd = (f"t=$(mktemp) && {psql.shell(sql, port, database)} > {tmp} && base64 -w0 {tmp}; "
               f"rc=$?; rm -f {tmp}; exit $rc")
        return base64.b64decode(run(h, cmd).strip())
    return copy


def _stage_compare_apply(tp: TenantPlan, cid: str, columns: dict[str, Columns], url: str,
                         copy_out: Callable[[str], bytes], say: Callable[[str], None]) -> dict:
    ten = tp.tenancy
    tables: list[dict] = []
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        for i, name in enumerate(ten.order):
            t, c = ten.tables[name], columns[name]
            conn.execute(statements.create_staged(i, name, c.shared))
            if c.at_target:
                data = copy_out(statements.copy_out(name, ten.key(name), c.shared, cid))
                with conn.cursor().copy(statements.copy_in(i, c.shared)) as cp:
                    cp.write(data)
            then_n, now_n, only_then, only_now, changed, taken = _one(conn.execute(
                statements.diff(i, t, ten.key(name), c.shared), {"client": cid}))
            tables.append({"table": name, "at_target": then_n, "now": now_n,
                           "only_at_target": len(only_then), "only_now": len(only_now),
                           "changed": len(changed), "append_only": t.append_only,
                           "keys": {"only_at_target": only_then, "only_now": only_now,
                                    "changed": changed}, "taken_by_another_tenant": taken})
        result: dict = {"tables": tables, "applied_rows": None}
        if tp.apply:
            say(f"applying tenant {cid}'s rows at the target in one transaction")
            try:
                result["applied_rows"] = _apply(conn, tp, cid, columns, tables)
            except psycopg.errors.LockNotAvailable:
                raise TenantError(f"tenant {cid}'s rows stayed locked by another session for "
                                  f"longer than {LOCK_TIMEOUT} (its own traffic?): nothing was "
                                  "changed; run again when it is quieter") from None
    return result


def _apply(conn: psycopg.Connection, tp: TenantPlan, cid: str, columns: dict[str, Columns],
           tables: list[dict]) -> dict:
    ten = tp.tenancy
    by_name = {t["table"]: t for t in tables}
    if by_name[ten.root]["at_target"] == 0:
        raise TenantError(f"tenant {cid} did not exist at {beside.iso(tp.restore.target_time)}: "
                          "nothing to put back (nothing was changed)")
    taken = {n: t["taken_by_another_tenant"] for n, t in by_name.items() if t["taken_by_another_tenant"]}
    if taken:
        raise TenantError("rows of the tenant at the target have keys that another tenant's rows "
                          f"hold now (nothing was changed): {json.dumps(taken)[:500]}")
    p = {"client": cid}
    done: dict[str, dict] = {}
    root = ten.tables[ten.root]
    with conn.transaction():
        conn.execute(f"set local lock_timeout = '{LOCK_TIMEOUT}'")
        upd = statements.update_root(root, ten.root_key, columns[ten.root].shared)
        n = conn.execute(upd, p).rowcount if upd else 0
        if by_name[ten.root]["now"] == 0:  # deleted since: back with every row
            n = conn.execute(statements.insert_root(root, columns[ten.root].shared)).rowcount
        done[ten.root] = {"updated" if by_name[ten.root]["now"] else "inserted": n}
        for name in reversed(ten.replaced):
            done[name] = {"deleted": conn.execute(statements.delete(name, model.KEY), p).rowcount}
        for i, name in enumerate(ten.order):
            if name == ten.root:
                continue
            t, cols = ten.tables[name], columns[name].shared
            ins = conn.execute(statements.insert(i, t, cols, missing_only=t.append_only)).rowcount
            done.setdefault(name, {})["inserted"] = ins
            for sql in statements.advance_sequences(t, cols):
                conn.execute(sql)
        audit = _audit_table(ten)
        if audit:
            details = {"to": beside.iso(tp.restore.target_time), "by": "pgops tenant restore",
                       "rows": done}
            conn.execute(f"insert into {audit} (client_id, actor, action, entity, entity_id, details) "
                         "values (%(client)s, 'pgops', 'tenant.restore', 'client', %(entity)s, "
                         "%(details)s)", {**p, "entity": cid, "details": Jsonb(details)})
    return done


def rows_at(backups: Backups, db: str, client: str, to: str, database: str,
            say: Callable[[str], None] = lambda m: None
            ) -> tuple[str, float, int | None, list, list[str]]:
    """(client id, target epoch, schema version, its export blocks, the statements advancing
    their sequences) as of `to`, read from a copy restored beside the live cluster and
    removed after; columns as they were then."""
    from pgops.tenant import portable

    rp = beside.plan(backups, db, to, scratch=True)
    try:  # the copy is removed however this ends, a failed restore included
        beside.execute(backups, rp, say=say)
        h = backups.db(rp.target_host)

        def at_target(sql: str) -> str:
            return run(h, psql.shell(sql, rp.port, database))

        then = parse(at_target(CATALOG_SQL).strip())
        past = model.discover(then)
        cid = model.client_id(client)
        if cid is None:
            lookup = lookup_sql(past, client)
            cid = (at_target(lookup).strip() or None) if lookup else None
        if cid is None:
            raise TenantError(f"no tenant {client!r} at {beside.iso(rp.target_time)}")
        parts = portable.blocks(past, cid, at_target_copy(h, rp.port, database),
                                lambda t: then[t].stored)
        if not parts[0].rows:
            raise TenantError(f"no tenant {client!r} at {beside.iso(rp.target_time)}: "
                              "nothing was exported")
        version = at_target(portable.SCHEMA_VERSION_SQL).strip()
    finally:
        say(f"removing the copy {rp.cluster} on {rp.target_host}")
        beside.cleanup(backups, rp)
    return cid, rp.target_time, int(version) if version else None, parts, portable.sequences(past, parts)
