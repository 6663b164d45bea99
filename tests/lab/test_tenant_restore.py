"""One tenant back in time (`pgops tenant restore`), on the single-host lab: tenant A's rows
at T come back exactly, embeddings included, while tenant B keeps writing and loses nothing;
without --apply nothing changes; a killed apply changes nothing; bad requests are named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid

import psycopg
import pytest

from pgops.backup.restore import iso
from pgops.client.targets import inventory_target
from pgops.schema.seed import _id, seed
from tests.lab.conftest import BIN, PROJECT_ROOT, pgops
from tests.lab.tenants import rows_of

A, B = str(_id("client", 1)), str(_id("client", 2))


def connect(url: str, **kw) -> psycopg.Connection:
    """The test's own sessions, told apart from pgops's (application_name pgops)."""
    return psycopg.connect(url, application_name="pgops-tests", **kw)


def checksums(conn) -> dict[str, str]:
    tables = [r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'public'")]
    return {t: conn.execute(f"select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) "
                            f"from {t} x").fetchone()[0] for t in tables}


class BWriter(threading.Thread):
    """Tenant B at work: a conversation with a message, and its name changed, every 50 ms."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop, self.error = url, threading.Event(), None
        self.conversations: list[str] = []
        self.name = ""

    def run(self) -> None:
        try:
            with connect(self.url, autocommit=True) as c:
                i = 0
                while not self.stop.is_set():
                    i += 1
                    cid = str(uuid.uuid4())
                    with c.transaction():
                        c.execute("insert into conversations (id, client_id, visitor_id) "
                                  "values (%s, %s, 'b-writer')", (cid, B))
                        c.execute("insert into messages (client_id, conversation_id, role, content) "
                                  "values (%s, %s, 'visitor', %s)", (B, cid, f"b message {i}"))
                        c.execute("update clients set name = %s where id = %s", (f"B {i}", B))
                    self.conversations.append(cid)
                    self.name = f"B {i}"
                    time.sleep(0.05)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


@pytest.fixture(scope="module")
def at_t(lab, first_deploy):
    """Two seeded tenants and a backup; T after A's known state; then A's conversations and
    knowledge base deleted, its users and name changed, a conversation added."""
    url = inventory_target(None, "db1", "migrator", None).url
    with connect(url, autocommit=True) as c:
        c.execute("delete from clients where id in (%s, %s)", (A, B))  # and their rows (cascade)
        seed(c, tenants=2, kb_per_tenant=12)
        pgops("backup", "--type", "incr", "--host", "db1")
        then = rows_of(c, A)
        time.sleep(1.1)
        t = time.time()
        time.sleep(1.1)
        c.execute("delete from conversations where client_id = %s", (A,))
        c.execute("delete from knowledge_base where client_id = %s and title < 'm'", (A,))
        c.execute("update knowledge_base set metadata = '{\"edited\": true}' where client_id = %s", (A,))
        c.execute("update users set email = 'changed-' || email where client_id = %s", (A,))
        c.execute("update clients set name = 'A renamed' where id = %s", (A,))
        c.execute("insert into conversations (client_id, visitor_id) values (%s, 'after-t')", (A,))
        now = rows_of(c, A)
    assert then != now and then["knowledge_base"] and then["messages"]
    return url, iso(t), then


def test_plan_and_bad_requests_change_nothing_and_are_named(at_t):
    url, t, _ = at_t
    plan = pgops("tenant", "restore", A, "--to", t, "--apply", "--yes", "--plan")
    assert "tenant restore plan" in plan.out and "in one transaction" in plan.out, plan.out
    assert "public.knowledge_base" in plan.out and "remove the copy" in plan.out
    for args, said in (
            (["--apply"], "add --yes"),
            (["--to", "2001-01-01T00:00:00Z"], "outside the recoverable window"),
            (["--to", "latest"], "needs a past time")):
        r = pgops("tenant", "restore", A, *(["--to", t] if "--to" not in args else []), *args,
                  check=False)
        assert r.rc == 2 and said in r.out, r.out
    with connect(url, autocommit=True) as c:  # a client_id without an index: named
        c.execute("create table unindexed_notes (id uuid primary key, client_id uuid not null "
                  "references clients (id))")
        try:
            r = pgops("tenant", "restore", A, "--to", t, "--plan", check=False)
        finally:
            c.execute("drop table unindexed_notes")
    assert r.rc == 2 and "public.unindexed_notes: client_id leads no index" in r.out, r.out
    with connect(url, autocommit=True) as c:  # a trigger would fire on re-inserted rows: named
        before = checksums(c)
        c.execute("create function pgops_test_touch() returns trigger language plpgsql as "
                  "$$ begin return new; end $$")
        c.execute("create trigger touch_tags before insert on tags for each row "
                  "execute function pgops_test_touch()")
        try:
            r = pgops("tenant", "restore", A, "--to", t, "--apply", "--yes", check=False)
            shown = pgops("tenant", "restore", A, "--to", t, "--apply", "--yes", "--plan",
                          "--with-triggers")
        finally:
            c.execute("drop trigger touch_tags on tags; drop function pgops_test_touch()")
        assert checksums(c) == before
    assert r.rc == 2 and "public.tags (touch_tags)" in r.out and "--with-triggers" in r.out, r.out
    assert "the triggers of public.tags fire on those rows" in shown.out, shown.out


def test_without_apply_the_diff_is_shown_and_no_table_changes(at_t):
    url, t, then = at_t
    with connect(url, autocommit=True) as c:
        c.execute("alter table widget_config add column if not exists pgops_probe text")
        try:
            before = checksums(c)
            r = pgops("tenant", "restore", A, "--to", t, "--json")
            after = checksums(c)
            leftovers = c.execute("select count(*) from pg_class where relname like 'pgops_tenant_%'"
                                  ).fetchone()[0]
        finally:
            c.execute("alter table widget_config drop column pgops_probe")
    assert before == after
    assert leftovers == 0
    out = json.loads(r.stdout)
    by = {x["table"]: x for x in out["tables"]}
    conv = by["public.conversations"]
    assert conv["only_at_target"] == len(then["conversations"]) and conv["only_now"] == 1, conv
    assert by["public.knowledge_base"]["at_target"] == len(then["knowledge_base"])
    assert by["public.users"]["changed"] == len(then["users"]) > 0
    assert by["public.clients"]["changed"] == 1 and out["applied_rows"] is None
    assert any("widget_config.pgops_probe was added after" in n for n in out["notes"]), out["notes"]
    print(f"\ntenant diff without --apply: restore {out['seconds']['restore']} s, tenant steps "
          f"{out['seconds']['tenant']} s")


def test_apply_gives_a_exactly_its_rows_at_t_while_b_writes_and_loses_nothing(at_t):
    url, t, then = at_t
    with connect(url, autocommit=True) as c:
        b_before = rows_of(c, B)
        w = BWriter(url)
        w.start()
        try:
            r = pgops("tenant", "restore", A, "--to", t, "--apply", "--yes", "--json")
        finally:
            time.sleep(0.5)
            w.stop.set()
            w.join(10)
        assert w.error is None, w.error
        assert len(w.conversations) > 10, "tenant B's writer barely ran during the restore"
        now = rows_of(c, A)
        b_now = rows_of(c, B)
        audit = c.execute("select action, details from audit_events where client_id = %s "
                          "and action = 'tenant.restore'", (A,)).fetchall()
        hnsw = c.execute("select bool_and(indisvalid) from pg_index where indexrelid = "
                         "'knowledge_base_embedding_hnsw_idx'::regclass").fetchone()[0]
        c.execute("set enable_seqscan = off")
        near = c.execute("select count(*) from (select id from knowledge_base where client_id = %s "
                         "order by embedding <=> (select embedding from knowledge_base where "
                         "client_id = %s limit 1) limit 5) x", (A, A)).fetchone()[0]
    result = json.loads(r.stdout)
    for table, rows in then.items():
        if table == "audit_events":  # append-only: what it had at T, and the restore's own row
            assert set(rows) <= set(now[table]) and len(now[table]) == len(rows) + 1, table
        else:
            assert now[table] == rows, f"{table}: tenant A's rows differ from T"
    assert len(audit) == 1 and audit[0][1]["to"] == result["target_time"]
    ours = set(w.conversations)
    b_conv = set(b_now["conversations"])
    assert len([x for x in b_conv if "b-writer" in x]) == len(ours)  # every write of B kept
    assert f'"{w.name}"' in b_now["clients"][0], (w.name, b_now["clients"])
    for table in b_before:
        if table not in ("conversations", "messages", "clients"):
            assert b_now[table] == b_before[table], f"{table}: tenant B changed"
    assert hnsw and near == min(5, len(then["knowledge_base"]))
    print(f"\ntenant restore --apply: restore {result['seconds']['restore']} s, tenant steps "
          f"{result['seconds']['tenant']} s; B wrote {len(ours)} conversations meanwhile, none "
          f"failed or lost; A's {sum(map(len, then.values()))} rows at T back exactly")


def test_a_killed_apply_leaves_the_tenant_as_it_was(lab, at_t):
    url, t, _ = at_t
    with connect(url, autocommit=True) as c, connect(url) as holder:
        c.execute("delete from knowledge_base where client_id = %s", (A,))
        c.execute("update clients set name = 'A before the kill' where id = %s", (A,))
        before = rows_of(c, A)
        # A lock on one of A's messages: the apply's delete waits there, inside its transaction.
        holder.execute("select 1 from messages where client_id = %s limit 1 for update", (A,))
        p = subprocess.Popen([str(BIN / "pgops"), "tenant", "restore", A, "--to", t, "--apply",
                              "--yes"], cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True,
                             stdout=subprocess.DEVNULL, env=os.environ.copy())
        seen = []
        try:
            assert p.stderr is not None
            for line in p.stderr:
                seen.append(line)
                if "applying tenant" in line:
                    time.sleep(1.5)
                    p.send_signal(signal.SIGKILL)
                    break
        finally:
            p.kill()
            p.wait(30)
            holder.rollback()
        assert any("applying tenant" in x for x in seen), "".join(seen)[-2000:]
        deadline = time.monotonic() + 30
        while c.execute("select count(*) from pg_stat_activity where application_name = 'pgops'"
                        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed apply's session is still there"
            time.sleep(0.5)
        assert rows_of(c, A) == before

    def copies() -> list[str]:
        return lab.ssh("db1", "pg_lsclusters -h | awk '$2 ~ /^restore_/ {print $2}'").stdout.split()

    # The killed run's copy is still there, a server holding memory, until the next run
    # (here one for an unknown tenant, which restores, then refuses) finds its process gone.
    left = copies()
    assert len(left) == 1, left
    nobody = "00000000-0000-4000-8000-000000000000"
    r = pgops("tenant", "restore", nobody, "--to", t, check=False)
    assert r.rc == 2 and f"no tenant '{nobody}'" in r.out, r.out[-2000:]
    assert f"removing 17/{left[0]} on db1: a copy left by a killed run" in r.out, r.out[-2000:]
    assert r.out.count("a copy left by a killed run") == 1, r.out[-2000:]  # that one alone
    assert copies() == []
    # Nothing of any copy on disk: no conf directory (with the mark), no data (the user's
    # `pgops restore` copies of other tests, dropped with pg_dropcluster, leave none either).
    assert lab.ssh("db1", "ls -d /etc/postgresql/17/restore_* /var/lib/postgresql/17/restore_* "
                          "2>/dev/null || true").stdout.strip() == ""


def test_an_unknown_tenant_is_named(at_t):
    _, t, _ = at_t
    r = pgops("tenant", "restore", "pk_not_a_key", "--to", t, "--plan", check=False)
    assert r.rc == 0 and "tenant restore plan for pk_not_a_key" in r.out, r.out[-2000:]


def test_export_then_load_into_another_database_reproduces_the_tenant(at_t, tmp_path):
    """Exported from db1's app database, loaded into db2's (same schema version, no tenant A).
    db2 holds another tenant whose audit_events ids are A's: those rows take new ids (a
    surrogate key nothing refers to); a user id of A's held there is refused, nothing loaded."""
    url, _, _ = at_t
    other = inventory_target(None, "db2", "migrator", None).url
    other_client = str(uuid.uuid4())
    with connect(url, autocommit=True) as live:  # A has audit rows to collide with
        live.execute("insert into audit_events (client_id, actor, action, entity) "
                     "values (%s, 'tests', 'export.probe', 'client')", (A,))
        audit_ids = [r[0] for r in live.execute("select id from audit_events where client_id = %s",
                                                (A,))]
        a_user = live.execute("select id from users where client_id = %s limit 1", (A,)).fetchone()[0]
    with connect(other, autocommit=True) as c:
        c.execute("delete from clients where id = %s", (A,))  # a reused lab may hold it
        c.execute("insert into clients (id, name, public_api_key) values (%s, 'other', %s)",
                  (other_client, f"pk_{other_client}"))
        for i in audit_ids:
            c.execute("insert into audit_events (id, client_id, actor, action, entity) overriding "
                      "system value values (%s, %s, 'tests', 'collide', 'client') on conflict do nothing",
                      (i, other_client))
        # As the rows had come from db2's own sequence: it is past them.
        c.execute("select setval(pg_get_serial_sequence('audit_events', 'id'), max(id)) from audit_events")
    try:
        out = tmp_path / "a.sql"
        r = pgops("tenant", "export", A, "-o", str(out))
        assert f"exported tenant {A}" in r.out and out.stat().st_mode & 0o777 == 0o600, r.out
        # The password from the environment, as the command's help says: never on its argv.
        info = psycopg.conninfo.conninfo_to_dict(other)
        secret = {"PGPASSWORD": str(info.pop("password"))}
        dsn = psycopg.conninfo.make_conninfo(**info)
        with connect(other, autocommit=True) as c:  # one of A's user ids taken there
            c.execute("insert into users (id, client_id, email, password_hash) values "
                      "(%s, %s, 'taken@example.com', 'x')", (a_user, other_client))
        refused = pgops("tenant", "load", str(out), "--into", dsn, env=secret, check=False)
        assert refused.rc == 2 and "public.users have keys the target already holds" in refused.out \
            and "nothing was loaded" in refused.out, refused.out
        with connect(other, autocommit=True) as c:
            assert c.execute("select count(*) from clients where id = %s", (A,)).fetchone()[0] == 0
            c.execute("delete from users where id = %s", (a_user,))
            # A trigger on a tenant table of the target fires on loaded rows: refused, named,
            # unless --with-triggers (this one changes nothing, so the load stays exact).
            c.execute("create or replace function pgops_test_touch() returns trigger "
                      "language plpgsql as $$ begin return new; end $$")
            c.execute("create trigger touch_tags before insert on tags for each row "
                      "execute function pgops_test_touch()")
            try:
                fires = pgops("tenant", "load", str(out), "--into", dsn, env=secret, check=False)
                loaded = pgops("tenant", "load", str(out), "--into", dsn, "--with-triggers",
                               env=secret)
            finally:
                c.execute("drop trigger touch_tags on tags; drop function pgops_test_touch()")
        assert fires.rc == 2 and "public.tags (touch_tags)" in fires.out \
            and "--with-triggers to load anyway (nothing was changed)" in fires.out, fires.out
        assert "loaded tenant" in loaded.out and "warning" not in loaded.out, loaded.out
        assert "public.audit_events: new keys" in loaded.out, loaded.out
        again = pgops("tenant", "load", str(out), "--into", dsn, env=secret, check=False)
        assert again.rc == 2 and "already in the target" in again.out, again.out
        audit = "select (to_jsonb(x) - 'id')::text from audit_events x where client_id = %s order by 1"
        with connect(url) as live, connect(other) as copy:
            exported, loaded_rows = rows_of(live, A), rows_of(copy, A)
            same_audit = ([r[0] for r in live.execute(audit, (A,))]
                          == [r[0] for r in copy.execute(audit, (A,))])
            new_ids = {r[0] for r in copy.execute("select id from audit_events where client_id = %s", (A,))}
        assert same_audit and not new_ids & set(audit_ids), (new_ids, audit_ids)
        exported.pop("audit_events"), loaded_rows.pop("audit_events")
        assert loaded_rows == exported and sum(map(len, exported.values())) > 5
        print(f"\nexport then load: {sum(map(len, exported.values()))} rows of tenant A identical, "
              f"{len(audit_ids)} audit rows with new ids")
    finally:
        with connect(other, autocommit=True) as c:
            c.execute("delete from clients where id in (%s, %s)", (A, other_client))


def test_erase_deletes_every_row_of_the_tenant_and_no_other(at_t):
    url, _, _ = at_t
    with connect(url, autocommit=True) as c:
        b_before = rows_of(c, B)
        refused = pgops("tenant", "erase", A, check=False)
        assert refused.rc == 2 and "add --yes" in refused.out and "erase plan" in refused.out
        assert any(rows_of(c, A).values())
        r = pgops("tenant", "erase", A, "--yes")
        assert rows_of(c, A) == {t: [] for t in rows_of(c, A)}
        assert rows_of(c, B) == b_before
    assert f"erased tenant {A}" in r.out and "remain in" in r.out and "retention" in r.out, r.out
    print(f"\n{r.out.strip()}")
