"""The archive_command's wrapper (pgops/backup/archive_wal.sh), run by bash on a pg_wal
directory laid out as the lab left one after many failovers: it skips only a past
timeline's segment that begins at or after that timeline's end in the newest history."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pgops.backup.backrest import ARCHIVE_WAL_SOURCE

SEG = 16 * 2**20
# Timeline 10 ended at a segment boundary, 14 inside segment 0x20 (a real history's lines).
HISTORY = ("1\t0/1C04498\tno recovery target specified\n\n"
           "10\t0/E000000\tno recovery target specified\n\n"
           "14\t0/200000A0\tno recovery target specified\n\n"
           "18\t0/30006B20\tno recovery target specified\n")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    wal = tmp_path / "pg_wal"
    wal.mkdir()
    (wal / "0000000E.history").write_text("1\t0/1C04498\tno recovery target specified\n")
    (wal / "00000013.history").write_text(HISTORY)
    return tmp_path


def archive(data: Path, name: str, size: int = SEG, rc: int = 0) -> subprocess.CompletedProcess:
    """Run the wrapper as PostgreSQL does (cwd the data directory, %p relative), with a
    command that records that it ran and exits `rc`."""
    f = data / "pg_wal" / name
    if not f.exists():
        with f.open("wb") as out:
            out.truncate(size)
    return subprocess.run(["bash", str(ARCHIVE_WAL_SOURCE), f"pg_wal/{name}", "sh", "-c",
                           f"echo \"$0\" >> pushed; exit {rc}", f"pg_wal/{name}"],
                          cwd=data, capture_output=True, text=True, timeout=10)


def pushed(data: Path) -> list[str]:
    p = data / "pushed"
    return p.read_text().split() if p.exists() else []


def test_a_past_timelines_segment_from_its_end_on_is_skipped_and_logged(data):
    run = archive(data, "0000000A000000000000000E")  # timeline 10 ends where it begins
    assert run.returncode == 0 and pushed(data) == []
    assert "0000000A000000000000000E not archived: timeline 10 ends at 0/E000000" in run.stderr
    assert archive(data, "0000000A0000000000000011").returncode == 0  # further past the end
    assert pushed(data) == []


@pytest.mark.parametrize("name", [
    "0000000A000000000000000D",  # the last segment timeline 10 wrote
    "0000000E0000000000000020",  # timeline 14 ends inside it: it holds history
    "0000000E000000000000001F",
    "000000130000000000000031",  # the current timeline
    "00000005000000000000000E",  # a timeline the history does not name: not decided here
    "00000013.history",
    "000000120000000000000030.partial",
    "0000000E000000000000001E.00000028.backup",
])
def test_anything_else_goes_to_the_command(data, name):
    assert archive(data, name).returncode == 0
    assert pushed(data) == [f"pg_wal/{name}"]


def test_the_commands_failure_is_postgresqls_to_see(data):
    run = archive(data, "000000130000000000000031", rc=45)
    assert run.returncode == 45 and pushed(data) == ["pg_wal/000000130000000000000031"]


def test_without_a_history_file_or_with_an_odd_size_the_command_decides(data):
    assert archive(data, "0000000A000000000000000F", size=1000).returncode == 0
    for h in (data / "pg_wal").glob("*.history"):
        h.unlink()
    assert archive(data, "0000000A000000000000000E").returncode == 0
    assert pushed(data) == ["pg_wal/0000000A000000000000000F", "pg_wal/0000000A000000000000000E"]


def test_other_segment_sizes_place_the_segment_by_its_own_size(data):
    """64 MB segments: 0000000A0000000000000003 begins at 0/C000000, before timeline 10's
    end (0/E000000); ...04 at 0/10000000, after it."""
    assert archive(data, "0000000A0000000000000003", size=64 * 2**20).returncode == 0
    assert archive(data, "0000000A0000000000000004", size=64 * 2**20).returncode == 0
    assert pushed(data) == ["pg_wal/0000000A0000000000000003"]


def test_a_standby_skips_nothing(data):
    """archive_mode = always: a standby's pg_wal may hold its upstream's newer history."""
    (data / "standby.signal").touch()
    assert archive(data, "0000000A000000000000000E").returncode == 0
    assert pushed(data) == ["pg_wal/0000000A000000000000000E"]


def test_no_command_is_a_failure_not_an_archived_segment(data):
    (data / "pg_wal" / "000000130000000000000031").touch()
    run = subprocess.run(["bash", str(ARCHIVE_WAL_SOURCE), "pg_wal/000000130000000000000031"],
                         cwd=data, capture_output=True, text=True, timeout=10)
    assert run.returncode == 1 and "no command" in run.stderr
