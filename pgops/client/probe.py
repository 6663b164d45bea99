"""Database health for people, cron and load balancers: reachability, latency, versions,
schema version and pool statistics; `serve` answers GET /health/db (200 or 503)."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from pgops.client.db import DbSettings, check_connection, make_pool, pool_stats, redact
from pgops.errors import PgopsError


def _facts(conn: psycopg.Connection) -> dict[str, Any]:
    row = conn.execute(
        "select current_setting('server_version'), "
        "(select extversion from pg_extension where extname = 'vector'), "
        "to_regclass('pgops.schema_history') is not null, current_database(), current_user"
    ).fetchone()
    assert row is not None  # a select without from returns one row
    version = None
    if row[2]:
        try:
            top = conn.execute("select coalesce(max(version), 0) from pgops.schema_history").fetchone()
            assert top is not None  # an aggregate without group by returns one row
            version = top[0]
        except psycopg.errors.InsufficientPrivilege:
            conn.rollback()
            version = "no access"
    return {"server_version": row[0], "pgvector": row[1], "schema_version": version,
            "database": row[3], "user": row[4]}


def check(url: str, attempts: int = 1, pool: ConnectionPool | None = None) -> dict[str, Any]:
    """One health report. `healthy` is False (with `error`) instead of raising."""
    report: dict[str, Any] = {"target": redact(url), "healthy": False, "checked_at": time.time()}
    try:
        report.update(check_connection(url, attempts=attempts, max_wait=2.0, connect_timeout=5))
        own = pool is None
        pool = pool or make_pool(DbSettings(url=url, pool_min=1, pool_max=2, pool_timeout=5))
        try:
            with pool.connection() as conn:
                report.update(_facts(conn))
            report["pool"] = pool_stats(pool)
        finally:
            if own:
                pool.close()
        report["healthy"] = True
    except (PgopsError, psycopg.Error, PoolTimeout) as e:
        report["error"] = str(e).strip().splitlines()[0]
    return report


def serve(url: str, port: int, bind: str = "127.0.0.1", pool_max: int = 4) -> None:
    """Serve GET /health/db until interrupted; one pool is kept across requests."""
    pool = make_pool(DbSettings(url=url, pool_min=1, pool_max=pool_max, pool_timeout=5), open=False)
    pool.open(wait=False)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.rstrip("/") != "/health/db":
                self.send_error(404, "try /health/db")
                return
            report = check(url, pool=pool)
            body = json.dumps(report, default=str).encode()
            self.send_response(200 if report["healthy"] else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        # One line per request, no query strings with secrets.
        def log_message(self, fmt: str, *args: Any) -> None:
            print(f"health: {self.address_string()} {fmt % args}", flush=True)

    server = ThreadingHTTPServer((bind, port), Handler)
    print(f"health: serving http://{bind}:{port}/health/db for {redact(url)}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        pool.close()
