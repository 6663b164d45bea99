"""pgtune-style computation from a host's resources."""

from __future__ import annotations

import re

import pytest

from pgops.server.tuning import GB, MB, Resources, tune
from pgops.settings import Tuning

SIZE = re.compile(r"^\d+(kB|MB|GB)$")


def res(mem=2 * GB, cpus=2, rotational=False, shm=0) -> Resources:
    return Resources(memory_bytes=mem, cpus=cpus, rotational=rotational, shm_bytes=shm)


@pytest.mark.parametrize(
    "mem, shared, cache",
    [(2 * GB, "512MB", "1536MB"), (16 * GB, "4GB", "12GB"), (1 * GB, "256MB", "768MB")],
)
def test_shared_buffers_quarter_and_cache_three_quarters(mem, shared, cache):
    out = tune(res(mem=mem), Tuning())
    assert out["shared_buffers"] == shared
    assert out["effective_cache_size"] == cache


def test_maintenance_work_mem_is_sixteenth():
    assert tune(res(mem=16 * GB), Tuning())["maintenance_work_mem"] == "1GB"


def test_maintenance_work_mem_capped_at_2gb():
    assert tune(res(mem=64 * GB), Tuning())["maintenance_work_mem"] == "2GB"
    assert tune(res(mem=256 * GB, shm=128 * GB), Tuning())["maintenance_work_mem"] == "2GB"


def test_maintenance_work_mem_within_half_of_shm():
    assert tune(res(mem=16 * GB, shm=64 * MB), Tuning())["maintenance_work_mem"] == "32MB"
    assert tune(res(mem=64 * GB, shm=1 * GB), Tuning())["maintenance_work_mem"] == "512MB"


def test_dw_uses_eighth_for_maintenance_and_more_statistics():
    out = tune(res(mem=8 * GB), Tuning(workload="dw"))
    assert out["maintenance_work_mem"] == "1GB"
    assert out["default_statistics_target"] == 500
    assert tune(res(mem=8 * GB), Tuning())["default_statistics_target"] == 100


@pytest.mark.parametrize(
    "disk, rotational, cost, io",
    [
        ("auto", False, 1.1, 200),
        ("auto", True, 4, 2),
        ("ssd", True, 1.1, 200),
        ("hdd", False, 4, 2),
    ],
)
def test_disk_type(disk, rotational, cost, io):
    out = tune(res(rotational=rotational), Tuning(disk=disk))
    assert out["random_page_cost"] == cost
    assert out["effective_io_concurrency"] == io


@pytest.mark.parametrize(
    "cpus, workers, per_gather, processes",
    [(0, 1, 1, 8), (1, 1, 1, 8), (2, 2, 1, 8), (8, 8, 4, 8), (16, 16, 8, 16)],
)
def test_parallel_settings_follow_cpus(cpus, workers, per_gather, processes):
    out = tune(res(cpus=cpus), Tuning())
    assert out["max_parallel_workers"] == workers
    assert out["max_parallel_workers_per_gather"] == per_gather
    assert out["max_parallel_maintenance_workers"] == per_gather
    assert out["max_worker_processes"] == processes
    assert out["max_parallel_workers"] <= out["max_worker_processes"]


def test_max_connections_passed_through():
    assert tune(res(), Tuning(max_connections=250))["max_connections"] == 250


def test_work_mem_has_4mb_floor():
    assert tune(res(mem=1 * GB), Tuning(max_connections=1000))["work_mem"] == "4MB"


def test_work_mem_shrinks_with_connections():
    def kb(v: str) -> int:
        n, unit = int(v[:-2]), v[-2:]
        return n * {"kB": 1, "MB": 1024, "GB": 1024 * 1024}[unit]

    few = kb(tune(res(mem=64 * GB, cpus=2), Tuning(max_connections=20))["work_mem"])
    many = kb(tune(res(mem=64 * GB, cpus=2), Tuning(max_connections=400))["work_mem"])
    assert few > many


def test_wal_buffers_3_percent_of_shared_buffers_capped_at_16mb():
    assert tune(res(mem=1 * GB), Tuning())["wal_buffers"] == "7MB"  # 3% of 256MB
    assert tune(res(mem=2 * GB), Tuning())["wal_buffers"] == "15MB"  # 3% of 512MB
    assert tune(res(mem=64 * GB), Tuning())["wal_buffers"] == "16MB"


def test_wal_sizes_by_workload():
    assert tune(res(), Tuning(workload="web"))["max_wal_size"] == "4GB"
    assert tune(res(), Tuning(workload="oltp"))["min_wal_size"] == "2GB"
    assert tune(res(), Tuning(workload="dw"))["max_wal_size"] == "16GB"


def test_huge_pages_only_with_lots_of_ram():
    assert tune(res(mem=32 * GB), Tuning())["huge_pages"] == "try"
    assert tune(res(mem=16 * GB), Tuning())["huge_pages"] == "off"


@pytest.mark.parametrize("mem", [256 * MB, 2 * GB + 3 * MB, 7 * GB, 96 * GB])
@pytest.mark.parametrize("workload", ["web", "oltp", "mixed", "dw"])
def test_all_sizes_are_postgres_units(mem, workload):
    out = tune(res(mem=mem, cpus=3, shm=100 * MB), Tuning(workload=workload))
    for k in ("shared_buffers", "effective_cache_size", "maintenance_work_mem", "work_mem",
              "wal_buffers", "min_wal_size", "max_wal_size"):
        assert SIZE.match(out[k]), (k, out[k])


@pytest.mark.parametrize("cpus, preloaded", [(1, False), (2, True), (16, True)])
def test_pg_stat_statements_is_preloaded_only_from_two_cores(cpus, preloaded):
    out = tune(res(cpus=cpus), Tuning())
    assert (out.get("shared_preload_libraries") == "pg_stat_statements") is preloaded
    if not preloaded:
        assert "shared_preload_libraries" not in out  # Postgres's default: nothing preloaded


def test_pg_settings_preload_pg_stat_statements_on_one_core():
    from pgops.server.pgconf import settings
    from pgops.settings import Settings

    s = Settings(pg_settings={"shared_preload_libraries": "pg_stat_statements"})
    assert settings(s, res(cpus=1))["shared_preload_libraries"] == "pg_stat_statements"
