"""A probe for point-in-time restores, shared by the lab tests and bench/pitr_soak.py: a
writer commits numbered rows with a pause between them and notes when each commit returned
and when the next began, so a target time can fall strictly between two commits, where the
exact content of a correct restore is known: rows 1..k."""

from __future__ import annotations

import threading
import time

import psycopg

TABLE = "pitr_probe"


def fresh_table(url: str) -> None:
    """An empty probe table (dropped first) in the database of `url`."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"drop table if exists {TABLE}")
        c.execute(f"create table {TABLE} (n int primary key, at timestamptz default clock_timestamp())")


class Writer(threading.Thread):
    """Commits row n, notes when the commit returned and when the next transaction began.
    `rows`: how many, or None to go on until stop()."""

    def __init__(self, url: str, rows: int | None, pause: float = 0.25):
        super().__init__(daemon=True)
        self.url, self.rows, self.pause = url, rows, pause
        self.done: dict[int, float] = {}
        self.began: dict[int, float] = {}
        self.error: Exception | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as c:
                n = 1
                while (self.rows is None or n <= self.rows) and not self._halt.is_set():
                    self.began[n] = time.time()
                    c.execute(f"insert into {TABLE} (n) values (%s)", (n,))
                    self.done[n] = time.time()
                    n += 1
                    time.sleep(self.pause)
        except Exception as e:  # surfaced by the caller
            self.error = e

    def stop(self) -> Writer:
        self._halt.set()
        self.join(timeout=30)
        return self

    def gap_after(self, k: int) -> float:
        """A time strictly after row k committed and before row k+1 began."""
        return (self.done[k] + self.began[k + 1]) / 2
