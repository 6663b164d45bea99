"""HostResources.process: kernel numbers capped by cgroup v1/v2 limits."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from pgops.facts.system import _SCRIPT, DpkgInterrupted, HostResources

V1 = [
    "memtotal 25276510208",
    "nproc 2",
    "shm 1073741824",
    "memory.limit_in_bytes 9223372036854771712",
    "memory.limit_in_bytes 2147483648",
    "memory.limit_in_bytes 9223372036854771712",
    "cpu.cfs_quota_us 100000",
    "cpu.cfs_period_us 100000",
    "cpu.cfs_quota_us -1",
    "cpu.cfs_period_us 100000",
    "rotational 0",
]

V2 = [
    "memtotal 25276510208",
    "nproc 4",
    "shm  67108864",  # df right-aligns: two spaces
    "memory.max max",
    "memory.max 1073741824",
    "cpu.max 150000 100000",
    "cpu.max max 100000",
    "rotational 1",
]


def process(lines):
    return HostResources().process(lines)


def test_cgroup_v1():
    r = process(V1)
    assert r.memory_bytes == 2147483648
    assert r.cpus == 1
    assert r.shm_bytes == 1073741824
    assert r.rotational is False


def test_cgroup_v2():
    r = process(V2)
    assert r.memory_bytes == 1073741824
    assert r.cpus == 2  # 1.5 cores rounds up
    assert r.shm_bytes == 67108864
    assert r.rotational is True


def test_no_cgroup_limits_uses_kernel_values():
    r = process(["memtotal 8589934592", "nproc 8", "memory.max max", "cpu.max max 100000",
                 "cpu.cfs_quota_us -1", "cpu.cfs_period_us 100000"])
    assert r.memory_bytes == 8589934592
    assert r.cpus == 8
    assert r.shm_bytes == 0
    assert r.rotational is False  # unknown disk: treated as SSD


def test_cgroup_limit_above_machine_does_not_raise_values():
    r = process(["memtotal 4294967296", "nproc 2", "memory.max 8589934592", "cpu.max 800000 100000"])
    assert r.memory_bytes == 4294967296
    assert r.cpus == 2


def test_lowest_cpu_quota_of_ancestors_wins():
    r = process(["memtotal 1073741824", "nproc 16", "cpu.max 400000 100000", "cpu.max 250000 100000"])
    assert r.cpus == 3


def test_tiny_cpu_quota_is_at_least_one_core():
    r = process(["memtotal 1073741824", "nproc 4", "cpu.cfs_quota_us 20000", "cpu.cfs_period_us 100000"])
    assert r.cpus == 1


def test_unreadable_shm_ignored():
    assert process(["memtotal 1073741824", "nproc 1", "shm "]).shm_bytes == 0


def test_memtotal_script_output_parses_with_mawk(tmp_path):
    """Runs the fact's own memtotal line with mawk against a sample /proc/meminfo."""
    mawk = shutil.which("mawk")
    if mawk is None:
        pytest.skip("mawk is not installed")
    line = next(ln for ln in _SCRIPT.splitlines() if ln.startswith('echo "memtotal'))
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684092 kB\nMemFree:         1000000 kB\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "awk").symlink_to(mawk)
    out = subprocess.run(
        ["sh", "-c", line.replace("/proc/meminfo", str(meminfo))],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"},
    ).stdout
    assert re.match(r"^memtotal \S+$", out.strip()), out
    assert process([out.strip(), "nproc 2"]).memory_bytes == 24684092 * 1024


def test_aes_instructions_from_x86_flags_or_arm64_features():
    from pgops.facts.system import HasAesInstructions
    fact = HasAesInstructions()
    assert fact.process(["flags\t\t: fpu vme sse2 aes avx2"]) is True
    assert fact.process(["Features\t: fp asimd aes pmull sha1"]) is True
    assert fact.process(["flags\t\t: fpu vme sse2 avx2 vaes_not"]) is False
    assert fact.process([]) is False


def test_wal_volume_reads_the_real_directory_behind_a_pg_wal_symlink(tmp_path):
    from pgops.facts.system import WalVolume

    data, volume = tmp_path / "data", tmp_path / "walvol"
    data.mkdir(), volume.mkdir()
    (volume / "000000010000000000000001").write_bytes(b"x" * 65536)
    (data / "pg_wal").symlink_to(volume)
    fact = WalVolume()
    out = subprocess.run(["sh", "-c", fact.command(str(data))], capture_output=True, text=True, check=True)
    wal = fact.process(out.stdout.splitlines())
    stat = os.statvfs(volume)
    assert 65536 <= wal["wal_bytes"] < 65536 + 16384  # the segment and the directory itself
    assert wal["fs_size_bytes"] == stat.f_blocks * stat.f_frsize
    assert 0 < wal["fs_free_bytes"] <= wal["fs_size_bytes"]
    missing = subprocess.run(["sh", "-c", fact.command(str(tmp_path / "nope"))], capture_output=True,
                             text=True, check=True)
    assert fact.process(missing.stdout.splitlines()) is None


def test_dpkg_interrupted_is_a_file_left_in_dpkgs_updates_directory(tmp_path):
    """The fact's own command, run on a copy of the directory: a dpkg killed while it unpacked
    leaves numbered files there; a finished one leaves it empty."""
    fact = DpkgInterrupted()
    command = fact.command().replace("/var/lib/dpkg/updates", str(tmp_path))

    def run() -> bool:
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout
        return fact.process(out.splitlines())

    assert run() is False
    (tmp_path / "tmp.i").write_text("")  # dpkg's own scratch file: not a half-done run
    assert run() is False
    (tmp_path / "0003").write_text("Package: pgbouncer\n")
    assert run() is True
