"""The one settings model: built from inventory data (plus secrets), validated before any
host is touched, every problem reported at once with the file, host and field it came from."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from pgops.errors import ConfigError

#: PostgreSQL majors pgops knows how to deploy (pgvector packages exist for each).
SUPPORTED_MAJORS = range(13, 19)
#: What each Debian release packages itself; other majors need pg_apt_repository.
DISTRO_MAJORS = {"trixie": 17, "bookworm": 15, "13": 17, "12": 15}
#: Only these auth methods may appear over TCP: nothing `trust`, nothing without a secret.
TCP_METHODS = ("scram-sha-256", "cert", "reject")

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
        return f"PGOPS_ROLE_{self.name.upper()}_PASSWORD"


class Database(_Model):
    name: Ident
    owner: Ident
    encoding: str = "UTF8"
    locale: str = "C.UTF-8"
    extensions: tuple[Ident, ...] = ()


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
    pg_tls_cert_file: Path | None = None
    pg_tls_key_file: Path | None = None
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
        for k in v:
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
            if re.fullmatch(r"repo\d+-retention-(full|diff)", k) and not (
                    isinstance(v[k], int) and not isinstance(v[k], bool) and v[k] >= 1):
                raise ValueError(f"{k}: {v[k]!r} must be a whole number of at least 1 (the newest "
                                 "backup is never expired)")
        for m in filter(None, (re.fullmatch(r"repo(\d+)-type", k) for k in v)):
            if v[m[0]] not in ("posix", "s3"):
                raise ValueError(f"{m[0]}: {v[m[0]]!r}: pgops deploys posix and s3 repositories")
            if v[m[0]] == "s3":
                missing = [f"repo{m[1]}-s3-{o}" for o in ("bucket", "endpoint", "region")
                           if f"repo{m[1]}-s3-{o}" not in v]
                if missing:
                    raise ValueError(f"{m[0]}: s3 needs {', '.join(missing)}")
        return v

    @field_validator("pg_settings")
    @classmethod
    def _setting_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k in v:
            if not re.match(r"^[a-z_][a-z0-9_.]*$", k):
                raise ValueError(f"{k!r} is not a PostgreSQL setting name")
        return v

    def role(self, name: str) -> Role:
        return next(r for r in self.pg_roles if r.name == name)

    def password(self, role: Role) -> str:
        return self.secrets[role.secret_name].get_secret_value()

    @property
    def cipher_pass(self) -> str:
        return self.secrets[BACKUP_SECRET].get_secret_value()

    @property
    def tls_dir(self) -> Path:
        if self.pg_backup_tls_dir:
            return self.pg_backup_tls_dir
        base = (self.pg_secrets_file.parent if self.pg_secrets_file
                else Path.home() / ".local" / "state" / "pgops")
        return base / "pgbackrest-pki"


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def reference_problems(raw: dict[str, Any]) -> list[str]:
    """Cross-references between sections, checked on raw data so that they are reported
    together with field errors (all problems at once)."""
    problems = []
    role_list = [r for r in raw.get("pg_roles") or () if _get(r, "name")]
    db_list = [d for d in raw.get("pg_databases") or () if _get(d, "name")]
    roles = {_get(r, "name") for r in role_list}
    dbs = {_get(d, "name") for d in db_list}
    for i, r in enumerate(role_list):
        for m in _get(r, "member_of", ()) or ():
            if m not in roles:
                problems.append(f"pg_roles.{i}.member_of: role {m!r} is not defined in pg_roles")
    for i, d in enumerate(db_list):
        owner = _get(d, "owner")
        if owner and owner not in roles and owner != "postgres":
            problems.append(f"pg_databases.{i}.owner: role {owner!r} is not defined in pg_roles")
    for i, rule in enumerate(raw.get("pg_hba_rules") or ()):
        for part in str(_get(rule, "database", "all")).split(","):
            if part not in ("all", "sameuser", "replication") and part not in dbs:
                problems.append(
                    f"pg_hba_rules.{i}.database: database {part!r} is not defined in pg_databases"
                )
        for part in str(_get(rule, "user", "all")).split(","):
            if part != "all" and part not in roles:
                problems.append(f"pg_hba_rules.{i}.user: role {part!r} is not defined in pg_roles")
    app_db = raw.get("pg_app_database")
    if app_db and app_db not in dbs:
        problems.append(f"pg_app_database: database {app_db!r} is not defined in pg_databases")
    mig_role = raw.get("pg_migration_role", "migrator")
    if app_db and mig_role not in roles:
        problems.append(f"pg_migration_role: role {mig_role!r} is not defined in pg_roles")
    if len(roles) != len(role_list):
        problems.append("pg_roles: a role name appears twice")
    if len(dbs) != len(db_list):
        problems.append("pg_databases: a database name appears twice")
    if raw.get("pg_backup_transport") == "tls" and raw.get("pg_backup_host") in (None, LOCAL_REPOSITORY):
        problems.append("pg_backup_transport: 'tls' needs a repository host in pg_backup_host "
                        "(a local repository has no transport)")
    cert, key = raw.get("pg_tls_cert_file"), raw.get("pg_tls_key_file")
    if bool(cert) != bool(key):
        problems.append("pg_tls_cert_file: give pg_tls_cert_file and pg_tls_key_file together")
    for name, f in (("pg_tls_cert_file", cert), ("pg_tls_key_file", key)):
        if f and not Path(f).is_file():
            problems.append(f"{name}: {f} does not exist on this machine")
    return problems


def read_secrets_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (dotenv style: comments, `export`, quotes); the one parser for
    secrets files, .env files and the lab's generated secrets. Raises OSError if unreadable."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.removeprefix("export ").split("=", 1)
        out[k.strip()] = v.strip().strip("'\"")
    return out


def _format_errors(e: ValidationError) -> list[str]:
    out = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (typo?)"
        out.append(f"{loc}: {msg}" if loc else msg)
    return out


def load_settings(host: str, data: dict[str, Any], sources: dict[str, str] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Build and validate one host's Settings from its merged inventory data.

    Only `pg_*` keys are read (the rest is pyinfra's: ssh_*, etc.); an unknown `pg_*` key is
    an error. Secrets come from the environment first, then `pg_secrets_file`.
    `sources` maps a key to the file it came from, so that each problem names its file.
    Raises ConfigError listing every problem, each prefixed with file and host.
    """
    environ = os.environ if environ is None else environ
    fields = set(Settings.model_fields) - {"secrets"}
    raw = {k: v for k, v in data.items() if k.startswith("pg_") or k == "pgbackrest"}
    problems = [f"{k}: unknown setting (typo?)" for k in raw if k not in fields]
    raw = {k: v for k, v in raw.items() if k in fields}
    problems += reference_problems(raw)
    settings = None
    try:
        settings = Settings(**raw)
    except ValidationError as e:
        problems += _format_errors(e)
    # Secrets are checked even when other fields are invalid: every problem at once.
    secrets_file = raw.get("pg_secrets_file")
    file_secrets: dict[str, str] = {}
    if secrets_file:
        try:
            file_secrets = read_secrets_file(Path(secrets_file))
        except OSError as e:
            problems.append(f"pg_secrets_file: cannot read {secrets_file}: {e.strerror}")
    resolved = {}
    for name in secret_names(raw):
        value = environ.get(name) or file_secrets.get(name)
        if value:
            resolved[name] = SecretStr(value)
        else:
            where = f" or {secrets_file}" if secrets_file else ""
            if name == BACKUP_SECRET:
                problems.append(f"pg_backup_host: secret {name} (the repository's encryption "
                                f"passphrase) is not set (environment{where})")
                continue
            if name in (S3_KEY, S3_KEY_SECRET):
                problems.append(f"pgbackrest: secret {name} (the S3 repository's access key) is "
                                f"not set (environment{where})")
                continue
            role = name.removeprefix("PGOPS_ROLE_").removesuffix("_PASSWORD").lower()
            problems.append(f"pg_roles[{role}].password: secret {name} is not set (environment{where})")
    if settings is not None:
        settings = settings.model_copy(update={"secrets": resolved})
    if problems:
        sources = sources or {}

        def where(problem: str) -> str:
            key = re.split(r"[.:\[]", problem, maxsplit=1)[0]
            return sources.get(key, "inventory")

        raise ConfigError([f"{where(p)}: host {host}: {p}" for p in sorted(set(problems))])
    return settings


BACKUP_SECRET = "PGOPS_BACKUP_CIPHER_PASS"
#: pg_backup_host for a repository on the database host itself (no repository host).
LOCAL_REPOSITORY = "local"
#: Access keys of S3 repositories (repoN-type: s3), kept on the repository host only.
S3_KEY = "PGOPS_BACKUP_S3_KEY"
S3_KEY_SECRET = "PGOPS_BACKUP_S3_KEY_SECRET"


def secret_names(settings_data: dict[str, Any]) -> list[str]:
    """The secrets a config needs (also used by the lab to generate them); tolerant of
    invalid role entries, which field validation reports."""
    out = [BACKUP_SECRET] if settings_data.get("pg_backup_host") else []
    backrest = settings_data.get("pgbackrest") or {}
    # Keys only for shared-key S3 repositories: `auto` (instance role) and `web-id` need none.
    if out and isinstance(backrest, dict) and any(
            (m := re.fullmatch(r"repo(\d+)-type", str(k))) and v == "s3"
            and backrest.get(f"repo{m[1]}-s3-key-type", "shared") == "shared"
            for k, v in backrest.items()):
        out += [S3_KEY, S3_KEY_SECRET]
    for r in settings_data.get("pg_roles") or ():
        name = _get(r, "name")
        if isinstance(name, str) and _get(r, "login", True) and _get(r, "password", True):
            out.append(f"PGOPS_ROLE_{name.upper()}_PASSWORD")
    return out
