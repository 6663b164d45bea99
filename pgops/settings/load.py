"""Build one host's Settings from its merged inventory data and secrets: every problem
found (fields, cross-references, secrets) reported at once, each naming its file and host."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from pgops.errors import ConfigError
from pgops.settings.model import LOCAL_REPOSITORY, Settings
from pgops.settings.secrets import (
    BACKUP_SECRET,
    S3_KEY,
    S3_KEY_SECRET,
    raw_field,
    read_secrets_file,
    secret_names,
)


def reference_problems(raw: dict[str, Any]) -> list[str]:
    """Cross-references between sections, checked on raw data so that they are reported
    together with field errors (all problems at once)."""
    problems = []
    role_list = [r for r in raw.get("pg_roles") or () if raw_field(r, "name")]
    db_list = [d for d in raw.get("pg_databases") or () if raw_field(d, "name")]
    roles = {raw_field(r, "name") for r in role_list}
    dbs = {raw_field(d, "name") for d in db_list}
    for i, r in enumerate(role_list):
        for m in raw_field(r, "member_of", ()) or ():
            if m not in roles:
                problems.append(f"pg_roles.{i}.member_of: role {m!r} is not defined in pg_roles")
    for i, d in enumerate(db_list):
        owner = raw_field(d, "owner")
        if owner and owner not in roles and owner != "postgres":
            problems.append(f"pg_databases.{i}.owner: role {owner!r} is not defined in pg_roles")
    for i, rule in enumerate(raw.get("pg_hba_rules") or ()):
        for part in str(raw_field(rule, "database", "all")).split(","):
            if part not in ("all", "sameuser", "replication") and part not in dbs:
                problems.append(
                    f"pg_hba_rules.{i}.database: database {part!r} is not defined in pg_databases"
                )
        for part in str(raw_field(rule, "user", "all")).split(","):
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


