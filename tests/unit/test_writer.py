"""The failover write probe's bookkeeping: a lost acknowledgement must not stall it."""

from __future__ import annotations

import psycopg
import pytest

from pgops.ha import writer as writer_mod
from pgops.ha.writer import Writer


class _Table:
    """A stand-in connection holding the probe table's ids: enough for the probe's two
    statements, so the unit test exercises the probe's logic, not Postgres."""

    def __init__(self, ids: set[int]) -> None:
        self.ids = ids

    def __enter__(self) -> _Table:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, query: str, params: tuple[int, ...] = ()) -> _Table:
        if query.startswith("insert"):
            if params[0] in self.ids:
                raise psycopg.errors.UniqueViolation("duplicate key value")
            self.ids.add(params[0])
        self._result = [(max(self.ids, default=0),)]
        return self

    def fetchone(self) -> tuple[int]:
        return self._result[0]


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> _Table:
    t = _Table({1, 2})
    monkeypatch.setattr(writer_mod.psycopg, "connect", lambda *a, **k: t)
    return t


def test_it_starts_after_the_highest_id_already_there(table: _Table) -> None:
    w = Writer("postgresql://probe")
    w._write(table)  # type: ignore[arg-type]
    assert w.acked == [3]


def test_a_commit_whose_ack_was_lost_is_skipped_not_counted_and_not_retried(
        table: _Table) -> None:
    w = Writer("postgresql://probe")
    table.ids.add(3)  # the leader committed 3, then died before the client heard
    with pytest.raises(psycopg.errors.UniqueViolation):
        w._write(table)  # type: ignore[arg-type]
    w._write(table)  # type: ignore[arg-type]
    assert w.acked == [4]
    assert table.ids == {1, 2, 3, 4}


def test_the_outage_stays_open_until_a_real_acknowledgement(table: _Table) -> None:
    w = Writer("postgresql://probe")
    w.outages.append(writer_mod.Outage(0.0))
    table.ids.add(3)
    with pytest.raises(psycopg.errors.UniqueViolation):
        w._write(table)  # type: ignore[arg-type]
    assert w.outages[-1].end is None
    w._write(table)  # type: ignore[arg-type]
    assert w.outages[-1].end is not None
