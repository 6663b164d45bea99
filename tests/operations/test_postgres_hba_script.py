"""The shells hba_file and settings_file generate, run for real with `sh` against fake runuser, psql and
systemctl on PATH (no Postgres): a refused file or a failing psql puts the previous file
back (or removes the new one when there was none) and fails with a message naming the file;
an accepted file stays and the service is reloaded, whatever psql says on stderr; the
temporary file holding that stderr is always removed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pgops.operations import postgres
from tests.operations.harness import make_host, run_operation

OLD = "local all all peer\n"
NEW = "local all all peer\nhostssl app app 10.0.0.0/24 scram-sha-256\n"
SERVICE = "postgresql@17-main"

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")

# runuser: drop "-u postgres --" and run the rest, like the real one does as postgres.
RUNUSER = """#!/bin/sh
echo "runuser $*" >> "$FAKE_LOG"
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
exec "$@"
"""
# psql: what the check sees on stdout (rows of pg_hba_file_rules errors), or a failure.
PSQL = {
    "accepts": "#!/bin/sh\necho \"psql $*\" >> \"$FAKE_LOG\"\nexit 0\n",
    "refuses": "#!/bin/sh\necho \"psql $*\" >> \"$FAKE_LOG\"\n"
               "echo 'line 2: invalid authentication method \"scram-sha-257\"'\nexit 0\n",
    "warns": "#!/bin/sh\necho \"psql $*\" >> \"$FAKE_LOG\"\n"
             "echo 'WARNING: could not flush dirty data: Function not implemented' >&2\nexit 0\n",
    "fails": "#!/bin/sh\necho \"psql $*\" >> \"$FAKE_LOG\"\n"
             "echo 'psql: error: connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" "
             "failed: No such file or directory' >&2\nexit 2\n",
}
SYSTEMCTL = "#!/bin/sh\necho \"systemctl $*\" >> \"$FAKE_LOG\"\n"


def script(path: Path, current: str | None) -> str:
    """The command hba_file yields after its upload, for a host where `path` holds `current`."""
    facts = {
        "FileContents": {f"path={path}": None if current is None else current.splitlines()},
        "File": {f"path={path}.pgops-new": None},
        "Directory": {f"path={path}.pgops-new": None,
                      f"path={path.parent}": {"user": "postgres", "group": "postgres",
                                              "mode": 755, "size": 100}},
        "Sha1File": {f"path={path}.pgops-new": None},
    }
    result = run_operation(postgres.hba_file, make_host({"facts": facts}),
                           kwargs={"path": str(path), "content": NEW, "port": 5432,
                                   "service": SERVICE})
    return result.raw[-1]


def run(tmp_path: Path, psql: str, current: str | None, stale_prev: str | None = None):
    """Set up pg_hba.conf (`current`, None: absent), the uploaded .pgops-new and maybe a
    .pgops-prev left by an earlier run, run the script with the fakes first on PATH;
    return (process, pg_hba.conf path, fake log)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    path = etc / "pg_hba.conf"
    if current is not None:
        path.write_text(current)
    Path(f"{path}.pgops-new").write_text(NEW)
    if stale_prev is not None:
        Path(f"{path}.pgops-prev").write_text(stale_prev)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("runuser", RUNUSER), ("psql", PSQL[psql]), ("systemctl", SYSTEMCTL)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    log = tmp_path / "fake.log"
    log.touch()
    tmp = tmp_path / "tmp"  # mktemp's directory: the script must leave it empty
    tmp.mkdir()
    proc = subprocess.run(
        ["sh", "-c", script(path, current)], capture_output=True, text=True,
        env={**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
             "FAKE_LOG": str(log), "TMPDIR": str(tmp)},
    )
    assert list(tmp.iterdir()) == [], "psql's stderr file was left behind"
    return proc, path, log.read_text()


def test_the_check_runs_psql_as_postgres_through_runuser(tmp_path):
    proc, _, log = run(tmp_path, "accepts", OLD)
    assert proc.returncode == 0, proc.stderr
    runuser, psql = log.splitlines()[:2]
    assert runuser.startswith("runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -p 5432 ")
    assert "pg_hba_file_rules" in psql


def test_accepted_file_stays_and_the_service_reloads(tmp_path):
    proc, path, log = run(tmp_path, "accepts", OLD)
    assert proc.returncode == 0, proc.stderr
    assert path.read_text() == NEW
    assert Path(f"{path}.pgops-prev").read_text() == OLD
    assert not Path(f"{path}.pgops-new").exists()
    assert log.splitlines()[-1] == f"systemctl reload {SERVICE}"


def test_a_warning_on_psqls_stderr_is_no_refusal(tmp_path):
    """Only the query's rows refuse a file: a warning psql prints on stderr does not."""
    proc, path, log = run(tmp_path, "warns", OLD)
    assert proc.returncode == 0, proc.stderr
    assert path.read_text() == NEW
    assert log.splitlines()[-1] == f"systemctl reload {SERVICE}"


def test_refused_file_is_rolled_back(tmp_path):
    proc, path, log = run(tmp_path, "refuses", OLD)
    assert proc.returncode == 1
    assert path.read_text() == OLD
    assert f"{path} refused, previous file kept: line 2: invalid authentication method" in proc.stderr
    assert "systemctl" not in log


def test_failing_psql_rolls_back_with_a_message(tmp_path):
    proc, path, log = run(tmp_path, "fails", OLD)
    assert proc.returncode == 1
    assert path.read_text() == OLD
    assert f"{path} not checked (psql failed: psql: error: connection to server" in proc.stderr
    assert proc.stderr.rstrip().endswith("previous file kept")
    assert "systemctl" not in log


def test_no_previous_file_accepted(tmp_path):
    proc, path, log = run(tmp_path, "accepts", None)
    assert proc.returncode == 0, proc.stderr
    assert path.read_text() == NEW
    assert not Path(f"{path}.pgops-prev").exists()
    assert log.splitlines()[-1] == f"systemctl reload {SERVICE}"


@pytest.mark.parametrize("psql, says", [("refuses", "refused"), ("fails", "not checked")])
def test_no_previous_file_refused_or_unchecked_removes_the_new_one(tmp_path, psql, says):
    proc, path, log = run(tmp_path, psql, None)
    assert proc.returncode == 1
    assert not path.exists()
    assert not Path(f"{path}.pgops-prev").exists()
    assert f"{path} {says}" in proc.stderr
    assert "no previous file, new file removed" in proc.stderr
    assert "systemctl" not in log


def test_stale_backup_is_not_restored_when_there_was_no_file(tmp_path):
    """A .pgops-prev left by an earlier run must not come back when pg_hba.conf is absent."""
    proc, path, _ = run(tmp_path, "refuses", None, stale_prev="local all all trust\n")
    assert proc.returncode == 1
    assert not path.exists()


# -- the settings file: swapped in, checked by `postgres -C`, put back when refused ---------
CONF_OLD = "work_mem = '4MB'\n"
CONF_NEW = "work_mem = '8MB'\nshared_bufers = '1GB'\n"
CHECKS = {
    "loads": "#!/bin/sh\necho '/var/lib/postgresql/17/main'\n",
    "refuses": "#!/bin/sh\necho '2026-12-03 17:20:40.891 GMT [5546] LOG:  unrecognized configuration "
               "parameter \"shared_bufers\" in file \"/etc/x/50-pgops.conf\" line 2' >&2\n"
               "echo '2026-12-03 17:20:40.891 GMT [5546] FATAL:  configuration file "
               "\"/etc/x/50-pgops.conf\" contains errors' >&2\nexit 1\n",
}


@pytest.mark.parametrize("current", [CONF_OLD, None], ids=["previous-file", "first-file"])
@pytest.mark.parametrize("verdict", ["loads", "refuses"])
def test_a_settings_file_postgres_refuses_never_stays(tmp_path: Path, current, verdict):
    path = tmp_path / "50-pgops.conf"
    if current is not None:
        path.write_text(current)
    Path(f"{path}.pgops-new").write_text(CONF_NEW)
    check = tmp_path / "check"
    check.write_text(CHECKS[verdict])
    check.chmod(0o755)
    r = subprocess.run(["sh", "-c", postgres.checked_swap_script(str(path), str(check))],
                       capture_output=True, text=True)
    if verdict == "loads":
        assert r.returncode == 0 and path.read_text() == CONF_NEW
        return
    assert r.returncode == 1
    assert (path.read_text() if path.exists() else None) == current
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(["check", *([path.name] if current else [])])
    kept = "previous file kept" if current else "no previous file, new file removed"
    assert f"{path} refused, {kept}: " in r.stderr
    assert 'unrecognized configuration parameter "shared_bufers"' in r.stderr and "line 2" in r.stderr
