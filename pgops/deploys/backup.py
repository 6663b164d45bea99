"""pgBackRest for database hosts with `pg_backup_host` and for the repository hosts they
name (repository-host mode), or for database hosts that keep their own repository
("local"). One call site for every role: pyinfra orders operations by their line here, so
each step runs on every host before the next (keys before trust)."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File, FindFiles
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from pgops.backup import backrest, pki, timers
from pgops.errors import ConfigError
from pgops.facts.system import BadCalendars, HasAesInstructions, HostResources
from pgops.operations import pgbackrest as ops
from pgops.settings import LOCAL_REPOSITORY, Settings
from pgops.settings.inventory import BACKUP_GROUP, DB_GROUP, all_settings

PG_HOME = "/var/lib/postgresql"


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
    is_local = is_db and mine.pg_backup_host == LOCAL_REPOSITORY
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
    for d in backrest.DIRS if is_repo or is_local else (backrest.SPOOL, backrest.LOG):
        files.directory(name=f"pgBackRest directory {d}", path=d, user=user, group=user, mode="750")
    files.directory(name="pgBackRest config directory", path=backrest.CONF_DIR, mode="755")
    ops.legacy_config_moved_aside(name="Debian's legacy /etc/pgbackrest.conf moved aside")
    if not is_local:
        ops.ssh_key(name="SSH key for pgBackRest", user=user, home=home)
        if is_repo:
            peers = [(n, PG_HOME, _names(n)) for n in sorted(served)]
        else:
            peers = [(mine.pg_backup_host, backrest.REPO_HOME, _names(mine.pg_backup_host))]
        ops.trust(name="SSH trust for pgBackRest", user=user, home=home, peers=peers)
    if not is_local and host.get_fact(HasAesInstructions):  # peers: set above when not local
        files.put(name="pgBackRest's SSH prefers AES-GCM (CPU has AES instructions)",
                  src=StringIO(backrest.ssh_client_conf(user, [n for p in peers for n in p[2]])),
                  dest=backrest.SSH_CLIENT_CONF, mode="644")
    else:
        files.file(name="No pgBackRest SSH cipher preference", path=backrest.SSH_CLIENT_CONF,
                   present=False)

    if is_repo:
        db_cpus = {n: host.inventory.get_host(n).get_fact(HostResources).cpus for n in served}
        content = backrest.repo_conf({n: (_address(n), s) for n, s in served.items()}, cpus, db_cpus)
    elif is_local:
        content = backrest.local_conf(host.name, mine, min(cpus, 2))
    else:
        content = backrest.db_conf(host.name, mine, _address(mine.pg_backup_host), min(cpus, 2))
    keeps = served if is_repo else {host.name: mine} if is_local else {}
    if keeps:
        files.put(name="Repository secrets (encryption passphrase, S3 keys)",
                  src=StringIO(backrest.secrets_conf(keeps)),
                  dest=backrest.SECRETS_CONF, user="root", group=user, mode="640")
    else:  # a repository host keeps them now
        files.file(name="No repository secrets here", path=backrest.SECRETS_CONF, present=False)
    files.file(name="Old passphrase file removed", path=backrest.OLD_CIPHER_CONF, present=False)
    conf = files.put(name="pgBackRest configuration", src=StringIO(content), dest=backrest.CONF,
                     user="root", group=user, mode="640")
    tls = [s for s in ([mine] if is_db and not is_local else served.values())
           if s.pg_backup_transport == "tls"]
    _tls_server(user, tls[0] if tls else None, conf)

    for n in sorted(keeps):
        ops.stanza(name=f"Stanza {backrest.stanza(n)}", stanza_name=backrest.stanza(n),
                   _sudo=True, _sudo_user=user)
    _timers({backrest.stanza(n): timers.wanted(s.pg_backup_timers) for n, s in keeps.items()}
            or {backrest.stanza(host.name): {}},
            user, drill_majors=sorted({s.pg_major for s in keeps.values()
                                       if s.pg_backup_timers and s.pg_backup_timers.drill}),
            install_binaries=is_repo)


TLS_UNIT = """# Managed by pgops: pgBackRest's TLS server (pg_backup_transport = "tls").
[Unit]
Description=pgBackRest TLS server
After=network-online.target
Wants=network-online.target

[Service]
User={user}
ExecStart=/usr/bin/pgbackrest server
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def _tls_server(user: str, s: Settings | None, conf) -> None:
    """pgBackRest's TLS server and this host's certificate from pgops's CA, or, when no host
    here uses TLS, neither (a server left from an earlier deploy is stopped and removed)."""
    unit = f"/etc/systemd/system/{backrest.TLS_SERVICE}"
    if s is None:
        if host.get_fact(File, path=unit):
            systemd.service(name="pgBackRest TLS server stopped (not used)",
                            service=backrest.TLS_SERVICE, running=False, enabled=False)
            files.file(name="pgBackRest TLS server unit removed", path=unit, present=False)
            systemd.daemon_reload(name="systemd reloaded (TLS server removed)")
        files.directory(name="No pgBackRest TLS files", path=backrest.TLS_DIR, present=False)
        return
    try:
        pem = pki.host_files(s.tls_dir, host.name, _names(host.name))
    except OSError as e:
        raise ConfigError([f"pg_backup_tls_dir: cannot keep pgops's CA in {s.tls_dir}: "
                           f"{e.strerror or e}"]) from e
    files.directory(name="pgBackRest TLS directory", path=backrest.TLS_DIR, mode="755")
    changed = [conf]
    for part, mode, owner in (("ca", "644", "root"), ("cert", "644", "root"), ("key", "600", user)):
        changed.append(files.put(name=f"pgBackRest TLS {part}", src=StringIO(pem[part]),
                                 dest=backrest.TLS_FILES[part], user=owner, group=owner, mode=mode))
    put = files.put(name="pgBackRest TLS server unit", src=StringIO(TLS_UNIT.format(user=user)),
                    dest=unit, mode="644")
    systemd.daemon_reload(name="systemd reloaded (TLS server unit changed)", _if=put.did_change)
    systemd.service(name="pgBackRest TLS server running", service=backrest.TLS_SERVICE,
                    running=True, enabled=True)
    systemd.service(name="pgBackRest TLS server restarted (its files changed)",
                    service=backrest.TLS_SERVICE, restarted=True, _if=any_changed(put, *changed))


def _timers(wanted: dict[str, dict[str, str]], user: str, drill_majors: list[int],
            install_binaries: bool) -> None:
    """systemd timers for the jobs asked for, per stanza (pg_backup_timers); timers and
    services no longer asked for are stopped and removed."""
    jobs = {j for w in wanted.values() for j in w}
    if jobs:  # checked while pyinfra prepares, so a refusal comes before any host changes
        bad = host.get_fact(BadCalendars, calendars=sorted({c for w in wanted.values()
                                                            for c in w.values()}))
        if bad:
            raise ConfigError([f"host {host.name}: pg_backup_timers: systemd refuses the "
                               f"calendar(s) {', '.join(map(repr, bad))} (see `man systemd.time`)"])
    present = {p.rsplit("/", 1)[1] for p in host.get_fact(
        FindFiles, path=timers.UNIT_DIR, maxdepth=1, fname="pgops-*") or []}
    for st, w in sorted(wanted.items()):
        for job in timers.JOBS:
            name = timers.timer_name(job, st)
            if job not in w and name in present:
                systemd.service(name=f"Timer {name} stopped (no longer configured)", service=name,
                                running=False, enabled=False)
                files.file(name=f"Timer {name} removed", path=f"{timers.UNIT_DIR}/{name}",
                           present=False)
    for job in timers.JOBS:
        if job not in jobs and timers.service_name(job) in present:
            files.file(name=f"Service {timers.service_name(job)} removed (no timer uses it)",
                       path=f"{timers.UNIT_DIR}/{timers.service_name(job)}", present=False)
    if not jobs:
        files.file(name="pgops-repo-job removed (no timers)", path=timers.SCRIPT, present=False)
        files.file(name="pgops-repo-job's rules removed (no timers)", path=timers.RULES, present=False)
        return
    if drill_majors and install_binaries:
        # Drills restore on this host: PostgreSQL binaries, but no cluster of its own.
        files.put(name="No main cluster on the repository host",
                  src=StringIO("# Managed by pgops: the repository host runs only drill copies.\n"
                               "create_main_cluster = false\n"),
                  dest="/etc/postgresql-common/createcluster.d/50-pgops-repo-host.conf",
                  create_remote_dir=True, mode="644")
        apt.packages(name="PostgreSQL binaries for drills",
                     packages=[p for m in drill_majors
                               for p in (f"postgresql-{m}", f"postgresql-{m}-pgvector")],
                     no_recommends=True)
    script = files.put(name="pgops-repo-job (the timers' job runner)", src=str(timers.SCRIPT_SOURCE),
                       dest=timers.SCRIPT, create_remote_dir=True, mode="755")
    rules = files.put(name="pgops-repo-job's rules (shared with pgops status)",
                      src=str(timers.RULES_SOURCE), dest=timers.RULES, mode="644")
    units = [script, rules]
    for job in sorted(jobs):
        units.append(files.put(name=f"Service {timers.service_name(job)}",
                               src=StringIO(timers.service(job, user)),
                               dest=f"{timers.UNIT_DIR}/{timers.service_name(job)}", mode="644"))
    for st, w in sorted(wanted.items()):
        for job, calendar in w.items():
            units.append(files.put(name=f"Timer {timers.timer_name(job, st)}",
                                   src=StringIO(timers.timer(job, st, calendar)),
                                   dest=f"{timers.UNIT_DIR}/{timers.timer_name(job, st)}", mode="644"))
    systemd.daemon_reload(name="systemd reloaded (pgops units changed)", _if=any_changed(*units))
    for st, w in sorted(wanted.items()):
        for job in w:
            systemd.service(name=f"Timer {timers.timer_name(job, st)} enabled",
                            service=timers.timer_name(job, st), running=True, enabled=True)
