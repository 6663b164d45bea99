"""pgBackRest in repository-host mode, for database hosts with `pg_backup_host` and for the
repository hosts they name. One call site for both roles: pyinfra orders operations by
their line here, so each step runs on every host before the next (keys before trust)."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, files, server

from pgops import backrest
from pgops.facts.system import HostResources
from pgops.inventory import BACKUP_GROUP, DB_GROUP, all_settings
from pgops.operations import pgbackrest as ops

PG_HOME = "/var/lib/postgresql"
AS_REPO = {"_sudo": True, "_sudo_user": backrest.REPO_USER}


def _address(name: str) -> str:
    h = host.inventory.get_host(name)
    return h.data.get("ssh_hostname") or h.name


def _names(name: str) -> list[str]:
    return sorted({name, _address(name)})


@deploy("pgBackRest")
def backups() -> None:
    settings = all_settings()
    mine = settings.get(host.name) if DB_GROUP in host.groups else None
    is_db = bool(mine and mine.pg_backup_host)
    served = {n: s for n, s in settings.items() if s.pg_backup_host == host.name}
    is_repo = BACKUP_GROUP in host.groups and bool(served)
    if not (is_db or is_repo):
        return
    user, home = (backrest.REPO_USER, backrest.REPO_HOME) if is_repo else ("postgres", PG_HOME)
    cpus = host.get_fact(HostResources).cpus

    wanted = ["pgbackrest", "openssh-client"]
    if any(p not in (host.get_fact(DebPackages) or {}) for p in wanted):
        apt.update(name="Update apt lists (pgBackRest missing)")
    apt.packages(name="Install pgBackRest", packages=wanted, no_recommends=True)
    if is_repo:
        server.user(name="Repository user", user=user, system=True, home=home, shell="/bin/sh",
                    create_home=False)
    for d in backrest.DIRS if is_repo else (backrest.SPOOL, backrest.LOG):
        files.directory(name=f"pgBackRest directory {d}", path=d, user=user, group=user, mode="750")
    files.directory(name="pgBackRest config directory", path=backrest.CONF_DIR, mode="755")
    ops.legacy_config_moved_aside(name="Debian's legacy /etc/pgbackrest.conf moved aside")
    ops.ssh_key(name="SSH key for pgBackRest", user=user, home=home)

    if is_repo:
        peers = [(n, "postgres", PG_HOME, _names(n)) for n in sorted(served)]
    else:
        peers = [(mine.pg_backup_host, backrest.REPO_USER, backrest.REPO_HOME,
                  _names(mine.pg_backup_host))]
    ops.trust(name="SSH trust for pgBackRest", user=user, home=home, peers=peers)

    if is_repo:
        content = backrest.repo_conf({n: (_address(n), s) for n, s in served.items()}, cpus)
        secret = next(iter(served.values())).cipher_pass
        files.put(name="Repository encryption passphrase", src=StringIO(backrest.cipher_conf(secret)),
                  dest=backrest.CIPHER_CONF, user="root", group=user, mode="640")
    else:
        content = backrest.db_conf(host.name, mine, _address(mine.pg_backup_host), min(cpus, 2))
    files.put(name="pgBackRest configuration", src=StringIO(content), dest=backrest.CONF,
              user="root", group=user, mode="640")

    if is_repo:
        for n in sorted(served):
            ops.stanza(name=f"Stanza {backrest.stanza(n)}", stanza_name=backrest.stanza(n), **AS_REPO)
