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

C = Cluster(17)
#: path -> (owner, group, mode) on the database hosts.
DB_FILES = {
    f"{C.conf_d}/50-pgops.conf": ("postgres", "postgres", "644"),
    C.hba: ("postgres", "postgres", "640"),
    f"{pgconf.TLS_DIR}/server.crt": ("postgres", "postgres", "644"),
    f"{pgconf.TLS_DIR}/server.key": ("postgres", "postgres", "600"),
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


def _stat(lab, host: str, paths) -> dict[str, tuple[str, str, str]]:
    out = lab.ssh(host, "stat -c '%n %U %G %a' " + " ".join(paths)).stdout
    return {p: (u, g, m) for p, u, g, m in (line.split() for line in out.splitlines())}


def test_keys_certificates_and_configuration_have_their_owners_and_modes(lab, first_deploy):
    for host in ("db1", "db2"):
        assert _stat(lab, host, DB_FILES) == DB_FILES, host
    assert _stat(lab, "backup1", REPO_FILES) == REPO_FILES
    # The controller: the lab's secrets and its SSH key, for the current user only.
    for path in (lab.secrets_file, lab.ssh_key):
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600, path


def test_plaintext_secrets_live_only_where_a_service_must_read_them(lab, first_deploy):
    secrets = {k: v for k, v in read_secrets_file(lab.secrets_file).items() if len(v) >= 12}
    assert secrets, "the lab has no secrets to look for"
    script = ("pat=$(mktemp); cat > \"$pat\"; find " + " ".join(SEARCHED) + " -xdev -type f -size -20M "
              "! -path \"$pat\" -print0 2>/dev/null | xargs -0 -r grep -l -F -f \"$pat\" 2>/dev/null; "
              "rm -f \"$pat\"; true")
    holders = []
    for h in lab.hosts():
        found = lab.ssh(h, script, input="\n".join(secrets.values()) + "\n").stdout.split()
        stray = sorted(set(found) - set(MAY_HOLD))
        assert not stray, f"{h.name}: a plaintext secret in {stray}"
        for path in found:
            owner, group, mode = _stat(lab, h.name, [path])[path]
            assert (owner, mode) == MAY_HOLD[path] and mode[-1] == "0", (h.name, path, owner, group, mode)
            holders.append(f"{h.name}:{path}")
    # The search finds what is there: the repository's passphrase, where pgBackRest reads it.
    assert f"backup1:{backrest.SECRETS_CONF}" in holders, holders
