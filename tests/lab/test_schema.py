"""The shipped schema on the lab's application database: deploy applied it; seed; tenant
isolation enforced by the database; the connection layer's pool and retries."""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from pgops.client.db import DbSettings, DbUnavailable, check_connection, make_pool
from pgops.client.targets import inventory_target
from tests.lab.conftest import pgops

TENANT_TABLES = ["users", "widget_config", "widget_styles", "tags", "audit_events",
                 "conversations", "messages", "conversation_tags", "knowledge_base"]


@pytest.fixture(scope="module")
def seeded(first_deploy):
    out = pgops("seed", "--tenants", "3", "--kb-per-tenant", "40")
    return json.loads(out.stdout)


def url(user: str, host: str = "db1") -> str:
    return inventory_target(None, host, user, None).url


def tenant_ids() -> list:
    with psycopg.connect(url("migrator")) as c:
        return [r[0] for r in c.execute("select id from clients order by name")]


def test_deploy_applied_the_schema(first_deploy):
    st = json.loads(pgops("migrate", "status", "--json").stdout)
    assert st["current"] == st["latest"] >= 3
    assert all(m["state"] == "applied" for m in st["migrations"])
    assert pgops("migrate", "--plan").out.count("0 migration(s) would run") == 1


def test_seed_is_deterministic_and_idempotent(seeded):
    with psycopg.connect(url("migrator")) as c:
        counts = {t: c.execute(f"select count(*) from {t} where client_id in "
                               f"(select id from clients where name like 'Tenant %%')").fetchone()[0]
                  for t in ("users", "knowledge_base", "messages")}
    assert counts == {"users": 9, "knowledge_base": 120, "messages": 60}
    again = json.loads(pgops("seed", "--tenants", "3", "--kb-per-tenant", "40").stdout)
    assert again["total"] == 0


def test_tenant_sees_and_changes_nothing_of_another(seeded):
    a, b, _ = tenant_ids()
    with psycopg.connect(url("app")) as c:
        c.execute("select set_config('app.client_id', %s, false)", (str(a),))
        for table in TENANT_TABLES:
            own = c.execute(f"select count(*) from {table}").fetchone()[0]
            other = c.execute(f"select count(*) from {table} where client_id <> %s", (a,)).fetchone()[0]
            assert other == 0, table
            assert own > 0, table
        assert c.execute("select count(*) from clients").fetchone()[0] == 1
        for table in TENANT_TABLES + ["clients"]:
            col = "id" if table == "clients" else "client_id"
            if table == "audit_events":
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    c.execute("update audit_events set actor = 'x' where client_id = %s", (b,))
                c.rollback()
                c.execute("select set_config('app.client_id', %s, false)", (str(a),))
                continue
            assert c.execute(f"update {table} set {col} = {col} where {col} = %s", (b,)).rowcount == 0
            assert c.execute(f"delete from {table} where {col} = %s", (b,)).rowcount == 0
        # Writing a row for another tenant is refused by the policy's WITH CHECK.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            c.execute("insert into tags (client_id, name) values (%s, 'stolen')", (b,))
        c.rollback()
        # Without a tenant set, nothing is visible at all.
        c.execute("reset app.client_id")
        assert c.execute("select count(*) from messages").fetchone()[0] == 0
        # The app role owns nothing and cannot escape: no role switch, no history table.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("set role migrator")
        c.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("delete from pgops.schema_history")
        c.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("alter table messages disable row level security")
        c.rollback()
        owned = c.execute("select count(*) from pg_class where relowner = "
                          "(select oid from pg_roles where rolname = current_user)").fetchone()[0]
        assert owned == 0


def test_widget_flow_crud_within_a_tenant(seeded):
    """The seeds' check: resolve the API key, then create, read, update, delete as that tenant."""
    with psycopg.connect(url("migrator")) as c:
        key = c.execute("select public_api_key from clients order by name limit 1").fetchone()[0]
    with psycopg.connect(url("app")) as c:
        cid = c.execute("select client_id_for_api_key(%s)", (key,)).fetchone()[0]
        assert cid is not None
        assert c.execute("select client_id_for_api_key('pk_nope')").fetchone()[0] is None
        c.execute("select set_config('app.client_id', %s, false)", (str(cid),))
        conv = c.execute("insert into conversations (client_id, visitor_id) values (%s, 'v-crud') "
                         "returning id", (cid,)).fetchone()[0]
        c.execute("insert into messages (client_id, conversation_id, role, content) "
                  "values (%s, %s, 'visitor', 'hello')", (cid, conv))
        assert c.execute("select count(*) from messages where conversation_id = %s",
                         (conv,)).fetchone()[0] == 1
        c.execute("update conversations set status = 'closed' where id = %s", (conv,))
        assert c.execute("select status from conversations where id = %s", (conv,)).fetchone()[0] == "closed"
        c.execute("delete from conversations where id = %s", (conv,))  # cascades to messages
        assert c.execute("select count(*) from messages where conversation_id = %s",
                         (conv,)).fetchone()[0] == 0
        c.commit()


def test_knowledge_base_nearest_neighbours(seeded):
    from pgops.schema.seed import embed, vector_literal

    a = tenant_ids()[0]
    with psycopg.connect(url("app")) as c:
        c.execute("select set_config('app.client_id', %s, false)", (str(a),))
        row = c.execute("select content from knowledge_base order by id limit 1").fetchone()
        q = vector_literal(embed(row[0]))
        top = c.execute("select content, embedding <=> %s::vector as d from knowledge_base "
                        "order by embedding <=> %s::vector limit 3", (q, q)).fetchall()
        assert top[0][0] == row[0] and top[0][1] < 1e-5
        # Through the HNSW index (sorting disabled so the planner must use it): same nearest row.
        with c.transaction():
            c.execute("set local enable_sort = off")
            plan = "\n".join(r[0] for r in c.execute(
                "explain select id from knowledge_base order by embedding <=> %s::vector limit 3", (q,)))
            assert "knowledge_base_embedding_hnsw_idx" in plan
            via_index = c.execute("select content from knowledge_base order by embedding <=> %s::vector "
                                  "limit 1", (q,)).fetchone()
        assert via_index[0] == row[0]


def test_pool_exhaustion_is_a_clear_timeout(first_deploy):
    s = DbSettings(url=url("app"), pool_min=1, pool_max=2, pool_timeout=1.0)
    with make_pool(s) as pool:
        with pool.connection(), pool.connection():
            t0 = time.monotonic()
            with pytest.raises(PoolTimeout, match="couldn't get a connection after 1"):
                with pool.connection():
                    pass
            assert time.monotonic() - t0 < 5
        assert pool.get_stats()["requests_errors"] >= 1 or pool.get_stats().get("requests_num", 0) >= 3


def test_retry_succeeds_when_the_server_comes_back(lab, first_deploy):
    target = url("app", "db2")
    lab.ssh("db2", "systemctl stop postgresql@17-main")
    try:
        restart = threading.Timer(3.0, lambda: lab.ssh("db2", "systemctl start postgresql@17-main"))
        restart.start()
        retries = []
        t0 = time.monotonic()
        info = check_connection(target, attempts=8, max_wait=2.0, connect_timeout=3,
                                on_retry=lambda n, e: retries.append(n))
        restart.join()
        assert info["server_version"].startswith("17.")
        assert retries, "the first attempt cannot have succeeded while the server was down"
        assert time.monotonic() - t0 >= 2.5
    finally:
        lab.ssh("db2", "systemctl start postgresql@17-main")


def test_retry_gives_up_cleanly_after_the_maximum(lab, first_deploy):
    target = url("app", "db2")
    lab.ssh("db2", "systemctl stop postgresql@17-main")
    try:
        t0 = time.monotonic()
        with pytest.raises(DbUnavailable, match="unreachable after 3 attempts") as e:
            check_connection(target, attempts=3, max_wait=1.0, connect_timeout=2)
        assert "password" not in str(e.value) or "***" in str(e.value)
        assert time.monotonic() - t0 < 20
        health = pgops("health", "--host", "db2", "--json", check=False)
        assert health.rc == 1 and json.loads(health.stdout)["healthy"] is False
    finally:
        lab.ssh("db2", "systemctl start postgresql@17-main")


def test_health_reports_versions_and_pool(seeded):
    r = pgops("health", "--json")
    report = json.loads(r.stdout)
    assert report["healthy"] and report["pgvector"] == "0.8.0"
    assert report["server_version"].startswith("17.")
    assert report["pool"]["pool_max"] == 2 and report["latency_ms"] > 0
    assert report["schema_version"] >= 3 and report["user"] == "app"


def test_health_serves_get_health_db_for_load_balancers(seeded):
    import socket
    import subprocess
    import urllib.error
    import urllib.request

    from tests.lab.conftest import BIN, PROJECT_ROOT

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(BIN / "pgops"), "health", "--serve", str(port)], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/db", timeout=10) as r:
                    status, body = r.status, json.loads(r.read())
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        assert status == 200 and body["healthy"] and body["schema_version"] >= 3
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
        assert e.value.code == 404
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    password = psycopg.conninfo.conninfo_to_dict(url("app"))["password"]
    assert password not in out


def test_shell_runs_pgcli_on_the_target(seeded):
    r = pgops("shell", "--", "-c", "select current_user || '-is-connected' as who",
              env={"TERM": "dumb", "PAGER": "cat"})
    assert "app-is-connected" in r.out
