"""Install PostgreSQL + pgvector and configure it: TLS, tuned settings, pg_hba.conf (on a
cluster member, Patroni writes the settings and pg_hba.conf: pgops.deploys.cluster)."""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import FileContents
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt, server, systemd
from pyinfra.operations import files as pyinfra_files
from pyinfra.operations.util import any_changed

from pgops import pki
from pgops.backup import backrest
from pgops.deploys.access import asked_of_server
from pgops.deploys.packages import lists_stale_for, missing
from pgops.errors import ConfigError
from pgops.facts.postgres import PgServer
from pgops.facts.system import HostResources
from pgops.operations import apt as apt_ops
from pgops.operations import cache, files, postgres, units
from pgops.server import pgconf, psql
from pgops.server.cluster import CREATECLUSTER_D, Cluster, server_packages
from pgops.server.psql import AS_POSTGRES
from pgops.settings import DISTRO_MAJORS, Settings

PGDG_LIST = "/etc/apt/sources.list.d/pgops-postgresql.list"
PGDG_KEY = "/usr/share/keyrings/pgops-postgresql.asc"
#: postgresql-common reads this when the package creates the cluster (pg_createcluster).
CREATECLUSTER_CONF = f"{CREATECLUSTER_D}/50-pgops-server.conf"


def packages(s: Settings) -> list[str]:
    return list(server_packages(s.pg_major))


def check_distribution(s: Settings) -> str:
    """Fail before any change when the host cannot get the asked-for major."""
    dist = cache.fact(LinuxDistribution)
    name = (dist.get("name") or "").lower()
    codename = (dist.get("release_meta") or {}).get("VERSION_CODENAME", "")
    if name not in ("debian", "ubuntu"):
        raise ConfigError([f"host {host.name}: pgops deploys to Debian hosts; this is {name or 'unknown'}"])
    shipped = DISTRO_MAJORS.get(codename) or DISTRO_MAJORS.get(str(dist.get("major")))
    if s.pg_apt_repository is None and shipped != s.pg_major:
        raise ConfigError([
            f"host {host.name}: pg_major {s.pg_major} is not packaged by {name} {codename} "
            f"(it ships {shipped}); set pg_apt_repository (e.g. PGDG) or pg_major = {shipped}"
        ])
    return codename


@deploy("Install PostgreSQL + pgvector")
def install(s: Settings) -> None:
    check_distribution(s)
    repo = s.pg_apt_repository
    if repo is not None:
        if repo.key_file:
            files.put(name="PostgreSQL apt signing key", src=str(repo.key_file), dest=PGDG_KEY)
        elif repo.key_url:
            pyinfra_files.download(name="PostgreSQL apt signing key", src=repo.key_url, dest=PGDG_KEY)
        files.put(
            name="PostgreSQL apt repository",
            src=StringIO(f"deb [signed-by={PGDG_KEY}] {repo.url} {repo.suite} {repo.components}\n"),
            dest=PGDG_LIST,
        )
    # Before the package: installing it creates the cluster.
    if s.pg_data_checksums:
        files.put(name="New clusters get data checksums",
                  src=StringIO("# Managed by pgops (pg_data_checksums).\n"
                               "initdb_options = '--data-checksums'\n"),
                  dest=CREATECLUSTER_CONF, create_remote_dir=True, mode="644")
    else:
        files.file_absent(name="New clusters without data checksums", path=CREATECLUSTER_CONF)
    wanted = packages(s)
    # With a repository of its own, its list may be new this run: read it in.
    if missing(wanted) if repo is not None else lists_stale_for(wanted):
        apt.update(name="Update apt lists (packages missing)")
    apt_ops.packages(name="Install PostgreSQL packages", packages=wanted, no_recommends=True)
    if not s.pg_ha_cluster:  # a cluster member's postmaster is Patroni's to run
        # Started by the settings step (a stopped server is started there): starting it here
        # would fail on a broken configuration before the deploy could write a good one.
        units.service(name="PostgreSQL cluster enabled", service=pgconf.paths(s)["service"],
                      running=None, enabled=True)


@deploy("Configure PostgreSQL")
def configure(s: Settings, names: list[str]) -> None:
    """+ names: the names and addresses clients dial, which the server certificate carries."""
    p = pgconf.paths(s)
    tls_files = _server_tls(s, names)
    _archive_wrapper()
    if s.pg_ha_cluster:  # Patroni writes the settings and pg_hba.conf (pgops.ha.patroni)
        _certificate_reloaded(s, tls_files)
        return
    _archive_timeout_awake(s, p["service"])
    _restart_on_crash(p["service"])
    # The files and server state this deploy and postgres_access read: two round trips.
    cache.read_together([(FileContents, {"path": p["conf"]}), (FileContents, {"path": p["hba"]}),
                         (PgServer, {"port": s.pg_port, **AS_POSTGRES}), *asked_of_server(s)])
    resources = cache.fact(HostResources)
    postgres.settings_file(
        name="PostgreSQL settings (tuned)",
        path=p["conf"], content=pgconf.render_conf(pgconf.settings(s, resources, host.name)),
        port=s.pg_port, service=p["service"],
        check=Cluster.of(s).config_check_command(),
    )
    postgres.hba_file(name="pg_hba.conf", path=p["hba"], content=pgconf.render_hba(s),
                      port=s.pg_port, service=p["service"])
    _certificate_reloaded(s, tls_files)


def _archive_wrapper() -> None:
    """The archive_command's wrapper (backrest.archive_command), before the settings that
    name it; pgBackRest itself comes with the backup deploy. On every database host, backups
    or not: removing it would come before the settings stop naming it, and a deploy stopped
    in between would leave the archiver a command that is not there."""
    files.put(name="WAL archiving wrapper (skips segments outside the server's history)",
              src=str(backrest.ARCHIVE_WAL_SOURCE), dest=backrest.ARCHIVE_WAL,
              create_remote_dir=True, mode="755")


def _server_tls(s: Settings, names: list[str]) -> list[OperationMeta]:
    """The server's certificate, key and CA: the inventory's files, else issued by pgops's
    PostgreSQL CA for `names` and pg_tls_names (a second deploy puts the same bytes)."""
    p = pgconf.paths(s)
    src: dict[str, str | StringIO]
    if s.pg_tls_cert_file and s.pg_tls_key_file and s.pg_tls_ca_file:
        src = {"cert": str(s.pg_tls_cert_file), "key": str(s.pg_tls_key_file),
               "ca": str(s.pg_tls_ca_file)}
    else:
        pem = pki.host_files(s.server_pki_dir, host.name, [*names, *s.pg_tls_names],
                             ca_name=pgconf.SERVER_CA)
        src = {k: StringIO(v) for k, v in pem.items()}
    files.directory(name="TLS directory", path=pgconf.TLS_DIR, mode="755")
    return [files.put(name=f"TLS {what}", src=src[key], dest=p[key], user="postgres",
                      group="postgres", mode=mode)
            for key, what, mode in (("ca", "CA certificate", "644"),
                                    ("cert", "certificate", "644"), ("key", "key", "600"))]


def _certificate_reloaded(s: Settings, tls_files: list[OperationMeta]) -> None:
    """A running server, and PgBouncer (which presents the same certificate), load a new
    certificate by a reload: no client is cut off. A stopped one reads it when it starts."""
    reload_sql = shlex.join(psql.argv("SELECT pg_catalog.pg_reload_conf()", s.pg_port))
    server.shell(name="PostgreSQL and PgBouncer reload the new certificate",
                 commands=[f"if pg_isready -q -p {s.pg_port}; then runuser -u postgres -- "
                           f"{reload_sql} >/dev/null; fi",
                           "if systemctl is-active -q pgbouncer; then systemctl reload pgbouncer; fi"],
                 _if=any_changed(*tls_files))


#: PostgreSQL (17 here) plans the checkpointer's first sleep while the server is still
#: starting, when archive_timeout does not count, so after every start (a crash restart
#: too) it sleeps up to checkpoint_timeout before archive_timeout switches WAL. A reload once
#: the server is up wakes it. Lab: no switch for 146 s after a crash restart with
#: archive_timeout 60 s; with the reload, one at 60 s.
ARCHIVE_WAKE = """# Managed by pgops: wake the checkpointer once up, so archive_timeout counts from the start.
[Service]
ExecStartPost=-/usr/bin/pg_ctlcluster --skip-systemctl-redirect %i reload
"""


def _archive_timeout_awake(s: Settings, service: str) -> None:
    """Before the settings (whose change may restart the server), so that start has it."""
    path = f"/etc/systemd/system/{service}.service.d/pgops-archive-timeout.conf"
    if s.pg_backup_host:
        changed = files.put(name="archive_timeout active from the start (systemd drop-in)",
                            src=StringIO(ARCHIVE_WAKE), dest=path, create_remote_dir=True, mode="644")
    else:
        changed = files.file_absent(name="No archive_timeout drop-in (no backups)", path=path)
    systemd.daemon_reload(name="systemd reloaded (drop-in changed)", _if=changed.did_change)


def restart_on_failure(why: str) -> str:
    """A systemd drop-in restarting a unit whose main process died, 2 s later: the one restart
    policy pgops gives the services Debian's units leave down (PostgreSQL, Patroni)."""
    return f"# Managed by pgops: {why}\n[Service]\nRestart=on-failure\nRestartSec=2s\n"


#: Debian's postgresql@ unit does not restart a postmaster that died (kill -9, the OOM
#: killer): the server stays down until someone starts it. systemd stops what is left of the
#: old server's processes first, then starts it again. (A cluster member's is Patroni's.)
RESTART_ON_CRASH = restart_on_failure("a postmaster that died is started again.")


def _restart_on_crash(service: str) -> None:
    changed = files.put(name="PostgreSQL restarts when its postmaster dies (systemd drop-in)",
                        src=StringIO(RESTART_ON_CRASH), create_remote_dir=True, mode="644",
                        dest=f"/etc/systemd/system/{service}.service.d/pgops-restart.conf")
    systemd.daemon_reload(name="systemd reloaded (drop-in changed)", _if=changed.did_change)


def postgres_server(s: Settings, names: list[str]) -> None:
    """+ names: the names and addresses clients dial to reach this host's Postgres
    (Topology.dialed): its server certificate carries them."""
    install(s=s)  # keywords: pyinfra types a deploy's positional slots as its global arguments
    configure(s=s, names=names)
