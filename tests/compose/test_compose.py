"""docker-compose.dev.yml as a developer uses it: a clear refusal without passwords, then up
from clean to a healthy, migrated and seeded Postgres 17 + pgvector on 127.0.0.1; parallel
HNSW builds within /dev/shm; dumps into the backups directory with retention and a load into
a fresh database; data kept across down/up and removed by down -v. In file order."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest

from pgops import PROJECT_ROOT
from tests.compose.conftest import PREFIX, compose, project_resources, write_env
from tests.lab.conftest import pgops

pytestmark = pytest.mark.compose



def counts(conn) -> dict[str, int]:
    """Exact row counts of every public table."""
    tables = [r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'public' "
                                         "order by tablename")]
    return {t: conn.execute(f'select count(*) from public."{t}"').fetchone()[0] for t in tables}


def test_missing_password_stops_before_anything_starts(docker_engine, tmp_path):
    env_file = write_env(tmp_path / "bad.env", PGOPS_DEV_MIGRATOR_PASSWORD="x", PGOPS_DEV_APP_PASSWORD="y",
                         PGOPS_DEV_PORT="1", PGOPS_DEV_BACKUPS=str(tmp_path))
    project = f"{PREFIX}bad"
    r = compose(project, env_file, "up", "-d", check=False)
    assert r.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in r.stderr
    assert project_resources(docker_engine, project) == {"containers": [], "volumes": [], "networks": []}


def test_defaults_bind_localhost_and_the_projects_backups(docker_engine, tmp_path):
    env_file = write_env(tmp_path / "min.env", POSTGRES_PASSWORD="a", PGOPS_DEV_MIGRATOR_PASSWORD="b",
                         PGOPS_DEV_APP_PASSWORD="c")
    out = compose(f"{PREFIX}config", env_file, "config").stdout
    assert "127.0.0.1:5432:5432" in out and "shm_size: 1g" in out
    assert re.search(r"- \S+/backups:/backups", out) and "debian:trixie-slim" in out


def test_up_from_clean_is_healthy(stack):
    db = stack.container("db")
    assert db.attrs["State"]["Health"]["Status"] == "healthy"
    assert stack.container("migrate").attrs["State"]["ExitCode"] == 0
    ports = db.attrs["NetworkSettings"]["Ports"]["5432/tcp"]
    assert [p["HostIp"] for p in ports] == ["127.0.0.1"]  # localhost only
    with stack.connect() as conn:
        version = conn.execute("show server_version").fetchone()[0]
        assert version.startswith("17.") and "Debian" in version
        assert conn.execute("show ssl").fetchone()[0] == "on"


def test_migrations_applied(stack):
    r = pgops("migrate", "-d", stack.url("migrator"), "status", "--json")
    st = json.loads(r.stdout)
    assert st["current"] == st["latest"] and st["latest"] >= 3 and not st["problems"]
    shipped = len(list((PROJECT_ROOT / "sql" / "migrations").glob("*.sql")))
    assert f"{shipped} applied" in stack.compose("logs", "migrate").stdout


def test_pgvector_query_as_the_app_within_its_tenant(stack):
    with stack.connect("postgres") as conn:
        tenants = [r[0] for r in conn.execute("select id from clients order by id")]
        assert len(tenants) == 2  # PGOPS_DEV_SEED=2
    with stack.connect("app") as conn:
        conn.execute("select set_config('app.client_id', %s, false)", (str(tenants[0]),))
        rows = conn.execute("select id, embedding <=> (select embedding from knowledge_base order by id "
                            "limit 1) as d from knowledge_base order by d limit 5").fetchall()
        assert len(rows) == 5 and rows[0][1] < 1e-6  # the probe itself comes first
        assert conn.execute("select count(distinct client_id) from knowledge_base").fetchone()[0] == 1


def test_parallel_hnsw_build_fits_in_dev_shm(stack):
    """maintenance_work_mem is half of /dev/shm (1g): a parallel HNSW build takes that much of
    it (Docker's default 64 MiB fails with `could not resize shared memory segment`)."""
    assert "1.0G" in stack.container("db").exec_run("df -h /dev/shm").output.decode()
    notices: list[str] = []
    with stack.connect("postgres", autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        assert conn.execute("show maintenance_work_mem").fetchone()[0] == "512MB"
        conn.execute("create table hnsw_probe (id int, e vector(384))")
        try:
            conn.execute("insert into hnsw_probe select i, (select array_agg(random())::vector(384) "
                         "from generate_series(1, 384) where i > 0) from generate_series(1, 2000) i")
            for setting in ("client_min_messages = debug1", "min_parallel_table_scan_size = 0",
                            "max_parallel_maintenance_workers = 2"):
                conn.execute(f"set {setting}")
            conn.execute("create index on hnsw_probe using hnsw (e vector_cosine_ops)")
        finally:
            conn.execute("drop table hnsw_probe")
    assert any(re.match(r"using [1-9]\d* parallel workers", n) for n in notices), notices


def test_dumps_appear_with_retention_and_load_into_a_fresh_database(stack):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the runner dumps at start, then every 3 s, keeping 2
        runs = [json.loads(x.split("|", 1)[1]) for x in stack.compose("logs", "--no-color", "backup")
                .stdout.splitlines() if '"job": "dump"' in x]
        if any(r["ok"] and r["result"]["pruned"] for r in runs):
            break
        time.sleep(1)
    else:
        raise AssertionError(f"no dump pruned an older one within 60 s: {runs}")
    dumps = sorted(stack.backups.glob("db__app__*.dump"))
    assert 1 <= len(dumps) <= 2 and dumps[-1].read_bytes()[:5] == b"PGDMP"
    kept = stack.backups / "kept"  # out of the runner's reach (it prunes *.dump at the top only)
    kept.mkdir()
    shutil.copy(dumps[-1], kept / dumps[-1].name)
    target = "app_restored"
    r = stack.compose("exec", "-T", "backup", "pgops", "load", f"/backups/kept/{dumps[-1].name}",
                      "--into", target)
    assert f"into {target} on db" in r.stdout
    with stack.connect() as a, stack.connect(db=target) as b:
        assert counts(a) == counts(b) and counts(b)["knowledge_base"] == 100
        owner = a.execute("select pg_get_userbyid(datdba) from pg_database where datname = %s",
                          (target,)).fetchone()[0]
        assert owner == "migrator"  # as the database the dump came from
    again = stack.compose("exec", "-T", "backup", "pgops", "load", f"/backups/kept/{dumps[-1].name}",
                          "--into", target, check=False)
    assert again.returncode == 2 and f"database {target} already exists" in again.stderr + again.stdout


def test_data_survives_down_and_up(stack):
    with stack.connect() as conn:
        before = counts(conn)
    stack.timed("down", "down")
    assert stack.resources()["containers"] == [] and stack.resources()["volumes"]
    stack.timed("up again", "up", "-d")
    with stack.connect() as conn:
        assert counts(conn) == before
        assert conn.execute("select 1 from pg_database where datname = 'app_restored'").fetchone()
    assert "0 applied" in stack.compose("logs", "migrate").stdout


def test_down_v_removes_everything(stack):
    stack.timed("down -v", "down", "-v")
    assert stack.resources() == {"containers": [], "volumes": [], "networks": []}
