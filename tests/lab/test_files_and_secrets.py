"""Modes and owners of every key, certificate, secrets file and configuration pgops writes
on the `test` lab's hosts and the controller, and where plaintext secrets may live at all:
every file under the directories pgops writes is searched for each lab password, and the
only files holding one are the few that must, readable by their service alone."""

from __future__ import annotations

import stat
from pathlib import Path

from pgops.backup import backrest
from pgops.server import pgconf
from pgops.server.cluster import Cluster
from pgops.settings import read_secrets_file
from tests.lab.exposure import ArgvSampler, probe_ports

C = Cluster(17)
#: path -> (owner, group, mode) on the database hosts.
DB_FILES = {
    f"{C.conf_d}/50-pgops.conf": ("postgres", "postgres", "644"),
    C.hba: ("postgres", "postgres", "640"),
    f"{pgconf.TLS_DIR}/server.crt": ("postgres", "postgres", "644"),
    f"{pgconf.TLS_DIR}/server.key": ("postgres", "postgres", "600"),
    pgconf.CA_FILE: ("postgres", "postgres", "644"),
    backrest.CONF: ("root", "postgres", "640"),
}
#: path -> (owner, group, mode) on the repository host.
REPO_FILES = {
    backrest.CONF: ("root", backrest.REPO_USER, "640"),
}
#: Where pgops writes on a host: every file there is searched for plaintext secrets.
SEARCHED = ("/etc/postgresql", "/etc/pgbackrest", "/etc/ssh", "/etc/systemd/system",
            "/var/lib/postgresql", "/var/log/postgresql", "/var/lib/pgbackrest", "/var/log/pgbackrest",
            "/root", "/tmp")
#: The only files a lab password may be in, with their owner and mode: the encryption
#: passphrase of the repository, which pgBackRest must read.
MAY_HOLD = {backrest.SECRETS_CONF: ("root", "640")}


def stat_files(lab, host: str, paths) -> dict[str, tuple[str, str, str]]:
    out = lab.ssh(host, "stat -c '%n %U %G %a' " + " ".join(paths)).stdout
    return {p: (u, g, m) for p, u, g, m in (line.split() for line in out.splitlines())}


def test_keys_certificates_and_configuration_have_their_owners_and_modes(lab, first_deploy):
    for host in ("db1", "db2"):
        assert stat_files(lab, host, DB_FILES) == DB_FILES, host
    assert stat_files(lab, "backup1", REPO_FILES) == REPO_FILES
    # The controller: the lab's secrets and its SSH key, for the current user only.
    # The CA keys too: whoever holds one can vouch for any server.
    for path in (lab.secrets_file, lab.ssh_key, lab.dir / "postgres-pki" / "ca.key",
                 lab.dir / "postgres-pki" / "db1.key"):
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600, path
    assert stat.S_IMODE((lab.dir / "postgres-pki").stat().st_mode) == 0o700


def secret_holders(lab, host: str, secrets: dict[str, str], where=SEARCHED) -> list[str]:
    """Files under `where` on `host` that hold any of `secrets` in plaintext."""
    script = ("pat=$(mktemp); cat > \"$pat\"; find " + " ".join(where) + " -xdev -type f -size -20M "
              "! -path \"$pat\" -print0 2>/dev/null | xargs -0 -r grep -l -F -f \"$pat\" 2>/dev/null; "
              "rm -f \"$pat\"; true")
    return lab.ssh(host, script, input="\n".join(secrets.values()) + "\n").stdout.split()


def lab_secrets(lab) -> dict[str, str]:
    """The lab's secrets long enough to find without false hits."""
    secrets = {k: v for k, v in read_secrets_file(lab.secrets_file).items() if len(v) >= 12}
    assert secrets, "the lab has no secrets to look for"
    return secrets


def test_plaintext_secrets_live_only_where_a_service_must_read_them(lab, first_deploy):
    secrets = lab_secrets(lab)
    holders = []
    for h in lab.hosts():
        found = secret_holders(lab, h.name, secrets)
        stray = sorted(set(found) - set(MAY_HOLD))
        assert not stray, f"{h.name}: a plaintext secret in {stray}"
        for path in found:
            owner, group, mode = stat_files(lab, h.name, [path])[path]
            assert (owner, mode) == MAY_HOLD[path] and mode[-1] == "0", (h.name, path, owner, group, mode)
            holders.append(f"{h.name}:{path}")
    # The search finds what is there: the repository's passphrase, where pgBackRest reads it.
    assert f"backup1:{backrest.SECRETS_CONF}" in holders, holders


def test_no_secret_in_any_process_argv_or_pyinfra_debug_output(lab, first_deploy, tmp_path):
    """Every process's argv sampled on the controller and every host while pgops deploys
    (pyinfra at its most verbose, run natively), backs up, restores, migrates, opens a shell
    (pgcli), dumps and loads, and runs a scheduled job: no lab password appears anywhere. The
    samplers are shown to work by what they must have seen (pgBackRest's backup, pg_dump,
    pyinfra, pgcli's query)."""
    import json
    import os
    import subprocess
    import sys

    from pgops import PROJECT_ROOT
    from tests.lab.conftest import pgops

    secrets = lab_secrets(lab)
    env = {"PGOPS_BACKUPS_DIR": str(tmp_path)}
    # About 23 samples a second on each of four hosts. Flat out (160/s) the samplers took most
    # of the two CPUs and slowed what they watched: 120 s for this test against 33 s.
    with ArgvSampler(lab, tmp_path / "argv", pause=0.04) as sampled:
        verbose = subprocess.run(
            [str(Path(sys.executable).parent / "pyinfra"), "inventory/lab.py", "deploy.py", "-y", "-vvv",
             "--debug"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
            env={**os.environ, "PGOPS_INVENTORY_NAME": "inventory/lab.py"})
        pgops("backup", "--type", "incr", "--host", "db1")
        pgops("migrate", "status")
        # pgcli, its password in its environment: the query sleeps so the samplers see it run.
        shell = pgops("shell", "--", "--less-chatty", "-c", "select 'argv-probe', pg_sleep(1)")
        assert "argv-probe" in shell.out, shell.out[-2000:]
        pgops("dump", "--host", "db1", env=env)
        [dump] = list(tmp_path.glob("db1__app__*.dump"))
        pgops("load", str(dump), "--host", "db1", "--into", "argv_probe", env=env)
        lab.ssh("db1", "cd / && runuser -u postgres -- dropdb argv_probe")
        restored = json.loads(pgops("restore", "--to", "latest", "--host", "db1", "--json").stdout)
        major, name = restored["cluster"].split("/")
        lab.ssh(restored["host"], f"pg_dropcluster {major} {name} --stop")
        pgops("schedule", "run", "--once", "status")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    print(sampled.summary())
    assert sampled.leaks(secrets) == []
    assert [k for k, v in secrets.items() if v in verbose.stdout + verbose.stderr] == [], \
        "a secret in pyinfra -vvv --debug's output"
    # What the samplers must have seen, or they were not looking.
    argv = sampled.argv
    assert "--type=incr" in argv["backup1"] and "pg_dump" in argv["db1"], (argv["backup1"][:500],)
    assert "deploy.py" in argv["controller"] and "--type" in argv["controller"], argv["controller"][:500]
    assert "select 'argv-probe', pg_sleep(1)" in argv["controller"]  # the shell's pgcli ran
    assert sampled.slowest_rate() >= 10 and "deploy.py" in verbose.stdout + verbose.stderr


def test_every_listening_port_of_the_single_host_lab_is_expected_and_wants_tls(lab, first_deploy):
    """From the repository host: the database hosts listen on SSH and Postgres only, and
    Postgres refuses plain text and TLS 1.1; the repository host on SSH only (pgBackRest's
    TLS server is test_tls_transport's)."""
    expected = {"db": {22: "sshd", 5432: "Postgres"}, "backup": {22: "sshd"}}
    rows = probe_ports(lab, expected, {5432: "pg"})
    assert {r["addr"] for r in rows} == {lab.host(h).address for h in ("db1", "db2")}, rows
    for r in rows:
        assert (r["plain"], r["tls1.1"], r["tls1.2"]) == (False, False, True), r
