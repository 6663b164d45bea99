"""The typed settings of one database host: pydantic models with field-level validation."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from pgops.settings.endpoint import POOLER_ROLE, Pooler, Proxy, pooler_of
from pgops.settings.ha import REPLICATOR, REWINDER, Ha
from pgops.settings.secrets import BACKUP_SECRET, S3_KEY, S3_KEY_SECRET, role_secret

#: PostgreSQL majors pgops knows how to deploy (pgvector packages exist for each).
SUPPORTED_MAJORS = range(13, 19)
#: What each Debian release packages itself; other majors need pg_apt_repository.
DISTRO_MAJORS = {"trixie": 17, "bookworm": 15, "13": 17, "12": 15}
#: Only these auth methods may appear over TCP: nothing `trust`, nothing without a secret.
TCP_METHODS = ("scram-sha-256", "cert", "reject")
#: pg_backup_host for a repository on the database host itself (no repository host).
LOCAL_REPOSITORY = "local"

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _identifier(v: str) -> str:
    if not _IDENT.match(v):
        raise ValueError(f"{v!r} is not a plain lower-case SQL identifier (a-z, 0-9, _)")
    return v


Ident = Annotated[str, AfterValidator(_identifier)]


def _network(v: str) -> str:
    try:
        return str(ipaddress.ip_network(v, strict=True))
    except ValueError as e:
        raise ValueError(f"{v!r} is not a valid network in CIDR form ({e})") from None


Network = Annotated[str, AfterValidator(_network)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(_Model):
    """A role pgops owns: created, altered to match (promoted and demoted), never dropped."""

    name: Ident
    login: bool = True
    #: Password from the secret PGOPS_ROLE_<NAME>_PASSWORD (env or secrets file).
    password: bool = True
    superuser: bool = False
    createdb: bool = False
    createrole: bool = False
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = Field(-1, ge=-1)
    member_of: tuple[Ident, ...] = ()

    @property
    def secret_name(self) -> str:
        return role_secret(self.name)


class Database(_Model):
    name: Ident
    owner: Ident
    encoding: str = "UTF8"
    locale: str = "C.UTF-8"
    extensions: tuple[Ident, ...] = ()


def _tls_name(v: str) -> str:
    try:
        return str(ipaddress.ip_address(v))  # one spelling: the certificate is compared by it
    except ValueError:
        pass
    if not re.fullmatch(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*", v):
        raise ValueError(f"{v!r} is not a host name or an IP address")
    return v


TlsName = Annotated[str, AfterValidator(_tls_name)]


class HbaRule(_Model):
    """One `hostssl` line: TLS always, never `trust` over TCP."""

    database: str = "all"
    user: str = "all"
    address: Network
    method: Literal[TCP_METHODS] = "scram-sha-256"  # type: ignore[valid-type]

    @field_validator("database", "user")
    @classmethod
    def _names(cls, v: str) -> str:
        for part in v.split(","):
            if part not in ("all", "sameuser", "replication") and not _IDENT.match(part):
                raise ValueError(f"{part!r} is not 'all' or a role/database name")
        return v


class AptRepository(_Model):
    """An extra apt repository for majors the distribution does not ship (e.g. PGDG)."""

    url: str
    suite: str  # e.g. "trixie-pgdg"
    components: str = "main"
    key_url: str | None = None  # ASCII-armoured signing key, fetched on the host
    key_file: Path | None = None  # or a local key file uploaded to the host


class Tuning(_Model):
    """Inputs of the pgtune-style computation; any result can be overridden in pg_settings."""

    workload: Literal["web", "oltp", "mixed", "dw"] = "web"
    max_connections: int = Field(100, ge=10, le=10000)
    disk: Literal["auto", "ssd", "hdd"] = "auto"


SettingValue = str | int | float | bool

_CALENDAR = re.compile(r"^[A-Za-z0-9*:./,~ -]{1,100}$")


def _calendar(v: str) -> str:
    if not _CALENDAR.match(v) or v.startswith("-"):
        raise ValueError(f"{v!r} is not a systemd OnCalendar= expression (e.g. 'Sun 01:00', "
                         "'hourly', '*:0/5')")
    return v


Calendar = Annotated[str, AfterValidator(_calendar)]


class BackupTimers(_Model):
    """systemd timers on the repository host, as OnCalendar= expressions (null: no timer).
    The alternative to `pgops schedule run`: the jobs run on the repository host itself,
    drills included (restored there, so the database host carries no drill load)."""

    full: Calendar | None = "Sun *-*-* 01:00:00"
    diff: Calendar | None = "Mon..Sat *-*-* 01:00:00"
    incr: Calendar | None = "hourly"
    drill: Calendar | None = "*-*-* 04:30:00"
    status: Calendar | None = "*:0/5"


def _check_backrest_option(k: str, value: Any) -> None:
    """One pgbackrest option: a plain name, no secret, and a retention pgops can honour."""
    if not re.match(r"^[a-z0-9][a-z0-9-]*$", k):
        raise ValueError(f"{k!r} is not a pgBackRest option name")
    if k.endswith("cipher-pass") or re.search(r"-s3-(key|key-secret|token)$", k):
        raise ValueError(f"{k} is a secret: set it in the environment or secrets file "
                         f"({BACKUP_SECRET}, {S3_KEY}, {S3_KEY_SECRET}), not in the "
                         "inventory")
    if re.fullmatch(r"repo\d+-retention-archive(-type)?", k):
        raise ValueError(f"{k}: pgops keeps the WAL of every retained backup so that "
                         "each one can be restored to a point in time; set "
                         "repo1-retention-full/-diff instead")
    if re.fullmatch(r"repo\d+-retention-(full|diff)", k) and not _whole_number_at_least_1(value):
        raise ValueError(f"{k}: {value!r} must be a whole number of at least 1 (the newest "
                         "backup is never expired)")


def _whole_number_at_least_1(value: Any) -> bool:
    """A retention count: an int (not a bool) of at least 1, so the newest backup always stays."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_repository_type(v: dict[str, Any], m: re.Match[str]) -> None:
    """repoN-type (matched as m) is one pgops deploys, and an s3 one has what S3 needs to connect."""
    if v[m[0]] not in ("posix", "s3"):
        raise ValueError(f"{m[0]}: {v[m[0]]!r}: pgops deploys posix and s3 repositories")
    if v[m[0]] == "s3":
        missing = [f"repo{m[1]}-s3-{o}" for o in ("bucket", "endpoint", "region")
                   if f"repo{m[1]}-s3-{o}" not in v]
        if missing:
            raise ValueError(f"{m[0]}: s3 needs {', '.join(missing)}")


class Settings(_Model):
    """Everything pgops deploys to one database host. Keys are the inventory's names."""

    pg_major: int = 17
    pg_cluster: str = "main"
    pg_port: int = Field(5432, ge=1, le=65535)
    pg_listen_addresses: tuple[str, ...] = ("*",)
    #: Create the cluster with data checksums: PostgreSQL then verifies every page it reads,
    #: and pgBackRest every page it backs up. A cluster that already exists keeps what it has
    #: (turning them on needs it stopped: pg_checksums --enable).
    pg_data_checksums: bool = True
    pg_apt_repository: AptRepository | None = None
    #: The server's certificate and key, from a CA of your own (give pg_tls_ca_file with
    #: them, so clients can verify the server). Unset: pgops issues them from its own
    #: PostgreSQL CA, kept on this machine (Settings.server_pki_dir).
    pg_tls_cert_file: Path | None = None
    pg_tls_key_file: Path | None = None
    pg_tls_ca_file: Path | None = None
    #: More names the server certificate carries, for clients that dial the server by a name
    #: pgops does not know (a DNS name, a virtual IP). The inventory name and address are in
    #: it already, and for a cluster member those of every member and proxy host.
    pg_tls_names: tuple[TlsName, ...] = ()
    pg_tuning: Tuning = Tuning()
    pg_settings: dict[str, SettingValue] = {}
    pg_hba_rules: tuple[HbaRule, ...] = ()
    pg_hba_extra: tuple[str, ...] = ()
    pg_roles: tuple[Role, ...] = ()
    pg_databases: tuple[Database, ...] = ()
    pg_app_database: Ident | None = None
    #: The role that owns the application schema and runs migrations.
    pg_migration_role: Ident = "migrator"
    pg_secrets_file: Path | None = None
    #: The pgBackRest repository host (an inventory host in backup_servers), or "local": the
    #: repository is kept by the database host itself (on its disk, or in S3 through
    #: `pgbackrest` options); None: no backups.
    pg_backup_host: str | None = None
    #: How the repository host and this database host reach each other: "ssh" (pgBackRest
    #: over SSH, keys set up by pgops) or "tls" (pgBackRest's own TLS server on both, with
    #: certificates from pgops's CA in pg_backup_tls_dir; bench/backup.py measured it 1.25x
    #: faster than SSH, with 14% less CPU).
    pg_backup_transport: Literal["ssh", "tls"] = "ssh"
    #: Where pgops keeps that CA and the hosts' keys on this machine (outside git); default:
    #: beside pg_secrets_file, else ~/.local/state/pgops.
    pg_backup_tls_dir: Path | None = None
    #: pgBackRest options by their own names (as in pgbackrest.conf), over pgops's defaults.
    pgbackrest: dict[str, SettingValue] = {}
    #: systemd timers for backups, drills and status on the repository host; None: none
    #: (run `pgops schedule run` instead).
    pg_backup_timers: BackupTimers | None = None
    #: The Patroni cluster this host belongs to: hosts sharing it form one cluster (its name
    #: is Patroni's scope), on the etcd of the inventory's etcd_servers. None: a single host,
    #: run by Debian's unit as before.
    pg_ha_cluster: Ident | None = None
    #: The cluster's failover timing and synchronous replication (pgops.settings.ha.Ha).
    pg_ha: Ha = Ha()
    #: PgBouncer on this host (pgops.settings.endpoint.Pooler): unset = on for a cluster
    #: member, off for a single host; True, False or its settings.
    pg_pooler: Pooler | bool | None = None
    #: HAProxy on a cluster's members: the read-write and read-only ports (Proxy).
    pg_proxy: Proxy = Proxy()
    #: Resolved secrets (never from inventory): filled by load_settings.
    secrets: dict[str, SecretStr] = {}

    @field_validator("pg_major")
    @classmethod
    def _major(cls, v: int) -> int:
        if v not in SUPPORTED_MAJORS:
            raise ValueError(
                f"{v} is not a supported PostgreSQL major "
                f"({SUPPORTED_MAJORS.start}-{SUPPORTED_MAJORS.stop - 1})"
            )
        return v

    @field_validator("pgbackrest")
    @classmethod
    def _backrest_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k, value in v.items():
            _check_backrest_option(k, value)
        for m in filter(None, (re.fullmatch(r"repo(\d+)-type", k) for k in v)):
            _check_repository_type(v, m)
        return v

    @field_validator("pg_settings")
    @classmethod
    def _setting_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k in v:
            if not re.match(r"^[a-z_][a-z0-9_.]*$", k):
                raise ValueError(f"{k!r} is not a PostgreSQL setting name")
        return v

    @model_validator(mode="after")
    def _pooler_reaches_postgres(self) -> Settings:
        local = {"*", "0.0.0.0", "::", "127.0.0.1", "localhost"}
        if self.pooler and not local & set(self.pg_listen_addresses):
            raise ValueError("pg_pooler: PgBouncer reaches Postgres on 127.0.0.1, which "
                             f"pg_listen_addresses {list(self.pg_listen_addresses)} leaves out "
                             "(add '127.0.0.1')")
        return self

    @property
    def pooler(self) -> Pooler | None:
        """PgBouncer's settings on this host, None when it runs none."""
        return pooler_of(self.pg_pooler, bool(self.pg_ha_cluster))

    @property
    def roles(self) -> tuple[Role, ...]:
        """pg_roles, and the roles pgops's parts need (unless defined there): Patroni's
        for a cluster member, PgBouncer's lookup role where it runs."""
        extra = []
        if self.pg_ha_cluster:
            extra += [Role(name=REPLICATOR, replication=True, connection_limit=10),
                      Role(name=REWINDER, connection_limit=5)]
        if self.pooler:
            extra.append(Role(name=POOLER_ROLE, connection_limit=10))
        own = {r.name for r in self.pg_roles}
        return (*self.pg_roles, *(r for r in extra if r.name not in own))

    def role(self, name: str) -> Role:
        return next(r for r in self.roles if r.name == name)

    def password(self, role: Role) -> str:
        return self.secrets[role.secret_name].get_secret_value()

    @property
    def cipher_pass(self) -> str:
        return self.secrets[BACKUP_SECRET].get_secret_value()

    @property
    def state_dir(self) -> Path:
        """Where pgops keeps what it generates for these hosts on this machine (outside git)."""
        return (self.pg_secrets_file.parent if self.pg_secrets_file
                else Path.home() / ".local" / "state" / "pgops")

    @property
    def tls_dir(self) -> Path:
        return self.pg_backup_tls_dir or self.state_dir / "pgbackrest-pki"

    @property
    def server_pki_dir(self) -> Path:
        """pgops's PostgreSQL CA (its clients verify the servers with it) and the servers' keys."""
        return self.state_dir / "postgres-pki"

    @property
    def server_ca_file(self) -> Path:
        """The CA that signed the servers' certificates, on this machine: what clients give as
        sslrootcert with sslmode=verify-full."""
        return self.pg_tls_ca_file or self.server_pki_dir / "ca.crt"

    @property
    def client_tls(self) -> dict[str, str]:
        """How pgops's own clients connect: TLS, the server checked against its CA and the
        host name dialed (sslmode=verify-full stops a man in the middle; require does not)."""
        return {"sslmode": "verify-full", "sslrootcert": str(self.server_ca_file)}

    @property
    def ha_pki_dir(self) -> Path:
        """The CA of clusters' etcd and Patroni REST API, and their hosts' keys."""
        return self.state_dir / "cluster-pki"
