"""pgtune-style memory/CPU/disk tuning computed from a host's resources (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass

from pgops.settings import Tuning

KB, MB, GB = 1024, 1024**2, 1024**3
#: From this many cores pg_stat_statements is preloaded (pg_settings can add it anywhere).
PGSS_MIN_CPUS = 2


@dataclass(frozen=True)
class Resources:
    """What a host really has: RAM is the lower of the kernel's and the cgroup's limit."""

    memory_bytes: int
    cpus: int
    rotational: bool
    shm_bytes: int


def _size(b: int) -> str:
    """Bytes to a postgresql.conf size, in the largest exact unit (kB, MB, GB)."""
    kb = max(b // KB, 64)
    for unit, mult in (("GB", MB), ("MB", KB)):
        if kb % mult == 0:
            return f"{kb // mult}{unit}"
    return f"{kb}kB"


def _round_mb(b: float) -> int:
    return max(int(b // MB), 1) * MB


def tune(res: Resources, t: Tuning) -> dict[str, str | int | float]:
    """Settings sized for this host and workload.

    Follows pgtune's rules: shared_buffers 1/4 of RAM, effective_cache_size 3/4,
    maintenance_work_mem 1/16 (capped at 2 GB and kept within half of /dev/shm so parallel
    index builds fit), work_mem from what is left per connection and parallel worker.

    What they are for, and what bench/tuning.py measured against Debian's stock config on a
    lab host (1 CPU, 2 GiB; README, Benchmarks):
    - min/max_wal_size: checkpoints from time, not WAL volume. 300 s of TPC-B-like writes at
      a scale past shared_buffers: 1 checkpoint and 92k full-page images against stock's 6 and
      392k, and (with wal_compression) 334 MB of WAL against 3260 MB to archive, replicate
      and keep, at the same TPS (1.01x: that host is CPU-bound, its disk absorbs either);
      past the host's RAM a tenth of stock's WAL at 1.03x its TPS (0.91x while
      pg_stat_statements was preloaded on that one-CPU host).
    - shared_buffers, effective_cache_size: the tuned config's point reads ran 1.06x stock.
    - wal_buffers: one WAL segment at most, so a commit rarely waits for a buffer write.
    - random_page_cost, effective_io_concurrency (SSD): random reads cost about what
      sequential ones do there, and bitmap scans may prefetch; they change plans only.
    - maintenance_work_mem: an HNSW build whose graph fits in it avoids pgvector's slower
      on-disk phase; work_mem: sorts and hashes stay in memory for max_connections.
    - pg_stat_statements (per-query statistics for operators) is preloaded from PGSS_MIN_CPUS
      cores: on one CPU, shared by the server and its clients, its bookkeeping cost the
      knowledge base's short HNSW queries a tenth of their TPS (1.10x without it).
    """
    mem = res.memory_bytes
    cpus = max(res.cpus, 1)
    conns = t.max_connections
    shared_buffers = _round_mb(mem / 4)
    effective_cache = _round_mb(mem * 3 / 4)
    maint = min(mem / (8 if t.workload == "dw" else 16), 2 * GB)
    if res.shm_bytes:
        maint = min(maint, res.shm_bytes / 2)
    workers_per_gather = max(cpus // 2, 1)
    work_mem = (mem - shared_buffers) / (conns * 3) / workers_per_gather
    if t.workload in ("dw", "mixed"):
        work_mem /= 2
    work_mem = max(work_mem, 4 * MB)
    wal_buffers = min(max(shared_buffers * 3 // 100, 32 * KB * 8), 16 * MB)
    min_wal, max_wal = {"web": (1 * GB, 4 * GB), "oltp": (2 * GB, 8 * GB),
                        "dw": (4 * GB, 16 * GB), "mixed": (1 * GB, 4 * GB)}[t.workload]
    ssd = not res.rotational
    if t.disk != "auto":
        ssd = t.disk == "ssd"
    out: dict[str, str | int | float] = {
        "max_connections": conns,
        "shared_buffers": _size(shared_buffers),
        "effective_cache_size": _size(effective_cache),
        "maintenance_work_mem": _size(_round_mb(maint)),
        "work_mem": _size(int(work_mem // KB) * KB),
        "wal_buffers": _size(_round_mb(wal_buffers) if wal_buffers >= MB else int(wal_buffers)),
        "min_wal_size": _size(min_wal),
        "max_wal_size": _size(max_wal),
        "checkpoint_completion_target": 0.9,
        "default_statistics_target": 500 if t.workload == "dw" else 100,
        "random_page_cost": 1.1 if ssd else 4,
        "effective_io_concurrency": 200 if ssd else 2,
        "huge_pages": "try" if mem >= 32 * GB else "off",
        "max_worker_processes": max(cpus, 8),
        "max_parallel_workers": cpus,
        "max_parallel_workers_per_gather": workers_per_gather,
        "max_parallel_maintenance_workers": workers_per_gather,
    }
    if cpus >= PGSS_MIN_CPUS:
        out["shared_preload_libraries"] = "pg_stat_statements"
    return out
