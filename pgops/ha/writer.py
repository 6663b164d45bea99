"""A write probe for failover tests and benchmarks: commits numbered rows one transaction at
a time through a connection string (a multi-host URL finds the leader), and records which
commits were acknowledged and how long writes failed. Afterwards, `missing` says which
acknowledged rows the cluster no longer has: what a failover lost."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg

TABLE = "pgops_write_probe"


@dataclass
class Outage:
    start: float
    end: float | None = None

    @property
    def seconds(self) -> float:
        return (self.end or time.monotonic()) - self.start


@dataclass
class Writer:
    """Run with `start()`/`stop()` around a fault; `acked` holds every acknowledged id."""

    conninfo: str = field(repr=False)  # it holds a password: never in a test's failure output
    pause: float = 0.01
    acked: list[int] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)  # time.monotonic() of each ack
    outages: list[Outage] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # each outage's first error
    last_error: str = ""  # the newest error: why an outage goes on

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as c:
            c.execute(f"create table if not exists {TABLE} (id bigint primary key, "
                      "at timestamptz not null default clock_timestamp())")
            self._next = (c.execute(f"select coalesce(max(id), 0) from {TABLE}").fetchone()
                          or (0,))[0] + 1

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> Writer:
        self._stop.set()
        self._thread.join(timeout=30)
        return self

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    # A host that vanished (no RST) must fail the write in seconds, not minutes.
                    conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=2,
                                           tcp_user_timeout=2000, keepalives_idle=1,
                                           keepalives_interval=1, keepalives_count=2)
                self._write(conn)
                time.sleep(self.pause)
            except psycopg.Error as e:
                self.last_error = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
                if not self.outages or self.outages[-1].end is not None:
                    self.outages.append(Outage(time.monotonic()))
                    self.errors.append(self.last_error)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.1)
        if conn is not None:
            conn.close()

    def _write(self, conn: psycopg.Connection) -> None:
        """Commit row `_next`. A duplicate key means an earlier try of this id committed but
        its acknowledgement was lost (the leader died between the commit and the reply): the
        row is durable, not acknowledged, so the probe moves on without counting it."""
        try:
            conn.execute(f"insert into {TABLE} (id) values (%s)", (self._next,))
        except psycopg.errors.UniqueViolation:
            self._next += 1
            raise
        self.acked.append(self._next)
        self.acked_at.append(time.monotonic())
        self._next += 1
        if self.outages and self.outages[-1].end is None:
            self.outages[-1].end = time.monotonic()

    def wait_writes(self, n: int = 20, timeout: float = 120) -> bool:
        """Wait until `n` more commits were acknowledged (False at the timeout)."""
        goal = len(self.acked) + n
        deadline = time.monotonic() + timeout
        while len(self.acked) < goal and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.acked) >= goal

    def longest_gap(self, since: float) -> float:
        """The longest time without an acknowledged commit after `since` (time.monotonic()):
        from a fault injected then, the time until writes were accepted again."""
        times = [since, *(t for t in self.acked_at if t > since)]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def missing(self) -> list[int]:
        """Acknowledged ids the cluster's leader does not have."""
        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as c:
            have = {r[0] for r in c.execute(f"select id from {TABLE}")}
        return [i for i in self.acked if i not in have]
