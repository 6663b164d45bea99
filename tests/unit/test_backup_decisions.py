"""The backup decisions without a lab: health rules and alerts (also the repository host's
status job), the health report, restore planning (window, destination, steps) and the
Prometheus text."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from pgops.backup import copies, repo_job, rules
from pgops.backup.health import assess
from pgops.backup.restore import _archive_failure, build, check, iso, parse_time
from pgops.errors import BackupError
from pgops.metrics import prometheus
from pgops.settings import load_settings

NOW = 1_800_000_000.0
H = 3600


def backup(kind: str, stop: float, error: bool = False, label: str = "L") -> dict:
    return {"label": label, "type": kind, "start": stop - 10, "stop": stop, "size": 250 * 2**20,
            "delta": 1, "repo_size": 100, "wal_start": "A", "wal_stop": "B", "error": error}


def test_backup_ages_skip_failed_backups_and_read_both_shapes():
    flat = [backup("full", NOW - 2 * H), backup("full", NOW - H, error=True), backup("incr", NOW - 60)]
    assert rules.backup_ages(flat, NOW) == {"full": 2 * H, "diff": None, "incr": 60}
    raw = [{"type": "full", "timestamp": {"stop": NOW - 5}}]
    assert rules.backup_ages(raw, NOW) == {"full": 5, "diff": None, "incr": None}


@pytest.mark.parametrize(("ages", "rpo", "failing", "drill", "expected"), [
    ({"full": H, "diff": None, "incr": 60}, 0.0, False, {"ok": True}, []),
    ({"full": None, "diff": None, "incr": None}, 0.0, False, None,
     ["no full backup within 192 h", "no backup within 26 h"]),
    ({"full": 9 * 24 * H, "diff": 27 * H, "incr": None}, 0.0, False, None,
     ["no full backup within 192 h", "no backup within 26 h"]),
    ({"full": H, "diff": None, "incr": None}, 601.0, False, None,
     ["WAL waits to be archived: work at risk 601 s (> 600 s), last archived 601.0 s ago"]),
    ({"full": H, "diff": None, "incr": None}, None, True, {"ok": False},
     ["WAL waits to be archived: work at risk unknown (> 600 s), last archived None s ago",
      "WAL archiving is failing (pg_stat_archiver.last_failed_time is the newest)",
      "the last restore drill failed"]),
])
def test_alerts(ages, rpo, failing, drill, expected):
    wal_age = rpo
    assert rules.alerts(ages, rpo, rules.Thresholds(), failing, drill, wal_age_s=wal_age) == expected


def test_thresholds_from_the_environment():
    t = rules.Thresholds.from_env({"PGOPS_MAX_RPO_S": "60", "PGOPS_MAX_FULL_AGE_H": "24",
                                   "PGOPS_MAX_WAL_AGE_S": "7200"})
    assert t == rules.Thresholds(max_full_age_h=24.0, max_backup_age_h=26.0, max_rpo_s=60.0,
                                 max_wal_age_s=7200)
    assert rules.Thresholds.from_env({}).max_wal_age_s == 3600


def repo_job_status(monkeypatch, wal_age: float, check_error: str | None) -> tuple[dict, list[str]]:
    """The repository host's status job on a stanza with a fresh full backup and WAL last
    archived `wal_age` s ago, where `pgbackrest check` fails with `check_error` (None: passes):
    (its result, the pgbackrest commands it ran)."""
    ran: list[str] = []
    now = time.time()

    def pgbackrest(stanza, *args, timeout=0):
        ran.append(" ".join(args))
        if check_error:
            raise RuntimeError(check_error)

    monkeypatch.setattr(repo_job, "info", lambda stanza: {
        "backup": [{"type": "full", "timestamp": {"stop": now - H}}], "status": {"code": 0}})
    monkeypatch.setattr(repo_job, "newest_wal_time", lambda stanza: now - wal_age)
    monkeypatch.setattr(repo_job, "pgbackrest", pgbackrest)
    monkeypatch.setattr(repo_job, "_tail", lambda path: "")  # no drill yet
    try:
        return repo_job.status("db1", rules.Thresholds()), ran
    except RuntimeError as e:
        return json.loads(str(e)), ran


def test_the_repository_job_leaves_wal_younger_than_max_wal_age_alone(monkeypatch):
    result, ran = repo_job_status(monkeypatch, 1800, "unused")  # past max_rpo_s, within max_wal_age_s
    assert result["alerts"] == [] and result["last_wal_age_s"] == 1800 and ran == []


def test_the_repository_job_proves_older_wal_with_check(monkeypatch):
    result, ran = repo_job_status(monkeypatch, 3601, None)
    assert ran == ["check"] and result["alerts"] == [] and result["last_wal_age_s"] == 0


def test_the_repository_job_alerts_when_wal_is_old_and_check_fails(monkeypatch):
    result, _ = repo_job_status(monkeypatch, 3601, "archive-push timed out")
    assert result["alerts"] == ["no WAL archived within 3600 s and check fails: archive-push timed out"]


def test_archiving_is_failing_only_when_the_last_failure_is_the_newest():
    assert rules.archiving_failing({"last_failed_time": "2", "last_archived_time": "1"})
    assert not rules.archiving_failing({"last_failed_time": "1", "last_archived_time": "2"})
    assert rules.archiving_failing({"last_failed_time": "1", "last_archived_time": None})
    assert not rules.archiving_failing({})


def test_newest_wal_time_walks_the_newest_archive_id_and_directory():
    listing = {
        "archive/db1": {".": {"type": "path"}, "17-1": {"type": "path"}, "17-2": {"type": "path"},
                        "archive.info": {"type": "file", "time": 1}},
        "archive/db1/17-2": {".": {"type": "path"}, "0000000100000000": {"type": "path"},
                             "0000000100000001": {"type": "path"}},
        "archive/db1/17-2/0000000100000001": {"a.gz": {"type": "file", "time": 10},
                                              "b.gz": {"type": "file", "time": 30}},
    }
    assert rules.newest_wal_time(lambda p: listing[p], "db1") == 30.0
    assert rules.newest_wal_time(lambda p: {".": {"type": "path"}}, "db1") is None


def test_recovery_limits_conf_and_drill_records():
    control = "max_connections setting:              120\nmax_wal_senders setting: 10\nother: 1\n"
    assert rules.recovery_limits_conf(control) == "max_connections = 120\nmax_wal_senders = 10\n"
    entry = rules.new_drill("db1", "latest", "end of archive", at=NOW, where="backup1")
    assert entry["ok"] is False and entry["cleaned_up"] is False
    assert rules.last_drill(rules.drill_line(entry)) == entry
    assert rules.last_drill("\n") is None
    assert rules.amcheck_result(0, "x") == "ok" and rules.amcheck_result(2, " bad \n") == "bad"


def info(backups, archiver=None, earliest=None, latest=None) -> dict:
    return {"backups": backups, "archiver": archiver or {},
            "window": {"earliest": earliest, "latest": latest}}


def test_the_health_report_of_a_healthy_host():
    arch = {"last_archived_wal": "000000010000000000000003", "current_wal_bytes": 4 * 16 * 2**20,
            "wal_segment_bytes": 16 * 2**20, "last_archived_age_s": 5000, "failed_count": 0}
    st = info([backup("full", NOW - H)], arch, NOW - H, NOW)
    r = assess(st, {"at": NOW, "ok": True, "rto_s": 9.5, "target_time": "t", "extra": 1},
               rules.Thresholds(), NOW)
    assert r["alerts"] == [] and r["rpo_estimate_s"] == 0.0 and r["unarchived_wal_bytes"] == 0
    assert r["last_drill"] == {"at": NOW, "ok": True, "rto_s": 9.5, "target_time": "t"}
    assert r["repo_size_bytes"] == 100 and r["backup_age_s"]["full"] == H


def test_the_health_report_alerts_when_wal_waits():
    arch = {"last_archived_wal": "000000010000000000000003", "current_wal_bytes": 5 * 16 * 2**20,
            "wal_segment_bytes": 16 * 2**20, "last_archived_age_s": 700.04}
    r = assess(info([backup("full", NOW - H)], arch), None, rules.Thresholds(), NOW)
    assert r["alerts"] == ["WAL waits to be archived: work at risk 700 s (> 600 s), "
                           "last archived 700.0 s ago"]


def settings(name: str, **over):
    data = {"pg_roles": [{"name": "o", "password": False}], "pg_backup_host": "backup1", **over}
    return load_settings(name, data, environ={"PGOPS_BACKUP_CIPHER_PASS": "x"})


SETTINGS = {"db1": settings("db1"), "db2": settings("db2"), "db3": settings("db3", pg_backup_host="local")}
STANZAS = {n: s.pg_backup_host for n, s in SETTINGS.items()}
ST = info([backup("full", NOW - 2 * H, label="F"), backup("incr", NOW - H, label="I")],
          earliest=NOW - 2 * H, latest=NOW - 60)


def test_restore_check_picks_the_newest_backup_before_the_target():
    c = check("db1", iso(NOW - 1800), ST, live=False, now=NOW, settings=SETTINGS, stanzas=STANZAS)
    assert c.backup["label"] == "I" and not c.archive_first and not c.to_end
    assert c.target == pytest.approx(NOW - 1800)


def test_restore_check_refuses_a_time_outside_the_window_unless_the_primary_is_up():
    with pytest.raises(BackupError, match="outside the recoverable window of db1"):
        check("db1", iso(NOW - 30), ST, live=False, now=NOW, settings=SETTINGS, stanzas=STANZAS)
    c = check("db1", iso(NOW - 30), ST, live=True, now=NOW, settings=SETTINGS, stanzas=STANZAS)
    assert c.archive_first and c.window["latest"] == NOW


def test_restore_to_latest_ends_at_the_archive_or_now():
    down = check("db1", "latest", ST, live=False, now=NOW, settings=SETTINGS, stanzas=STANZAS)
    assert down.to_end and down.target == NOW - 60 and not down.archive_first
    up = check("db1", "LATEST", ST, live=True, now=NOW, settings=SETTINGS, stanzas=STANZAS)
    assert up.target == NOW and up.archive_first


@pytest.mark.parametrize(("db", "onto", "in_place", "message"), [
    ("db1", "db2", True, "--in-place restores over the source's own cluster; it excludes --onto"),
    ("db1", "db9", False, "--onto db9: not a database host of the inventory"),
    ("db3", "db1", False, "--onto db1: db3 keeps its repository locally"),
    ("db1", "db3", False, "--onto db3: it does not use backup1, the repository of db1"),
])
def test_restore_check_refuses_a_wrong_destination(db, onto, in_place, message):
    with pytest.raises(BackupError, match=message):
        check(db, iso(NOW - 1800), ST, live=False, now=NOW, settings=SETTINGS, stanzas=STANZAS,
              onto=onto, in_place=in_place)


def test_restore_check_refuses_a_host_without_backups_and_a_bad_time():
    with pytest.raises(BackupError, match="db1 has no backup to restore from"):
        check("db1", "latest", info([]), live=True, now=NOW, settings=SETTINGS, stanzas=STANZAS)
    with pytest.raises(BackupError, match="not a time"):
        parse_time("yesterday")


def test_restore_plans_beside_and_in_place():
    c = check("db1", iso(NOW - 1800), ST, live=True, now=NOW, settings=SETTINGS, stanzas=STANZAS)
    name = copies.name(dt.datetime(2027, 1, 15, 8, 0, 0), 4242)
    beside = build("db1", c, SETTINGS["db1"], "db2", False, 5433, name)
    assert (beside.cluster, beside.port, beside.data_directory) == (
        "restore_20270115080000_4242", 5433, "/var/lib/postgresql/17/restore_20270115080000_4242")
    assert beside.steps[0] == "create cluster 17/restore_20270115080000_4242 on db2, port 5433"
    assert beside.estimate_s == pytest.approx(1 + 5 + 1800 / 600)
    assert not beside.scratch
    drill = build("db1", c, SETTINGS["db1"], "db1", False, 5433, name, scratch=True)
    assert drill.scratch and drill.steps[0].startswith("remove the copies killed runs")
    assert drill.steps[1:] == [s.replace("db2", "db1") for s in beside.steps]
    in_place = build("db1", c, SETTINGS["db1"], "db1", True, 5432, name, scratch=True)
    assert (in_place.cluster, in_place.port, in_place.scratch) == ("main", 5432, False)
    assert in_place.steps[0] == "stop postgresql@17-main on db1"


def test_two_copies_made_in_one_second_get_two_names():
    """A timer's drill and a user's in the same second: the data directory of one would be
    taken by the other."""
    now = dt.datetime(2026, 12, 4, 22, 30, 0)
    assert copies.name(now, 100) != copies.name(now, 101)
    assert all(copies.is_copy(copies.name(now, pid)) for pid in (1, 4194304))
    assert copies.is_copy("restore_20261204223000")  # named before the pid was added


def test_prometheus_text():
    rows = [{"host": "db1", "up": True, "backup": {
                "backup_age_s": {"full": 10.0, "diff": None, "incr": 5.0}, "last_archived_age_s": 3.0,
                "rpo_estimate_s": 0.0, "archiver_failed_count": None, "repo_size_bytes": 2048,
                "alerts": ["x"]}},
            {"host": "db2", "up": False, "backup": {"alerts": ["backup state unavailable: down"]}},
            {"host": "db3", "up": True}]
    text = prometheus(rows)
    assert text.startswith("# HELP pgops_up 1 if the server answered.\n# TYPE pgops_up gauge\n"
                           'pgops_up{host="db1"} 1\npgops_up{host="db2"} 0\npgops_up{host="db3"} 1\n')
    for line in ('pgops_backup_age_seconds{host="db1",type="full"} 10.0',
                 'pgops_backup_age_seconds{host="db1",type="incr"} 5.0',
                 'pgops_wal_last_archived_age_seconds{host="db1"} 3.0',
                 'pgops_rpo_estimate_seconds{host="db1"} 0.0',
                 'pgops_wal_archive_failed_total{host="db1"} 0',
                 'pgops_repo_size_bytes{host="db1"} 2048',
                 'pgops_alerts{host="db1"} 1', 'pgops_alerts{host="db2"} 1'):
        assert line in text.splitlines()
    assert 'type="diff"' not in text and 'pgops_repo_size_bytes{host="db2"}' not in text
    assert text.endswith("\n") and text.count("# TYPE") == 11
    # A host's PgBouncer: whether it answers, and its pools.
    pool = {"database": "app", "user": "app", "cl_active": 3, "cl_waiting": 1, "sv_active": 2,
            "sv_idle": 4, "sv_used": 0, "maxwait_s": 1.5}
    pooled = prometheus([{"host": "db1", "up": True, "pooler": {"port": 6432, "pools": [pool]}},
                         {"host": "db2", "up": True, "pooler": {"port": 6432, "pools": None}}]).splitlines()
    for line in ('pgops_pooler_up{host="db1"} 1', 'pgops_pooler_up{host="db2"} 0',
                 'pgops_pooler_clients_waiting{host="db1",database="app",user="app"} 1',
                 'pgops_pooler_maxwait_seconds{host="db1",database="app",user="app"} 1.5'):
        assert line in pooled
    # A cluster's backups carry its stanza, so dashboards follow the cluster, not a member.
    clustered = prometheus([{"host": "db1", "up": True, "backup": {
        "stanza": "main", "repo_size_bytes": 1, "alerts": []}}])
    assert 'pgops_repo_size_bytes{host="db1",stanza="main"} 1' in clustered.splitlines()
    single = prometheus([{"host": "db1", "up": True, "backup": {
        "stanza": "db1", "repo_size_bytes": 1, "alerts": []}}])
    assert 'pgops_repo_size_bytes{host="db1"} 1' in single.splitlines()  # labels unchanged


def test_an_in_place_cluster_restore_plans_every_member_and_the_new_timeline():
    from pgops.backup.cluster_restore import RECOVERY_SETTINGS, steps

    plan = steps(["db2", "db1", "db3"], "main", "main", "/var/lib/postgresql/17/main",
                 "20270115-080000F", "2027-01-15T08:30:00+00:00", archive_first=True)
    assert plan[0] == "commit and switch WAL on db2, so the archive reaches past the target"
    # Replicas stop before the leader: no failover on the way down.
    assert plan[1].startswith("stop Patroni on db1, db3, then on db2")
    assert "remove cluster main from etcd" in plan[2]
    assert plan[3] == ("delta restore of backup 20270115-080000F + WAL to 2027-01-15T08:30:00+00:00 "
                       "over /var/lib/postgresql/17/main on db2")
    # A full backup on the new timeline comes before the replicas are made from the newest one.
    full = next(i for i, s in enumerate(plan) if s.startswith("full backup of stanza main"))
    rebuild = next(i for i, s in enumerate(plan) if "rebuilt as a replica on the new timeline" in s)
    assert full < rebuild and "db1, db3" in plan[rebuild]
    assert not steps(["db1"], "main", "main", "/d", "F", "t", archive_first=False)[0].startswith("commit")
    # Recovery settings pgBackRest wrote are reset, or a later replica would stop at the target.
    assert {"restore_command", "recovery_target_time", "recovery_target_action"} <= set(RECOVERY_SETTINGS)


def test_a_full_wal_disk_alerts_and_shows_in_metrics():
    from pgops.server import disk

    wal = {"wal_bytes": 300 * 2**20, "fs_size_bytes": 1000 * 2**20, "fs_free_bytes": 50 * 2**20}
    [alert] = disk.wal_alerts(wal)
    assert alert.startswith("pg_wal's filesystem is 95% full (> 90%): 50 MiB free, pg_wal holds 300 MiB")
    assert disk.wal_alerts(wal, max_used=96) == []
    assert disk.wal_alerts({**wal, "fs_free_bytes": 100 * 2**20}) == []  # 90% exactly: not past it
    assert disk.wal_alerts(None) == [] and disk.used_percent({**wal, "fs_size_bytes": 0}) == 100.0
    lines = prometheus([{"host": "db1", "up": True, "wal": wal, "alerts": [alert]},
                        {"host": "db2", "up": False}]).splitlines()
    for line in (f'pgops_wal_bytes{{host="db1"}} {300 * 2**20}',
                 f'pgops_wal_disk_free_bytes{{host="db1"}} {50 * 2**20}',
                 f'pgops_wal_disk_size_bytes{{host="db1"}} {1000 * 2**20}',
                 'pgops_server_alerts{host="db1"} 1', 'pgops_up{host="db2"} 0'):
        assert line in lines
    assert not any(x.startswith("pgops_wal_bytes{host=\"db2\"") for x in lines)


def test_a_stalled_wal_switch_names_the_failing_segment():
    assert _archive_failure("0||") == ""
    assert _archive_failure("3|000000030000000000000009|2026-12-04 12:32:10+00") == (
        "; archiving failed 3 times, last on 000000030000000000000009 at 2026-12-04 12:32:10+00")
    assert _archive_failure("1|x|t", "ERROR: [045]: different checksum") == (
        "; archiving failed 1 times, last on x at t: ERROR: [045]: different checksum")


def test_only_copies_a_killed_run_of_this_machine_left_are_swept():
    """A drill's or tenant restore's copy is removed when its run ends; a killed run's stays,
    holding a server's memory, until the next run from the same machine finds its process
    gone. Another machine's copy, or a live process's, may be in use: left alone."""
    marks = {"restore_1": rules.scratch_mark("ctl", 100),   # killed: pid 100 is gone
             "restore_2": rules.scratch_mark("ctl", 200),   # still running
             "restore_3": rules.scratch_mark("other", 100),  # another controller's
             "restore_4": "garbled"}
    gone, kept = rules.stale_scratch(marks, "ctl", alive=lambda pid: pid == 200)
    assert gone == ["restore_1"]
    assert kept == ["restore_2", "restore_3", "restore_4"]
    assert rules.stale_scratch({}, "ctl", alive=lambda pid: False) == ([], [])
    # A name is matched whole (an older mark names the hostname alone: swept by that name).
    assert rules.stale_scratch({"restore_5": rules.scratch_mark("ctl-old", 100)}, "ctl-old",
                               alive=lambda pid: False) == (["restore_5"], [])
    assert rules.stale_scratch({"restore_5": rules.scratch_mark("ctl", 100)}, "ctl-old",
                               alive=lambda pid: False) == ([], ["restore_5"])


def test_removing_a_copy_never_names_the_live_cluster_and_leaves_nothing():
    """pg_dropcluster leaves a conf directory holding files it does not know (the scratch
    mark): the copy's conf, data and throwaway initdb directories all go."""
    from pgops.server.cluster import Cluster

    cmd = copies.remove(Cluster(17, "restore_20261204223000"))
    assert cmd.startswith("pg_dropcluster 17 restore_20261204223000 --stop")
    for path in ("/etc/postgresql/17/restore_20261204223000",
                 "/var/lib/postgresql/17/restore_20261204223000",
                 "/var/lib/postgresql/17/restore_20261204223000.init"):
        assert f" {path}" in cmd
    for name in ("main", "restore_", "restore_1; rm -rf /", "restore_x"):
        with pytest.raises(ValueError):
            copies.remove(Cluster(17, name))


def test_a_users_copy_takes_the_hosts_access_and_a_transient_one_stays_local():
    """`pgops restore` says to point applications at the copy: it listens where the live
    cluster does, with its TLS and pg_hba.conf. A drill's or tenant restore's does not."""
    from pgops.server import pgconf
    from pgops.server.cluster import Cluster

    lines, hba = copies.access(SETTINGS["db2"])
    assert "listen_addresses = '*'\n" in lines and "ssl = on\n" in lines
    assert f"ssl_cert_file = '{pgconf.TLS_DIR}/server.crt'" in lines
    assert hba.splitlines()[1:] == pgconf.render_hba(SETTINGS["db2"]).splitlines()[1:]
    c, live = Cluster(17, "restore_20261204223000_7"), Cluster(17, "main")
    users = copies.create_and_restore(c, "pgbackrest restore", live, "ctl 7\n", (lines, hba))
    transient = copies.create_and_restore(c, "pgbackrest restore", live, "ctl 7\n")
    assert "listen_addresses" in users and "snakeoil" not in users
    assert "listen_addresses" not in transient and "snakeoil" in transient
    mark = f"{c.etc}/{rules.SCRATCH_MARK}"
    for cmd in (users, transient):  # its port chosen and reserved under a lock, marked
        assert cmd.startswith(f"{{ flock -w {copies.LOCK_SECONDS} 9 && ")
        assert f"echo $p > {c.etc}/{copies.PORT_FILE}; }} || {{ rm -rf {c.etc}; false; }}; }}; }} " \
               "9</etc/postgresql/17 && " in cmd
        assert f"> {mark} && " in cmd and cmd.endswith(" && echo pgops-port=$p")
        assert f"{live.etc}/postgresql.conf" in cmd  # the live cluster's locale lines
    with pytest.raises(ValueError):
        copies.create_and_restore(live, "pgbackrest restore", live, "ctl 7\n")
    for cmd in (users, transient):  # a name taken fails first; a failure removes what it made
        assert f"&& mkdir {c.etc} && " in cmd and f"{{ mkdir -m 700 {c.data} || {{ rm -rf {c.etc}; " in cmd
        assert "--start-conf manual" in cmd  # no daemon-reload; never started at boot yet
    assert copies.parse_port("restore output\npgops-port=5434\n") == 5434
    with pytest.raises(ValueError, match="no port"):
        copies.parse_port("")
    # A user's copy is handed over once it runs: unmarked, started with the host.
    assert copies.kept(c) == f"rm -f {mark} && echo auto > {c.etc}/start.conf"
    with pytest.raises(ValueError):
        copies.kept(live)
        assert cmd.endswith(f"|| {{ rm -rf {c.data} {c.etc}; false; }}; }}")


def test_restore_onto_a_host_of_another_major_is_refused():
    other = {**SETTINGS, "db4": settings("db4", pg_major=16)}
    with pytest.raises(BackupError, match="--onto db4: it runs PostgreSQL 16, db1's backups are of 17"):
        check("db1", iso(NOW - 1800), ST, live=False, now=NOW, settings=other,
              stanzas={**STANZAS, "db4": "backup1"}, onto="db4")


def test_a_copy_recovers_with_its_own_pgbackrest_spool_and_lock():
    """Two copies of one stanza recovering at once (or one beside the live cluster's
    asynchronous archiving) shared a lock and a spool queue: one waited 60 s and failed."""
    from pgops.backup.restore import pgbackrest_restore

    c = check("db1", iso(NOW - 1800), ST, live=True, now=NOW, settings=SETTINGS, stanzas=STANZAS)
    name = "restore_20270115080000_4242"
    beside = pgbackrest_restore(build("db1", c, SETTINGS["db1"], "db1", False, 5433, name), "db1")
    assert f"--spool-path=/var/lib/postgresql/17/{name}/pgops-spool " in beside
    assert f"--lock-path=/tmp/pgbackrest/{name}" in beside
    in_place = pgbackrest_restore(build("db1", c, SETTINGS["db1"], "db1", True, 5432, name), "db1")
    assert "--spool-path" not in in_place and "--lock-path" not in in_place
