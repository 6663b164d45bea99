"""What the endpoint looks like on each host: PgBouncer's pools (SHOW POOLS), for `pgops
status`, and which members each HAProxy route sends to (its `show stat`), for `pgops cluster
status`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyinfra.api.host import Host

from pgops import remote
from pgops.endpoint import control, haproxy, pgbouncer
from pgops.settings import Settings

#: SHOW POOLS columns pgops reports as counts: clients served and waiting, server connections
#: in use, idle and just used (the oldest client's wait is maxwait_s, from two columns).
POOL_COLUMNS = ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used")


def pools(rows: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """SHOW POOLS rows as numbers, the admin console's own pool left out (pure)."""
    out = []
    for r in rows:
        if r.get("database") == "pgbouncer":
            continue
        row: dict[str, Any] = {"database": r.get("database"), "user": r.get("user")}
        row.update({c: int(r.get(c) or 0) for c in POOL_COLUMNS})
        row["maxwait_s"] = int(r.get("maxwait") or 0) + int(r.get("maxwait_us") or 0) / 1e6
        out.append(row)
    return out


def host_pools(h: Host, port: int) -> list[dict[str, Any]] | None:
    """The pools of the PgBouncer on `h` (None when it does not answer)."""
    ok, out = remote.try_run(h, pgbouncer.admin_command("SHOW POOLS", port, 10),
                             user=pgbouncer.ADMIN_USER, timeout=20)
    return pools(pgbouncer.parse_rows(out)) if ok else None


def member_endpoint(name: str, h: Host, s: Settings, proxy: bool = False) -> dict[str, Any]:
    """One member's (or `proxy` host's) pools and routes; None where its PgBouncer (`pooled`:
    it should run one) or HAProxy does not answer."""
    row: dict[str, Any] = {"member": name, "pooled": not proxy and bool(s.pooler), "pools": None,
                           "routes": None, "proxy": proxy}
    if not h.connected:
        return row
    if s.pooler and row["pooled"]:
        row["pools"] = host_pools(h, s.pooler.port)
    ok, out = remote.try_run(h, haproxy.runtime_command(["show stat"]), timeout=20)
    row["routes"] = control.routes(control.parse_stat(out)) if ok else None
    return row
