"""The connection layer applications and pgops share: settings from the environment (or a
.env file), a psycopg_pool pool, connection checks with bounded exponential backoff.

    from pgops.client.db import DbSettings, make_pool
    settings = DbSettings.from_env()          # DATABASE_URL / PG* / .env, PGOPS_ENV picks one
    settings.check()                          # DB_RETRY_* retries, then raises DbUnavailable
    with make_pool(settings) as pool, pool.connection() as conn: ...
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field, ValidationError
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from pgops.errors import ConfigError, DbUnavailable
from pgops.settings import read_secrets_file

Environment = Literal["dev", "test", "staging", "production"]
#: Called before each retry with the number of the attempt that failed and its error.
OnRetry = Callable[[int, BaseException | None], object]


class DbSettings(BaseModel):
    """Where and how to connect. Names match the seeds' .env (DATABASE_URL, DB_POOL_*)."""

    url: str = Field(description="libpq connection string or postgresql:// URL")
    environment: Environment = "dev"
    pool_min: int = Field(2, ge=0)
    pool_max: int = Field(20, ge=1)
    pool_idle_timeout: float = Field(30.0, gt=0, description="seconds an idle connection is kept")
    pool_timeout: float = Field(10.0, gt=0, description="seconds to wait for a free connection")
    connect_timeout: int = Field(10, ge=1)
    retry_attempts: int = Field(5, ge=1)
    retry_max_wait: float = Field(8.0, gt=0, description="cap of the exponential backoff, seconds")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, env_file: str | Path | None = ".env",
                 url: str | None = None) -> DbSettings:
        """Process environment first, then the .env file. PGOPS_ENV (or NODE_ENV) picks the
        environment; `test` reads DATABASE_URL_TEST. Without a URL, the PG* variables
        (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE...) are left to libpq."""
        env = dict(read_env_file(env_file)) if env_file else {}
        env.update(os.environ if environ is None else environ)
        environment = env.get("PGOPS_ENV") or env.get("NODE_ENV") or "dev"
        if environment == "development":
            environment = "dev"
        key = "DATABASE_URL_TEST" if environment == "test" else "DATABASE_URL"

        def seconds(name: str, default_ms: float) -> float | str:
            try:
                return float(env.get(name, default_ms)) / 1000  # the seeds give milliseconds
            except ValueError:
                return f"{name}={env[name]!r} is not a number of milliseconds"

        raw = {
            "url": url or env.get(key) or "",
            "environment": environment,
            "pool_min": env.get("DB_POOL_MIN", 2),
            "pool_max": env.get("DB_POOL_MAX", 20),
            "pool_idle_timeout": seconds("DB_POOL_IDLE_TIMEOUT", 30000),
            "pool_timeout": seconds("DB_POOL_TIMEOUT", 10000),
            "connect_timeout": env.get("DB_CONNECT_TIMEOUT", 10),
            "retry_attempts": env.get("DB_RETRY_ATTEMPTS", 5),
            "retry_max_wait": env.get("DB_RETRY_MAX_WAIT", 8),
        }
        try:
            s = cls(**raw)
        except ValidationError as e:
            raise ConfigError([f"database settings: {'.'.join(map(str, x['loc']))}: {x['msg']}"
                               for x in e.errors()]) from None
        if s.pool_min > s.pool_max:
            raise ConfigError([f"database settings: DB_POOL_MIN ({s.pool_min}) > DB_POOL_MAX ({s.pool_max})"])
        if s.environment == "production" and _sslmode(s.url) in ("disable", "allow", "prefer"):
            raise ConfigError(["database settings: production connections must require TLS "
                               f"(sslmode={_sslmode(s.url)} in DATABASE_URL)"])
        return s

    def check(self, on_retry: OnRetry | None = None) -> dict[str, Any]:
        """check_connection with this configuration's retry budget and connect timeout."""
        return check_connection(self.url, self.retry_attempts, self.retry_max_wait,
                                self.connect_timeout, on_retry)


def _sslmode(url: str) -> str | None:
    try:
        mode = psycopg.conninfo.conninfo_to_dict(url).get("sslmode")
    except psycopg.ProgrammingError:
        return None
    return None if mode is None else str(mode)  # parsed from a string: str already


def read_env_file(path: str | Path) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file (missing file: empty)."""
    try:
        return read_secrets_file(Path(path))
    except FileNotFoundError:
        return {}


def redact(url: str) -> str:
    """A connection string safe to print: the password replaced by ***."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable connection string>"
    if "password" in info:
        info["password"] = "***"
    return " ".join(f"{k}={v}" for k, v in info.items())


def connect(url: str, connect_timeout: int = 10, **kw: Any) -> psycopg.Connection:
    return psycopg.connect(url, connect_timeout=connect_timeout, **kw)


def check_connection(url: str, attempts: int = 5, max_wait: float = 8.0,
                     connect_timeout: int = 10, on_retry: OnRetry | None = None) -> dict[str, Any]:
    """Connect and run `select 1`, retrying with exponential backoff (0.5 s doubling, capped
    at `max_wait`) up to `attempts` times. Returns latency and server facts; raises
    DbUnavailable with the last error when every attempt failed."""
    def attempt() -> dict[str, Any]:
        t0 = time.perf_counter()
        with connect(url, connect_timeout) as conn:
            conn.execute("select 1")
            latency = (time.perf_counter() - t0) * 1000
            row = conn.execute("show server_version").fetchone()
            assert row is not None  # show returns one row
            return {"latency_ms": round(latency, 2), "server_version": row[0]}

    def before_sleep(rs: RetryCallState) -> None:
        assert rs.outcome is not None  # tenacity calls before_sleep after a failed attempt
        if on_retry:
            on_retry(rs.attempt_number, rs.outcome.exception())

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=max_wait),
        retry=retry_if_exception_type(psycopg.OperationalError),
        before_sleep=before_sleep if on_retry else None,
        reraise=False,
    )
    try:
        return retrying(attempt)
    except RetryError as e:
        last = e.last_attempt.exception()
        raise DbUnavailable(
            f"database {redact(url)} unreachable after {attempts} attempts: "
            f"{str(last).strip().splitlines()[0] if last else 'unknown error'}"
        ) from None


def make_pool(s: DbSettings, open: bool = True, **kw: Any) -> ConnectionPool:
    """A pool sized and timed from settings; `pool.connection()` raises PoolTimeout after
    `pool_timeout` seconds when every connection is busy."""
    return ConnectionPool(
        s.url, min_size=s.pool_min, max_size=s.pool_max, max_idle=s.pool_idle_timeout,
        timeout=s.pool_timeout, open=open, name=f"pgops-{s.environment}",
        kwargs={"connect_timeout": s.connect_timeout, **kw},
    )


def pool_stats(pool: ConnectionPool) -> dict[str, int]:
    stats = pool.get_stats()
    return {k: stats.get(k, 0) for k in ("pool_min", "pool_max", "pool_size", "pool_available",
                                          "requests_waiting", "requests_num", "requests_errors",
                                          "connections_num", "connections_errors")}
