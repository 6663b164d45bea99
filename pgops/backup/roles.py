"""Each host's part in pgBackRest, decided from the inventory alone (pure): whether it is a
database host with backups, one that keeps its own repository ("local"), or a repository
host serving database hosts; and from that, everything the backup deploy puts on it (user,
directories, SSH peers, which configuration with what inputs, secrets, TLS, stanzas, timers).

The deploy reads the host's state (facts) and acts; the decisions are here, on values: the
database hosts' Settings, the hosts' addresses and their CPU counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from pgops.backup import backrest, rules, timers
from pgops.server.cluster import CREATECLUSTER_D, PG_HOME
from pgops.settings import LOCAL_REPOSITORY, Settings
from pgops.settings.inventory import BACKUP_GROUP, DB_GROUP

#: What every host with a backup role installs.
PACKAGES = ("pgbackrest", "openssh-client")

#: The systemd unit running `pgbackrest server` (pg_backup_transport = "tls").
TLS_UNIT = f"/etc/systemd/system/{backrest.TLS_SERVICE}"
_TLS_UNIT_TEXT = """# Managed by pgops: pgBackRest's TLS server (pg_backup_transport = "tls").
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

#: postgresql-common's settings on a repository host that runs drills: PostgreSQL's binaries
#: without a cluster of its own.
NO_MAIN_CLUSTER_CONF = f"{CREATECLUSTER_D}/50-pgops-repo-host.conf"
NO_MAIN_CLUSTER = ("# Managed by pgops: the repository host runs only drill copies.\n"
                   "create_main_cluster = false\n")


def tls_unit(user: str) -> str:
    """The TLS server's systemd unit, running as `user`."""
    return _TLS_UNIT_TEXT.format(user=user)


def drill_packages(majors: Iterable[int]) -> list[str]:
    """PostgreSQL (and pgvector) of each major a drill restores."""
    return [p for m in majors for p in (f"postgresql-{m}", f"postgresql-{m}-pgvector")]


class Peer(NamedTuple):
    """A host that this one trusts over SSH for pgBackRest, and is trusted by."""

    name: str                 # its inventory name
    home: str                 # the home of its pgBackRest user (where its key is)
    names: list[str]          # what it is reached by: inventory name and address


class Timer(NamedTuple):
    """One systemd timer: a job for a stanza, on a calendar."""

    stanza: str
    job: str
    calendar: str

    @property
    def unit(self) -> str:
        return timers.timer_name(self.job, self.stanza)


@dataclass(frozen=True)
class RepoConfig:
    """The repository host's pgbackrest.conf: a section per database host it serves."""

    dbs: Mapping[str, tuple[str, Settings]]   # name -> (its address, its settings)
    process_max: int                          # the repository host's cores
    db_cpus: Mapping[str, int]                # name -> its cores

    def render(self) -> str:
        return backrest.repo_conf(dict(self.dbs), self.process_max, dict(self.db_cpus))


@dataclass(frozen=True)
class LocalConfig:
    """A database host that keeps its own repository."""

    name: str
    settings: Settings
    process_max: int

    def render(self) -> str:
        return backrest.local_conf(self.name, self.settings, self.process_max)


@dataclass(frozen=True)
class DbConfig:
    """A database host whose repository is on a repository host."""

    name: str
    settings: Settings
    repo_address: str
    process_max: int

    def render(self) -> str:
        return backrest.db_conf(self.name, self.settings, self.repo_address, self.process_max)


@dataclass(frozen=True)
class BackupRole:
    """What the backup deploy puts on one host (a host without a role gets nothing)."""

    name: str
    db: bool                 # a database host with backups (pg_backup_host set)
    local: bool              # ... that keeps its own repository
    repo: bool               # a repository host serving database hosts
    user: str                # pgBackRest's user here, and its home
    home: str
    dirs: tuple[str, ...]
    peers: tuple[Peer, ...]  # SSH peers; none for a local repository
    config: RepoConfig | LocalConfig | DbConfig
    #: The database hosts whose repository secrets (passphrase, S3 keys) this host keeps,
    #: and whose stanzas it creates; none on a database host with a repository host.
    secrets: Mapping[str, Settings]
    stanzas: tuple[str, ...]
    tls: Settings | None     # whose pg_backup_tls_dir gives the TLS files; None: no TLS here
    names: tuple[str, ...]   # this host's names, for its TLS certificate
    #: stanza -> job -> calendar; a database host with a repository host has its own stanza
    #: with no timers (timers left from an earlier deploy are removed).
    timers: Mapping[str, Mapping[str, str]]
    drill_majors: tuple[int, ...]
    install_binaries: bool   # PostgreSQL's binaries for drills (a repository host has none)

    @property
    def ssh_names(self) -> list[str]:
        """Every name of every SSH peer (the ssh_config Match for AES-GCM)."""
        return [n for p in self.peers for n in p.names]

    @property
    def jobs(self) -> list[str]:
        """The jobs some stanza has a timer for (a template service each)."""
        return sorted({j for w in self.timers.values() for j in w})

    @property
    def calendars(self) -> list[str]:
        return sorted({c for w in self.timers.values() for c in w.values()})

    @property
    def timer_units(self) -> list[Timer]:
        """Every timer, by stanza then in the order of rules.JOBS."""
        return [Timer(st, job, calendar) for st, w in sorted(self.timers.items())
                for job, calendar in w.items()]

    @property
    def drill_packages(self) -> list[str]:
        """PostgreSQL's packages for drills here: on a repository host, when it has drills."""
        return drill_packages(self.drill_majors) if self.install_binaries else []


@dataclass(frozen=True)
class _Part:
    mine: Settings | None          # this host's settings, if it is a database host
    served: dict[str, Settings]    # the database hosts naming this host as pg_backup_host
    db: bool
    local: bool
    repo: bool


def _part(name: str, groups: Iterable[str], dbs: Mapping[str, Settings]) -> _Part:
    groups = set(groups)
    mine = dbs.get(name) if DB_GROUP in groups else None
    db = bool(mine and mine.pg_backup_host)
    served = {n: s for n, s in dbs.items() if s.pg_backup_host == name}
    return _Part(mine, served, db, db and mine is not None and mine.pg_backup_host == LOCAL_REPOSITORY,
                 BACKUP_GROUP in groups and bool(served))


def cores_needed(name: str, groups: Iterable[str], dbs: Mapping[str, Settings]) -> list[str]:
    """The hosts whose CPU counts `backup_role` needs: this host's, if it has a role, and
    those of the database hosts it serves as their repository host."""
    p = _part(name, groups, dbs)
    if not (p.db or p.repo):
        return []
    return list(dict.fromkeys([name, *p.served])) if p.repo else [name]


def host_names(name: str, addresses: Mapping[str, str]) -> tuple[str, ...]:
    """A host's inventory name and address, sorted, once each."""
    return tuple(sorted({name, addresses[name]}))


def _peers(p: _Part, addresses: Mapping[str, str]) -> tuple[Peer, ...]:
    if p.local:
        return ()
    if p.repo:
        return tuple(Peer(n, PG_HOME, list(host_names(n, addresses))) for n in sorted(p.served))
    assert p.mine is not None and p.mine.pg_backup_host  # a database host with a repository host
    repo = p.mine.pg_backup_host
    return (Peer(repo, rules.REPO_HOME, list(host_names(repo, addresses))),)


def _config(name: str, p: _Part, addresses: Mapping[str, str],
            cpus: Mapping[str, int]) -> RepoConfig | LocalConfig | DbConfig:
    if p.repo:
        return RepoConfig({n: (addresses[n], s) for n, s in p.served.items()}, cpus[name],
                          {n: cpus[n] for n in p.served})
    assert p.mine is not None and p.mine.pg_backup_host  # a database host with backups
    if p.local:
        return LocalConfig(name, p.mine, min(cpus[name], 2))
    return DbConfig(name, p.mine, addresses[p.mine.pg_backup_host], min(cpus[name], 2))


def _keeps(name: str, p: _Part) -> dict[str, Settings]:
    """The database hosts whose secrets and stanzas this host keeps."""
    if p.repo:
        return p.served
    return {name: p.mine} if p.local and p.mine else {}


def _timers(name: str, keeps: Mapping[str, Settings]) -> dict[str, dict[str, str]]:
    """stanza -> job -> calendar; with no stanza kept here, this host's name with none."""
    return ({st: timers.wanted(keeps[ms[0]].pg_backup_timers)
             for st, ms in backrest.by_stanza(keeps).items()}
            or {name: {}})


def _drill_majors(keeps: Mapping[str, Settings]) -> tuple[int, ...]:
    return tuple(sorted({s.pg_major for s in keeps.values()
                         if s.pg_backup_timers and s.pg_backup_timers.drill}))


def _tls(p: _Part) -> Settings | None:
    """The first database host here (this one, or else those served) using TLS."""
    candidates = [p.mine] if p.db and not p.local and p.mine else list(p.served.values())
    return next((s for s in candidates if s.pg_backup_transport == "tls"), None)


def backup_role(name: str, groups: Iterable[str], dbs: Mapping[str, Settings],
                addresses: Mapping[str, str], cpus: Mapping[str, int]) -> BackupRole | None:
    """This host's backup role, or None when it has none.

    + name, groups: the host's inventory name and groups
    + dbs: every database host's settings (inventory order)
    + addresses: inventory name -> where other hosts reach it (its ssh_hostname, else its name)
    + cpus: inventory name -> cores, for the hosts `cores_needed` names
    """
    p = _part(name, groups, dbs)
    if not (p.db or p.repo):
        return None
    keeps = _keeps(name, p)
    user, home = (backrest.REPO_USER, rules.REPO_HOME) if p.repo else ("postgres", PG_HOME)
    return BackupRole(
        name=name, db=p.db, local=p.local, repo=p.repo, user=user, home=home,
        dirs=backrest.DIRS if p.repo or p.local else (backrest.SPOOL, backrest.LOG),
        peers=_peers(p, addresses), config=_config(name, p, addresses, cpus),
        secrets=keeps, stanzas=tuple(sorted(backrest.by_stanza(keeps))),
        tls=_tls(p), names=host_names(name, addresses),
        timers=_timers(name, keeps), drill_majors=_drill_majors(keeps), install_binaries=p.repo,
    )


def unit_names(paths: Iterable[str] | None) -> set[str]:
    """File names from a listing of full paths (FindFiles)."""
    return {path.rsplit("/", 1)[1] for path in paths or []}


def stale_timers(wanted: Mapping[str, Mapping[str, str]], present: set[str]) -> list[str]:
    """Timers present for a stanza here whose job it no longer asks for."""
    return [timers.timer_name(job, st) for st, w in sorted(wanted.items()) for job in rules.JOBS
            if job not in w and timers.timer_name(job, st) in present]


def stale_services(jobs: Iterable[str], present: set[str]) -> list[str]:
    """Template services present that no timer here uses any more."""
    jobs = set(jobs)
    return [timers.service_name(job) for job in rules.JOBS
            if job not in jobs and timers.service_name(job) in present]
