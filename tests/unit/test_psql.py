"""The one psql command line (server.psql): options, one statement or several."""

from __future__ import annotations

from pgops.server import psql


def test_one_statement():
    assert psql.argv("select 1", 5432, "app") == [
        "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-p", "5432", "-d", "app", "-c", "select 1"]


def test_several_statements_run_one_c_each_as_postgres():
    assert psql.shell(["select txid_current()", "select pg_switch_wal()"], 5433) == (
        "runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -p 5433 -d postgres "
        "-c 'select txid_current()' -c 'select pg_switch_wal()'")
