"""The migration engine against a real database (`scratch` on db1), with migration files
written per test: order, drift, failures, locks, no-transaction files, down and up."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from pgops.client.targets import inventory_target
from pgops.schema.migrate import MIGRATIONS_DIR, MigrationError, Migrator, Options
from pgops.schema.sqlfile import MigrationFileError
from tests.lab.conftest import pgops

SCRATCH = "scratch"


@pytest.fixture(scope="module")
def scratch_access(lab, first_deploy, tmp_path_factory):
    """The lab inventory plus a `scratch` database the migrator may reach over TLS."""
    tmp = tmp_path_factory.mktemp("inv")
    (tmp / "group_data").symlink_to(Path(__file__).resolve().parents[2] / "inventory" / "group_data")
    inv = tmp / "scratch.py"
    subnet = str(lab.subnet)
    inv.write_text(
        "from pgops.lab.inventory import db_servers as _db\n"
        "db_servers = _db(pg_databases=["
        "{'name': 'app', 'owner': 'migrator', 'extensions': ['vector']}, "
        "{'name': 'scratch', 'owner': 'migrator', 'extensions': ['vector']}], pg_hba_rules=["
        f"{{'database': 'app', 'user': 'app,migrator', 'address': '{subnet}'}}, "
        f"{{'database': 'scratch', 'user': 'migrator', 'address': '{subnet}'}}])\n"
        "from pgops.lab.inventory import backup_servers as _backup\n"
        "backup_servers = _backup()\n"
    )
    pgops("deploy", "-i", str(inv), "--limit", "db1")
    yield inv
    pgops("deploy", "--limit", "db1")  # back to the lab's own hba rules


@pytest.fixture
def db(lab, scratch_access) -> str:
    """A fresh, empty `scratch` database (with pgvector) for each test; its URL."""
    lab.ssh("db1", f"cd / && runuser -u postgres -- sh -c 'dropdb --if-exists --force {SCRATCH} && "
                   f"createdb -O migrator {SCRATCH} && psql -XAqd {SCRATCH} -c \"create extension vector\"'")
    return inventory_target(scratch_access, "db1", "migrator", SCRATCH).url


def write(d: Path, name: str, sql: str) -> Path:
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(sql)
    return p


def tables(url: str) -> list[str]:
    with psycopg.connect(url) as c:
        return [r[0] for r in c.execute("select tablename from pg_tables where schemaname = 'public' "
                                        "order by 1")]


def test_apply_from_empty_then_rerun_is_noop_and_plan_changes_nothing(db, tmp_path):
    d = tmp_path / "m"
    write(d, "0001_a.sql", "create table a (id int primary key);\n-- pgops:down\ndrop table a;\n")
    write(d, "0002_b.sql", "create table b (id int);\n")
    m = Migrator(db, d)
    assert [x.version for x in m.plan()] == [1, 2]
    assert tables(db) == []  # the plan changed nothing
    assert [x["version"] for x in m.up(to=1)] == [1]
    assert tables(db) == ["a"]
    assert [x["version"] for x in m.up()] == [2]
    assert m.up() == [] and m.plan() == []
    st = m.status()
    assert st["current"] == 2 and {r["state"] for r in st["migrations"]} == {"applied"}
    row = st["migrations"][0]
    assert row["sha256"] == row["applied_sha256"] and " as migrator" in row["applied_by"]


def test_failing_migration_rolled_back_whole_with_file_and_line(db, tmp_path):
    d = tmp_path / "m"
    write(d, "0001_ok.sql", "create table ok (id int);\n")
    write(d, "0002_bad.sql", "-- creates then fails\ncreate table half (id int);\n\n"
                             "insert into half\n  select * from no_such_table;\n")
    m = Migrator(db, d)
    with pytest.raises(MigrationError) as e:
        m.up()
    msg = str(e.value)
    assert "0002_bad.sql:5:" in msg and 'relation "no_such_table" does not exist' in msg
    assert "rolled back" in msg
    assert tables(db) == ["ok"]  # nothing of 0002 remains
    assert m.status()["current"] == 1


def test_drift_missing_and_out_of_order_are_refused(db, tmp_path):
    d = tmp_path / "m"
    first = write(d, "0001_a.sql", "create table a (id int);\n")
    write(d, "0003_c.sql", "create table c (id int);\n")
    m = Migrator(db, d)
    m.up()
    first.write_text("create table a (id bigint);\n")
    with pytest.raises(MigrationError, match="0001_a.sql changed after it was applied"):
        Migrator(db, d).up()
    first.write_text("create table a (id int);\n")
    write(d, "0002_b.sql", "create table b (id int);\n")
    with pytest.raises(MigrationError, match="0002_b.sql is pending but version 3 is already applied"):
        Migrator(db, d).plan()
    (d / "0002_b.sql").unlink()
    (d / "0003_c.sql").unlink()
    with pytest.raises(MigrationError, match=r"version 3 \(c\) is applied but its file 0003_c.sql"):
        Migrator(db, d).up()
    st = Migrator(db, d).status()
    assert [r["state"] for r in st["migrations"]] == ["applied", "missing"]


def test_concurrent_runners_are_serialised(db, tmp_path):
    d = tmp_path / "m"
    write(d, "0001_slow.sql", "create table slow (id int);\nselect pg_sleep(3);\n")
    results, errors = [], []

    def run(wait: float):
        try:
            results.append(Migrator(db, d, Options(lock_wait=wait)).up())
        except MigrationError as e:
            errors.append(str(e))

    first = threading.Thread(target=run, args=(30,))
    first.start()
    with psycopg.connect(db) as c:  # wait until the first runner holds the lock
        deadline = time.monotonic() + 30
        while not c.execute("select count(*) from pg_locks where locktype = 'advisory' "
                            "and granted").fetchone()[0]:
            assert time.monotonic() < deadline, "the first runner never took the lock"
            time.sleep(0.05)
    impatient = threading.Thread(target=run, args=(0.5,))
    impatient.start()
    impatient.join()
    patient = threading.Thread(target=run, args=(30,))
    patient.start()
    first.join()
    patient.join()
    assert len(errors) == 1 and "another migration run holds the lock (pid" in errors[0]
    assert sorted(len(r) for r in results) == [0, 1]  # applied once, the waiter found nothing


def test_no_transaction_file_for_concurrent_index(db, tmp_path):
    d = tmp_path / "m"
    write(d, "0001_t.sql", "create table t (id int, v text);\n")
    write(d, "0002_idx.sql", "-- pgops:no-transaction\ncreate index concurrently t_v_idx on t (v);\n"
                             "-- pgops:down\ndrop index concurrently t_v_idx;\n")
    Migrator(db, d).up()
    count = "select count(*) from pg_indexes where indexname = 't_v_idx'"
    with psycopg.connect(db) as c:
        assert c.execute(count).fetchone()[0] == 1
    # Its down part runs outside a transaction too (DROP INDEX CONCURRENTLY must).
    assert [r["version"] for r in Migrator(db, d).down(1)] == [2]
    with psycopg.connect(db) as c:
        assert c.execute(count).fetchone()[0] == 0
    Migrator(db, d).up()
    write(d, "0003_two.sql", "-- pgops:no-transaction\nselect 1;\nselect 2;\n")
    with pytest.raises(MigrationFileError, match="must hold exactly one statement"):
        Migrator(db, d)


def catalog(lab) -> str:
    r = lab.ssh("db1", f"cd / && runuser -u postgres -- pg_dump --schema-only --no-owner -d {SCRATCH} "
                       "--exclude-schema=pgops")
    # pg_dump >= 17.6 brackets its output with a random \\restrict key: not part of the schema.
    return "\n".join(x for x in r.stdout.splitlines() if not x.startswith(("\\restrict", "\\unrestrict")))


def test_shipped_schema_down_then_up_round_trips(lab, db):
    m = Migrator(db, MIGRATIONS_DIR)
    m.up()
    before = catalog(lab)
    assert "create table public.knowledge_base" in before.lower()
    assert [x["version"] for x in m.down(0)] == sorted((x.version for x in m.migrations), reverse=True)
    assert tables(db) == []
    m.up()
    assert catalog(lab) == before


def test_down_refuses_when_a_part_is_missing(db, tmp_path):
    d = tmp_path / "m"
    write(d, "0001_a.sql", "create table a (id int);\n-- pgops:down\ndrop table a;\n")
    write(d, "0002_b.sql", "create table b (id int);\n")
    m = Migrator(db, d)
    m.up()
    with pytest.raises(MigrationError, match="no `-- pgops:down` part in 0002_b.sql"):
        m.down(0)
    assert tables(db) == ["a", "b"]


def test_baseline_marks_an_existing_database(db, tmp_path):
    d = tmp_path / "m"
    write(d, "0001_a.sql", "create table a (id int);\n")
    write(d, "0002_b.sql", "create table b (id int);\n")
    with psycopg.connect(db) as c:
        c.execute("create table a (id int)")
    m = Migrator(db, d)
    assert m.baseline(1) == [1]
    assert [x["version"] for x in m.up()] == [2]
    with pytest.raises(MigrationError, match="baseline needs an empty history"):
        m.baseline(1)


def test_cli_plan_and_status(db, scratch_access):
    # The password goes in the environment (PGPASSWORD), never on a command line.
    parts = psycopg.conninfo.conninfo_to_dict(db)
    password = parts.pop("password")
    dsn, env = psycopg.conninfo.make_conninfo("", **parts), {"PGPASSWORD": password}
    plan = pgops("migrate", "-d", dsn, "--plan", env=env)
    shipped = len(list(MIGRATIONS_DIR.glob("*.sql")))
    assert f"{shipped} migration(s) would run" in plan.out and "0001_tenants.sql" in plan.out
    assert "0004_tags_id_client_id_index.sql  (no transaction)" in plan.out
    assert tables(db) == []
    pgops("migrate", "-d", dsn, env=env)
    status = pgops("migrate", "-d", dsn, "status", env=env)
    assert "0003" in status.stdout and "applied" in status.stdout
    assert password not in status.out and password not in plan.out  # labels never show it


