"""Build one host's Settings from inventory data and secrets, reporting every problem at once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from pgops.errors import ConfigError
from pgops.settings.endpoint import POOLER_ROLE
from pgops.settings.ha import HA_ROLES, PATRONI_API_SECRET
from pgops.settings.model import LOCAL_REPOSITORY, Settings
from pgops.settings.secrets import (
    BACKUP_SECRET,
    S3_KEY,
    S3_KEY_SECRET,
    raw_field,
    read_secrets_file,
    role_secrets,
    secret_names,
)

#: pg_hba database keywords that name no database of pg_databases.
_HBA_DATABASE_KEYWORDS = ("all", "sameuser", "replication")


def _named(raw: dict[str, Any], key: str) -> list[Any]:
    """The entries of a list section that have a name (nameless ones are field errors)."""
    return [e for e in raw.get(key) or () if raw_field(e, "name")]


def _membership_problems(role_list: list[Any], roles: set[str]) -> list[str]:
    """member_of may name only roles pgops defines: GRANT of an unknown role fails mid-deploy."""
    return [f"pg_roles.{i}.member_of: role {m!r} is not defined in pg_roles"
            for i, r in enumerate(role_list)
            for m in raw_field(r, "member_of", ()) or ()
            if m not in roles]


def _owner_problems(db_list: list[Any], roles: set[str]) -> list[str]:
    """A database owner must be a defined role (or postgres): CREATE DATABASE needs it to exist."""
    problems = []
    for i, d in enumerate(db_list):
        owner = raw_field(d, "owner")
        if owner and owner not in roles and owner != "postgres":
            problems.append(f"pg_databases.{i}.owner: role {owner!r} is not defined in pg_roles")
    return problems


def _hba_problems(rules: Any, roles: set[str], dbs: set[str]) -> list[str]:
    """pg_hba rules may name only defined databases and roles: others would never match."""
    problems = []
    for i, rule in enumerate(rules or ()):
        for part in str(raw_field(rule, "database", "all")).split(","):
            if part not in _HBA_DATABASE_KEYWORDS and part not in dbs:
                problems.append(
                    f"pg_hba_rules.{i}.database: database {part!r} is not defined in pg_databases"
                )
        for part in str(raw_field(rule, "user", "all")).split(","):
            if part != "all" and part not in roles:
                problems.append(f"pg_hba_rules.{i}.user: role {part!r} is not defined in pg_roles")
    return problems


def _app_database_problems(raw: dict[str, Any], roles: set[str], dbs: set[str]) -> list[str]:
    """The application database and its migration role must exist: migrations run there as it."""
    problems = []
    app_db = raw.get("pg_app_database")
    if app_db and app_db not in dbs:
        problems.append(f"pg_app_database: database {app_db!r} is not defined in pg_databases")
    mig_role = raw.get("pg_migration_role", "migrator")
    if app_db and mig_role not in roles:
        problems.append(f"pg_migration_role: role {mig_role!r} is not defined in pg_roles")
    return problems


def _duplicate_problems(role_list: list[Any], roles: set[str], db_list: list[Any],
                        dbs: set[str]) -> list[str]:
    """Each role and database name once: a second entry would silently contradict the first."""
    problems = []
    if len(roles) != len(role_list):
        problems.append("pg_roles: a role name appears twice")
    if len(dbs) != len(db_list):
        problems.append("pg_databases: a database name appears twice")
    return problems


def _backup_transport_problems(raw: dict[str, Any]) -> list[str]:
    """TLS transport links two hosts: with no repository host (or a local one) there is none."""
    if raw.get("pg_backup_transport") == "tls" and raw.get("pg_backup_host") in (None, LOCAL_REPOSITORY):
        return ["pg_backup_transport: 'tls' needs a repository host in pg_backup_host "
                "(a local repository has no transport)"]
    return []


def _tls_file_problems(raw: dict[str, Any]) -> list[str]:
    """The server certificate, its key and its CA go together and must exist here: they are
    uploaded from here."""
    problems = []
    cert, key = raw.get("pg_tls_cert_file"), raw.get("pg_tls_key_file")
    ca = raw.get("pg_tls_ca_file")
    if bool(cert) != bool(key):
        problems.append("pg_tls_cert_file: give pg_tls_cert_file and pg_tls_key_file together")
    if cert and not ca:
        problems.append("pg_tls_ca_file: give the CA that signed pg_tls_cert_file, so that "
                        "clients can verify the server (sslmode=verify-full)")
    if cert and raw.get("pg_tls_names"):
        problems.append("pg_tls_names: only for certificates pgops issues; pg_tls_cert_file "
                        "names what its CA put in it")
    if ca and not cert:
        problems.append("pg_tls_ca_file: only with pg_tls_cert_file and pg_tls_key_file "
                        "(without them pgops issues the certificates from its own CA)")
    for name, f in (("pg_tls_cert_file", cert), ("pg_tls_key_file", key), ("pg_tls_ca_file", ca)):
        if f and not Path(f).is_file():
            problems.append(f"{name}: {f} does not exist on this machine")
    return problems


def reference_problems(raw: dict[str, Any]) -> list[str]:
    """Cross-references between sections, checked on raw data so that they are reported
    together with field errors (all problems at once)."""
    role_list = _named(raw, "pg_roles")
    db_list = _named(raw, "pg_databases")
    roles = {raw_field(r, "name") for r in role_list}
    dbs = {raw_field(d, "name") for d in db_list}
    return [
        *_membership_problems(role_list, roles),
        *_owner_problems(db_list, roles),
        *_hba_problems(raw.get("pg_hba_rules"), roles, dbs),
        *_app_database_problems(raw, roles, dbs),
        *_duplicate_problems(role_list, roles, db_list, dbs),
        *_backup_transport_problems(raw),
        *_tls_file_problems(raw),
    ]


def _format_errors(e: ValidationError) -> list[str]:
    out = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (typo?)"
        out.append(f"{loc}: {msg}" if loc else msg)
    return out


def _pg_fields(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the settings pgops reads, problems): other keys are pyinfra's, an unknown pg_* is a typo."""
    fields = set(Settings.model_fields) - {"secrets"}
    raw = {k: v for k, v in data.items() if k.startswith("pg_") or k == "pgbackrest"}
    problems = [f"{k}: unknown setting (typo?)" for k in raw if k not in fields]
    return {k: v for k, v in raw.items() if k in fields}, problems


def _validated(raw: dict[str, Any]) -> tuple[Settings | None, list[str]]:
    """(Settings or None, field problems): field errors are collected, not raised."""
    try:
        return Settings(**raw), []
    except ValidationError as e:
        return None, _format_errors(e)


def _file_secrets(secrets_file: Any) -> tuple[dict[str, str], list[str]]:
    """(secrets of pg_secrets_file, problems): an unreadable file is one problem among others."""
    if not secrets_file:
        return {}, []
    try:
        return read_secrets_file(Path(secrets_file)), []
    except OSError as e:
        return {}, [f"pg_secrets_file: cannot read {secrets_file}: {e.strerror}"]


def _missing_secret(name: str, secrets_file: Any, roles: Mapping[str, str]) -> str:
    """The problem for an unset secret, naming the setting that needs it and where it was
    looked for; `roles` is role_secrets of the config (secret name -> role)."""
    where = f" or {secrets_file}" if secrets_file else ""
    if name == BACKUP_SECRET:
        return (f"pg_backup_host: secret {name} (the repository's encryption "
                f"passphrase) is not set (environment{where})")
    if name in (S3_KEY, S3_KEY_SECRET):
        return (f"pgbackrest: secret {name} (the S3 repository's access key) is "
                f"not set (environment{where})")
    if name == PATRONI_API_SECRET:
        return (f"pg_ha_cluster: secret {name} (the Patroni REST API's password) is "
                f"not set (environment{where})")
    if roles[name] in HA_ROLES:
        return (f"pg_ha_cluster: secret {name} (the cluster's {roles[name]} role) is "
                f"not set (environment{where})")
    if roles[name] == POOLER_ROLE:
        return (f"pg_pooler: secret {name} (PgBouncer's password lookup role "
                f"{POOLER_ROLE}) is not set (environment{where})")
    return f"pg_roles[{roles[name]}].password: secret {name} is not set (environment{where})"


def _resolve_secrets(raw: dict[str, Any], environ: Mapping[str, str]
                     ) -> tuple[dict[str, SecretStr], list[str]]:
    """(every secret the config needs, problems): the environment first, then pg_secrets_file;
    checked even when other fields are invalid, so that every problem is reported at once."""
    secrets_file = raw.get("pg_secrets_file")
    file_secrets, problems = _file_secrets(secrets_file)
    resolved = {}
    roles = role_secrets(raw)
    for name in secret_names(raw):
        value = environ.get(name) or file_secrets.get(name)
        if value:
            resolved[name] = SecretStr(value)
        else:
            problems.append(_missing_secret(name, secrets_file, roles))
    return resolved, problems


def _located(host: str, problems: list[str], sources: dict[str, str]) -> list[str]:
    """Each problem once, sorted, prefixed with the file its setting comes from and the host."""

    def source(problem: str) -> str:
        key = re.split(r"[.:\[]", problem, maxsplit=1)[0]
        return sources.get(key, "inventory")

    return [f"{source(p)}: host {host}: {p}" for p in sorted(set(problems))]


def load_settings(host: str, data: dict[str, Any], sources: dict[str, str] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Build and validate one host's Settings from its merged inventory data.

    Only `pg_*` keys are read (the rest is pyinfra's: ssh_*, etc.); an unknown `pg_*` key is
    an error. Secrets come from the environment first, then `pg_secrets_file`.
    `sources` maps a key to the file it came from, so that each problem names its file.
    Raises ConfigError listing every problem, each prefixed with file and host.
    """
    raw, problems = _pg_fields(data)
    problems += reference_problems(raw)
    settings, field_problems = _validated(raw)
    problems += field_problems
    resolved, secret_problems = _resolve_secrets(raw, os.environ if environ is None else environ)
    problems += secret_problems
    if problems or settings is None:
        raise ConfigError(_located(host, problems, sources or {}))
    return settings.model_copy(update={"secrets": resolved})
