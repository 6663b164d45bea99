"""When the filesystem under pg_wal is too full: the one rule `pgops status` alerts by.

PostgreSQL stops (PANIC) when it cannot write WAL, and WAL piles up when archiving is stuck
(every segment waits for the repository) or when the volume is smaller than max_wal_size;
the alert must come while there is still room to free space or fix the archive.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Percent of pg_wal's filesystem in use past which `pgops status` alerts (and exits 1).
MAX_WAL_DISK_USED = 90.0


def used_percent(wal: Mapping) -> float:
    size = wal["fs_size_bytes"]
    return 100.0 * (size - wal["fs_free_bytes"]) / size if size else 100.0


def wal_alerts(wal: Mapping | None, max_used: float = MAX_WAL_DISK_USED) -> list[str]:
    """The alert of a pg_wal filesystem fuller than `max_used` percent (none: unknown or fine)."""
    if not wal:
        return []
    used = used_percent(wal)
    if used <= max_used:
        return []
    mib = 1024 * 1024
    return [f"pg_wal's filesystem is {used:.0f}% full (> {max_used:.0f}%): "
            f"{wal['fs_free_bytes'] // mib} MiB free, pg_wal holds {wal['wal_bytes'] // mib} MiB; "
            "PostgreSQL stops when it is full (is WAL archiving stuck?)"]
