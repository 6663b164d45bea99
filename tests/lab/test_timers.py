"""systemd timers on the repository host (pg_backup_timers): the same jobs as
`pgops schedule run`, fired by systemd; drills restore on the repository host itself."""

from __future__ import annotations

import json
import time

import pytest

from tests.lab.conftest import pgops, results, variant_inventory

FAST = {"full": None, "diff": None, "incr": "*:*:0/10", "drill": "*-*-* 04:30:00",
        "status": "*:*:0/10"}


def journal_lines(lab, unit: str) -> list[dict]:
    out = lab.ssh("backup1", f"journalctl -q -o cat -u {unit} | grep '^{{' || true").stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def timed(lab, first_deploy, tmp_path_factory):
    """Deploy with fast timers; always deploy the default inventory again afterwards."""
    inv = variant_inventory(tmp_path_factory.mktemp("timers"), "timers", pg_backup_timers=FAST)
    try:
        yield inv, pgops("deploy", "-i", str(inv))
    finally:
        removed = pgops("deploy", check=False)
    assert removed.rc == 0, removed.out[-3000:]
    units = lab.ssh("backup1", "ls /etc/systemd/system/ | grep '^pgops-.*timer' || true").stdout
    assert units.strip() == "", units


def test_timers_are_installed_and_the_second_deploy_changes_nothing(lab, timed):
    inv, first = timed
    assert "Timer pgops-incr@db1.timer enabled" in first.out
    listed = lab.ssh("backup1", "systemctl list-timers --all --no-legend 'pgops-*'").stdout
    for unit in ("pgops-incr@db1.timer", "pgops-incr@db2.timer", "pgops-status@db2.timer",
                 "pgops-drill@db2.timer"):
        assert unit in listed, listed
    assert "pgops-full@" not in listed  # null: no timer
    again = pgops("deploy", "-i", str(inv))
    changed = {op: r for op, r in results(again.out).items() if r[0] != "-" and r[2] != r[0]}
    assert not changed, changed


def test_timers_fire_backups_and_status_checks(lab, timed):
    [st] = json.loads(pgops("backup", "list", "--host", "db2", "--json").stdout)
    before = [b["label"] for b in st["backups"]]
    t0, deadline = time.time(), time.monotonic() + 90
    while time.monotonic() < deadline:
        runs = [r for r in journal_lines(lab, "pgops-incr@db2.service") if r["started"] > t0]
        status = [r for r in journal_lines(lab, "pgops-status@db2.service") if r["started"] > t0]
        if runs and status:
            break
        time.sleep(2)
    assert runs, journal_lines(lab, "pgops-incr@db2.service")
    assert runs[-1]["ok"] and runs[-1]["job"] == "incr" and runs[-1]["result"]["type"] == "incr"
    [st] = json.loads(pgops("backup", "list", "--host", "db2", "--json").stdout)
    assert runs[-1]["result"]["label"] in {b["label"] for b in st["backups"]} - set(before)
    assert status and status[-1]["job"] == "status", status
    assert status[-1]["ok"] and status[-1]["result"]["alerts"] == [], status[-1]


def test_the_drill_timer_restores_on_the_repository_host(lab, timed):
    t0 = time.time()
    r = lab.ssh("backup1", "systemctl start pgops-drill@db2.service", check=False, timeout=900)
    lines = [x for x in journal_lines(lab, "pgops-drill@db2.service") if x["started"] > t0]
    assert r.returncode == 0 and lines and lines[-1]["ok"], (r.stderr, lines)
    assert lines[-1]["result"]["amcheck"] == "ok"
    [row] = [x for x in json.loads(pgops("status", "--json").stdout) if x["host"] == "db2"]
    last = row["backup"]["last_drill"]
    assert last["ok"] and last["rto_s"] == lines[-1]["result"]["rto_s"], last
    left = lab.ssh("backup1", "ls -A /var/lib/pgbackrest/pgops-drill-scratch").stdout
    assert left.strip() == ""
    # Nothing of the copy's own reached the repository: drills never archive, so it holds no
    # timeline beyond the live cluster's (an in-place restore earlier may have made that 2).
    live = int(lab.ssh("db2", "cd / && runuser -u postgres -- psql -XAtqc "
                              "'select timeline_id from pg_control_checkpoint()'").stdout)
    names = lab.ssh("backup1", "ls /var/lib/pgbackrest/archive/db2/17-1/").stdout.split()
    timelines = {int(n[:8], 16) for n in names if len(n) == 16 or n.endswith(".history")}
    assert timelines and max(timelines) <= live, (names, live)


def test_a_calendar_systemd_refuses_fails_the_deploy_before_any_change(lab, first_deploy,
                                                                      write_inventory):
    from tests.lab.conftest import fingerprint

    units = "ls /etc/systemd/system /usr/local/lib; md5sum /etc/systemd/system/pgops-* || true"
    # The module's fast timers would add backups meanwhile (the fingerprint lists backups):
    # stop them and let a running job finish; the module's teardown removes them anyway.
    # (`systemctl is-active` takes no pattern: list-units does.)
    lab.ssh("backup1", "systemctl stop 'pgops-*.timer'; for i in $(seq 180); do "
                       "[ -z \"$(systemctl list-units --no-legend --state=active,activating "
                       "'pgops-*.service')\" ] && break; sleep 1; done")
    before, units_before = fingerprint(lab), lab.ssh("backup1", units).stdout
    # With a change the db hosts would get first: it must not happen either.
    inv = write_inventory(pg_backup_timers={"incr": "Sun 25:61"}, pg_settings={"work_mem": "7MB"})
    r = pgops("deploy", "-i", str(inv), check=False)
    assert r.rc != 0 and "systemd refuses the calendar(s) 'Sun 25:61'" in r.out, r.out[-3000:]
    assert fingerprint(lab) == before
    assert lab.ssh("backup1", units).stdout == units_before
