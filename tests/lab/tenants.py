"""A tenant's rows as the tests compare them, on a single host or a cluster."""

from __future__ import annotations


def tenant_tables(conn) -> list[tuple[str, str]]:
    """(table, the column naming its tenant) for every public table that holds tenant rows."""
    rows = conn.execute("select table_name from information_schema.columns where table_schema = "
                        "'public' and column_name = 'client_id' order by 1").fetchall()
    return [("clients", "id")] + [(r[0], "client_id") for r in rows]


def rows_of(conn, cid: str) -> dict[str, list[str]]:
    """Every row of one tenant, as text (vectors and JSON as the server prints them), sorted."""
    return {t: [r[0] for r in conn.execute(f"select x::text from {t} x where {k} = %s order by 1",
                                            (cid,))]
            for t, k in tenant_tables(conn)}
