"""Timer units for the repository host, and the settings that shape them and retention."""

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pgops.backup import rules, timers
from pgops.errors import ConfigError
from pgops.settings import BackupTimers, load_settings


def settings(**over):
    data = {"pg_roles": [{"name": "o", "password": False}], "pg_backup_host": "backup1", **over}
    return load_settings("db1", data, environ={"PGOPS_BACKUP_CIPHER_PASS": "x"})


def test_defaults_schedule_every_job_and_null_drops_one():
    assert timers.wanted(None) == {}
    assert set(timers.wanted(BackupTimers())) == set(rules.JOBS)
    s = settings(pg_backup_timers={"drill": None, "incr": "*:0/30"})
    w = timers.wanted(s.pg_backup_timers)
    assert "drill" not in w and w["incr"] == "*:0/30" and w["full"] == "Sun *-*-* 01:00:00"


def test_units_run_the_job_as_the_repository_user_for_the_stanza():
    svc = timers.service("incr")
    assert "User=pgbackrest" in svc and f"ExecStart={timers.SCRIPT} incr %i" in svc
    tmr = timers.timer("full", "db1", "Sun *-*-* 01:00:00")
    assert "OnCalendar=Sun *-*-* 01:00:00" in tmr and "Persistent=true" in tmr
    assert "Persistent=false" in timers.timer("status", "db1", "*:0/5")
    assert timers.timer_name("full", "db1") == "pgops-full@db1.timer"


@pytest.mark.parametrize("bad", ["hourly\nExecStart=/bin/sh", "-1h", "$(reboot)", ""])
def test_a_calendar_that_could_inject_or_is_not_one_is_refused(bad):
    with pytest.raises(ConfigError, match="pg_backup_timers.incr.*OnCalendar"):
        settings(pg_backup_timers={"incr": bad})


def test_an_unknown_job_is_refused():
    with pytest.raises(ConfigError, match="pg_backup_timers.vacuum: unknown setting"):
        settings(pg_backup_timers={"vacuum": "daily"})


@pytest.mark.parametrize("opt", ["repo1-retention-archive", "repo1-retention-archive-type"])
def test_archive_retention_that_would_cut_pitr_coverage_is_refused(opt):
    with pytest.raises(ConfigError, match=f"{opt}: pgops keeps the WAL of every retained backup"):
        settings(pgbackrest={opt: 1})


@pytest.mark.parametrize("value", [0, -1, "2", True])
def test_retention_must_keep_at_least_one_backup(value):
    with pytest.raises(ConfigError, match="repo1-retention-full: .* at least 1"):
        settings(pgbackrest={"repo1-retention-full": value})


def _job_module():
    return importlib.import_module("pgops.backup.repo_job")


def test_the_job_runner_refuses_bad_arguments(capsys):
    job = _job_module()
    assert job.main(["pgops-repo-job", "vacuum", "db1"]) == 2
    assert job.main(["pgops-repo-job", "full"]) == 2
    assert "usage: pgops-repo-job" in capsys.readouterr().err


def test_the_job_runner_as_installed_imports_only_the_standard_library(tmp_path):
    """Laid out as `pgops deploy` installs it (the runner and rules.py side by side), with no
    site-packages (-S) nor PYTHON* variables (-E): it runs, and every module it loaded is the
    standard library's."""
    lib = tmp_path / "lib"
    lib.mkdir()
    script = lib / Path(timers.SCRIPT).name
    shutil.copy(timers.SCRIPT_SOURCE, script)
    shutil.copy(timers.RULES_SOURCE, lib / Path(timers.RULES).name)
    r = subprocess.run([sys.executable, "-E", "-S", str(script), "vacuum", "db1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "usage: pgops-repo-job full|diff|incr|drill|status" in r.stderr
    probe = (f"import runpy, sys; sys.path.insert(0, {str(lib)!r}); sys.argv = ['x'];\n"
             f"runpy.run_path({str(script)!r}, run_name='not_main')\n"
             "extra = sorted(m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names\n"
             "               and m not in ('rules', '__main__'))\n"
             "print(extra)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
