"""The RPO estimate: old archives of an idle database are not an RPO."""

from pgops.backup.rules import recovery_limits, rpo_estimate, unarchived_bytes

SEG = 16 * 1024 * 1024


def archiver(last: str, current: int, age: float = 3000.0) -> dict:
    return {"last_archived_wal": last, "current_wal_bytes": current, "wal_segment_bytes": SEG,
            "last_archived_age_s": age}


def test_idle_database_has_nothing_at_risk():
    # Segment 0x49 archived; the insert point sits 96 bytes into 0x4A (a page header).
    a = archiver("000000010000000000000049", 0x4A * SEG + 96)
    assert unarchived_bytes(a) == 96 and rpo_estimate(a) == 0.0


def test_waiting_wal_counts_from_the_last_archive():
    a = archiver("000000010000000000000049", 0x4B * SEG + 5000, age=42.0)
    assert unarchived_bytes(a) == SEG + 5000 and rpo_estimate(a) == 42.0


def test_archive_timeout_bounds_the_risk_after_an_idle_spell():
    # Idle for an hour, then a write: PostgreSQL switches within archive_timeout, so the
    # hour since the last archive is not at risk.
    a = archiver("000000010000000000000049", 0x4A * SEG + 50_000, age=3600.0) | {"archive_timeout_s": 60}
    assert rpo_estimate(a) == 60.0
    assert rpo_estimate(a | {"last_archived_age_s": 20.0}) == 20.0
    # The switch just closed a segment the archiver has not taken yet (a full segment waits).
    closed = archiver("000000010000000000000049", 0x4B * SEG, age=839.0) | {"archive_timeout_s": 60,
                                                                            "oldest_ready_age_s": 0.4}
    assert unarchived_bytes(closed) == SEG and rpo_estimate(closed) == 60.4


def test_a_stuck_archiver_shows_in_the_age_of_the_oldest_waiting_segment():
    a = archiver("000000010000000000000049", 0x50 * SEG, age=900.0) | {"archive_timeout_s": 60,
                                                                       "oldest_ready_age_s": 890.0}
    assert rpo_estimate(a) == 950.0
    assert rpo_estimate(a | {"archive_timeout_s": 0}) == 900.0


def test_segments_past_the_first_log_file_and_unknowns():
    a = archiver("0000000200000001000000FF", 0x1_0000_0000 * 2 + 100)  # log 2, segment 0
    assert unarchived_bytes(a) == 100
    assert unarchived_bytes(archiver("00000002.history", 10)) is None
    assert rpo_estimate({"last_archived_age_s": None}) is None
    assert rpo_estimate({"last_archived_age_s": 7.5}) == 7.5


def test_recovery_limits_come_from_pg_controldata():
    text = ("wal_level setting:                    replica\n"
            "max_connections setting:              120\n"
            "max_worker_processes setting:         8\n"
            "max_wal_senders setting:              10\n"
            "max_prepared_xacts setting:           0\n"
            "max_locks_per_xact setting:           64\n")
    assert recovery_limits(text) == {"max_connections": "120", "max_worker_processes": "8",
                                     "max_wal_senders": "10", "max_prepared_transactions": "0",
                                     "max_locks_per_transaction": "64"}
