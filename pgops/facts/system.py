"""Facts about a host's real resources: a container or VM sees the whole machine in
/proc/meminfo and nproc, so cgroup limits (v1 and v2, every ancestor) cap what is reported."""

from __future__ import annotations

import math
import shlex

from pyinfra.api import FactBase

from pgops.server.tuning import Resources

_SCRIPT = r"""
echo "memtotal $(awk '/^MemTotal:/{printf "%.0f\n", $2 * 1024}' /proc/meminfo)"
echo "nproc $(nproc)"
echo "shm $(df -B1 --output=size /dev/shm 2>/dev/null | tail -1)"
walk() { d=$1; while :; do for f in $2; do [ -r "$d/$f" ] && echo "$f $(cat "$d/$f")"; done;
         [ "$d" = "$3" ] && break; d=$(dirname "$d"); done; }
while IFS=: read -r _ ctrl path; do
  case ",$ctrl," in
    *,memory,*) walk "/sys/fs/cgroup/memory$path" memory.limit_in_bytes /sys/fs/cgroup/memory ;;
  esac
  case ",$ctrl," in
    *,cpu,*) walk "/sys/fs/cgroup/cpu$path" "cpu.cfs_quota_us cpu.cfs_period_us" /sys/fs/cgroup/cpu ;;
  esac
  if [ -z "$ctrl" ]; then
    for root in /sys/fs/cgroup /sys/fs/cgroup/unified; do
      [ -r "$root/cgroup.controllers" ] && walk "$root$path" "memory.max cpu.max" "$root"
    done
  fi
done < /proc/self/cgroup
src=$(df --output=source /var/lib/postgresql 2>/dev/null | tail -1 || df --output=source / | tail -1)
dev=$(basename "$(readlink -f "$src" 2>/dev/null || echo "$src")")
parent=$(basename "$(dirname "$(readlink -f /sys/class/block/$dev 2>/dev/null)")" 2>/dev/null)
for d in "$dev" "$parent"; do
  [ -r "/sys/block/$d/queue/rotational" ] && echo "rotational $(cat /sys/block/$d/queue/rotational)" && break
done
true
"""


class HostResources(FactBase):
    """RAM (lowest of kernel and cgroup limits), cores (cgroup CPU quota), /dev/shm size,
    and whether the data directory's disk is rotational (unknown: treated as SSD)."""

    def command(self):
        return _SCRIPT

    def process(self, output) -> Resources:
        pairs = [(key, value.strip()) for key, _, value in (line.partition(" ") for line in output)]
        mem = cpus = shm = 0
        rotational = False
        for key, value in pairs:
            if key == "memtotal":
                mem = int(value)
            elif key == "nproc":
                cpus = int(value)
            elif key == "shm" and value.isdigit():
                shm = int(value)
            elif key == "rotational":
                rotational = value == "1"
        mem = min([mem, *_memory_limits(pairs)])
        cpu_limits = _cpu_limits(pairs)
        if cpu_limits:
            cpus = min(cpus, max(1, math.ceil(min(cpu_limits))))
        return Resources(memory_bytes=mem, cpus=cpus, rotational=rotational, shm_bytes=shm)


def _memory_limits(pairs: list[tuple[str, str]]) -> list[int]:
    """Every cgroup memory limit found, v1 and v2 (`max` and non-numbers: no limit)."""
    return [int(value) for key, value in pairs
            if key in ("memory.limit_in_bytes", "memory.max") and value.isdigit()]


def _cpu_limits(pairs: list[tuple[str, str]]) -> list[float]:
    """Cores allowed by every cgroup CPU quota found: v1 cfs quota/period pairs (quota -1:
    no limit) and v2 cpu.max lines ("max": no limit; the period defaults to 100000)."""
    limits: list[float] = []
    quota = None
    for key, value in pairs:
        if key == "cpu.cfs_quota_us":
            quota = int(value)
        elif key == "cpu.cfs_period_us" and quota is not None:
            if quota > 0:
                limits.append(quota / int(value))
            quota = None
        elif key == "cpu.max":
            q, _, period = value.partition(" ")
            if q != "max":
                limits.append(int(q) / int(period or 100000))
    return limits


class HasAesInstructions(FactBase):
    """Whether the CPU has AES instructions (x86 `aes` flag, arm64 `aes` feature), which make
    AES-GCM cheaper than chacha20-poly1305."""

    def command(self):
        return "grep -m1 -E '^(flags|Features)' /proc/cpuinfo || true"

    def process(self, output) -> bool:
        return any("aes" in line.partition(":")[2].split() for line in output)


class BadCalendars(FactBase):
    """The systemd OnCalendar= expressions this host's systemd refuses."""

    def command(self, calendars):
        checks = [f"systemd-analyze calendar {shlex.quote(c)} >/dev/null 2>&1 || echo {shlex.quote(c)}"
                  for c in calendars]
        return "; ".join(checks) + "; true"

    def process(self, output):
        return [line for line in output if line.strip()]


class DpkgInterrupted(FactBase):
    """Whether a dpkg run stopped half-way (a killed deploy, a lost connection): apt then
    refuses every install until `dpkg --configure -a` finishes it."""

    def command(self):
        return "ls /var/lib/dpkg/updates 2>/dev/null | grep -E '^[0-9]+$' | head -1 || true"

    def process(self, output) -> bool:
        return any(line.strip() for line in output)


class WalVolume(FactBase):
    """How much a data directory's pg_wal holds and how full the filesystem under it is
    (pg_wal may be a symlink to a volume of its own): archiving that is stuck keeps every
    segment, and PostgreSQL stops when that filesystem is full. None when there is no pg_wal."""

    def command(self, data: str) -> str:
        wal = shlex.quote(f"{data}/pg_wal")
        return (f'w=$(readlink -f {wal}) && [ -d "$w" ] && '
                'echo "$(du -sb "$w" | cut -f1) $(df -B1 --output=size,avail "$w" | tail -1)" || true')

    def process(self, output) -> dict | None:
        parts = " ".join(output).split()
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            return None
        wal, size, free = map(int, parts)
        return {"wal_bytes": wal, "fs_size_bytes": size, "fs_free_bytes": free}


class PasswdEntry(FactBase):
    """A user's home and shell from the account database (None: no such user): what deciding
    a system user needs, in one line (pyinfra's Users fact reads every user and its groups)."""

    def command(self, user: str) -> str:
        return f"getent passwd {shlex.quote(user)} || true"

    def process(self, output) -> dict[str, str] | None:
        for line in output:
            fields = line.split(":")
            if len(fields) == 7:
                return {"home": fields[5], "shell": fields[6]}
        return None
