"""`pgops tenant erase`: every row of one tenant deleted, children first and its own row last,
in one transaction; and the honest rest of the answer: its rows stay in the backups taken
before, until retention expires them."""

from __future__ import annotations

import psycopg

from pgops.tenant import statements
from pgops.tenant.model import Tenancy

LOCK_TIMEOUT = "5s"


def counts(conn: psycopg.Connection, ten: Tenancy, cid: str) -> dict[str, int]:
    """The tenant's rows per table (the plan of an erase)."""
    out = {}
    for name in ten.order:
        row = conn.execute(f"select count(*) from {name} where {statements.ident(ten.key(name))} "
                           "= %s", (cid,)).fetchone()
        out[name] = row[0] if row else 0
    return out


def erase(conn: psycopg.Connection, ten: Tenancy, cid: str) -> dict[str, int]:
    """Delete the tenant everywhere (one transaction); rows deleted per table."""
    deleted = {}
    with conn.transaction():
        conn.execute(f"set local lock_timeout = '{LOCK_TIMEOUT}'")
        for name in reversed(ten.order):
            deleted[name] = conn.execute(statements.delete(name, ten.key(name)),
                                         {"client": cid}).rowcount
    return deleted


def remaining_in_backups(backups: list[dict], retention_full: int) -> str:
    """What a user must be told after an erasure (pure): the backups that still hold the
    tenant's rows, and when retention expires them."""
    kept = [b for b in backups if not b.get("error")]
    if not kept:
        return "no backup holds the tenant's rows"
    fulls = sum(1 for b in kept if b["type"] == "full")
    # pgBackRest keeps the newest `retention_full` fulls (and what depends on them): the
    # newest one taken before the erasure goes after that many new fulls, whatever came before.
    more = retention_full
    return (f"its rows remain in {len(kept)} backup(s) ({fulls} full, the oldest from "
            f"{kept[0]['label']}) and in the WAL archived since: the last of them expires after "
            f"{more} more full backup(s) (repo1-retention-full = {retention_full}); a restore to "
            "a time before now brings the rows back until then")
