"""pgBackRest for database hosts with `pg_backup_host` and for the repository hosts they
name (repository-host mode), or for database hosts that keep their own repository
("local"). What each host gets is decided in pgops.backup.roles; here, the operations, gated
by that role. One call site for every role: pyinfra orders operations by their line here, so
each step runs on every host before the next (keys before trust)."""

from __future__ import annotations

from collections.abc import Mapping
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, FindFiles
from pyinfra.operations import apt, systemd
from pyinfra.operations.util import any_changed

from pgops import pki
from pgops.backup import backrest, roles, timers
from pgops.deploys.packages import lists_stale_for
from pgops.errors import ConfigError
from pgops.facts.system import BadCalendars, HasAesInstructions, HostResources
from pgops.operations import accounts, cache, files, units
from pgops.operations import apt as apt_ops
from pgops.operations import pgbackrest as ops
from pgops.operations.units import unit_facts
from pgops.settings import Settings


def _cores(names: list[str]) -> dict[str, int]:
    """The named hosts' CPU counts (HostResources is read on those hosts only, at once)."""
    hosts = {n: host.inventory.get_host(n) for n in names}
    cache.read_at_once([(h, HostResources, {}) for h in hosts.values()])
    return {n: cache.fact(HostResources, on=h).cpus for n, h in hosts.items()}


@deploy("pgBackRest")
def backups(dbs: Mapping[str, Settings], addresses: Mapping[str, str]) -> None:
    """+ dbs: every database host's settings; addresses: every host's address, by name."""
    cores = _cores(roles.cores_needed(host.name, host.groups, dbs))
    role = roles.backup_role(host.name, host.groups, dbs, addresses, cores)
    if role is None:
        return
    if lists_stale_for(roles.PACKAGES):
        apt.update(name="Update apt lists (pgBackRest missing)")
    apt_ops.packages(name="Install pgBackRest", packages=list(roles.PACKAGES), no_recommends=True)
    if role.repo:
        accounts.system_user(name="Repository user", user=role.user, home=role.home, shell="/bin/sh")
    for d in role.dirs:
        files.directory(name=f"pgBackRest directory {d}", path=d, user=role.user, group=role.user,
                        mode="750")
    files.directory(name="pgBackRest config directory", path=backrest.CONF_DIR, mode="755")
    ops.legacy_config_moved_aside(name="Debian's legacy /etc/pgbackrest.conf moved aside")
    if role.peers:
        ops.ssh_key(name="SSH key for pgBackRest", user=role.user, home=role.home)
        ops.trust(name="SSH trust for pgBackRest", user=role.user, home=role.home,
                  peers=list(role.peers))
    if role.peers and cache.fact(HasAesInstructions):
        files.put(name="pgBackRest's SSH prefers AES-GCM (CPU has AES instructions)",
                  src=StringIO(backrest.ssh_client_conf(role.user, role.ssh_names)),
                  dest=backrest.SSH_CLIENT_CONF, mode="644")
    else:
        files.file_absent(name="No pgBackRest SSH cipher preference", path=backrest.SSH_CLIENT_CONF)

    if role.secrets:
        files.put(name="Repository secrets (encryption passphrase, S3 keys)",
                  src=StringIO(backrest.secrets_conf(dict(role.secrets))),
                  dest=backrest.SECRETS_CONF, user="root", group=role.user, mode="640")
    else:  # a repository host keeps them now
        files.file_absent(name="No repository secrets here", path=backrest.SECRETS_CONF)
    files.file_absent(name="Old passphrase file removed", path=backrest.OLD_CIPHER_CONF)
    conf = files.put(name="pgBackRest configuration", src=StringIO(role.config.render()),
                     dest=backrest.CONF, user="root", group=role.user, mode="640")
    # The units this host runs, read in one command (each is a no-op on a re-deploy).
    cache.read_together(unit_facts([*([backrest.TLS_SERVICE] if role.tls else []),
                                    *(t.unit for t in role.timer_units)]))
    _tls_server(role, conf)

    for st in role.stanzas:
        ops.stanza(name=f"Stanza {st}", stanza_name=st, _sudo=True, _sudo_user=role.user)
    _timers(role)


def _tls_server(role: roles.BackupRole, conf) -> None:
    """pgBackRest's TLS server and this host's certificate from pgops's CA, or, when no host
    here uses TLS, neither (a server left from an earlier deploy is stopped and removed)."""
    if role.tls is None:
        if host.get_fact(File, path=roles.TLS_UNIT):
            units.service(name="pgBackRest TLS server stopped (not used)",
                          service=backrest.TLS_SERVICE, running=False, enabled=False)
            files.file_absent(name="pgBackRest TLS server unit removed", path=roles.TLS_UNIT)
            systemd.daemon_reload(name="systemd reloaded (TLS server removed)")
        files.directory(name="No pgBackRest TLS files", path=backrest.TLS_DIR, present=False)
        return
    try:
        pem = pki.host_files(role.tls.tls_dir, host.name, list(role.names))
    except OSError as e:
        raise ConfigError([f"pg_backup_tls_dir: cannot keep pgops's CA in {role.tls.tls_dir}: "
                           f"{e.strerror or e}"]) from e
    files.directory(name="pgBackRest TLS directory", path=backrest.TLS_DIR, mode="755")
    changed = [conf]
    for part, mode, owner in (("ca", "644", "root"), ("cert", "644", "root"), ("key", "600", role.user)):
        changed.append(files.put(name=f"pgBackRest TLS {part}", src=StringIO(pem[part]),
                                 dest=backrest.TLS_FILES[part], user=owner, group=owner, mode=mode))
    put = files.put(name="pgBackRest TLS server unit", src=StringIO(roles.tls_unit(role.user)),
                    dest=roles.TLS_UNIT, mode="644")
    systemd.daemon_reload(name="systemd reloaded (TLS server unit changed)", _if=put.did_change)
    units.service(name="pgBackRest TLS server running", service=backrest.TLS_SERVICE,
                  running=True, enabled=True)
    units.service(name="pgBackRest TLS server restarted (its files changed)",
                  service=backrest.TLS_SERVICE, restarted=True, _if=any_changed(put, *changed))


def _timers(role: roles.BackupRole) -> None:
    """systemd timers for the jobs asked for, per stanza (pg_backup_timers); timers and
    services no longer asked for are stopped and removed."""
    if role.jobs:  # checked while pyinfra prepares, so a refusal comes before any host changes
        bad = host.get_fact(BadCalendars, calendars=role.calendars)
        if bad:
            raise ConfigError([f"host {host.name}: pg_backup_timers: systemd refuses the "
                               f"calendar(s) {', '.join(map(repr, bad))} (see `man systemd.time`)"])
    present = roles.unit_names(host.get_fact(FindFiles, path=timers.UNIT_DIR, maxdepth=1,
                                             fname="pgops-*"))
    for name in roles.stale_timers(role.timers, present):
        units.service(name=f"Timer {name} stopped (no longer configured)", service=name,
                      running=False, enabled=False)
        files.file_absent(name=f"Timer {name} removed", path=f"{timers.UNIT_DIR}/{name}")
    for name in roles.stale_services(role.jobs, present):
        files.file_absent(name=f"Service {name} removed (no timer uses it)",
                          path=f"{timers.UNIT_DIR}/{name}")
    if not role.jobs:
        files.file_absent(name="pgops-repo-job removed (no timers)", path=timers.SCRIPT)
        files.file_absent(name="pgops-repo-job's rules removed (no timers)", path=timers.RULES)
        return
    if role.drill_packages:  # drills restore on this host: PostgreSQL binaries, no cluster
        files.put(name="No main cluster on the repository host", src=StringIO(roles.NO_MAIN_CLUSTER),
                  dest=roles.NO_MAIN_CLUSTER_CONF, create_remote_dir=True, mode="644")
        apt_ops.packages(name="PostgreSQL binaries for drills", packages=role.drill_packages,
                     no_recommends=True)
    # The rules first: an upgrade never runs a new job runner against an old rules.py.
    rules_file = files.put(name="pgops-repo-job's rules (shared with pgops status)",
                           src=str(timers.RULES_SOURCE), dest=timers.RULES, create_remote_dir=True,
                           mode="644")
    script = files.put(name="pgops-repo-job (the timers' job runner)", src=str(timers.SCRIPT_SOURCE),
                       dest=timers.SCRIPT, mode="755")
    written = [rules_file, script]
    for job in role.jobs:
        written.append(files.put(name=f"Service {timers.service_name(job)}",
                               src=StringIO(timers.service(job, role.user)),
                               dest=f"{timers.UNIT_DIR}/{timers.service_name(job)}", mode="644"))
    for t in role.timer_units:
        written.append(files.put(name=f"Timer {t.unit}",
                               src=StringIO(timers.timer(t.job, t.stanza, t.calendar)),
                               dest=f"{timers.UNIT_DIR}/{t.unit}", mode="644"))
    systemd.daemon_reload(name="systemd reloaded (pgops units changed)", _if=any_changed(*written))
    for t in role.timer_units:
        units.service(name=f"Timer {t.unit} enabled", service=t.unit, running=True, enabled=True)
