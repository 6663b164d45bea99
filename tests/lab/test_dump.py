"""Logical dumps into backups/ with retention, and loading one into a fresh database."""

from __future__ import annotations

import re
import time

from tests.lab.conftest import pgops

COUNTS = ("select string_agg(t, ',' order by t) from (select relname || '=' || "
          "(xpath('/row/c/text()', query_to_xml('select count(*) as c from public.' || "
          "quote_ident(relname), false, true, '')))[1]::text as t from pg_stat_user_tables "
          "where schemaname = 'public') x")


def counts(lab, db: str) -> str:
    return lab.ssh("db1", f"cd / && runuser -u postgres -- psql -XAtq -d {db} -c \"{COUNTS}\"").stdout.strip()


def test_dump_then_load_into_a_fresh_database(lab, first_deploy, tmp_path):
    env = {"PGOPS_BACKUPS_DIR": str(tmp_path)}
    pgops("seed", "--tenants", "2", "--kb-per-tenant", "10")
    r = pgops("dump", "--host", "db1", env=env)
    [dump] = list(tmp_path.glob("db1__app__*.dump"))
    assert str(dump) in r.out and dump.stat().st_size > 0
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    target = "app_copy_" + re.sub(r"\D", "", dump.name)[-6:]
    loaded = pgops("load", str(dump), "--host", "db1", "--into", target, env=env)
    assert f"into {target} on db1" in loaded.out
    assert counts(lab, target) == counts(lab, "app") and "knowledge_base=" in counts(lab, target)
    again = pgops("load", str(dump), "--host", "db1", "--into", target, env=env, check=False)
    assert again.rc == 2 and f"database {target} already exists" in again.out
    lab.ssh("db1", f"cd / && runuser -u postgres -- dropdb {target}")


def test_dump_retention_keeps_the_newest(first_deploy, tmp_path):
    env = {"PGOPS_BACKUPS_DIR": str(tmp_path)}
    for _ in range(3):
        pgops("dump", "--host", "db1", "--keep", "2", env=env)
        time.sleep(1.1)  # file names carry the second
    assert len(list(tmp_path.glob("db1__app__*.dump"))) == 2
